//! Starting and stopping every channel: sources after their workers, sources stopped first.

use std::sync::Arc;

use junction_config::ChannelConfig;
use junction_store::Store;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::{start_workers, RunningChannel};
use crate::channels::ChannelDirectory;
use crate::pipeline::{BuildError, Pipeline};
use crate::pool::WorkerPool;
use crate::source::{self, SourceError, DRAIN_TIMEOUT};

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A channel's scripts or tables are unusable.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A source could not start (port in use, TLS files).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A destination could not be set up.
    #[error("channel {channel}: {source}")]
    Destination {
        /// Channel name.
        channel: String,
        /// Why.
        source: crate::destination::ConnectorError,
    },
    /// The script worker threads could not be started.
    #[error("cannot start script workers: {0}")]
    Pool(std::io::Error),
}

/// Every channel, running.
pub struct Runtime {
    channels: Vec<RunningChannel>,
    store: Arc<dyn Store>,
    sources: JoinSet<()>,
    workers: JoinSet<()>,
    stop_sources: CancellationToken,
    stop_workers: CancellationToken,
}

/// Channels in an order where each comes after the channels it `depends_on` (config validation
/// has already rejected unknown names; a cycle falls back to file order for the rest).
fn start_order(configs: &[ChannelConfig]) -> Vec<&ChannelConfig> {
    let mut ordered: Vec<&ChannelConfig> = Vec::new();
    let mut left: Vec<&ChannelConfig> = configs.iter().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|c| {
            c.depends_on
                .iter()
                .all(|d| ordered.iter().any(|o| &o.name == d))
        });
        let next = left.remove(ready.unwrap_or(0));
        ordered.push(next);
    }
    ordered
}

impl Runtime {
    /// Compile every channel, start its workers, then its source.
    pub async fn start(
        configs: &[ChannelConfig],
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        let pipelines = configs
            .iter()
            .map(|c| Pipeline::build(c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = Arc::new(WorkerPool::new(threads, 1024).map_err(StartError::Pool)?);
        let directory = Arc::new(ChannelDirectory::default());
        let mut rt = Runtime {
            channels: Vec::new(),
            store: Arc::clone(&store),
            sources: JoinSet::new(),
            workers: JoinSet::new(),
            stop_sources: CancellationToken::new(),
            stop_workers: CancellationToken::new(),
        };
        for config in start_order(configs) {
            let Some(pipeline) = pipelines.iter().find(|p| p.channel() == config.name) else {
                continue;
            };
            let running = start_workers(
                config,
                Arc::clone(pipeline),
                Arc::clone(&store),
                Arc::clone(&pool),
                &directory,
                &mut rt.workers,
                &rt.stop_workers,
            )
            .map_err(|source| StartError::Destination {
                channel: config.name.clone(),
                source,
            })?;
            let started = source::start(
                &config.source.kind,
                Arc::clone(&running.shared),
                &mut rt.sources,
                &rt.stop_sources,
            )
            .await;
            rt.channels.push(running);
            if let Err(e) = started {
                rt.shutdown().await;
                return Err(e.into());
            }
            info!(channel = %config.name, "channel started");
        }
        Ok(rt)
    }

    /// The running channels.
    pub fn channels(&self) -> &[RunningChannel] {
        &self.channels
    }

    /// The store all channels share.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stop accepting, let in-flight messages finish, stop the workers and flush the store.
    pub async fn shutdown(mut self) {
        self.stop_sources.cancel();
        if tokio::time::timeout(DRAIN_TIMEOUT, async {
            while self.sources.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!(
                "sources did not finish in time; their messages are stored and resume at restart"
            );
            self.sources.abort_all();
        }
        self.stop_workers.cancel();
        while self.workers.join_next().await.is_some() {}
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "final store flush failed");
        }
        info!("all channels stopped");
    }
}
