//! The message browser: list, show and reprocess stored messages. `junction messages` calls these on the
//! store files when the engine is stopped, and the admin API calls them inside the running engine; the
//! API returns the result types as JSON and the CLI renders them with the same `render` functions, so
//! the output is the same either way. Every call is written to the audit log before it returns data.
//!
//! These functions block on sled reads (and `reprocess` on a flush): from async code, call them in
//! `tokio::task::spawn_blocking`.

mod audit;
mod render;
mod time;

use std::collections::BTreeMap;

use junction_store::{ListFilter, MessageRecord, Status, Step, Store, StoreError};
use serde::{Deserialize, Serialize};

pub use audit::{Accessor, AuditEntry, AuditLog, Via};
pub use time::{format as format_time, parse_since};

/// Why a browser request failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    /// The request itself is wrong (bad status, time or view); a 400 for the API.
    #[error("{0}")]
    BadRequest(String),
    /// No such message; a 404 for the API.
    #[error("message {seq} is not in channel {channel:?} (never stored, or removed by retention)")]
    NotFound {
        /// Channel name.
        channel: String,
        /// Sequence id.
        seq: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The access could not be written to the audit log, so it was refused.
    #[error("cannot write the audit log {path}: {source}; access refused")]
    Audit {
        /// The log file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl BrowseError {
    /// The HTTP status the admin API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            BrowseError::BadRequest(_) => 400,
            BrowseError::NotFound { .. } => 404,
            BrowseError::Store(_) | BrowseError::Audit { .. } => 500,
        }
    }
}

/// A message status as written on the command line or in a query string.
pub fn parse_status(s: &str) -> Result<Status, BrowseError> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "received" => Status::Received,
        "filtered" => Status::Filtered,
        "queued" => Status::Queued,
        "sent" => Status::Sent,
        "errored" => Status::Errored,
        other => {
            return Err(BrowseError::BadRequest(format!(
                "unknown status {other:?}; use received, filtered, queued, sent or errored"
            )))
        }
    })
}

/// The list query as text, exactly as `--status/--since/--control-id/--limit` or the API query string
/// give it; [`list_messages`] parses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListParams {
    /// `received`, `filtered`, `queued`, `sent` or `errored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// RFC 3339 time, or an age like `1h` counted back from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// MSH-10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    /// Most messages to return (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One line of a message list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// Sequence id.
    pub seq: u64,
    /// When it was received (ms since the epoch).
    pub received_at: u64,
    /// MSH-9.
    pub message_type: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// Overall status.
    pub status: Status,
    /// Status per destination.
    pub destinations: BTreeMap<String, Status>,
    /// First line of the error that errored it, if any.
    pub error: Option<String>,
    /// The message this one is a reprocessed copy of.
    pub reprocess_of: Option<u64>,
    /// The copies this message was reprocessed as.
    pub reprocessed_as: Vec<u64>,
}

/// A channel's messages, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageList {
    /// Channel name.
    pub channel: String,
    /// The messages.
    pub messages: Vec<MessageSummary>,
}

/// Which part of a message `show` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Summary, history with every attempt, raw message and every output.
    #[default]
    All,
    /// Only the message as received.
    Raw,
    /// Only the outputs, one per destination.
    Transformed,
    /// One destination: its state, attempts and output.
    Destination(String),
}

impl View {
    /// From the API query `?view=raw|transformed|all&destination=D` (a destination wins).
    pub fn from_query(view: Option<&str>, destination: Option<&str>) -> Result<Self, BrowseError> {
        if let Some(d) = destination {
            return Ok(View::Destination(d.to_owned()));
        }
        match view.unwrap_or("all") {
            "all" => Ok(View::All),
            "raw" => Ok(View::Raw),
            "transformed" => Ok(View::Transformed),
            other => Err(BrowseError::BadRequest(format!(
                "unknown view {other:?}; use raw, transformed or all (or destination=NAME)"
            ))),
        }
    }

    fn label(&self) -> String {
        match self {
            View::All => "all".into(),
            View::Raw => "raw".into(),
            View::Transformed => "transformed".into(),
            View::Destination(d) => format!("destination {d}"),
        }
    }
}

/// One destination's stored output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputView {
    /// Destination name.
    pub destination: String,
    /// Content type.
    pub content_type: String,
    /// The output (non-UTF-8 bytes replaced).
    pub body: String,
}

/// One message with what the view asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// Which parts were asked for.
    pub view: View,
    /// The whole record: status, destinations, history with every attempt and response.
    pub record: MessageRecord,
    /// The message as received (non-UTF-8 bytes replaced), unless the view leaves it out.
    pub raw: Option<String>,
    /// Outputs the view includes.
    pub outputs: Vec<OutputView>,
}

/// What to run again: listed sequence ids, or every message with a status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprocessRequest {
    /// These messages (each is run again even if it was reprocessed before).
    #[serde(default)]
    pub seqs: Vec<u64>,
    /// Every message with this status that has not been reprocessed yet (e.g. `errored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Queue only this destination's output of the new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// What happened to one message of a reprocess request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reprocessed {
    /// The original message.
    pub seq: u64,
    /// The copy now waiting in the inbox, when it was made.
    pub copy: Option<u64>,
    /// Why no copy was made.
    pub error: Option<String>,
}

/// The outcome of a reprocess request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprocessReport {
    /// Channel name.
    pub channel: String,
    /// One entry per message asked for.
    pub messages: Vec<Reprocessed>,
}

fn audit(
    log: &AuditLog,
    by: &Accessor,
    action: &str,
    channel: &str,
    seq: Option<u64>,
    detail: Option<String>,
) -> Result<(), BrowseError> {
    let entry = AuditEntry {
        at: time::format(crate::now_millis()),
        who: by.who.clone(),
        via: by.via,
        action: action.into(),
        channel: channel.into(),
        seq,
        detail,
    };
    log.append(&entry).map_err(|source| BrowseError::Audit {
        path: log.path().display().to_string(),
        source,
    })
}

/// The error that errored a message: its processing error, else the first errored destination's.
fn error_of(record: &MessageRecord) -> Option<String> {
    let processing = record.history.iter().rev().find_map(|e| match e.step {
        Step::Finished {
            status: Status::Errored,
        } => e.detail.clone(),
        _ => None,
    });
    processing.or_else(|| {
        record
            .destinations
            .iter()
            .find(|(_, d)| d.status == Status::Errored)
            .map(|(name, d)| format!("{name}: {}", d.last_error.as_deref().unwrap_or("failed")))
    })
}

fn summary(record: &MessageRecord) -> MessageSummary {
    MessageSummary {
        seq: record.seq,
        received_at: record.meta.received_at,
        message_type: record.meta.message_type.clone(),
        control_id: record.meta.control_id.clone(),
        status: record.status,
        destinations: record
            .destinations
            .iter()
            .map(|(k, d)| (k.clone(), d.status))
            .collect(),
        error: error_of(record),
        reprocess_of: record.meta.reprocess_of.as_ref().map(|r| r.seq),
        reprocessed_as: record.reprocessed_as(),
    }
}

/// Lists a channel's messages, newest first, filtered by `params`.
pub fn list_messages(
    store: &dyn Store,
    log: &AuditLog,
    by: &Accessor,
    channel: &str,
    params: &ListParams,
) -> Result<MessageList, BrowseError> {
    let filter = ListFilter {
        status: params.status.as_deref().map(parse_status).transpose()?,
        since: params
            .since
            .as_deref()
            .map(|s| parse_since(s, crate::now_millis()))
            .transpose()
            .map_err(BrowseError::BadRequest)?,
        limit: params.limit.unwrap_or(ListFilter::default().limit),
    };
    let query = serde_json::to_string(params).unwrap_or_default();
    audit(log, by, "list", channel, None, Some(query))?;
    let records = match &params.control_id {
        Some(cid) => {
            let mut found: Vec<MessageRecord> = store
                .find_by_control_id(cid)?
                .into_iter()
                .filter(|r| r.channel == channel)
                .filter(|r| filter.status.is_none_or(|s| s == r.status))
                .filter(|r| filter.since.is_none_or(|t| r.meta.received_at >= t))
                .collect();
            found.sort_by_key(|r| std::cmp::Reverse(r.seq));
            found.truncate(filter.limit);
            found
        }
        None => store.list(channel, &filter)?,
    };
    Ok(MessageList {
        channel: channel.to_owned(),
        messages: records.iter().map(summary).collect(),
    })
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One message: its record and the parts `view` asks for.
pub fn show_message(
    store: &dyn Store,
    log: &AuditLog,
    by: &Accessor,
    channel: &str,
    seq: u64,
    view: &View,
) -> Result<MessageView, BrowseError> {
    audit(log, by, "show", channel, Some(seq), Some(view.label()))?;
    let not_found = || BrowseError::NotFound {
        channel: channel.to_owned(),
        seq,
    };
    let record = store.record(channel, seq)?.ok_or_else(not_found)?;
    let raw = match view {
        View::All | View::Raw => store.raw(channel, seq)?.map(text),
        View::Transformed | View::Destination(_) => None,
    };
    let wanted: Vec<&String> = match view {
        View::All | View::Transformed => record.destinations.keys().collect(),
        View::Raw => Vec::new(),
        View::Destination(name) => match record.destinations.get_key_value(name) {
            Some((key, _)) => vec![key],
            None => {
                let known: Vec<&str> = record.destinations.keys().map(String::as_str).collect();
                return Err(BrowseError::BadRequest(format!(
                    "message {seq} has no destination {name:?}; it has: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        },
    };
    let mut outputs = Vec::new();
    for destination in wanted {
        if let Some(body) = store.output(channel, seq, destination)? {
            outputs.push(OutputView {
                destination: destination.clone(),
                content_type: record
                    .destinations
                    .get(destination)
                    .map(|d| d.content_type.clone())
                    .unwrap_or_default(),
                body: text(body),
            });
        }
    }
    Ok(MessageView {
        view: view.clone(),
        record,
        raw,
        outputs,
    })
}

/// Copies messages back into the channel's inbox to run again through the current scripts; the
/// originals stay and each links to its copy (and the copy back). Blocks until the copies are durable.
/// `destinations` are the channel's configured destination names when known: a `destination` that is
/// not one of them is refused, since its copy would go nowhere while the original, now linked to a
/// copy, no longer counts as waiting to be reprocessed.
pub fn reprocess(
    store: &dyn Store,
    log: &AuditLog,
    by: &Accessor,
    channel: &str,
    request: &ReprocessRequest,
    destinations: Option<&[String]>,
) -> Result<ReprocessReport, BrowseError> {
    if let (Some(wanted), Some(known)) = (&request.destination, destinations) {
        if !known.contains(wanted) {
            return Err(BrowseError::BadRequest(format!(
                "channel {channel} has no destination {wanted:?} (it has: {})",
                known.join(", ")
            )));
        }
    }
    let mut seqs = request.seqs.clone();
    if let Some(status) = &request.status {
        let filter = ListFilter {
            status: Some(parse_status(status)?),
            since: None,
            limit: usize::MAX,
        };
        let mut matching: Vec<u64> = store
            .list(channel, &filter)?
            .into_iter()
            .filter(|r| r.reprocessed_as().is_empty())
            .map(|r| r.seq)
            .collect();
        matching.reverse();
        seqs.extend(matching);
    }
    if seqs.is_empty() {
        return Err(BrowseError::BadRequest(
            "nothing to reprocess: name sequence ids or a status".into(),
        ));
    }
    let destination = request.destination.as_deref();
    // Every copy is written first and waited for after: the waits then share flushes, instead of a
    // status-wide reprocess of thousands of messages paying one flush each.
    let mut pending = Vec::with_capacity(seqs.len());
    for seq in seqs {
        let copy = store.reprocess(channel, seq, destination, crate::now_millis());
        // A store failure ends the run where it happened, as it would one message at a time.
        let failed = matches!(
            &copy,
            Err(e) if !matches!(e, StoreError::NoSuchMessage { .. } | StoreError::NotProcessed { .. })
        );
        pending.push((seq, copy));
        if failed {
            break;
        }
    }
    let mut messages = Vec::with_capacity(pending.len());
    for (seq, copy) in pending {
        let copy = copy.and_then(junction_store::Pending::wait);
        let (copy, error) = match copy {
            Ok(stored) => (Some(stored.seq()), None),
            Err(e @ (StoreError::NoSuchMessage { .. } | StoreError::NotProcessed { .. })) => {
                (None, Some(e.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let detail = match (copy, destination) {
            (Some(c), Some(d)) => Some(format!("copy {c}, only destination {d}")),
            (Some(c), None) => Some(format!("copy {c}")),
            (None, _) => error.clone(),
        };
        audit(log, by, "reprocess", channel, Some(seq), detail)?;
        messages.push(Reprocessed { seq, copy, error });
    }
    Ok(ReprocessReport {
        channel: channel.to_owned(),
        messages,
    })
}
