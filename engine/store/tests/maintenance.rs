//! Retention pruning, reprocessing and lock detection, on real sled files in temp dirs.
#![allow(clippy::unwrap_used)]

use junction_store::{
    Disposition, Output, Processed, PruneRule, ReceiveMeta, Settlement, SledStore, Status, Step,
    Store, StoreError,
};

const DAY: u64 = 86_400_000;
const NOW: u64 = 1_700_000_000_000;

fn message(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|SND|FAC|RCV|FAC|20240101||ADT^A01|{id}|P|2.5\rPID|1||{id}\r").into_bytes()
}

fn processed(at: u64, disposition: Disposition) -> Processed {
    Processed {
        at,
        stages: Vec::new(),
        disposition,
    }
}

fn routed(destinations: &[&str]) -> Disposition {
    Disposition::Routed(
        destinations
            .iter()
            .map(|d| Output {
                destination: (*d).into(),
                content_type: "application/hl7-v2".into(),
                payload: format!("out-{d}").into_bytes(),
            })
            .collect(),
    )
}

/// Receives a message at `at` in `channel`, processes it with `disposition`, returns its seq.
fn stored(store: &SledStore, channel: &str, id: &str, at: u64, disposition: Disposition) -> u64 {
    let meta = ReceiveMeta {
        received_at: at,
        control_id: Some(id.into()),
        message_type: Some("ADT^A01".into()),
        reprocess_of: None,
    };
    let seq = store
        .receive(channel, &message(id), meta)
        .unwrap()
        .wait()
        .unwrap()
        .seq();
    let lease = store.lease_inbox(channel, 1).unwrap().pop().unwrap();
    assert_eq!(lease.seq(), seq);
    store
        .complete(lease, processed(at + 1, disposition))
        .unwrap();
    seq
}

/// Delivers the head of a destination's outbox with `settlement`.
fn deliver(store: &SledStore, channel: &str, destination: &str, settlement: Settlement) {
    let poll = store
        .poll_outbox(
            channel,
            destination,
            junction_store::OutboxOrder::Ordered,
            u64::MAX,
        )
        .unwrap();
    let junction_store::OutboxPoll::Ready(lease) = poll else {
        panic!("nothing to deliver: {poll:?}");
    };
    store.settle(lease, NOW, settlement).unwrap();
}

fn sent(store: &SledStore, channel: &str, id: &str, at: u64) -> u64 {
    let seq = stored(store, channel, id, at, routed(&["sink"]));
    deliver(store, channel, "sink", Settlement::Sent { response: None });
    seq
}

/// Runs prune steps of at most `max` records until the channel is done; returns (removed, kept, steps).
fn prune_all(store: &SledStore, channel: &str, rule: &PruneRule, max: usize) -> (u64, u64, usize) {
    let (mut removed, mut kept, mut steps) = (0, 0, 0);
    let mut resume = None;
    loop {
        let batch = store.prune(channel, rule, resume, max).unwrap();
        removed += batch.removed;
        kept += batch.kept;
        steps += 1;
        match batch.resume_after {
            Some(seq) => resume = Some(seq),
            None => return (removed, kept, steps),
        }
    }
}

#[test]
fn retention_removes_old_finished_messages_and_keeps_errored_queued_and_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let old = NOW - 40 * DAY;
    let old_sent: Vec<u64> = (0..5)
        .map(|i| sent(&store, "adt", &format!("OLD{i}"), old + i))
        .collect();
    let old_filtered = stored(
        &store,
        "adt",
        "FILT",
        old + 10,
        Disposition::Filtered {
            reason: "test".into(),
        },
    );
    let old_errored = stored(
        &store,
        "adt",
        "ERR",
        old + 11,
        Disposition::Errored {
            error: "script threw".into(),
        },
    );
    // Still waiting for its destination: never pruned, however old.
    let old_queued = stored(&store, "adt", "QUEUED", old + 12, routed(&["slow"]));
    let recent = sent(&store, "adt", "NEW", NOW - DAY);
    // A channel whose name starts like this one is not touched.
    let other = sent(&store, "adt2", "OTHER", old);

    let rule = PruneRule {
        received_before: NOW - 30 * DAY,
        keep_errored: true,
    };
    let (removed, kept, steps) = prune_all(&store, "adt", &rule, 3);
    assert_eq!((removed, kept), (6, 2));
    assert!(steps >= 3, "batches of 3 over 8 old records take 3 steps");

    for seq in old_sent.iter().chain([&old_filtered]) {
        assert_eq!(store.record("adt", *seq).unwrap(), None);
        assert_eq!(store.raw("adt", *seq).unwrap(), None);
        assert_eq!(store.output("adt", *seq, "sink").unwrap(), None);
    }
    assert!(store.find_by_control_id("OLD0").unwrap().is_empty());
    let errored = store.record("adt", old_errored).unwrap().unwrap();
    assert_eq!(errored.status, Status::Errored);
    assert_eq!(store.raw("adt", old_errored).unwrap(), Some(message("ERR")));
    assert_eq!(
        store.record("adt", old_queued).unwrap().unwrap().status,
        Status::Queued
    );
    assert_eq!(store.find_by_control_id("NEW").unwrap().len(), 1);
    assert!(store.record("adt", recent).unwrap().is_some());
    assert!(store.record("adt2", other).unwrap().is_some());

    // Without keep_errored the errored record goes too; the queued one still stays.
    let rule = PruneRule {
        keep_errored: false,
        ..rule
    };
    assert_eq!(prune_all(&store, "adt", &rule, 100).0, 1);
    assert_eq!(store.record("adt", old_errored).unwrap(), None);
    assert!(store.record("adt", old_queued).unwrap().is_some());

    // What was pruned stays pruned after reopen.
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.record("adt", old_sent[0]).unwrap(), None);
    assert!(store.record("adt", recent).unwrap().is_some());
}

#[test]
fn reprocess_copies_the_message_links_both_ways_and_can_limit_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let copy = {
        let store = SledStore::open(dir.path()).unwrap();
        let original = stored(
            &store,
            "adt",
            "E1",
            NOW,
            Disposition::Errored {
                error: "transform: line 3: boom".into(),
            },
        );
        let copy = store
            .reprocess("adt", original, Some("b"), NOW + 5)
            .unwrap()
            .wait()
            .unwrap();
        assert!(copy.seq() > original);
        assert_eq!(copy.control_id(), Some("E1"));

        let before = store.record("adt", original).unwrap().unwrap();
        assert_eq!(
            before.status,
            Status::Errored,
            "the original stays as it was"
        );
        assert_eq!(before.reprocessed_as(), vec![copy.seq()]);
        let waiting = store.record("adt", copy.seq()).unwrap().unwrap();
        assert_eq!(waiting.status, Status::Received);
        let link = waiting.meta.reprocess_of.unwrap();
        assert_eq!(
            (link.seq, link.destination.as_deref()),
            (original, Some("b"))
        );
        assert_eq!(store.raw("adt", copy.seq()).unwrap(), Some(message("E1")));

        // Not yet processed: there is nothing to run again.
        assert!(matches!(
            store.reprocess("adt", copy.seq(), None, NOW),
            Err(StoreError::NotProcessed { .. })
        ));
        assert!(matches!(
            store.reprocess("adt", 999_999, None, NOW),
            Err(StoreError::NoSuchMessage { .. })
        ));

        // The new run routes to a and b, but only b was asked for.
        let lease = store.lease_inbox("adt", 1).unwrap().pop().unwrap();
        assert_eq!(lease.seq(), copy.seq());
        store
            .complete(lease, processed(NOW + 6, routed(&["a", "b"])))
            .unwrap();
        copy.seq()
    };
    let store = SledStore::open(dir.path()).unwrap();
    let record = store.record("adt", copy).unwrap().unwrap();
    assert_eq!(
        record.destinations.keys().collect::<Vec<_>>(),
        vec!["b"],
        "only the chosen destination is queued"
    );
    assert_eq!(store.outbox_stats("adt", "a").unwrap().depth, 0);
    assert_eq!(store.outbox_stats("adt", "b").unwrap().depth, 1);
    let original = record.meta.reprocess_of.unwrap().seq;
    let original = store.record("adt", original).unwrap().unwrap();
    assert!(original
        .history
        .iter()
        .any(|e| e.step == Step::Reprocessed { seq: copy }));
    assert_eq!(store.find_by_control_id("E1").unwrap().len(), 2);
}

#[test]
fn a_store_held_by_another_process_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(err.is_locked(), "{err}");
    let missing_parent = SledStore::open("/proc/self/nonexistent/store").unwrap_err();
    assert!(!missing_parent.is_locked());
}
