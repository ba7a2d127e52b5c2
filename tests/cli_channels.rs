//! `junction transform`, `junction test` and `junction validate` as an analyst runs them: on the
//! shipped channels from the repository root, and on throwaway projects that are wrong on purpose.
#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::junction_bin;

/// The repository root, where `channels/`, `scripts/` and `examples/` are.
fn repo_root() -> PathBuf {
    support::tests_dir().join("..")
}

/// Runs `junction args` in `dir` with no FHIR server configured, so results do not depend on the
/// environment the tests run in.
fn junction_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(junction_bin());
    cmd.args(args).current_dir(dir).env_remove("FHIR_BASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A throwaway project: channel files, scripts and test files written as given.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

const ROUTER: &str = "\
name: router
source:
  mllp: { listen: \"127.0.0.1:2999\" }
filter: |
  if msg[\"MSH-11\"] == \"T\" { filter_out(\"test message\"); }
  true
destinations:
  - name: copy
    file: { dir: out }
  - name: names
    filter: 'msg[\"PID-8\"] == \"F\"'
    transform: |
      #{ family: msg[\"PID-5.1\"], given: msg[\"PID-5.2\"] }
    file: { dir: out }
";

const ADT: &str =
    "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5.1\rPID|1||9^^^B^MR||Lind^Ada||19800101|F\r";

#[test]
fn the_shipped_channels_pass_their_tests() {
    let out = junction_in(&repo_root(), &["test", "channels"], &[]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for file in ["default", "hl7-to-fhir"] {
        let prefix = format!("PASS channels/tests/{file}.yaml: ");
        assert!(
            stdout.lines().filter(|l| l.starts_with(&prefix)).count() >= 3,
            "{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
}

#[test]
fn a_failing_case_exits_1_and_says_what_differed() {
    let tests = "\
channel: router
cases:
  - name: female patients get a name document
    input: |
      MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5.1
      PID|1||9^^^B^MR||Lind^Ada||19800101|F
    expect:
      copy: { hl7: { PID-5.1: Lind } }
      names: { json: { /family: Lindqvist, /missing: null } }
  - name: absent means absent
    input: |
      MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C4|P|2.5.1
      PID|1||9^^^B^MR||Lind^Ada||19800101|F
    expect:
      names: { json: { /family: null } }
  - name: test messages are dropped
    input: |
      MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C2|T|2.5.1
    filtered: true
  - name: male patients get no name document
    input: |
      MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C3|P|2.5.1
      PID|1||9^^^B^MR||Lind^Bo||19800101|M
    expect:
      names: { filtered: false }
";
    let p = project(&[
        ("channels/router.yaml", ROUTER),
        ("channels/tests/router.yaml", tests),
    ]);
    let out = junction_in(p.path(), &["test"], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "FAIL channels/tests/router.yaml: female patients get a name document: \
             names: json /family: expected \"Lindqvist\", got \"Lind\"",
            "FAIL channels/tests/router.yaml: absent means absent: \
             names: json /family: expected absent, got \"Lind\"",
            "PASS channels/tests/router.yaml: test messages are dropped",
            "FAIL channels/tests/router.yaml: male patients get no name document: \
             names: got no output (filtered: filter returned false)",
            "1 passed, 3 failed",
        ],
        "{stdout}"
    );
}

#[test]
fn a_whole_output_that_differs_from_its_file_is_placed_by_line() {
    let tests = "\
channel: router
cases:
  - name: the copy is the message as received
    input: |
      MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5.1
      PID|1||9^^^B^MR||Lind^Ada||19800101|F
    expect:
      copy: { equals_file: expected/copy.hl7 }
      names: { equals_file: expected/names.json }
";
    // The JSON file is laid out differently from the output and still equal; the HL7 file has
    // the wrong family name on its second segment.
    let p = project(&[
        ("channels/router.yaml", ROUTER),
        ("channels/tests/router.yaml", tests),
        (
            "channels/tests/expected/copy.hl7",
            "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5.1\n\
             PID|1||9^^^B^MR||Lindqvist^Ada||19800101|F\n",
        ),
        (
            "channels/tests/expected/names.json",
            "{\"given\": \"Ada\",\n    \"family\": \"Lind\"}\n",
        ),
    ]);
    let out = junction_in(p.path(), &["test"], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let expected_file = p.path().join("channels/tests/expected/copy.hl7");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "FAIL channels/tests/router.yaml: the copy is the message as received: copy: \
             output differs from channels/tests/expected/copy.hl7 at line 2: \
             expected \"PID|1||9^^^B^MR||Lindqvist^Ada||19800101|F\", \
             got \"PID|1||9^^^B^MR||Lind^Ada||19800101|F\"",
            "0 passed, 1 failed",
        ],
        "{stdout}"
    );

    // Fixed file: the case passes and the command exits 0.
    std::fs::write(
        &expected_file,
        "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5.1\r\nPID|1||9^^^B^MR||Lind^Ada||19800101|F\r\n",
    )
    .unwrap();
    let out = junction_in(p.path(), &["test"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("1 passed, 0 failed\n"));
}

#[test]
fn a_test_file_with_a_mistake_is_placed_and_nothing_runs() {
    let tests = "channel: router\ncases:\n  - name: a\n    input: x\n    expect:\n      copy: { hl7: { PID-5.1: x }, contians: y }\n";
    let p = project(&[
        ("channels/router.yaml", ROUTER),
        ("channels/tests/router.yaml", tests),
    ]);
    let out = junction_in(p.path(), &["test", "channels"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "channels/tests/router.yaml:6:36: cases[0].expect.copy: unknown field 'contians'"
        ),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn transform_prints_the_fhir_bundle_of_the_example_admission() {
    let out = junction_in(
        &repo_root(),
        &[
            "transform",
            "--channel",
            "hl7-to-fhir",
            "examples/messages/adt_a01.hl7",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundle: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "transaction");
    let patient = &bundle["entry"][0]["resource"];
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["name"][0]["family"], "Rivera");
    assert_eq!(patient["identifier"][0]["value"], "884422");
}

#[test]
fn transform_names_message_and_destination_and_says_why_filtered() {
    let p = project(&[
        ("channels/router.yaml", ROUTER),
        ("in.hl7", ADT),
        ("test.hl7", &ADT.replace("|P|", "|T|")),
    ]);
    let out = junction_in(
        p.path(),
        &["transform", "--channel", "router", "in.hl7", "test.hl7"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let expected = "\
==> in.hl7 #1 -> copy (application/hl7-v2) <==
MSH|^~\\&|A|B|C|D|20260101||ADT^A01|C1|P|2.5.1
PID|1||9^^^B^MR||Lind^Ada||19800101|F
==> in.hl7 #1 -> names (application/json) <==
{
  \"family\": \"Lind\",
  \"given\": \"Ada\"
}
test.hl7 #1: filtered: test message
";
    assert_eq!(stdout, expected);

    // One destination of one message: the payload alone, ready to pipe.
    let out = junction_in(
        p.path(),
        &[
            "transform",
            "--channel",
            "channels/router.yaml",
            "--destination",
            "names",
            "in.hl7",
        ],
        &[],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["family"], "Lind");

    let out = junction_in(
        p.path(),
        &["transform", "--channel", "router", "--destination", "lab"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("has no destination 'lab' (has: copy, names)"));
}

#[test]
fn a_throwing_transform_exits_1_with_file_and_line() {
    let channel = "\
name: boom
source:
  mllp: { listen: \"127.0.0.1:2998\" }
destinations:
  - name: out
    transform: scripts/boom.rhai
    file: { dir: out }
";
    let script = "let family = msg[\"PID-5.1\"];\nthrow \"cannot map \" + family;\n";
    let p = project(&[
        ("channels/boom.yaml", channel),
        ("scripts/boom.rhai", script),
        ("in.hl7", ADT),
    ]);
    let out = junction_in(p.path(), &["transform", "--channel", "boom", "in.hl7"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("in.hl7 #1: error: transform:out: scripts/boom.rhai:2:1:"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot map Lind"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn validate_places_a_bad_channel_and_the_fhir_server_follows_the_environment() {
    let bad = ROUTER.replace(
        "  - name: copy\n",
        "  - name: copy\n    retyr: { max: 1m }\n",
    );
    let p = project(&[("channels/router.yaml", &bad)]);
    let out = junction_in(p.path(), &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("channels/router.yaml:9:5: destinations[0]: unknown field 'retyr'"),
        "{stderr}"
    );

    // The shipped FHIR channel: valid without a server, placed error with a wrong one.
    let root = repo_root();
    let out = junction_in(&root, &["validate", "channels"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = junction_in(
        &root,
        &["validate", "channels"],
        &[("FHIR_BASE_URL", "fhir.example.org/r4")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "channels/hl7-to-fhir.yaml:23:12: destinations[1].http.url: invalid URL 'fhir.example.org/r4'"
        ),
        "{stderr}"
    );
    let out = junction_in(
        &root,
        &[
            "transform",
            "--channel",
            "hl7-to-fhir",
            "examples/messages/oru_r01.hl7",
        ],
        &[("FHIR_BASE_URL", "http://127.0.0.1:9/fhir")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(
        "==> examples/messages/oru_r01.hl7 #1 -> fhir-server (application/fhir+json) <=="
    ));

    let out = junction_in(
        &root,
        &[
            "transform",
            "--channel",
            "hl7-to-fhir",
            "--destination",
            "fhir-server",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("destination 'fhir-server' of channel 'hl7-to-fhir' is switched off (FHIR_BASE_URL is not set)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_compiles_every_script_and_places_a_syntax_error_or_a_missing_file() {
    let channel = "\
name: boom
source:
  mllp: { listen: \"127.0.0.1:2998\" }
filter: 'msg[\"PID-8\"] != \"\"'
destinations:
  - name: out
    transform: scripts/boom.rhai
    file: { dir: out }
";
    // The broken line is the second: only compiling the file finds it, since nothing runs it here.
    let broken = "let family = msg[\"PID-5-1\"];\nlet given = ;\nmsg\n";
    let p = project(&[
        ("channels/boom.yaml", channel),
        ("scripts/boom.rhai", broken),
    ]);
    let out = junction_in(p.path(), &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("channel boom, destinations[out].transform: scripts/boom.rhai:2:")
            && stderr.contains("compile error"),
        "{stderr}"
    );

    // An inline script is placed at its line and column in the channel file.
    let inline = channel.replace(
        "filter: 'msg[\"PID-8\"] != \"\"'\n",
        "filter: |\n  let sex = msg[\"PID-8\"];\n  let known = ;\n  sex != \"\"\n",
    );
    assert_ne!(inline, channel, "the inline filter was not substituted");
    std::fs::write(p.path().join("channels/boom.yaml"), &inline).unwrap();
    std::fs::write(p.path().join("scripts/boom.rhai"), "msg\n").unwrap();
    let out = junction_in(p.path(), &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("channel boom, filter: channels/boom.yaml (inline script):6:15:")
            && stderr.contains("compile error"),
        "{stderr}"
    );

    // A channel naming a script file that is not there is placed at the reference.
    std::fs::write(p.path().join("channels/boom.yaml"), channel).unwrap();
    std::fs::remove_file(p.path().join("scripts/boom.rhai")).unwrap();
    let out = junction_in(p.path(), &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "channels/boom.yaml:7:16: destinations[0].transform: script file not found: scripts/boom.rhai"
        ),
        "{stderr}"
    );

    // Fixed, the same project validates.
    std::fs::write(p.path().join("scripts/boom.rhai"), "msg\n").unwrap();
    let out = junction_in(p.path(), &["validate"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
