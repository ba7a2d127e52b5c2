//! `junction run`: start every channel with the durable store, until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use junction_runtime::Runtime;
use junction_store::{SledStore, Store};
use tracing::{error, info};

/// Arguments of `junction run`.
#[derive(Args)]
pub struct RunArgs {
    /// Folder of channel YAML files.
    #[arg(long, default_value = "channels")]
    channels: PathBuf,
    /// Folder of the durable store (created if missing).
    #[arg(long, default_value = "data")]
    data: PathBuf,
}

/// Run `junction run`.
pub fn run(args: RunArgs) -> ExitCode {
    let configs = match junction_config::load_dir(&args.channels) {
        Ok(c) => c,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!("junction run: channel configuration is invalid; nothing started");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("junction run: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let store: Arc<dyn Store> = match SledStore::open(args.data.join("store")) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                error!(data = %args.data.display(), error = %e, "cannot open the store");
                return ExitCode::FAILURE;
            }
        };
        let engine = match Runtime::start(&configs, store).await {
            Ok(e) => e,
            Err(e) => {
                error!(error = %e, "engine did not start");
                return ExitCode::FAILURE;
            }
        };
        info!(channels = engine.channels().len(), data = %args.data.display(), "junction running");
        wait_for_stop().await;
        info!("stopping: no new messages; finishing in-flight ones");
        engine.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Resolve on Ctrl-C or SIGTERM.
async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
