//! The pipeline's promises under stress: a destination that is down never blocks the source, and a
//! bad message (a script that throws, a script that loops forever, a malformed message) never blocks
//! or loses the good ones; the HTTP source answers with the ACK; an unordered destination sends with
//! several workers at once.
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
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use engine::{adt, control_ids_in, eventually, Engine, MllpClient};
use http_server::Response;
use junction_store::{ListFilter, SledStore, Status, Store};

#[test]
fn outage_queue_holds_and_drains_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let sink_port = support::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "outage.yaml",
        &format!(
            "name: outage\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             destinations:\n  - name: partner\n    mllp: {{ connect: \"127.0.0.1:{sink_port}\", connect_timeout: 200ms }}\n    \
             retry: {{ initial: 100ms, max: 400ms }}\n"
        ),
    );
    engine.start();
    support::wait_listening(addr);

    // The partner is down: the source keeps ACKing every message.
    let mut client = MllpClient::connect(addr).unwrap();
    let ids: Vec<String> = (0..300).map(|i| format!("OUT{i:04}")).collect();
    for id in &ids {
        let (code, msa2) = client.send(&adt(id)).unwrap();
        assert_eq!((code.as_str(), msa2.as_str()), ("AA", id.as_str()));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        engine.log_text().contains("delivery failed; will retry"),
        "the engine should be retrying the dead partner"
    );

    // The partner comes back: the queue drains, in the order the messages arrived.
    let sink_file = dir.path().join("sink.hl7");
    let process = support::spawn_junction(&[
        "listen",
        "--port",
        &sink_port.to_string(),
        "--out",
        sink_file.to_str().unwrap(),
    ]);
    let _sink = process;
    assert!(
        eventually(60, || control_ids_in(&sink_file).len() >= ids.len()),
        "queue did not drain: {} of {} delivered",
        control_ids_in(&sink_file).len(),
        ids.len()
    );
    assert_eq!(
        control_ids_in(&sink_file),
        ids,
        "delivered out of order or twice"
    );
    assert_eq!(engine.stop(), Some(0), "clean shutdown exits 0");
}

#[test]
fn poison_messages_are_recorded_and_never_block_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let out = dir.path().join("out");
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "poison.yaml",
        &format!(
            "name: poison\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             transform: |\n  let id = msg[\"MSH-10\"];\n  if id.starts_with(\"THROW\") {{ throw \"cannot map this one\"; }}\n  \
             if id.starts_with(\"LOOP\") {{ loop {{ }} }}\n  msg\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            out.display()
        ),
    );
    engine.start();
    support::wait_listening(addr);

    let mut client = MllpClient::connect(addr).unwrap();
    let mut good = Vec::new();
    for i in 0..20 {
        let id = match i % 5 {
            1 => format!("THROW{i}"),
            2 => format!("LOOP{i}"),
            _ => {
                good.push(format!("GOOD{i}"));
                format!("GOOD{i}")
            }
        };
        let (code, _) = client.send(&adt(&id)).unwrap();
        assert_eq!(
            code, "AA",
            "ack: stored answers AA once stored, whatever the scripts do later"
        );
    }
    // A malformed message gets AR with the reason, and the connection keeps working.
    let (code, msa2) = client
        .send("MSH|^~\\&|S|F|R|F|20260101||ADT^A01|BAD1|P|2.5.1\rX\rPID|1\r")
        .unwrap();
    assert_eq!((code.as_str(), msa2.as_str()), ("AR", "BAD1"));
    // Bytes that start like the store's marker of an encrypted value are kept, refused, and do not
    // make the inbox unreadable for the messages after them.
    let (code, _) = client.send("\0JXE\u{1}not a message").unwrap();
    assert_eq!(code, "AR");
    // A control id far longer than HL7 allows is stored, processed and delivered like any other.
    let long_id = format!("LONG{}", "9".repeat(70_000));
    let (code, _) = client.send(&adt(&long_id)).unwrap();
    assert_eq!(code, "AA");
    let (code, _) = client.send(&adt("GOOD99")).unwrap();
    assert_eq!(code, "AA");
    good.push("GOOD99".into());

    assert!(
        eventually(60, || good
            .iter()
            .all(|id| out.join(format!("{id}.hl7")).exists())),
        "good messages did not all arrive"
    );
    assert_eq!(engine.stop(), Some(0));
    let found = SledStore::open(dir.path().join("data/store"))
        .unwrap()
        .find_by_control_id(&long_id)
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "the long control id is found by the whole id"
    );
    assert_eq!(found[0].status, Status::Sent);

    let store = SledStore::open(dir.path().join("data/store")).unwrap();
    let errored = store
        .list(
            "poison",
            &ListFilter {
                status: Some(Status::Errored),
                since: None,
                limit: 100,
            },
        )
        .unwrap();
    let text = |id: &str| {
        let r = errored
            .iter()
            .find(|r| r.meta.control_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} not recorded as errored"));
        format!("{:?}", r.history)
    };
    assert!(text("THROW1").contains("cannot map this one"));
    assert!(
        text("THROW1").contains("poison.yaml (inline script):6:"),
        "error names the channel file and line of the throw: {}",
        text("THROW1")
    );
    assert!(text("LOOP2").to_lowercase().contains("limit"));
    assert!(text("BAD1").contains("segment 2"));
    assert_eq!(errored.len(), 4 + 4 + 1 + 1);
    let marker = errored
        .iter()
        .find(|r| r.meta.control_id.is_none())
        .expect("the marker-like frame is recorded as errored");
    assert_eq!(
        store.raw("poison", marker.seq).unwrap().unwrap(),
        b"\0JXE\x01not a message",
        "and kept exactly as received"
    );
}

#[test]
fn http_source_answers_with_the_ack_and_rejects_a_malformed_body() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let out = dir.path().join("out");
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "web.yaml",
        &format!(
            "name: web\n\
             source:\n  http: {{ listen: \"{addr}\", path: /hl7 }}\n\
             destinations:\n  - name: copy\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            out.display()
        ),
    );
    engine.start();
    support::wait_listening(addr);

    let (status, ack) = admin::request(addr, "POST", "/hl7", None, adt("WEB1").as_bytes());
    assert_eq!(status, 200, "{ack}");
    assert!(ack.contains("MSA|AA|WEB1"), "{ack}");
    assert!(
        eventually(10, || out.join("WEB1.hl7").exists()),
        "the accepted message was not delivered"
    );

    // A client holding 64 silent connections gets no 65th, and cannot lock others out for longer
    // than it holds them.
    let silent: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut one_more = TcpStream::connect(addr).unwrap();
    one_more
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(one_more.read(&mut byte), Ok(0)),
        "the connection over the limit should be closed at once"
    );
    drop(silent);
    // Until the engine has seen those connections close, a new one may still be turned away.
    let post = || -> Option<u16> {
        let mut stream = TcpStream::connect(addr).ok()?;
        let body = adt("WEB2");
        let head = format!(
            "POST /hl7 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    };
    assert!(eventually(10, || post() == Some(200)));

    // A body that is not HL7 is refused with the reason, and kept as errored rather than dropped.
    let (status, nak) = admin::request(addr, "POST", "/hl7", None, b"PID|1||no header here\r");
    assert_eq!(status, 400, "{nak}");
    assert!(nak.contains("MSA|AR"), "{nak}");
    assert!(
        nak.contains("MSH"),
        "the NAK should say what is wrong: {nak}"
    );
    assert_eq!(engine.stop(), Some(0));
    let store = SledStore::open(dir.path().join("data/store")).unwrap();
    let records = store
        .list(
            "web",
            &ListFilter {
                status: Some(Status::Errored),
                since: None,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(
        records.len(),
        1,
        "the malformed body should be kept as errored"
    );
}

/// What the slow HTTP server saw.
#[derive(Default)]
struct HttpStats {
    done: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// An HTTP server that answers every request 200 after `delay`, counting requests and the most it
/// ever had in flight at once. Keeps connections alive, as a FHIR server does.
fn slow_http_server(delay: std::time::Duration) -> (SocketAddr, Arc<HttpStats>) {
    let stats = Arc::new(HttpStats::default());
    let shared = Arc::clone(&stats);
    let addr = http_server::serve(move |_| {
        let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
        shared.most_in_flight.fetch_max(now, SeqCst);
        std::thread::sleep(delay);
        shared.in_flight.fetch_sub(1, SeqCst);
        shared.done.fetch_add(1, SeqCst);
        Response::text(200, "")
    });
    (addr, stats)
}

#[test]
fn an_unordered_destination_sends_with_several_workers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, stats) = slow_http_server(std::time::Duration::from_millis(300));
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "fhir.yaml",
        &format!(
            "name: fhir\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             destinations:\n  - name: server\n    http: {{ url: \"http://{server}/fhir\" }}\n    \
             ordered: false\n    workers: 4\n"
        ),
    );
    engine.start();
    support::wait_listening(addr);
    let mut client = MllpClient::connect(addr).unwrap();
    for i in 0..12 {
        assert_eq!(client.send(&adt(&format!("W{i}"))).unwrap().0, "AA");
    }
    assert!(
        eventually(30, || stats.done.load(SeqCst) == 12),
        "only {} of 12 delivered",
        stats.done.load(SeqCst)
    );
    let most = stats.most_in_flight.load(SeqCst);
    assert!(
        (2..=4).contains(&most),
        "4 workers should have several requests in flight, never more than 4: most was {most}"
    );
    assert_eq!(engine.stop(), Some(0));
}
