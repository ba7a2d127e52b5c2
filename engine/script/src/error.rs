//! Script errors: every failure names the script, the line and the column.

use std::fmt;
use std::path::PathBuf;

/// Where a script's text came from, so errors point an analyst at the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOrigin {
    /// A script file (e.g. `scripts/adt.rhai`).
    File(PathBuf),
    /// A script written inline in a channel file, placed where its text starts in that file.
    Inline {
        /// The channel file (e.g. `channels/adt.yaml`).
        file: PathBuf,
        /// 1-based line in `file` where the script text starts.
        line: usize,
        /// 1-based column in `file` where the script text starts (a block scalar's indentation + 1).
        column: usize,
    },
}

impl ScriptOrigin {
    /// Maps a 1-based script line to the line an editor should jump to.
    pub fn file_line(&self, script_line: usize) -> usize {
        match self {
            Self::File(_) => script_line,
            Self::Inline { line, .. } => line.saturating_add(script_line.saturating_sub(1)),
        }
    }

    /// Maps a 1-based script column to the file column: an inline script's lines sit at its start column
    /// (the first line after a `key: ` or quote, later ones at the block's indentation).
    pub fn file_column(&self, script_column: usize) -> usize {
        match self {
            Self::File(_) => script_column,
            Self::Inline { column, .. } => column.saturating_sub(1).saturating_add(script_column),
        }
    }
}

impl fmt::Display for ScriptOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Inline { file, line, .. } => write!(f, "inline in {}:{line}", file.display()),
        }
    }
}

/// What went wrong, as far as the caller needs to tell cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The script does not parse (syntax, undefined variable under strict mode, `eval`).
    Compile,
    /// A path literal in the script is not a valid HL7 path.
    Path,
    /// The script threw, called a function wrongly, or hit a type error.
    Runtime,
    /// The script ran into an operations, depth or size limit.
    Limit,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Compile => "compile error",
            Self::Path => "invalid path",
            Self::Runtime => "runtime error",
            Self::Limit => "limit exceeded",
        })
    }
}

/// A failed compile or run of one script; `line`/`column` are 1-based within the script text (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptError {
    /// The script that failed.
    pub origin: ScriptOrigin,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// 1-based line in the script text, 0 when unknown.
    pub line: usize,
    /// 1-based column in the script text, 0 when unknown.
    pub column: usize,
    /// Human-readable description, without position.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            ScriptOrigin::File(path) => write!(f, "{}", path.display())?,
            // Inline scripts report the channel file's line so an editor can jump straight to it.
            ScriptOrigin::Inline { file, .. } => write!(f, "{} (inline script)", file.display())?,
        }
        if self.line > 0 {
            let column = if self.column > 0 {
                self.origin.file_column(self.column)
            } else {
                0
            };
            write!(f, ":{}:{column}", self.origin.file_line(self.line))?;
        }
        write!(f, ": {}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_column() {
        let err = ScriptError {
            origin: ScriptOrigin::File("scripts/adt.rhai".into()),
            kind: ErrorKind::Runtime,
            line: 12,
            column: 5,
            message: "boom".into(),
        };
        assert_eq!(
            err.to_string(),
            "scripts/adt.rhai:12:5: runtime error: boom"
        );
    }

    #[test]
    fn inline_origin_maps_to_channel_file_line() {
        let origin = ScriptOrigin::Inline {
            file: "channels/x.yaml".into(),
            line: 20,
            column: 5,
        };
        assert_eq!(origin.to_string(), "inline in channels/x.yaml:20");
        let err = ScriptError {
            origin,
            kind: ErrorKind::Compile,
            line: 3,
            column: 7,
            message: "bad".into(),
        };
        assert_eq!(
            err.to_string(),
            "channels/x.yaml (inline script):22:11: compile error: bad"
        );
    }
}
