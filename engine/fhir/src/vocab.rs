//! Vocabulary maps: HL7 v2 codes to FHIR codings, loaded from CSV (`scripts/fhir/maps/*.csv`).
//!
//! Each file `<name>.csv` is one map named `<name>` with the header `v2_code,v2_display,code,display,system`
//! (`v2_display` optional, `#` starts a comment line). Several rows may share a v2 code: they are several
//! codings, kept in file order. A row with a v2 code but no FHIR code (or the reverse) is an error naming
//! its line and column: a code without a FHIR code is left out, not written half. A channel overrides a
//! shipped map by shipping a file of the same name in its own folder ([`Vocab::overlay_dir`]): the whole
//! map is replaced, so a channel never gets a mix.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// A map could not be loaded; names the file and, for content errors, the line and column.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// The folder could not be listed.
    #[error("vocabulary maps: cannot list {path}: {source}")]
    ListDir {
        /// The folder.
        path: PathBuf,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("vocabulary map {path}: {source}")]
    Read {
        /// The CSV file.
        path: PathBuf,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// The file is not a map: not UTF-8, a header without a required column, a row without a code.
    #[error("vocabulary map {}:{line}:{column}: {reason}", path.display())]
    Content {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong and what is expected instead.
        reason: String,
    },
}

/// One FHIR concept a v2 code maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concept {
    /// FHIR code.
    pub code: String,
    /// FHIR display (may be empty).
    pub display: String,
    /// Code system URI (may be empty for plain `code` targets such as `Patient.gender`).
    pub system: String,
}

impl Concept {
    /// The concept as a FHIR `Coding`, leaving out empty parts.
    pub fn coding(&self) -> Value {
        let mut m = Map::new();
        if !self.system.is_empty() {
            m.insert("system".into(), json!(self.system));
        }
        m.insert("code".into(), json!(self.code));
        if !self.display.is_empty() {
            m.insert("display".into(), json!(self.display));
        }
        Value::Object(m)
    }
}

/// One map: v2 code to its concepts, with a case-insensitive fallback (senders mix `RxNorm` and `RXNORM`).
#[derive(Debug, Clone, Default)]
struct VocabMap {
    exact: HashMap<String, Vec<Concept>>,
    folded: HashMap<String, String>,
}

impl VocabMap {
    fn get(&self, code: &str) -> Option<&[Concept]> {
        let found = self.exact.get(code).or_else(|| {
            let key = self.folded.get(&code.to_ascii_uppercase())?;
            self.exact.get(key)
        });
        found.map(Vec::as_slice)
    }
}

/// All vocabulary maps of one channel, by name.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    maps: HashMap<String, VocabMap>,
}

impl Vocab {
    /// The maps shipped in `scripts/fhir/maps/`, embedded at build time.
    pub fn shipped() -> Result<Self, VocabError> {
        let mut vocab = Self::default();
        for (name, text) in SHIPPED_MAPS {
            let path = PathBuf::from(format!("scripts/fhir/maps/{name}.csv"));
            let map = read_map(text, &path)?;
            vocab.maps.insert((*name).to_owned(), map);
        }
        Ok(vocab)
    }

    /// Loads every `*.csv` file of `dir` as a map named by the file stem.
    pub fn load_dir(dir: &Path) -> Result<Self, VocabError> {
        let mut vocab = Self::default();
        vocab.overlay_dir(dir)?;
        Ok(vocab)
    }

    /// Loads the maps of `dir`, each replacing a map of the same name (a channel's own tables).
    pub fn overlay_dir(&mut self, dir: &Path) -> Result<(), VocabError> {
        let list_err = |source| VocabError::ListDir {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(list_err)? {
            let path = entry.map_err(list_err)?.path();
            if path.extension().is_some_and(|e| e == "csv") {
                files.push(path);
            }
        }
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let map = load_map(&path)?;
            self.maps.insert(name.to_owned(), map);
        }
        Ok(())
    }

    /// Adds or replaces one map from rows of `(v2 code, code, display, system)`.
    pub fn insert_map<'a>(
        &mut self,
        name: &str,
        rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str, &'a str)>,
    ) {
        let mut map = VocabMap::default();
        for (v2, code, display, system) in rows {
            add(
                &mut map,
                v2,
                Concept {
                    code: code.into(),
                    display: display.into(),
                    system: system.into(),
                },
            );
        }
        self.maps.insert(name.to_owned(), map);
    }

    /// Whether a map of this name is loaded (scripts reject a misspelt map name instead of mapping nothing).
    pub fn contains(&self, map: &str) -> bool {
        self.maps.contains_key(map)
    }

    /// The first concept `code` maps to in `map`, `None` when the map or the code is unknown.
    pub fn get(&self, map: &str, code: &str) -> Option<&Concept> {
        self.get_all(map, code).first()
    }

    /// Every concept `code` maps to in `map` (empty when unmapped).
    pub fn get_all(&self, map: &str, code: &str) -> &[Concept] {
        self.maps
            .get(map)
            .and_then(|m| m.get(code))
            .unwrap_or_default()
    }

    /// The mapped FHIR code alone (for `code`-typed elements such as `gender` or `status`).
    pub fn code(&self, map: &str, code: &str) -> Option<&str> {
        self.get(map, code).map(|c| c.code.as_str())
    }

    /// The names of the loaded maps, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.maps.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

fn add(map: &mut VocabMap, v2: &str, concept: Concept) {
    map.folded
        .entry(v2.to_ascii_uppercase())
        .or_insert_with(|| v2.to_owned());
    map.exact.entry(v2.to_owned()).or_default().push(concept);
}

include!(concat!(env!("OUT_DIR"), "/shipped_maps.rs"));

fn reader_builder() -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.flexible(true).comment(Some(b'#')).trim(csv::Trim::All);
    b
}

fn load_map(path: &Path) -> Result<VocabMap, VocabError> {
    let bytes = std::fs::read(path).map_err(|source| VocabError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        VocabError::Content {
            path: path.to_owned(),
            line: 1 + valid.matches('\n').count() as u64,
            column: valid.get(line_start..).unwrap_or_default().chars().count() + 1,
            reason: "not UTF-8 text (save the file as UTF-8)".into(),
        }
    })?;
    read_map(text, path)
}

/// Parses one map; refuses a row that names a v2 code without a FHIR code (or the reverse), since
/// a half-written row would otherwise silently leave that code unmapped.
fn read_map(text: &str, path: &Path) -> Result<VocabMap, VocabError> {
    // Spreadsheet exports often start with a byte order mark, which would glue onto `v2_code`.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let content = |line: u64, column: usize, reason: String| VocabError::Content {
        path: path.to_owned(),
        line,
        column,
        reason,
    };
    // Reading from memory only fails on what `from_utf8` already refused; report it all the same.
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(1, csv::Position::line);
        content(line, 1, e.to_string())
    };
    let mut reader = reader_builder().from_reader(text.as_bytes());
    let headers = reader.headers().map_err(csv_err)?.clone();
    let (header_line, _) = record_line(text, 0, 1);
    let column = |name: &'static str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            content(
                header_line,
                1,
                format!(
                    "the header must name the columns v2_code, code and system (missing '{name}')"
                ),
            )
        })
    };
    let (v2, code, system) = (column("v2_code")?, column("code")?, column("system")?);
    let display = headers.iter().position(|h| h == "display");
    let mut map = VocabMap::default();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let field = |i: usize| record.get(i).unwrap_or("");
        if record.iter().all(str::is_empty) {
            continue;
        }
        let missing = if field(v2).is_empty() {
            Some((v2, String::from("this row has no v2_code")))
        } else if field(code).is_empty() {
            let reason = format!(
                "v2 code '{}' has no code (leave codes that have no FHIR code out of the map)",
                field(v2)
            );
            Some((code, reason))
        } else {
            None
        };
        if let Some((index, reason)) = missing {
            let (byte, line) = record.position().map_or((0, 1), |p| (p.byte(), p.line()));
            let (line, row) = record_line(text, byte, line);
            return Err(content(line, field_column(row, index), reason));
        }
        let concept = Concept {
            code: field(code).to_owned(),
            display: display.map(field).unwrap_or("").to_owned(),
            system: field(system).to_owned(),
        };
        add(&mut map, field(v2), concept);
    }
    Ok(map)
}

/// The 1-based character column where field `index` of `line` begins; just past the line's end
/// when the row has fewer fields.
fn field_column(line: &str, index: usize) -> usize {
    let (mut fields, mut start, mut quoted) = (0, 0, false);
    for (i, c) in line.chars().enumerate() {
        if fields == index {
            break;
        }
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                fields += 1;
                start = i + 1;
            }
            _ => {}
        }
    }
    if fields < index {
        return line.chars().count() + 1;
    }
    start + 1
}

/// The line a record really starts on and its text: csv positions a record where reading began,
/// before the comment and blank lines it skipped.
fn record_line(text: &str, byte: u64, line: u64) -> (u64, &str) {
    let rest = usize::try_from(byte)
        .ok()
        .and_then(|b| text.get(b..))
        .unwrap_or_default();
    let mut number = line;
    for l in rest.lines() {
        if !(l.trim().is_empty() || l.starts_with('#')) {
            return (number, l);
        }
        number += 1;
    }
    (number, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fhir/maps")
    }

    #[test]
    fn shipped_maps_load_and_map_ig_rows() {
        let v = Vocab::load_dir(&shipped()).unwrap();
        assert_eq!(v.code("administrative-sex", "F"), Some("female"));
        assert_eq!(v.code("administrative-sex", "A"), Some("other"));
        let class = v.get("patient-class-encounter-class", "I").unwrap();
        assert_eq!(
            (class.code.as_str(), class.system.as_str()),
            ("IMP", "http://terminology.hl7.org/CodeSystem/v3-ActCode")
        );
        assert_eq!(class.display, "inpatient encounter");
        assert_eq!(
            v.code("observation-result-status-codes-interpretation", "F"),
            Some("final")
        );
        assert_eq!(v.code("coding-system", "LN"), Some("http://loinc.org"));
        assert_eq!(
            v.code("coding-system", "rxnorm"),
            Some("http://www.nlm.nih.gov/research/umls/rxnorm")
        );
        assert_eq!(v.get("administrative-sex", "Z"), None);
        assert_eq!(v.get("no-such-map", "F"), None);
        assert!(v.names().contains(&"marital-status"));
    }

    #[test]
    fn embedded_maps_equal_the_files() {
        let embedded = Vocab::shipped().unwrap();
        let files = Vocab::load_dir(&shipped()).unwrap();
        assert_eq!(embedded.names(), files.names());
        assert_eq!(embedded.code("identifier-type", "MR"), Some("MR"));
    }

    #[test]
    fn channel_overlay_replaces_a_map_by_name_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("administrative-sex.csv"),
            "# site-specific\nv2_code,code,system\nX,other,http://hl7.org/fhir/administrative-gender\n",
        )
        .unwrap();
        let mut v = Vocab::load_dir(&shipped()).unwrap();
        v.overlay_dir(dir.path()).unwrap();
        assert_eq!(v.code("administrative-sex", "X"), Some("other"));
        assert_eq!(
            v.code("administrative-sex", "F"),
            None,
            "the whole map is replaced"
        );
        assert_eq!(v.code("marital-status", "M"), Some("M"));
    }

    #[test]
    fn several_rows_for_one_code_are_several_codings_in_order() {
        let mut v = Vocab::default();
        v.insert_map("m", [("A", "a1", "", "urn:x"), ("A", "a2", "Two", "urn:y")]);
        let all = v.get_all("m", "A");
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1].coding(),
            json!({"system": "urn:y", "code": "a2", "display": "Two"})
        );
        assert_eq!(all[0].coding(), json!({"system": "urn:x", "code": "a1"}));
    }

    /// The line, column and reason of a content error; panics on any other outcome.
    fn content_error(text: &[u8]) -> (u64, usize, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.csv"), text).unwrap();
        match Vocab::load_dir(dir.path()).unwrap_err() {
            VocabError::Content {
                path,
                line,
                column,
                reason,
            } => {
                assert_eq!(path, dir.path().join("m.csv"));
                (line, column, reason)
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bad_header_and_missing_dir_are_errors_naming_the_file() {
        let (line, column, reason) = content_error(b"# local codes\nkey,value\nA,b\n");
        assert_eq!((line, column), (2, 1));
        assert!(reason.contains("missing 'v2_code'"), "{reason}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.csv"), "v2_code,code\nA,b\n").unwrap();
        let err = Vocab::load_dir(dir.path()).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("bad.csv:1:1: ") && shown.contains("missing 'system'"),
            "{shown}"
        );
        let err = Vocab::load_dir(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, VocabError::ListDir { .. }), "{err}");
    }

    #[test]
    fn a_half_written_row_is_refused_at_its_line_and_column() {
        let text = b"v2_code,v2_display,code,display,system\n# local\nF,Female,female,,urn:x\nX,\"Un, known\",  ,,urn:x\n";
        let (line, column, reason) = content_error(text);
        assert_eq!((line, column), (4, 15), "{reason}");
        assert!(reason.contains("'X' has no code"), "{reason}");
        let (line, column, reason) = content_error(b"v2_code,code,system\nA,a,urn:x\n,b,urn:x\n");
        assert_eq!((line, column), (3, 1));
        assert!(reason.contains("no v2_code"), "{reason}");
        let (line, column, _) = content_error(b"v2_code,v2_display,code,system\nA\n");
        assert_eq!((line, column), (2, 2), "past the end of a short row");
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_at_the_bad_byte() {
        let (line, column, reason) =
            content_error(b"v2_code,code,display,system\nA,a,\xc3\xa9t\xe9,urn:x\n");
        assert_eq!((line, column), (2, 7));
        assert!(reason.contains("UTF-8"), "{reason}");
    }

    #[test]
    fn a_byte_order_mark_and_empty_rows_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let text = "\u{feff}v2_code,code,system\nA,a,urn:x\n,,\n\n  \nB,b,urn:x\n";
        std::fs::write(dir.path().join("m.csv"), text).unwrap();
        let v = Vocab::load_dir(dir.path()).unwrap();
        assert_eq!((v.code("m", "A"), v.code("m", "B")), (Some("a"), Some("b")));
    }
}
