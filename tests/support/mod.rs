//! Helpers for end-to-end tests that drive the real `junction` binary and third-party tools.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `junction` binary built for this test run.
pub fn junction_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_junction"))
}

/// The repository's `tests/` directory.
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `addr`; panics after 10 s.
pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listening on {addr} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A child process killed (by its own handle) when the test ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `junction` with `args` (stdout and stderr piped).
pub fn spawn_junction(args: &[&str]) -> Process {
    Process(
        Command::new(junction_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Starts `junction listen` on a free port writing to `out`; returns once it accepts connections.
pub fn spawn_listen(out: &std::path::Path) -> (Process, SocketAddr) {
    let port = free_port();
    let process = spawn_junction(&[
        "listen",
        "--port",
        &port.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr);
    (process, addr)
}

/// Reads the first line of a child's stdout.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim_end().to_owned()
}

/// Whether a missing third-party tool of `family` ("python", "node") must fail the test instead of
/// skipping it: JUNCTION_REQUIRE_INTEROP lists the families `.ci/run` installed (`python,node`), or is 1.
pub fn interop_required(family: &str) -> bool {
    std::env::var("JUNCTION_REQUIRE_INTEROP")
        .is_ok_and(|v| v.split(',').any(|f| f.trim() == "1" || f.trim() == family))
}

/// Finds a third-party tool of `family`: `$env_var` if set, else `default` (relative to tests/) if it
/// exists. When absent, prints a SKIP line and returns `None`, or panics if [`interop_required`].
pub fn interop_tool(family: &str, what: &str, env_var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| tests_dir().join(default));
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{what} not found at {} (set {env_var} or install it, see .ci/run)",
        path.display()
    );
    if interop_required(family) {
        panic!("JUNCTION_REQUIRE_INTEROP requires {family} tools but {message}");
    }
    println!("SKIP: {message}");
    None
}

/// Runs `junction` with `args` to completion.
pub fn run_junction(args: &[&str]) -> std::process::Output {
    Command::new(junction_bin()).args(args).output().unwrap()
}

/// `junction messages list --channel CHANNEL --data DATA --json` of a stopped engine: every stored
/// message's summary (newest first).
pub fn stored_messages(data: &std::path::Path, channel: &str) -> Vec<serde_json::Value> {
    let out = run_junction(&[
        "messages",
        "list",
        "--channel",
        channel,
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "100000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "messages list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list["messages"].as_array().cloned().unwrap_or_default()
}

/// `junction messages show --channel CHANNEL --data DATA --json SEQ` of a stopped engine.
pub fn stored_message(data: &std::path::Path, channel: &str, seq: u64) -> serde_json::Value {
    let out = run_junction(&[
        "messages",
        "show",
        "--channel",
        channel,
        "--data",
        data.to_str().unwrap(),
        "--json",
        &seq.to_string(),
    ]);
    assert!(
        out.status.success(),
        "messages show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every byte of every file under `dir` (to check what a store holds on disk).
pub fn bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(bytes_under(&path));
        } else {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}
