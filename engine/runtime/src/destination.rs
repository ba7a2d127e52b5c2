//! Destination connectors: how one outbox entry is delivered, and how failures are classified.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use junction_config::{DestinationKind, HttpMethod, OnNak};
use junction_hl7::{MessageBuf, Path};
use junction_net::{ClientTls, Sender, SenderConfig};
use junction_store::{OutboxLease, Store};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::channels::ChannelDirectory;
use crate::publish;

/// How one delivery attempt ended.
#[derive(Debug)]
pub enum Delivery {
    /// Delivered; the peer's answer (ACK, HTTP status and body excerpt) is kept on the record.
    Sent(Option<String>),
    /// Failed in a way that may pass (peer down, 5xx, timeout): retry with backoff.
    Retry(String),
    /// Failed in a way retrying will not fix (4xx, AE/AR with `on_nak: error`): mark errored now.
    Permanent(String),
}

/// A destination's live connection or writer.
pub enum Connector {
    /// Persistent MLLP connection.
    Mllp {
        /// The sender (reconnects itself).
        sender: Box<Sender>,
        /// What an AE/AR means.
        on_nak: OnNak,
    },
    /// One file per message.
    File {
        /// Folder to write into.
        dir: PathBuf,
        /// Name template (`${MSH-10}` etc.).
        name: String,
    },
    /// HTTP request per message.
    Http {
        /// Shared client (connection pool).
        client: reqwest::Client,
        /// Target URL.
        url: reqwest::Url,
        /// Method.
        method: reqwest::Method,
        /// Configured headers; they replace the default `Content-Type` rather than add a second one.
        headers: HeaderMap,
    },
    /// Hand over to another channel's inbox.
    Channel {
        /// Target channel name.
        target: String,
        /// Where to find the target's inbox notifier.
        directory: Arc<ChannelDirectory>,
    },
}

/// The destination could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// MLLP sender setup failed (TLS files, framing).
    #[error("MLLP destination: {0}")]
    Mllp(#[from] junction_net::TransportError),
    /// HTTP client setup failed.
    #[error("HTTP destination: {0}")]
    Http(#[from] reqwest::Error),
    /// The URL does not parse, so no request could ever be sent.
    #[error("HTTP destination: invalid URL {url:?}: {reason}")]
    HttpUrl {
        /// The URL as configured.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A configured header cannot go on the wire (space in the name, newline in the value); its value
    /// is left out of the message because headers often carry credentials.
    #[error("HTTP destination: header {name:?} cannot be sent: {reason}")]
    HttpHeader {
        /// The header name as configured.
        name: String,
        /// Why not.
        reason: String,
    },
    /// `mllp.tls` was given without `ca`, so the server could not be verified.
    #[error(
        "MLLP destination: tls needs `ca` (the CA file that signs the receiver's certificate)"
    )]
    TlsWithoutCa,
}

impl Connector {
    /// Build the connector for a destination's configuration.
    pub fn build(
        kind: &DestinationKind,
        directory: &Arc<ChannelDirectory>,
    ) -> Result<Self, ConnectorError> {
        Ok(match kind {
            DestinationKind::Mllp(m) => {
                let mut config = SenderConfig::new(m.connect.clone());
                config.connect_timeout = m.connect_timeout;
                config.send_timeout = m.send_timeout;
                config.ack_timeout = m.ack_timeout;
                config.keepalive = m.keepalive;
                config.framing.start_byte = m.start_byte;
                config.framing.end_byte = m
                    .end_bytes
                    .first()
                    .copied()
                    .unwrap_or(junction_mllp::END_BYTE);
                config.framing.trailer = m.end_bytes.get(1).copied();
                // The destination worker owns the retry schedule; the sender must not add its own wait.
                config.backoff_initial = Duration::from_millis(1);
                config.backoff_max = Duration::from_millis(1);
                // TLS without a CA to trust is refused rather than quietly sent in clear text.
                config.tls = m
                    .tls
                    .as_ref()
                    .map(|t| {
                        t.ca.clone()
                            .map(|ca| ClientTls {
                                ca,
                                identity: t.cert.clone().zip(t.key.clone()),
                                server_name: None,
                            })
                            .ok_or(ConnectorError::TlsWithoutCa)
                    })
                    .transpose()?;
                Connector::Mllp {
                    sender: Box::new(Sender::new(config)?),
                    on_nak: m.on_nak,
                }
            }
            DestinationKind::File(f) => Connector::File {
                dir: f.dir.clone(),
                name: f.name.clone(),
            },
            DestinationKind::Http(h) => Connector::Http {
                client: reqwest::Client::builder().timeout(h.timeout).build()?,
                url: reqwest::Url::parse(&h.url).map_err(|e| ConnectorError::HttpUrl {
                    url: h.url.clone(),
                    reason: e.to_string(),
                })?,
                method: match h.method {
                    HttpMethod::Post => reqwest::Method::POST,
                    HttpMethod::Put => reqwest::Method::PUT,
                    HttpMethod::Patch => reqwest::Method::PATCH,
                },
                headers: header_map(&h.headers)?,
            },
            DestinationKind::Channel(target) => Connector::Channel {
                target: target.clone(),
                directory: Arc::clone(directory),
            },
        })
    }

    /// Why nothing should be sent now although the peer is not failing: a hand-over whose target channel
    /// is paused (a paused channel takes no new messages, from its sources or from other channels). The
    /// queue waits without spending attempts or tripping the breaker, and moves on once resumed.
    pub fn held(&self, store: &Arc<dyn Store>) -> Option<String> {
        let Connector::Channel { target, .. } = self else {
            return None;
        };
        match store.is_paused(target) {
            Ok(false) => None,
            Ok(true) => Some(format!("channel {target} is paused")),
            Err(e) => Some(format!(
                "cannot read whether channel {target} is paused: {e}"
            )),
        }
    }

    /// Deliver one outbox entry.
    pub async fn deliver(&mut self, lease: &OutboxLease, store: &Arc<dyn Store>) -> Delivery {
        match self {
            Connector::Mllp { sender, on_nak } => match sender.send(lease.payload()).await {
                Ok(Ok(delivered)) => {
                    Delivery::Sent(Some(String::from_utf8_lossy(&delivered.ack).into_owned()))
                }
                Ok(Err(nak)) => {
                    let reason = format!(
                        "{} from {}: {}",
                        nak.code.as_str(),
                        sender.address(),
                        nak.reason.as_deref().unwrap_or("no reason given")
                    );
                    match on_nak {
                        OnNak::Retry => Delivery::Retry(reason),
                        OnNak::Error => Delivery::Permanent(reason),
                    }
                }
                Err(junction_net::TransportError::InvalidMessage(e)) => {
                    Delivery::Permanent(format!("cannot send as HL7: {e}"))
                }
                Err(e) => Delivery::Retry(e.to_string()),
            },
            Connector::File { dir, name } => {
                let raw = store
                    .raw(lease.channel(), lease.seq())
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let file_name = render_name(name, &raw, lease.seq(), lease.channel());
                write_file(dir, &file_name, lease.seq(), lease.payload()).await
            }
            Connector::Http {
                client,
                url,
                method,
                headers,
            } => {
                // `headers` replaces same-named defaults (`header` would append a second value).
                let request = client
                    .request(method.clone(), url.clone())
                    .header(CONTENT_TYPE, lease.content_type())
                    .headers(headers.clone())
                    .body(lease.payload().to_vec());
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let summary = format!("HTTP {status}: {}", excerpt(response).await);
                        if status.is_success() {
                            Delivery::Sent(Some(summary))
                        } else if status.is_client_error()
                            // The two 4xx that say "not now" rather than "never" (RFC 9110, RFC 6585).
                            && !matches!(
                                status,
                                reqwest::StatusCode::REQUEST_TIMEOUT
                                    | reqwest::StatusCode::TOO_MANY_REQUESTS
                            )
                        {
                            Delivery::Permanent(summary)
                        } else {
                            Delivery::Retry(summary)
                        }
                    }
                    Err(e) => Delivery::Retry(format!("HTTP request to {url} failed: {e}")),
                }
            }
            Connector::Channel { target, directory } => {
                directory
                    .hand_over(store, target, lease.payload(), lease.control_id())
                    .await
            }
        }
    }
}

/// Most of a response body kept on the record.
const EXCERPT_CHARS: usize = 512;

/// Most of a response body read (and discarded past the excerpt) so the connection can be reused.
const DRAIN_CAP: usize = 64 * 1024;

/// How long to wait for more of a body past the excerpt before giving the connection up.
const DRAIN_PATIENCE: Duration = Duration::from_millis(200);

/// The start of a response body. The status has already decided the outcome, so only the start is
/// kept: a large or stalling body must neither fill memory nor run into the timeout and turn a
/// delivered message into a retry (a duplicate at the peer).
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    let mut read = 0usize;
    // Past the excerpt (UTF-8 takes at most 4 bytes per character) the rest is read and dropped up to a
    // cap, while it keeps coming: the client reuses a connection only after its response was read to
    // the end, and a FHIR server's transaction-response Bundle is often larger than the excerpt.
    while read < DRAIN_CAP {
        let chunk = if bytes.len() < EXCERPT_CHARS * 4 {
            response.chunk().await
        } else {
            match tokio::time::timeout(DRAIN_PATIENCE, response.chunk()).await {
                Ok(chunk) => chunk,
                Err(_) => break,
            }
        };
        match chunk {
            Ok(Some(chunk)) => {
                read = read.saturating_add(chunk.len());
                let room = (EXCERPT_CHARS * 4).saturating_sub(bytes.len());
                bytes.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes)
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

/// The configured headers as they go on the wire, refusing any that cannot.
fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ConnectorError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = |reason: String| ConnectorError::HttpHeader {
            name: name.clone(),
            reason,
        };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        map.append(header, value);
    }
    Ok(map)
}

/// Longest text one `${...}` puts into a file name, well inside the usual 255-byte name limit.
const MAX_NAME_VALUE: usize = 100;

/// Expand `${HL7-path}`, `${message_id}` and `${channel}` in a file name template. Values are made
/// safe for a file name; an absent value becomes the message's sequence number so names stay unique.
/// A name the file system would refuse whatever happens (too long, `.` or `..`) would be retried
/// forever and block an ordered queue, so values are cut short and a name of dots becomes the
/// sequence number.
fn render_name(template: &str, raw: &[u8], seq: u64, channel: &str) -> String {
    let msg = MessageBuf::parse(raw).ok();
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = &after[..end];
        let value = match key {
            "message_id" => seq.to_string(),
            "channel" => channel.to_owned(),
            path => msg
                .as_ref()
                .zip(path.parse::<Path>().ok())
                .and_then(|(m, p)| m.get(&p))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| seq.to_string()),
        };
        out.extend(value.chars().take(MAX_NAME_VALUE).map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        }));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out.chars().all(|c| c == '.') {
        return seq.to_string();
    }
    out
}

/// Delivers a payload as a new file (see [`publish::write_new`]): never half written, and never over
/// an earlier message's file. When the rendered name holds other content already, the message's
/// sequence number goes before the extension (`EX0001.seq-42.hl7`). The error names the folder before
/// the file name, which may come from patient fields: logs show only the part before the first `": "`.
async fn write_file(dir: &std::path::Path, name: &str, seq: u64, payload: &[u8]) -> Delivery {
    let dir = dir.to_path_buf();
    let first = name.to_owned();
    let payload = payload.to_vec();
    let folder = dir.display().to_string();
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&dir)?;
        let others = (1..=100).map(|n| match n {
            1 => publish::variant(&first, &format!("seq-{seq}")),
            n => publish::variant(&first, &format!("seq-{seq}-{n}")),
        });
        let written =
            publish::write_new(&dir, std::iter::once(first.clone()).chain(others), &payload)?;
        Ok(dir.join(written))
    })
    .await;
    match result {
        Ok(Ok(path)) => Delivery::Sent(Some(format!("wrote {}", path.display()))),
        Ok(Err(e)) => Delivery::Retry(format!("cannot write a file in {folder}: {name}: {e}")),
        Err(e) => Delivery::Retry(format!("file writer failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &[u8] = b"MSH|^~\\&|S|F|R|F|20260101||ADT^A01|CTRL/1|P|2.5.1\rPID|1||42^^^H^MR\r";

    #[test]
    fn names_take_values_from_the_message_made_safe() {
        assert_eq!(
            render_name("${channel}-${MSH-10}-${PID-3.1}.hl7", ADT, 7, "adt"),
            "adt-CTRL_1-42.hl7"
        );
        assert_eq!(render_name("${PV1-2}.hl7", ADT, 7, "adt"), "7.hl7");
        assert_eq!(render_name("${message_id}", ADT, 7, "adt"), "7");
        assert_eq!(render_name("open ${MSH-10", ADT, 7, "adt"), "open ${MSH-10");
    }

    #[test]
    fn names_the_file_system_would_refuse_are_avoided() {
        let dots = b"MSH|^~\\&|S|F|R|F|20260101||ADT^A01|..|P|2.5.1\r";
        assert_eq!(render_name("${MSH-10}", dots, 9, "adt"), "9");
        assert_eq!(render_name("${MSH-10}.", dots, 9, "adt"), "9");
        assert_eq!(render_name("${MSH-10}.hl7", dots, 9, "adt"), "...hl7");
        let long = format!(
            "MSH|^~\\&|S|F|R|F|20260101||ADT^A01|{}|P|2.5.1\r",
            "x".repeat(5000)
        );
        let name = render_name("${MSH-10}.hl7", long.as_bytes(), 9, "adt");
        assert_eq!(name.len(), MAX_NAME_VALUE + 4);
    }
}
