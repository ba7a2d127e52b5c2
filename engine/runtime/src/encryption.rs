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
