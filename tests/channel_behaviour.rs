//! End-to-end tests of channel sources, ACK policies, rules and logs: the real `junction run` as a
//! child process, real MLLP sockets, real folders, and the store read back with `junction messages`.
#![allow(clippy::unwrap_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/engine.rs"]
mod engine;
#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use engine::{adt, control_ids_in, eventually, Engine, MllpClient};
use http_server::Response;

/// An ADT^A01 like [`adt`] with the given administrative sex (PID-8) and patient name (PID-5).
fn patient(control_id: &str, sex: &str, name: &str) -> String {
    adt(control_id)
        .replace("||19800101|F\r", &format!("||19800101|{sex}\r"))
        .replace("Tester^Pat", name)
}

/// A free address on 127.0.0.1 for a source.
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], support::free_port()))
}

/// The stored summary whose MSH-10 is `control_id`; panics when there is none.
fn summary_of<'a>(messages: &'a [serde_json::Value], control_id: &str) -> &'a serde_json::Value {
    messages
        .iter()
        .find(|m| m["control_id"] == control_id)
        .unwrap_or_else(|| panic!("{control_id} is not in the store: {messages:?}"))
}

/// Every control id the store holds, sorted (duplicates kept, so a message stored twice shows).
fn stored_ids(data: &Path, channel: &str) -> Vec<String> {
    let mut ids: Vec<String> = support::stored_messages(data, channel)
        .iter()
        .map(|m| m["control_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The names of the files in `dir`, sorted (none when it does not exist).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn ack_processed_answers_after_the_pipeline_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let out = dir.path().join("out");
    let mut engine = Engine::new(dir.path());
    let api = admin::enable(&mut engine);
    engine.channel(
        "checked.yaml",
        &format!(
            "name: checked\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n  ack: processed\n\
             match: {{ PID-8: '^(M|F|O|U|A|N)$' }}\n\
             transform: |\n  if msg[\"MSH-10\"].starts_with(\"THROW\") {{ throw \"cannot map \" + msg[\"PID-5-1\"]; }}\n  msg\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            out.display()
        ),
    );
    engine.start();
    support::wait_listening(addr);
    admin::wait_ready(api);
    let mut client = MllpClient::connect(addr).unwrap();

    // AA comes only once the outputs are queued: the store already says so when the sender hears it.
    let (code, id) = client.send(&patient("GOOD1", "F", "Tester^Pat")).unwrap();
    assert_eq!((code.as_str(), id.as_str()), ("AA", "GOOD1"));
    let list = admin::get_json(api, "/channels/checked/messages");
    let good = summary_of(list["messages"].as_array().unwrap(), "GOOD1");
    assert_ne!(
        good["status"], "received",
        "AA was sent before the message was processed: {good}"
    );

    // A script that throws: AE, with the script's error in MSA-3 and ERR.
    let ack = client
        .send_for_ack(&patient("THROW1", "F", "Dupont^Odile"))
        .unwrap();
    assert!(ack.contains("\rMSA|AE|THROW1|"), "{ack}");
    assert!(
        ack.contains("cannot map Dupont"),
        "MSA-3 gives the reason: {ack}"
    );
    assert!(ack.contains("\rERR|"), "ERR segment: {ack}");

    // A failed `match` rule: AE naming the rule.
    let ack = client
        .send_for_ack(&patient("SEX1", "X", "Tester^Pat"))
        .unwrap();
    assert!(ack.contains("\rMSA|AE|SEX1|"), "{ack}");
    assert!(ack.contains("PID-8"), "the AE names the failed rule: {ack}");

    // The connection still works after the AEs.
    assert_eq!(client.send(&adt("GOOD2")).unwrap().0, "AA");
    assert!(eventually(10, || out.join("GOOD2.hl7").exists()));
    assert!(!out.join("THROW1.hl7").exists() && !out.join("SEX1.hl7").exists());
    assert_eq!(engine.stop(), Some(0));

    let data = dir.path().join("data");
    let stored = support::stored_messages(&data, "checked");
    let errored = summary_of(&stored, "SEX1");
    assert_eq!(errored["status"], "errored", "{errored}");
    let error = errored["error"].as_str().unwrap();
    assert!(
        error.contains("rule match PID-8"),
        "the record names the rule: {error}"
    );
    let thrown = summary_of(&stored, "THROW1");
    assert_eq!(thrown["status"], "errored", "{thrown}");
    let show = support::stored_message(&data, "checked", thrown["seq"].as_u64().unwrap());
    assert!(
        show.to_string().contains("cannot map Dupont"),
        "messages show has the thrown value: {show}"
    );
}

#[test]
fn ack_processed_answers_each_of_many_concurrent_senders_about_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "busy.yaml",
        &format!(
            "name: busy\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n  ack: processed\n\
             match: {{ PID-8: '^(M|F|O|U|A|N)$' }}\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            dir.path().join("out").display()
        ),
    );
    engine.start();
    support::wait_listening(addr);
    // Messages run in parallel and are recorded in batches: every answer must still reach the
    // sender of that message, with that message's verdict. A lost answer fails on the read timeout.
    let senders: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = MllpClient::connect(addr).unwrap();
                for i in 0..40 {
                    let id = format!("C{c}M{i}");
                    let sex = if i % 3 == 0 { "X" } else { "M" };
                    let (code, acked) = client.send(&patient(&id, sex, "A^B")).unwrap();
                    let expected = if sex == "X" { "AE" } else { "AA" };
                    assert_eq!((code.as_str(), acked.as_str()), (expected, id.as_str()));
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn ack_none_answers_nothing_and_still_stores_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let out = dir.path().join("out");
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "quiet.yaml",
        &format!(
            "name: quiet\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n  ack: none\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            out.display()
        ),
    );
    engine.start();
    support::wait_listening(addr);

    // Several messages on one connection: no byte ever comes back, and the connection stays open.
    let mut client = MllpClient::connect(addr).unwrap();
    let ids = ["QUIET1", "QUIET2", "QUIET3"];
    for id in ids {
        let answered = client
            .send_expecting_silence(&adt(id), Duration::from_millis(400))
            .unwrap();
        assert_eq!(answered, 0, "ack: none sent {answered} bytes for {id}");
    }
    assert!(
        eventually(10, || ids
            .iter()
            .all(|id| out.join(format!("{id}.hl7")).exists())),
        "unacknowledged messages were not delivered: {:?}",
        files_in(&out)
    );
    assert_eq!(engine.stop(), Some(0));
    assert_eq!(stored_ids(&dir.path().join("data"), "quiet"), ids);
}

#[test]
fn a_ctrl_c_during_start_up_is_held_until_the_channels_are_up_then_stops_them_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::new(dir.path());
    // Enough channels that starting them takes a while after the store opens.
    for n in 0..12 {
        engine.channel(
            &format!("c{n}.yaml"),
            &format!(
                "name: c{n}\nsource:\n  mllp: {{ listen: \"{}\" }}\n\
                 transform: 'msg[\"MSH-3\"] = \"C{n}\"; msg'\n\
                 destinations:\n  - name: out\n    file: {{ dir: \"{}\" }}\n",
                free_addr(),
                dir.path().join("out").display()
            ),
        );
    }
    engine.start();
    // The signal goes out the moment the engine says it is opening the store, which takes about 100 ms:
    // it lands before any channel is up.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !engine.log_text().contains("opening the store") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    engine.signal("INT");
    assert!(
        eventually(20, || engine.log_text().contains("all channels stopped")),
        "no clean stop after a SIGINT during start-up:\n{}",
        engine.log_text()
    );
    assert_eq!(engine.stop(), Some(0), "{}", engine.log_text());
    let log = engine.log_text();
    let running = log.find("junction running");
    let stopping = log.find("stopping: no new messages");
    assert!(
        running.is_some() && running < stopping,
        "the channels came up, then stopped:\n{log}"
    );
}

#[test]
fn ctrl_c_stops_accepting_finishes_in_flight_messages_and_exits_0() {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    let addr = free_addr();
    let mut engine = Engine::new(dir.path());
    // The rate limit keeps messages queued for the sink when the signal comes, so both halves of the
    // promise are exercised: delivered before the exit, or kept and delivered after the restart.
    engine.channel(
        "interrupted.yaml",
        &format!(
            "name: interrupted\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             destinations:\n  - name: sink\n    mllp: {{ connect: \"{sink_addr}\" }}\n    rate_limit: 50\n"
        ),
    );
    engine.start();
    support::wait_listening(addr);

    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|c| {
            let acked = std::sync::Arc::clone(&acked);
            std::thread::spawn(move || {
                let mut client = MllpClient::connect(addr).unwrap();
                for i in 0..PER_SENDER {
                    let id = format!("INT{c}-{i:03}");
                    match client.send(&adt(&id)) {
                        Ok((code, msa2)) => {
                            assert_eq!((code.as_str(), msa2.as_str()), ("AA", id.as_str()));
                            acked.lock().unwrap().push(id);
                        }
                        // The engine stopped taking messages: this one may or may not be stored.
                        Err(_) => return true,
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                false
            })
        })
        .collect();
    assert!(
        eventually(20, || acked.lock().unwrap().len() >= 40),
        "the engine did not take messages"
    );
    engine.signal("INT");
    assert!(
        eventually(20, || engine.log_text().contains("all channels stopped")),
        "no clean stop after SIGINT:\n{}",
        engine.log_text()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the source still accepts connections after stopping"
    );
    let interrupted = senders
        .into_iter()
        .map(|s| s.join().unwrap())
        .filter(|&cut| cut)
        .count();
    assert!(
        interrupted > 0,
        "every sender finished before the signal: nothing was in flight"
    );
    // SIGTERM now reaches a process that already stopped on SIGINT; its exit code is the one it chose.
    assert_eq!(engine.stop(), Some(0), "{}", engine.log_text());
    let log = engine.log_text();
    assert!(
        log.contains("stopping: no new messages; finishing in-flight ones"),
        "{log}"
    );

    let mut acked = acked.lock().unwrap().clone();
    acked.sort();
    let data = dir.path().join("data");
    let stored = support::stored_messages(&data, "interrupted");
    let status_of = |id: &String| {
        stored
            .iter()
            .find(|m| m["control_id"] == id.as_str())
            .map(|m| m["status"].as_str().unwrap_or_default().to_owned())
    };
    for id in &acked {
        let status = status_of(id);
        assert!(
            matches!(status.as_deref(), Some("queued" | "sent")),
            "{id} was ACKed but is {status:?} after the stop: in-flight processing did not finish"
        );
    }
    let queued = acked
        .iter()
        .filter(|id| status_of(id).as_deref() == Some("queued"))
        .count();
    println!(
        "SIGINT: {} ACKed, {queued} still queued at the stop, {interrupted} senders cut off",
        acked.len()
    );
    assert!(
        queued > 0,
        "nothing was left to deliver at the stop; the restart proves nothing"
    );
    assert!(
        stored.iter().all(|m| m["status"] != "received"),
        "a stored message was left unprocessed"
    );

    // After the restart every ACKed message reaches the sink, the queued ones included.
    engine.start();
    let delivered = || {
        let got: std::collections::HashSet<String> =
            control_ids_in(&sink_file).into_iter().collect();
        acked.iter().all(|id| got.contains(id))
    };
    assert!(
        eventually(60, delivered),
        "ACKed messages missing from the sink after the restart ({queued} were queued)"
    );
    assert_eq!(engine.stop(), Some(0));
    let stored = support::stored_messages(&data, "interrupted");
    assert!(
        acked.iter().all(|id| stored
            .iter()
            .any(|m| m["control_id"] == id.as_str() && m["status"] == "sent")),
        "not every ACKed message is recorded as sent"
    );
}

/// A file-source channel over `inbox`, writing each message to `out` as `<MSH-10>.hl7`.
fn folder_channel(engine: &Engine, inbox: &Path, out: &Path, ack: &str) {
    engine.channel(
        "folder.yaml",
        &format!(
            "name: folder\n\
             source:\n  file: {{ dir: \"{}\", glob: \"*.hl7\", poll: 100ms }}\n  ack: {ack}\n\
             match: {{ PID-8: '^(M|F|O|U|A|N)$' }}\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            inbox.display(),
            out.display()
        ),
    );
}

#[test]
fn file_source_reads_message_streams_and_batches_and_refuses_what_is_not_hl7() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&inbox).unwrap();
    // Three messages one after another, with a blank line between two of them.
    let stream = format!("{}{}\r\n{}", adt("MULTI1"), adt("MULTI2"), adt("MULTI3"));
    std::fs::write(inbox.join("stream.hl7"), stream).unwrap();
    let batch = format!(
        "FHS|^~\\&|SEND|FAC|RECV|FAC|20260101120000\rBHS|^~\\&|SEND|FAC|RECV|FAC|20260101120000\r\
         {}{}BTS|2\rFTS|1\r",
        adt("BATCH1"),
        adt("BATCH2")
    );
    std::fs::write(inbox.join("batch.hl7"), batch).unwrap();
    std::fs::write(inbox.join("notes.hl7"), "Dear colleague, see attached.\n").unwrap();
    std::fs::write(inbox.join("empty.hl7"), "\r\n").unwrap();

    let mut engine = Engine::new(dir.path());
    folder_channel(&engine, &inbox, &out, "stored");
    engine.start();

    let expected = ["BATCH1", "BATCH2", "MULTI1", "MULTI2", "MULTI3"];
    let delivered = || {
        expected
            .iter()
            .all(|id| out.join(format!("{id}.hl7")).exists())
    };
    assert!(
        eventually(20, delivered),
        "not every message of the files was delivered: {:?}",
        files_in(&out)
    );
    assert!(
        eventually(10, || files_in(&inbox.join("error")).len() == 2),
        "error/: {:?}",
        files_in(&inbox.join("error"))
    );
    assert_eq!(
        files_in(&inbox.join("processed")),
        ["batch.hl7", "stream.hl7"]
    );
    assert_eq!(files_in(&inbox.join("error")), ["empty.hl7", "notes.hl7"]);
    assert!(
        files_in(&inbox)
            .iter()
            .all(|n| n == "processed" || n == "error"),
        "files left in the inbox: {:?}",
        files_in(&inbox)
    );
    assert_eq!(engine.stop(), Some(0));
    assert_eq!(stored_ids(&dir.path().join("data"), "folder"), expected);
}

#[test]
fn a_stop_part_way_through_a_file_leaves_its_unread_messages_in_the_folder_for_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&inbox).unwrap();
    // Under ack: processed each message is offered only after the one before it went through the
    // pipeline, so reading this file takes seconds and the stop lands in the middle of it.
    let total = 3000;
    let ids: Vec<String> = (1..=total).map(|n| format!("BIG{n:05}")).collect();
    let file: String = ids.iter().map(|id| adt(id)).collect();
    std::fs::write(inbox.join("big.hl7"), file).unwrap();

    let mut engine = Engine::new(dir.path());
    folder_channel(&engine, &inbox, &out, "processed");
    engine.start();
    assert!(eventually(20, || out.join("BIG00001.hl7").exists()));
    assert_eq!(engine.stop(), Some(0), "{}", engine.log_text());

    let remainder: Vec<String> = files_in(&inbox)
        .into_iter()
        .filter(|n| n.starts_with("big.from-"))
        .collect();
    assert_eq!(
        remainder.len(),
        1,
        "the unread part should wait in the folder: {:?}",
        files_in(&inbox)
    );
    assert_eq!(files_in(&inbox.join("processed")), ["big.hl7"]);
    let unread = std::fs::read_to_string(inbox.join(&remainder[0])).unwrap();
    let first_unread = unread.split('\r').find(|s| s.starts_with("MSH|")).unwrap();
    let first_unread = first_unread.split('|').nth(9).unwrap().to_owned();
    let stored_before = stored_ids(&dir.path().join("data"), "folder");
    assert_eq!(
        Some(&first_unread),
        ids.get(stored_before.len()),
        "the remainder starts right after the last stored message"
    );
    assert_eq!(
        remainder[0],
        format!("big.from-{}.hl7", stored_before.len() + 1)
    );

    // The restarted engine reads the remainder: every message is stored exactly once.
    engine.start();
    assert!(
        eventually(60, || files_in(&out).len() == total),
        "{} of {total} delivered",
        files_in(&out).len()
    );
    assert!(eventually(10, || files_in(&inbox.join("processed")).len() == 2));
    assert_eq!(engine.stop(), Some(0));
    assert_eq!(
        stored_ids(&dir.path().join("data"), "folder"),
        ids,
        "each message of the file stored exactly once"
    );
}

#[test]
fn a_file_that_stops_part_way_leaves_only_its_unstored_messages_in_error() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&inbox).unwrap();
    // Under ack: processed the second message fails the PID-8 rule: reading stops there.
    let file = [
        patient("PART1", "F", "A^B"),
        patient("PART2", "X", "A^B"),
        patient("PART3", "M", "A^B"),
        patient("PART4", "F", "A^B"),
    ]
    .concat();
    std::fs::write(inbox.join("day.hl7"), file).unwrap();

    let mut engine = Engine::new(dir.path());
    folder_channel(&engine, &inbox, &out, "processed");
    engine.start();
    let error = inbox.join("error");
    assert!(
        eventually(20, || files_in(&error) == ["day.from-3.hl7"]),
        "the unread remainder should be in error/: {:?} (inbox {:?})",
        files_in(&error),
        files_in(&inbox)
    );
    assert_eq!(files_in(&inbox.join("processed")), ["day.hl7"]);
    let remainder = std::fs::read_to_string(error.join("day.from-3.hl7")).unwrap();
    let ids: Vec<&str> = remainder
        .split('\r')
        .filter(|s| s.starts_with("MSH|"))
        .filter_map(|s| s.split('|').nth(9))
        .collect();
    assert_eq!(
        ids,
        ["PART3", "PART4"],
        "the remainder holds exactly the unstored messages"
    );
    assert!(out.join("PART1.hl7").exists());

    // Dropping the remainder back in stores each of its messages once: nothing is stored twice.
    std::fs::rename(error.join("day.from-3.hl7"), inbox.join("day.from-3.hl7")).unwrap();
    assert!(
        eventually(20, || out.join("PART3.hl7").exists()
            && out.join("PART4.hl7").exists()),
        "the dropped-back remainder was not delivered: {:?}",
        files_in(&out)
    );
    assert!(eventually(10, || files_in(&inbox.join("processed"))
        == ["day.from-3.hl7", "day.hl7"]));
    assert_eq!(engine.stop(), Some(0));

    let data = dir.path().join("data");
    assert_eq!(
        stored_ids(&data, "folder"),
        ["PART1", "PART2", "PART3", "PART4"]
    );
    let stored = support::stored_messages(&data, "folder");
    let failed = summary_of(&stored, "PART2");
    assert_eq!(failed["status"], "errored", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("rule match PID-8"),
        "{failed}"
    );
}

/// An HTTP server that answers every request 500 with `body`; runs until the test process ends.
fn failing_http_server(body: &'static str) -> SocketAddr {
    http_server::serve(move |_| Response::text(500, body))
}

/// The patient whose name must stay out of the logs.
const SECRET_FAMILY: &str = "Quillfeather";
const SECRET_GIVEN: &str = "Marigold";

/// Runs a channel whose scripts throw and `fail()` with the patient's name and whose destinations
/// answer with it (an MLLP NAK, an HTTP 500 body); returns the engine's log once all of that was logged.
fn run_leaky_channel(root: &Path, log_content: bool, log_format: &str) -> String {
    let addr = free_addr();
    let nak = engine::spawn_naking_peer("AE", "unknown patient Quillfeather Marigold");
    let http = failing_http_server(r#"{"issue":"Patient Quillfeather, Marigold already exists"}"#);
    let mut engine = Engine::new(root);
    engine.args = vec!["--log-format".into(), log_format.into()];
    // Debug level, so the listener's per-message line is checked too; the HTTP client's own debug
    // lines never see message content.
    engine.envs = vec![(
        "RUST_LOG".into(),
        "debug,hyper=info,reqwest=info,h2=info".into(),
    )];
    engine.channel(
        "leaky.yaml",
        &format!(
            "name: leaky\n\
             log_content: {log_content}\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             transform: |\n  let id = msg[\"MSH-10\"];\n  if id.starts_with(\"THROW\") {{ throw \"no match for \" + msg[\"PID-5-1\"]; }}\n  \
             if id.starts_with(\"FAIL\") {{ fail(\"refused \" + msg[\"PID-5-2\"]); }}\n  msg\n\
             destinations:\n  - name: partner\n    mllp: {{ connect: \"{nak}\", on_nak: retry }}\n    \
             retry: {{ initial: 100ms, max: 200ms, max_attempts: 3 }}\n  \
             - name: server\n    http: {{ url: \"http://{http}/fhir\" }}\n    \
             retry: {{ initial: 100ms, max: 200ms, max_attempts: 3 }}\n"
        ),
    );
    engine.start();
    support::wait_listening(addr);
    let name = format!("{SECRET_FAMILY}^{SECRET_GIVEN}");
    let mut client = MllpClient::connect(addr).unwrap();
    for id in ["THROW1", "FAIL1", "SENT1"] {
        assert_eq!(client.send(&patient(id, "F", &name)).unwrap().0, "AA");
    }
    let logged = eventually(30, || {
        let log = engine.log_text();
        log.matches("message errored").count() >= 2
            && log.matches("delivery failed for good").count() >= 2
    });
    assert!(
        logged,
        "the failures were not all logged:\n{}",
        engine.log_text()
    );
    assert_eq!(engine.stop(), Some(0));
    engine.log_text()
}

#[test]
fn logs_never_carry_message_content_unless_the_channel_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_leaky_channel(dir.path(), false, "json");
    for secret in [SECRET_FAMILY, SECRET_GIVEN] {
        assert!(
            !log.contains(secret),
            "the patient's name {secret} is in the log:\n{log}"
        );
    }
    // One JSON object per line, and the failures are still explained without content.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(serde_json::Value::is_object));
    let fields = |message: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .map(|l| l["fields"]["error"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let errored = fields("message errored");
    assert!(
        errored
            .iter()
            .any(|e| e.contains("leaky.yaml (inline script):") && e.contains("runtime error")),
        "the script failure is logged with its file, line and kind: {errored:?}"
    );
    assert!(errored.iter().any(|e| e.contains("fail()")), "{errored:?}");
    let failed = fields("delivery failed for good; message errored");
    assert!(
        failed.iter().any(|e| e.starts_with("AE from")),
        "the NAK is logged by its code: {failed:?}"
    );
    assert!(
        failed.iter().any(|e| e.contains("500")),
        "the HTTP failure is logged by its status: {failed:?}"
    );

    // The record keeps the whole story for `junction messages show`.
    let data = dir.path().join("data");
    let stored = support::stored_messages(&data, "leaky");
    let thrown = summary_of(&stored, "THROW1");
    assert!(
        thrown["error"].as_str().unwrap().contains(SECRET_FAMILY),
        "{thrown}"
    );
    let sent = summary_of(&stored, "SENT1");
    let show = support::stored_message(&data, "leaky", sent["seq"].as_u64().unwrap());
    assert!(
        show.to_string().contains("unknown patient Quillfeather"),
        "{show}"
    );

    // With log_content: true the same run may show it.
    let open = tempfile::tempdir().unwrap();
    let log = run_leaky_channel(open.path(), true, "human");
    assert!(
        log.contains(SECRET_FAMILY),
        "log_content: true shows content:\n{log}"
    );
}

/// Copies `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_shipped_default_channel_works_as_the_readme_says() {
    // The shipped channels listen on fixed ports; another engine on this machine must not fail the test.
    for port in [2575, 2576] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            println!("SKIP: 127.0.0.1:{port} is in use, so the shipped channels cannot start here");
            return;
        }
    }
    let repo = support::tests_dir().join("..");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo.join("channels"), &dir.path().join("channels"));
    copy_tree(&repo.join("scripts"), &dir.path().join("scripts"));
    let log = std::fs::File::create(dir.path().join("engine.log")).unwrap();
    let _engine = support::Process(
        std::process::Command::new(support::junction_bin())
            .arg("run")
            .current_dir(dir.path())
            .env_remove("FHIR_BASE_URL")
            .env_remove("JUNCTION_ADMIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    support::wait_listening(SocketAddr::from(([127, 0, 0, 1], 2575)));

    let example = repo.join("examples/messages/adt_a01.hl7");
    let sent =
        support::run_junction(&["send", "--to", "127.0.0.1:2575", example.to_str().unwrap()]);
    let printed = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(printed.contains("MSA|AA|EX0001"), "{printed}");

    let hl7 = dir.path().join("data/out/hl7/EX0001.hl7");
    let json = dir.path().join("data/out/json/EX0001.json");
    assert!(
        eventually(20, || hl7.exists() && json.exists()),
        "data/out after the example: {:?} {:?}\nlog:\n{}",
        files_in(&dir.path().join("data/out/hl7")),
        files_in(&dir.path().join("data/out/json")),
        std::fs::read_to_string(dir.path().join("engine.log")).unwrap_or_default()
    );
    let copy = std::fs::read(&hl7).unwrap();
    assert!(
        copy.starts_with(b"MSH|^~\\&|ADMIT|RIVERSIDE|") && copy.windows(6).any(|w| w == b"EX0001"),
        "the HL7 copy is the message"
    );
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap())
        .unwrap_or_else(|e| panic!("data/out/json/EX0001.json is not JSON: {e}"));
    assert!(
        value.to_string().contains("Rivera"),
        "the JSON copy holds the message's fields: {value}"
    );
}
