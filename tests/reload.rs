//! Reloading a running engine (`POST /reload` and SIGHUP): a changed script takes effect while a
//! sender keeps sending and no ACKed message is lost; an invalid folder changes nothing; channels
//! are added and removed; a channel that cannot start shows in /health.
#![allow(clippy::unwrap_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/engine.rs"]
mod engine;
#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use admin::{get_json, http, TOKEN};
use engine::{adt, connect_retrying, eventually, Engine, MllpClient};

/// A channel that stamps MSH-8 with `version` and forwards to `sink`.
fn stamping_channel(name: &str, listen: SocketAddr, sink: SocketAddr, version: &str) -> String {
    format!(
        "name: {name}\n\
         source:\n  mllp: {{ listen: \"{listen}\" }}\n\
         transform: |\n  msg[\"MSH-8\"] = \"{version}\";\n  msg\n\
         destinations:\n  - name: sink\n    mllp: {{ connect: \"{sink}\" }}\n    \
         retry: {{ initial: 50ms, max: 1s }}\n"
    )
}

/// MSH-10 -> MSH-8 of every message in a `junction listen --out` file (the last copy wins).
fn stamps_in(path: &std::path::Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("MSH|"))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split('|').collect();
            Some((fields.get(9)?.to_string(), fields.get(7)?.to_string()))
        })
        .collect()
}

#[test]
fn changed_script_takes_effect_without_losing_messages() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "flow.yaml",
        &stamping_channel("flow", addr, sink_addr, "v1"),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);

    // (control id, ACKed before the reload was asked for, sent after it returned)
    let acked = Arc::new(Mutex::new(Vec::<(String, bool, bool)>::new()));
    let asking = Arc::new(AtomicBool::new(false));
    let reloaded = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, asking, reloaded, stop) = (
            Arc::clone(&acked),
            Arc::clone(&asking),
            Arc::clone(&reloaded),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut client = connect_retrying(addr);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("R{i}");
                let after = reloaded.load(Ordering::SeqCst);
                loop {
                    match client.send(&adt(&id)) {
                        Ok((code, _)) => {
                            assert_eq!(code, "AA", "{id} during reload");
                            break;
                        }
                        // The source restarts: reconnect and send again, as a real sender does.
                        Err(_) => client = connect_retrying(addr),
                    }
                }
                let before = !asking.load(Ordering::SeqCst);
                acked.lock().unwrap().push((id, before, after));
                i += 1;
            }
        })
    };
    let count = |pred: fn(&(String, bool, bool)) -> bool| {
        acked.lock().unwrap().iter().filter(|e| pred(e)).count()
    };
    assert!(eventually(30, || count(|_| true) >= 200));

    engine.channel(
        "flow.yaml",
        &stamping_channel("flow", addr, sink_addr, "v2"),
    );
    asking.store(true, Ordering::SeqCst);
    let (status, body) = http(api, "POST", "/reload", Some(TOKEN));
    reloaded.store(true, Ordering::SeqCst);
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["restarted"], serde_json::json!(["flow"]));
    assert!(eventually(30, || count(|e| e.2) >= 200));
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();

    let acked = acked.lock().unwrap().clone();
    let all_arrived = eventually(60, || {
        let got = stamps_in(&sink_file);
        acked.iter().all(|(id, _, _)| got.contains_key(id))
    });
    let got = stamps_in(&sink_file);
    let missing: Vec<_> = acked
        .iter()
        .filter(|(id, _, _)| !got.contains_key(id))
        .take(10)
        .collect();
    assert!(
        all_arrived,
        "ACKed messages lost across the reload: {missing:?}"
    );
    for (id, before, after) in &acked {
        if *before {
            assert_eq!(got[id], "v1", "{id} was processed before the reload");
        }
        if *after {
            assert_eq!(got[id], "v2", "{id} was sent after the reload");
        }
    }
    println!(
        "reload under load: {} ACKed, {} after the reload, none lost",
        acked.len(),
        acked.iter().filter(|e| e.2).count()
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn invalid_reload_keeps_channels_and_valid_reloads_add_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let first = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "first.yaml",
        &stamping_channel("first", first, sink_addr, "v1"),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);
    let mut client = MllpClient::connect(first).unwrap();
    assert_eq!(client.send(&adt("I1")).unwrap().0, "AA");

    // A script that does not compile and a file that is not YAML: refused, nothing changes.
    engine.channel(
        "first.yaml",
        &stamping_channel("first", first, sink_addr, "v2").replace("msg\n", "msg[\n"),
    );
    engine.channel("broken.yaml", "name: [\n");
    let (status, body) = http(api, "POST", "/reload", Some(TOKEN));
    assert_eq!(status, 400, "{body}");
    let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body.contains("broken.yaml"), "{errors}");
    engine.signal("HUP");
    assert!(eventually(10, || engine
        .log_text()
        .contains("reload refused")));
    assert_eq!(client.send(&adt("I2")).unwrap().0, "AA");
    assert!(eventually(20, || stamps_in(&sink_file).len() == 2));
    assert_eq!(
        stamps_in(&sink_file)["I2"],
        "v1",
        "the old script still runs"
    );
    std::fs::remove_file(engine.channels.join("broken.yaml")).unwrap();
    let (status, body) = http(api, "POST", "/reload", Some(TOKEN));
    assert_eq!(status, 400, "the script is still broken: {body}");
    assert!(body.contains("first"), "{body}");

    // SIGHUP with a valid folder: `first` removed, `second` added.
    std::fs::remove_file(engine.channels.join("first.yaml")).unwrap();
    let second = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    engine.channel(
        "second.yaml",
        &stamping_channel("second", second, sink_addr, "s"),
    );
    engine.signal("HUP");
    support::wait_listening(second);
    assert!(eventually(10, || TcpStream::connect(first).is_err()));
    let mut client = MllpClient::connect(second).unwrap();
    assert_eq!(client.send(&adt("S1")).unwrap().0, "AA");
    assert!(eventually(20, || stamps_in(&sink_file)
        .get("S1")
        .map(String::as_str)
        == Some("s")));
    let names: Vec<String> = get_json(api, "/channels")["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["second"]);

    // A new channel whose port is taken: the others keep running, /health says not ready.
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap();
    engine.channel(
        "third.yaml",
        &stamping_channel("third", taken, sink_addr, "t"),
    );
    let (status, body) = http(api, "POST", "/reload", Some(TOKEN));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("third"), "{body}");
    let (status, health) = http(api, "GET", "/health", Some(TOKEN));
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("third"), "{health}");
    assert_eq!(client.send(&adt("S2")).unwrap().0, "AA");
    drop(squatter);
    let (status, body) = http(api, "POST", "/reload", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["added"], serde_json::json!(["third"]));
    assert_eq!(report["unchanged"], serde_json::json!(["second"]));
    assert_eq!(http(api, "GET", "/health", Some(TOKEN)).0, 200);
    let mut third = MllpClient::connect(taken).unwrap();
    assert_eq!(third.send(&adt("T1")).unwrap().0, "AA");
    let ids: HashSet<String> = stamps_in(&sink_file).into_keys().collect();
    assert!(
        eventually(20, || {
            let got = stamps_in(&sink_file);
            got.contains_key("S2") && got.contains_key("T1")
        }),
        "{ids:?}"
    );
    assert_eq!(engine.stop(), Some(0));
}
