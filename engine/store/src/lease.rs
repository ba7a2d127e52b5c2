//! In-memory leases. They are deliberately not persisted: after a crash every unfinished entry is simply
//! handed out again, which makes delivery at-least-once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Keys currently handed to a worker.
#[derive(Debug, Default)]
pub(crate) struct LeaseTable(Mutex<HashSet<Vec<u8>>>);

impl LeaseTable {
    fn lock(&self) -> MutexGuard<'_, HashSet<Vec<u8>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases `key` unless someone already holds it.
    pub(crate) fn try_take(self: &Arc<Self>, key: &[u8]) -> Option<LeaseGuard> {
        if self.lock().insert(key.to_vec()) {
            Some(LeaseGuard {
                table: Arc::clone(self),
                key: key.to_vec(),
            })
        } else {
            None
        }
    }

    /// Whether `key` is leased right now.
    pub(crate) fn is_leased(&self, key: &[u8]) -> bool {
        self.lock().contains(key)
    }
}

/// Holds a lease; releasing happens on drop, so a worker that bails out never strands an entry.
#[derive(Debug)]
pub(crate) struct LeaseGuard {
    table: Arc<LeaseTable>,
    key: Vec<u8>,
}

impl LeaseGuard {
    /// The leased key.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.table.lock().remove(&self.key);
    }
}
