//! The operational parts of a channel: encryption keys for stored content, and alerts.

use std::path::PathBuf;
use std::time::Duration;

use super::{root, Ctx};
use crate::error::Problem;
use crate::locate::{Target, YamlPath};
use crate::model::{Alerts, Encryption, EncryptionKey, ErrorsAlert};
use crate::raw::{RawAlerts, RawDestination, RawEncryption};

/// How to make a key, for messages about a bad one.
const KEY_HINT: &str = "a key file holds 32 random bytes, or 64 hex characters such as the output of 'openssl rand -hex 32'";

impl Ctx<'_> {
    /// Reads the channel's key files. `encrypt: true` needs them; without `encrypt` they only decrypt.
    pub(super) fn encryption(
        &mut self,
        encrypt: bool,
        raw: Option<&RawEncryption>,
    ) -> Option<Encryption> {
        let at = root().key("encryption");
        let Some(raw) = raw else {
            if encrypt {
                let message = "true needs a key: add 'encryption: { key_file: keys/current.key }'";
                self.rule(&root().key("encrypt"), message.into());
            }
            return None;
        };
        let key = self.key_file(&at.key("key_file"), &raw.key_file);
        let retired = raw
            .retired_key_files
            .iter()
            .enumerate()
            .filter_map(|(i, path)| self.key_file(&at.key("retired_key_files").index(i), path))
            .collect();
        Some(Encryption { key: key?, retired })
    }

    /// One key file, read and checked now so a bad key stops the load rather than the first message.
    fn key_file(&mut self, at: &YamlPath, path: &str) -> Option<EncryptionKey> {
        let expanded = self.expand(at, path)?;
        let file: PathBuf = self.resolve(&expanded);
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let problem = Problem::MissingFile {
                    field: at.to_string(),
                    role: "key",
                    path: file,
                };
                self.report(at, Target::Value, problem);
                return None;
            }
            Err(source) => {
                let what = format!("key file {}", file.display());
                self.report(at, Target::Value, Problem::Io { what, source });
                return None;
            }
        };
        match parse_key(&bytes) {
            Ok(bytes) => Some(EncryptionKey { file, bytes }),
            Err(reason) => {
                self.invalid(at, "key file", path, reason);
                None
            }
        }
    }

    /// The alerts block; `destinations` tells whether any circuit breaker could open.
    pub(super) fn alerts(
        &mut self,
        raw: Option<&RawAlerts>,
        destinations: &[RawDestination],
    ) -> Option<Alerts> {
        let raw = raw?;
        let at = root().key("alerts");
        let webhook = raw.webhook.as_ref().and_then(|url| {
            let url = self.expand(&at.key("webhook"), url)?;
            if url.starts_with("http://") || url.starts_with("https://") {
                Some(url)
            } else {
                let reason = "expected an http:// or https:// URL".into();
                self.invalid(&at.key("webhook"), "URL", &url, reason);
                None
            }
        });
        let queue_age = self.optional_duration(&at.key("queue_age"), raw.queue_age.as_ref());
        let errors = raw.errors.as_ref().map(|e| {
            let errors_at = at.key("errors");
            self.positive(&errors_at.key("count"), Some(e.count));
            ErrorsAlert {
                count: e.count,
                within: self.duration(
                    &errors_at.key("within"),
                    Some(&e.within),
                    Duration::from_secs(60),
                ),
            }
        });
        if raw.circuit_open && destinations.iter().all(|d| d.circuit_breaker.is_none()) {
            let message = "no destination of this channel has a circuit_breaker, so none can open";
            self.rule(&at.key("circuit_open"), message.into());
        }
        if queue_age.is_none() && errors.is_none() && !raw.circuit_open {
            let message = "no alert is set; give queue_age, errors or circuit_open: true";
            self.rule(&at, message.into());
        }
        Some(Alerts {
            webhook,
            queue_age,
            errors,
            circuit_open: raw.circuit_open,
        })
    }
}

/// 32 raw bytes, or 64 hex characters (surrounding whitespace such as a final newline ignored).
fn parse_key(bytes: &[u8]) -> Result<[u8; 32], String> {
    let key = match <[u8; 32]>::try_from(bytes) {
        Ok(raw) => raw,
        Err(_) => {
            let text = bytes.trim_ascii();
            let pairs = text.chunks_exact(2);
            if text.len() != 64 {
                return Err(format!("it holds {} bytes; {KEY_HINT}", bytes.len()));
            }
            let mut key = [0u8; 32];
            for (byte, pair) in key.iter_mut().zip(pairs) {
                *byte = std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| {
                        format!("it has 64 characters but they are not hex; {KEY_HINT}")
                    })?;
            }
            key
        }
    };
    if key == [0; 32] {
        return Err(format!("the key is all zeros; {KEY_HINT}"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::parse_key;

    #[test]
    fn keys_are_raw_or_hex() {
        assert_eq!(parse_key(&[9; 32]), Ok([9; 32]));
        let hex = format!("{}\n", "0a".repeat(32));
        assert_eq!(parse_key(hex.as_bytes()), Ok([10; 32]));
        assert!(parse_key(b"short").unwrap_err().contains("5 bytes"));
        assert!(parse_key("zz".repeat(32).as_bytes())
            .unwrap_err()
            .contains("not hex"));
        assert!(parse_key(&[0; 32]).unwrap_err().contains("all zeros"));
        assert!(parse_key("00".repeat(32).as_bytes()).is_err());
    }
}
