//! Encryption at rest, checked on the real sled files: what an attacker with the disk would see.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use junction_store::{
    Cipher, Disposition, Key, Output, Processed, ReceiveMeta, Settlement, SledStore, StageOutcome,
    Status, Store, StoreError,
};

const PATIENT: &str = "QUIXOTEFAKENAME";

fn message(n: u32) -> Vec<u8> {
    format!(
        "MSH|^~\\&|SND|FAC|RCV|FAC|20240101||ADT^A01|C{n}|P|2.5\rPID|1||{n}||{PATIENT}^ALONSO\r"
    )
    .into_bytes()
}

fn meta(n: u32) -> ReceiveMeta {
    ReceiveMeta {
        received_at: 1_700_000_000_000,
        control_id: Some(format!("C{n}")),
        message_type: Some("ADT^A01".into()),
        ..ReceiveMeta::default()
    }
}

fn key(byte: u8) -> Key {
    Key::new(&[byte; 32])
}

/// Receives message `n`, processes it into an output that quotes the name (and a stage detail that
/// does too), then records a delivery whose error and response quote it as well.
fn run_one(store: &dyn Store, n: u32) -> u64 {
    let seq = store
        .receive("adt", &message(n), meta(n))
        .unwrap()
        .wait()
        .unwrap()
        .seq();
    let lease = store.lease_inbox("adt", 1).unwrap().pop().unwrap();
    assert_eq!(
        lease.raw(),
        message(n),
        "the worker sees the message in clear"
    );
    let processed = Processed {
        at: 1_700_000_000_001,
        stages: vec![StageOutcome {
            at: 1_700_000_000_001,
            stage: "transform".into(),
            status: Status::Transformed,
            detail: Some(format!("mapped {PATIENT}")),
        }],
        disposition: Disposition::Routed(vec![Output {
            destination: "lab".into(),
            content_type: "application/json".into(),
            payload: format!("{{\"family\":\"{PATIENT}\"}}").into_bytes(),
        }]),
    };
    store.complete(lease, processed).unwrap();
    let lease = match store
        .poll_outbox("adt", "lab", junction_store::OutboxOrder::Ordered, u64::MAX)
        .unwrap()
    {
        junction_store::OutboxPoll::Ready(l) => l,
        other => panic!("expected a ready entry, got {other:?}"),
    };
    assert_eq!(
        lease.payload(),
        format!("{{\"family\":\"{PATIENT}\"}}").as_bytes()
    );
    let retry = Settlement::Retry {
        error: format!("peer said no to {PATIENT}"),
        next_attempt_at: 0,
    };
    store.settle(lease, 1_700_000_000_002, retry).unwrap();
    let lease = match store
        .poll_outbox("adt", "lab", junction_store::OutboxOrder::Ordered, u64::MAX)
        .unwrap()
    {
        junction_store::OutboxPoll::Ready(l) => l,
        other => panic!("expected a ready entry, got {other:?}"),
    };
    let sent = Settlement::Sent {
        response: Some(format!("ok {PATIENT}")),
    };
    store.settle(lease, 1_700_000_000_003, sent).unwrap();
    seq
}

/// Every byte sled wrote under `dir`, for a substring search.
fn disk_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(disk_bytes(&path));
        } else {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Checks that everything the browser reads comes back in clear.
fn assert_readable(store: &dyn Store, n: u32, seq: u64) {
    assert_eq!(store.raw("adt", seq).unwrap().unwrap(), message(n));
    let out = store.output("adt", seq, "lab").unwrap().unwrap();
    assert!(contains(&out, PATIENT));
    let record = store.record("adt", seq).unwrap().unwrap();
    let lab = &record.destinations["lab"];
    assert_eq!(
        lab.response.as_deref(),
        Some(format!("ok {PATIENT}").as_str())
    );
    assert_eq!(
        lab.last_error.as_deref(),
        Some(format!("peer said no to {PATIENT}").as_str())
    );
    assert!(record
        .history
        .iter()
        .any(|e| e.detail.as_deref() == Some(&format!("mapped {PATIENT}"))));
    let listed = store.list("adt", &Default::default()).unwrap();
    assert!(listed.iter().any(|r| r == &record));
    let found = store.find_by_control_id(&format!("C{n}")).unwrap();
    assert_eq!(found, vec![record]);
}

#[test]
fn content_on_disk_is_clear_without_encryption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let seq = run_one(&store, 1);
        assert_readable(&store, 1, seq);
        store.flush().unwrap();
    }
    // The control check for the test below: the scan does find the name when nothing is encrypted.
    assert!(contains(&disk_bytes(dir.path()), PATIENT));
}

#[test]
fn content_on_disk_is_sealed_with_encryption_and_metadata_stays_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let seq;
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.set_channel_cipher("adt", Some(Cipher::new(key(1), vec![])));
        seq = run_one(&store, 1);
        // A message left in the inbox is sealed too.
        store
            .receive("adt", &message(2), meta(2))
            .unwrap()
            .wait()
            .unwrap();
        assert_readable(&store, 1, seq);
        store.flush().unwrap();
    }
    let disk = disk_bytes(dir.path());
    assert!(!contains(&disk, PATIENT), "patient name found on disk");
    assert!(contains(&disk, "ADT^A01"), "message type stays in clear");

    // After a restart with the key configured again, everything reads back; metadata needs no key.
    let store = SledStore::open(dir.path()).unwrap();
    let record = store.find_by_control_id("C2").unwrap();
    assert_eq!(
        record.len(),
        1,
        "control id search works on a sealed inbox entry"
    );
    store.set_channel_cipher("adt", Some(Cipher::new(key(1), vec![])));
    assert_readable(&store, 1, seq);
    let lease = store.lease_inbox("adt", 1).unwrap().pop().unwrap();
    assert_eq!(lease.raw(), message(2));
}

#[test]
fn rotation_keeps_old_records_readable_with_the_retired_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.set_channel_cipher("adt", Some(Cipher::new(key(1), vec![])));
    let old = run_one(&store, 1);
    drop(store);

    let store = SledStore::open(dir.path()).unwrap();
    let rotated = Cipher::new(key(2), vec![key(1)]);
    assert_eq!(rotated.current_key(), Some(key(2).id()));
    store.set_channel_cipher("adt", Some(rotated));
    let new = run_one(&store, 2);
    assert_readable(&store, 1, old);
    assert_readable(&store, 2, new);
    drop(store);

    // Only the new key: the new record reads, the old one is a clear error naming the missing key.
    let store = SledStore::open(dir.path()).unwrap();
    store.set_channel_cipher("adt", Some(Cipher::new(key(2), vec![])));
    assert_readable(&store, 2, new);
    let listed = store.list("adt", &Default::default()).unwrap();
    let old_error = listed
        .iter()
        .find(|r| r.seq == old)
        .and_then(|r| r.destinations["lab"].last_error.clone())
        .unwrap();
    assert!(
        old_error.contains(&key(1).id().to_string()) && !old_error.contains(PATIENT),
        "a listing names the missing key instead of failing: {old_error}"
    );
    let err = store.raw("adt", old).unwrap_err();
    assert!(
        matches!(&err, StoreError::KeyMissing { key_id } if *key_id == key(1).id().to_string()),
        "{err}"
    );
    assert!(matches!(
        store.record("adt", old),
        Err(StoreError::KeyMissing { .. })
    ));
    assert!(matches!(
        store.output("adt", old, "lab"),
        Err(StoreError::KeyMissing { .. })
    ));
}

#[test]
fn turning_encryption_off_keeps_sealed_records_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.set_channel_cipher("adt", Some(Cipher::new(key(1), vec![])));
    let sealed = run_one(&store, 1);
    store.set_channel_cipher("adt", Some(Cipher::new(key(1), vec![]).decrypt_only()));
    let clear = run_one(&store, 2);
    assert_readable(&store, 1, sealed);
    assert_readable(&store, 2, clear);
    drop(store);

    // With no key at all, clear records still read and sealed ones fail rather than return ciphertext.
    let store = SledStore::open(dir.path()).unwrap();
    assert_readable(&store, 2, clear);
    assert!(matches!(
        store.raw("adt", sealed),
        Err(StoreError::KeyMissing { .. })
    ));
}
