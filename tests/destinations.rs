//! End-to-end tests of destinations against peers the tests run themselves on 127.0.0.1: how HTTP
//! statuses and MLLP NAKs are classified, how many attempts a message gets, that one destination being
//! down never holds up another, hand-over to another channel, the circuit breaker, the rate limit, and
//! that an unordered queue lets later messages pass a poisoned one.
#![allow(clippy::unwrap_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/engine.rs"]
mod engine;
#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{adt, eventually, Engine, MllpClient};
use http_server::{Request, Response};
use junction_store::{DestinationRecord, SledStore, Status, Step, Store};

/// Short retries so that a test sees several attempts in well under a second.
const FAST_RETRY: &str = "retry: { initial: 50ms, max: 200ms }";

/// MSH-10 of an HL7 message (segments separated by CR).
fn control_id_of(message: &str) -> String {
    message
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSH|"))
        .and_then(|msh| msh.split('|').nth(9))
        .unwrap_or_default()
        .to_owned()
}

/// How a peer answers the `earlier`-th repeat (0 = first time) of the message with a control id.
type Policy<T> = Arc<dyn Fn(&str, usize) -> T + Send + Sync>;

/// Record one arrival and return how many times this control id arrived before.
fn record_arrival(seen: &Mutex<Vec<(String, Instant)>>, id: &str) -> usize {
    let mut seen = seen.lock().unwrap();
    let earlier = seen.iter().filter(|(i, _)| i == id).count();
    seen.push((id.to_owned(), Instant::now()));
    earlier
}

/// An MLLP receiver that answers each frame with the code its policy picks and records every arrival
/// (retries included) with its time. While `broken`, it accepts each connection and closes it at once:
/// a partner whose service is down behind a listening socket, one failed attempt per connection.
struct MllpPeer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
    connections: Arc<Mutex<Vec<Instant>>>,
    broken: Arc<AtomicBool>,
}

impl MllpPeer {
    /// A receiver on a free port.
    fn start(answer: impl Fn(&str, usize) -> &'static str + Send + Sync + 'static) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), answer)
    }

    /// A receiver on `addr` (e.g. the address of a partner that was down until now).
    fn start_on(
        addr: SocketAddr,
        answer: impl Fn(&str, usize) -> &'static str + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).unwrap();
        let peer = Self {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            connections: Arc::default(),
            broken: Arc::default(),
        };
        let answer: Policy<&'static str> = Arc::new(answer);
        let (seen, connections, broken) = (
            Arc::clone(&peer.seen),
            Arc::clone(&peer.connections),
            Arc::clone(&peer.broken),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Recorded before any close, so earlier than the sender seeing a failure.
                connections.lock().unwrap().push(Instant::now());
                if broken.load(SeqCst) {
                    continue;
                }
                let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                std::thread::spawn(move || serve_mllp(stream, &seen, &answer));
            }
        });
        peer
    }

    /// A receiver that is broken until [`MllpPeer::repair`], then accepts everything.
    fn broken() -> Self {
        let peer = Self::start(|_, _| "AA");
        peer.broken.store(true, SeqCst);
        peer
    }

    fn repair(&self) {
        self.broken.store(false, SeqCst);
    }

    /// When each connection came in.
    fn connections(&self) -> Vec<Instant> {
        self.connections.lock().unwrap().clone()
    }

    /// Control ids in arrival order, retries included.
    fn ids(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How often `id` arrived.
    fn times(&self, id: &str) -> usize {
        self.ids().iter().filter(|i| *i == id).count()
    }

    /// Arrival times, in order.
    fn arrivals(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().iter().map(|(_, t)| *t).collect()
    }
}

fn serve_mllp(
    mut stream: TcpStream,
    seen: &Mutex<Vec<(String, Instant)>>,
    answer: &Policy<&'static str>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(2).position(|w| w == [0x1C, 0x0D]) {
            let frame: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&frame[..end]);
            let id = control_id_of(text.trim_start_matches('\u{b}'));
            let code = answer(&id, record_arrival(seen, &id));
            let ack = format!(
                "\u{b}MSH|^~\\&|PEER|FAC|JUNCTION|FAC|20260101120000||ACK|A{id}|P|2.5.1\rMSA|{code}|{id}|peer says {code}\r\u{1c}\r"
            );
            if stream.write_all(ack.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An HTTP server that answers each request with the status its policy picks for the body's control
/// id and records every request.
struct HttpPeer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpPeer {
    fn start(status: impl Fn(&str, usize) -> u16 + Send + Sync + 'static) -> Self {
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let shared = Arc::clone(&requests);
        let addr = http_server::serve(move |request| {
            let id = control_id_of(&request.text());
            let earlier = {
                let mut all = shared.lock().unwrap();
                let earlier = all
                    .iter()
                    .filter(|r| control_id_of(&r.text()) == id)
                    .count();
                all.push(request.clone());
                earlier
            };
            let code = status(&id, earlier);
            Response::text(code, format!("answer {code} for {id}"))
        });
        Self { addr, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests carried the message `id`.
    fn times(&self, id: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| control_id_of(&r.text()) == id)
            .count()
    }
}

/// A channel file with an MLLP source on `listen` and the given `destinations:` items (YAML text,
/// each item starting with `  - name:`).
fn channel_yaml(name: &str, listen: SocketAddr, destinations: &str) -> String {
    format!(
        "name: {name}\nsource:\n  mllp: {{ listen: \"{listen}\" }}\ndestinations:\n{destinations}"
    )
}

/// An engine running one channel `name` with `destinations`; returns it and the source address.
fn start_channel(root: &Path, name: &str, destinations: &str) -> (Engine, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(root);
    engine.channel(
        &format!("{name}.yaml"),
        &channel_yaml(name, addr, destinations),
    );
    engine.start();
    support::wait_listening(addr);
    (engine, addr)
}

/// Send each control id as an ADT message, asserting the source accepts it.
fn send_all(addr: SocketAddr, ids: &[String]) {
    let mut client = MllpClient::connect(addr).unwrap();
    for id in ids {
        let (code, msa2) = client.send(&adt(id)).unwrap();
        assert_eq!((code.as_str(), msa2.as_str()), ("AA", id.as_str()));
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

/// Stop the engine cleanly (asserting exit 0) and open its store.
fn stop_and_open(engine: &mut Engine, root: &Path) -> SledStore {
    assert_eq!(engine.stop(), Some(0), "clean shutdown exits 0");
    SledStore::open(root.join("data/store")).unwrap()
}

/// What the store says about `destination`'s copy of the message `control_id` in `channel`.
fn delivery(
    store: &SledStore,
    channel: &str,
    control_id: &str,
    destination: &str,
) -> DestinationRecord {
    let records = store.find_by_control_id(control_id).unwrap();
    let record = records
        .iter()
        .find(|r| r.channel == channel)
        .unwrap_or_else(|| panic!("no record of {control_id} in {channel}"));
    record
        .destinations
        .get(destination)
        .cloned()
        .unwrap_or_else(|| panic!("{control_id} has no destination {destination}: {record:?}"))
}

/// The attempts recorded in `control_id`'s history for `destination`.
fn attempts_in_history(
    store: &SledStore,
    channel: &str,
    control_id: &str,
    destination: &str,
) -> usize {
    let records = store.find_by_control_id(control_id).unwrap();
    records
        .iter()
        .filter(|r| r.channel == channel)
        .flat_map(|r| &r.history)
        .filter(|e| matches!(&e.step, Step::Attempt { destination: d, .. } if d == destination))
        .count()
}

#[test]
fn http_sends_the_headers_errors_a_4xx_at_once_and_retries_a_5xx_or_429_until_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let peer = HttpPeer::start(|id, earlier| match id {
        "REFUSED" => 422,
        "FLAKY" if earlier < 2 => 503,
        "BUSY" if earlier < 1 => 429,
        _ => 200,
    });
    let (mut engine, addr) = start_channel(
        dir.path(),
        "web",
        &format!(
            "  - name: api\n    http: {{ url: \"http://{}/fhir/in\", headers: {{ Authorization: \"Bearer t0k3n\", X-Partner: acme }} }}\n    {FAST_RETRY}\n",
            peer.addr
        ),
    );
    let sent: Vec<String> = ["REFUSED", "FLAKY", "BUSY", "FINE"]
        .map(String::from)
        .into();
    send_all(addr, &sent);
    assert!(
        eventually(20, || peer.times("FLAKY") >= 3
            && peer.times("BUSY") >= 2
            && peer.times("FINE") >= 1),
        "the 5xx was not retried until it passed: {:?}",
        peer.requests()
    );
    // Several retry intervals more, for any attempt that should not happen.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(peer.times("REFUSED"), 1, "a 4xx is not retried");
    assert_eq!(peer.times("FLAKY"), 3, "two 503s, then the 200 ends it");
    assert_eq!(
        peer.times("BUSY"),
        2,
        "429 Too Many Requests means later, not never"
    );
    assert_eq!(peer.times("FINE"), 1);
    for r in peer.requests() {
        let id = control_id_of(&r.text());
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/fhir/in"));
        assert_eq!(r.header("authorization"), Some("Bearer t0k3n"), "{r:?}");
        assert_eq!(r.header("x-partner"), Some("acme"), "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/hl7-v2"));
        assert_eq!(r.text(), adt(&id), "the body is the message as received");
    }

    let store = stop_and_open(&mut engine, dir.path());
    let refused = delivery(&store, "web", "REFUSED", "api");
    assert_eq!((refused.status, refused.attempts), (Status::Errored, 1));
    assert!(
        refused
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("422"),
        "the error names the status: {refused:?}"
    );
    let flaky = delivery(&store, "web", "FLAKY", "api");
    assert_eq!((flaky.status, flaky.attempts), (Status::Sent, 3));
    assert!(
        flaky
            .response
            .as_deref()
            .unwrap_or_default()
            .contains("200"),
        "{flaky:?}"
    );
    assert_eq!(attempts_in_history(&store, "web", "FLAKY", "api"), 3);
    let busy = delivery(&store, "web", "BUSY", "api");
    assert_eq!((busy.status, busy.attempts), (Status::Sent, 2));
    let fine = delivery(&store, "web", "FINE", "api");
    assert_eq!((fine.status, fine.attempts), (Status::Sent, 1));
}

#[test]
fn an_http_content_type_header_replaces_the_default_and_connection_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let peer = HttpPeer::start(|_, _| 201);
    let dead = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (mut engine, addr) = start_channel(
        dir.path(),
        "typed",
        &format!(
            "  - name: typed\n    http: {{ url: \"http://{}/in\", method: PUT, headers: {{ Content-Type: application/fhir+json }} }}\n\
             \x20 - name: unreachable\n    http: {{ url: \"http://{dead}/in\" }}\n    \
             retry: {{ initial: 50ms, max: 200ms, max_attempts: 3 }}\n",
            peer.addr
        ),
    );
    send_all(addr, &["TYPED1".to_owned()]);
    assert!(
        eventually(20, || peer.times("TYPED1") == 1
            && engine.log_text().contains("delivery failed for good")),
        "not delivered and given up as expected:\n{}",
        engine.log_text()
    );
    let request = &peer.requests()[0];
    assert_eq!(request.method, "PUT");
    let types: Vec<_> = request
        .headers
        .iter()
        .filter(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        types,
        ["application/fhir+json"],
        "one Content-Type, the configured one"
    );

    let store = stop_and_open(&mut engine, dir.path());
    let typed = delivery(&store, "typed", "TYPED1", "typed");
    assert_eq!((typed.status, typed.attempts), (Status::Sent, 1));
    let unreachable = delivery(&store, "typed", "TYPED1", "unreachable");
    assert_eq!(
        (unreachable.status, unreachable.attempts),
        (Status::Errored, 3),
        "a refused connection is retried: {unreachable:?}"
    );
}

#[test]
fn an_http_answer_whose_body_stalls_is_recorded_with_its_start() {
    // A server that answers 200 at once, promises a megabyte of body, sends a little and stalls.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&requests);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || {
                let mut head = [0u8; 8192];
                if stream.read(&mut head).unwrap_or(0) == 0 {
                    return;
                }
                *counted.lock().unwrap() += 1;
                let start = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
                let _ = stream.write_all(start.as_bytes());
                let _ = stream.write_all(&[b'x'; 4096]);
                std::thread::sleep(Duration::from_secs(30));
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, addr) = start_channel(
        dir.path(),
        "stall",
        &format!(
            "  - name: api\n    http: {{ url: \"http://{server}/in\", timeout: 2s }}\n    {FAST_RETRY}\n"
        ),
    );
    send_all(addr, &["STALL1".to_owned()]);
    assert!(
        eventually(20, || *requests.lock().unwrap() >= 1),
        "the request never arrived"
    );
    std::thread::sleep(Duration::from_millis(500));
    let store = stop_and_open(&mut engine, dir.path());
    let record = delivery(&store, "stall", "STALL1", "api");
    assert_eq!(
        (record.status, record.attempts),
        (Status::Sent, 1),
        "{record:?}"
    );
    let response = record.response.unwrap_or_default();
    // Reading the whole body would have run into the 2 s timeout and kept nothing of it.
    assert!(
        response.starts_with("HTTP 200 OK: xxxx") && response.len() < 600,
        "the record keeps the start of the body: {response:?}"
    );
    assert_eq!(*requests.lock().unwrap(), 1);
}

#[test]
fn an_http_header_that_cannot_be_sent_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let engine = Engine::new(dir.path());
    engine.channel(
        "bad.yaml",
        &channel_yaml(
            "bad",
            listen,
            "  - name: api\n    http: { url: \"http://127.0.0.1:9/in\", headers: { \"X Partner\": acme } }\n",
        ),
    );
    let mut run = support::Process(
        std::process::Command::new(support::junction_bin())
            .args(["run", "--channels"])
            .arg(&engine.channels)
            .arg("--data")
            .arg(&engine.data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Bounded, so that an engine that does start fails the test instead of hanging it.
    let mut status = None;
    eventually(20, || {
        status = run.0.try_wait().unwrap();
        status.is_some()
    });
    let status = status.expect("the engine started with a header it can never send");
    let mut stderr = String::new();
    run.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("channel bad") && stderr.contains("X Partner"),
        "the error names the channel and the header: {stderr}"
    );
}

#[test]
fn max_attempts_against_a_peer_that_is_down_errors_after_exactly_that_many() {
    let dir = tempfile::tempdir().unwrap();
    let dead = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (mut engine, addr) = start_channel(
        dir.path(),
        "giveup",
        &format!(
            "  - name: partner\n    mllp: {{ connect: \"{dead}\", connect_timeout: 500ms }}\n    \
             retry: {{ initial: 50ms, max: 200ms, max_attempts: 3 }}\n"
        ),
    );
    send_all(addr, &["LOST1".to_owned()]);
    assert!(
        eventually(20, || engine
            .log_text()
            .contains("delivery failed for good")),
        "the message was never given up on:\n{}",
        engine.log_text()
    );
    // Long enough for a fourth attempt, were there one.
    std::thread::sleep(Duration::from_millis(600));
    let store = stop_and_open(&mut engine, dir.path());
    let record = delivery(&store, "giveup", "LOST1", "partner");
    assert_eq!(
        (record.status, record.attempts),
        (Status::Errored, 3),
        "{record:?}"
    );
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("3 attempts"),
        "the error says it gave up: {record:?}"
    );
    assert_eq!(attempts_in_history(&store, "giveup", "LOST1", "partner"), 3);
}

#[test]
fn one_destination_down_never_holds_up_another_and_drains_in_order_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let up = MllpPeer::start(|_, _| "AA");
    let down = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let (mut engine, addr) = start_channel(
        dir.path(),
        "split",
        &format!(
            "  - name: down\n    mllp: {{ connect: \"{down}\", connect_timeout: 500ms }}\n    {FAST_RETRY}\n\
             \x20 - name: up\n    mllp: {{ connect: \"{}\" }}\n    {FAST_RETRY}\n",
            up.addr
        ),
    );
    let sent = ids("SPLIT", 30);
    send_all(addr, &sent);
    assert!(
        eventually(20, || up.ids().len() >= sent.len()),
        "the healthy destination got {} of {}",
        up.ids().len(),
        sent.len()
    );
    assert_eq!(up.ids(), sent, "in order, each once");
    assert!(
        engine.log_text().contains("delivery failed; will retry"),
        "the other destination should be retrying"
    );

    let back = MllpPeer::start_on(down, |_, _| "AA");
    assert!(
        eventually(20, || back.ids().len() >= sent.len()),
        "the queue drained only {} of {}",
        back.ids().len(),
        sent.len()
    );
    assert_eq!(back.ids(), sent, "the queue drains in order, each once");
    assert_eq!(up.ids(), sent, "nothing was sent twice to the healthy one");
    let store = stop_and_open(&mut engine, dir.path());
    let last = delivery(&store, "split", "SPLIT029", "down");
    assert_eq!(last.status, Status::Sent);
}

#[test]
fn mllp_on_nak_retries_or_errors_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    // The retrying peers refuse twice, then accept; the others refuse for good.
    let ae_retry = MllpPeer::start(|_, n| if n < 2 { "AE" } else { "AA" });
    let ar_retry = MllpPeer::start(|_, n| if n < 2 { "AR" } else { "AA" });
    let ae_error = MllpPeer::start(|_, _| "AE");
    let ar_error = MllpPeer::start(|_, _| "AR");
    let dest = |name: &str, peer: &MllpPeer, on_nak: &str| {
        format!(
            "  - name: {name}\n    mllp: {{ connect: \"{}\"{on_nak} }}\n    {FAST_RETRY}\n",
            peer.addr
        )
    };
    let destinations = [
        dest("ae-retry", &ae_retry, ", on_nak: retry"),
        dest("ar-retry", &ar_retry, ", on_nak: retry"),
        dest("ae-error", &ae_error, ", on_nak: error"),
        // The default is `error`.
        dest("ar-error", &ar_error, ""),
    ]
    .concat();
    let (mut engine, addr) = start_channel(dir.path(), "naks", &destinations);
    send_all(addr, &["NAK1".to_owned()]);
    assert!(
        eventually(20, || ae_retry.times("NAK1") >= 3
            && ar_retry.times("NAK1") >= 3
            && ae_error.times("NAK1") >= 1
            && ar_error.times("NAK1") >= 1),
        "not every peer was tried as expected"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(ae_retry.times("NAK1"), 3);
    assert_eq!(ar_retry.times("NAK1"), 3);
    assert_eq!(
        ae_error.times("NAK1"),
        1,
        "on_nak: error does not retry an AE"
    );
    assert_eq!(
        ar_error.times("NAK1"),
        1,
        "on_nak: error does not retry an AR"
    );

    let store = stop_and_open(&mut engine, dir.path());
    for name in ["ae-retry", "ar-retry"] {
        let r = delivery(&store, "naks", "NAK1", name);
        assert_eq!((r.status, r.attempts), (Status::Sent, 3), "{name}: {r:?}");
    }
    for (name, code) in [("ae-error", "AE"), ("ar-error", "AR")] {
        let r = delivery(&store, "naks", "NAK1", name);
        assert_eq!(
            (r.status, r.attempts),
            (Status::Errored, 1),
            "{name}: {r:?}"
        );
        let error = r.last_error.unwrap_or_default();
        assert!(
            error.contains(code) && error.contains(&format!("peer says {code}")),
            "{name}: the error gives the code and the peer's reason: {error}"
        );
    }
}

/// Channel `a` (its `to-b` destination with `extra` keys) hands every message to channel `b`, which
/// sends it to `peer`; returns `a`'s source address.
fn hand_over_channels(engine: &Engine, extra: &str, peer: SocketAddr) -> SocketAddr {
    let a = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let b = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let to_b = format!("  - name: to-b\n    channel: b\n{extra}");
    engine.channel("a.yaml", &channel_yaml("a", a, &to_b));
    let out = format!("  - name: out\n    mllp: {{ connect: \"{peer}\" }}\n");
    engine.channel("b.yaml", &channel_yaml("b", b, &out));
    a
}

#[test]
fn a_channel_destination_hands_the_message_to_the_other_channel() {
    let dir = tempfile::tempdir().unwrap();
    let peer = MllpPeer::start(|_, _| "AA");
    let mut engine = Engine::new(dir.path());
    let a = hand_over_channels(&engine, "", peer.addr);
    engine.start();
    support::wait_listening(a);
    let sent = ids("HAND", 3);
    send_all(a, &sent);
    assert!(
        eventually(20, || peer.ids().len() >= sent.len()),
        "channel b's destination got {:?}",
        peer.ids()
    );
    assert_eq!(peer.ids(), sent);

    let store = stop_and_open(&mut engine, dir.path());
    let handed = delivery(&store, "a", "HAND000", "to-b");
    assert_eq!(handed.status, Status::Sent);
    let out = delivery(&store, "b", "HAND000", "out");
    assert_eq!(out.status, Status::Sent);
}

#[test]
fn a_hand_over_to_a_paused_channel_waits_until_it_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let peer = MllpPeer::start(|_, _| "AA");
    let mut engine = Engine::new(dir.path());
    let api = admin::enable(&mut engine);
    // Two attempts at most: a wait for a paused channel must not spend them, nor log failures.
    let retry = "    retry: { initial: 50ms, max: 100ms, max_attempts: 2 }\n";
    let a = hand_over_channels(&engine, retry, peer.addr);
    engine.start();
    admin::wait_ready(api);
    let (status, body) = admin::http(api, "POST", "/channels/b/pause", Some(admin::TOKEN));
    assert_eq!(status, 200, "{body}");
    send_all(a, &["HELD1".to_owned()]);
    // Many retry intervals of waiting.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(peer.ids().is_empty(), "a paused channel took a new message");
    assert!(
        !engine.log_text().contains("delivery failed"),
        "waiting for a paused channel is not a failed delivery:\n{}",
        engine.log_text()
    );

    let (status, body) = admin::http(api, "POST", "/channels/b/resume", Some(admin::TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually(20, || peer.ids() == ["HELD1"]),
        "after the resume the message should go through: {:?}",
        peer.ids()
    );
    let store = stop_and_open(&mut engine, dir.path());
    let handed = delivery(&store, "a", "HELD1", "to-b");
    assert_eq!((handed.status, handed.attempts), (Status::Sent, 1));
}

#[test]
fn the_circuit_breaker_stops_attempts_for_the_cool_down_says_so_and_closes_when_the_peer_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let guarded = MllpPeer::broken();
    let unguarded = MllpPeer::broken();
    let cool_down = Duration::from_secs(3);
    let (mut engine, addr) = start_channel(
        dir.path(),
        "breaker",
        &format!(
            "  - name: guarded\n    mllp: {{ connect: \"{}\", connect_timeout: 500ms }}\n    {FAST_RETRY}\n    \
             circuit_breaker: {{ failures: 3, cool_down: {}s }}\n\
             \x20 - name: unguarded\n    mllp: {{ connect: \"{}\", connect_timeout: 500ms }}\n    {FAST_RETRY}\n",
            guarded.addr,
            cool_down.as_secs(),
            unguarded.addr
        ),
    );
    send_all(addr, &["TRIP1".to_owned()]);
    // The fourth attempt is the probe after the cool-down.
    assert!(
        eventually(30, || guarded.connections().len() >= 4),
        "the breaker never let a probe through"
    );
    let tries = guarded.connections();
    let (opened, probe) = (tries[2], tries[3]);
    // Both times are taken at the peer: the third before the engine saw it fail, the probe after the
    // engine connected, so the gap covers the whole cool-down.
    assert!(
        probe.duration_since(opened) >= cool_down - Duration::from_millis(100),
        "the probe came {:?} after the third failure, within the {cool_down:?} cool-down",
        probe.duration_since(opened)
    );
    let without_breaker = unguarded
        .connections()
        .iter()
        .filter(|t| **t > opened && **t < probe)
        .count();
    assert!(
        without_breaker >= 5,
        "the same retry policy without a breaker should have tried many times meanwhile, tried {without_breaker}"
    );
    let log = engine.log_text();
    let opened_lines = |name: &str| {
        log.lines()
            .filter(|l| {
                l.contains("circuit open")
                    && l.split_whitespace()
                        .any(|w| w == format!("destination={name}"))
            })
            .count()
    };
    assert_eq!(
        opened_lines("guarded"),
        1,
        "the log says once that the breaker opened:\n{log}"
    );
    assert_eq!(
        opened_lines("unguarded"),
        0,
        "only the guarded destination has a breaker"
    );

    // The peer recovers: the next probe delivers and the breaker closes.
    guarded.repair();
    assert!(
        eventually(30, || guarded.ids() == ["TRIP1"]),
        "the message was not delivered after the peer came back"
    );
    assert!(
        eventually(10, || engine.log_text().contains("circuit closed")),
        "the log should say the breaker closed"
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_rate_limit_spaces_deliveries_even_after_a_quiet_spell() {
    let dir = tempfile::tempdir().unwrap();
    let peer = MllpPeer::start(|_, _| "AA");
    let (mut engine, addr) = start_channel(
        dir.path(),
        "limited",
        &format!(
            "  - name: partner\n    mllp: {{ connect: \"{}\" }}\n    rate_limit: 20\n",
            peer.addr
        ),
    );
    // A feed that was quiet for a while and then sends a burst: the limit holds from the first message.
    std::thread::sleep(Duration::from_millis(1500));
    let sent = ids("RATE", 40);
    send_all(addr, &sent);
    assert!(
        eventually(30, || peer.ids().len() >= sent.len()),
        "delivered {} of {}",
        peer.ids().len(),
        sent.len()
    );
    assert_eq!(peer.ids(), sent);
    let arrivals = peer.arrivals();
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    // 39 gaps of 1/20 s are 1.95 s; the bound leaves room for timer slack, not for a burst.
    assert!(
        span >= Duration::from_millis(1500),
        "40 messages at 20 per second arrived within {span:?}"
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn an_unordered_destination_lets_later_messages_pass_a_poisoned_one() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = |id: &str, _| if id == "POISON" { "AE" } else { "AA" };
    let loose = MllpPeer::start(poisoned);
    let strict = MllpPeer::start(poisoned);
    let (mut engine, addr) = start_channel(
        dir.path(),
        "poison",
        &format!(
            "  - name: loose\n    mllp: {{ connect: \"{}\", on_nak: retry }}\n    {FAST_RETRY}\n    ordered: false\n\
             \x20 - name: strict\n    mllp: {{ connect: \"{}\", on_nak: retry }}\n    {FAST_RETRY}\n",
            loose.addr, strict.addr
        ),
    );
    let mut sent = vec!["POISON".to_owned()];
    sent.extend(ids("LATER", 10));
    send_all(addr, &sent);
    assert!(
        eventually(20, || sent[1..].iter().all(|id| loose.times(id) == 1)),
        "later messages did not pass the poisoned one: {:?}",
        loose.ids()
    );
    // Its retry may come a backoff step after the later messages went through.
    assert!(
        eventually(10, || loose.times("POISON") >= 2),
        "the poisoned message keeps being retried"
    );
    // The ordered destination shows what `ordered: false` avoids: its head blocks the rest.
    assert!(eventually(10, || strict.times("POISON") >= 2));
    assert!(
        strict.ids().iter().all(|id| id == "POISON"),
        "an ordered queue never passes its head: {:?}",
        strict.ids()
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn refusals_for_good_do_not_open_the_circuit_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let peer = HttpPeer::start(|id, _| if id.starts_with("BAD") { 422 } else { 200 });
    let (mut engine, addr) = start_channel(
        dir.path(),
        "strict",
        &format!(
            "  - name: api\n    http: {{ url: \"http://{}/in\" }}\n    {FAST_RETRY}\n    ordered: true\n    circuit_breaker: {{ failures: 2, cool_down: 60s }}\n",
            peer.addr
        ),
    );
    // Three refusals in a row, past the breaker's threshold: the peer answered each, so it is up.
    let mut sent = ids("BAD", 3);
    sent.extend(ids("GOOD", 3));
    send_all(addr, &sent);
    // Had the refusals opened the breaker, the good messages would wait out the 60 s cool-down.
    assert!(
        eventually(15, || sent.iter().all(|id| peer.times(id) == 1)),
        "the good messages were held up behind the refusals: {:?}",
        peer.requests()
            .iter()
            .map(|r| control_id_of(&r.text()))
            .collect::<Vec<_>>()
    );
    assert!(
        !engine.log_text().contains("circuit open"),
        "a refusal is not a failure of the peer:\n{}",
        engine.log_text()
    );
    let store = stop_and_open(&mut engine, dir.path());
    assert_eq!(
        delivery(&store, "strict", "BAD000", "api").status,
        Status::Errored
    );
    assert_eq!(
        delivery(&store, "strict", "GOOD002", "api").status,
        Status::Sent
    );
}

/// The kernel's keep-alive timer on the engine's end of its connection to `peer`: the `tr` timer kind
/// (2 = keep-alive) and the time left on it in 1/100 s, from `/proc/net/tcp`.
#[cfg(target_os = "linux")]
fn engine_keepalive_timer(peer: SocketAddr) -> (u8, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    let row = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|f| port(f[2]) == peer.port() && f[3] == "01")
        .unwrap_or_else(|| panic!("no established connection to {peer} in /proc/net/tcp"));
    let (kind, when) = row[5].split_once(':').unwrap();
    (
        u8::from_str_radix(kind, 16).unwrap(),
        u64::from_str_radix(when, 16).unwrap(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn an_mllp_destination_probes_an_idle_peer_after_its_configured_keepalive_time() {
    let dir = tempfile::tempdir().unwrap();
    let probed = MllpPeer::start(|_, _| "AA");
    let quiet = MllpPeer::start(|_, _| "AA");
    let destinations = format!(
        "  - name: probed\n    mllp: {{ connect: \"{}\", keepalive: 7s }}\n  - name: quiet\n    mllp: {{ connect: \"{}\", keepalive: false }}\n",
        probed.addr, quiet.addr
    );
    let (mut engine, addr) = start_channel(dir.path(), "ka", &destinations);
    send_all(addr, &ids("KA", 1));
    assert!(eventually(10, || probed.times("KA000") == 1
        && quiet.times("KA000") == 1));
    // Let the ACK exchange finish, so no retransmission timer stands in for the idle one.
    std::thread::sleep(Duration::from_millis(300));
    // Without the configured idle time the kernel's default (2 h) would be on the timer.
    let (kind, left) = engine_keepalive_timer(probed.addr);
    assert_eq!(
        kind, 2,
        "keep-alive timer not running on the probed destination"
    );
    assert!(left <= 700, "{left} / 100 s left, expected at most 7 s");
    let (kind, _) = engine_keepalive_timer(quiet.addr);
    assert_eq!(
        kind, 0,
        "a timer runs on the idle connection with keepalive: false"
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_file_destination_never_overwrites_an_earlier_message_whose_name_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (mut engine, addr) = start_channel(
        dir.path(),
        "files",
        &format!(
            "  - name: out\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            out.display()
        ),
    );
    // Two feeds that reuse a control id, with different patients.
    let mut client = MllpClient::connect(addr).unwrap();
    for name in ["First^Patient", "Second^Patient"] {
        let message = adt("REUSED1").replace("Tester^Pat", name);
        assert_eq!(client.send(&message).unwrap().0, "AA");
    }
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    assert!(eventually(20, || files().len() == 2), "{:?}", files());
    let store = stop_and_open(&mut engine, dir.path());
    let second = store.find_by_control_id("REUSED1").unwrap()[1].seq;
    assert_eq!(
        files(),
        [
            "REUSED1.hl7".to_owned(),
            format!("REUSED1.seq-{second}.hl7")
        ]
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert!(read("REUSED1.hl7").contains("First^Patient"));
    assert!(read(&format!("REUSED1.seq-{second}.hl7")).contains("Second^Patient"));
}

#[test]
fn a_renamed_destination_says_its_old_queue_waits_and_sends_it_when_the_name_returns() {
    let dir = tempfile::tempdir().unwrap();
    let down = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let destination = |name: &str| {
        format!("  - name: {name}\n    mllp: {{ connect: \"{down}\", connect_timeout: 500ms }}\n    {FAST_RETRY}\n")
    };
    let (mut engine, addr) = start_channel(dir.path(), "renamed", &destination("lab"));
    let sent = ids("RENAMED", 3);
    send_all(addr, &sent);
    assert_eq!(engine.stop(), Some(0));

    // A typo fixed during the outage: the queue under the old name is not served, and the log says so.
    engine.channel(
        "renamed.yaml",
        &channel_yaml("renamed", addr, &destination("lab-new")),
    );
    engine.start();
    support::wait_listening(addr);
    let warning = || {
        engine
            .log_text()
            .lines()
            .find(|l| {
                l.contains("messages are queued for a destination this channel no longer has")
            })
            .map(str::to_owned)
    };
    assert!(
        eventually(10, || warning().is_some()),
        "{}",
        engine.log_text()
    );
    let warning = warning().unwrap();
    assert!(
        warning.contains("destination=\"lab\"") || warning.contains("destination=lab "),
        "{warning}"
    );
    assert!(warning.contains("messages=3"), "{warning}");
    assert_eq!(engine.stop(), Some(0));

    // The old name back: its queue goes out.
    let peer = MllpPeer::start_on(down, |_, _| "AA");
    engine.channel(
        "renamed.yaml",
        &channel_yaml("renamed", addr, &destination("lab")),
    );
    engine.start();
    assert!(eventually(20, || peer.ids() == sent), "{:?}", peer.ids());
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_file_that_cannot_be_written_is_logged_by_folder_not_by_a_name_built_from_patient_fields() {
    let dir = tempfile::tempdir().unwrap();
    // The destination folder is a file: every write fails.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "not a folder").unwrap();
    let (mut engine, addr) = start_channel(
        dir.path(),
        "named",
        &format!(
            "  - name: out\n    file: {{ dir: \"{}\", name: \"${{PID-5-1}}.hl7\" }}\n    {FAST_RETRY}\n",
            blocked.display()
        ),
    );
    let message = adt("NAMED1").replace("Tester^Pat", "Quellenbrink^Pat");
    assert_eq!(
        MllpClient::connect(addr).unwrap().send(&message).unwrap().0,
        "AA"
    );
    assert!(eventually(10, || engine
        .log_text()
        .contains("cannot write a file in")));
    let log = engine.log_text();
    assert!(!log.contains("Quellenbrink"), "{log}");
    let store = stop_and_open(&mut engine, dir.path());
    let out = delivery(&store, "named", "NAMED1", "out");
    assert!(
        out.last_error
            .as_deref()
            .is_some_and(|e| e.contains("Quellenbrink.hl7")),
        "the record keeps the whole error: {:?}",
        out.last_error
    );
}
