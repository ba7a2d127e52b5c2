//! `junction listen`: a standalone MLLP listener that acknowledges every message and shows what arrived.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use junction_hl7::Charset;
use junction_net::{
    CancellationToken, Handler, Inbound, Listener, ListenerConfig, Outcome, ServerTls,
};

/// Options of `junction listen`.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// TCP port to listen on.
    #[arg(long)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Append received messages to FILE instead of printing them on stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Most connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

/// Writes each accepted message as UTF-8 (segments on their own lines, a blank line after) to the output.
struct Printer {
    out: Mutex<Output>,
}

/// The destination and a buffer reused for every message's text.
struct Output {
    to: Box<dyn Write + Send>,
    text: Vec<u8>,
}

impl Handler for Printer {
    async fn handle(&self, message: Inbound) -> Outcome {
        if let Some(reason) = &message.invalid {
            eprintln!(
                "junction listen: rejected a message from {}: {reason}",
                message.peer
            );
            return Outcome::Accept;
        }
        let written = match self.out.lock() {
            Ok(mut out) => {
                let Output { to, text } = &mut *out;
                text.clear();
                // Shown as UTF-8 whatever MSH-18 names: the listener checked that it decodes.
                let decoded = Charset::decode_message(&message.payload)
                    .map(|(t, _)| t)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&message.payload));
                text.extend(decoded.bytes().map(|b| if b == b'\r' { b'\n' } else { b }));
                if !text.ends_with(b"\n") {
                    text.push(b'\n');
                }
                text.push(b'\n');
                to.write_all(text).and_then(|()| to.flush())
            }
            Err(_) => Err(std::io::Error::other("output lock poisoned")),
        };
        match written {
            Ok(()) => Outcome::Accept,
            Err(e) => Outcome::Error(format!("cannot write the message: {e}")),
        }
    }
}

/// Runs the listener until Ctrl-C or SIGTERM.
pub fn run(args: ListenArgs) -> ExitCode {
    let out: Box<dyn Write + Send> = match &args.out {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Box::new(file),
            Err(e) => {
                eprintln!("junction listen: cannot open {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::stdout()),
    };
    let mut config = ListenerConfig::new(format!("{}:{}", args.bind, args.port));
    config.max_connections = args.max_connections;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(ServerTls {
            cert,
            key,
            client_ca: args.tls_client_ca,
        });
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("junction listen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match Listener::bind(config).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("junction listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => eprintln!("junction listen: listening on {addr}"),
            Err(e) => eprintln!("junction listen: listening (address unknown: {e})"),
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let printer = Arc::new(Printer {
            out: Mutex::new(Output {
                to: out,
                text: Vec::new(),
            }),
        });
        listener.serve(printer, shutdown).await;
        ExitCode::SUCCESS
    })
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            shutdown.cancel();
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
}
