//! Reloading a running engine (`POST /reload` and SIGHUP): a changed script takes effect while a
//! sender keeps sending and no ACKed message is lost; an invalid folder changes nothing; channels
//! are added and removed; a channel that cannot start shows in /health; an encryption key is
//! rotated by SIGHUP with every stored message still readable, and only with its key.
#![allow(clippy::unwrap_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/engine.rs"]
mod engine;
#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
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
fn an_edited_module_or_table_restarts_the_channels_that_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    let scripts = dir.path().join("scripts");
    let tables = dir.path().join("tables");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(&tables).unwrap();
    std::fs::write(scripts.join("stamp.rhai"), "fn version() { \"m1\" }").unwrap();
    std::fs::write(tables.join("site.csv"), "key,value\nHOSP,t1\n").unwrap();
    engine.channel(
        "moduled.yaml",
        &format!(
            "name: moduled\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             tables: {{ site: tables/site.csv }}\n\
             transform: |\n  import \"stamp\" as stamp;\n  \
             msg[\"MSH-8\"] = stamp::version() + lookup(\"site\", \"HOSP\", \"?\");\n  msg\n\
             destinations:\n  - name: sink\n    mllp: {{ connect: \"{sink_addr}\" }}\n"
        ),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);
    let send = |id: &str| {
        let mut client = connect_retrying(addr);
        assert_eq!(client.send(&adt(id)).unwrap().0, "AA");
    };
    send("M1");
    assert!(eventually(10, || stamps_in(&sink_file)
        .get("M1")
        .map(String::as_str)
        == Some("m1t1")));

    // Only the module changes, then only the table: each reload restarts the channel.
    std::fs::write(scripts.join("stamp.rhai"), "fn version() { \"m2\" }").unwrap();
    let (status, body) = http(api, "POST", "/reload", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"restarted\":[\"moduled\"]"), "{body}");
    send("M2");
    assert!(eventually(10, || stamps_in(&sink_file)
        .get("M2")
        .map(String::as_str)
        == Some("m2t1")));
    std::fs::write(tables.join("site.csv"), "key,value\nHOSP,t2\n").unwrap();
    let (_, body) = http(api, "POST", "/reload", Some(TOKEN));
    assert!(body.contains("\"restarted\":[\"moduled\"]"), "{body}");
    send("M3");
    assert!(eventually(10, || stamps_in(&sink_file)
        .get("M3")
        .map(String::as_str)
        == Some("m2t2")));
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

/// The channel names of the engine log's `what` lines (`channel started`, `channel stopped`), in order.
fn logged_channels(log: &str, what: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| l.split("channel=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn channels_start_after_what_they_depend_on_and_stop_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let mut engine = Engine::new(dir.path());
    let with_deps = |name: &str, deps: &str| {
        let listen = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
        format!(
            "{}depends_on: [{deps}]\n",
            stamping_channel(name, listen, sink_addr, name)
        )
    };
    // File order (a, b, c, d) is the reverse of the dependency order.
    engine.channel("a.yaml", &with_deps("front", "router"));
    engine.channel("b.yaml", &with_deps("router", "lab, archive"));
    engine.channel("c.yaml", &with_deps("lab", "archive"));
    engine.channel("d.yaml", &with_deps("archive", ""));
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);
    assert_eq!(engine.stop(), Some(0));
    let log = engine.log_text();
    assert_eq!(
        logged_channels(&log, "channel started"),
        ["archive", "lab", "router", "front"],
        "{log}"
    );
    assert_eq!(
        logged_channels(&log, "channel stopped"),
        ["front", "router", "lab", "archive"],
        "{log}"
    );

    // A cycle is refused before anything starts, naming the channels in it.
    engine.channel("d.yaml", &with_deps("archive", "front"));
    let out = support::run_junction(&[
        "run",
        "--channels",
        engine.channels.to_str().unwrap(),
        "--data",
        engine.data.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("a.yaml:") && err.contains("dependency cycle 'front'"),
        "{err}"
    );
    for name in ["'router'", "'lab'", "'archive'"] {
        assert!(err.contains(name), "{name} missing: {err}");
    }
}

#[test]
fn a_removed_channel_delivers_what_it_had_queued_before_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    // The destination is down while messages come in: they wait in the channel's queue.
    let sink_addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let listen = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    let channel = stamping_channel("leaving", listen, sink_addr, "v1");
    engine.channel("leaving.yaml", &channel);
    // A folder must hold a channel; this one stays throughout.
    let stays = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    engine.channel(
        "stays.yaml",
        &stamping_channel("stays", stays, sink_addr, "s"),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);
    let mut client = MllpClient::connect(listen).unwrap();
    for id in ["Q1", "Q2", "Q3"] {
        assert_eq!(client.send(&adt(id)).unwrap().0, "AA");
    }
    assert!(eventually(10, || admin::channel_status(api, "leaving")
        ["destinations"][0]["queue_depth"]
        == 3));

    // Removed while its destination is down; the destination comes back during the drain.
    std::fs::remove_file(engine.channels.join("leaving.yaml")).unwrap();
    let reload = std::thread::spawn(move || http(api, "POST", "/reload", Some(TOKEN)));
    assert!(
        eventually(10, || TcpStream::connect(listen).is_err()),
        "{}",
        engine.log_text()
    );
    let (_sink, _) = spawn_listen_at(&sink_file, sink_addr);
    let (status, body) = reload.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"removed\":[\"leaving\"]"), "{body}");
    assert_eq!(
        engine::control_ids_in(&sink_file),
        ["Q1", "Q2", "Q3"],
        "delivered before the reload returned"
    );
    let log = engine.log_text();
    assert!(!log.contains("removed channel did not drain"), "{log}");

    // Added back with a second channel, and this time both are removed while their destination stays
    // down, in the same reload that adds a third: the new channel is up at once, the two removed ones
    // drain together (one drain period, not two), then stop, saying how many they left queued.
    engine.channel("leaving.yaml", &channel);
    let second = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let second_channel = stamping_channel("leaving2", second, sink_addr, "w");
    engine.channel("leaving2.yaml", &second_channel);
    assert_eq!(http(api, "POST", "/reload", Some(TOKEN)).0, 200);
    let mut client = connect_retrying(listen);
    drop(_sink);
    for id in ["Q4", "Q5"] {
        assert_eq!(client.send(&adt(id)).unwrap().0, "AA");
    }
    assert_eq!(connect_retrying(second).send(&adt("W1")).unwrap().0, "AA");
    std::fs::remove_file(engine.channels.join("leaving.yaml")).unwrap();
    std::fs::remove_file(engine.channels.join("leaving2.yaml")).unwrap();
    let arrives = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    engine.channel(
        "arrives.yaml",
        &stamping_channel("arrives", arrives, sink_addr, "a"),
    );
    let started = std::time::Instant::now();
    let reload = std::thread::spawn(move || http(api, "POST", "/reload", Some(TOKEN)));
    assert!(
        eventually(5, || TcpStream::connect(arrives).is_ok()),
        "the added channel waited for the removed ones to drain"
    );
    assert!(
        !reload.is_finished(),
        "the reload did not wait for the drain"
    );
    assert_eq!(reload.join().unwrap().0, 200);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(18),
        "two removed channels drained one after the other ({took:?} for a 10 s drain period)"
    );
    let log = engine.log_text();
    let warning = |name: &str| {
        log.lines()
            .find(|l| {
                l.contains("removed channel did not drain")
                    && l.contains(&format!("channel={name} "))
            })
            .unwrap_or_else(|| panic!("no drain warning for {name}:\n{log}"))
            .to_owned()
    };
    assert!(
        warning("leaving").contains("outboxes=2"),
        "{}",
        warning("leaving")
    );
    assert!(
        warning("leaving2").contains("outboxes=1"),
        "{}",
        warning("leaving2")
    );
    std::fs::remove_file(engine.channels.join("arrives.yaml")).unwrap();
    let (_sink, _) = spawn_listen_at(&sink_file, sink_addr);
    engine.channel("leaving.yaml", &channel);
    assert_eq!(http(api, "POST", "/reload", Some(TOKEN)).0, 200);
    assert!(eventually(20, || engine::control_ids_in(&sink_file).len() == 5));
    assert_eq!(
        engine::control_ids_in(&sink_file),
        ["Q1", "Q2", "Q3", "Q4", "Q5"]
    );
    assert_eq!(engine.stop(), Some(0));
}

/// `junction listen` on a given address, appending to `out`.
fn spawn_listen_at(out: &std::path::Path, addr: SocketAddr) -> (support::Process, SocketAddr) {
    let process = support::spawn_junction(&[
        "listen",
        "--port",
        &addr.port().to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    support::wait_listening(addr);
    (process, addr)
}

/// A patient name that appears nowhere else, so finding it in the store's files means clear text.
const PATIENT: &str = "Quellenbrink";

/// An encrypted channel that seals with `key` and still opens what the `retired` keys sealed.
fn encrypted_channel(
    listen: SocketAddr,
    sink: SocketAddr,
    key: &Path,
    retired: &[&Path],
) -> String {
    let retired: Vec<String> = retired
        .iter()
        .map(|k| format!("\"{}\"", k.display()))
        .collect();
    format!(
        "name: vault\n\
         source:\n  mllp: {{ listen: \"{listen}\" }}\n\
         encrypt: true\n\
         encryption:\n  key_file: \"{}\"\n  retired_key_files: [{}]\n\
         destinations:\n  - name: sink\n    mllp: {{ connect: \"{sink}\" }}\n",
        key.display(),
        retired.join(", ")
    )
}

/// 32 random bytes from the OS.
fn random_key() -> Vec<u8> {
    use std::io::Read;
    let mut key = Vec::new();
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(32)
        .read_to_end(&mut key)
        .unwrap();
    assert_eq!(key.len(), 32);
    key
}

/// `junction messages show SEQ --raw` of the stopped engine's `vault` channel, with the keys its
/// channel folder names.
fn show_raw(engine: &Engine, seq: u64) -> Output {
    Command::new(support::junction_bin())
        .args(["messages", "show", &seq.to_string(), "--raw"])
        .args(["--channel", "vault", "--data"])
        .arg(&engine.data)
        .arg("--channels")
        .arg(&engine.channels)
        .output()
        .unwrap()
}

/// The sequence id of each control id stored in `vault`.
fn seqs_by_control_id(engine: &Engine) -> HashMap<String, u64> {
    support::stored_messages(&engine.data, "vault")
        .iter()
        .map(|m| {
            let id = m["control_id"].as_str().unwrap().to_owned();
            (id, m["seq"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn a_key_rotated_by_sighup_seals_new_messages_and_still_opens_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Key files live beside the channels, not in data/: A as hex text, B as raw bytes.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (key_a, key_b) = (keys.join("a.key"), keys.join("b.key"));
    let hex: String = random_key().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key_a, hex).unwrap();
    std::fs::write(&key_b, random_key()).unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let listen = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "vault.yaml",
        &encrypted_channel(listen, sink_addr, &key_a, &[]),
    );
    engine.start();
    support::wait_listening(listen);
    let message = |id: &str| adt(id).replace("Tester^Pat", &format!("{PATIENT}^Ida"));
    let mut client = MllpClient::connect(listen).unwrap();
    assert_eq!(client.send(&message("K1")).unwrap().0, "AA");

    // Rotate: B seals from now on, A stays listed to open what it sealed.
    engine.channel(
        "vault.yaml",
        &encrypted_channel(listen, sink_addr, &key_b, &[&key_a]),
    );
    engine.signal("HUP");
    let restarted = eventually(20, || {
        engine.log_text().matches("channel started").count() == 2
    });
    assert!(restarted, "{}", engine.log_text());
    let mut client = connect_retrying(listen);
    assert_eq!(client.send(&message("K2")).unwrap().0, "AA");
    assert!(eventually(20, || engine::control_ids_in(&sink_file).len() == 2));
    assert_eq!(engine.stop(), Some(0));

    let stored = support::bytes_under(&engine.data);
    assert!(!stored.is_empty());
    assert!(
        !stored
            .windows(PATIENT.len())
            .any(|w| w == PATIENT.as_bytes()),
        "the patient name is in the store's files in clear"
    );
    let seqs = seqs_by_control_id(&engine);
    for id in ["K1", "K2"] {
        let out = show_raw(&engine, seqs[id]);
        let raw = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(raw.starts_with("MSH|"), "{id}: {raw}");
        assert!(
            raw.contains(&format!("|{id}|")) && raw.contains(&format!("{PATIENT}^Ida")),
            "{id} in clear: {raw}"
        );
    }

    // A dropped: K1 (sealed with A) is reported as such, K2 (sealed with B) still opens.
    engine.channel(
        "vault.yaml",
        &encrypted_channel(listen, sink_addr, &key_b, &[]),
    );
    let out = show_raw(&engine, seqs["K1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("which is not configured"), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("MSH|"),
        "nothing printed as the message"
    );
    let out = show_raw(&engine, seqs["K2"]);
    assert!(
        out.status.success(),
        "K2 was not sealed with B: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(PATIENT));
}
