//! Helpers for end-to-end tests of the admin API: a blocking HTTP/1.1 client and an engine with
//! the API switched on.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The token the test engines run with.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// One HTTP request with `Connection: close`; returns (status, body). `token` adds the bearer header.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    request(addr, method, path, token, b"")
}

/// [`http`] with a request body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// GET with the test token, body parsed as JSON; panics unless 200.
pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http(addr, "GET", path, Some(TOKEN));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `/channels` entry of `name`.
pub fn channel_status(addr: SocketAddr, name: &str) -> serde_json::Value {
    let all = get_json(addr, "/channels");
    all["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no channel {name} in {all}"))
}

/// Turn the admin API on for `engine` on a free port with the test token in the environment.
pub fn enable(engine: &mut super::engine::Engine) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], super::support::free_port()));
    engine.args = vec!["--admin".into(), addr.to_string()];
    engine.envs = vec![("JUNCTION_ADMIN_TOKEN".into(), TOKEN.into())];
    addr
}

/// Wait until `/health` answers 200; panics after 20 s.
pub fn wait_ready(addr: SocketAddr) {
    let ready = super::engine::eventually(20, || {
        TcpStream::connect(addr).is_ok() && http(addr, "GET", "/health", Some(TOKEN)).0 == 200
    });
    assert!(ready, "admin API at {addr} never reported ready");
}
