//! The shipped FHIR mapping against validators and other converters:
//! - every project test message and every corpus message of a supported type becomes a Bundle, and the
//!   Bundles are checked with `tests/fhir/validate.py` (fhir.resources, installed by `.ci/run`);
//! - the corpus pairs with FHIR-Converter / ReportStream outputs are compared field by field.
//!
//! The corpus (`../shared/corpus`) and the Python venv are optional: without them these tests print a
//! SKIP line, unless JUNCTION_REQUIRE_INTEROP names python (as .ci/run sets it). Set JUNCTION_FHIR_OUT=<dir> to keep the Bundles.
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

/// The validator is Python's `fhir.resources`: required when JUNCTION_REQUIRE_INTEROP names `python` (or is 1).
fn require_interop() -> bool {
    std::env::var("JUNCTION_REQUIRE_INTEROP").is_ok_and(|v| {
        v.split(',')
            .any(|f| f.trim() == "1" || f.trim() == "python")
    })
}

fn skip(what: &str) {
    assert!(
        !require_interop(),
        "JUNCTION_REQUIRE_INTEROP requires python tools but {what}"
    );
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
    let (mut files, mut untested) = (Vec::new(), SUPPORTED.to_vec());
    for path in corpus_files(&repo().join("tests/messages/fhir")) {
        for (i, msg) in supported_messages(&path).into_iter().enumerate() {
            untested.retain(|t| *t != message_type(&msg));
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
        untested.is_empty(),
        "supported message types without a project test message: {untested:?}"
    );
    if let Some((failed, report)) = validate(&files) {
        assert_eq!(failed, 0, "{report}");
    }
}

#[test]
fn corpus_messages_convert_and_validate() {
    let Some(corpus) = corpus() else {
        // The corpus is shared material beside the project, not something .ci/run installs.
        println!("SKIP: ../shared/corpus is absent");
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
                    // The reason a mapping script gives starts at "fhir: "; anything else is a script bug.
                    let first = e.lines().next().unwrap_or_default();
                    let key = match first.find("fhir: ") {
                        Some(at) => first[at..].to_owned(),
                        None => format!("UNEXPECTED {first}"),
                    };
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
    // A refusal is a clear, deliberate one (an ADT or order without PID, a fragment with nothing to map),
    // never a script failure; most of the corpus's refusals are mapping-inventory fragments holding only MSH.
    let unexpected: Vec<_> = errors.keys().filter(|e| !e.starts_with("fhir: ")).collect();
    assert!(
        unexpected.is_empty(),
        "refusals that are not mapping errors: {unexpected:?}"
    );
    assert!(
        files.len() * 100 >= total * 85,
        "fewer than 85% of supported corpus messages converted"
    );
    let Some((failed, report)) = validate(&files) else {
        return;
    };
    println!(
        "corpus: {} of {total} messages give a valid Bundle",
        files.len() - failed
    );
    assert_eq!(failed, 0, "invalid corpus Bundles:\n{report}");
}

/// Agreement of one field: how many pairs had it in the other converter's output, and how many agreed.
#[derive(Default, Debug)]
struct Tally {
    compared: usize,
    agreed: usize,
}

impl Tally {
    fn add(&mut self, agreed: bool) {
        self.compared += 1;
        self.agreed += usize::from(agreed);
    }

    fn rate(&self) -> f64 {
        if self.compared == 0 {
            return 1.0;
        }
        self.agreed as f64 / self.compared as f64
    }
}

fn resources<'a>(b: &'a Value, rtype: &str) -> Vec<&'a Value> {
    b["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| &e["resource"])
                .filter(|r| r["resourceType"] == rtype)
                .collect()
        })
        .unwrap_or_default()
}

fn lower(v: &Value) -> Option<String> {
    v.as_str().map(|s| s.trim().to_lowercase())
}

/// Two date-times agree when they name the same instant at the precision both have (converters differ
/// in the zone they write: `11:34+01:10` and `15:54+05:30` are the same moment).
fn same_time(a: &Value, b: &Value) -> bool {
    match (
        a.as_str().and_then(minutes_utc),
        b.as_str().and_then(minutes_utc),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_str(), b.as_str()) {
            (Some(a), Some(b)) => {
                let n = a.len().min(b.len()).min(10);
                a.get(..n) == b.get(..n)
            }
            _ => false,
        },
    }
}

/// Minutes since 1970 (UTC) of a FHIR dateTime with a time and a zone.
fn minutes_utc(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
    );
    let zone = s
        .get(19..)?
        .trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "Z" => 0,
        z if z.len() == 6 => {
            let m = z.get(1..3)?.parse::<i64>().ok()? * 60 + z.get(4..6)?.parse::<i64>().ok()?;
            if z.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 1440 + h * 60 + mi - offset)
}

fn obs_code(o: &Value) -> Option<String> {
    o["code"]["coding"][0]["code"].as_str().map(str::to_owned)
}

fn obs_value(o: &Value) -> Option<String> {
    if let Some(v) = o["valueQuantity"]["value"].as_f64() {
        return Some(format!("{v}"));
    }
    if let Some(s) = o["valueString"].as_str() {
        return Some(s.trim().to_owned());
    }
    o["valueCodeableConcept"]["coding"][0]["code"]
        .as_str()
        .map(str::to_owned)
}

fn obs_unit(o: &Value) -> Option<(String, String)> {
    let q = &o["valueQuantity"];
    let unit = q["unit"].as_str().unwrap_or_default().to_owned();
    let code = q["code"].as_str().unwrap_or_default().to_owned();
    (!unit.is_empty() || !code.is_empty()).then_some((unit, code))
}

fn compare(ours: &Value, theirs: &Value, t: &mut BTreeMap<&'static str, Tally>) {
    if let (Some(p), Some(q)) = (
        resources(ours, "Patient").first(),
        resources(theirs, "Patient").first(),
    ) {
        if q["name"][0]["family"].is_string() {
            t.entry("Patient.name.family")
                .or_default()
                .add(lower(&p["name"][0]["family"]) == lower(&q["name"][0]["family"]));
        }
        if q["name"][0]["given"][0].is_string() {
            t.entry("Patient.name.given")
                .or_default()
                .add(lower(&p["name"][0]["given"][0]) == lower(&q["name"][0]["given"][0]));
        }
        if q["birthDate"].is_string() {
            t.entry("Patient.birthDate")
                .or_default()
                .add(p["birthDate"] == q["birthDate"]);
        }
        if q["gender"].is_string() {
            t.entry("Patient.gender")
                .or_default()
                .add(p["gender"] == q["gender"]);
        }
        let values = |r: &Value| -> Vec<String> {
            r["identifier"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["value"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (mine, other) = (values(p), values(q));
        if !other.is_empty() {
            t.entry("Patient.identifier.value")
                .or_default()
                .add(other.iter().all(|v| mine.contains(v)));
        }
    }
    if let (Some(e), Some(f)) = (
        resources(ours, "Encounter").first(),
        resources(theirs, "Encounter").first(),
    ) {
        if f["class"]["code"].is_string() {
            t.entry("Encounter.class")
                .or_default()
                .add(e["class"]["code"] == f["class"]["code"]);
        }
        for end in ["start", "end"] {
            if f["period"][end].is_string() {
                let key = if end == "start" {
                    "Encounter.period.start"
                } else {
                    "Encounter.period.end"
                };
                t.entry(key)
                    .or_default()
                    .add(same_time(&e["period"][end], &f["period"][end]));
            }
        }
    }
    // Several OBX may share a code (one per organism, one per comment line): a value agrees when any of
    // ours with that code carries it.
    let mine = resources(ours, "Observation");
    for o in resources(theirs, "Observation") {
        let Some(code) = obs_code(o) else { continue };
        let same_code: Vec<&&Value> = mine
            .iter()
            .filter(|m| obs_code(m).as_deref() == Some(code.as_str()))
            .collect();
        t.entry("Observation.code")
            .or_default()
            .add(!same_code.is_empty());
        if same_code.is_empty() {
            continue;
        }
        if let Some(v) = obs_value(o) {
            t.entry("Observation.value").or_default().add(
                same_code
                    .iter()
                    .any(|m| obs_value(m).as_deref() == Some(v.as_str())),
            );
        }
        if let Some((unit, ucum)) = obs_unit(o) {
            let agreed = same_code.iter().any(|m| {
                obs_unit(m).is_some_and(|(u, c)| {
                    (!unit.is_empty() && u == unit) || (!ucum.is_empty() && c == ucum)
                })
            });
            t.entry("Observation.valueQuantity.unit")
                .or_default()
                .add(agreed);
        }
    }
}

#[test]
fn agreement_with_fhir_converter_and_reportstream() {
    let Some(corpus) = corpus() else {
        // The corpus is shared material beside the project, not something .ci/run installs.
        println!("SKIP: ../shared/corpus is absent");
        return;
    };
    let conv = Converter::new();
    let pairs = std::fs::read_to_string(corpus.join("EXPECTED_PAIRS.tsv")).unwrap();
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut used = 0;
    for line in pairs.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(input), Some(expected)) = (cols.first(), cols.get(1)) else {
            continue;
        };
        let Some(msg) = supported_messages(&corpus.join(input)).into_iter().next() else {
            continue;
        };
        let Ok(theirs) = std::fs::read_to_string(corpus.join(expected)) else {
            continue;
        };
        let Ok(theirs) = serde_json::from_str::<Value>(&theirs) else {
            continue;
        };
        if theirs["resourceType"] != "Bundle" {
            continue;
        }
        let Ok(ours) = conv.convert(msg) else {
            continue;
        };
        used += 1;
        compare(&ours, &theirs, &mut tallies);
    }
    println!("agreement over {used} converted pairs:");
    for (field, t) in &tallies {
        println!(
            "  {field:32} {:5.1}% ({}/{})",
            t.rate() * 100.0,
            t.agreed,
            t.compared
        );
    }
    assert!(used >= 100, "too few pairs compared: {used}");
    // Floors a little under what this mapping measures; a drop means a regression in a key field.
    for (field, floor) in [
        ("Patient.name.family", 0.95),
        ("Patient.name.given", 0.95),
        ("Patient.birthDate", 0.95),
        ("Patient.gender", 0.95),
        ("Patient.identifier.value", 0.85),
        ("Encounter.class", 0.95),
        ("Encounter.period.start", 0.9),
        // README: 85.7% of end times agree (same instant).
        ("Encounter.period.end", 0.8),
        ("Observation.code", 0.8),
        ("Observation.value", 0.95),
        ("Observation.valueQuantity.unit", 0.9),
    ] {
        let rate = tallies.get(field).map_or(1.0, Tally::rate);
        assert!(rate >= floor, "{field}: agreement {rate:.3} below {floor}");
    }
}
