//! Diagnostics: every problem names the file, line and column and says what was expected.

use std::fmt;
use std::path::PathBuf;

/// A place in a channel file (line and column are 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The channel file as it was given to the loader.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// What is wrong, without the place.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file or the channels folder could not be read.
    #[error("cannot read {what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Not valid YAML, or not the shape a channel has (unknown key, wrong type, missing field).
    #[error("{0}")]
    Schema(String),
    /// A source or destination names no kind, or more than one.
    #[error("{what} {found}; give exactly one of: {expected}")]
    Kind {
        /// `source` or `destination 'name'`.
        what: String,
        /// "has no kind" or "has both 'mllp' and 'file'".
        found: String,
        /// The kinds allowed here.
        expected: String,
    },
    /// A value that parsed as YAML but is not acceptable (duration, size, address, regex, HL7 path...).
    #[error("{field}: invalid {kind} '{value}': {reason}")]
    Invalid {
        /// The key that holds the value, e.g. `retry.initial`.
        field: String,
        /// What kind of value was expected, e.g. `duration`.
        kind: &'static str,
        /// The value as written.
        value: String,
        /// Why it is refused and what would be accepted.
        reason: String,
    },
    /// A script, table or certificate file that the channel names does not exist.
    #[error("{field}: {role} file not found: {path}")]
    MissingFile {
        /// The key that names the file.
        field: String,
        /// `script`, `table`, `certificate`...
        role: &'static str,
        /// The path after resolution against the folder that holds `channels/`.
        path: PathBuf,
    },
    /// A folder that the channel names does not exist.
    #[error("{field}: {role} folder not found: {path}")]
    MissingFolder {
        /// The key that names the folder.
        field: String,
        /// `FHIR maps`...
        role: &'static str,
        /// The path after resolution against the folder that holds `channels/`.
        path: PathBuf,
    },
    /// A FHIR vocabulary map in the channel's `fhir_maps` folder cannot be loaded; the source names
    /// the CSV file and, for its content, the line and column.
    #[error("{field}: {source}")]
    VocabMap {
        /// The key that names the folder.
        field: String,
        /// What is wrong with which file.
        source: junction_fhir::VocabError,
    },
    /// A name used twice where it must be unique.
    #[error("duplicate {what} '{name}' (first used at {first})")]
    Duplicate {
        /// `channel name`, `destination name`...
        what: &'static str,
        /// The repeated name.
        name: String,
        /// Where it was used first.
        first: Location,
    },
    /// Two channels listen on the same address.
    #[error("address {addr} is already used by channel '{other}' at {first}")]
    AddressInUse {
        /// The address as written here.
        addr: String,
        /// The channel that listens there too.
        other: String,
        /// Where that channel says so.
        first: Location,
    },
    /// A reference to a channel that no file defines.
    #[error("{field}: no channel is named '{name}' (known: {known})")]
    UnknownChannel {
        /// `channel` (destination) or `depends_on`.
        field: String,
        /// The name referred to.
        name: String,
        /// The names that do exist.
        known: String,
    },
    /// A rule about the channel as a whole.
    #[error("{0}")]
    Rule(String),
}

/// One problem found in a channel file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    #[source]
    pub problem: Problem,
}

impl ConfigError {
    /// The place as a [`Location`], when there is one.
    pub fn location(&self) -> Option<Location> {
        self.position.map(|(line, column)| Location {
            file: self.file.clone(),
            line,
            column,
        })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.file.display(),
                self.problem
            ),
            None => write!(f, "{}: {}", self.file.display(), self.problem),
        }
    }
}

/// Every problem found in one load, in file order; displayed one per line.
#[derive(Debug, Default, thiserror::Error)]
pub struct Diagnostics {
    /// The problems, never empty when returned as an error.
    pub errors: Vec<ConfigError>,
}

impl Diagnostics {
    /// True when no problem was found.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Iterate over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    pub(crate) fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    pub(crate) fn extend(&mut self, other: Diagnostics) {
        self.errors.extend(other.errors);
    }

    /// `Ok(value)` when nothing was found, else these diagnostics.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}
