//! Store errors. They never expose sled types, so a successor backend keeps the same errors.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// An error reported by the storage backend, kept opaque so callers never name sled.
#[derive(Debug, Clone)]
pub struct BackendError(Arc<sled::Error>);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.0.as_ref() {
            sled::Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sled::Error> for BackendError {
    fn from(e: sled::Error) -> Self {
        Self(Arc::new(e))
    }
}

/// Everything that can go wrong in the store. `Clone` because one flush error is handed to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store directory could not be opened or recovered.
    #[error("cannot open message store at {path}: {source}")]
    Open {
        /// Directory that was being opened.
        path: PathBuf,
        /// Backend failure.
        source: BackendError,
    },
    /// A read or write failed.
    #[error("message store {op} failed: {source}")]
    Backend {
        /// What the store was doing.
        op: &'static str,
        /// Backend failure.
        source: BackendError,
    },
    /// The flush that should have made a write durable failed: the write must be treated as not stored.
    #[error("message store flush failed, write is not durable: {source}")]
    Flush {
        /// Backend failure.
        source: BackendError,
    },
    /// The store was shut down before the write was confirmed durable.
    #[error("message store closed before the write was confirmed durable")]
    Closed,
    /// A stored value could not be decoded (disk corruption or an incompatible format).
    #[error("corrupt {what} in message store: {detail}")]
    Corrupt {
        /// Which kind of value.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
    /// A channel, destination or control id is longer than a key can hold.
    #[error("{what} is {len} bytes long, the store allows at most 65535")]
    NameTooLong {
        /// Which kind of name.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The message or queue entry an operation refers to is not (or no longer) there.
    #[error("message {seq} of channel {channel:?} has no {queue} entry")]
    NotQueued {
        /// Channel name.
        channel: String,
        /// Sequence id.
        seq: u64,
        /// Which queue was expected to hold it ("inbox" or "outbox <destination>").
        queue: String,
    },
    /// No message with this sequence id is in the channel (never stored, or removed by retention).
    #[error("message {seq} of channel {channel:?} is not in the store (never stored, or pruned)")]
    NoSuchMessage {
        /// Channel name.
        channel: String,
        /// Sequence id.
        seq: u64,
    },
    /// The message has not been processed yet, so there is nothing to run again.
    #[error("message {seq} of channel {channel:?} is still waiting in the inbox to be processed")]
    NotProcessed {
        /// Channel name.
        channel: String,
        /// Sequence id.
        seq: u64,
    },
    /// Stored content is encrypted with a key that no channel configures any more.
    #[error("stored content is encrypted with key {key_id}, which is not configured; keep that key file listed (as a retired key) while records encrypted with it are kept")]
    KeyMissing {
        /// Fingerprint of the missing key.
        key_id: String,
    },
    /// Stored content did not decrypt with the key it names: it was altered or damaged on disk.
    #[error("stored content encrypted with key {key_id} failed authentication (damaged or altered on disk)")]
    Decrypt {
        /// Fingerprint of the key.
        key_id: String,
    },
    /// Content could not be encrypted (only a value too large for AES-GCM does this).
    #[error("cannot encrypt {len} bytes with key {key_id}")]
    Encrypt {
        /// Fingerprint of the key.
        key_id: String,
        /// Size of the content.
        len: usize,
    },
}

impl StoreError {
    /// Whether opening failed because another process (a running engine) holds the store's lock.
    pub fn is_locked(&self) -> bool {
        // sled reports a held lock only as an I/O error of kind Other with this wording (sled 0.34,
        // config.rs `try_lock`); there is no typed variant to match.
        matches!(self, StoreError::Open { source, .. }
            if matches!(source.0.as_ref(), sled::Error::Io(e) if e.to_string().contains("could not acquire lock")))
    }

    pub(crate) fn backend(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
        move |e| StoreError::Backend {
            op,
            source: e.into(),
        }
    }

    pub(crate) fn corrupt(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
        move |e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        }
    }
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
