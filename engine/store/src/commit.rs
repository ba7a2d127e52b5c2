//! Group commit: one flusher thread makes every write that registered before its flush started durable,
//! so many connections share one fsync.
//!
//! A writer first finishes its write, then registers a waiter. The flusher takes all registered waiters,
//! flushes once, and answers each of them with that flush's result. Because registration happens after
//! the write, the flush that answers a waiter always started after the waiter's write: it covers it.
//!
//! Each flush costs far more CPU than a write (sled seals its log buffer and hands it to an I/O thread), so
//! the flusher gathers: once the first waiter arrives it waits, at most [`GATHER_WINDOW`], until as many
//! waiters as its previous flush answered have registered. Eight senders each waiting for their ACK then
//! share one flush instead of three, and a lone sender (previous batch of one) is never delayed.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// Longest a flush waits for the writers it expects; it is reached only when fewer writers come back
/// than last time (a sender went quiet), and the next flush then expects fewer.
pub(crate) const GATHER_WINDOW: Duration = Duration::from_micros(1000);

/// The answer a waiter receives: `Ok` only if a flush covering its write returned successfully.
pub(crate) type FlushResult = Result<()>;

struct State {
    waiters: Vec<oneshot::Sender<FlushResult>>,
    /// How many waiters the previous flush answered, so the gathering flusher waits for as many; it is
    /// woken only when there are that many, not at every registration.
    expected: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    gather: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding it; the waiter list is still valid.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the waiters the next flush answers: at least one, and as many as the previous flush
    /// answered if they arrive within the gather window. `None` once closed with no one left waiting.
    fn next_batch(&self) -> Option<Vec<oneshot::Sender<FlushResult>>> {
        let mut state = self.lock();
        while state.waiters.is_empty() && !state.closed {
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + self.gather;
        while state.waiters.len() < state.expected && !state.closed {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            state = self
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if state.waiters.is_empty() {
            return None;
        }
        state.expected = state.waiters.len();
        Some(std::mem::take(&mut state.waiters))
    }
}

/// Owns the flusher thread; dropping it flushes for the remaining waiters and joins the thread.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the flusher thread with the backend's flush operation, gathering for at most `gather`.
    pub(crate) fn start<F>(gather: Duration, mut flush: F) -> std::io::Result<Self>
    where
        F: FnMut() -> FlushResult + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                waiters: Vec::new(),
                expected: 1,
                closed: false,
            }),
            wake: Condvar::new(),
            gather,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("junction-store-flush".into())
            .spawn(move || {
                while let Some(batch) = worker.next_batch() {
                    let result = flush();
                    if let Err(e) = &result {
                        tracing::error!(error = %e, writes = batch.len(), "store flush failed; covered writes are reported as not stored");
                    }
                    for waiter in batch {
                        // A dropped receiver means the caller stopped waiting; nothing to tell it.
                        let _ = waiter.send(result.clone());
                    }
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
            let n = state.waiters.len();
            if n == 1 || n == state.expected {
                self.shared.wake.notify_one();
            }
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
        let committer = Committer::start(GATHER_WINDOW, || Err(io_error())).unwrap();
        let waiters: Vec<_> = (0..20).map(|_| committer.register()).collect();
        for rx in waiters {
            assert!(matches!(wait_blocking(rx), Err(StoreError::Flush { .. })));
        }
    }

    /// A committer whose flushes are counted; its first flush is held until `during` more writers have
    /// registered, and they must all be answered by the one flush after it.
    fn held_first_flush(gather: Duration, during: usize) -> (Committer, Arc<AtomicUsize>) {
        let flushes = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let counter = Arc::clone(&flushes);
        let committer = Committer::start(gather, move || {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = entered_tx.send(());
                let _ = release_rx.lock().unwrap().recv();
            }
            Ok(())
        })
        .unwrap();
        let first = committer.register();
        entered_rx.recv().unwrap();
        let rest: Vec<_> = (0..during).map(|_| committer.register()).collect();
        release_tx.send(()).unwrap();
        wait_blocking(first).unwrap();
        for rx in rest {
            wait_blocking(rx).unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 2);
        (committer, flushes)
    }

    #[test]
    fn waiters_registered_during_a_flush_share_the_next_one() {
        held_first_flush(GATHER_WINDOW, 50);
    }

    /// A committer whose flushes are counted.
    fn counted(gather: Duration) -> (Committer, Arc<AtomicUsize>) {
        let flushes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&flushes);
        let committer = Committer::start(gather, move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        (committer, flushes)
    }

    #[test]
    fn writers_that_come_back_one_by_one_share_one_flush() {
        // A window far longer than the test needs makes the gathering deterministic; five writers arrive
        // during the first flush, so the second one answers five.
        let (committer, flushes) = held_first_flush(Duration::from_secs(30), 5);
        // The five come back one at a time, as senders do after their ACK: one flush answers them all.
        let started = Instant::now();
        let mut again = Vec::new();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
            again.push(committer.register());
        }
        for rx in again {
            wait_blocking(rx).unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_lone_writer_is_not_held_for_the_window_and_a_missing_one_only_for_the_window() {
        let (committer, _) = counted(Duration::from_secs(30));
        let started = Instant::now();
        wait_blocking(committer.register()).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a lone writer waited for the window"
        );

        let (committer, flushes) = counted(Duration::from_millis(50));
        let two: Vec<_> = (0..2).map(|_| committer.register()).collect();
        for rx in two {
            wait_blocking(rx).unwrap();
        }
        committer.shared.lock().expected = 2;
        let before = flushes.load(Ordering::SeqCst);
        let started = Instant::now();
        // Only one of the two expected writers comes back: it is answered once the window has passed.
        wait_blocking(committer.register()).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(flushes.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn dropping_the_committer_still_answers_pending_waiters() {
        let committer = Committer::start(GATHER_WINDOW, || Ok(())).unwrap();
        let rx = committer.register();
        drop(committer);
        assert!(wait_blocking(rx).is_ok());
    }
}
