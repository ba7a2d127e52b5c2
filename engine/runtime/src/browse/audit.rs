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
    /// The OS user running this process, from its real uid (not `$USER`, which the caller can set
    /// to anything): the uid's name in `/etc/passwd`, else the number, else `unknown`.
    pub fn os_user() -> Self {
        let who = match real_uid() {
            Some(uid) => std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|passwd| user_name(&passwd, uid))
                .unwrap_or_else(|| uid.to_string()),
            None => String::from("unknown"),
        };
        Self { who, via: Via::Cli }
    }
}

/// The real uid of this process: the first number of the `Uid:` line of `/proc/self/status`.
fn real_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The name `passwd` (the text of `/etc/passwd`) gives `uid`.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let line_uid: u32 = fields.nth(1)?.parse().ok()?;
        (line_uid == uid && !name.is_empty()).then(|| name.to_owned())
    })
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
    fn the_os_user_is_the_real_user_whatever_user_says() {
        let who = Accessor::os_user().who;
        let id = |flags: &str| {
            std::process::Command::new("id")
                .arg(flags)
                .output()
                .unwrap()
        };
        // A uid with no passwd entry (common in CI containers) has no name: the number stands in.
        let named = id("-run");
        let expected = if named.status.success() {
            named
        } else {
            id("-ru")
        };
        assert_eq!(who, String::from_utf8_lossy(&expected.stdout).trim());
    }

    #[test]
    fn uids_are_named_from_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n\nbad line\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 1001), None);
    }
}
