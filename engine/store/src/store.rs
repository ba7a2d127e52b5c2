//! The storage interface the engine programs against. Nothing here names the backend.

use crate::crypto::Cipher;
use crate::error::Result;
use crate::types::{
    InboxLease, ListFilter, MessageRecord, OutboxLease, OutboxOrder, OutboxPoll, Pending,
    Processed, PruneBatch, PruneRule, QueueStats, ReceiveMeta, UnixMillis,
};

/// How a delivery attempt ended, as the destination worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Delivered: remove from the outbox and mark the destination sent.
    Sent {
        /// The peer's answer (e.g. its ACK), kept on the record.
        response: Option<String>,
    },
    /// Failed, try again later: the entry stays queued and is not due before `next_attempt_at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When the next attempt is due (the caller computes backoff and jitter).
        next_attempt_at: UnixMillis,
    },
    /// Failed for the last time: remove from the outbox, keep the record marked errored.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// Durable message store: one per process, shared by every channel (`Arc<dyn Store>`).
///
/// Guarantees: a message is durable once [`Pending::durable`] / [`Pending::wait`] returned a
/// [`Stored`](crate::Stored) receipt. Later steps (`complete`, `settle`) write in an order where a crash
/// part-way only repeats work, never loses it (see each method), and become durable with
/// the next flush; a crash before that replays the step, so delivery is at-least-once. Leases live only in
/// memory: after a restart every unfinished inbox and outbox entry is handed out again.
pub trait Store: Send + Sync {
    /// Sets how a channel's content is stored from now on: sealed with the cipher's current key, or in
    /// clear with `None`. Call before the channel's first message. Keys stay known for reading.
    fn set_channel_cipher(&self, channel: &str, cipher: Option<Cipher>);

    /// Stores a raw message in the channel's inbox; wait on the returned [`Pending`] before acknowledging.
    fn receive(&self, channel: &str, raw: &[u8], meta: ReceiveMeta) -> Result<Pending> {
        self.receive_announced(channel, raw, meta, &mut |_| {})
    }

    /// [`Store::receive`], calling `announce` with the message's sequence id before the message becomes
    /// visible to [`Store::lease_inbox`], so a caller can register interest in its processing without a
    /// lock held across the write. When this returns an error after announcing, the message was not stored.
    fn receive_announced(
        &self,
        channel: &str,
        raw: &[u8],
        meta: ReceiveMeta,
        announce: &mut dyn FnMut(u64),
    ) -> Result<Pending>;

    /// Leases up to `max` inbox messages of a channel that no one else holds, oldest first.
    fn lease_inbox(&self, channel: &str, max: usize) -> Result<Vec<InboxLease>>;

    /// Records the stage outcomes, queues every output and removes the inbox entry, in that order: a crash
    /// part-way leaves the message in the inbox and it runs again (outputs may then be delivered twice).
    fn complete(&self, lease: InboxLease, processed: Processed) -> Result<()> {
        let batch = [(lease, processed)];
        self.complete_all(&batch).pop().unwrap_or(Ok(()))
    }

    /// [`Store::complete`] for each message of a worker round, with one result per message in batch
    /// order. The leases are released when the caller drops them.
    fn complete_all(&self, batch: &[(InboxLease, Processed)]) -> Vec<Result<()>>;

    /// Leases the next outbox entry for a destination: the head when `Ordered`, else the oldest one due.
    fn poll_outbox(
        &self,
        channel: &str,
        destination: &str,
        order: OutboxOrder,
        now: UnixMillis,
    ) -> Result<OutboxPoll>;

    /// Records a delivery attempt on the message, then updates or removes the outbox entry: a crash in between
    /// leaves the entry queued, so the message is delivered again.
    fn settle(&self, lease: OutboxLease, at: UnixMillis, settlement: Settlement) -> Result<()>;

    /// One message's record.
    fn record(&self, channel: &str, seq: u64) -> Result<Option<MessageRecord>>;

    /// Every message (in any channel) whose MSH-10 is `control_id`.
    fn find_by_control_id(&self, control_id: &str) -> Result<Vec<MessageRecord>>;

    /// A channel's records, newest first.
    fn list(&self, channel: &str, filter: &ListFilter) -> Result<Vec<MessageRecord>>;

    /// The message exactly as received.
    fn raw(&self, channel: &str, seq: u64) -> Result<Option<Vec<u8>>>;

    /// The output queued for one destination.
    fn output(&self, channel: &str, seq: u64, destination: &str) -> Result<Option<Vec<u8>>>;

    /// Depth and age of a channel's inbox.
    fn inbox_stats(&self, channel: &str) -> Result<QueueStats>;

    /// Depth and age of one destination's outbox.
    fn outbox_stats(&self, channel: &str, destination: &str) -> Result<QueueStats>;

    /// Every destination of the channel that has messages queued, with how many, by name. Finds queues a
    /// configuration no longer serves (a destination removed, renamed or disabled).
    fn queued_destinations(&self, channel: &str) -> Result<Vec<(String, u64)>>;

    /// Puts a copy of a processed message's raw bytes in the channel's inbox so it runs again through the
    /// current scripts, received at `at`. The original stays as it was, plus a `Reprocessed` history
    /// event naming the copy; the copy's `reprocess_of` names the original. With `destination`, only that
    /// destination's output of the new run is queued. Wait on the [`Pending`] as for `receive`.
    fn reprocess(
        &self,
        channel: &str,
        seq: u64,
        destination: Option<&str>,
        at: UnixMillis,
    ) -> Result<Pending>;

    /// One bounded retention step: looks at up to `max` of the channel's oldest records after
    /// `resume_after` and removes those `rule` selects (record, bodies and index entry), in one transaction.
    /// Records still queued for a destination are never removed. Call again with the returned
    /// `resume_after` until it is `None`.
    fn prune(
        &self,
        channel: &str,
        rule: &PruneRule,
        resume_after: Option<u64>,
        max: usize,
    ) -> Result<PruneBatch>;

    /// Durably remembers whether a channel is paused, so a channel paused for a maintenance window stays
    /// paused when the engine restarts.
    fn set_paused(&self, channel: &str, paused: bool) -> Result<()>;

    /// Whether the channel was left paused.
    fn is_paused(&self, channel: &str) -> Result<bool>;

    /// Makes everything written so far durable (blocking; for shutdown).
    fn flush(&self) -> Result<()>;
}
