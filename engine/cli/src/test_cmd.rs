//! `junction test`: run the cases in `<channels>/tests/*.yaml` through the engine's own pipeline
//! (no sockets, no store) and say, per case, whether each destination got what was expected.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Args;
use junction_config::{ChannelConfig, Expectation, TestCase};
use junction_hl7::{MessageBuf, Path as Hl7Path};
use junction_runtime::{Pipeline, Run};
use junction_store::{Disposition, Output};

use crate::transform::{destination_filter_reason, display_payload, unknown_destination};

/// Arguments of `junction test`.
#[derive(Args)]
pub struct TestArgs {
    /// The channels folder; test files are read from its `tests/` folder.
    #[arg(default_value = "channels")]
    dir: PathBuf,
}

/// A channel ready to run cases, or why it is not.
type Built<'a> = (&'a ChannelConfig, Result<Pipeline, String>);

/// Run `junction test`.
pub fn run(args: TestArgs) -> ExitCode {
    let channels = match junction_config::load_dir(&args.dir) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d}");
            return ExitCode::FAILURE;
        }
    };
    let tests_dir = args.dir.join("tests");
    let files = match junction_config::load_test_dir(&tests_dir) {
        Ok(f) => f,
        Err(d) => {
            eprintln!("{d}");
            return ExitCode::FAILURE;
        }
    };
    if files.is_empty() {
        eprintln!("no test files (*.yaml) in {}", tests_dir.display());
        return ExitCode::FAILURE;
    }
    // Lint first: every channel must build, whether or not a case uses it.
    let mut broken = 0;
    let mut built: HashMap<&str, Built> = HashMap::new();
    for c in &channels {
        let pipeline = Pipeline::build(c).map_err(|e| e.to_string());
        if let Err(e) = &pipeline {
            broken += 1;
            eprintln!("{e}");
        }
        built.insert(&c.name, (c, pipeline));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    let now = junction_runtime::now_millis();
    for file in &files {
        for case in &file.cases {
            let differences = run_case(case, &built, now);
            if differences.is_empty() {
                passed += 1;
                println!("PASS {}: {}", file.file.display(), case.name);
            } else {
                failed += 1;
                println!(
                    "FAIL {}: {}: {}",
                    file.file.display(),
                    case.name,
                    differences.join("; ")
                );
            }
        }
    }
    let broken_note = match broken {
        0 => String::new(),
        n => format!(", {n} channel(s) do not build"),
    };
    println!("{passed} passed, {failed} failed{broken_note}");
    if failed == 0 && broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every way the case's outcome differs from its expectations (empty: it passed).
fn run_case(case: &TestCase, built: &HashMap<&str, Built>, now: u64) -> Vec<String> {
    let Some((config, pipeline)) = built.get(case.channel.as_str()) else {
        let mut known: Vec<&str> = built.keys().copied().collect();
        known.sort_unstable();
        return vec![format!(
            "{}: no channel named '{}' (known: {})",
            case.channel_location,
            case.channel,
            known.join(", ")
        )];
    };
    let pipeline = match pipeline {
        Ok(p) => p,
        Err(e) => return vec![format!("channel does not build: {e}")],
    };
    let run = pipeline.run(&hl7_line_ends(&case.input), now);
    check(case, config, pipeline, &run)
}

/// Test files are edited as text with LF line ends; HL7 ends segments with CR.
fn hl7_line_ends(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().peekable();
    while let Some(&b) = bytes.next() {
        match b {
            b'\r' if bytes.peek() == Some(&&b'\n') => {}
            b'\n' => out.push(b'\r'),
            _ => out.push(b),
        }
    }
    out
}

fn check(case: &TestCase, config: &ChannelConfig, pipeline: &Pipeline, run: &Run) -> Vec<String> {
    let disposition = &run.processed.disposition;
    let mut diffs = Vec::new();
    match (&case.errored, disposition) {
        (Some(want), Disposition::Errored { error }) => {
            if !error.contains(want.as_str()) {
                diffs.push(format!("error \"{error}\" does not contain \"{want}\""));
            }
            return diffs;
        }
        (Some(want), other) => {
            diffs.push(format!(
                "expected an error containing \"{want}\", but the message was {}",
                describe(other)
            ));
            return diffs;
        }
        (None, Disposition::Errored { error }) => return vec![format!("message errored: {error}")],
        (None, _) => {}
    }
    if let Some(want) = case.filtered {
        match disposition {
            Disposition::Filtered { reason } if !want => diffs.push(format!(
                "expected the message to go on, but the channel filtered it: {reason}"
            )),
            Disposition::Routed(_) if want => {
                diffs.push("expected the channel to filter the message, but it was routed".into());
            }
            _ => {}
        }
    }
    for e in &case.expect {
        diffs.extend(check_destination(e, config, pipeline, run));
    }
    diffs
}

fn describe(d: &Disposition) -> String {
    match d {
        Disposition::Routed(_) => "routed".into(),
        Disposition::Filtered { reason } => format!("filtered ({reason})"),
        Disposition::Errored { error } => format!("errored ({error})"),
    }
}

fn check_destination(
    e: &Expectation,
    config: &ChannelConfig,
    pipeline: &Pipeline,
    run: &Run,
) -> Vec<String> {
    let d = &e.destination;
    if !pipeline.destination_names().any(|n| n == d) {
        let why = unknown_destination(config, pipeline, d);
        return vec![format!("{}: {why}", e.location)];
    }
    let output = match &run.processed.disposition {
        Disposition::Routed(outputs) => outputs.iter().find(|o| &o.destination == d),
        _ => None,
    };
    let Some(output) = output else {
        let wants_output = e.filtered == Some(false) || e.checks_content();
        if !wants_output {
            return Vec::new();
        }
        let why = match &run.processed.disposition {
            Disposition::Filtered { reason } => {
                format!("the channel filtered the message: {reason}")
            }
            _ => format!(
                "filtered: {}",
                destination_filter_reason(&run.processed.stages, d)
            ),
        };
        return vec![format!("{d}: got no output ({why})")];
    };
    if e.filtered == Some(true) {
        return vec![format!("{d}: expected filtered, but it got an output")];
    }
    let mut diffs = Vec::new();
    let text = display_payload(output);
    if !e.hl7.is_empty() {
        check_hl7(e, output, &mut diffs);
    }
    if !e.json.is_empty() {
        check_json(e, output, &mut diffs);
    }
    for want in &e.contains {
        if !text.contains(want.as_str()) {
            diffs.push(format!("{d}: output does not contain \"{want}\""));
        }
    }
    if let Some(file) = &e.equals_file {
        let (want, got) = (canonical(&file.text), canonical(&text));
        if want != got {
            let (line, w, g) = first_difference(&want, &got);
            diffs.push(format!(
                "{d}: output differs from {} at line {line}: expected \"{w}\", got \"{g}\"",
                file.path.display()
            ));
        }
    }
    diffs
}

fn check_hl7(e: &Expectation, output: &Output, diffs: &mut Vec<String>) {
    let d = &e.destination;
    let msg = match MessageBuf::parse(&output.payload) {
        Ok(m) => m,
        Err(err) => {
            diffs.push(format!("{d}: output is not HL7 ({err})"));
            return;
        }
    };
    for (path, want) in &e.hl7 {
        let got = match Hl7Path::from_str(path) {
            Ok(p) => msg.get(&p).unwrap_or_default(),
            Err(err) => {
                diffs.push(format!("{d}: hl7 {path}: {err}"));
                continue;
            }
        };
        if &got != want {
            diffs.push(format!(
                "{d}: hl7 {path}: expected \"{want}\", got \"{got}\""
            ));
        }
    }
}

fn check_json(e: &Expectation, output: &Output, diffs: &mut Vec<String>) {
    let d = &e.destination;
    let doc: serde_json::Value = match serde_json::from_slice(&output.payload) {
        Ok(v) => v,
        Err(err) => {
            diffs.push(format!("{d}: output is not JSON ({err})"));
            return;
        }
    };
    for (pointer, want) in &e.json {
        match doc.pointer(pointer) {
            // `null` in a test means "absent" (like `""` for an HL7 path): outputs never carry nulls.
            None | Some(serde_json::Value::Null) if want.is_null() => {}
            Some(got) if want.is_null() => diffs.push(format!(
                "{d}: json {pointer}: expected absent, got {}",
                shorten(&got.to_string())
            )),
            None => diffs.push(format!(
                "{d}: json {pointer}: expected {want}, but it is absent"
            )),
            Some(got) if !json_equal(got, want) => diffs.push(format!(
                "{d}: json {pointer}: expected {want}, got {}",
                shorten(&got.to_string())
            )),
            Some(_) => {}
        }
    }
}

/// Numbers compare by value, so `7.0` in a test matches `7` in the output.
fn json_equal(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) if got.is_number() && want.is_number() => a == b,
        _ => got == want,
    }
}

/// JSON re-printed the same way (so formatting does not matter), other text with LF line ends
/// and no trailing line breaks.
fn canonical(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(pretty) = serde_json::to_string_pretty(&v) {
            return pretty;
        }
    }
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim_end_matches('\n')
        .to_string()
}

/// 1-based line of the first difference, with both lines (shortened).
fn first_difference(want: &str, got: &str) -> (usize, String, String) {
    let mut w = want.lines();
    let mut g = got.lines();
    let mut line = 1;
    loop {
        match (w.next(), g.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => {
                let show =
                    |s: Option<&str>| s.map_or("<end of output>".into(), |s| shorten(s.trim()));
                return (line, show(a), show(b));
            }
        }
    }
}

/// At most 120 characters of a value for a one-line report.
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", s.get(..cut).unwrap_or(s)),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_become_cr() {
        assert_eq!(
            hl7_line_ends(b"MSH|a\r\nPID|b\nPV1|c\r"),
            b"MSH|a\rPID|b\rPV1|c\r"
        );
    }

    #[test]
    fn differences_name_the_line() {
        assert_eq!(
            first_difference("a\nb\nc", "a\nx\nc"),
            (2, "b".to_string(), "x".to_string())
        );
        assert_eq!(
            first_difference("a\nb", "a"),
            (2, "b".to_string(), "<end of output>".to_string())
        );
        assert_eq!(canonical("{\"a\":1}"), canonical("{\n  \"a\": 1\n}\n"));
        assert!(json_equal(&serde_json::json!(7), &serde_json::json!(7.0)));
        assert!(!json_equal(&serde_json::json!("7"), &serde_json::json!(7)));
    }
}
