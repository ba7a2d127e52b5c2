//! The retention task: removes finished messages older than each channel's `retention` age, keeping
//! errored ones when `keep_errored` is set, in small batches with a pause between them so traffic never
//! waits behind a long delete.
//!
//! What "reclaim" means with sled: removed records, bodies and index entries free their pages, and sled's
//! segment cleaner rewrites mostly-empty segments so that space is reused by new writes. The store's files
//! do not shrink on disk; they stop growing once pruning removes about as much as arrives.

use std::sync::Arc;
use std::time::Duration;

use junction_config::{ChannelConfig, Retention};
use junction_store::{PruneRule, Store, StoreError, UnixMillis};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Records looked at per batch (one store transaction).
const BATCH: usize = 256;
/// Pause between batches, so sources and workers get the store in between.
const PAUSE: Duration = Duration::from_millis(20);
/// First pass shortly after start, once channels are up (sooner when passes are more frequent).
const FIRST_PASS: Duration = Duration::from_secs(60);

/// One channel's retention settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Channel name.
    pub channel: String,
    /// Its `retention` block.
    pub retention: Retention,
}

/// The policies of every channel that has a `retention` block.
pub fn policies(configs: &[ChannelConfig]) -> Vec<Policy> {
    configs
        .iter()
        .filter_map(|c| {
            c.retention.map(|retention| Policy {
                channel: c.name.clone(),
                retention,
            })
        })
        .collect()
}

/// What one pass over a channel did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassTotals {
    /// Messages removed.
    pub removed: u64,
    /// Old messages kept (errored with `keep_errored`, or still queued).
    pub kept: u64,
}

fn rule(retention: &Retention, now: UnixMillis) -> PruneRule {
    PruneRule {
        received_before: now
            .saturating_sub(u64::try_from(retention.keep.as_millis()).unwrap_or(u64::MAX)),
        keep_errored: retention.keep_errored,
    }
}

/// One pass over one channel, batch by batch; `between` runs between batches and may stop the pass by
/// returning `false`. Blocking.
pub fn prune_channel(
    store: &dyn Store,
    policy: &Policy,
    now: UnixMillis,
    mut between: impl FnMut() -> bool,
) -> Result<PassTotals, StoreError> {
    let rule = rule(&policy.retention, now);
    let mut totals = PassTotals::default();
    let mut resume = None;
    loop {
        let batch = store.prune(&policy.channel, &rule, resume, BATCH)?;
        totals.removed += batch.removed;
        totals.kept += batch.kept;
        match batch.resume_after {
            Some(seq) if between() => resume = Some(seq),
            _ => return Ok(totals),
        }
    }
}

/// Runs retention passes until `stop`: the first a minute after start (or after `every`, if shorter),
/// then every `every` (the shortest of the policies'). Spawn it with the engine's workers:
/// `tasks.spawn(retention::run(store, retention::policies(configs), stop))`.
pub async fn run(store: Arc<dyn Store>, policies: Vec<Policy>, stop: CancellationToken) {
    let Some(every) = policies.iter().map(|p| p.retention.every).min() else {
        return;
    };
    let mut wait = FIRST_PASS.min(every);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        wait = every;
        for policy in &policies {
            let (store, policy, halt) = (Arc::clone(&store), policy.clone(), stop.clone());
            let pass = tokio::task::spawn_blocking(move || {
                let totals = prune_channel(store.as_ref(), &policy, crate::now_millis(), || {
                    std::thread::sleep(PAUSE);
                    !halt.is_cancelled()
                });
                (policy.channel, totals)
            })
            .await;
            match pass {
                Ok((channel, Ok(t))) if t.removed > 0 || t.kept > 0 => {
                    info!(
                        channel,
                        removed = t.removed,
                        kept = t.kept,
                        "retention pass done"
                    );
                }
                Ok((_, Ok(_))) => {}
                Ok((channel, Err(e))) => {
                    error!(channel, error = %e, "retention pass failed; will try again next pass");
                }
                Err(e) => error!(error = %e, "retention pass panicked"),
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_store::{Disposition, Processed, ReceiveMeta, SledStore, Status};

    const DAY_MILLIS: u64 = 86_400_000;

    fn finish(store: &SledStore, id: &str, at: u64, disposition: Disposition) -> u64 {
        let meta = ReceiveMeta {
            received_at: at,
            control_id: Some(id.into()),
            message_type: None,
            reprocess_of: None,
        };
        let seq = store
            .receive("lab", b"MSH|^~\\&|A|B|C|D|||ORU^R01|X|P|2.5\r", meta)
            .unwrap()
            .wait()
            .unwrap()
            .seq();
        let lease = store.lease_inbox("lab", 1).unwrap().pop().unwrap();
        let processed = Processed {
            at,
            stages: Vec::new(),
            disposition,
        };
        store.complete(lease, processed).unwrap();
        seq
    }

    #[test]
    fn a_pass_prunes_past_the_configured_days_in_batches_and_keeps_errored() {
        let store = SledStore::temporary().unwrap();
        let now = 400 * DAY_MILLIS;
        let filtered = || Disposition::Filtered { reason: "f".into() };
        let old: Vec<u64> = (0..600)
            .map(|i| {
                finish(
                    &store,
                    &format!("O{i}"),
                    now - 31 * DAY_MILLIS + i,
                    filtered(),
                )
            })
            .collect();
        let errored = finish(
            &store,
            "E",
            now - 45 * DAY_MILLIS,
            Disposition::Errored {
                error: "boom".into(),
            },
        );
        let young = finish(&store, "Y", now - 29 * DAY_MILLIS, filtered());
        let policy = Policy {
            channel: "lab".into(),
            retention: Retention {
                keep: Duration::from_secs(30 * 86_400),
                every: Retention::DEFAULT_EVERY,
                keep_errored: true,
            },
        };
        let mut pauses = 0;
        let totals = prune_channel(&store, &policy, now, || {
            pauses += 1;
            true
        })
        .unwrap();
        assert_eq!(
            totals,
            PassTotals {
                removed: 600,
                kept: 1
            }
        );
        assert!(
            pauses >= 2,
            "601 old records take at least three batches of {BATCH}"
        );
        assert!(store.record("lab", old[0]).unwrap().is_none());
        assert!(store.record("lab", old[599]).unwrap().is_none());
        assert_eq!(
            store.record("lab", errored).unwrap().unwrap().status,
            Status::Errored
        );
        assert!(store.record("lab", young).unwrap().is_some());
    }

    #[test]
    fn a_stopped_pass_ends_after_the_current_batch() {
        let store = SledStore::temporary().unwrap();
        let now = 400 * DAY_MILLIS;
        for i in 0..300 {
            finish(&store, "O", i, Disposition::Filtered { reason: "f".into() });
        }
        let policy = Policy {
            channel: "lab".into(),
            retention: Retention {
                keep: Duration::from_secs(86_400),
                every: Retention::DEFAULT_EVERY,
                keep_errored: false,
            },
        };
        let totals = prune_channel(&store, &policy, now, || false).unwrap();
        assert_eq!(totals.removed, BATCH as u64);
    }
}
