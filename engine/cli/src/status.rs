//! `junction status`: the channel table of a running engine, read from its admin API.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use junction_runtime::admin::{self, AdminToken};
use serde_json::Value;

/// Environment variable holding the admin API token.
pub const TOKEN_ENV: &str = "JUNCTION_ADMIN_TOKEN";

/// Arguments of `junction status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Address of the engine's admin API (`junction run --admin`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    admin: String,
    /// File holding the admin API bearer token (instead of JUNCTION_ADMIN_TOKEN); its first token
    /// is used.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The admin tokens from `file` when given (one per line, `NAME TOKEN` or a bare `TOKEN` named
/// `admin`), else the one in JUNCTION_ADMIN_TOKEN (named `env`); empty when neither is set or the
/// value is blank.
pub fn admin_tokens(file: Option<&Path>) -> Result<Vec<AdminToken>, String> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
            admin::parse_token_file(&text)
                .map_err(|e| format!("token file {}: {e}", path.display()))
        }
        None => {
            let raw = std::env::var(TOKEN_ENV).unwrap_or_default();
            let secret = raw.trim();
            Ok(if secret.is_empty() {
                Vec::new()
            } else {
                vec![AdminToken {
                    name: admin::ENV_TOKEN_NAME.to_owned(),
                    secret: secret.to_owned(),
                }]
            })
        }
    }
}

/// The token a client command sends: the first one of [`admin_tokens`], so the engine's own token
/// file works for the CLI too.
pub fn admin_token(file: Option<&Path>) -> Result<Option<String>, String> {
    Ok(admin_tokens(file)?.into_iter().next().map(|t| t.secret))
}

/// Why the engine could not be asked.
#[derive(Debug, thiserror::Error)]
enum StatusError {
    #[error("cannot reach the admin API at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("the admin API at {0} did not answer with HTTP")]
    NotHttp(String),
    #[error("the admin API refused the token (HTTP {0})")]
    Refused(u16),
    #[error("the admin API answered HTTP {0}: {1}")]
    Status(u16, String),
    #[error("the admin API's answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// GET `path` from the admin API at `addr`; HTTP/1.1 with `Connection: close`, so the body is
/// everything after the headers.
fn get(addr: &str, token: &str, path: &str) -> Result<Value, StatusError> {
    let connect = |source| StatusError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let target = addr
        .to_socket_addrs()
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(std::io::ErrorKind::NotFound.into()))?;
    let mut stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(connect)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(connect)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .map_err(connect)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(connect)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| StatusError::NotHttp(addr.to_owned()))?;
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| StatusError::NotHttp(addr.to_owned()))?;
    match code {
        200 => Ok(serde_json::from_str(body)?),
        401 | 403 => Err(StatusError::Refused(code)),
        _ => Err(StatusError::Status(code, body.trim().to_owned())),
    }
}

/// A JSON number or `-`.
fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}s"),
            _ => n.to_string(),
        },
        _ => String::from("-"),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_owned()
}

/// Rows as left-aligned columns, each as wide as its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The channel and destination tables of a `/channels` answer.
fn render(status: &Value) -> String {
    let empty = Vec::new();
    let channels = status["channels"].as_array().unwrap_or(&empty);
    let mut rows = vec![[
        "CHANNEL", "STATE", "RECEIVED", "FILTERED", "QUEUED", "SENT", "ERRORED",
    ]
    .map(String::from)
    .to_vec()];
    let mut dest_rows = vec![[
        "CHANNEL",
        "DESTINATION",
        "QUEUE",
        "OLDEST",
        "CIRCUIT",
        "SENT",
        "ERRORED",
        "RETRIED",
    ]
    .map(String::from)
    .to_vec()];
    for c in channels {
        rows.push(vec![
            text(&c["name"]),
            text(&c["state"]),
            num(&c["received"]),
            num(&c["filtered"]),
            num(&c["queued"]),
            num(&c["sent"]),
            num(&c["errored"]),
        ]);
        for d in c["destinations"].as_array().unwrap_or(&empty) {
            let circuit = if d["circuit_open"].as_bool() == Some(true) {
                "open"
            } else {
                "closed"
            };
            dest_rows.push(vec![
                text(&c["name"]),
                text(&d["name"]),
                num(&d["queue_depth"]),
                num(&d["oldest_age_seconds"]),
                circuit.to_owned(),
                num(&d["sent"]),
                num(&d["errored"]),
                num(&d["retried"]),
            ]);
        }
    }
    let mut out = format!("engine: {}\n", text(&status["state"]));
    if let Some(down) = status["down"].as_array().filter(|d| !d.is_empty()) {
        let names: Vec<String> = down.iter().map(text).collect();
        out.push_str(&format!("not running: {}\n", names.join(", ")));
    }
    out.push('\n');
    out.push_str(&table(&rows));
    if dest_rows.len() > 1 {
        out.push('\n');
        out.push_str(&table(&dest_rows));
    }
    out
}

/// Run `junction status`.
pub fn run(args: StatusArgs) -> ExitCode {
    let token = match admin_token(args.admin_token_file.as_deref()) {
        Ok(Some(t)) => t,
        Ok(None) => {
            eprintln!("junction status: no admin token (set {TOKEN_ENV} or --admin-token-file)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("junction status: {e}");
            return ExitCode::FAILURE;
        }
    };
    match get(&args.admin, &token, "/channels") {
        Ok(status) if args.json => {
            println!("{status:#}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            print!("{}", render(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("junction status: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_channels_and_destinations() {
        let status = serde_json::json!({
            "state": "running", "down": [],
            "channels": [{
                "name": "adt", "state": "paused", "received": 12, "filtered": 1, "queued": 3,
                "sent": 8, "errored": 0,
                "destinations": [{ "name": "lab", "queue_depth": 3, "oldest_age_seconds": 2.31,
                    "circuit_open": true, "sent": 8, "errored": 0, "retried": 4 }]
            }]
        });
        let out = render(&status);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "engine: running");
        assert!(lines[2].starts_with("CHANNEL  STATE   RECEIVED"), "{out}");
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(row, ["adt", "paused", "12", "1", "3", "8", "0"]);
        let dest: Vec<&str> = lines[6].split_whitespace().collect();
        assert_eq!(dest, ["adt", "lab", "3", "2.3s", "open", "8", "0", "4"]);
    }
}
