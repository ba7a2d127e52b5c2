//! Channel test files (`channels/tests/*.yaml`, run by `junction test`): messages to put through a
//! channel and what each destination must receive. Checked like channel files: unknown keys, bad
//! HL7 paths or JSON pointers and missing files are reported with file, line and column.
//!
//! ```yaml
//! channel: hl7-to-fhir              # default for every case (a case may name its own)
//! cases:
//!   - name: admission makes a Patient
//!     input_file: messages/adt_a01.hl7   # or `input: |` with the message inline
//!     expect:
//!       fhir-files:
//!         json: { /entry/0/resource/name/0/family: Rivera }
//!         contains: Patient
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, SeqAccess, Visitor};
use serde::Deserialize;

use crate::convert::schema_error;
use crate::error::{ConfigError, Diagnostics, Location, Problem};
use crate::load::yaml_files;
use crate::locate::{locate, Target, YamlPath};
use crate::raw::{Text, UniqueMap};
use crate::units::check_hl7_path;

/// One test file and its cases, in file order.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// The file as given to the loader.
    pub file: PathBuf,
    /// The cases.
    pub cases: Vec<TestCase>,
}

/// One message put through one channel, and what must come out.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// Name, unique within the file.
    pub name: String,
    /// Where the case starts, to report a problem found when it runs (e.g. an unknown channel).
    pub location: Location,
    /// The channel to run, by name.
    pub channel: String,
    /// Where `channel` is written (the case's own key, or the file's default).
    pub channel_location: Location,
    /// The raw message, as written (inline) or as read (`input_file`).
    pub input: Vec<u8>,
    /// The message must error, with an error text containing this.
    pub errored: Option<String>,
    /// Whether the channel's own filter (or transform) must drop the message as a whole.
    pub filtered: Option<bool>,
    /// What each named destination must (or must not) receive, in file order.
    pub expect: Vec<Expectation>,
}

/// What one destination must receive.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The destination's name.
    pub destination: String,
    /// Where its expectations are written.
    pub location: Location,
    /// `true`: the destination gets nothing; `false`: it gets an output.
    pub filtered: Option<bool>,
    /// HL7 path -> value the output message must have there (`""` = empty or absent).
    pub hl7: Vec<(String, String)>,
    /// JSON pointer -> value the output document must have there (`null` = absent).
    pub json: Vec<(String, serde_json::Value)>,
    /// Text the output must contain, each of them.
    pub contains: Vec<String>,
    /// The whole output must equal this file's content.
    pub equals_file: Option<ExpectedFile>,
}

impl Expectation {
    /// True when this checks the output's content (so the destination must produce one).
    pub fn checks_content(&self) -> bool {
        !(self.hl7.is_empty()
            && self.json.is_empty()
            && self.contains.is_empty()
            && self.equals_file.is_none())
    }
}

/// A file holding a whole expected output.
#[derive(Debug, Clone)]
pub struct ExpectedFile {
    /// The file, resolved against the test file's folder.
    pub path: PathBuf,
    /// Its content.
    pub text: String,
}

/// Load every `*.yaml` / `*.yml` test file directly in `dir`, in name order, reporting the
/// problems of all files at once. An empty folder gives no files (the caller decides).
pub fn load_test_dir(dir: &Path) -> Result<Vec<TestFile>, Diagnostics> {
    let (files, mut diags) = yaml_files(dir, "tests folder");
    let mut out = Vec::with_capacity(files.len());
    for file in &files {
        match load_test_file(file) {
            Ok(t) => out.push(t),
            Err(d) => diags.extend(d),
        }
    }
    diags.into_result(out)
}

/// Load one test file; `input_file` and `equals_file` resolve against its folder.
pub fn load_test_file(path: &Path) -> Result<TestFile, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        let mut diags = Diagnostics::default();
        diags.push(ConfigError {
            file: path.to_path_buf(),
            position: None,
            problem: Problem::Io {
                what: "test file".into(),
                source,
            },
        });
        diags
    })?;
    parse_test_file(&text, path)
}

/// Parse and check one test file's text; `file` names it and its folder anchors relative paths.
pub fn parse_test_file(text: &str, file: &Path) -> Result<TestFile, Diagnostics> {
    let mut diags = Diagnostics::default();
    let raw = match serde_yaml::from_str::<RawTestFile>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let empty = "the file is empty; a test file needs 'cases'";
            diags.push(schema_error(file, text, &e, empty));
            return Err(diags);
        }
    };
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut ctx = Ctx {
        file,
        text,
        dir,
        diags,
    };
    let cases = ctx.cases(&raw);
    ctx.diags.into_result(TestFile {
        file: file.to_path_buf(),
        cases,
    })
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    dir: &'a Path,
    diags: Diagnostics,
}

impl Ctx<'_> {
    fn position(&self, at: &YamlPath, target: Target) -> Option<(usize, usize)> {
        locate(self.text, at, target)
    }

    fn location(&self, at: &YamlPath) -> Location {
        let (line, column) = self.position(at, Target::Value).unwrap_or((1, 1));
        Location {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    fn report(&mut self, at: &YamlPath, target: Target, problem: Problem) {
        self.diags.push(ConfigError {
            file: self.file.to_path_buf(),
            position: self.position(at, target),
            problem,
        });
    }

    fn rule(&mut self, at: &YamlPath, message: String) {
        self.report(at, Target::Value, Problem::Rule(format!("{at}: {message}")));
    }

    /// Read a file named relative to the test file's folder, reporting it when missing.
    fn read(&mut self, at: &YamlPath, role: &'static str, rel: &str) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.dir.join(rel.trim());
        match std::fs::read(&path) {
            Ok(bytes) => Some((path, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let field = at.to_string();
                self.report(
                    at,
                    Target::Value,
                    Problem::MissingFile { field, role, path },
                );
                None
            }
            Err(source) => {
                let what = format!("{role} {}", path.display());
                self.report(at, Target::Value, Problem::Io { what, source });
                None
            }
        }
    }

    fn cases(&mut self, raw: &RawTestFile) -> Vec<TestCase> {
        let root = YamlPath::default();
        if raw.cases.is_empty() {
            self.rule(
                &root.key("cases"),
                "a test file needs at least one case".into(),
            );
        }
        let mut out = Vec::with_capacity(raw.cases.len());
        for (i, case) in raw.cases.iter().enumerate() {
            let at = root.key("cases").index(i);
            if let Some(first) = raw.cases.iter().take(i).position(|c| c.name == case.name) {
                let problem = Problem::Duplicate {
                    what: "case name",
                    name: case.name.clone(),
                    first: self.location(&root.key("cases").index(first).key("name")),
                };
                self.report(&at.key("name"), Target::Value, problem);
            }
            if let Some(c) = self.case(&at, case, raw) {
                out.push(c);
            }
        }
        out
    }

    fn case(&mut self, at: &YamlPath, raw: &RawCase, file: &RawTestFile) -> Option<TestCase> {
        let (channel, channel_at) = match (&raw.channel, &file.channel) {
            (Some(c), _) => (c.clone(), at.key("channel")),
            (None, Some(c)) => (c.clone(), YamlPath::default().key("channel")),
            (None, None) => {
                let message = "names no channel; give 'channel' here or at the top of the file";
                self.rule(at, message.into());
                return None;
            }
        };
        let input = match (&raw.input, &raw.input_file) {
            (Some(text), None) => Some(text.clone().into_bytes()),
            (None, Some(rel)) => self
                .read(&at.key("input_file"), "input", rel)
                .map(|(_, b)| b),
            (Some(_), Some(_)) => {
                self.rule(at, "give 'input' or 'input_file', not both".into());
                None
            }
            (None, None) => {
                self.rule(
                    at,
                    "needs a message: 'input' (inline) or 'input_file'".into(),
                );
                None
            }
        };
        if raw.errored.is_some() && !raw.expect.0.is_empty() {
            let message = "an errored message reaches no destination; 'errored' and 'expect' exclude each other";
            self.rule(&at.key("expect"), message.into());
        }
        let mut expect = Vec::with_capacity(raw.expect.0.len());
        for (destination, e) in &raw.expect.0 {
            let eat = at.key("expect").key(destination);
            expect.push(self.expectation(&eat, destination, e));
        }
        // UniqueMap orders by name; report and check in the order the analyst wrote them.
        expect.sort_by_key(|e| (e.location.line, e.location.column));
        Some(TestCase {
            name: raw.name.clone(),
            location: self.location(at),
            channel,
            channel_location: self.location(&channel_at),
            input: input?,
            errored: raw.errored.clone(),
            filtered: raw.filtered,
            expect,
        })
    }

    fn expectation(&mut self, at: &YamlPath, destination: &str, raw: &RawExpect) -> Expectation {
        let mut hl7 = Vec::with_capacity(raw.hl7.0.len());
        for (path, Text(value)) in &raw.hl7.0 {
            if let Err(reason) = check_hl7_path(path) {
                let problem = Problem::Invalid {
                    field: at.key("hl7").to_string(),
                    kind: "HL7 path",
                    value: path.clone(),
                    reason,
                };
                self.report(&at.key("hl7").key(path), Target::Key, problem);
            }
            hl7.push((path.clone(), value.clone()));
        }
        let mut json = Vec::with_capacity(raw.json.0.len());
        for (pointer, value) in &raw.json.0 {
            let pat = at.key("json").key(pointer);
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                let problem = Problem::Invalid {
                    field: at.key("json").to_string(),
                    kind: "JSON pointer",
                    value: pointer.clone(),
                    reason: "starts with '/', e.g. /entry/0/resource/resourceType".into(),
                };
                self.report(&pat, Target::Key, problem);
            }
            match serde_json::to_value(value) {
                Ok(v) => json.push((pointer.clone(), v)),
                Err(e) => self.rule(&pat, format!("not a JSON value: {e}")),
            }
        }
        let filtered = raw.filtered;
        let contains = raw.contains.clone().map(|c| c.0).unwrap_or_default();
        let equals_file = raw.equals_file.as_ref().and_then(|rel| {
            let fat = at.key("equals_file");
            let (path, bytes) = self.read(&fat, "expected output", rel)?;
            match String::from_utf8(bytes) {
                Ok(text) => Some(ExpectedFile { path, text }),
                Err(_) => {
                    self.rule(&fat, "the expected output is not UTF-8 text".into());
                    None
                }
            }
        });
        let e = Expectation {
            destination: destination.to_string(),
            location: self.location(at),
            filtered,
            hl7,
            json,
            contains,
            equals_file,
        };
        if filtered == Some(true) && e.checks_content() {
            let message = "'filtered: true' means no output, so there is no content to check";
            self.rule(at, message.into());
        }
        e
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    channel: Option<String>,
    cases: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    channel: Option<String>,
    input: Option<String>,
    input_file: Option<String>,
    errored: Option<String>,
    filtered: Option<bool>,
    #[serde(default)]
    expect: UniqueMap<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    filtered: Option<bool>,
    #[serde(default)]
    hl7: UniqueMap<Text>,
    #[serde(default)]
    json: UniqueMap<serde_yaml::Value>,
    contains: Option<OneOrMany>,
    equals_file: Option<String>,
}

/// `contains: text` or `contains: [text, ...]`.
#[derive(Debug, Clone)]
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text or a list of texts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const GOOD: &str = "\
channel: fhir
cases:
  - name: admission
    input_file: adt.hl7
    expect:
      server: { filtered: true }
      files:
        hl7: { PID-5.1: Rivera, PID-8: F }
        json: { /resourceType: Bundle, /total: 3 }
        contains: Patient
        equals_file: bundle.json
  - name: no sex
    channel: other
    input: |
      MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5.1
    errored: PID-8
";

    #[test]
    fn a_full_file_loads_in_the_order_written() {
        let dir = dir_with(&[("adt.hl7", "MSH|x\r"), ("bundle.json", "{}")]);
        let path = dir.path().join("t.yaml");
        let t = parse_test_file(GOOD, &path).unwrap_or_else(|d| panic!("{d}"));
        let [a, b] = t.cases.as_slice() else {
            panic!("{t:?}")
        };
        assert_eq!((a.channel.as_str(), a.channel_location.line), ("fhir", 1));
        assert_eq!(a.input, b"MSH|x\r");
        let names: Vec<&str> = a.expect.iter().map(|e| e.destination.as_str()).collect();
        assert_eq!(names, ["server", "files"]);
        let files = &a.expect[1];
        assert_eq!(files.hl7[0], ("PID-5.1".to_string(), "Rivera".to_string()));
        assert_eq!(files.json[1], ("/total".to_string(), serde_json::json!(3)));
        assert_eq!(files.contains, ["Patient"]);
        assert_eq!(files.equals_file.as_ref().unwrap().text, "{}");
        assert_eq!((b.channel.as_str(), b.location.line), ("other", 12));
        assert!(b.input.starts_with(b"MSH|^~\\&|A"));
        assert_eq!(b.errored.as_deref(), Some("PID-8"));
    }

    fn errors(text: &str) -> Vec<String> {
        let dir = dir_with(&[]);
        let path = dir.path().join("t.yaml");
        let prefix = format!("{}:", path.display());
        match parse_test_file(text, &path) {
            Ok(t) => panic!("expected errors, got {t:?}"),
            Err(d) => d
                .iter()
                .map(|e| e.to_string().replacen(&prefix, "t.yaml:", 1))
                .collect(),
        }
    }

    #[test]
    fn unknown_keys_are_placed() {
        let errs = errors("cases:\n  - name: a\n    input: x\n    expcet: {}\n");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("t.yaml:4:5: cases[0]: unknown field 'expcet', expected one of"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_place() {
        let text = "\
cases:
  - name: a
    input: x
  - name: b
    channel: c
    input_file: missing.hl7
    expect:
      d:
        filtered: true
        hl7: { PID-X: y }
        json: { resourceType: Bundle }
  - name: b
    channel: c
    input: x
    input_file: y
";
        let errs = errors(text);
        let head: Vec<&str> = errs
            .iter()
            .map(|e| e.split_once(": ").map_or(e.as_str(), |(h, _)| h))
            .collect();
        assert_eq!(
            head,
            [
                "t.yaml:2:5",   // no channel
                "t.yaml:6:17",  // input file missing
                "t.yaml:10:16", // HL7 path
                "t.yaml:11:17", // JSON pointer
                "t.yaml:9:9",   // filtered with content checks
                "t.yaml:12:11", // duplicate case name
                "t.yaml:12:5",  // input and input_file
            ],
            "{errs:#?}"
        );
        assert!(errs[0].contains("names no channel"), "{}", errs[0]);
        assert!(errs[1].contains("input file not found"), "{}", errs[1]);
        assert!(errs[3].contains("invalid JSON pointer 'resourceType'"));
    }

    #[test]
    fn a_folder_loads_every_file_and_reports_all_problems() {
        let dir = dir_with(&[
            (
                "a.yaml",
                "channel: x\ncases:\n  - { name: one, input: 'MSH|' }\n",
            ),
            ("b.yaml", "cases: []\n"),
            ("c.yml", ""),
            ("notes.txt", "not a test"),
        ]);
        let d = load_test_dir(dir.path()).unwrap_err();
        let text = d.to_string();
        assert_eq!(d.len(), 2, "{text}");
        assert!(text.contains("b.yaml:1:8: cases: a test file needs at least one case"));
        assert!(text.contains("c.yml: the file is empty"));
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        std::fs::remove_file(dir.path().join("c.yml")).unwrap();
        let files = load_test_dir(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].cases[0].name, "one");
    }
}
