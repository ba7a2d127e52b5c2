//! Plain data the engine passes in and gets back. Times are milliseconds since the Unix epoch, supplied by
//! the caller so tests can freeze the clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::commit::{self, FlushResult};
use crate::error::Result;
use crate::lease::LeaseGuard;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// What the source knows about a message when it arrives (from the MSH pre-read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveMeta {
    /// When the message was read off the wire.
    pub received_at: UnixMillis,
    /// MSH-10, indexed for lookup.
    pub control_id: Option<String>,
    /// MSH-9 as written, e.g. `ADT^A01`.
    pub message_type: Option<String>,
    /// Set when this message is a reprocessed copy of an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprocess_of: Option<ReprocessOf>,
}

/// The link from a reprocessed copy to the message it was copied from (which stays as it was).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprocessOf {
    /// Sequence id of the original message, in the same channel.
    pub seq: u64,
    /// When set, only this destination's output of the new run is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// Where a message (or one destination's copy of it) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored and waiting in the inbox.
    Received,
    /// Dropped by a filter; finished.
    Filtered,
    /// A transform stage produced output.
    Transformed,
    /// Waiting in at least one outbox.
    Queued,
    /// Delivered to every destination.
    Sent,
    /// A stage or a delivery failed for good.
    Errored,
}

/// A write that is in sled but not yet known to be durable. The only way to a [`Stored`] receipt is to
/// wait for the flush that covers the write.
#[must_use = "a message may only be acknowledged after waiting for durability"]
#[derive(Debug)]
pub struct Pending {
    stored: Stored,
    rx: tokio::sync::oneshot::Receiver<FlushResult>,
}

impl Pending {
    pub(crate) fn new(stored: Stored, rx: tokio::sync::oneshot::Receiver<FlushResult>) -> Self {
        Self { stored, rx }
    }

    /// Sequence id the message was stored under (known before it is durable, e.g. for logging).
    pub fn seq(&self) -> u64 {
        self.stored.seq
    }

    /// Waits (async) until a flush covering this write returned; an error means the message is not stored.
    pub async fn durable(self) -> Result<Stored> {
        commit::wait_async(self.rx).await.map(|()| self.stored)
    }

    /// Waits (blocking) until a flush covering this write returned; an error means the message is not
    /// stored. Must not be called on an async runtime thread (tokio panics there); use [`Pending::durable`].
    pub fn wait(self) -> Result<Stored> {
        commit::wait_blocking(self.rx).map(|()| self.stored)
    }
}

/// Proof that a message is durably stored: the receipt the source needs before sending AA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    channel: String,
    seq: u64,
    control_id: Option<String>,
}

impl Stored {
    pub(crate) fn new(channel: &str, seq: u64, control_id: Option<String>) -> Self {
        Self {
            channel: channel.to_owned(),
            seq,
            control_id,
        }
    }

    /// Channel the message was stored in.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Sequence id within the store (unique, increasing, never reused).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// MSH-10 of the stored message.
    pub fn control_id(&self) -> Option<&str> {
        self.control_id.as_deref()
    }
}

/// An inbox message leased to one worker. Dropping it without completing returns it to the inbox.
#[derive(Debug)]
pub struct InboxLease {
    pub(crate) channel: String,
    pub(crate) seq: u64,
    pub(crate) meta: ReceiveMeta,
    pub(crate) raw: Vec<u8>,
    pub(crate) _guard: LeaseGuard,
}

impl InboxLease {
    /// Channel the message belongs to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Sequence id of the message.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// What was known when it arrived.
    pub fn meta(&self) -> &ReceiveMeta {
        &self.meta
    }

    /// The message exactly as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// Result of one pipeline stage, kept in the message history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageOutcome {
    /// When the stage finished.
    pub at: UnixMillis,
    /// Stage name as the runtime calls it, e.g. `filter` or `transform:lab-fhir`.
    pub stage: String,
    /// What the stage decided.
    pub status: Status,
    /// Reason or error text (with script line), never message content.
    pub detail: Option<String>,
}

/// One destination's copy of a processed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Destination name.
    pub destination: String,
    /// Content type, e.g. `application/hl7-v2` or `application/fhir+json`.
    pub content_type: String,
    /// Bytes to send.
    pub payload: Vec<u8>,
}

/// How processing of an inbox message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Queue these outputs (one per destination; a later output for the same destination wins).
    /// No outputs at all means every destination filtered the message out.
    Routed(Vec<Output>),
    /// The channel filter dropped the message.
    Filtered {
        /// Why.
        reason: String,
    },
    /// Processing failed before anything was queued.
    Errored {
        /// Error text, including the script line where there is one.
        error: String,
    },
}

/// Everything a worker reports when it finishes an inbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// When processing finished.
    pub at: UnixMillis,
    /// Each stage's outcome, in order.
    pub stages: Vec<StageOutcome>,
    /// The end result.
    pub disposition: Disposition,
}

/// Whether a destination must deliver strictly in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxOrder {
    /// Only the head may be sent; a head waiting for its retry blocks the queue (MLLP).
    Ordered,
    /// Any entry whose retry time has come may be sent, several may be in flight (HTTP).
    Unordered,
}

/// An outbox entry leased to one destination worker. Dropping it without settling returns it to the queue.
#[derive(Debug)]
pub struct OutboxLease {
    pub(crate) channel: String,
    pub(crate) destination: String,
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) control_id: Option<String>,
    pub(crate) content_type: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) _guard: LeaseGuard,
}

impl OutboxLease {
    /// Channel the message belongs to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Destination this copy is for.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Sequence id of the message.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of this delivery attempt (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// MSH-10 of the received message, for logs.
    pub fn control_id(&self) -> Option<&str> {
        self.control_id.as_deref()
    }

    /// Content type of the payload.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// Bytes to send.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// What an outbox has for a worker right now.
#[derive(Debug)]
pub enum OutboxPoll {
    /// Send this one.
    Ready(OutboxLease),
    /// Nothing is due before this time (entries are waiting for their retry).
    NotBefore(UnixMillis),
    /// Nothing to do: the outbox is empty or what is due is already leased.
    Idle,
}

/// The result of one delivery attempt, kept in the message history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Delivered.
    Sent,
    /// Failed; will be retried at the given time.
    Retry {
        /// When the next attempt is due.
        next_attempt_at: UnixMillis,
    },
    /// Failed for the last time; the message is errored for this destination.
    Failed,
}

/// One step in a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// Stored in the inbox.
    Received,
    /// A pipeline stage finished.
    Stage {
        /// Stage name.
        stage: String,
        /// What it decided.
        status: Status,
    },
    /// Processing finished without queueing (filtered or errored).
    Finished {
        /// Filtered or errored.
        status: Status,
    },
    /// A copy was put in a destination's outbox.
    Queued {
        /// Destination name.
        destination: String,
    },
    /// The message was copied into the inbox to run again; the copy links back with `reprocess_of`.
    Reprocessed {
        /// Sequence id of the copy.
        seq: u64,
    },
    /// A delivery attempt ended.
    Attempt {
        /// Destination name.
        destination: String,
        /// Attempt number, from 1.
        number: u32,
        /// How it ended.
        outcome: AttemptOutcome,
    },
}

/// A timestamped history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at: UnixMillis,
    /// What happened.
    #[serde(flatten)]
    pub step: Step,
    /// Reason, error text or the peer's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Where one destination's copy stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationRecord {
    /// Queued, Sent or Errored.
    pub status: Status,
    /// Content type of the queued payload.
    pub content_type: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at: Option<UnixMillis>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// The peer's answer to the successful attempt (e.g. its ACK).
    pub response: Option<String>,
}

/// Attempts to one destination a record's history keeps from the start of its delivery.
pub const FIRST_ATTEMPTS_KEPT: usize = 5;
/// Latest attempts to one destination a record's history keeps (see [`MessageRecord::history`]).
pub const LATEST_ATTEMPTS_KEPT: usize = 5;

/// Everything the store knows about one message, for the message browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Channel name.
    pub channel: String,
    /// Sequence id.
    pub seq: u64,
    /// Metadata captured on receipt.
    pub meta: ReceiveMeta,
    /// Overall status, derived from processing and the destinations.
    pub status: Status,
    /// Per-destination state.
    pub destinations: BTreeMap<String, DestinationRecord>,
    /// Every step, in order, except that of many attempts to one destination only the first
    /// [`FIRST_ATTEMPTS_KEPT`] and the latest [`LATEST_ATTEMPTS_KEPT`] are kept (the event numbers show the
    /// gap; the destination's `attempts` is the exact count).
    pub history: Vec<Event>,
}

impl MessageRecord {
    pub(crate) fn received(channel: &str, seq: u64, meta: ReceiveMeta) -> Self {
        let at = meta.received_at;
        Self {
            channel: channel.to_owned(),
            seq,
            meta,
            status: Status::Received,
            destinations: BTreeMap::new(),
            history: vec![Event {
                at,
                step: Step::Received,
                detail: None,
            }],
        }
    }

    /// Sequence ids of the copies this message was reprocessed as, oldest first.
    pub fn reprocessed_as(&self) -> Vec<u64> {
        self.history
            .iter()
            .filter_map(|e| match e.step {
                Step::Reprocessed { seq } => Some(seq),
                _ => None,
            })
            .collect()
    }

    /// Whether nothing more will happen to this message on its own (no queue holds it).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status,
            Status::Filtered | Status::Sent | Status::Errored
        ) && self
            .destinations
            .values()
            .all(|d| d.status != Status::Queued)
    }

    /// Keeps the history's attempts to `destination` to the first [`FIRST_ATTEMPTS_KEPT`] and the latest
    /// [`LATEST_ATTEMPTS_KEPT`], dropping the oldest of the latest ones when one more comes in. The
    /// destination's attempt count stays exact. Without this a partner that is down for a day, with
    /// every queued message retried every few minutes, makes each record, and so each attempt's
    /// rewrite of it, grow without bound.
    pub(crate) fn forget_middle_attempts(&mut self, destination: &str) {
        let mut attempts = self.history.iter().enumerate().filter(
            |(_, e)| matches!(&e.step, Step::Attempt { destination: d, .. } if d == destination),
        );
        let Some((oldest_latest, _)) = attempts.nth(FIRST_ATTEMPTS_KEPT) else {
            return;
        };
        if attempts.count() >= LATEST_ATTEMPTS_KEPT {
            self.history.remove(oldest_latest);
        }
    }

    /// Errored wins over in-flight, which wins over sent, so a failed copy is never hidden.
    pub(crate) fn settle_status(&mut self) {
        let statuses = || self.destinations.values().map(|d| d.status);
        self.status = if statuses().any(|s| s == Status::Errored) {
            Status::Errored
        } else if statuses().any(|s| s == Status::Queued) {
            Status::Queued
        } else if self.destinations.is_empty() {
            Status::Filtered
        } else {
            Status::Sent
        };
    }
}

/// Which records to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Only records with this overall status.
    pub status: Option<Status>,
    /// Only records received at or after this time (scanning stops at the first older record).
    pub since: Option<UnixMillis>,
    /// At most this many records, newest first.
    pub limit: usize,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            status: None,
            since: None,
            limit: 100,
        }
    }
}

/// Size of one queue, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries waiting (including leased ones).
    pub depth: u64,
    /// When the oldest waiting entry was received (inbox) or queued (outbox).
    pub oldest_at: Option<UnixMillis>,
}

/// Which finished records a retention pass removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRule {
    /// Records received before this time are removed.
    pub received_before: UnixMillis,
    /// Keep errored records regardless of age, so no failure disappears unseen.
    pub keep_errored: bool,
}

/// What one bounded pruning step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneBatch {
    /// Records (with their bodies and index entries) removed.
    pub removed: u64,
    /// Records looked at but kept (errored with `keep_errored`, or still queued).
    pub kept: u64,
    /// Where the next step starts; `None` when no older record is left in the channel.
    pub resume_after: Option<u64>,
}
