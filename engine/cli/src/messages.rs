//! `junction messages`: browse, show and reprocess stored messages. With the engine stopped it reads the
//! store files in `--data`; with `--admin ADDR` it asks the running engine's admin API. Both paths return
//! the same result types, rendered by the same functions, so the output is the same.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use junction_runtime::browse::{
    self, Accessor, AuditLog, ListParams, MessageList, MessageView, ReprocessReport,
    ReprocessRequest, View,
};
use junction_store::{SledStore, Store};
use serde::de::DeserializeOwned;

/// Arguments of `junction messages`.
#[derive(Args)]
pub struct MessagesArgs {
    #[command(subcommand)]
    command: MessagesCommand,
}

/// Where the messages are: the store files, or a running engine.
#[derive(Args)]
struct Target {
    /// Channel name.
    #[arg(long)]
    channel: String,
    /// Data folder of a stopped engine (the store is DATA/store, the audit log DATA/audit.jsonl).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Channels folder of that engine, read offline for the keys of encrypted channels.
    #[arg(long, default_value = "channels")]
    channels: PathBuf,
    /// Ask the running engine's admin API at this address instead (e.g. 127.0.0.1:9900).
    #[arg(long)]
    admin: Option<String>,
    /// File holding the admin token (default: the JUNCTION_ADMIN_TOKEN environment variable).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum MessagesCommand {
    /// One line per message, newest first: sequence, time, type, control id, status per destination,
    /// error.
    List {
        #[command(flatten)]
        target: Target,
        /// Only messages with this status: received, filtered, queued, sent or errored.
        #[arg(long)]
        status: Option<String>,
        /// Only messages received since this time: RFC 3339 (2026-01-31T08:00:00Z) or an age (90s, 15m,
        /// 1h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only messages with this MSH-10.
        #[arg(long)]
        control_id: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One message: its history with every attempt and response, the raw message and each output.
    Show {
        #[command(flatten)]
        target: Target,
        /// Sequence id (first column of `list`).
        seq: u64,
        /// Only the message as received, one segment per line.
        #[arg(long, conflicts_with_all = ["transformed", "destination"])]
        raw: bool,
        /// Only the outputs, one per destination.
        #[arg(long, conflicts_with = "destination")]
        transformed: bool,
        /// Only this destination: its state, attempts and output.
        #[arg(long)]
        destination: Option<String>,
    },
    /// Run messages again through the current scripts. The originals stay; each copy links to its
    /// original and back. With the engine stopped, the copies are processed when it starts.
    Reprocess {
        #[command(flatten)]
        target: Target,
        /// Sequence ids to run again.
        #[arg(required_unless_present = "status")]
        seqs: Vec<u64>,
        /// Every message with this status not reprocessed before (e.g. errored).
        #[arg(long)]
        status: Option<String>,
        /// Queue only this destination's output of the new run.
        #[arg(long)]
        destination: Option<String>,
    },
}

/// Why a `messages` command failed, as told to the user.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// Run `junction messages`.
pub fn run(args: MessagesArgs) -> ExitCode {
    match execute(args.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Failure(message)) => {
            eprintln!("junction messages: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the result; `Ok(false)` when it reports a failure of its own (a message not reprocessed).
fn execute(command: MessagesCommand) -> Result<bool, Failure> {
    match command {
        MessagesCommand::List {
            target,
            status,
            since,
            control_id,
            limit,
        } => {
            let params = ListParams {
                status,
                since,
                control_id,
                limit: Some(limit),
            };
            let list: MessageList = match target.admin {
                Some(_) => {
                    let mut query = vec![("limit", limit.to_string())];
                    for (name, value) in [
                        ("status", &params.status),
                        ("since", &params.since),
                        ("control_id", &params.control_id),
                    ] {
                        if let Some(v) = value {
                            query.push((name, v.clone()));
                        }
                    }
                    Api::new(&target)?.call(reqwest::Method::GET, &[], &query, None)?
                }
                None => offline(&target, |store, log, by| {
                    browse::list_messages(store, log, by, &target.channel, &params)
                })?,
            };
            print(&target, &list, MessageList::render);
            Ok(true)
        }
        MessagesCommand::Show {
            target,
            seq,
            raw,
            transformed,
            destination,
        } => {
            let view = match (raw, transformed, destination) {
                (_, _, Some(d)) => View::Destination(d),
                (true, _, None) => View::Raw,
                (false, true, None) => View::Transformed,
                (false, false, None) => View::All,
            };
            let shown: MessageView = match target.admin {
                Some(_) => {
                    let query = match &view {
                        View::All => vec![],
                        View::Raw => vec![("view", "raw".to_owned())],
                        View::Transformed => vec![("view", "transformed".to_owned())],
                        View::Destination(d) => vec![("destination", d.clone())],
                    };
                    let seq = seq.to_string();
                    Api::new(&target)?.call(reqwest::Method::GET, &[&seq], &query, None)?
                }
                None => offline(&target, |store, log, by| {
                    browse::show_message(store, log, by, &target.channel, seq, &view)
                })?,
            };
            print(&target, &shown, MessageView::render);
            Ok(true)
        }
        MessagesCommand::Reprocess {
            target,
            seqs,
            status,
            destination,
        } => {
            let request = ReprocessRequest {
                seqs,
                status,
                destination,
            };
            let report: ReprocessReport = match target.admin {
                Some(_) => {
                    let body = serde_json::to_vec(&request)?;
                    Api::new(&target)?.call(reqwest::Method::POST, &[], &[], Some(body))?
                }
                None => {
                    let destinations = configured_destinations(&target);
                    offline(&target, |store, log, by| {
                        browse::reprocess(
                            store,
                            log,
                            by,
                            &target.channel,
                            &request,
                            destinations.as_deref(),
                        )
                    })?
                }
            };
            print(&target, &report, ReprocessReport::render);
            if report.messages.is_empty() {
                eprintln!("junction messages: no message matched; nothing reprocessed");
            } else if target.admin.is_none() {
                eprintln!(
                    "the copies run when the engine starts (junction run --data {})",
                    target.data.display()
                );
            }
            Ok(report.messages.iter().all(|m| m.copy.is_some()))
        }
    }
}

fn print<T: serde::Serialize>(target: &Target, value: &T, render: fn(&T) -> String) {
    if target.json {
        match serde_json::to_string_pretty(value) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("junction messages: cannot write JSON: {e}"),
        }
    } else {
        print!("{}", render(value));
    }
}

/// Opens the store of a stopped engine and runs `f` on it as the OS user, audited in DATA/audit.jsonl.
fn offline<T>(
    target: &Target,
    f: impl FnOnce(&dyn Store, &AuditLog, &Accessor) -> Result<T, browse::BrowseError>,
) -> Result<T, Failure> {
    let dir = target.data.join("store");
    if !dir.join("db").exists() {
        return Err(Failure(format!(
            "no message store at {} (is --data the folder `junction run --data` uses?)",
            dir.display()
        )));
    }
    let store = SledStore::open(&dir).map_err(|e| {
        if e.is_locked() {
            Failure(format!(
                "the store at {} is in use by a running engine; stop the engine, or ask it through \
                 its admin API with --admin ADDR (token in JUNCTION_ADMIN_TOKEN or --admin-token-file)",
                dir.display()
            ))
        } else {
            Failure(e.to_string())
        }
    })?;
    // Encrypted channels are readable offline only with their keys, which the channel files name.
    if target.channels.is_dir() {
        match junction_config::load_dir(&target.channels) {
            Ok(configs) => junction_runtime::encryption::install_all(&store, &configs),
            Err(diagnostics) => eprintln!(
                "warning: channels in {} not loaded, encrypted messages stay unreadable:\n{diagnostics}",
                target.channels.display()
            ),
        }
    }
    let log = AuditLog::in_data_dir(&target.data);
    Ok(f(&store, &log, &Accessor::os_user())?)
}

/// The channel's destination names from the channels folder, when it is there and loads; `None`
/// otherwise (a destination then cannot be checked before reprocessing).
fn configured_destinations(target: &Target) -> Option<Vec<String>> {
    let configs = junction_config::load_dir(&target.channels).ok()?;
    let channel = configs.iter().find(|c| c.name == target.channel)?;
    Some(
        channel
            .destinations
            .iter()
            .map(|d| d.name.clone())
            .collect(),
    )
}

/// The running engine's admin API.
struct Api {
    client: reqwest::blocking::Client,
    base: reqwest::Url,
    channel: String,
    token: String,
}

fn read_token(file: Option<&Path>) -> Result<String, Failure> {
    crate::status::admin_token(file)?.ok_or_else(|| {
        Failure("--admin needs a token: set JUNCTION_ADMIN_TOKEN or pass --admin-token-file".into())
    })
}

impl Api {
    fn new(target: &Target) -> Result<Self, Failure> {
        let addr = target.admin.as_deref().unwrap_or_default();
        let base = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        let base = reqwest::Url::parse(&base)
            .map_err(|e| Failure(format!("--admin {addr:?} is not an address: {e}")))?;
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            base,
            channel: target.channel.clone(),
            token: read_token(target.admin_token_file.as_deref())?,
        })
    }

    /// `METHOD /channels/{channel}/messages[/{more}]` (or `/reprocess` for POST) with the token.
    fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        more: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<T, Failure> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Failure(format!("--admin {} cannot take a path", self.base)))?;
            path.pop_if_empty().extend(["channels", &self.channel]);
            if method == reqwest::Method::POST {
                path.push("reprocess");
            } else {
                path.push("messages").extend(more);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .client
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().map_err(|e| {
            Failure(format!(
                "cannot reach the engine's admin API at {}: {e}",
                self.base
            ))
        })?;
        let status = response.status();
        let text = response.text()?;
        if !status.is_success() {
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or(text);
            return Err(Failure(format!("the engine answered {status}: {reason}")));
        }
        serde_json::from_str(&text)
            .map_err(|e| Failure(format!("unexpected answer from {url}: {e}")))
    }
}
