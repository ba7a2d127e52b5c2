//! Reload: re-read the channels folder, validate all of it, then close removed channels' sources,
//! restart changed channels, start added ones, and only then let the removed channels deliver what
//! they had queued (together, for up to [`REMOVED_CHANNEL_DRAIN`]) before their workers stop. Queues
//! live in the store, so a restarted channel's new workers pick up exactly where the old ones stopped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use junction_config::ChannelConfig;
use tracing::{error, info, warn};

use crate::channel::RunningChannel;
use crate::pipeline::Pipeline;
use crate::runtime::{build_all, fingerprint, retire, start_order, ChannelHandle, EngineState};

/// How long removed channels keep delivering what their destinations had queued before they stop.
/// Bounded because the reload (and every later reload) waits for it; the other channels are already up.
pub const REMOVED_CHANNEL_DRAIN: Duration = Duration::from_secs(10);
use crate::Runtime;

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Channels started because they are new.
    pub added: Vec<String>,
    /// Channels stopped because their file is gone.
    pub removed: Vec<String>,
    /// Channels restarted because their configuration, scripts or tables changed.
    pub restarted: Vec<String>,
    /// Channels left running untouched.
    pub unchanged: Vec<String>,
    /// Channels that passed validation but could not start (e.g. port in use). A changed channel
    /// that fails goes back to its previous configuration; a new one stays stopped.
    pub failed: Vec<String>,
}

/// Why nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration or a script is invalid; the running channels are unchanged.
    #[error("channel configuration is invalid; the running channels are unchanged:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The engine is shutting down.
    #[error("the engine is stopping; nothing reloaded")]
    Stopping,
}

impl Runtime {
    /// Re-read `dir` and apply it. Validation (loading and compiling every channel) happens first,
    /// so an invalid folder leaves the running set as it was.
    pub async fn reload(&self, dir: &Path) -> Result<ReloadReport, ReloadError> {
        let configs = junction_config::load_dir(dir)
            .map_err(|d| ReloadError::Invalid(d.iter().map(ToString::to_string).collect()))?;
        let pipelines = build_all(&configs).map_err(|errors| {
            ReloadError::Invalid(errors.iter().map(ToString::to_string).collect())
        })?;
        let mut set = self.set.lock().await;
        if self.state() == EngineState::Stopping {
            return Err(ReloadError::Stopping);
        }
        self.set_state(EngineState::Reloading);
        let (report, removed) = self.apply(&mut set, &configs, &pipelines).await;
        self.publish(&set);
        self.set_down(
            configs
                .iter()
                .filter(|c| !set.iter().any(|h| h.running.config.name == c.name))
                .map(|c| c.name.clone())
                .collect(),
        );
        retire(self.store().as_ref(), removed, REMOVED_CHANNEL_DRAIN).await;
        self.set_state(EngineState::Running);
        info!(
            added = report.added.len(),
            removed = report.removed.len(),
            restarted = report.restarted.len(),
            unchanged = report.unchanged.len(),
            failed = report.failed.len(),
            "configuration reloaded"
        );
        Ok(report)
    }

    /// Everything but the removed channels' drain: returns the report and the removed channels, sources
    /// closed and workers still running, dependents first.
    async fn apply(
        &self,
        set: &mut Vec<ChannelHandle>,
        configs: &[ChannelConfig],
        pipelines: &[Arc<Pipeline>],
    ) -> (ReloadReport, Vec<ChannelHandle>) {
        let mut report = ReloadReport::default();
        let mut keep = Vec::new();
        let mut to_stop = Vec::new();
        // Dependents stop before the channels they depend on.
        for handle in std::mem::take(set).into_iter().rev() {
            let name = handle.running.config.name.clone();
            match configs.iter().find(|c| c.name == name) {
                None => {
                    report.removed.push(name);
                    to_stop.push(handle);
                }
                Some(c) if fingerprint(c) != handle.fingerprint => {
                    report.restarted.push(name);
                    to_stop.push(handle);
                }
                Some(_) => {
                    report.unchanged.push(name);
                    keep.push(handle);
                }
            }
        }
        let mut previous: HashMap<String, (Arc<RunningChannel>, Arc<Pipeline>)> = HashMap::new();
        let mut removed = Vec::new();
        for mut handle in to_stop {
            let running = Arc::clone(&handle.running);
            let pipeline = Arc::clone(&handle.pipeline);
            let name = running.config.name.clone();
            if report.removed.contains(&name) {
                // Its port is free from here on, for a channel this reload adds.
                handle.close().await;
                removed.push(handle);
            } else {
                handle.stop().await;
                previous.insert(name, (running, pipeline));
            }
        }
        for config in start_order(configs) {
            if let Some(pos) = keep
                .iter()
                .position(|h| h.running.config.name == config.name)
            {
                set.push(keep.swap_remove(pos));
                continue;
            }
            let Some(pipeline) = pipelines.iter().find(|p| p.channel() == config.name) else {
                continue;
            };
            let prev = previous.get(&config.name);
            match self
                .start_channel(config, Arc::clone(pipeline), prev.map(|p| &*p.0))
                .await
            {
                Ok(handle) => {
                    if prev.is_none() {
                        report.added.push(config.name.clone());
                    }
                    set.push(handle);
                }
                Err(e) => {
                    error!(channel = %config.name, error = %e, "channel did not start after reload");
                    report.failed.push(e.to_string());
                    let Some((running, old)) = prev else { continue };
                    match self
                        .start_channel(&running.config, Arc::clone(old), Some(running))
                        .await
                    {
                        Ok(handle) => {
                            warn!(channel = %config.name, "channel kept running its previous configuration");
                            set.push(handle);
                        }
                        Err(e) => {
                            error!(channel = %config.name, error = %e, "channel could not be restarted; it is stopped");
                        }
                    }
                }
            }
        }
        (report, removed)
    }
}
