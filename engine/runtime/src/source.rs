//! Sources: where a channel's messages come from. Each stores a message durably before it is
//! acknowledged, then wakes the channel's inbox worker.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use junction_config::{AckMode, FileSource, HttpSource, MllpSource, SourceKind};
use junction_hl7::ack::{build_ack, next_control_id, AckCode, AckError};
use junction_hl7::MshHeader;
use junction_mllp::FramingConfig;
use junction_net::{AckPolicy, Handler, Inbound, Listener, ListenerConfig, Outcome, ServerTls};
use junction_store::ReceiveMeta;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::channel::ChannelShared;
use crate::metrics::inc;
use crate::now_millis;
use crate::pipeline::Verdict;

/// A source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The MLLP listener could not bind or load TLS.
    #[error("channel {channel}: {source}")]
    Mllp {
        /// Channel name.
        channel: String,
        /// Why.
        source: junction_net::ListenError,
    },
    /// The HTTP listener could not bind.
    #[error("channel {channel}: cannot listen on {addr}: {source}")]
    Http {
        /// Channel name.
        channel: String,
        /// Address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The file source's folder could not be prepared.
    #[error("channel {channel}: cannot use folder {dir}: {source}")]
    Folder {
        /// Channel name.
        channel: String,
        /// The folder.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Store one message durably and answer as the channel's ACK policy says; `header` is its MSH as read.
///
/// `invalid` is set when the source already knows the message cannot be parsed: it is still kept
/// (recorded as errored by the pipeline) and the answer is a rejection.
pub async fn accept(
    ch: &ChannelShared,
    payload: &[u8],
    header: Option<&MshHeader>,
    invalid: Option<String>,
) -> Outcome {
    if ch.paused.load(Ordering::Relaxed) {
        return Outcome::Error(format!("channel {} is paused", ch.name));
    }
    let meta = ReceiveMeta {
        received_at: now_millis(),
        control_id: header.map(|h| h.control_id.clone()),
        message_type: header
            .map(|h| h.message_type.clone())
            .filter(|t| !t.is_empty()),
        reprocess_of: None,
    };
    let control_id = meta.control_id.clone().unwrap_or_default();
    let pending = match ch.store.receive(&ch.name, payload, meta) {
        Ok(p) => p,
        Err(e) => {
            error!(channel = %ch.name, control_id, error = %e, "cannot store message");
            return Outcome::Error(String::from("message could not be stored"));
        }
    };
    let wait = (ch.ack == AckMode::Processed && invalid.is_none()).then(|| {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = ch.waiters.lock() {
            w.insert(pending.seq(), tx);
        }
        rx
    });
    if let Err(e) = pending.durable().await {
        error!(channel = %ch.name, control_id, error = %e, "message not durable; answering with an error");
        return Outcome::Error(String::from("message could not be stored"));
    }
    inc(&ch.metrics.received);
    ch.inbox.notify_one();
    if let Some(reason) = invalid {
        return Outcome::Reject(reason);
    }
    match (ch.ack, wait) {
        (AckMode::None, _) => Outcome::NoAck,
        (AckMode::Processed, Some(rx)) => match rx.await {
            Ok(Verdict::Accept) => Outcome::Accept,
            Ok(Verdict::Error(reason)) => Outcome::Error(reason),
            Ok(Verdict::Reject(reason)) => Outcome::Reject(reason),
            // The engine is stopping before the message was processed; it is stored and will be
            // processed after restart, but the sender cannot be told it was.
            Err(_) => Outcome::Error(String::from(
                "engine stopping; message stored, not yet processed",
            )),
        },
        _ => Outcome::Accept,
    }
}

/// The listener's view of a channel.
struct MllpHandler(Arc<ChannelShared>);

impl Handler for MllpHandler {
    async fn handle(&self, message: Inbound) -> Outcome {
        accept(
            &self.0,
            &message.payload,
            message.header.as_deref(),
            message.invalid,
        )
        .await
    }
}

fn listener_config(m: &MllpSource, ack: AckMode) -> ListenerConfig {
    let mut config = ListenerConfig::new(m.listen.to_string());
    if let Some(max) = m.max_connections {
        config.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
    }
    if let Some(t) = m.read_timeout {
        config.read_timeout = t;
    }
    if m.idle_timeout.is_some() {
        config.idle_timeout = m.idle_timeout;
    }
    config.framing = FramingConfig {
        start_byte: m.start_byte,
        end_byte: m.end_bytes.first().copied().unwrap_or(0x1C),
        trailer: m.end_bytes.get(1).copied(),
        max_frame_length: usize::try_from(m.max_frame_bytes).unwrap_or(usize::MAX),
    };
    config.tls = m.tls.as_ref().map(|t| ServerTls {
        cert: t.cert.clone(),
        key: t.key.clone(),
        client_ca: t.client_ca.clone(),
    });
    if ack == AckMode::None {
        config.ack = AckPolicy::Never;
    }
    config
}

/// Bind the channel's source and start serving it on `tasks`; binding happens now so that a port
/// in use is a start-up error, not a silent background failure.
pub async fn start(
    kind: &SourceKind,
    ch: Arc<ChannelShared>,
    tasks: &mut tokio::task::JoinSet<()>,
    stop: &CancellationToken,
) -> Result<(), SourceError> {
    match kind {
        SourceKind::Mllp(m) => {
            let listener = Listener::bind(listener_config(m, ch.ack))
                .await
                .map_err(|source| SourceError::Mllp {
                    channel: ch.name.clone(),
                    source,
                })?;
            info!(channel = %ch.name, listen = %m.listen, "MLLP source listening");
            let stop = stop.clone();
            tasks.spawn(async move { listener.serve(Arc::new(MllpHandler(ch)), stop).await });
        }
        SourceKind::File(f) => {
            for sub in ["processed", "error"] {
                std::fs::create_dir_all(f.dir.join(sub)).map_err(|source| SourceError::Folder {
                    channel: ch.name.clone(),
                    dir: f.dir.clone(),
                    source,
                })?;
            }
            info!(channel = %ch.name, dir = %f.dir.display(), "file source polling");
            tasks.spawn(poll_folder(f.clone(), ch, stop.clone()));
        }
        SourceKind::Http(h) => {
            let listener = tokio::net::TcpListener::bind(h.listen)
                .await
                .map_err(|source| SourceError::Http {
                    channel: ch.name.clone(),
                    addr: h.listen,
                    source,
                })?;
            info!(channel = %ch.name, listen = %h.listen, path = %h.path, "HTTP source listening");
            tasks.spawn(serve_http(listener, h.clone(), ch, stop.clone()));
        }
    }
    Ok(())
}

/// Poll a folder; each file's messages are stored durably before the file is moved to
/// `processed/` (or to `error/` when it cannot be split into messages).
async fn poll_folder(f: FileSource, ch: Arc<ChannelShared>, stop: CancellationToken) {
    let pattern = match glob::Pattern::new(&f.glob) {
        Ok(p) => p,
        Err(e) => {
            error!(channel = %ch.name, glob = %f.glob, error = %e, "invalid file pattern; file source stopped");
            return;
        }
    };
    while !stop.is_cancelled() {
        // A paused folder is left alone: refusing its files would move them to error/.
        let files = if ch.paused.load(Ordering::Relaxed) {
            Vec::new()
        } else {
            list_files(&f.dir, &pattern)
        };
        for path in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = match read_file_messages(&ch, &path).await {
                Ok(count) => {
                    info!(channel = %ch.name, file = %name, messages = count, "file read");
                    "processed"
                }
                Err(reason) => {
                    warn!(channel = %ch.name, file = %name, error = %reason, "file not readable as HL7; moved to error/");
                    "error"
                }
            };
            if let Err(e) = std::fs::rename(&path, f.dir.join(target).join(&name)) {
                error!(channel = %ch.name, file = %name, error = %e, "cannot move file");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(f.poll) => {}
            _ = stop.cancelled() => return,
        }
    }
}

fn list_files(dir: &std::path::Path, pattern: &glob::Pattern) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| pattern.matches(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

async fn read_file_messages(ch: &ChannelShared, path: &std::path::Path) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let batch = junction_hl7::split_batch(&bytes).map_err(|e| e.to_string())?;
    let count = batch.messages.len();
    for message in batch.messages {
        let header = MshHeader::peek(&message);
        if let Outcome::Error(e) = accept(ch, &message, header.as_ref(), None).await {
            return Err(e);
        }
    }
    Ok(count)
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    h: HttpSource,
    ch: Arc<ChannelShared>,
    stop: CancellationToken,
) {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(&h.path, post(http_message))
        .with_state(Arc::clone(&ch));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        error!(channel = %ch.name, error = %e, "HTTP source stopped");
    }
}

/// POST an HL7 message: the response body is its ACK (200 for AA, 400 for AR, 500 for AE).
async fn http_message(
    axum::extract::State(ch): axum::extract::State<Arc<ChannelShared>>,
    body: Bytes,
) -> (
    axum::http::StatusCode,
    [(&'static str, &'static str); 1],
    Vec<u8>,
) {
    use axum::http::StatusCode;
    let header = MshHeader::peek(&body);
    let invalid = match &header {
        None => Some(String::from("message has no readable MSH segment")),
        Some(_) => junction_hl7::Message::check(&body)
            .err()
            .map(|e| e.to_string()),
    };
    let outcome = accept(&ch, &body, header.as_ref(), invalid).await;
    let (status, code, error) = match &outcome {
        Outcome::Accept | Outcome::NoAck => (StatusCode::OK, AckCode::AA, None),
        Outcome::Error(reason) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            AckCode::AE,
            Some(AckError::new(207, reason.as_str())),
        ),
        Outcome::Reject(reason) => (
            StatusCode::BAD_REQUEST,
            AckCode::AR,
            Some(AckError::new(207, reason.as_str())),
        ),
    };
    let header = header.unwrap_or_default();
    let ack = build_ack(&header, code, error.as_ref(), &next_control_id());
    (status, [("content-type", "x-application/hl7-v2+er7")], ack)
}

/// How long shutdown waits for sources to finish their in-flight messages.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
