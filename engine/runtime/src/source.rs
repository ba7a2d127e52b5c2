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
use crate::http_serve;
use crate::metrics::inc;
use crate::now_millis;
use crate::pipeline::Verdict;
use crate::publish;

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
    match store_and_answer(ch, payload, header, invalid).await {
        Answer::NotStored(reason) => Outcome::Error(reason),
        Answer::Stored(outcome) => outcome,
    }
}

/// What became of one message handed to a source: whether it is in the store decides whether a
/// file source may offer it again.
enum Answer {
    /// Not stored (paused channel, store failure): the sender still holds the only copy.
    NotStored(String),
    /// Stored durably; the answer the ACK policy gives.
    Stored(Outcome),
}

async fn store_and_answer(
    ch: &ChannelShared,
    payload: &[u8],
    header: Option<&MshHeader>,
    invalid: Option<String>,
) -> Answer {
    if ch.paused.load(Ordering::Relaxed) {
        return Answer::NotStored(format!("channel {} is paused", ch.name));
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
    let wants_verdict = ch.ack == AckMode::Processed && invalid.is_none();
    // The inbox worker may lease the message as soon as it is written (its idle poll needs no
    // wake-up), so under `ack: processed` the waiter is registered when the store announces the
    // sequence id, before the message is visible: otherwise a fast worker could answer nobody and the
    // sender would wait forever. The lock is held for the map insert only, not across the write.
    let mut wait = None;
    let received = ch
        .store
        .receive_announced(&ch.name, payload, meta, &mut |seq| {
            if wants_verdict {
                let (tx, rx) = oneshot::channel();
                ch.waiting().insert(seq, tx);
                wait = Some((seq, rx));
            }
        });
    // A sender told the message was not stored is not waiting for its verdict.
    let forget = |wait: &Option<(u64, _)>| {
        if let Some((seq, _)) = wait {
            ch.waiting().remove(seq);
        }
    };
    let pending = match received {
        Ok(p) => p,
        Err(e) => {
            forget(&wait);
            error!(channel = %ch.name, control_id, error = %e, "cannot store message");
            return Answer::NotStored(String::from("message could not be stored"));
        }
    };
    if let Err(e) = pending.durable().await {
        forget(&wait);
        error!(channel = %ch.name, control_id, error = %e, "message not durable; answering with an error");
        return Answer::NotStored(String::from("message could not be stored"));
    }
    inc(&ch.metrics.received);
    ch.inbox.notify_one();
    Answer::Stored(match (invalid, ch.ack, wait.map(|(_, rx)| rx)) {
        (Some(reason), _, _) => Outcome::Reject(reason),
        (None, AckMode::None, _) => Outcome::NoAck,
        (None, _, Some(rx)) => match rx.await {
            Ok(Verdict::Accept) => Outcome::Accept,
            Ok(Verdict::Error(reason)) => Outcome::Error(reason),
            Ok(Verdict::Reject(reason)) => Outcome::Reject(reason),
            // The engine is stopping before the message was processed; it is stored and will be
            // processed after restart, but the sender cannot be told it was.
            Err(_) => Outcome::Error(String::from(
                "engine stopping; message stored, not yet processed",
            )),
        },
        (None, _, None) => Outcome::Accept,
    })
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

/// Poll a folder and read each file matching the pattern, in name order (see [`read_file`]).
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
            // Between files, so a pause or stop never turns the rest of a listing into refusals.
            if stop.is_cancelled() || ch.paused.load(Ordering::Relaxed) {
                break;
            }
            let outcome = read_file(&ch, &path, &stop).await;
            settle_file(&ch, &f.dir, &path, outcome);
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
        // Hidden files are files still being written (rsync, SFTP uploads, our own remainders).
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && pattern.matches(&name)
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// How far the channel got with one file.
enum FileOutcome {
    /// Every message was taken (stored; under `ack: processed` also processed without error).
    Done(usize),
    /// Not readable as HL7 at all; nothing was stored.
    Unreadable(String),
    /// Reading stopped at a message that was not taken. The first `stored` messages are in the store
    /// (whatever became of them there); `rest` holds every later message, from 1-based `from` on.
    Stopped {
        stored: usize,
        from: usize,
        rest: Vec<Vec<u8>>,
        /// Content-free: the full reason of a message that errored is on its record.
        reason: String,
    },
    /// The engine began stopping between two messages: the first `stored` are in the store, `rest`
    /// (from 1-based `from` on) has not been offered.
    Interrupted {
        stored: usize,
        from: usize,
        rest: Vec<Vec<u8>>,
    },
}

/// Offer a file's messages one by one. A message that is stored is never offered again, so
/// reading stops at the first one the channel did not take: one that could not be stored (paused
/// channel, store failure), or under `ack: processed` one whose processing ended in AE/AR (it is
/// stored as errored, with the reason, for `junction messages`; later messages must not overtake it).
/// A stop is honoured between messages, so a large file never holds the engine's shutdown.
async fn read_file(
    ch: &ChannelShared,
    path: &std::path::Path,
    stop: &CancellationToken,
) -> FileOutcome {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return FileOutcome::Unreadable(e.to_string()),
    };
    let batch = match junction_hl7::split_batch(&bytes) {
        Ok(b) if b.messages.is_empty() => {
            return FileOutcome::Unreadable(String::from("the file holds no HL7 message"))
        }
        Ok(b) => b,
        Err(e) => return FileOutcome::Unreadable(e.to_string()),
    };
    let total = batch.messages.len();
    let mut messages = batch.messages.into_iter();
    let mut index = 0;
    while let Some(message) = messages.next() {
        if stop.is_cancelled() {
            return FileOutcome::Interrupted {
                stored: index,
                from: index + 1,
                rest: std::iter::once(message).chain(messages).collect(),
            };
        }
        index += 1;
        let header = MshHeader::peek(&message);
        let (stored, reason) = match store_and_answer(ch, &message, header.as_ref(), None).await {
            Answer::Stored(Outcome::Accept | Outcome::NoAck) => continue,
            Answer::Stored(Outcome::Error(_) | Outcome::Reject(_)) => (
                index,
                format!(
                    "message {index} (control id {}) errored in processing under ack: processed; its record has the reason",
                    header.map(|h| h.control_id).unwrap_or_default()
                ),
            ),
            Answer::NotStored(reason) => (index - 1, reason),
        };
        let rest = (stored < index)
            .then_some(message)
            .into_iter()
            .chain(messages)
            .collect();
        return FileOutcome::Stopped {
            stored,
            from: stored + 1,
            rest,
            reason,
        };
    }
    FileOutcome::Done(total)
}

/// Move a read file out of the folder: to `processed/` when some of it was stored, to `error/` when
/// none was. Messages that were not stored after others were go to `error/<stem>.from-<k>.<ext>`
/// (k: the first one's position in the file), so dropping that file back in stores each exactly once.
fn settle_file(
    ch: &ChannelShared,
    dir: &std::path::Path,
    path: &std::path::Path,
    outcome: FileOutcome,
) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = match outcome {
        FileOutcome::Done(count) => {
            info!(channel = %ch.name, file = %name, messages = count, "file read; moved to processed/");
            "processed"
        }
        FileOutcome::Unreadable(reason) => {
            warn!(channel = %ch.name, file = %name, error = %reason, "file not readable as HL7; moved to error/");
            "error"
        }
        FileOutcome::Stopped {
            stored: 0, reason, ..
        } => {
            warn!(channel = %ch.name, file = %name, error = %reason, "no message of the file stored; moved to error/");
            "error"
        }
        FileOutcome::Stopped {
            stored,
            rest,
            reason,
            ..
        } if rest.is_empty() => {
            warn!(channel = %ch.name, file = %name, messages = stored, error = %reason, "file read; moved to processed/");
            "processed"
        }
        FileOutcome::Stopped {
            stored,
            from,
            rest,
            reason,
        } => {
            let Some(remainder) = set_aside(ch, &dir.join("error"), path, from, &rest) else {
                return;
            };
            warn!(channel = %ch.name, file = %name, messages = stored, remainder = %remainder, error = %reason,
                "file read in part; the messages not stored are in error/, the file moved to processed/");
            "processed"
        }
        // Nothing of it was taken: the file is read whole after the restart.
        FileOutcome::Interrupted { stored: 0, .. } => return,
        // The unread part stays in the folder under a name that sorts beside the original's, so the
        // restarted engine goes on where this one stopped instead of storing the first part again.
        FileOutcome::Interrupted { stored, from, rest } => {
            let Some(remainder) = set_aside(ch, dir, path, from, &rest) else {
                return;
            };
            info!(channel = %ch.name, file = %name, messages = stored, remainder = %remainder,
                "stopping part-way through a file; the unread messages stay in the folder, the file moved to processed/");
            "processed"
        }
    };
    if let Err(e) = std::fs::rename(path, dir.join(target).join(&name)) {
        error!(channel = %ch.name, file = %name, error = %e, "cannot move file");
    }
}

/// Writes the messages of `path` from the `from`th on to a new file in `dir` (see [`publish::write_new`]) and
/// returns its name; `None` (logged) when that fails, and the caller leaves the file in place: read
/// again whole, its first messages would be stored twice, which is better than losing the rest.
fn set_aside(
    ch: &ChannelShared,
    dir: &std::path::Path,
    path: &std::path::Path,
    from: usize,
    rest: &[Vec<u8>],
) -> Option<String> {
    let names = (1..).map(|n| remainder_name(path, from, n));
    publish::write_new(dir, names.take(1000), &rest.concat())
        .map_err(|e| {
            error!(channel = %ch.name, file = %path.file_name().unwrap_or_default().to_string_lossy(), error = %e,
                "cannot write the unread remainder of a file; file left in place");
        })
        .ok()
}

/// `adt.hl7` -> `adt.from-3.hl7` (the `n`th such remainder: `adt.from-3-n.hl7`): still matches the
/// folder's pattern when dropped back in.
fn remainder_name(path: &std::path::Path, from: usize, n: usize) -> String {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let from = if n > 1 {
        format!("from-{from}-{n}")
    } else {
        format!("from-{from}")
    };
    publish::variant(&name, &from)
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
    let what = format!("channel {} HTTP source", ch.name);
    http_serve::serve(listener, app, &what, stop.cancelled(), DRAIN_TIMEOUT).await;
}

/// POST an HL7 message: the response body is its ACK (200 for AA, 400 for AR, 500 for AE). A body
/// that does not arrive in time or is over the MLLP frame limit is refused before anything is stored.
async fn http_message(
    axum::extract::State(ch): axum::extract::State<Arc<ChannelShared>>,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let limit = FramingConfig::default().max_frame_length;
    let body =
        match tokio::time::timeout(http_serve::BODY_TIMEOUT, axum::body::to_bytes(body, limit))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the message is over {limit} bytes\n"),
                )
                    .into_response()
            }
            Err(_) => {
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    "the message did not arrive in time\n",
                )
                    .into_response()
            }
        };
    answer_http(&ch, body).await.into_response()
}

/// Stores and answers one HL7 message posted to the HTTP source.
async fn answer_http(
    ch: &ChannelShared,
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
        Some(_) => junction_hl7::MessageBuf::check(&body)
            .err()
            .map(|e| e.to_string()),
    };
    let outcome = accept(ch, &body, header.as_ref(), invalid).await;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::remainder_name;
    use std::path::Path;

    #[test]
    fn a_remainder_keeps_the_extension_so_the_folder_pattern_still_matches() {
        assert_eq!(
            remainder_name(Path::new("in/day.hl7"), 3, 1),
            "day.from-3.hl7"
        );
        assert_eq!(
            remainder_name(Path::new("in/a.b.txt"), 12, 1),
            "a.b.from-12.txt"
        );
        assert_eq!(remainder_name(Path::new("in/batch"), 2, 1), "batch.from-2");
        assert_eq!(
            remainder_name(Path::new("in/day.hl7"), 3, 2),
            "day.from-3-2.hl7"
        );
    }
}
