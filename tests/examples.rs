//! Every documented example runs: the worked channels in `examples/guide` validate, compile and pass
//! their own test cases, and the README's example messages parse and round-trip.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn junction(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_junction"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn guide_channels_validate() {
    let out = junction(&["validate", "examples/guide/channels"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["adt-to-lab", "oru-to-fhir", "batch-drop"] {
        assert!(stdout.contains(&format!("ok   {name}")), "{stdout}");
    }
}

/// The guide's channels are what analysts copy, so their cases must all run and pass; the count
/// catches a test file that stops being read.
#[test]
fn guide_channels_pass_their_tests() {
    let out = junction(&["test", "examples/guide/channels"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("11 passed, 0 failed"), "{stdout}");
    for name in ["adt-to-lab", "oru-to-fhir", "batch-drop"] {
        let file = format!("PASS examples/guide/channels/tests/{name}.yaml: ");
        assert!(
            stdout.contains(&file),
            "no passing case for {name}: {stdout}"
        );
    }
}

#[test]
fn guide_channels_pass_when_run_from_inside_their_folder() {
    // `junction test .` from the channels folder: scripts, imports and tables must all resolve
    // against the folder above it, as they do from the repository root.
    let dir = repo().join("examples/guide/channels");
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["test", "."])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("11 passed, 0 failed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shipped_channels_validate() {
    let out = junction(&["validate", "channels"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_messages_round_trip() {
    for file in [
        "examples/messages/adt_a01.hl7",
        "examples/messages/oru_r01.hl7",
    ] {
        let out = junction(&["parse", "--emit", "hl7", file]);
        assert!(out.status.success());
        assert_eq!(
            out.stdout,
            std::fs::read(repo().join(file)).unwrap(),
            "{file}"
        );
    }
    let out = junction(&["parse", "--get", "PID-5-1", "examples/messages/adt_a01.hl7"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Rivera\n");
}

#[test]
fn malformed_input_exits_1_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.hl7");
    std::fs::write(&bad, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X1|P|2.5\rPI\r").unwrap();
    let out = junction(&["parse", bad.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "malformed input must exit 1, never panic (101)"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.hl7: message 1") && err.contains("segment 2"),
        "{err}"
    );
}
