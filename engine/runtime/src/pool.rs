//! A bounded pool of worker threads for CPU-bound script work, so Rhai never runs on the
//! async I/O threads and a slow script cannot stall the listeners.

use std::thread;

use crossbeam_channel::{bounded, Sender};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Worker threads fed through a bounded crossbeam channel.
pub struct WorkerPool {
    jobs: Sender<Job>,
    threads: usize,
}

/// The job did not answer: the pool has shut down or the job panicked.
#[derive(Debug, thiserror::Error)]
#[error("script worker stopped before answering (pool shut down or job panicked)")]
pub struct PoolClosed;

impl WorkerPool {
    /// Start `threads` workers with a queue of `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Job>(queue.max(1));
        let threads = threads.max(1);
        for i in 0..threads {
            let rx = rx.clone();
            thread::Builder::new()
                .name(format!("junction-script-{i}"))
                .spawn(move || {
                    for job in rx {
                        // A panicking job must not shrink the pool; its caller sees the
                        // dropped reply channel as an error for that one message.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self { jobs: tx, threads })
    }

    /// How many worker threads run jobs.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `f` on a worker thread and await its result without blocking the async runtime.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolClosed>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        // A full queue applies back-pressure to the caller; sending happens off the async
        // threads only when the queue is full.
        let job = match self.jobs.try_send(job) {
            Ok(()) => None,
            Err(crossbeam_channel::TrySendError::Full(job)) => Some(job),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(PoolClosed),
        };
        if let Some(job) = job {
            let jobs = self.jobs.clone();
            tokio::task::spawn_blocking(move || jobs.send(job))
                .await
                .map_err(|_| PoolClosed)?
                .map_err(|_| PoolClosed)?;
        }
        rx.await.map_err(|_| PoolClosed)
    }
}
