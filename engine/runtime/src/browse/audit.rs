//! The append-only audit log of every access to stored messages (`DATA/audit.jsonl`): one JSON object
//! per line saying who did what to which message, and when. The CLI (engine stopped) and the engine's
//! admin API (engine running) append to the same file; each line is a single `O_APPEND` write, so lines
//! from both never interleave.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// How the accessor reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `junction messages` on the store files, engine stopped.
    Cli,
    /// The running engine's admin API.
    Api,
}

/// Who is asking: an OS user for the CLI, the admin token's name for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accessor {
    /// User or token name.
    pub who: String,
    /// Which door they came through.
    pub via: Via,
}

impl Accessor {
    /// The OS user running this process: `$USER`, else `id -un`, else `unknown`.
    pub fn os_user() -> Self {
        let who = std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| {
                std::process::Command::new("id")
                    .arg("-un")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .filter(|u| !u.is_empty())
            })
            .unwrap_or_else(|| String::from("unknown"));
        Self { who, via: Via::Cli }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who.
    pub who: String,
    /// CLI or API.
    pub via: Via,
    /// `list`, `show` or `reprocess`.
    pub action: String,
    /// Channel accessed.
    pub channel: String,
    /// The message, for actions on one message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What exactly: the list query, the part shown, the copy a reprocess made. Never message content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The audit log file. Access is refused when its line cannot be written.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    // Serializes this process's appends; other processes are kept apart by O_APPEND.
    lock: Mutex<()>,
}

impl AuditLog {
    /// The log in a data folder: `DATA/audit.jsonl`.
    pub fn in_data_dir(data: &Path) -> Self {
        Self::at(data.join("audit.jsonl"))
    }

    /// The log at `path` (created on first append).
    pub fn at(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and syncs it to disk before the access it records happens.
    pub fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_data_dir(dir.path());
        for seq in [1, 2] {
            log.append(&AuditEntry {
                at: "2026-01-01T00:00:00.000Z".into(),
                who: "alice".into(),
                via: Via::Cli,
                action: "show".into(),
                channel: "adt".into(),
                seq: Some(seq),
                detail: None,
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<AuditEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[1].who.as_str(), lines[1].seq), ("alice", Some(2)));
    }

    #[test]
    fn the_os_user_is_never_empty() {
        assert!(!Accessor::os_user().who.is_empty());
    }
}
