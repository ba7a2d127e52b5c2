//! Handing each channel's configured keys to the store, which seals and opens stored content.

use junction_config::ChannelConfig;
use junction_store::{Cipher, Key, KeyId, Store};
use tracing::info;

/// The store cipher a channel's configuration asks for: none without keys, read-only keys when
/// `encrypt` is off (so content sealed earlier stays readable).
fn cipher(config: &ChannelConfig) -> Option<Cipher> {
    let keys = config.encryption.as_ref()?;
    let retired = keys.retired.iter().map(|k| Key::new(k.bytes())).collect();
    let cipher = Cipher::new(Key::new(keys.key.bytes()), retired);
    Some(if config.encrypt {
        cipher
    } else {
        cipher.decrypt_only()
    })
}

/// The ids of every key a channel's configuration names (current first), never the key bytes: a
/// reload compares them, so a key file overwritten in place under the same name still restarts the
/// channel with the new key.
pub(crate) fn key_ids(config: &ChannelConfig) -> Vec<KeyId> {
    config.encryption.as_ref().map_or_else(Vec::new, |keys| {
        std::iter::once(&keys.key)
            .chain(&keys.retired)
            .map(|k| Key::new(k.bytes()).id())
            .collect()
    })
}

/// Sets one channel's cipher (on every start, including a restart by reload); returns the id of
/// the key new content is sealed with.
pub(crate) fn install(store: &dyn Store, config: &ChannelConfig) -> Option<KeyId> {
    let cipher = cipher(config);
    let key_id = cipher.as_ref().and_then(Cipher::current_key);
    store.set_channel_cipher(&config.name, cipher);
    key_id
}

/// Sets every channel's cipher before any channel starts, so a message handed over to a channel
/// that has not started yet is sealed too. Logs the key ids (fingerprints, never key bytes) so an
/// operator can tell which key a rotation put in use. Tools that open the store of a stopped engine
/// call this too, so they can read encrypted channels.
pub fn install_all(store: &dyn Store, configs: &[ChannelConfig]) {
    for config in configs {
        if let Some(id) = install(store, config) {
            info!(channel = %config.name, key_id = %id, "stored message content is encrypted");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use crate::runtime::fingerprint;

    fn channel(dir: &Path) -> junction_config::ChannelConfig {
        let yaml = "name: sealed\nsource:\n  mllp: { listen: \"127.0.0.1:2575\" }\nencrypt: true\n\
                    encryption: { key_file: keys/current.key }\ndestinations:\n  - name: out\n    \
                    file: { dir: out }\n";
        let file = dir.join("channels/sealed.yaml");
        junction_config::parse_channel(yaml, &file, dir).unwrap()
    }

    #[test]
    fn a_key_file_overwritten_in_place_changes_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let key = dir.path().join("keys/current.key");
        std::fs::write(&key, [1u8; 32]).unwrap();
        let before = fingerprint(&channel(dir.path()));
        assert_eq!(
            fingerprint(&channel(dir.path())),
            before,
            "same key, same channel"
        );
        // Same file name, new bytes: a reload must restart the channel so the new key is used.
        std::fs::write(&key, [2u8; 32]).unwrap();
        let after = fingerprint(&channel(dir.path()));
        assert_ne!(after, before);
        assert!(
            !after.contains("0202") && !after.contains("[2, 2"),
            "the key bytes never show"
        );
    }
}
