//! Group commit: one flusher thread makes every write that registered before its flush started durable,
//! so many connections share one fsync.
//!
//! A writer first finishes its write, then registers a waiter. The flusher takes all registered waiters,
//! flushes once, and answers each of them with that flush's result. Because registration happens after
//! the write, the flush that answers a waiter always started after the waiter's write: it covers it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// The answer a waiter receives: `Ok` only if a flush covering its write returned successfully.
pub(crate) type FlushResult = Result<()>;

struct State {
    waiters: Vec<oneshot::Sender<FlushResult>>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the waiter list is still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owns the flusher thread; dropping it flushes for the remaining waiters and joins the thread.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the flusher thread with the backend's flush operation.
    pub(crate) fn start<F>(mut flush: F) -> std::io::Result<Self>
    where
        F: FnMut() -> FlushResult + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                waiters: Vec::new(),
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("junction-store-flush".into())
            .spawn(move || loop {
                let batch = {
                    let mut state = worker.lock();
                    while state.waiters.is_empty() && !state.closed {
                        state = worker
                            .wake
                            .wait(state)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    if state.waiters.is_empty() {
                        return;
                    }
                    std::mem::take(&mut state.waiters)
                };
                let result = flush();
                if let Err(e) = &result {
                    tracing::error!(error = %e, writes = batch.len(), "store flush failed; covered writes are reported as not stored");
                }
                for waiter in batch {
                    // A dropped receiver means the caller stopped waiting; nothing to tell it.
                    let _ = waiter.send(result.clone());
                }
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Registers a waiter for a write that has already completed in memory.
    pub(crate) fn register(&self) -> oneshot::Receiver<FlushResult> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.shared.lock();
        if state.closed {
            let _ = tx.send(Err(StoreError::Closed));
        } else {
            state.waiters.push(tx);
            self.shared.wake.notify_one();
        }
        rx
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("store flusher thread panicked");
            }
        }
    }
}

/// Waits on a registered waiter from async code.
pub(crate) async fn wait_async(rx: oneshot::Receiver<FlushResult>) -> FlushResult {
    rx.await.unwrap_or(Err(StoreError::Closed))
}

/// Waits on a registered waiter from a plain thread.
pub(crate) fn wait_blocking(rx: oneshot::Receiver<FlushResult>) -> FlushResult {
    rx.blocking_recv().unwrap_or(Err(StoreError::Closed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn io_error() -> StoreError {
        StoreError::Flush {
            source: sled::Error::Io(std::io::Error::other("disk full")).into(),
        }
    }

    #[test]
    fn a_failed_flush_is_an_error_for_every_covered_waiter() {
        let committer = Committer::start(|| Err(io_error())).unwrap();
        let waiters: Vec<_> = (0..20).map(|_| committer.register()).collect();
        for rx in waiters {
            assert!(matches!(wait_blocking(rx), Err(StoreError::Flush { .. })));
        }
    }

    #[test]
    fn waiters_registered_during_a_flush_share_the_next_one() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let counter = Arc::clone(&flushes);
        let committer = Committer::start(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = entered_tx.send(());
            let _ = release_rx.lock().unwrap().recv();
            Ok(())
        })
        .unwrap();
        let first = committer.register();
        entered_rx.recv().unwrap();
        // The first flush is running: everything registered now must wait for a second, shared flush.
        let rest: Vec<_> = (0..50).map(|_| committer.register()).collect();
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        wait_blocking(first).unwrap();
        for rx in rest {
            wait_blocking(rx).unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn dropping_the_committer_still_answers_pending_waiters() {
        let committer = Committer::start(|| Ok(())).unwrap();
        let rx = committer.register();
        drop(committer);
        assert!(wait_blocking(rx).is_ok());
    }
}
