//! The directory of running channels' inboxes, so one channel can hand a message to another.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use junction_hl7::MshHeader;
use junction_store::{ReceiveMeta, Store};
use tokio::sync::Notify;

use crate::destination::Delivery;
use crate::now_millis;

/// Inbox wake-ups by channel name.
#[derive(Default)]
pub struct ChannelDirectory {
    inboxes: RwLock<HashMap<String, Arc<Notify>>>,
}

impl ChannelDirectory {
    /// The inbox notifier of `channel`, created on first use so a destination can hand over to a
    /// channel that starts later (its worker finds the message when it starts).
    pub fn inbox(&self, channel: &str) -> Arc<Notify> {
        if let Some(n) = self
            .inboxes
            .read()
            .ok()
            .and_then(|m| m.get(channel).cloned())
        {
            return n;
        }
        match self.inboxes.write() {
            Ok(mut m) => Arc::clone(m.entry(channel.to_owned()).or_default()),
            // A poisoned lock only means another thread panicked mid-insert; a fresh notifier
            // still works because inbox workers also poll.
            Err(_) => Arc::new(Notify::new()),
        }
    }

    /// Store `payload` durably in `target`'s inbox and wake its worker. (The destination worker holds
    /// its queue while the target is paused; see [`Connector::held`](crate::destination::Connector::held).)
    pub async fn hand_over(
        &self,
        store: &Arc<dyn Store>,
        target: &str,
        payload: &[u8],
        control_id: Option<&str>,
    ) -> Delivery {
        let header = MshHeader::peek(payload);
        let meta = ReceiveMeta {
            received_at: now_millis(),
            control_id: control_id.map(str::to_owned),
            message_type: header.map(|h| h.message_type).filter(|t| !t.is_empty()),
            reprocess_of: None,
        };
        let stored = match store.receive(target, payload, meta) {
            Ok(pending) => pending.durable().await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => {
                self.inbox(target).notify_one();
                Delivery::Sent(Some(format!(
                    "stored in channel {target} as {}",
                    stored.seq()
                )))
            }
            Err(e) => Delivery::Retry(format!("cannot store in channel {target}: {e}")),
        }
    }
}
