//! Alerts and encryption at rest, seen from outside `junction run`: a webhook receiver gets a
//! `firing` event when a destination goes down and a `resolved` one when it comes back; an encrypted
//! channel delivers the message intact while its store on disk never holds the patient's name.
#![allow(clippy::unwrap_used)]

#[path = "support/engine.rs"]
mod engine;
#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use engine::{connect_retrying, control_ids_in, eventually, Engine};
use http_server::Response;

/// A distinctive patient name to look for in the store's files.
const PATIENT: &str = "QUIXOTEFAKENAME";

fn message(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|SEND|FAC|RECV|FAC|20260101120000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A01|20260101120000\r\
         PID|1||{control_id}^^^FAC^MR||{PATIENT}^ALONSO||19800101|M\r\
         PV1|1|I|W1^1^1\r"
    )
}

/// A webhook receiver: answers every POST with 200 and hands its JSON body to the test.
fn webhook_receiver() -> (SocketAddr, mpsc::Receiver<serde_json::Value>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let addr = http_server::serve(move |request| {
        if let Ok(json) = serde_json::from_slice(&request.body) {
            let _ = tx.lock().unwrap().send(json);
        }
        Response::text(200, "")
    });
    (addr, rx)
}

/// Collects webhook events until one matches `alert`/`state`, or panics after `secs`.
fn wait_for(
    events: &mpsc::Receiver<serde_json::Value>,
    seen: &mut Vec<serde_json::Value>,
    alert: &str,
    state: &str,
    secs: u64,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(e) = seen
            .iter()
            .find(|e| e["alert"] == alert && e["state"] == state)
        {
            return e.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(e) => seen.push(e),
            Err(_) => panic!("no {alert} {state} event within {secs}s; got {seen:#?}"),
        }
    }
}

#[test]
fn webhook_gets_firing_then_resolved_when_a_destination_goes_down_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = webhook_receiver();
    let source_port = support::free_port();
    let dead_port = support::free_port();
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "adt.yaml",
        &format!(
            r#"name: adt
source:
  mllp: {{ listen: "127.0.0.1:{source_port}" }}
destinations:
  - name: lab
    mllp: {{ connect: "127.0.0.1:{dead_port}", connect_timeout: 1s }}
    retry: {{ initial: 200ms, max: 500ms }}
    circuit_breaker: {{ failures: 2, cool_down: 1s }}
alerts:
  webhook: http://{hook}/alerts
  queue_age: 2s
  circuit_open: true
"#
        ),
    );
    engine.start();
    let mut client = connect_retrying(SocketAddr::from(([127, 0, 0, 1], source_port)));
    assert_eq!(client.send(&message("A1")).unwrap().0, "AA");

    let mut seen = Vec::new();
    let open = wait_for(&events, &mut seen, "circuit_open", "firing", 20);
    assert_eq!(open["channel"], "adt");
    assert_eq!(open["destination"], "lab");
    assert!(open["at"].as_u64().is_some(), "{open}");
    let old = wait_for(&events, &mut seen, "queue_age", "firing", 20);
    assert_eq!(old["destination"], "lab");
    let detail = old["detail"].as_str().unwrap();
    assert!(detail.contains("limit 2s"), "{detail}");
    assert!(!detail.contains(PATIENT), "alerts never quote messages");

    // The destination comes back: the queue drains and both alerts resolve.
    let sink = dir.path().join("sink.hl7");
    let _listener = support::spawn_junction(&[
        "listen",
        "--port",
        &dead_port.to_string(),
        "--out",
        sink.to_str().unwrap(),
    ]);
    wait_for(&events, &mut seen, "circuit_open", "resolved", 30);
    wait_for(&events, &mut seen, "queue_age", "resolved", 30);
    assert!(eventually(10, || control_ids_in(&sink) == ["A1"]));

    // Once per episode: exactly one firing and one resolved of each, in that order.
    for alert in ["circuit_open", "queue_age"] {
        let states: Vec<&str> = seen
            .iter()
            .filter(|e| e["alert"] == alert)
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["firing", "resolved"], "{alert}: {seen:#?}");
    }
    let log = engine.log_text();
    assert!(
        log.contains("alert firing") && log.contains("alert resolved"),
        "{log}"
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn an_encrypted_channel_delivers_intact_and_stores_no_patient_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/current.key"), "5a".repeat(32)).unwrap();
    let sink = dir.path().join("sink.hl7");
    let (_listener, sink_addr) = support::spawn_listen(&sink);
    let source_port = support::free_port();
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "adt.yaml",
        &format!(
            r#"name: adt
source:
  mllp: {{ listen: "127.0.0.1:{source_port}" }}
encrypt: true
encryption: {{ key_file: keys/current.key }}
destinations:
  - name: lab
    mllp: {{ connect: "{sink_addr}" }}
"#
        ),
    );
    engine.start();
    let mut client = connect_retrying(SocketAddr::from(([127, 0, 0, 1], source_port)));
    for id in ["E1", "E2", "E3"] {
        assert_eq!(client.send(&message(id)).unwrap().0, "AA");
    }
    assert!(eventually(20, || control_ids_in(&sink).len() == 3));
    assert_eq!(engine.stop(), Some(0));

    let delivered = std::fs::read_to_string(&sink).unwrap();
    assert!(
        delivered.contains(&format!("{PATIENT}^ALONSO")),
        "delivered in clear"
    );
    let stored = support::bytes_under(&engine.data);
    assert!(!stored.is_empty());
    let found = stored
        .windows(PATIENT.len())
        .any(|w| w == PATIENT.as_bytes());
    assert!(!found, "the patient name is in the store's files");
    assert!(engine
        .log_text()
        .contains("stored message content is encrypted"));
}

#[test]
fn webhook_gets_an_error_burst_while_traffic_flows_and_its_end_when_the_window_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = webhook_receiver();
    let sink = dir.path().join("sink.hl7");
    let (_listener, sink_addr) = support::spawn_listen(&sink);
    let source_port = support::free_port();
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "adt.yaml",
        &format!(
            r#"name: adt
source:
  mllp: {{ listen: "127.0.0.1:{source_port}" }}
transform: |
  if msg["MSH-10"].starts_with("BAD") {{ throw "cannot map this one"; }}
  msg
destinations:
  - name: lab
    mllp: {{ connect: "{sink_addr}" }}
alerts:
  webhook: http://{hook}/alerts
  errors: {{ count: 3, within: 3s }}
"#
        ),
    );
    engine.start();
    let mut client = connect_retrying(SocketAddr::from(([127, 0, 0, 1], source_port)));
    let mut sent = 0;
    let mut send = |prefix: &str| {
        sent += 1;
        let id = format!("{prefix}{sent}");
        assert_eq!(client.send(&message(&id)).unwrap().0, "AA", "{id}");
    };
    // Two errors among good messages: below the limit, nothing fires.
    for prefix in ["OK", "BAD", "OK", "BAD", "OK"] {
        send(prefix);
    }
    assert!(eventually(10, || control_ids_in(&sink).len() == 3));
    // Long enough for a check (every second) to see them, well inside the window.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        events.try_recv().is_err(),
        "two errors in the window must not fire"
    );
    // The third (and fourth) error while good messages keep flowing: firing.
    for prefix in ["BAD", "OK", "BAD", "OK"] {
        send(prefix);
    }
    let mut seen = Vec::new();
    let fired = wait_for(&events, &mut seen, "errors", "firing", 10);
    assert_eq!(fired["channel"], "adt");
    assert_eq!(fired["destination"], serde_json::Value::Null);
    let detail = fired["detail"].as_str().unwrap();
    assert!(
        detail.contains("messages errored in the last 3s (limit 3)"),
        "{detail}"
    );
    assert!(!detail.contains(PATIENT), "alerts never quote messages");
    // Only good messages now: once the errors are older than the window, it resolves, once.
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        send("OK");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(&events, &mut seen, "errors", "resolved", 10);
    let states: Vec<&str> = seen
        .iter()
        .filter(|e| e["alert"] == "errors")
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["firing", "resolved"], "{seen:#?}");
    let delivered = control_ids_in(&sink);
    assert!(delivered.iter().all(|id| id.starts_with("OK")));
    assert_eq!(engine.stop(), Some(0));
}
