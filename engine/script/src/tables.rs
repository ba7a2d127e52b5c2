//! Lookup tables: two-column CSV files a channel names, loaded once when the channel starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A table could not be loaded; names the table and the file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be opened or read.
    #[error("table '{table}': cannot read {path}: {source}")]
    Read {
        /// Table name as used in `lookup(...)`.
        table: String,
        /// The CSV file.
        path: PathBuf,
        /// Underlying CSV/IO error.
        source: csv::Error,
    },
    /// A row has fewer than two columns.
    #[error("table '{table}': {path}:{line}: a row needs a key and a value")]
    ShortRow {
        /// Table name.
        table: String,
        /// The CSV file.
        path: PathBuf,
        /// 1-based line of the row.
        line: u64,
    },
    /// A key appears twice, which would make the lookup depend on row order.
    #[error("table '{table}': {path}:{line}: duplicate key '{key}'")]
    DuplicateKey {
        /// Table name.
        table: String,
        /// The CSV file.
        path: PathBuf,
        /// 1-based line of the second occurrence.
        line: u64,
        /// The repeated key (a code, not patient data).
        key: String,
    },
}

/// All tables of one channel, by name.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    tables: HashMap<String, HashMap<String, String>>,
}

impl Tables {
    /// Loads every named CSV file; fails on the first unreadable or malformed table.
    pub fn load(files: &HashMap<String, PathBuf>) -> Result<Self, TableError> {
        let mut tables = HashMap::with_capacity(files.len());
        for (name, path) in files {
            tables.insert(name.clone(), load_one(name, path)?);
        }
        Ok(Self { tables })
    }

    /// Whether a table of this name exists (used to reject typos at compile time).
    pub fn contains(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// The value for `key`, `None` when the table or the key is missing.
    pub fn get(&self, table: &str, key: &str) -> Option<&str> {
        self.tables.get(table)?.get(key).map(String::as_str)
    }
}

fn load_one(table: &str, path: &Path) -> Result<HashMap<String, String>, TableError> {
    let read_err = |source| TableError::Read {
        table: table.to_owned(),
        path: path.to_owned(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(read_err)?;
    let mut map = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(read_err)?;
        let line = record.position().map_or(0, csv::Position::line);
        let (Some(key), Some(value)) = (record.get(0), record.get(1)) else {
            return Err(TableError::ShortRow {
                table: table.to_owned(),
                path: path.to_owned(),
                line,
            });
        };
        if i == 0 && key.eq_ignore_ascii_case("key") && value.eq_ignore_ascii_case("value") {
            continue;
        }
        if map.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(TableError::DuplicateKey {
                table: table.to_owned(),
                path: path.to_owned(),
                line,
                key: key.to_owned(),
            });
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_with_header_comments_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "sex.csv",
            "# HL7 table 0001 to FHIR\nkey,value\nM,male\n F , female \n\"U,X\",unknown\n",
        );
        let tables = Tables::load(&HashMap::from([("sex".to_owned(), path)])).unwrap();
        assert_eq!(tables.get("sex", "M"), Some("male"));
        assert_eq!(tables.get("sex", "F"), Some("female"));
        assert_eq!(tables.get("sex", "U,X"), Some("unknown"));
        assert_eq!(tables.get("sex", "key"), None);
        assert_eq!(tables.get("nope", "M"), None);
        assert!(tables.contains("sex"));
    }

    #[test]
    fn short_row_and_duplicate_key_are_errors_with_line() {
        let dir = tempfile::tempdir().unwrap();
        let short = write(&dir, "a.csv", "M,male\nF\n");
        let err = Tables::load(&HashMap::from([("a".to_owned(), short)])).unwrap_err();
        assert!(matches!(err, TableError::ShortRow { line: 2, .. }), "{err}");
        let dup = write(&dir, "b.csv", "M,male\nM,man\n");
        let err = Tables::load(&HashMap::from([("b".to_owned(), dup)])).unwrap_err();
        assert!(
            matches!(err, TableError::DuplicateKey { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_file_names_table() {
        let err = Tables::load(&HashMap::from([(
            "sex".to_owned(),
            PathBuf::from("/nonexistent/sex.csv"),
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("table 'sex'"), "{err}");
    }
}
