//! End-to-end tests of `junction parse` as a user runs it: the real binary on the project's test
//! messages, files and stdin, JSON read back with serde_json, exit codes and error positions.
#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{junction_bin, run_junction, tests_dir};

/// A test message's path as a string.
fn message(name: &str) -> String {
    tests_dir()
        .join("messages")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

/// `junction parse ARGS...` on the test messages.
fn parse(args: &[&str]) -> Output {
    let mut all = vec!["parse"];
    all.extend_from_slice(args);
    run_junction(&all)
}

/// `junction parse ARGS...` with `input` on stdin.
fn parse_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(junction_bin())
        .arg("parse")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Succeeded, with stderr shown if not.
fn ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// Every stdout line as a JSON document.
fn documents(out: &Output) -> Vec<Value> {
    ok(out);
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `fields[n - 1]` of the `index`th segment, i.e. field n.
fn field(doc: &Value, index: usize, n: usize) -> &Value {
    &doc["segments"][index]["fields"][n - 1]
}

#[test]
fn json_has_segments_fields_repetitions_and_components() {
    let docs = documents(&parse(&[&message("adt_a01_v251.hl7")]));
    assert_eq!(docs.len(), 1, "one JSON document per message");
    let doc = &docs[0];
    let names: Vec<&str> = doc["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["MSH", "EVN", "PID", "PV1", "AL1"]);
    // MSH-1 and MSH-2 are plain strings, never split.
    assert_eq!(field(doc, 0, 1), "|");
    assert_eq!(field(doc, 0, 2), "^~\\&");
    assert_eq!(field(doc, 0, 10), "MSG00001");
    // MSH-9: one repetition of three components.
    assert_eq!(
        field(doc, 0, 9),
        &serde_json::json!([["ADT", "A01", "ADT_A01"]])
    );
    // PID-3: two repetitions; empty components are empty strings.
    let pid3 = field(doc, 2, 3);
    assert_eq!(
        pid3[0],
        serde_json::json!(["MRN12345", "", "", "HOSP", "MR"])
    );
    assert_eq!(pid3[1][0], "999-99-9999");
    assert_eq!(pid3[1][3], "SSA");
    assert_eq!(field(doc, 2, 5)[0][1], "Jane");
    assert_eq!(field(doc, 2, 1), "1");
    assert_eq!(field(doc, 2, 2), "");
}

#[test]
fn json_of_a_latin1_message_has_the_decoded_characters() {
    let docs = documents(&parse(&[&message("latin1_8859.hl7")]));
    assert_eq!(
        field(&docs[0], 1, 5),
        &serde_json::json!([["Müller", "Jürgen", "Björn"]])
    );
    let nte = field(&docs[0], 2, 3).as_str().unwrap();
    assert!(nte.contains("trägt Brille; Größe 180 cm; ½ Dosis"), "{nte}");
    // --emit hl7 writes it back in its own charset, byte for byte.
    let out = parse(&["--emit", "hl7", &message("latin1_8859.hl7")]);
    ok(&out);
    assert_eq!(
        out.stdout,
        std::fs::read(message("latin1_8859.hl7")).unwrap()
    );
}

#[test]
fn reads_stdin_with_a_dash_and_with_no_argument() {
    let input = std::fs::read(message("stream_lf.hl7")).unwrap();
    for args in [&["-"][..], &[][..]] {
        let docs = documents(&parse_stdin(args, &input));
        let ids: Vec<&Value> = docs.iter().map(|d| field(d, 0, 10)).collect();
        assert_eq!(ids, ["STREAM1", "STREAM2", "STREAM3"], "args {args:?}");
        assert_eq!(field(&docs[2], 1, 5)[0][1], "Three");
    }
    let mut args = vec!["--get", "PID-5-2"];
    args.push("-");
    let out = parse_stdin(&args, &input);
    ok(&out);
    assert_eq!(stdout(&out), "One\nTwo\nThree\n");
}

#[test]
fn several_files_a_stream_and_a_batch_are_read_in_order() {
    let out = parse(&[
        "--get",
        "MSH-10",
        &message("adt_a01_v251.hl7"),
        &message("stream_lf.hl7"),
        &message("batch_fhs.hl7"),
    ]);
    ok(&out);
    assert_eq!(
        stdout(&out),
        "MSG00001\nSTREAM1\nSTREAM2\nSTREAM3\nBATCH001\nBATCH002\nBATCH003\n"
    );
    // The batch's messages are messages, not the FHS/BHS envelope.
    let docs = documents(&parse(&[&message("batch_fhs.hl7")]));
    assert_eq!(docs.len(), 3);
    assert!(docs.iter().all(|d| d["segments"][0]["name"] == "MSH"));
}

#[test]
fn get_prints_an_empty_line_where_the_value_is_absent() {
    let out = parse(&[
        "--get",
        "PV1-3-1",
        &message("adt_a01_v251.hl7"),
        &message("stream_lf.hl7"),
    ]);
    ok(&out);
    // One line per message, so the output lines up with the input even where PV1 is missing.
    assert_eq!(stdout(&out), "WARD1\n\n\n\n");
    let out = parse(&["--get", "PID-5[2]-1", &message("adt_a01_v251.hl7")]);
    ok(&out);
    assert_eq!(stdout(&out), "\n");
    let out = parse(&["--get", "PID-", &message("adt_a01_v251.hl7")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an invalid path is a usage error"
    );
    assert!(
        stderr(&out).contains("invalid --get path"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_input_exits_1_naming_file_and_position_never_101() {
    for (file, expected) in [
        (
            "malformed_segment_name.hl7",
            "malformed_segment_name.hl7: message 1 (byte 62): segment 3 (PID)",
        ),
        (
            "malformed_no_encoding_chars.hl7",
            "malformed_no_encoding_chars.hl7: message 1 (byte 4): segment 1 (MSH)",
        ),
        (
            "malformed_no_msh.hl7",
            "malformed_no_msh.hl7: byte 0: message does not start with MSH",
        ),
        ("malformed_batch_nested.hl7", "segment 3 (BHS)"),
        ("malformed_utf16_declared.hl7", "message 1 (byte 87)"),
    ] {
        let out = parse(&[&message(file)]);
        assert_eq!(out.status.code(), Some(1), "{file}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{file}: {}", stderr(&out));
    }
    // A bad message in the middle of a stream is reported by number and file offset; the good ones
    // around it are still printed.
    let dir = tempfile::tempdir().unwrap();
    let good = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|OK1|P|2.5\rPID|1\r";
    let bad = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|BAD|P|2.5\rP1D|1\rpid|2\r";
    let path = dir.path().join("mixed.hl7");
    std::fs::write(&path, format!("{good}{bad}{}", good.replace("OK1", "OK2"))).unwrap();
    let out = parse(&["--get", "MSH-10", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "OK1\nOK2\n");
    let bad_segment = good.len() + bad.find("pid").unwrap();
    assert!(
        stderr(&out).contains(&format!(
            "mixed.hl7: message 2 (byte {bad_segment}): segment 3 (pid)"
        )),
        "{}",
        stderr(&out)
    );
    // Binary junk, empty input and a missing file: errors, not panics.
    for input in [&b"\x00\xff\xfe\x0b\x1c"[..], b"", b"\n\n"] {
        let out = parse_stdin(&[], input);
        assert_eq!(out.status.code(), Some(1), "{input:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
    let out = parse(&["/nonexistent/x.hl7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/x.hl7: cannot read"));
}
