//! `junction run`: start every channel with the durable store, until Ctrl-C or SIGTERM; SIGHUP
//! reloads the channels folder; `--admin` serves the admin HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use junction_runtime::{admin, Runtime};
use junction_store::{SledStore, Store};
use tracing::{error, info, warn};

/// Arguments of `junction run`.
#[derive(Args)]
pub struct RunArgs {
    /// Folder of channel YAML files.
    #[arg(long, default_value = "channels")]
    channels: PathBuf,
    /// Folder of the durable store (created if missing).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Serve the admin HTTP API on this address (e.g. 127.0.0.1:9090). Needs a token from
    /// JUNCTION_ADMIN_TOKEN or --admin-token-file; without one the API stays off.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// File of admin API tokens (instead of JUNCTION_ADMIN_TOKEN): one per line, `NAME TOKEN`, or a
    /// bare `TOKEN` named `admin`; the audit log records the name of the token each request used.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
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
        // Registered before anything can accept a message, so a Ctrl-C or SIGTERM during start-up is
        // held until the channels are up and then stops them cleanly, instead of killing the process.
        let mut signals = Signals::new();
        // A large store can take a while to open: say what the engine is waiting for.
        info!(data = %args.data.display(), "opening the store");
        let store: Arc<dyn Store> = match SledStore::open(args.data.join("store")) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                error!(data = %args.data.display(), error = %e, "cannot open the store");
                return ExitCode::FAILURE;
            }
        };
        let engine = match Runtime::new(store) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                error!(error = %e, "engine did not start");
                return ExitCode::FAILURE;
            }
        };
        // The admin API comes up first so /health answers 503 while channels start.
        let admin = start_admin(&args, &engine).await;
        let code = match engine.start_all(&configs).await {
            Ok(()) => {
                info!(channels = engine.channels().len(), data = %args.data.display(), "junction running");
                while let Signal::Reload = signals.next().await {
                    info!("SIGHUP: reloading channels");
                    if let Err(e) = engine.reload(&args.channels).await {
                        error!("reload refused: {e}");
                    }
                }
                info!("stopping: no new messages; finishing in-flight ones");
                engine.shutdown().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!(error = %e, "engine did not start");
                ExitCode::FAILURE
            }
        };
        if let Some((stop, task)) = admin {
            let _ = stop.send(());
            let _ = task.await;
        }
        code
    })
}

/// The admin API's stop signal and task.
type AdminHandle = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// Start the admin API when `--admin` is given and a token is configured. Problems are logged and
/// leave the engine running without the API: the channels matter more than their dashboard.
async fn start_admin(args: &RunArgs, engine: &Arc<Runtime>) -> Option<AdminHandle> {
    let addr = args.admin?;
    let tokens = match crate::status::admin_tokens(args.admin_token_file.as_deref()) {
        Ok(tokens) if !tokens.is_empty() => tokens,
        Ok(_) => {
            warn!(%addr, "admin API not started: no token configured (set JUNCTION_ADMIN_TOKEN or --admin-token-file)");
            return None;
        }
        Err(e) => {
            error!(%addr, "admin API not started: {e}");
            return None;
        }
    };
    let listener = match admin::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            error!(%addr, error = %e, "admin API not started: cannot listen");
            return None;
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = admin::AdminConfig {
        tokens,
        channels_dir: args.channels.clone(),
        data_dir: args.data.clone(),
    };
    let task = tokio::spawn(admin::serve(
        listener,
        config,
        Arc::clone(engine),
        async move {
            let _ = stopped.await;
        },
    ));
    Some((stop, task))
}

/// What a process signal asks for.
enum Signal {
    /// Ctrl-C or SIGTERM: stop cleanly.
    Stop,
    /// SIGHUP: re-read the channels folder.
    Reload,
}

/// The process signals `junction run` listens to.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next signal.
    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(self.int.as_mut()) => Signal::Stop,
                _ = recv(self.term.as_mut()) => Signal::Stop,
                _ = recv(self.hup.as_mut()) => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
