//! The checked channel configuration the runtime builds from: paths resolved, durations parsed,
//! regexes compiled, scripts read.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Location;
use crate::locate::{locate, Target, YamlPath};

/// Default largest MLLP frame accepted by a source.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 16 << 20;
/// MLLP start-of-block byte (VT).
pub const DEFAULT_START_BYTE: u8 = 0x0B;
/// MLLP end-of-block bytes (FS CR).
pub const DEFAULT_END_BYTES: [u8; 2] = [0x1C, 0x0D];

/// One channel: a source, optional filter and transform, and one or more destinations.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Unique channel name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The YAML file this channel came from, as given to the loader.
    pub file: PathBuf,
    /// Where messages come from and when they are acknowledged.
    pub source: SourceConfig,
    /// Script deciding whether a message goes on (before the transform).
    pub filter: Option<Script>,
    /// Script changing the message before the destinations.
    pub transform: Option<Script>,
    /// Lookup tables for scripts, by the name scripts use.
    pub tables: BTreeMap<String, PathBuf>,
    /// The channel's FHIR vocabulary maps folder: each `<name>.csv` replaces the shipped map `<name>`
    /// whole (every file already checked). `None`: the shipped maps alone.
    pub fhir_maps: Option<PathBuf>,
    /// HL7 paths that must be valued, checked before any script.
    pub require: Vec<String>,
    /// HL7 path -> pattern its value must match, checked before any script.
    pub matches: Vec<MatchRule>,
    /// Whether logs may contain message content (patient data); off by default.
    pub log_content: bool,
    /// Where messages go, in file order.
    pub destinations: Vec<DestinationConfig>,
    /// Destinations left out because their `when_env` variable is not set, in file order.
    pub disabled: Vec<DisabledDestination>,
    /// How long stored messages are kept.
    pub retention: Option<Retention>,
    /// Channels that must be running before this one starts.
    pub depends_on: Vec<String>,
    /// Whether message content is stored encrypted (needs `encryption`).
    pub encrypt: bool,
    /// The keys that encrypt and decrypt this channel's stored content. Given with `encrypt: false`,
    /// they only read what was encrypted before.
    pub encryption: Option<Encryption>,
    /// Conditions that are logged (and posted to a webhook) when they start and end.
    pub alerts: Option<Alerts>,
    /// The file's text, to place errors found later (see [`ChannelConfig::locate`]).
    pub(crate) yaml: Arc<str>,
}

impl ChannelConfig {
    /// Location of a node in this channel's file, e.g. `["destinations", "1", "name"]`;
    /// numeric segments index sequences. Falls back to line 1 when the node is not there.
    pub fn locate(&self, path: &[&str]) -> Location {
        let mut yaml_path = YamlPath::default();
        for seg in path {
            yaml_path = match seg.parse::<usize>() {
                Ok(i) => yaml_path.index(i),
                Err(_) => yaml_path.key(seg),
            };
        }
        self.locate_path(&yaml_path, Target::Value)
    }

    pub(crate) fn locate_path(&self, path: &YamlPath, target: Target) -> Location {
        let (line, column) = locate(&self.yaml, path, target).unwrap_or((1, 1));
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    /// All scripts of the channel (filter, transform, then each destination's), with a label
    /// such as `filter` or `destinations[lab].transform` for messages.
    pub fn scripts(&self) -> Vec<(String, &Script)> {
        let mut out = Vec::new();
        out.extend(self.filter.as_ref().map(|s| ("filter".to_string(), s)));
        out.extend(
            self.transform
                .as_ref()
                .map(|s| ("transform".to_string(), s)),
        );
        for d in &self.destinations {
            out.extend(
                d.filter
                    .as_ref()
                    .map(|s| (format!("destinations[{}].filter", d.name), s)),
            );
            out.extend(
                d.transform
                    .as_ref()
                    .map(|s| (format!("destinations[{}].transform", d.name), s)),
            );
        }
        out
    }
}

/// A Rhai script's source text and where it came from, so script errors can point back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// File or YAML position of the text.
    pub origin: ScriptOrigin,
    /// The script text.
    pub source: String,
}

/// Where a script's text lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOrigin {
    /// A `.rhai` file, resolved against the folder that holds `channels/`.
    File(PathBuf),
    /// Written inline in the channel YAML. The location is where the script's first line is:
    /// for a block scalar (`|`) that is the line after the indicator, so script line N is at
    /// YAML line `location.line + N - 1`.
    Inline(Location),
}

impl std::fmt::Display for ScriptOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptOrigin::File(p) => write!(f, "{}", p.display()),
            ScriptOrigin::Inline(l) => write!(f, "{l}"),
        }
    }
}

/// A declarative check: the value at `path` must match `pattern`.
#[derive(Debug, Clone)]
pub struct MatchRule {
    /// HL7 path, as written (e.g. `PID-8`).
    pub path: String,
    /// The compiled pattern.
    pub pattern: regex::Regex,
}

/// A channel's source and its acknowledgement mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The kind of source and its settings.
    pub kind: SourceKind,
    /// When the sender gets its ACK.
    pub ack: AckMode,
}

/// When a source answers the sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// AA once the raw message is durably stored.
    #[default]
    Stored,
    /// AA after filter, transform and enqueue; AE on script error.
    Processed,
    /// No ACK is sent.
    None,
}

/// The kinds of source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// MLLP over TCP (optionally TLS).
    Mllp(MllpSource),
    /// Files dropped in a folder.
    File(FileSource),
    /// HTTP POST.
    Http(HttpSource),
}

impl SourceKind {
    /// The address this source listens on, if it listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        match self {
            SourceKind::Mllp(m) => Some(m.listen),
            SourceKind::Http(h) => Some(h.listen),
            SourceKind::File(_) => None,
        }
    }
}

/// MLLP listener settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MllpSource {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most connections at once; `None` = no limit.
    pub max_connections: Option<u32>,
    /// Largest frame accepted (default 16 MiB).
    pub max_frame_bytes: u64,
    /// Give up on a frame that stalls this long mid-read.
    pub read_timeout: Option<Duration>,
    /// Close a connection idle this long.
    pub idle_timeout: Option<Duration>,
    /// Start-of-block byte (default 0x0B).
    pub start_byte: u8,
    /// End-of-block bytes (default 0x1C 0x0D).
    pub end_bytes: Vec<u8>,
    /// TLS, when set.
    pub tls: Option<ServerTls>,
}

/// TLS for a listener; paths resolved and checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// CA that client certificates must chain to; set = clients must present one.
    pub client_ca: Option<PathBuf>,
}

/// Folder-polling source settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    /// Folder to read; `processed/` and `error/` subfolders are made beside the files.
    pub dir: PathBuf,
    /// File name pattern (default `*.hl7`).
    pub glob: String,
    /// How often to look (default 1s).
    pub poll: Duration,
}

/// HTTP source settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSource {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// URL path messages are posted to (default `/hl7`).
    pub path: String,
}

/// One destination of a channel.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// Name, unique within the channel.
    pub name: String,
    /// Script deciding whether this destination gets the message.
    pub filter: Option<Script>,
    /// Script shaping the message for this destination.
    pub transform: Option<Script>,
    /// The kind of destination and its settings.
    pub kind: DestinationKind,
    /// Retry schedule when sending fails.
    pub retry: RetryPolicy,
    /// Stop trying for a while after repeated failures.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Most messages per second; `None` = no limit.
    pub rate_limit: Option<u32>,
    /// How the queue is served. Default: ordered, except for HTTP.
    pub order: DeliveryOrder,
}

/// How a destination's queue is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOrder {
    /// Strictly in order, one message at a time: a failing head blocks the rest (HL7 feeds need order).
    Ordered,
    /// Oldest due message first, by `workers` concurrent senders (each with its own connection); a message
    /// waiting for its retry does not hold back the others.
    Unordered {
        /// Concurrent senders, at least 1.
        workers: u32,
    },
}

/// A destination switched off by `when_env: NAME` because `NAME` is unset or empty. Only its
/// shape was checked: its values may reference the very variable that is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledDestination {
    /// The destination's name.
    pub name: String,
    /// The environment variable that would switch it on.
    pub when_env: String,
}

/// The kinds of destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationKind {
    /// Send over MLLP and wait for the ACK.
    Mllp(MllpDestination),
    /// Write a file per message.
    File(FileDestination),
    /// HTTP request per message.
    Http(HttpDestination),
    /// Hand the message to another channel by name.
    Channel(String),
}

/// MLLP sender settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MllpDestination {
    /// `host:port` to connect to.
    pub connect: String,
    /// Time allowed to connect, TLS handshake included (default 10s).
    pub connect_timeout: Duration,
    /// Time allowed to write one message (default 10s).
    pub send_timeout: Duration,
    /// Time allowed for the ACK (default 30s).
    pub ack_timeout: Duration,
    /// Idle time before TCP keep-alive probes start on the (always persistent) connection, so a peer that
    /// vanished without closing is noticed; `None` when turned off (default 60s).
    pub keepalive: Option<Duration>,
    /// Start-of-block byte (default 0x0B).
    pub start_byte: u8,
    /// End-of-block bytes (default 0x1C 0x0D); the ACK is expected framed the same way.
    pub end_bytes: Vec<u8>,
    /// TLS, when set.
    pub tls: Option<ClientTls>,
    /// What an AE/AR answer means.
    pub on_nak: OnNak,
}

/// TLS for a sender; paths resolved and checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// CA to trust for the server's certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate (with `key`) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Client key (with `cert`).
    pub key: Option<PathBuf>,
}

/// What to do when the receiver answers AE or AR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNak {
    /// Mark the message errored (default): a refusal rarely goes away by itself, and retrying
    /// it would block an ordered destination.
    #[default]
    Error,
    /// Retry like a transport failure.
    Retry,
}

/// File writer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDestination {
    /// Folder to write into.
    pub dir: PathBuf,
    /// File name template; `${PATH}` is replaced by the HL7 value, `${message_id}` and
    /// `${channel}` by the message id and channel name (default `${MSH-10}.hl7`).
    pub name: String,
}

/// HTTP sender settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDestination {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Request method (default POST).
    pub method: HttpMethod,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Time allowed for the whole request (default 30s).
    pub timeout: Duration,
}

/// HTTP request methods a destination may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// POST (default).
    #[default]
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// Capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First wait (default 1s).
    pub initial: Duration,
    /// Longest wait (default 5m).
    pub max: Duration,
    /// When to give up and mark the message errored.
    pub max_attempts: MaxAttempts,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_attempts: MaxAttempts::Forever,
        }
    }
}

/// How many times to try a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MaxAttempts {
    /// Never give up (default).
    #[default]
    Forever,
    /// Give up after this many attempts (at least 1).
    Limit(u32),
}

/// Stop sending after `failures` consecutive failures, for `cool_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open.
    pub cool_down: Duration,
}

/// Encryption keys of a channel, read from their files when the configuration loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// The key new content is encrypted with.
    pub key: EncryptionKey,
    /// Earlier keys, kept so content they encrypted stays readable.
    pub retired: Vec<EncryptionKey>,
}

/// One 256-bit key and the file it came from (the bytes are never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    /// The key file, resolved.
    pub file: PathBuf,
    pub(crate) bytes: [u8; 32],
}

impl EncryptionKey {
    /// The key's 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// A channel's alerts. Each fires once when its condition starts and resolves once when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alerts {
    /// URL that gets a JSON POST for every firing and resolved event.
    pub webhook: Option<String>,
    /// Fire when a destination's oldest queued message is older than this.
    pub queue_age: Option<Duration>,
    /// Fire when this many messages errored within the window.
    pub errors: Option<ErrorsAlert>,
    /// Fire while a destination's circuit breaker is open.
    pub circuit_open: bool,
}

/// `count` errored messages within `within`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorsAlert {
    /// How many errored messages fire the alert (1 or more).
    pub count: u32,
    /// The sliding window they are counted in.
    pub within: Duration,
}

/// How long stored messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long finished messages are kept: `days: N`, or `keep: DURATION` for other units.
    pub keep: Duration,
    /// Keep errored messages past `keep` (default true), so none is lost unseen.
    pub keep_errored: bool,
    /// Time between pruning passes (`every`, default 1h); the first pass runs after at most a minute.
    pub every: Duration,
}

impl Retention {
    /// Time between passes when `every` is not given.
    pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);
}
