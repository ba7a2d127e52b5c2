//! Durable message store and per-destination queues (the only module that touches sled).
//!
//! The promise: a message whose receipt ([`Stored`]) was handed out is on disk and is never lost; it
//! stays in its channel's inbox until processed, and each destination's copy stays in that destination's
//! outbox until delivered or failed for good. Delivery is at-least-once: leases are in memory, so a crash
//! hands unfinished entries out again.
//!
//! The engine uses the [`Store`] trait (`Arc<dyn Store>`); [`SledStore`] is today's implementation.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod commit;
mod crypto;
mod error;
mod keys;
mod lease;
mod sled_store;
mod store;
mod types;

pub use crypto::{Cipher, Key, KeyId};
pub use error::{BackendError, Result, StoreError};
pub use sled_store::SledStore;
pub use store::{Settlement, Store};
pub use types::{
    AttemptOutcome, DestinationRecord, Disposition, Event, InboxLease, ListFilter, MessageRecord,
    OutboxLease, OutboxOrder, OutboxPoll, Output, Pending, Processed, PruneBatch, PruneRule,
    QueueStats, ReceiveMeta, ReprocessOf, StageOutcome, Status, Step, Stored, UnixMillis,
};
