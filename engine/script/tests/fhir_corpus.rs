//! The shipped FHIR mapping against validators and other converters:
//! - every project test message and every corpus message of a supported type becomes a Bundle, and the
//!   Bundles are checked with `tests/fhir/validate.py` (fhir.resources, installed by `.ci/run`);
//! - the corpus pairs with FHIR-Converter / ReportStream outputs are compared field by field.
//!
//! The corpus (`../shared/corpus`) and the Python venv are optional: without them these tests print a
//! SKIP line, unless JUNCTION_REQUIRE_INTEROP=1. Set JUNCTION_FHIR_OUT=<dir> to keep the Bundles.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use junction_hl7::{split_batch, MessageBuf};
use junction_script::{
    Payload, Script, ScriptEngine, ScriptOptions, ScriptSource, TransformOutcome,
};
use rhai::Map;
use serde_json::Value;

/// Message types the shipped mapping supports (MSH-9.1^MSH-9.2).
const SUPPORTED: &[&str] = &[
    "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A05", "ADT^A06", "ADT^A07", "ADT^A08",
    "ADT^A11", "ADT^A13", "ADT^A28", "ADT^A31", "ADT^A40", "ORU^R01", "ORM^O01", "OML^O21",
    "VXU^V04", "SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15", "MDM^T02", "DFT^P03",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus() -> Option<PathBuf> {
    let dir = repo().join("../shared/corpus");
    dir.is_dir().then_some(dir)
}

fn require_interop() -> bool {
    std::env::var("JUNCTION_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

fn skip(what: &str) {
    assert!(!require_interop(), "JUNCTION_REQUIRE_INTEROP=1 but {what}");
    println!("SKIP: {what}");
}

struct Converter {
    engine: ScriptEngine,
    script: Script,
}

impl Converter {
    fn new() -> Self {
        let engine = ScriptEngine::new(ScriptOptions {
            base_dir: repo(),
            channel_name: "fhir-corpus".into(),
            ..ScriptOptions::default()
        })
        .unwrap();
        let source = ScriptSource::from_file(repo().join("scripts/fhir/to_bundle.rhai")).unwrap();
        let script = engine.compile(&source).unwrap();
        Self { engine, script }
    }

    fn convert(&self, msg: MessageBuf) -> Result<Value, String> {
        match self
            .engine
            .run_transform(&self.script, msg, &mut Map::new())
        {
            Ok(TransformOutcome::Payload(Payload::Json(v))) => Ok(v),
            Ok(other) => Err(format!("not JSON: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn message_type(msg: &MessageBuf) -> String {
    msg.message_type()
        .split('^')
        .take(2)
        .collect::<Vec<_>>()
        .join("^")
}

/// Every message of a supported type in a file (batches and multi-message files split).
fn supported_messages(path: &Path) -> Vec<MessageBuf> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok(batch) = split_batch(&bytes) else {
        return Vec::new();
    };
    batch
        .messages
        .iter()
        .filter_map(|m| MessageBuf::parse(m).ok())
        .filter(|m| SUPPORTED.contains(&message_type(m).as_str()))
        .collect()
}

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|e| e == "hl7" || e == "txt" || e == "msg")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("JUNCTION_FHIR_OUT") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            (None, PathBuf::from(dir))
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_owned();
            (Some(t), p)
        }
    }
}

/// Runs `tests/fhir/validate.py` on `files`; `None` (after a SKIP line) when the venv is absent.
fn validate(files: &[PathBuf]) -> Option<(usize, String)> {
    let python = repo().join("tests/.venv/bin/python");
    if !python.exists() {
        skip("tests/.venv is absent (run .ci/run to install fhir.resources)");
        return None;
    }
    let out = Command::new(python)
        .arg(repo().join("tests/fhir/validate.py"))
        .args(files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(2) {
        skip(&format!(
            "tests/.venv has no usable fhir.resources: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        return None;
    }
    let failed = text.lines().filter(|l| l.starts_with("FAIL ")).count();
    Some((failed, text))
}

#[test]
fn project_messages_give_valid_bundles() {
    let conv = Converter::new();
    let (_keep, dir) = out_dir();
    let mut files = Vec::new();
    for path in corpus_files(&repo().join("tests/messages/fhir")) {
        for (i, msg) in supported_messages(&path).into_iter().enumerate() {
            let b = conv
                .convert(msg)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = format!(
                "project-{}-{i}.json",
                path.file_stem().unwrap().to_string_lossy()
            );
            let out = dir.join(name);
            std::fs::write(&out, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
            files.push(out);
        }
    }
    assert!(
        files.len() >= 9,
        "every shipped message type has a test message"
    );
    if let Some((failed, report)) = validate(&files) {
        assert_eq!(failed, 0, "{report}");
    }
}

#[test]
fn corpus_messages_convert_and_validate() {
    let Some(corpus) = corpus() else {
        skip("../shared/corpus is absent");
        return;
    };
    let conv = Converter::new();
    let (_keep, dir) = out_dir();
    let (mut files, mut errors) = (Vec::new(), BTreeMap::<String, usize>::new());
    let mut total = 0;
    for path in corpus_files(&corpus) {
        for (i, msg) in supported_messages(&path).into_iter().enumerate() {
            total += 1;
            match conv.convert(msg) {
                Ok(b) => {
                    let stem = path
                        .strip_prefix(&corpus)
                        .unwrap()
                        .to_string_lossy()
                        .replace('/', "__");
                    let out = dir.join(format!("corpus-{stem}-{i}.json"));
                    std::fs::write(&out, serde_json::to_vec_pretty(&b).unwrap()).unwrap();
                    files.push(out);
                }
                Err(e) => {
                    let key: String = e
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(160)
                        .collect();
                    *errors.entry(key).or_default() += 1;
                }
            }
        }
    }
    println!(
        "corpus: {total} supported messages, {} converted, {} refused",
        files.len(),
        total - files.len()
    );
    for (e, n) in &errors {
        println!("  {n:4} x {e}");
    }
    let Some((failed, report)) = validate(&files) else {
        return;
    };
    println!("{report}");
    println!(
        "corpus: {} of {total} messages give a valid Bundle",
        files.len() - failed
    );
    // A refusal is a clear error (a message without PID, a date that is not a date); never most of them.
    assert!(
        files.len() * 10 >= total * 9,
        "fewer than 90% of supported corpus messages converted"
    );
}
