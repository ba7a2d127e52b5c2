//! From the raw serde shape of one file to a checked [`ChannelConfig`], collecting every problem.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::env::{check_env_name, expand, process_env, EnvLookup};
use crate::error::{ConfigError, Diagnostics, Location, Problem};
use crate::locate::{locate, Target, YamlPath};
use crate::model::*;
use crate::raw::*;
use crate::units::{check_hl7_path, check_name, parse_duration, parse_size};

mod operations;

/// Parse and check one channel file's text. `file` names it in messages; relative script, table,
/// certificate and folder paths are resolved against `base`. Reads script files (no network) and
/// the environment variables the file names (`${env:NAME}`, `when_env`).
pub fn parse_channel(text: &str, file: &Path, base: &Path) -> Result<ChannelConfig, Diagnostics> {
    parse_channel_with_env(text, file, base, &process_env)
}

/// [`parse_channel`] reading variables through `env`.
pub(crate) fn parse_channel_with_env(
    text: &str,
    file: &Path,
    base: &Path,
    env: EnvLookup,
) -> Result<ChannelConfig, Diagnostics> {
    let mut ctx = Ctx {
        file,
        text,
        base,
        env,
        diags: Diagnostics::default(),
    };
    let raw = match serde_yaml::from_str::<RawChannel>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let empty = "the file is empty; a channel needs at least name, source and destinations";
            ctx.diags.push(schema_error(file, text, &e, empty));
            return Err(ctx.diags);
        }
    };
    let channel = ctx.channel(raw);
    match channel {
        Some(c) => ctx.diags.into_result(c),
        None => Err(ctx.diags),
    }
}

/// serde_yaml's message, without the position it appends (we print our own in front) and with
/// quotes an analyst reads more easily than backticks.
pub(crate) fn schema_error(
    file: &Path,
    text: &str,
    e: &serde_yaml::Error,
    empty: &str,
) -> ConfigError {
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return ConfigError {
            file: file.to_path_buf(),
            position: None,
            problem: Problem::Rule(empty.into()),
        };
    }
    let position = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    if let Some((line, column)) = position {
        message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
    }
    ConfigError {
        file: file.to_path_buf(),
        position,
        problem: Problem::Schema(message.replace('`', "'")),
    }
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    base: &'a Path,
    env: EnvLookup<'a>,
    diags: Diagnostics,
}

fn root() -> YamlPath {
    YamlPath::default()
}

impl Ctx<'_> {
    fn report(&mut self, at: &YamlPath, target: Target, problem: Problem) {
        self.diags.push(ConfigError {
            file: self.file.to_path_buf(),
            position: locate(self.text, at, target),
            problem,
        });
    }

    fn location(&self, at: &YamlPath) -> Location {
        let (line, column) = locate(self.text, at, Target::Value).unwrap_or((1, 1));
        Location {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    fn invalid(&mut self, at: &YamlPath, kind: &'static str, value: &str, reason: String) {
        let problem = Problem::Invalid {
            field: at.to_string(),
            kind,
            value: value.to_string(),
            reason,
        };
        self.report(at, Target::Value, problem);
    }

    fn rule(&mut self, at: &YamlPath, message: String) {
        self.report(at, Target::Value, Problem::Rule(format!("{at}: {message}")));
    }

    fn name(&mut self, at: &YamlPath, name: &str) {
        if let Err(reason) = check_name(name) {
            self.invalid(at, "name", name, reason);
        }
    }

    /// A duration that must be longer than zero: a zero poll or timeout would spin or always fail.
    fn duration(&mut self, at: &YamlPath, value: Option<&Text>, default: Duration) -> Duration {
        let Some(Text(text)) = value else {
            return default;
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.invalid(at, "duration", text, "must be longer than zero".into());
                default
            }
            Ok(d) => d,
            Err(reason) => {
                self.invalid(at, "duration", text, reason);
                default
            }
        }
    }

    fn optional_duration(&mut self, at: &YamlPath, value: Option<&Text>) -> Option<Duration> {
        value.map(|v| self.duration(at, Some(v), Duration::ZERO))
    }

    fn positive(&mut self, at: &YamlPath, value: Option<u32>) {
        if value == Some(0) {
            self.invalid(at, "number", "0", "must be 1 or more".into());
        }
    }

    fn hl7_path(&mut self, at: &YamlPath, target: Target, path: &str) {
        if let Err(reason) = check_hl7_path(path) {
            let problem = Problem::Invalid {
                field: at.to_string(),
                kind: "HL7 path",
                value: path.to_string(),
                reason,
            };
            self.report(at, target, problem);
        }
    }

    /// `value` with its `${env:NAME}` references replaced; `None` (reported) when one is unset.
    fn expand(&mut self, at: &YamlPath, value: &str) -> Option<String> {
        match expand(value, self.env) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.invalid(at, "environment reference", value, reason);
                None
            }
        }
    }

    /// A folder, after `${env:...}` expansion, resolved against the base folder.
    fn folder(&mut self, at: &YamlPath, path: &str) -> PathBuf {
        let path = self.expand(at, path).unwrap_or_else(|| path.to_string());
        self.resolve(&path)
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path.trim())
    }

    /// Resolve a file the channel needs and check that it is there.
    fn existing_file(&mut self, at: &YamlPath, role: &'static str, path: &str) -> PathBuf {
        let resolved = self.resolve(path);
        if !resolved.is_file() {
            let problem = Problem::MissingFile {
                field: at.to_string(),
                role,
                path: resolved.clone(),
            };
            self.report(at, Target::Value, problem);
        }
        resolved
    }

    /// The channel's vocabulary maps folder, every map in it loaded now so a bad file stops
    /// `junction validate` rather than the channel's start.
    fn fhir_maps(&mut self, at: &YamlPath, dir: &str) -> PathBuf {
        let resolved = self.resolve(dir);
        let field = at.to_string();
        if !resolved.is_dir() {
            let problem = Problem::MissingFolder {
                field,
                role: "FHIR maps",
                path: resolved.clone(),
            };
            self.report(at, Target::Value, problem);
        } else if let Err(source) = junction_fhir::Vocab::load_dir(&resolved) {
            self.report(at, Target::Value, Problem::VocabMap { field, source });
        }
        resolved
    }

    /// A value ending in `.rhai` names a script file; anything else is the script itself.
    fn script(&mut self, at: &YamlPath, value: Option<&String>) -> Option<Script> {
        let value = value?;
        let trimmed = value.trim();
        if trimmed.ends_with(".rhai") && !trimmed.contains('\n') {
            let path = self.resolve(trimmed);
            return match std::fs::read_to_string(&path) {
                Ok(source) => Some(Script {
                    origin: ScriptOrigin::File(path),
                    source,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let problem = Problem::MissingFile {
                        field: at.to_string(),
                        role: "script",
                        path,
                    };
                    self.report(at, Target::Value, problem);
                    None
                }
                Err(source) => {
                    let what = format!("script {}", path.display());
                    self.report(at, Target::Value, Problem::Io { what, source });
                    None
                }
            };
        }
        Some(Script {
            origin: ScriptOrigin::Inline(self.inline_start(at)),
            source: value.clone(),
        })
    }

    /// Where an inline script's first line is: after the `|`/`>` indicator of a block scalar.
    fn inline_start(&self, at: &YamlPath) -> Location {
        let mut loc = self.location(at);
        let line_text = |n: usize| self.text.lines().nth(n.saturating_sub(1)).unwrap_or("");
        let indicator = line_text(loc.line)
            .chars()
            .nth(loc.column.saturating_sub(1))
            .is_some_and(|c| c == '|' || c == '>');
        let quoted = line_text(loc.line)
            .chars()
            .nth(loc.column.saturating_sub(1))
            .is_some_and(|c| c == '\'' || c == '"');
        if indicator {
            loc.line += 1;
            let next = line_text(loc.line);
            loc.column = next.len() - next.trim_start().len() + 1;
        } else if quoted {
            // The script text starts after the opening quote.
            loc.column += 1;
        }
        loc
    }

    /// Exactly one kind key must be present: returns its name, or reports none / several
    /// (pointing at the second kind key, which is the one to remove).
    fn one_kind(
        &mut self,
        at: &YamlPath,
        what: &str,
        present: &[(&'static str, bool)],
    ) -> Option<&'static str> {
        let given: Vec<&'static str> = present
            .iter()
            .filter(|(_, p)| *p)
            .map(|(k, _)| *k)
            .collect();
        let expected = present
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ");
        let problem = |found: String| Problem::Kind {
            what: what.to_string(),
            found,
            expected,
        };
        match given.as_slice() {
            [one] => Some(one),
            [] => {
                self.report(at, Target::Value, problem("has no kind".into()));
                None
            }
            [first, ..] => {
                let listed = given
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                // Point at the kind key written last: the one most likely added by mistake.
                let last = given
                    .iter()
                    .map(|k| at.key(k))
                    .max_by_key(|p| locate(self.text, p, Target::Key))
                    .unwrap_or_else(|| at.clone());
                self.report(&last, Target::Key, problem(format!("has {listed}")));
                Some(first)
            }
        }
    }

    fn channel(&mut self, raw: RawChannel) -> Option<ChannelConfig> {
        let r = root();
        self.name(&r.key("name"), &raw.name);
        let source = self.source(&r.key("source"), &raw.source);
        let filter = self.script(&r.key("filter"), raw.filter.as_ref());
        let transform = self.script(&r.key("transform"), raw.transform.as_ref());
        let mut tables = BTreeMap::new();
        for (name, path) in &raw.tables.0 {
            let resolved = self.existing_file(&r.key("tables").key(name), "table", path);
            tables.insert(name.clone(), resolved);
        }
        let fhir_maps = raw
            .fhir_maps
            .as_deref()
            .map(|dir| self.fhir_maps(&r.key("fhir_maps"), dir));
        for (i, path) in raw.require.iter().enumerate() {
            self.hl7_path(&r.key("require").index(i), Target::Value, path);
        }
        let mut matches = Vec::new();
        for (path, pattern) in &raw.match_.0 {
            let at = r.key("match").key(path);
            self.hl7_path(&at, Target::Key, path);
            match regex::Regex::new(pattern) {
                Ok(pattern) => matches.push(MatchRule {
                    path: path.clone(),
                    pattern,
                }),
                Err(e) => self.invalid(&at, "regex", pattern, regex_reason(&e)),
            }
        }
        let (destinations, disabled) = self.destinations(&r.key("destinations"), &raw.destinations);
        let retention = raw
            .retention
            .as_ref()
            .map(|ret| self.retention(&r.key("retention"), ret));
        for (i, name) in raw.depends_on.iter().enumerate() {
            self.name(&r.key("depends_on").index(i), name);
        }
        let encryption = self.encryption(raw.encrypt, raw.encryption.as_ref());
        let alerts = self.alerts(raw.alerts.as_ref(), &raw.destinations);
        Some(ChannelConfig {
            name: raw.name,
            description: raw.description,
            file: self.file.to_path_buf(),
            source: source?,
            filter,
            transform,
            tables,
            fhir_maps,
            require: raw.require,
            matches,
            log_content: raw.log_content,
            destinations: destinations?,
            disabled,
            retention,
            depends_on: raw.depends_on,
            encrypt: raw.encrypt,
            encryption,
            alerts,
            yaml: Arc::from(self.text),
        })
    }

    /// `days: N` and `keep: DURATION` say the same thing in different units; exactly one is given.
    fn retention(&mut self, at: &YamlPath, ret: &RawRetention) -> Retention {
        const DAY: Duration = Duration::from_secs(86_400);
        let keep = match (ret.days, &ret.keep) {
            (Some(days), None) => {
                self.positive(&at.key("days"), Some(days));
                DAY.saturating_mul(days)
            }
            (None, Some(_)) => self.duration(&at.key("keep"), ret.keep.as_ref(), DAY),
            (Some(_), Some(_)) => {
                self.rule(
                    &at.key("keep"),
                    "give 'days' or 'keep', not both: they say the same thing in different units"
                        .into(),
                );
                DAY
            }
            (None, None) => {
                self.rule(
                    at,
                    "needs 'days' (e.g. days: 30) or 'keep' (e.g. keep: 36h)".into(),
                );
                DAY
            }
        };
        Retention {
            keep,
            keep_errored: ret.keep_errored,
            every: self.duration(
                &at.key("every"),
                ret.every.as_ref(),
                Retention::DEFAULT_EVERY,
            ),
        }
    }

    fn listen(&mut self, at: &YamlPath, Text(text): &Text) -> Option<SocketAddr> {
        let expanded = self.expand(at, text)?;
        match expanded.trim().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let reason =
                    "expected an IP address and a port, e.g. 127.0.0.1:2575 or 0.0.0.0:2575".into();
                self.invalid(at, "listen address", text, reason);
                None
            }
        }
    }

    fn source(&mut self, at: &YamlPath, raw: &RawSource) -> Option<SourceConfig> {
        let present = [
            ("mllp", raw.mllp.is_some()),
            ("file", raw.file.is_some()),
            ("http", raw.http.is_some()),
        ];
        let kind = match (
            self.one_kind(at, "source", &present)?,
            &raw.mllp,
            &raw.file,
            &raw.http,
        ) {
            ("mllp", Some(m), _, _) => SourceKind::Mllp(self.mllp_source(&at.key("mllp"), m)?),
            ("file", _, Some(f), _) => {
                let at = at.key("file");
                SourceKind::File(FileSource {
                    dir: self.folder(&at.key("dir"), &f.dir),
                    glob: f.glob.clone().unwrap_or_else(|| "*.hl7".into()),
                    poll: self.duration(&at.key("poll"), f.poll.as_ref(), Duration::from_secs(1)),
                })
            }
            ("http", _, _, Some(h)) => {
                let at = at.key("http");
                let path = h.path.clone().unwrap_or_else(|| "/hl7".into());
                if !path.starts_with('/') {
                    self.invalid(
                        &at.key("path"),
                        "URL path",
                        &path,
                        "must start with '/'".into(),
                    );
                }
                SourceKind::Http(HttpSource {
                    listen: self.listen(&at.key("listen"), &h.listen)?,
                    path,
                })
            }
            _ => return None,
        };
        Some(SourceConfig { kind, ack: raw.ack })
    }

    fn mllp_source(&mut self, at: &YamlPath, m: &RawMllpSource) -> Option<MllpSource> {
        let listen = self.listen(&at.key("listen"), &m.listen);
        self.positive(&at.key("max_connections"), m.max_connections);
        let max_frame_bytes = match &m.max_frame_bytes {
            None => DEFAULT_MAX_FRAME_BYTES,
            Some(Text(text)) => match parse_size(text) {
                Ok(n) if n > 0 => n,
                Ok(_) => {
                    self.invalid(
                        &at.key("max_frame_bytes"),
                        "size",
                        text,
                        "must be more than zero".into(),
                    );
                    DEFAULT_MAX_FRAME_BYTES
                }
                Err(reason) => {
                    self.invalid(&at.key("max_frame_bytes"), "size", text, reason);
                    DEFAULT_MAX_FRAME_BYTES
                }
            },
        };
        let (start_byte, end_bytes) = self.framing(at, m.start_byte, m.end_bytes.as_ref());
        let tls = m.tls.as_ref().map(|t| {
            let at = at.key("tls");
            ServerTls {
                cert: self.existing_file(&at.key("cert"), "certificate", &t.cert),
                key: self.existing_file(&at.key("key"), "key", &t.key),
                client_ca: t
                    .client_ca
                    .as_ref()
                    .map(|ca| self.existing_file(&at.key("client_ca"), "CA certificate", ca)),
            }
        });
        Some(MllpSource {
            listen: listen?,
            max_connections: m.max_connections,
            max_frame_bytes,
            read_timeout: self.optional_duration(&at.key("read_timeout"), m.read_timeout.as_ref()),
            idle_timeout: self.optional_duration(&at.key("idle_timeout"), m.idle_timeout.as_ref()),
            start_byte,
            end_bytes,
            tls,
        })
    }

    /// The start and end bytes of an MLLP source or destination: one or two end bytes, all distinct,
    /// so frames can be told apart (a peer with non-standard framing needs the same on both sides).
    fn framing(
        &mut self,
        at: &YamlPath,
        start: Option<u8>,
        end: Option<&Vec<u8>>,
    ) -> (u8, Vec<u8>) {
        let start = start.unwrap_or(DEFAULT_START_BYTE);
        let end = end.cloned().unwrap_or_else(|| DEFAULT_END_BYTES.to_vec());
        if end.is_empty() || end.len() > 2 {
            self.rule(
                &at.key("end_bytes"),
                "give one or two bytes, e.g. [0x1C, 0x0D]".into(),
            );
        } else if end.contains(&start) || end.first() == end.get(1) {
            self.rule(
                &at.key("end_bytes"),
                "the start byte and the end bytes must all differ, or frames cannot be told apart"
                    .into(),
            );
        }
        (start, end)
    }

    /// The enabled destinations (`None` when one is broken) and those `when_env` switched off.
    fn destinations(
        &mut self,
        at: &YamlPath,
        raw: &[RawDestination],
    ) -> (Option<Vec<DestinationConfig>>, Vec<DisabledDestination>) {
        if raw.is_empty() {
            self.rule(at, "a channel needs at least one destination".into());
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Some(Vec::with_capacity(raw.len()));
        let mut disabled = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            let at = at.index(i);
            if let Some(first) = seen.get(d.name.as_str()) {
                let problem = Problem::Duplicate {
                    what: "destination name",
                    name: d.name.clone(),
                    first: self.location(&root().key("destinations").index(*first).key("name")),
                };
                self.report(&at.key("name"), Target::Value, problem);
            } else {
                seen.insert(&d.name, i);
            }
            if let Some(var) = &d.when_env {
                if let Err(reason) = check_env_name(var) {
                    self.invalid(
                        &at.key("when_env"),
                        "environment variable name",
                        var,
                        reason,
                    );
                } else if (self.env)(var).is_none() {
                    disabled.push(DisabledDestination {
                        name: d.name.clone(),
                        when_env: var.clone(),
                    });
                    continue;
                }
            }
            let converted = self.destination(&at, d);
            out = out.zip(converted).map(|(mut v, d)| {
                v.push(d);
                v
            });
        }
        if !raw.is_empty() && disabled.len() == raw.len() {
            let vars: Vec<&str> = disabled.iter().map(|d| d.when_env.as_str()).collect();
            let message = format!(
                "every destination is switched off by when_env ({} not set); a channel needs at least one",
                vars.join(", ")
            );
            self.rule(at, message);
        }
        (out, disabled)
    }

    fn destination(&mut self, at: &YamlPath, d: &RawDestination) -> Option<DestinationConfig> {
        self.name(&at.key("name"), &d.name);
        let filter = self.script(&at.key("filter"), d.filter.as_ref());
        let transform = self.script(&at.key("transform"), d.transform.as_ref());
        let retry = self.retry(&at.key("retry"), d.retry.as_ref());
        let circuit_breaker = d.circuit_breaker.as_ref().map(|cb| {
            let at = at.key("circuit_breaker");
            self.positive(&at.key("failures"), Some(cb.failures));
            CircuitBreaker {
                failures: cb.failures,
                cool_down: self.duration(&at.key("cool_down"), Some(&cb.cool_down), Duration::ZERO),
            }
        });
        self.positive(&at.key("rate_limit"), d.rate_limit);
        let what = format!("destination '{}'", d.name);
        let present = [
            ("mllp", d.mllp.is_some()),
            ("file", d.file.is_some()),
            ("http", d.http.is_some()),
            ("channel", d.channel.is_some()),
        ];
        let kind = match (
            self.one_kind(at, &what, &present)?,
            &d.mllp,
            &d.file,
            &d.http,
            &d.channel,
        ) {
            ("mllp", Some(m), ..) => {
                DestinationKind::Mllp(self.mllp_destination(&at.key("mllp"), m)?)
            }
            ("file", _, Some(f), ..) => {
                DestinationKind::File(self.file_destination(&at.key("file"), f))
            }
            ("http", _, _, Some(h), _) => {
                DestinationKind::Http(self.http_destination(&at.key("http"), h))
            }
            ("channel", .., Some(c)) => {
                self.name(&at.key("channel"), c);
                DestinationKind::Channel(c.clone())
            }
            _ => return None,
        };
        let ordered = d
            .ordered
            .unwrap_or(!matches!(kind, DestinationKind::Http(_)));
        self.positive(&at.key("workers"), d.workers);
        let order = match (ordered, d.workers) {
            (true, Some(w)) if w > 1 => {
                self.rule(
                    &at.key("workers"),
                    "needs 'ordered: false': an ordered queue sends one message at a time".into(),
                );
                DeliveryOrder::Ordered
            }
            (true, _) => DeliveryOrder::Ordered,
            (false, workers) => DeliveryOrder::Unordered {
                workers: workers.unwrap_or(1).max(1),
            },
        };
        Some(DestinationConfig {
            name: d.name.clone(),
            filter,
            transform,
            kind,
            retry,
            circuit_breaker,
            rate_limit: d.rate_limit,
            order,
        })
    }

    fn retry(&mut self, at: &YamlPath, raw: Option<&RawRetry>) -> RetryPolicy {
        let default = RetryPolicy::default();
        let Some(raw) = raw else {
            return default;
        };
        let policy = RetryPolicy {
            initial: self.duration(&at.key("initial"), raw.initial.as_ref(), default.initial),
            max: self.duration(&at.key("max"), raw.max.as_ref(), default.max),
            max_attempts: raw.max_attempts.unwrap_or_default(),
        };
        if policy.initial > policy.max {
            let message = format!(
                "'initial' ({:?}) is longer than 'max' ({:?}); the first wait cannot exceed the longest",
                policy.initial, policy.max
            );
            self.rule(at, message);
        }
        policy
    }

    fn mllp_destination(
        &mut self,
        at: &YamlPath,
        m: &RawMllpDestination,
    ) -> Option<MllpDestination> {
        let connect = self.expand(&at.key("connect"), &m.connect.0)?;
        let valid = connect.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            let reason = "expected host:port, e.g. 127.0.0.1:6661 or lab.example.org:6661".into();
            self.invalid(&at.key("connect"), "address", &connect, reason);
        }
        let tls = m.tls.as_ref().map(|t| {
            let at = at.key("tls");
            if t.cert.is_some() != t.key.is_some() {
                self.rule(
                    &at,
                    "'cert' and 'key' go together: give both or neither".into(),
                );
            }
            let mut file = |key: &str, role, path: &Option<String>| {
                path.as_ref()
                    .map(|p| self.existing_file(&at.key(key), role, p))
            };
            ClientTls {
                ca: file("ca", "CA certificate", &t.ca),
                cert: file("cert", "certificate", &t.cert),
                key: file("key", "key", &t.key),
            }
        });
        let connect_timeout = self.duration(
            &at.key("connect_timeout"),
            m.connect_timeout.as_ref(),
            Duration::from_secs(10),
        );
        let send_timeout = self.duration(
            &at.key("send_timeout"),
            m.send_timeout.as_ref(),
            Duration::from_secs(10),
        );
        let ack_timeout = self.duration(
            &at.key("ack_timeout"),
            m.ack_timeout.as_ref(),
            Duration::from_secs(30),
        );
        let (start_byte, end_bytes) = self.framing(at, m.start_byte, m.end_bytes.as_ref());
        valid.then(|| MllpDestination {
            connect: connect.trim().to_string(),
            connect_timeout,
            send_timeout,
            ack_timeout,
            keepalive: self.keepalive(&at.key("keepalive"), m.keepalive.as_ref()),
            start_byte,
            end_bytes,
            tls,
            on_nak: m.on_nak,
        })
    }

    /// `true` (probes after 60s idle), `false`, or the idle time itself; the kernel counts it in whole
    /// seconds, so less than one second is refused rather than silently rounded.
    fn keepalive(&mut self, at: &YamlPath, value: Option<&Text>) -> Option<Duration> {
        const DEFAULT: Duration = Duration::from_secs(60);
        match value.map(|Text(t)| t.as_str()) {
            None | Some("true") => Some(DEFAULT),
            Some("false") => None,
            Some(text) => match parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(1) => Some(d),
                Ok(_) => {
                    self.invalid(
                        at,
                        "keep-alive idle time",
                        text,
                        "must be 1s or more".into(),
                    );
                    Some(DEFAULT)
                }
                Err(reason) => {
                    let reason =
                        format!("expected true, false or an idle time like 30s ({reason})");
                    self.invalid(at, "keep-alive idle time", text, reason);
                    Some(DEFAULT)
                }
            },
        }
    }

    fn file_destination(&mut self, at: &YamlPath, f: &RawFileDestination) -> FileDestination {
        let name = f.name.clone().unwrap_or_else(|| "${MSH-10}.hl7".into());
        if let Err(reason) = check_template(&name) {
            self.invalid(&at.key("name"), "file name template", &name, reason);
        }
        FileDestination {
            dir: self.folder(&at.key("dir"), &f.dir),
            name,
        }
    }

    fn http_destination(&mut self, at: &YamlPath, h: &RawHttpDestination) -> HttpDestination {
        let url = self.expand(&at.key("url"), &h.url);
        if let Some(url) = &url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let reason = "expected an http:// or https:// URL".into();
                self.invalid(&at.key("url"), "URL", url, reason);
            }
        }
        let mut headers = BTreeMap::new();
        for (name, value) in &h.headers.0 {
            let at = at.key("headers").key(name);
            let value = self.expand(&at, value).unwrap_or_default();
            headers.insert(name.clone(), value);
        }
        HttpDestination {
            url: url.unwrap_or_default(),
            method: h.method,
            headers,
            timeout: self.duration(
                &at.key("timeout"),
                h.timeout.as_ref(),
                Duration::from_secs(30),
            ),
        }
    }
}

/// The regex crate explains with a multi-line drawing; the last line says what is wrong.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_string()
}

/// Check `${...}` placeholders of a file name template, and that it stays inside its folder.
fn check_template(template: &str) -> Result<(), String> {
    if template.split(['/', '\\']).any(|part| part == "..") || template.starts_with('/') {
        return Err("must stay inside the destination folder (no '..', not absolute)".into());
    }
    let mut rest = template;
    while let Some((_, after)) = rest.split_once("${") {
        let (inner, tail) = after.split_once('}').ok_or("'${' is not closed by '}'")?;
        let inner = inner.trim();
        if !matches!(inner, "message_id" | "channel") {
            check_hl7_path(inner).map_err(|e| {
                format!("placeholder '${{{inner}}}': {e}; or use ${{message_id}} or ${{channel}}")
            })?;
        }
        rest = tail;
    }
    Ok(())
}
