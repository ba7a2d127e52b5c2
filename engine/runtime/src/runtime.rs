//! Starting and stopping channels: each channel has its own stop signals and tasks, so a reload can
//! stop, start or restart one channel while the others keep running. Sources start after their
//! workers and stop before them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use junction_config::ChannelConfig;
use junction_store::Store;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::{start_workers, RunningChannel, WorkerContext};
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
        source: Box<crate::destination::ConnectorError>,
    },
    /// The script worker threads could not be started.
    #[error("cannot start script workers: {0}")]
    Pool(std::io::Error),
}

/// Where the engine is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Channels are being started.
    Starting,
    /// Every channel is running.
    Running,
    /// A reload is stopping and starting channels.
    Reloading,
    /// Shutting down.
    Stopping,
}

impl EngineState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Starting,
            1 => Self::Running,
            2 => Self::Reloading,
            _ => Self::Stopping,
        }
    }

    /// Lower-case name, as the admin API reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Reloading => "reloading",
            Self::Stopping => "stopping",
        }
    }
}

/// One channel's tasks and the signals that stop them.
pub(crate) struct ChannelHandle {
    pub(crate) running: Arc<RunningChannel>,
    pub(crate) pipeline: Arc<Pipeline>,
    /// What the channel was built from, to tell whether a reload changed it.
    pub(crate) fingerprint: String,
    sources: JoinSet<()>,
    workers: JoinSet<()>,
    stop_sources: CancellationToken,
    stop_workers: CancellationToken,
}

impl ChannelHandle {
    /// Stop taking messages and let in-flight ones be stored and answered.
    async fn stop_sources(&mut self) {
        self.stop_sources.cancel();
        let sources = &mut self.sources;
        if tokio::time::timeout(DRAIN_TIMEOUT, async {
            while sources.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            warn!(channel = %self.running.config.name,
                "source did not finish in time; its messages are stored and resume at restart");
            self.sources.abort_all();
        }
    }

    /// Stop the workers once the inbox is processed; queued outbox entries stay in the store.
    async fn stop_workers(&mut self) {
        self.stop_workers.cancel();
        while self.workers.join_next().await.is_some() {}
    }

    /// Stop the channel: sources first, then workers.
    pub(crate) async fn stop(mut self) {
        self.stop_sources().await;
        self.stop_workers().await;
        info!(channel = %self.running.config.name, "channel stopped");
    }

    /// Stop taking messages, keeping the workers running (a removed channel's first step, see [`retire`]).
    pub(crate) async fn close(&mut self) {
        self.stop_sources().await;
    }
}

/// Let removed channels (their sources already closed) deliver what their inbox and destination queues
/// hold, all at once, until every one of them is empty or `limit` has passed: their workers all run
/// until then, so a hand-over from one removed channel to another still finds it. Then stop the
/// workers in the given order and warn about each channel that left messages queued.
pub(crate) async fn retire(store: &dyn Store, channels: Vec<ChannelHandle>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let empty = || channels.iter().all(|h| queued(store, &h.running) == (0, 0));
    while !empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mut handle in channels {
        handle.stop_workers().await;
        let name = &handle.running.config.name;
        info!(channel = %name, "channel stopped");
        let (inbox, outboxes) = queued(store, &handle.running);
        if inbox + outboxes > 0 {
            warn!(channel = %name, inbox, outboxes, drain_seconds = limit.as_secs(),
                "removed channel did not drain; its queued messages are kept and resume if the channel is added back");
        }
    }
}

/// Messages a channel still holds: (inbox depth, sum of its destination queue depths).
pub(crate) fn queued(store: &dyn Store, running: &RunningChannel) -> (u64, u64) {
    let name = &running.config.name;
    let inbox = store.inbox_stats(name).map_or(0, |s| s.depth);
    let outboxes = running
        .destinations
        .iter()
        .filter_map(|d| store.outbox_stats(name, &d.name).ok())
        .map(|s| s.depth)
        .sum();
    (inbox, outboxes)
}

/// Every channel, running. Shared (`Arc<Runtime>`) between the main task, the admin API and the
/// reload trigger; readers never wait for a reload in progress.
pub struct Runtime {
    store: Arc<dyn Store>,
    pool: Arc<WorkerPool>,
    directory: Arc<ChannelDirectory>,
    /// The channels in start order. Held across a whole reload or shutdown so they never overlap.
    pub(crate) set: tokio::sync::Mutex<Vec<ChannelHandle>>,
    /// The running channels as readers see them.
    view: RwLock<Vec<Arc<RunningChannel>>>,
    state: AtomicU8,
    /// Configured channels that are not running because the last reload could not start them.
    down: RwLock<Vec<String>>,
}

/// Channels in an order where each comes after the channels it `depends_on` (config validation
/// has already rejected unknown names and cycles; were one to slip through, file order decides).
pub(crate) fn start_order(configs: &[ChannelConfig]) -> Vec<&ChannelConfig> {
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

/// Everything a channel's behaviour depends on, as text. `ChannelConfig` has no `PartialEq` (it
/// holds compiled regexes), but its `Debug` form lists every field, including the YAML text and
/// the script sources. What lives in other files is added: lookup tables, the channel's FHIR maps
/// folder, and, when a script imports modules, every module under `scripts/` (which ones an import
/// reaches is known only to the compiler); key files are named without their bytes, so their ids are
/// added.
pub(crate) fn fingerprint(config: &ChannelConfig) -> String {
    let mut out = format!("{config:?}");
    for id in crate::encryption::key_ids(config) {
        out.push_str(&id.to_string());
    }
    let mut files: Vec<PathBuf> = config.tables.values().cloned().collect();
    let imports = scripts(config).any(|s| s.source.contains("import"));
    if imports {
        files.extend(files_under(&crate::base_dir(config).join("scripts")));
    }
    if let Some(maps) = &config.fhir_maps {
        files.extend(files_under(maps));
    }
    for path in files {
        out.push_str(&path.to_string_lossy());
        out.push_str(&String::from_utf8_lossy(
            &std::fs::read(&path).unwrap_or_default(),
        ));
    }
    out
}

/// The channel's scripts and its destinations'.
fn scripts(config: &ChannelConfig) -> impl Iterator<Item = &junction_config::Script> {
    config.filter.iter().chain(&config.transform).chain(
        config
            .destinations
            .iter()
            .flat_map(|d| d.filter.iter().chain(&d.transform)),
    )
}

/// Every file below `dir`, in a stable order; none when it cannot be read.
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files.sort();
    files
}

/// Compile every channel's scripts; all errors, not just the first.
pub(crate) fn build_all(configs: &[ChannelConfig]) -> Result<Vec<Arc<Pipeline>>, Vec<BuildError>> {
    let mut pipelines = Vec::new();
    let mut errors = Vec::new();
    for config in configs {
        match Pipeline::build(config) {
            Ok(p) => pipelines.push(Arc::new(p)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(pipelines)
    } else {
        Err(errors)
    }
}

impl Runtime {
    /// An engine with no channels yet (state `starting`), over `store`.
    pub fn new(store: Arc<dyn Store>) -> Result<Self, StartError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = Arc::new(WorkerPool::new(threads, 1024).map_err(StartError::Pool)?);
        Ok(Runtime {
            store,
            pool,
            directory: Arc::new(ChannelDirectory::default()),
            set: tokio::sync::Mutex::new(Vec::new()),
            view: RwLock::new(Vec::new()),
            state: AtomicU8::new(0),
            down: RwLock::new(Vec::new()),
        })
    }

    /// Compile every channel, start its workers, then its source, in `depends_on` order.
    pub async fn start(
        configs: &[ChannelConfig],
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        let rt = Self::new(store)?;
        rt.start_all(configs).await?;
        Ok(rt)
    }

    /// Start `configs` on an engine made by [`Runtime::new`]; on failure every channel started so
    /// far is stopped again.
    pub async fn start_all(&self, configs: &[ChannelConfig]) -> Result<(), StartError> {
        crate::encryption::install_all(self.store.as_ref(), configs);
        let pipelines =
            build_all(configs).map_err(|mut errors| StartError::Build(errors.remove(0)))?;
        let mut set = self.set.lock().await;
        for config in start_order(configs) {
            let Some(pipeline) = pipelines.iter().find(|p| p.channel() == config.name) else {
                continue;
            };
            match self.start_channel(config, Arc::clone(pipeline), None).await {
                Ok(handle) => set.push(handle),
                Err(e) => {
                    self.stop_all(&mut set).await;
                    return Err(e);
                }
            }
        }
        self.publish(&set);
        self.set_state(EngineState::Running);
        Ok(())
    }

    /// Start one channel's workers, then its source. `previous` carries counters over a restart.
    pub(crate) async fn start_channel(
        &self,
        config: &ChannelConfig,
        pipeline: Arc<Pipeline>,
        previous: Option<&RunningChannel>,
    ) -> Result<ChannelHandle, StartError> {
        crate::encryption::install(self.store.as_ref(), config);
        let mut workers = JoinSet::new();
        let mut sources = JoinSet::new();
        let stop_workers = CancellationToken::new();
        let stop_sources = CancellationToken::new();
        let ctx = WorkerContext {
            store: &self.store,
            pool: &self.pool,
            directory: &self.directory,
        };
        let running = start_workers(
            config,
            Arc::clone(&pipeline),
            &ctx,
            previous,
            &mut workers,
            &stop_workers,
        )
        .map_err(|source| StartError::Destination {
            channel: config.name.clone(),
            source: Box::new(source),
        })?;
        let running = Arc::new(running);
        workers.spawn(crate::alerts::watch(
            Arc::clone(&running),
            stop_workers.clone(),
        ));
        // Per channel, so a reload that changes `retention` restarts its pruning with the new rule.
        workers.spawn(crate::retention::run(
            Arc::clone(&self.store),
            crate::retention::policies(std::slice::from_ref(config)),
            stop_workers.clone(),
        ));
        let mut handle = ChannelHandle {
            running: Arc::clone(&running),
            pipeline,
            fingerprint: fingerprint(config),
            sources: JoinSet::new(),
            workers,
            stop_sources: stop_sources.clone(),
            stop_workers,
        };
        let started = source::start(
            &config.source.kind,
            Arc::clone(&running.shared),
            &mut sources,
            &stop_sources,
        )
        .await;
        handle.sources = sources;
        if let Err(e) = started {
            handle.stop().await;
            return Err(e.into());
        }
        info!(channel = %config.name, "channel started");
        Ok(handle)
    }

    /// Make `set` what readers see.
    pub(crate) fn publish(&self, set: &[ChannelHandle]) {
        let channels = set.iter().map(|h| Arc::clone(&h.running)).collect();
        if let Ok(mut view) = self.view.write() {
            *view = channels;
        }
    }

    pub(crate) fn set_state(&self, state: EngineState) {
        self.state.store(state as u8, Ordering::SeqCst);
    }

    /// Where the engine is in its life.
    pub fn state(&self) -> EngineState {
        EngineState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Record which configured channels are not running.
    pub(crate) fn set_down(&self, names: Vec<String>) {
        if let Ok(mut down) = self.down.write() {
            *down = names;
        }
    }

    /// Configured channels that are not running (their start failed at the last reload).
    pub fn down(&self) -> Vec<String> {
        self.down.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// Ready for traffic: every configured channel started and no reload or shutdown under way.
    pub fn is_ready(&self) -> bool {
        self.state() == EngineState::Running && self.down().is_empty()
    }

    /// The running channels, in start order.
    pub fn channels(&self) -> Vec<Arc<RunningChannel>> {
        self.view.read().map(|v| v.clone()).unwrap_or_default()
    }

    /// The running channel called `name`.
    pub fn channel(&self, name: &str) -> Option<Arc<RunningChannel>> {
        self.channels().into_iter().find(|c| c.config.name == name)
    }

    /// The store all channels share.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Stop every channel in `set`: all sources first (dependents before what they depend on), then
    /// all workers, so messages handed between channels during shutdown still find a worker.
    async fn stop_all(&self, set: &mut Vec<ChannelHandle>) {
        for handle in set.iter() {
            handle.stop_sources.cancel();
        }
        for handle in set.iter_mut().rev() {
            handle.stop_sources().await;
        }
        for handle in set.iter_mut().rev() {
            handle.stop_workers().await;
            info!(channel = %handle.running.config.name, "channel stopped");
        }
        set.clear();
        self.publish(set);
    }

    /// Stop accepting, let in-flight messages finish, stop the workers and flush the store.
    pub async fn shutdown(&self) {
        self.set_state(EngineState::Stopping);
        let mut set = self.set.lock().await;
        self.stop_all(&mut set).await;
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "final store flush failed");
        }
        info!("all channels stopped");
    }
}
