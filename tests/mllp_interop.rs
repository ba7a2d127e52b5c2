//! MLLP interoperability with clients and servers nobody here wrote: python-hl7 (`mllp_send`, `hl7.mllp`)
//! and node-hl7-client, against the real `junction` binary.
//!
//! Tools are looked up in tests/.venv and tests/node_modules (or via env vars); absent tools print SKIP,
//! unless JUNCTION_REQUIRE_INTEROP=1 (CI), which makes them a failure.
#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use support::{first_line, interop_tool, spawn_listen, tests_dir, wait_listening, Process};

const ADT: &str =
    "MSH|^~\\&|PYAPP|PYFAC|JUNCTION|HOSP|20240102030405||ADT^A01^ADT_A01|PY0001|P|2.5.1\r\
EVN|A01|20240102030405\r\
PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r";

#[test]
fn python_hl7_mllp_send_gets_acks_from_junction_listen() {
    let Some(mllp_send) = interop_tool(
        "python-hl7 mllp_send",
        "JUNCTION_MLLP_SEND",
        ".venv/bin/mllp_send",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.hl7");
    let input = dir.path().join("in.hl7");
    // mllp_send reads one message per line group; --loose accepts \n segment ends and splits on MSH.
    let second = ADT
        .replace("PY0001", "PY0002")
        .replace("DOE^JANE", "ROE^RICHARD");
    std::fs::write(&input, format!("{}{}", ADT, second).replace('\r', "\n")).unwrap();
    let (_listen, addr) = spawn_listen(&out);

    let result = Command::new(&mllp_send)
        .args([
            "--loose",
            "-f",
            input.to_str().unwrap(),
            "-p",
            &addr.port().to_string(),
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout).replace('\r', "\n");
    assert!(
        result.status.success(),
        "mllp_send failed: {stdout} {}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        stdout.contains("MSA|AA|PY0001"),
        "ACK for the first message: {stdout}"
    );
    assert!(
        stdout.contains("MSA|AA|PY0002"),
        "ACK for the second message: {stdout}"
    );
    let received = std::fs::read_to_string(&out).unwrap();
    assert!(
        received.contains("PID|1||12345^^^HOSP^MR||DOE^JANE"),
        "{received}"
    );
    assert!(received.contains("ROE^RICHARD"), "{received}");
}

#[test]
fn node_hl7_client_gets_acks_from_junction_listen() {
    // The script imports the package from tests/node_modules (ES modules ignore NODE_PATH).
    if interop_tool(
        "node-hl7-client",
        "JUNCTION_NODE_HL7_CLIENT",
        "node_modules/node-hl7-client",
    )
    .is_none()
    {
        return;
    }
    let node = std::env::var("JUNCTION_NODE").unwrap_or_else(|_| "node".to_owned());
    if Command::new(&node).arg("--version").output().is_err() {
        assert!(
            std::env::var("JUNCTION_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "node not found"
        );
        println!("SKIP: node not found (set JUNCTION_NODE)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.hl7");
    let (_listen, addr) = spawn_listen(&out);

    let result = Command::new(node)
        .current_dir(tests_dir().join("interop"))
        .args(["node_send.mjs", "127.0.0.1", &addr.port().to_string(), "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "node client failed: {stdout} {}",
        String::from_utf8_lossy(&result.stderr)
    );
    for i in 1..=3 {
        assert!(
            stdout.contains(&format!("ACK AA NODE{i}")),
            "ACK for NODE{i} missing: {stdout}"
        );
    }
    let received = std::fs::read_to_string(&out).unwrap();
    assert_eq!(received.matches("MSH|").count(), 3, "{received}");
    assert!(received.contains("DOE^JANE"), "{received}");
}

#[test]
fn junction_send_to_a_python_hl7_mllp_server() {
    let Some(python) = interop_tool(
        "python-hl7 (venv python)",
        "JUNCTION_PYTHON",
        ".venv/bin/python",
    ) else {
        return;
    };
    let script = tests_dir().join("interop/python_mllp_server.py");
    let mut server = Process(
        Command::new(python)
            .args([script.to_str().unwrap(), "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let line = first_line(&mut server.0);
    if line.is_empty() {
        // The interpreter exists but could not import hl7.
        assert!(
            std::env::var("JUNCTION_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "python-hl7 server did not start"
        );
        println!("SKIP: python-hl7 server did not start (is the hl7 package installed?)");
        return;
    }
    let port: u16 = line.trim_start_matches("listening ").parse().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr);

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.hl7");
    let second = ADT.replace("PY0001", "PY0002");
    std::fs::write(&good, format!("{ADT}\n{second}")).unwrap();
    let result =
        support::run_junction(&["send", "--to", &addr.to_string(), good.to_str().unwrap()]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("good.hl7#1: MSA|AA|PY0001"), "{stdout}");
    assert!(stdout.contains("good.hl7#2: MSA|AA|PY0002"), "{stdout}");

    let rejected = dir.path().join("rejected.hl7");
    std::fs::write(&rejected, ADT.replace("PY0001", "REJECT1")).unwrap();
    let result = support::run_junction(&[
        "send",
        "--to",
        &addr.to_string(),
        rejected.to_str().unwrap(),
    ]);
    assert_eq!(result.status.code(), Some(1), "an AR must fail the command");
    assert!(String::from_utf8_lossy(&result.stdout).contains("MSA|AR|REJECT1"));
}
