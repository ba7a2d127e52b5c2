//! MLLP on real sockets against the real `junction` binary: `junction listen` and `junction send`
//! with each other (Latin-1 messages and ACKs, unparseable frames, stdout output, TLS with
//! certificates made at test time), a channel's MLLP source and destination (with STX/ETX framing), and
//! clients and servers nobody here wrote: python-hl7 (`mllp_send`, `hl7.mllp`) and node-hl7-client.
//!
//! Third-party tools are looked up in tests/.venv and tests/node_modules (or via env vars); absent
//! tools print SKIP, unless JUNCTION_REQUIRE_INTEROP names their family (CI), which makes them a failure.
#![allow(clippy::unwrap_used)]

#[path = "support/engine.rs"]
mod engine;
#[path = "../engine/net/tests/support/pki.rs"]
mod pki;
#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use engine::{eventually, Engine};
use pki::Pki;
use support::{
    first_line, free_port, interop_required, interop_tool, run_junction, spawn_junction,
    spawn_listen, tests_dir, wait_listening, Process,
};

const ADT: &str =
    "MSH|^~\\&|PYAPP|PYFAC|JUNCTION|HOSP|20240102030405||ADT^A01^ADT_A01|PY0001|P|2.5.1\r\
EVN|A01|20240102030405\r\
PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r";

#[test]
fn python_hl7_mllp_send_gets_acks_from_junction_listen() {
    let Some(mllp_send) = interop_tool(
        "python",
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
        "node",
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
        assert!(!interop_required("node"), "node not found");
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
        "python",
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
            !interop_required("python"),
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

/// The project's Latin-1 test message (MSH-18 `8859/1`, MSH-10 `LATIN1`).
fn latin1_message() -> Vec<u8> {
    std::fs::read(tests_dir().join("messages/latin1_8859.hl7")).unwrap()
}

/// Sends one MLLP frame holding `payload` on a fresh connection and returns the answer frame's
/// payload as text (ACKs for these tests are ASCII).
fn exchange(addr: SocketAddr, payload: &[u8]) -> String {
    exchange_framed(addr, payload, 0x0B, &[0x1C, 0x0D])
}

/// [`exchange`] with the given start and end bytes; the answer must be framed with the same ones.
fn exchange_framed(addr: SocketAddr, payload: &[u8], start: u8, end: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut frame = vec![start];
    frame.extend_from_slice(payload);
    frame.extend_from_slice(end);
    stream.write_all(&frame).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(end) {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before the ACK");
        answer.extend_from_slice(&chunk[..n]);
    }
    let inner = answer
        .strip_prefix(&[start])
        .and_then(|a| a.strip_suffix(end))
        .unwrap_or_else(|| panic!("answer not framed as sent: {answer:?}"));
    String::from_utf8(inner.to_vec()).unwrap()
}

/// The first segment of `ack` named `name`.
fn segment<'a>(ack: &'a str, name: &str) -> &'a str {
    ack.split('\r')
        .find(|s| s.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {ack:?}"))
}

#[test]
fn latin1_message_to_junction_listen_gets_aa_and_is_written_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.hl7");
    let (_listen, addr) = spawn_listen(&out);
    let ack = exchange(addr, &latin1_message());
    assert_eq!(segment(&ack, "MSA"), "MSA|AA|LATIN1", "{ack}");
    // Written as UTF-8 text with the characters MSH-18 says the bytes mean.
    let received = std::fs::read_to_string(&out).unwrap();
    assert!(
        received.contains("PID|1||L1^^^H^MR||Müller^Jürgen^Björn||19700101|M|||Straße 5^^Köln"),
        "{received}"
    );
    assert!(received.contains("Größe 180 cm; ½ Dosis"), "{received}");
    let parsed = run_junction(&["parse", "--get", "PID-11-3", out.to_str().unwrap()]);
    assert_eq!(String::from_utf8(parsed.stdout).unwrap(), "Köln\n");
}

#[test]
fn latin1_message_to_a_channel_mllp_source_is_accepted_and_read_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let files = dir.path().join("out");
    let mut engine = Engine::new(dir.path());
    // The transform throws (and nothing is written) unless the script sees the decoded name.
    engine.channel(
        "latin1.yaml",
        &format!(
            "name: latin1\n\
             source:\n  mllp: {{ listen: \"{addr}\" }}\n\
             transform: |\n  if msg[\"PID-5-1\"] != \"Müller\" {{ throw \"not decoded\"; }}\n  msg\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            files.display()
        ),
    );
    engine.start();
    wait_listening(addr);
    let ack = exchange(addr, &latin1_message());
    assert_eq!(segment(&ack, "MSA"), "MSA|AA|LATIN1", "{ack}");
    let written = files.join("LATIN1.hl7");
    assert!(
        eventually(10, || written.exists()),
        "nothing written: {}",
        engine.log_text()
    );
    // Unchanged by the transform, so written back in its own charset byte for byte.
    assert!(eventually(5, || std::fs::read(&written)
        .unwrap_or_default()
        == latin1_message()));
}

#[test]
fn a_channel_speaks_non_standard_framing_on_its_source_and_its_mllp_destination() {
    let dir = tempfile::tempdir().unwrap();
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let back = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let files = dir.path().join("out");
    let stx_etx = "start_byte: 0x02, end_bytes: [0x03]";
    let mut engine = Engine::new(dir.path());
    // front relays to back over MLLP; both only understand STX ... ETX, so a wrongly framed message or
    // ACK on the way never reaches the file.
    engine.channel(
        "front.yaml",
        &format!(
            "name: front\n\
             source:\n  mllp: {{ listen: \"{front}\", {stx_etx} }}\n\
             destinations:\n  - name: back\n    \
             mllp: {{ connect: \"{back}\", send_timeout: 5s, ack_timeout: 5s, {stx_etx} }}\n    \
             retry: {{ initial: 100ms, max: 200ms, max_attempts: forever }}\n"
        ),
    );
    engine.channel(
        "back.yaml",
        &format!(
            "name: back\n\
             source:\n  mllp: {{ listen: \"{back}\", {stx_etx} }}\n\
             destinations:\n  - name: files\n    file: {{ dir: \"{}\", name: \"${{MSH-10}}.hl7\" }}\n",
            files.display()
        ),
    );
    engine.start();
    wait_listening(front);
    let ack = exchange_framed(front, ADT.as_bytes(), 0x02, &[0x03]);
    assert_eq!(segment(&ack, "MSA"), "MSA|AA|PY0001", "{ack}");
    let written = files.join("PY0001.hl7");
    assert!(
        eventually(10, || std::fs::read(&written).unwrap_or_default()
            == ADT.as_bytes()),
        "not relayed: {}",
        engine.log_text()
    );
}

#[test]
fn junction_send_prints_the_msa_of_a_latin1_ack() {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = peer.accept().unwrap();
        let mut frame = Vec::new();
        let mut chunk = [0u8; 4096];
        while !frame.ends_with(&[0x1C, 0x0D]) {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0);
            frame.extend_from_slice(&chunk[..n]);
        }
        let mut ack = b"\x0bMSH|^~\\&|R|F|S|F|2024||ACK|A1|P|2.5|||||DEU|8859/1\r".to_vec();
        ack.extend_from_slice(b"MSA|AE|LATIN1|Stra\xdfe gesperrt\r\x1c\r");
        stream.write_all(&ack).unwrap();
    });
    let file = tests_dir().join("messages/latin1_8859.hl7");
    let out = run_junction(&[
        "send",
        "--to",
        &addr.to_string(),
        "--timeout",
        "10",
        file.to_str().unwrap(),
    ]);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "an AE fails the command");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("latin1_8859.hl7#1: MSA|AE|LATIN1|Straße gesperrt"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junction_listen_answers_ar_with_the_reason_for_a_frame_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.hl7");
    let (mut listen, addr) = spawn_listen(&out);
    let ack = exchange(
        addr,
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|BAD1|P|2.5\rPID|1\rpid|2\r",
    );
    let msa = segment(&ack, "MSA");
    assert!(
        msa.starts_with("MSA|AR|BAD1|segment 3 (pid): invalid segment name"),
        "{ack}"
    );
    assert!(segment(&ack, "ERR").contains("segment 3 (pid)"), "{ack}");
    let ack = exchange(addr, b"PID|1||X\r");
    assert_eq!(
        segment(&ack, "MSA"),
        "MSA|AR||message has no readable MSH segment"
    );
    // Still serving; nothing rejected was written to --out.
    let ack = exchange(addr, ADT.as_bytes());
    assert_eq!(segment(&ack, "MSA"), "MSA|AA|PY0001");
    let received = std::fs::read_to_string(&out).unwrap();
    assert!(!received.contains("BAD1") && received.contains("PY0001"));
    listen.0.kill().unwrap();
    let mut log = String::new();
    listen
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("rejected a message"), "{log}");
}

#[test]
fn junction_listen_binds_loopback_by_default_and_prints_to_stdout_without_out() {
    let port = free_port();
    let mut listen = spawn_junction(&["listen", "--port", &port.to_string()]);
    let mut stderr = BufReader::new(listen.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "listen exited");
    }
    assert_eq!(
        line.trim_end(),
        format!("junction listen: listening on 127.0.0.1:{port}")
    );
    let ack = exchange(SocketAddr::from(([127, 0, 0, 1], port)), ADT.as_bytes());
    assert_eq!(segment(&ack, "MSA"), "MSA|AA|PY0001");
    // The message was written and flushed before the ACK; stop the listener to read it all.
    listen.0.kill().unwrap();
    let mut printed = String::new();
    listen
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert_eq!(printed, format!("{}\n", ADT.replace('\r', "\n")));
}

#[test]
fn junction_send_over_tls_to_junction_listen_with_and_without_client_certificates() {
    let pki = Pki::generate();
    let path = |name: &str| pki.path(name).to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tls.hl7");
    std::fs::write(&input, ADT.replace("PY0001", "TLS1")).unwrap();
    let input = input.to_str().unwrap();
    let (server_cert, server_key) = (path("server.pem"), path("server.key"));
    let listen = |extra: &[&str]| {
        let port = free_port().to_string();
        let mut args = vec!["listen", "--port", &port];
        args.extend(["--tls-cert", &server_cert, "--tls-key", &server_key]);
        args.extend_from_slice(extra);
        let process = spawn_junction(&args);
        let addr = SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap()));
        wait_listening(addr);
        (process, addr.to_string())
    };
    let send = |to: &str, tls: &[&str]| {
        let mut args = vec!["send", "--to", to, "--timeout", "5"];
        args.extend_from_slice(tls);
        args.push(input);
        run_junction(&args)
    };
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));

    let (_server, addr) = listen(&[]);
    let out = send(&addr, &["--tls-ca", &ca]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls.hl7#1: MSA|AA|TLS1"));
    let plain = send(&addr, &[]);
    assert_eq!(plain.status.code(), Some(1), "plain MLLP to a TLS listener");
    let other = Pki::generate();
    let untrusted = send(&addr, &["--tls-ca", other.path("ca.pem").to_str().unwrap()]);
    assert_eq!(
        untrusted.status.code(),
        Some(1),
        "server certificate from another CA"
    );

    // Mutual TLS: a client certificate from the CA is let in, no certificate is not.
    let (_mtls, addr) = listen(&["--tls-client-ca", &ca]);
    let out = send(
        &addr,
        &["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("MSA|AA|TLS1"));
    let out = send(&addr, &["--tls-ca", &ca]);
    assert_eq!(out.status.code(), Some(1), "no client certificate");
}
