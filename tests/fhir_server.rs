//! The shipped hl7-to-fhir channel (`channels/hl7-to-fhir.yaml` with `scripts/`, copied as shipped)
//! delivering Bundles to a real HTTP endpoint the test runs on 127.0.0.1, and `junction transform`
//! printing the same Bundle offline.
#![allow(clippy::unwrap_used)]

#[path = "support/engine.rs"]
mod engine;
#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{eventually, Engine, MllpClient};
use http_server::{Request, Response};
use serde_json::Value;

fn repo() -> PathBuf {
    support::tests_dir().join("..")
}

/// The project's A01 test message (MSH-10 MSG00001).
fn admission() -> String {
    std::fs::read_to_string(repo().join("tests/messages/fhir/adt_a01.hl7")).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `root/channels/hl7-to-fhir.yaml` and `root/scripts/` as shipped; the MLLP source moved from its
/// fixed port to `listen` so tests can run side by side.
fn install_channel(root: &Path, listen: SocketAddr) -> PathBuf {
    copy_dir(&repo().join("scripts"), &root.join("scripts"));
    let shipped = std::fs::read_to_string(repo().join("channels/hl7-to-fhir.yaml")).unwrap();
    assert!(shipped.contains("listen: \"127.0.0.1:2576\""));
    let yaml = shipped.replace("127.0.0.1:2576", &listen.to_string());
    std::fs::create_dir_all(root.join("channels")).unwrap();
    let file = root.join("channels/hl7-to-fhir.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

/// A FHIR server stand-in: answers each request with the next status of `statuses` (the last one
/// repeats) and records every request.
struct FhirServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FhirServer {
    fn start(statuses: &'static [u16]) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&requests);
        let addr = http_server::serve(move |request| {
            let mut all = shared.lock().unwrap();
            all.push(request.clone());
            Response {
                status: statuses[(all.len() - 1).min(statuses.len() - 1)],
                content_type: "application/fhir+json",
                body: "{\"resourceType\":\"Bundle\",\"type\":\"transaction-response\"}".into(),
            }
        });
        Self { addr, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// The Patient entry of a transaction Bundle.
fn patient_entry(bundle: &Value) -> &Value {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "transaction");
    let entries = bundle["entry"].as_array().unwrap();
    let patient = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    assert_eq!(patient["resource"]["identifier"][0]["value"], "MRN-1001");
    assert_eq!(patient["resource"]["name"][0]["family"], "Everyman");
    patient
}

#[test]
fn the_shipped_channel_posts_a_transaction_bundle_and_retries_a_server_that_is_unavailable() {
    let server = FhirServer::start(&[503, 200]);
    let root = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    install_channel(root.path(), listen);
    let mut engine = Engine::new(root.path());
    engine.envs.push((
        "FHIR_BASE_URL".into(),
        format!("http://{}/fhir", server.addr),
    ));
    engine.start();
    support::wait_listening(listen);

    let (code, id) = MllpClient::connect(listen)
        .unwrap()
        .send(&admission())
        .unwrap();
    assert_eq!((code.as_str(), id.as_str()), ("AA", "MSG00001"));

    // The channel's retry starts at 1 s: the second attempt follows the 503 about a second later.
    assert!(
        eventually(20, || server.requests().len() >= 2),
        "no retry after the 503; engine log:\n{}",
        engine.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the 200 ends the attempts");
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/fhir", "a transaction goes to the base URL");
        assert_eq!(r.header("content-type"), Some("application/fhir+json"));
    }
    assert_eq!(
        requests[0].body, requests[1].body,
        "the retry sends the same Bundle"
    );
    let bundle: Value = serde_json::from_slice(&requests[1].body).unwrap();
    let patient = patient_entry(&bundle);
    assert_eq!(
        patient["request"],
        serde_json::json!({"method": "PUT", "url": "Patient?identifier=urn:id:GOODHEALTH|MRN-1001"})
    );

    // The file destination got the same Bundle.
    let file = root.path().join("data/out/fhir/MSG00001.json");
    assert!(eventually(10, || file.is_file()), "{}", file.display());
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written, bundle);
}

#[test]
fn transform_reads_the_message_from_stdin_and_prints_the_bundle() {
    let root = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let channel = install_channel(root.path(), listen);
    let mut child = Command::new(support::junction_bin())
        .args(["transform", "--channel"])
        .arg(&channel)
        .arg("-")
        .env_remove("FHIR_BASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(admission().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON Bundle ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    patient_entry(&bundle);
    assert_eq!(bundle["identifier"]["value"], "MSG00001");
    assert!(
        !root.path().join("data").exists(),
        "transform is offline: no file destination written"
    );
}
