//! `junction messages` against a store filled by a real engine: list, show and reprocess with the
//! engine stopped, the same answers through the admin API while it runs, and the audit log of it all.
#![allow(clippy::unwrap_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/engine.rs"]
mod engine;
#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use engine::{adt, control_ids_in, eventually, Engine, MllpClient};

const THROWING: &str = "transform: |\n  if msg[\"MSH-10\"].starts_with(\"THROW\") { throw \"cannot map this one\"; }\n  msg\n";

fn channel_yaml(addr: SocketAddr, sink: SocketAddr, transform: &str) -> String {
    format!(
        "name: adt\n\
         source:\n  mllp: {{ listen: \"{addr}\" }}\n\
         {transform}\
         destinations:\n  - name: sink\n    mllp: {{ connect: \"{sink}\" }}\n"
    )
}

/// `junction messages ARGS --channel adt --data DATA`, with a `$USER` that is not the caller's: the
/// audit log must name the real user anyway.
fn messages(data: &Path, args: &[&str]) -> Output {
    Command::new(support::junction_bin())
        .arg("messages")
        .args(args)
        .args(["--channel", "adt", "--data"])
        .arg(data)
        .env("USER", "impostor")
        .output()
        .unwrap()
}

/// The name of the user running the tests, from the real uid (the number when passwd has no name).
fn real_user() -> String {
    let id = |flags: &str| Command::new("id").arg(flags).output().unwrap();
    let named = id("-run");
    let id = if named.status.success() {
        named
    } else {
        id("-ru")
    };
    String::from_utf8(id.stdout).unwrap().trim().to_owned()
}

/// The sequence id of the copy in a reprocess report line `message SEQ reprocessed as COPY ...`.
fn copy_of(report: &str, seq: &str) -> String {
    report
        .split(&format!("message {seq} reprocessed as "))
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no copy of {seq} reported: {report}"))
        .to_owned()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "junction messages failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The list line of a control id, and its sequence id.
fn line_of(list: &str, control_id: &str) -> (String, String) {
    let line = list
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(control_id))
        .unwrap_or_else(|| panic!("{control_id} not listed:\n{list}"))
        .to_owned();
    let seq = line.split_whitespace().next().unwrap().to_owned();
    (line, seq)
}

/// The value of a `label  value` line of `show`.
fn field(show: &str, label: &str) -> String {
    show.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line:\n{show}"))
        .trim()
        .to_owned()
}

#[test]
fn list_show_and_reprocess_a_stopped_engines_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, sink) = support::spawn_listen(&dir.path().join("sink.hl7"));
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel("adt.yaml", &channel_yaml(addr, sink, THROWING));
    engine.start();
    support::wait_listening(addr);
    let mut client = MllpClient::connect(addr).unwrap();
    for id in ["GOOD1", "THROW2", "GOOD3"] {
        assert_eq!(client.send(&adt(id)).unwrap().0, "AA");
    }
    let sink_file = dir.path().join("sink.hl7");
    assert!(eventually(30, || control_ids_in(&sink_file).len() == 2));

    // While the engine holds the store, the CLI says so instead of failing obscurely.
    let locked = messages(&engine.data, &["list"]);
    assert!(!locked.status.success());
    let err = String::from_utf8_lossy(&locked.stderr);
    assert!(
        err.contains("in use by a running engine") && err.contains("--admin"),
        "{err}"
    );
    assert_eq!(engine.stop(), Some(0));

    let list = stdout(&messages(&engine.data, &["list"]));
    assert!(list.starts_with("SEQ"), "{list}");
    assert_eq!(
        list.lines().count(),
        4,
        "header and three messages:\n{list}"
    );
    let (good, good_seq) = line_of(&list, "GOOD1");
    assert!(
        good.contains("ADT^A01") && good.contains("sent") && good.contains("sink=sent"),
        "{good}"
    );
    let (bad, bad_seq) = line_of(&list, "THROW2");
    assert!(
        bad.contains("errored") && bad.contains("cannot map this one"),
        "{bad}"
    );
    assert!(
        list.find("GOOD3").unwrap() < list.find("GOOD1").unwrap(),
        "newest first:\n{list}"
    );

    let errored = stdout(&messages(&engine.data, &["list", "--status", "errored"]));
    assert_eq!(errored.lines().count(), 2, "{errored}");
    assert!(errored.contains("THROW2"));
    let by_id = stdout(&messages(&engine.data, &["list", "--control-id", "GOOD3"]));
    assert_eq!(by_id.lines().count(), 2, "{by_id}");
    assert_eq!(
        stdout(&messages(
            &engine.data,
            &["list", "--since", "1h", "--limit", "2"]
        ))
        .lines()
        .count(),
        3
    );
    let future = stdout(&messages(
        &engine.data,
        &["list", "--since", "2999-01-01T00:00:00Z"],
    ));
    assert!(future.starts_with("no messages"), "{future}");
    let bad_status = messages(&engine.data, &["list", "--status", "lost"]);
    assert!(!bad_status.status.success());
    assert!(String::from_utf8_lossy(&bad_status.stderr).contains("errored"));

    // The whole story of a delivered message: raw, each stage, the attempt and the partner's ACK.
    let show = stdout(&messages(&engine.data, &["show", &good_seq]));
    for expected in [
        "control id",
        "GOOD1",
        "-> sink",
        "received",
        "queued for sink",
        "attempt 1 to sink: sent",
        "MSA|AA|GOOD1",
        "raw message",
        "PID|1||GOOD1^^^FAC^MR",
        "output for sink (application/hl7-v2)",
    ] {
        assert!(show.contains(expected), "show lacks {expected:?}:\n{show}");
    }
    let raw = stdout(&messages(&engine.data, &["show", &bad_seq, "--raw"]));
    assert!(raw.starts_with("MSH|^~\\&|SEND|FAC|RECV|FAC|"), "{raw}");
    assert_eq!(raw.lines().count(), 4, "one line per segment:\n{raw}");
    let failed = stdout(&messages(&engine.data, &["show", &bad_seq]));
    assert!(
        failed.contains("errored") && failed.contains("cannot map this one"),
        "{failed}"
    );
    let only_sink = stdout(&messages(
        &engine.data,
        &["show", &good_seq, "--destination", "sink"],
    ));
    assert!(only_sink.contains("attempt 1 to sink") && !only_sink.contains("raw message"));
    let missing = messages(&engine.data, &["show", "999999"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not in channel"));

    // Fix the script, reprocess the errored message offline, and let the restarted engine run it.
    engine.channel("adt.yaml", &channel_yaml(addr, sink, ""));
    let report = stdout(&messages(
        &engine.data,
        &["reprocess", "--status", "errored"],
    ));
    let copy_seq = copy_of(&report, &bad_seq);
    let again = messages(&engine.data, &["reprocess", "--status", "errored"]);
    assert!(
        !again.status.success(),
        "an errored message is reprocessed once by status"
    );

    engine.start();
    assert!(eventually(30, || control_ids_in(&sink_file)
        .contains(&"THROW2".to_owned())));
    assert_eq!(engine.stop(), Some(0));

    let copy = stdout(&messages(&engine.data, &["show", &copy_seq]));
    assert_eq!(field(&copy, "reprocess of"), bad_seq, "{copy}");
    assert!(copy.contains("attempt 1 to sink: sent"), "{copy}");
    let original = stdout(&messages(&engine.data, &["show", &bad_seq]));
    assert_eq!(field(&original, "reprocessed as"), copy_seq, "{original}");
    assert!(original.contains("errored"), "the original stays as it was");
    let list = stdout(&messages(&engine.data, &["list"]));
    let (newest, newest_seq) = line_of(&list, "THROW2");
    assert_eq!(
        newest_seq, copy_seq,
        "the copy is the newest THROW2:\n{list}"
    );
    assert!(
        newest.contains("sink=sent") && newest.contains(&format!("reprocess of {bad_seq}")),
        "{newest}"
    );

    // Only the outputs: the one destination's payload, not the raw message or the history.
    let transformed = stdout(&messages(
        &engine.data,
        &["show", &good_seq, "--transformed"],
    ));
    assert!(
        transformed.contains("output for sink (application/hl7-v2)")
            && transformed.contains("PID|1||GOOD1^^^FAC^MR")
            && !transformed.contains("raw message")
            && !transformed.contains("attempt 1"),
        "{transformed}"
    );

    // Named sequence ids are run again even when delivered before; both copies go out on restart.
    let report = stdout(&messages(
        &engine.data,
        &["reprocess", &good_seq, &copy_seq],
    ));
    let good_copy = copy_of(&report, &good_seq);
    let second_copy = copy_of(&report, &copy_seq);
    engine.start();
    assert!(eventually(30, || control_ids_in(&sink_file).len() == 5));
    assert_eq!(engine.stop(), Some(0));
    assert_eq!(
        control_ids_in(&sink_file),
        ["GOOD1", "GOOD3", "THROW2", "GOOD1", "THROW2"]
    );
    for (original, copy) in [(&good_seq, &good_copy), (&copy_seq, &second_copy)] {
        let shown = stdout(&messages(&engine.data, &["show", copy]));
        assert_eq!(&field(&shown, "reprocess of"), original, "{shown}");
        assert!(shown.contains("attempt 1 to sink: sent"), "{shown}");
    }

    // Every access is in the audit log: who, what, when.
    let audit = std::fs::read_to_string(engine.data.join("audit.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let user = real_user();
    assert_ne!(user, "impostor");
    assert!(entries
        .iter()
        .all(|e| e["who"] == user.as_str() && e["via"] == "cli"));
    assert!(entries
        .iter()
        .all(|e| e["at"].as_str().unwrap().ends_with('Z')));
    let has = |action: &str, seq: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["channel"] == "adt"
                && e["seq"].as_u64().map(|s| s.to_string()).as_deref() == Some(seq)
        })
    };
    assert!(has("show", &good_seq) && has("show", &bad_seq) && has("reprocess", &bad_seq));
    assert!(entries
        .iter()
        .any(|e| e["action"] == "list" && e["detail"].as_str().unwrap().contains("errored")));
    let reprocess = entries.iter().find(|e| e["action"] == "reprocess").unwrap();
    assert_eq!(reprocess["detail"], format!("copy {copy_seq}"));
    assert!(has("show", &good_copy) && has("reprocess", &good_seq));
}

/// Two MLLP destinations, `sink` and `sink2`, after the given transform.
fn two_sink_yaml(addr: SocketAddr, sink: SocketAddr, sink2: SocketAddr, transform: &str) -> String {
    format!(
        "{}  - name: sink2\n    mllp: {{ connect: \"{sink2}\" }}\n",
        channel_yaml(addr, sink, transform)
    )
}

#[test]
fn the_admin_api_answers_like_the_store_files_and_reprocesses_live() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let sink2_file = dir.path().join("sink2.hl7");
    let (_sink, sink) = support::spawn_listen(&sink_file);
    let (_sink2, sink2) = support::spawn_listen(&sink2_file);
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let engine = Engine::new(dir.path());
    engine.channel("adt.yaml", &two_sink_yaml(addr, sink, sink2, THROWING));
    // The engine's token file names two people; each client file holds one of the tokens.
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "# who may browse\nops s3cret-ops\nalice s3cret-alice\n",
    )
    .unwrap();
    let ops_token = dir.path().join("ops-token");
    std::fs::write(&ops_token, "s3cret-ops\n").unwrap();
    let alice_token = dir.path().join("alice-token");
    std::fs::write(&alice_token, "alice s3cret-alice\n").unwrap();
    let run = support::Process(
        Command::new(support::junction_bin())
            .args(["run", "--channels"])
            .arg(&engine.channels)
            .arg("--data")
            .arg(&engine.data)
            .args(["--admin", &admin.to_string(), "--admin-token-file"])
            .arg(&tokens)
            .env_remove("JUNCTION_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_listening(addr);
    support::wait_listening(admin);
    let mut client = MllpClient::connect(addr).unwrap();
    for id in ["GOOD1", "THROW2", "THROW3"] {
        assert_eq!(client.send(&adt(id)).unwrap().0, "AA");
    }
    assert!(eventually(30, || control_ids_in(&sink_file).len() == 1
        && control_ids_in(&sink2_file).len() == 1));

    let admin_addr = admin.to_string();
    let online_as = |token: &Path, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--admin", &admin_addr]);
        Command::new(support::junction_bin())
            .arg("messages")
            .args(&all)
            .args(["--channel", "adt", "--admin-token-file"])
            .arg(token)
            .env_remove("JUNCTION_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    let online = |args: &[&str]| online_as(&ops_token, args);
    let list = stdout(&online(&["list"]));
    let (_, good_seq) = line_of(&list, "GOOD1");
    let (_, bad_seq) = line_of(&list, "THROW2");
    let (_, bad3_seq) = line_of(&list, "THROW3");
    let show = stdout(&online_as(&alice_token, &["show", &bad_seq]));
    assert!(show.contains("cannot map this one"), "{show}");
    let wrong = Command::new(support::junction_bin())
        .args([
            "messages",
            "list",
            "--channel",
            "adt",
            "--admin",
            &admin.to_string(),
        ])
        .env("JUNCTION_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    // A destination the channel does not have is refused before anything is copied, and a listing
    // too large to build in the engine's memory is refused with the way round it.
    let typo = online(&["reprocess", &good_seq, "--destination", "sink3"]);
    assert!(!typo.status.success());
    let said = String::from_utf8_lossy(&typo.stderr);
    assert!(
        said.contains("has no destination \"sink3\"") && said.contains("sink, sink2"),
        "{said}"
    );
    let huge = online(&["list", "--limit", "1000000"]);
    assert!(!huge.status.success());
    assert!(String::from_utf8_lossy(&huge.stderr).contains("limit 1000000 is over 10000"));

    // A named message, again, to one destination only: the running engine delivers the copy at once.
    let report = stdout(&online(&["reprocess", &good_seq, "--destination", "sink2"]));
    let good_copy = copy_of(&report, &good_seq);
    assert!(eventually(30, || control_ids_in(&sink2_file).len() == 2));
    let copy = stdout(&online(&["show", &good_copy]));
    assert_eq!(
        field(&copy, "reprocess of"),
        format!("{good_seq} (only destination sink2)"),
        "{copy}"
    );
    assert!(copy.contains("attempt 1 to sink2: sent"), "{copy}");
    assert!(
        !copy.contains("to sink:"),
        "only sink2 was asked for:\n{copy}"
    );
    assert_eq!(
        field(&stdout(&online(&["show", &good_seq])), "reprocessed as"),
        good_copy
    );

    // Fix the script, reload, and run every errored message again through the admin API.
    engine.channel("adt.yaml", &two_sink_yaml(addr, sink, sink2, ""));
    let (status, body) = admin::http(admin, "POST", "/reload", Some("s3cret-ops"));
    assert_eq!(status, 200, "{body}");
    let report = stdout(&online(&["reprocess", "--status", "errored"]));
    let copies = [copy_of(&report, &bad_seq), copy_of(&report, &bad3_seq)];
    assert!(eventually(30, || control_ids_in(&sink_file).len() == 3));
    assert_eq!(control_ids_in(&sink_file), ["GOOD1", "THROW2", "THROW3"]);
    assert!(eventually(30, || control_ids_in(&sink2_file).len() == 4));
    for (original, copy) in [(&bad_seq, &copies[0]), (&bad3_seq, &copies[1])] {
        let shown = stdout(&online(&["show", copy]));
        assert_eq!(&field(&shown, "reprocess of"), original, "{shown}");
        assert!(shown.contains("attempt 1 to sink: sent"), "{shown}");
        let original_shown = stdout(&online(&["show", original]));
        assert_eq!(&field(&original_shown, "reprocessed as"), copy);
    }
    // Each errored message is reprocessed once by status.
    assert!(!online(&["reprocess", "--status", "errored"])
        .status
        .success());

    // Stop the engine (SIGTERM) and read the same store offline: the same text.
    let list = stdout(&online(&["list"]));
    let show = stdout(&online(&["show", &bad_seq]));
    Command::new("kill")
        .args(["-TERM", &run.0.id().to_string()])
        .status()
        .unwrap();
    let mut run = run;
    run.0.wait().unwrap();
    assert_eq!(stdout(&messages(&engine.data, &["list"])), list);
    assert_eq!(stdout(&messages(&engine.data, &["show", &bad_seq])), show);

    // The audit log names the token each API request used.
    let audit = std::fs::read_to_string(engine.data.join("audit.jsonl")).unwrap();
    let api: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["via"] == "api")
        .collect();
    let by = |who: &str, action: &str, seq: &str| {
        api.iter().any(|e| {
            e["who"] == who
                && e["action"] == action
                && e["seq"].as_u64().map(|s| s.to_string()).as_deref() == Some(seq)
        })
    };
    assert!(by("alice", "show", &bad_seq), "{audit}");
    assert!(by("ops", "reprocess", &good_seq), "{audit}");
    assert!(by("ops", "reprocess", &bad3_seq), "{audit}");
    assert!(api.iter().all(|e| e["who"] == "ops" || e["who"] == "alice"));
}

#[test]
fn run_prunes_old_messages_in_the_background_while_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink) = support::spawn_listen(&sink_file);
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    let retention = "retention: { keep: 2s, keep_errored: true, every: 1s }\n";
    engine.channel(
        "adt.yaml",
        &format!("{}{retention}", channel_yaml(addr, sink, THROWING)),
    );
    engine.start();
    support::wait_listening(addr);
    let mut client = MllpClient::connect(addr).unwrap();
    assert_eq!(client.send(&adt("THROW0")).unwrap().0, "AA");
    // Traffic keeps flowing while passes run: every message is still ACKed and delivered.
    let mut sent = Vec::new();
    let started = std::time::Instant::now();
    let mut pruned = false;
    while !pruned || started.elapsed() < std::time::Duration::from_secs(5) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no retention pass removed anything:\n{}",
            engine.log_text()
        );
        let id = format!("OK{}", sent.len());
        assert_eq!(client.send(&adt(&id)).unwrap().0, "AA", "{id}");
        sent.push(id);
        std::thread::sleep(std::time::Duration::from_millis(50));
        pruned = engine
            .log_text()
            .lines()
            .any(|l| l.contains("retention pass done") && !l.contains("removed=0"));
    }
    assert!(eventually(30, || control_ids_in(&sink_file) == sent));
    assert_eq!(engine.stop(), Some(0));

    // The early messages are gone, the errored one is kept, the recent ones are still there.
    let list = stdout(&messages(&engine.data, &["list", "--limit", "10000"]));
    assert!(
        list.contains("THROW0"),
        "errored messages are kept:\n{list}"
    );
    let first = sent.first().unwrap();
    let last = sent.last().unwrap();
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().nth(3) == Some(first.as_str())),
        "{first} outlived retention:\n{list}"
    );
    line_of(&list, last);
    let listed = list.lines().count() - 1;
    assert!(
        listed < sent.len(),
        "{listed} listed of {} sent: nothing was pruned",
        sent.len()
    );
}

#[test]
fn show_keeps_the_first_and_latest_attempts_of_a_long_outage_and_says_what_it_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let dead = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "adt.yaml",
        &channel_yaml(addr, dead, "").replace(
            "mllp: { connect:",
            "retry: { initial: 10ms, max: 10ms }\n    mllp: { connect:",
        ),
    );
    engine.start();
    support::wait_listening(addr);
    assert_eq!(
        MllpClient::connect(addr)
            .unwrap()
            .send(&adt("DOWN1"))
            .unwrap()
            .0,
        "AA"
    );
    assert!(eventually(30, || engine.log_text().contains("attempt=15 ")));
    assert_eq!(engine.stop(), Some(0));

    let (_, seq) = line_of(&stdout(&messages(&engine.data, &["list"])), "DOWN1");
    let show = stdout(&messages(&engine.data, &["show", &seq]));
    let attempts: u32 = field(&show, "-> sink")
        .split_once(" attempt(s)")
        .and_then(|(state, _)| state.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count:\n{show}"));
    assert!(attempts >= 15, "{show}");
    let shown: Vec<&str> = show
        .lines()
        .filter(|l| l.contains(" to sink: failed"))
        .collect();
    assert_eq!(shown.len(), 10, "first five and latest five:\n{show}");
    for n in 1..=5 {
        assert!(
            shown[n - 1].contains(&format!("attempt {n} to sink")),
            "{show}"
        );
    }
    assert!(
        shown[9].contains(&format!("attempt {attempts} to sink")),
        "the latest attempt is the last one shown:\n{show}"
    );
    assert!(
        show.contains(&format!(
            "attempts 6 to {} to sink: not kept (the count above is exact)",
            attempts - 5
        )),
        "{show}"
    );
}
