//! Encryption at rest for message content: AES-256-GCM, a random 96-bit nonce per value, and the
//! id of the key stored in front of every ciphertext.
//!
//! What is sealed: the raw message (inbox and body), every destination output, and the free text a
//! record carries (stage and finish details, delivery errors, peer responses), since scripts and peers
//! may quote the message there. What stays clear: keys, ids, status, times, control id and message
//! type, so the message browser can still search and the queues still run.
//!
//! Writing needs the channel's current key; reading needs only the key the value names, looked up in
//! one ring that holds every key any channel configured. So a retired key keeps old values readable,
//! a value copied between trees (reprocessing) stays readable, and a value whose key is gone is an
//! error naming that key, never bytes passed off as a message.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::aes::cipher::{generic_array::GenericArray, BlockEncrypt};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, Nonce};

use crate::error::{Result, StoreError};
use crate::types::MessageRecord;

/// Marks a sealed value.
const MAGIC: &[u8; 4] = b"\0JXE";
/// Marks a clear value that itself starts with NUL, so content (a sender may store any bytes, and
/// frames answered AR are kept too) can never pose as a sealed value and make its queue unreadable.
const CLEAR_MARK: &[u8; 4] = b"\0JXC";
const VERSION: u8 = 1;
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + 1 + ID_LEN + NONCE_LEN;
/// Marks a sealed text field inside a JSON record; the sealed bytes follow as hex.
const TEXT_MARK: &str = "\u{0}enc:";
/// The block whose encryption fingerprints a key. Not the zero block: AES_K(0) is GCM's hash key.
const ID_BLOCK: [u8; 16] = *b"junction key id\x01";

/// Fingerprint of a key, stored with each ciphertext so the right key is found on read.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 256-bit data key (its bytes are never printed).
pub struct Key {
    id: KeyId,
    aead: Aes256Gcm,
}

impl Key {
    /// A key from its 32 bytes.
    pub fn new(bytes: &[u8; 32]) -> Self {
        let mut block = GenericArray::from(ID_BLOCK);
        Aes256::new(GenericArray::from_slice(bytes)).encrypt_block(&mut block);
        let mut id = [0u8; ID_LEN];
        for (to, from) in id.iter_mut().zip(block.iter()) {
            *to = *from;
        }
        Self {
            id: KeyId(id),
            aead: Aes256Gcm::new(GenericArray::from_slice(bytes)),
        }
    }

    /// The key's fingerprint, as stored beside what it encrypted.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&nonce);
        // The header is authenticated too, so a value cannot be relabelled with another key id.
        let sealed = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &out,
                },
            )
            .map_err(|_| StoreError::Encrypt {
                key_id: self.id.to_string(),
                len: plain.len(),
            })?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish()
    }
}

/// The keys of one channel: the current key encrypts what is written from now on, retired keys only
/// decrypt what they encrypted before a rotation.
#[derive(Debug, Clone)]
pub struct Cipher {
    current: Arc<Key>,
    retired: Vec<Arc<Key>>,
    encrypt: bool,
}

impl Cipher {
    /// A cipher that encrypts new content with `current` and reads content sealed with any of the keys.
    pub fn new(current: Key, retired: Vec<Key>) -> Self {
        Self {
            current: Arc::new(current),
            retired: retired.into_iter().map(Arc::new).collect(),
            encrypt: true,
        }
    }

    /// The same keys, used only to read: new content is written in clear (turning encryption off while
    /// older encrypted records are still kept).
    pub fn decrypt_only(mut self) -> Self {
        self.encrypt = false;
        self
    }

    /// The key new content is encrypted with, if this cipher encrypts.
    pub fn current_key(&self) -> Option<KeyId> {
        self.encrypt.then(|| self.current.id)
    }
}

/// Every key known to the store (to read) and each channel's current key (to write).
#[derive(Debug, Default)]
pub(crate) struct Keyring {
    inner: RwLock<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    writers: HashMap<String, Arc<Key>>,
    readers: HashMap<KeyId, Arc<Key>>,
}

impl Keyring {
    /// Sets how `channel` writes from now on. Keys are only ever added to the reading ring: content
    /// written under a key that was just dropped from the configuration stays readable until restart.
    pub(crate) fn install(&self, channel: &str, cipher: Option<Cipher>) {
        let mut keys = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        keys.writers.remove(channel);
        let Some(cipher) = cipher else {
            return;
        };
        for key in std::iter::once(&cipher.current).chain(&cipher.retired) {
            keys.readers.insert(key.id, Arc::clone(key));
        }
        if cipher.encrypt {
            keys.writers.insert(channel.to_owned(), cipher.current);
        }
    }

    /// The key `channel` encrypts with, or `None` when it stores content in clear.
    pub(crate) fn writer(&self, channel: &str) -> Option<Arc<Key>> {
        let keys = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        keys.writers.get(channel).cloned()
    }

    /// Content sealed with `key`, or in clear when there is no key (marked if it starts with NUL).
    pub(crate) fn seal<'a>(key: Option<&Key>, plain: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        match key {
            Some(key) => key.seal(plain).map(Cow::Owned),
            None if plain.first() == Some(&0) => Ok(Cow::Owned([CLEAR_MARK, plain].concat())),
            None => Ok(Cow::Borrowed(plain)),
        }
    }

    /// Stored content in clear: unsealed when it was sealed, else as stored.
    pub(crate) fn open<'a>(&self, stored: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        if let Some(clear) = stored.strip_prefix(CLEAR_MARK) {
            return Ok(Cow::Borrowed(clear));
        }
        if !stored.starts_with(MAGIC) {
            return Ok(Cow::Borrowed(stored));
        }
        let corrupt = |detail: &str| StoreError::Corrupt {
            what: "encrypted value",
            detail: detail.to_owned(),
        };
        let header = stored
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("shorter than its header"))?;
        let (version, rest) = header
            .get(MAGIC.len()..)
            .and_then(<[u8]>::split_first)
            .ok_or_else(|| corrupt("shorter than its header"))?;
        if *version != VERSION {
            return Err(corrupt(&format!("unknown format version {version}")));
        }
        let (id, nonce) = rest.split_at(ID_LEN);
        let id = KeyId(id.try_into().map_err(|_| corrupt("bad key id"))?);
        let key = {
            let keys = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            keys.readers.get(&id).cloned()
        }
        .ok_or_else(|| StoreError::KeyMissing {
            key_id: id.to_string(),
        })?;
        let sealed = stored.get(HEADER_LEN..).unwrap_or_default();
        key.aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: header,
                },
            )
            .map(Cow::Owned)
            .map_err(|_| StoreError::Decrypt {
                key_id: id.to_string(),
            })
    }

    /// Seals every free-text field of a record that is not sealed yet (those added since it was read).
    pub(crate) fn seal_record(key: Option<&Key>, record: &mut MessageRecord) -> Result<()> {
        let Some(key) = key else {
            return Ok(());
        };
        for text in text_fields(record) {
            if let Some(t) = text.as_mut().filter(|t| !t.starts_with(TEXT_MARK)) {
                *t = format!("{TEXT_MARK}{}", hex(&key.seal(t.as_bytes())?));
            }
        }
        Ok(())
    }

    /// The record with its sealed text fields in clear. With `mark_missing`, a field whose key is not
    /// configured reads as a note naming the key instead of failing the record (so one old record does
    /// not make a whole listing unreadable); otherwise that is an error.
    pub(crate) fn open_record(
        &self,
        mut record: MessageRecord,
        mark_missing: bool,
    ) -> Result<MessageRecord> {
        for text in text_fields(&mut record) {
            let Some(sealed) = text.as_deref().and_then(|t| t.strip_prefix(TEXT_MARK)) else {
                continue;
            };
            let bytes = unhex(sealed).ok_or_else(|| StoreError::Corrupt {
                what: "encrypted record field",
                detail: "not hex".into(),
            })?;
            *text = Some(match self.open(&bytes) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                Err(StoreError::KeyMissing { key_id }) if mark_missing => {
                    format!("[encrypted with key {key_id}, which is not configured]")
                }
                Err(e) => return Err(e),
            });
        }
        Ok(record)
    }
}

/// `text` as a record may hold it: a leading NUL, which marks a sealed field, becomes U+FFFD, so a
/// script's error or a partner's answer can never pose as sealed text and make the record unreadable.
pub(crate) fn record_text(text: &str) -> String {
    match text.strip_prefix('\0') {
        Some(rest) => format!("\u{fffd}{rest}"),
        None => text.to_owned(),
    }
}

/// The fields of a record that may quote message content.
fn text_fields(record: &mut MessageRecord) -> impl Iterator<Item = &mut Option<String>> {
    let destinations = record
        .destinations
        .values_mut()
        .flat_map(|d| [&mut d.last_error, &mut d.response]);
    record
        .history
        .iter_mut()
        .map(|e| &mut e.detail)
        .chain(destinations)
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Event, ReceiveMeta, Step};

    fn ring(channel: &str, cipher: Cipher) -> Keyring {
        let ring = Keyring::default();
        ring.install(channel, Some(cipher));
        ring
    }

    #[test]
    fn sealed_bytes_round_trip_and_hide_the_plaintext() {
        let ring = ring("adt", Cipher::new(Key::new(&[7; 32]), vec![]));
        let key = ring.writer("adt").unwrap();
        let plain = b"PID|1||123||DOE^JOHN";
        let sealed = Keyring::seal(Some(&key), plain).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"DOE^"));
        assert_eq!(sealed.len(), HEADER_LEN + plain.len() + 16);
        assert_eq!(ring.open(&sealed).unwrap().as_ref(), plain);
        // Fresh nonce each time: the same text never seals to the same bytes.
        assert_ne!(Keyring::seal(Some(&key), plain).unwrap(), sealed);
        // Clear values pass through untouched.
        assert_eq!(ring.open(plain).unwrap().as_ref(), plain);
    }

    #[test]
    fn clear_content_that_looks_sealed_reads_back_as_itself() {
        let ring = Keyring::default();
        for plain in [&b"\0JXE\x01not a message"[..], b"\0JXC", b"\0", b"MSH|"] {
            let stored = Keyring::seal(None, plain).unwrap();
            assert_eq!(ring.open(&stored).unwrap().as_ref(), plain);
        }
        assert_eq!(record_text("\0enc:zz"), "\u{fffd}enc:zz");
        assert_eq!(record_text("AE from peer"), "AE from peer");
    }

    #[test]
    fn tampering_and_unknown_keys_are_errors() {
        let ring = ring("adt", Cipher::new(Key::new(&[7; 32]), vec![]));
        let key = ring.writer("adt").unwrap();
        let mut sealed = Keyring::seal(Some(&key), b"secret").unwrap().into_owned();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            ring.open(&sealed),
            Err(StoreError::Decrypt { .. })
        ));
        let other = Keyring::default();
        let sealed = Keyring::seal(Some(&key), b"secret").unwrap();
        let err = other.open(&sealed).unwrap_err();
        assert!(
            matches!(&err, StoreError::KeyMissing { key_id } if *key_id == key.id().to_string())
        );
        assert!(err.to_string().contains(&key.id().to_string()), "{err}");
        assert!(ring.open(&sealed[..10]).is_err());
    }

    #[test]
    fn key_ids_differ_per_key_and_decrypt_only_does_not_write() {
        assert_ne!(Key::new(&[1; 32]).id(), Key::new(&[2; 32]).id());
        assert_eq!(Key::new(&[1; 32]).id(), Key::new(&[1; 32]).id());
        let ring = ring(
            "adt",
            Cipher::new(Key::new(&[1; 32]), vec![]).decrypt_only(),
        );
        assert!(ring.writer("adt").is_none());
        ring.install("adt", None);
        assert!(ring.writer("adt").is_none());
    }

    #[test]
    fn record_text_is_sealed_once_and_opened() {
        let ring = ring("adt", Cipher::new(Key::new(&[3; 32]), vec![]));
        let key = ring.writer("adt").unwrap();
        let mut record = MessageRecord::received("adt", 1, ReceiveMeta::default());
        record.history.push(Event {
            at: 1,
            step: Step::Received,
            detail: Some("reject: patient DOE".into()),
        });
        Keyring::seal_record(Some(&key), &mut record).unwrap();
        let once = record.clone();
        Keyring::seal_record(Some(&key), &mut record).unwrap();
        assert_eq!(once, record, "sealed fields are not sealed twice");
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("DOE"), "{json}");
        assert!(matches!(
            Keyring::default().open_record(record.clone(), false),
            Err(StoreError::KeyMissing { .. })
        ));
        let marked = Keyring::default()
            .open_record(record.clone(), true)
            .unwrap();
        let note = marked.history.last().unwrap().detail.clone().unwrap();
        assert!(note.contains(&key.id().to_string()), "{note}");
        let opened = ring.open_record(record, false).unwrap();
        assert_eq!(
            opened.history.last().unwrap().detail.as_deref(),
            Some("reject: patient DOE")
        );
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
    }
}
