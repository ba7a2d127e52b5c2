//! The admin API of `junction run --admin`, driven over real sockets: the token is required, the
//! channel table and Prometheus metrics show what was sent, pause refuses messages with AE and
//! resume takes them again (and a pause outlives a restart), `junction status` prints the table; no token,
//! no API.
#![allow(clippy::unwrap_used)]

#[path = "support/admin.rs"]
mod admin;
#[path = "support/engine.rs"]
mod engine;
#[path = "support/mod.rs"]
mod support;

use std::net::{SocketAddr, TcpStream};

use admin::{channel_status, get_json, http, TOKEN};
use engine::{adt, control_ids_in, eventually, Engine, MllpClient};

/// Value of one Prometheus series line (`name{labels} value`), if present.
fn series(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn admin_api_reports_pauses_and_exports_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sink_file = dir.path().join("sink.hl7");
    let (_sink, sink_addr) = support::spawn_listen(&sink_file);
    // Nothing listens here: messages for this destination stay queued.
    let down = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "adt.yaml",
        &format!(
            "name: adt\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             filter: |\n  !msg[\"MSH-10\"].starts_with(\"F\")\n\
             destinations:\n\
             \x20 - name: sink\n    mllp: {{ connect: \"{sink_addr}\" }}\n\
             \x20 - name: down\n    mllp: {{ connect: \"{down}\", connect_timeout: 200ms }}\n    \
             retry: {{ initial: 10s, max: 10s }}\n"
        ),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);

    // Every route needs the token, message content included (a reprocess without a body would be a
    // 400 if it got past the token check).
    for (method, path) in [
        ("GET", "/health"),
        ("GET", "/channels"),
        ("GET", "/metrics"),
        ("POST", "/channels/adt/pause"),
        ("POST", "/channels/adt/resume"),
        ("POST", "/reload"),
        ("GET", "/channels/adt/messages"),
        ("GET", "/channels/adt/messages?status=queued"),
        ("GET", "/channels/adt/messages/1"),
        ("GET", "/channels/adt/messages/1?view=raw"),
        ("POST", "/channels/adt/reprocess"),
    ] {
        let (status, _) = http(api, method, path, None);
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _) = http(api, method, path, Some("wrong-token"));
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        let (status, _) = http(api, method, path, Some(&TOKEN[..TOKEN.len() - 1]));
        assert_eq!(status, 401, "{method} {path} with a token prefix");
    }
    let health = get_json(api, "/health");
    assert_eq!(health["status"], "ready");

    let mut client = MllpClient::connect(addr).unwrap();
    for id in ["A1", "A2", "F3", "A4", "F5"] {
        assert_eq!(client.send(&adt(id)).unwrap().0, "AA", "{id}");
    }
    let counted = eventually(20, || {
        let c = channel_status(api, "adt");
        c["received"] == 5 && c["filtered"] == 2 && c["sent"] == 3
    });
    let adt_status = channel_status(api, "adt");
    assert!(counted, "{adt_status}");
    assert_eq!(adt_status["state"], "running");
    assert_eq!(adt_status["errored"], 0);
    // The three unfiltered messages wait for the destination that is down.
    assert_eq!(adt_status["queued"], 3, "{adt_status}");
    let dests = adt_status["destinations"].as_array().unwrap();
    assert_eq!(dests[0]["name"], "sink");
    assert_eq!(dests[0]["queue_depth"], 0);
    assert_eq!(dests[0]["circuit_open"], false);
    assert_eq!(dests[1]["name"], "down");
    assert_eq!(dests[1]["queue_depth"], 3);
    assert!(dests[1]["oldest_age_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(control_ids_in(&sink_file), ["A1", "A2", "A4"]);

    // Paused: refused with AE, nothing stored; resumed: accepted again.
    let (status, body) = http(api, "POST", "/channels/adt/pause", Some(TOKEN));
    assert_eq!((status, body.contains("paused")), (200, true), "{body}");
    assert_eq!(channel_status(api, "adt")["state"], "paused");
    assert_eq!(client.send(&adt("P6")).unwrap().0, "AE");
    let (status, _) = http(api, "POST", "/channels/adt/resume", Some(TOKEN));
    assert_eq!(status, 200);
    assert_eq!(client.send(&adt("A7")).unwrap().0, "AA");
    assert_eq!(
        http(api, "POST", "/channels/nope/pause", Some(TOKEN)).0,
        404
    );
    assert!(eventually(20, || control_ids_in(&sink_file).len() == 4));
    assert_eq!(control_ids_in(&sink_file), ["A1", "A2", "A4", "A7"]);

    let (status, metrics) = http(api, "GET", "/metrics", Some(TOKEN));
    assert_eq!(status, 200);
    let expect = |series_name: &str, value: f64| {
        assert_eq!(
            series(&metrics, series_name),
            Some(value),
            "{series_name} in\n{metrics}"
        );
    };
    expect(
        r#"junction_messages_total{channel="adt",status="received"}"#,
        6.0,
    );
    expect(
        r#"junction_messages_total{channel="adt",status="filtered"}"#,
        2.0,
    );
    expect(
        r#"junction_messages_total{channel="adt",status="sent"}"#,
        4.0,
    );
    expect(
        r#"junction_messages_total{channel="adt",status="errored"}"#,
        0.0,
    );
    expect(
        r#"junction_queue_depth{channel="adt",destination="sink"}"#,
        0.0,
    );
    expect(
        r#"junction_queue_depth{channel="adt",destination="down"}"#,
        4.0,
    );
    assert!(
        series(
            &metrics,
            r#"junction_queue_oldest_age_seconds{channel="adt",destination="down"}"#
        )
        .unwrap()
            > 0.0
    );
    expect(
        r#"junction_processing_duration_seconds_count{channel="adt"}"#,
        6.0,
    );
    expect(
        r#"junction_processing_duration_seconds_bucket{channel="adt",le="+Inf"}"#,
        6.0,
    );
    expect(
        r#"junction_delivery_duration_seconds_bucket{channel="adt",destination="sink",le="+Inf"}"#,
        4.0,
    );
    assert!(
        series(
            &metrics,
            r#"junction_delivery_duration_seconds_sum{channel="adt",destination="sink"}"#
        )
        .unwrap()
            > 0.0
    );
    for family in [
        "# TYPE junction_messages_total counter",
        "# TYPE junction_queue_depth gauge",
        "# TYPE junction_queue_oldest_age_seconds gauge",
        "# TYPE junction_processing_duration_seconds histogram",
        "# TYPE junction_delivery_duration_seconds histogram",
        "# HELP junction_messages_total ",
    ] {
        assert!(metrics.contains(family), "{family} missing");
    }

    // `junction status` prints the same numbers as a table, with the token from a file.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let out = support::run_junction(&[
        "status",
        "--admin",
        &api.to_string(),
        "--admin-token-file",
        token_file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("adt "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row, ["adt", "running", "6", "2", "4", "4", "0"], "{stdout}");
    std::fs::write(&token_file, "not-the-token").unwrap();
    let out = support::run_junction(&[
        "status",
        "--admin",
        &api.to_string(),
        "--admin-token-file",
        token_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));

    // The token from JUNCTION_ADMIN_TOKEN is named `env` in the audit log.
    let (status, body) = http(api, "GET", "/channels/adt/messages", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let audit = std::fs::read_to_string(engine.data.join("audit.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&entry["who"], &entry["via"], &entry["action"]),
        (&"env".into(), &"api".into(), &"list".into()),
        "{audit}"
    );
    // The message routes refused above are real routes: with the token they answer.
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let seq = &listed["messages"][0]["seq"];
    let (status, shown) = http(
        api,
        "GET",
        &format!("/channels/adt/messages/{seq}?view=raw"),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        http(api, "POST", "/channels/adt/reprocess", Some(TOKEN)).0,
        400,
        "a reprocess without a body is a bad request once past the token"
    );

    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn admin_api_stays_off_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "files.yaml",
        &format!(
            "name: files\nsource:\n  mllp: {{ listen: \"{addr}\" }}\n\
             destinations:\n  - name: out\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            dir.path().join("out").display()
        ),
    );
    let api = admin::enable(&mut engine);
    engine.envs.clear();
    engine.start();
    support::wait_listening(addr);
    // The engine runs and takes messages; the admin port stays closed and the log says why.
    let mut client = MllpClient::connect(addr).unwrap();
    assert_eq!(client.send(&adt("N1")).unwrap().0, "AA");
    assert!(eventually(10, || engine
        .log_text()
        .contains("admin API not started: no token configured")));
    assert!(TcpStream::connect(api).is_err());
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn paused_file_source_leaves_its_files_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "drop.yaml",
        &format!(
            "name: drop\nsource:\n  file: {{ dir: \"{}\", poll: 50ms }}\n\
             destinations:\n  - name: out\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            inbox.display(),
            out.display()
        ),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);
    assert_eq!(
        http(api, "POST", "/channels/drop/pause", Some(TOKEN)).0,
        200
    );
    std::fs::write(inbox.join("one.hl7"), adt("D1")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Paused: the file is neither read nor moved to error/.
    assert!(inbox.join("one.hl7").exists());
    assert!(!inbox.join("error").join("one.hl7").exists());
    assert_eq!(channel_status(api, "drop")["received"], 0);
    assert_eq!(
        http(api, "POST", "/channels/drop/resume", Some(TOKEN)).0,
        200
    );
    assert!(eventually(10, || out.join("D1.hl7").exists()));
    assert!(inbox.join("processed").join("one.hl7").exists());
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_paused_channel_stays_paused_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut engine = Engine::new(dir.path());
    engine.channel(
        "adt.yaml",
        &format!(
            "name: adt\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             destinations:\n  - name: copy\n    file: {{ dir: \"{}\" }}\n",
            dir.path().join("out").display()
        ),
    );
    let api = admin::enable(&mut engine);
    engine.start();
    admin::wait_ready(api);
    assert_eq!(http(api, "POST", "/channels/adt/pause", Some(TOKEN)).0, 200);
    assert_eq!(engine.stop(), Some(0));

    // Restarted: still paused (a maintenance window outlives a restart), and says so in the log.
    engine.start();
    admin::wait_ready(api);
    assert_eq!(channel_status(api, "adt")["state"], "paused");
    let mut client = MllpClient::connect(addr).unwrap();
    assert_eq!(client.send(&adt("P1")).unwrap().0, "AE");
    assert!(engine.log_text().contains("channel starts paused"));
    assert_eq!(
        http(api, "POST", "/channels/adt/resume", Some(TOKEN)).0,
        200
    );
    assert_eq!(engine.stop(), Some(0));

    // Resumed before the next restart: running.
    engine.start();
    admin::wait_ready(api);
    assert_eq!(channel_status(api, "adt")["state"], "running");
    let mut client = MllpClient::connect(addr).unwrap();
    assert_eq!(client.send(&adt("A2")).unwrap().0, "AA");
    assert_eq!(engine.stop(), Some(0));
}
