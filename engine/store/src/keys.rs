//! Key layout. Names are length-prefixed (u16, big-endian) so one name is never a prefix of another, and
//! sequence ids are big-endian u64 so sled iterates them in order.
//!
//! | tree        | key                          | value                                    |
//! |-------------|------------------------------|------------------------------------------|
//! | inbox       | channel, seq                 | `ReceiveMeta` JSON (length-prefixed), raw |
//! | records     | channel, seq                 | `MessageRecord` JSON                     |
//! | bodies      | channel, seq, 0              | raw message bytes                        |
//! | bodies      | channel, seq, 1, destination | that destination's output                |
//! | outbox      | channel, destination, seq    | `OutboxEntry` JSON                       |
//! | control_ids | control id, channel, seq     | empty                                    |
//!
//! A received message lives only in `inbox` (one write before the ACK); processing moves it to
//! `records`/`bodies`/`control_ids` and the outboxes in one transaction.

use crate::error::{Result, StoreError};

const SEQ_LEN: usize = 8;
const RAW_TAG: u8 = 0;
const OUTPUT_TAG: u8 = 1;

fn push_name(key: &mut Vec<u8>, what: &'static str, name: &str) -> Result<()> {
    let len = u16::try_from(name.len()).map_err(|_| StoreError::NameTooLong {
        what,
        len: name.len(),
    })?;
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    Ok(())
}

/// Prefix of everything a channel owns in `records`, `inbox` and `bodies`.
pub(crate) fn channel(channel: &str) -> Result<Vec<u8>> {
    let mut key = Vec::with_capacity(2 + channel.len() + SEQ_LEN + 1);
    push_name(&mut key, "channel name", channel)?;
    Ok(key)
}

/// Key of a message in `records` and `inbox`.
pub(crate) fn message(channel_name: &str, seq: u64) -> Result<Vec<u8>> {
    let mut key = channel(channel_name)?;
    key.extend_from_slice(&seq.to_be_bytes());
    Ok(key)
}

/// Key of the raw message in `bodies`.
pub(crate) fn raw(message_key: &[u8]) -> Vec<u8> {
    let mut key = message_key.to_vec();
    key.push(RAW_TAG);
    key
}

/// Key of a destination's output in `bodies`.
pub(crate) fn output(message_key: &[u8], destination: &str) -> Result<Vec<u8>> {
    let mut key = message_key.to_vec();
    key.push(OUTPUT_TAG);
    push_name(&mut key, "destination name", destination)?;
    Ok(key)
}

/// Prefix of one outbox in `outbox`.
pub(crate) fn outbox(channel_name: &str, destination: &str) -> Result<Vec<u8>> {
    let mut key = channel(channel_name)?;
    push_name(&mut key, "destination name", destination)?;
    Ok(key)
}

/// Key of one entry in `outbox`.
pub(crate) fn outbox_entry(outbox_prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut key = outbox_prefix.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Longest start of a control id the index holds. HL7 gives MSH-10 20 to 199 characters, but a sender
/// may put anything there, and a message must never become unrecordable for it; a longer id is
/// indexed by its start, and a lookup compares the whole id with each record's.
const INDEXED_CONTROL_ID: usize = 512;

/// Prefix of every message with this control id in `control_ids`.
pub(crate) fn control_id(control_id: &str) -> Result<Vec<u8>> {
    let end = (0..=control_id.len().min(INDEXED_CONTROL_ID))
        .rev()
        .find(|&i| control_id.is_char_boundary(i))
        .unwrap_or(0);
    let mut key = Vec::new();
    push_name(
        &mut key,
        "control id",
        control_id.get(..end).unwrap_or_default(),
    )?;
    Ok(key)
}

/// Key of one message in `control_ids`.
pub(crate) fn control_id_entry(control_id_prefix: &[u8], message_key: &[u8]) -> Vec<u8> {
    let mut key = control_id_prefix.to_vec();
    key.extend_from_slice(message_key);
    key
}

/// Splits a key that ends in a sequence id into (queue prefix, seq).
pub(crate) fn split_seq(key: &[u8]) -> Result<(&[u8], u64)> {
    let corrupt = || StoreError::Corrupt {
        what: "key",
        detail: format!("{} bytes, too short for a sequence id", key.len()),
    };
    let split = key.len().checked_sub(SEQ_LEN).ok_or_else(corrupt)?;
    let (prefix, seq) = key.split_at(split);
    let seq: [u8; SEQ_LEN] = seq.try_into().map_err(|_| corrupt())?;
    Ok((prefix, u64::from_be_bytes(seq)))
}

/// Reads the name at the start of a key, returning it and the rest.
pub(crate) fn split_name(key: &[u8]) -> Result<(String, &[u8])> {
    let corrupt = |detail: &str| StoreError::Corrupt {
        what: "key",
        detail: detail.to_owned(),
    };
    let (len, rest) = key
        .split_first_chunk::<2>()
        .ok_or_else(|| corrupt("missing name length"))?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(corrupt("name runs past the end of the key"));
    }
    let (name, rest) = rest.split_at(len);
    let name = String::from_utf8(name.to_vec()).map_err(|_| corrupt("name is not UTF-8"))?;
    Ok((name, rest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_is_never_a_prefix_of_another() {
        let a = message("adt", 1).unwrap();
        assert!(!a.starts_with(&channel("ad").unwrap()));
        assert!(a.starts_with(&channel("adt").unwrap()));
    }

    #[test]
    fn sequence_ids_sort_numerically() {
        assert!(message("c", 255).unwrap() < message("c", 256).unwrap());
        assert!(message("c", 256).unwrap() < message("c", u64::MAX).unwrap());
    }

    #[test]
    fn names_and_seq_round_trip() {
        let prefix = outbox("lab", "fhir").unwrap();
        let key = outbox_entry(&prefix, 42);
        let (queue, seq) = split_seq(&key).unwrap();
        assert_eq!((queue, seq), (prefix.as_slice(), 42));
        let (ch, rest) = split_name(queue).unwrap();
        let (dest, rest) = split_name(rest).unwrap();
        assert_eq!((ch.as_str(), dest.as_str(), rest), ("lab", "fhir", &[][..]));
    }

    #[test]
    fn a_control_id_of_any_length_has_an_index_key() {
        let long = "é".repeat(40_000);
        let key = control_id(&long).unwrap();
        assert!(key.len() <= 2 + INDEXED_CONTROL_ID);
        let (start, rest) = split_name(&key).unwrap();
        assert!(long.starts_with(&start) && rest.is_empty());
        assert_eq!(control_id("MSG1").unwrap(), [&[0, 4][..], b"MSG1"].concat());
    }

    #[test]
    fn overlong_names_are_errors() {
        let long = "x".repeat(70_000);
        assert!(matches!(
            channel(&long),
            Err(StoreError::NameTooLong { len: 70_000, .. })
        ));
        assert!(split_name(&[0, 5, b'a']).is_err());
    }
}
