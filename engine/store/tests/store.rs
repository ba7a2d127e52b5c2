//! Behaviour of the sled store through the engine-facing `Store` trait, on real sled files in temp dirs.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use junction_store::{
    AttemptOutcome, Disposition, InboxLease, ListFilter, OutboxLease, OutboxOrder, OutboxPoll,
    Output, Processed, ReceiveMeta, Settlement, SledStore, StageOutcome, Status, Step, Store,
};

const T0: u64 = 1_700_000_000_000;

fn meta(control_id: &str) -> ReceiveMeta {
    ReceiveMeta {
        received_at: T0,
        control_id: Some(control_id.into()),
        message_type: Some("ADT^A01".into()),
        reprocess_of: None,
    }
}

fn message(n: usize) -> Vec<u8> {
    format!("MSH|^~\\&|SND|FAC|RCV|FAC|20240101||ADT^A01|C{n}|P|2.5\rPID|1||{n}\r").into_bytes()
}

fn store_one(store: &dyn Store, channel: &str, n: usize) -> u64 {
    store
        .receive(channel, &message(n), meta(&format!("C{n}")))
        .unwrap()
        .wait()
        .unwrap()
        .seq()
}

fn output(destination: &str, body: &str) -> Output {
    Output {
        destination: destination.into(),
        content_type: "application/hl7-v2".into(),
        payload: body.as_bytes().to_vec(),
    }
}

fn routed(outputs: Vec<Output>) -> Processed {
    Processed {
        at: T0 + 1,
        stages: vec![StageOutcome {
            at: T0 + 1,
            stage: "transform".into(),
            status: Status::Transformed,
            detail: None,
        }],
        disposition: Disposition::Routed(outputs),
    }
}

fn lease_one(store: &dyn Store, channel: &str) -> InboxLease {
    let mut leases = store.lease_inbox(channel, 1).unwrap();
    assert_eq!(leases.len(), 1, "expected an inbox message");
    leases.pop().unwrap()
}

/// Receives `n` messages and routes each to `destinations`, returning their seqs.
fn queue_messages(store: &dyn Store, n: usize, destinations: &[&str]) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let seq = store_one(store, "adt", i);
            let lease = lease_one(store, "adt");
            assert_eq!(lease.seq(), seq);
            let outs = destinations
                .iter()
                .map(|d| output(d, &format!("{d}-{i}")))
                .collect();
            store.complete(lease, routed(outs)).unwrap();
            seq
        })
        .collect()
}

fn ready(poll: OutboxPoll) -> OutboxLease {
    match poll {
        OutboxPoll::Ready(lease) => lease,
        other => panic!("expected a ready entry, got {other:?}"),
    }
}

#[test]
fn group_commit_answers_every_thread_and_each_write_is_readable_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut stored = Vec::new();
    {
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let n = t * 100 + i;
                            (n, store_one(store.as_ref(), "adt", n))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            stored.extend(h.join().unwrap());
        }
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.inbox_stats("adt").unwrap().depth, 200);
    for (n, seq) in &stored {
        assert_eq!(store.raw("adt", *seq).unwrap().unwrap(), message(*n));
        let record = store.record("adt", *seq).unwrap().unwrap();
        assert_eq!(record.status, Status::Received);
        assert_eq!(
            record.meta.control_id.as_deref(),
            Some(format!("C{n}").as_str())
        );
    }
    let leased: BTreeSet<u64> = store
        .lease_inbox("adt", 1000)
        .unwrap()
        .iter()
        .map(|l| l.seq())
        .collect();
    let expected: BTreeSet<u64> = stored.iter().map(|(_, s)| *s).collect();
    assert_eq!(leased, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_answers_every_async_task() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let pending = store.receive("lab", &message(n), meta("X")).unwrap();
                pending.durable().await.unwrap()
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for t in tasks {
        let stored = t.await.unwrap();
        assert_eq!(stored.channel(), "lab");
        assert_eq!(stored.control_id(), Some("X"));
        seqs.insert(stored.seq());
    }
    assert_eq!(seqs.len(), 100);
    assert_eq!(store.find_by_control_id("X").unwrap().len(), 100);
}

#[test]
fn sequence_ids_increase_and_are_never_reused_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<u64> = {
        let store = SledStore::open(dir.path()).unwrap();
        (0..5).map(|n| store_one(&store, "adt", n)).collect()
    };
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    let store = SledStore::open(dir.path()).unwrap();
    let next = store_one(&store, "adt", 9);
    assert!(
        next > *first.last().unwrap(),
        "{next} reused after {first:?}"
    );
}

#[test]
fn complete_moves_a_message_from_inbox_to_every_outbox_in_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let seq = store_one(&store, "adt", 1);
    let lease = lease_one(&store, "adt");
    store
        .complete(
            lease,
            routed(vec![output("ris", "to-ris"), output("fhir", "{}")]),
        )
        .unwrap();

    assert_eq!(store.inbox_stats("adt").unwrap().depth, 0);
    assert!(store.lease_inbox("adt", 10).unwrap().is_empty());
    for (dest, body) in [("ris", "to-ris"), ("fhir", "{}")] {
        let stats = store.outbox_stats("adt", dest).unwrap();
        assert_eq!((stats.depth, stats.oldest_at), (1, Some(T0 + 1)));
        assert_eq!(
            store.output("adt", seq, dest).unwrap().unwrap(),
            body.as_bytes()
        );
    }
    let record = store.record("adt", seq).unwrap().unwrap();
    assert_eq!(record.status, Status::Queued);
    assert_eq!(record.destinations.len(), 2);
}

#[test]
fn a_round_of_messages_completes_and_keeps_arrival_order_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let seqs: Vec<u64> = {
        let store = SledStore::open(dir.path()).unwrap();
        let seqs: Vec<u64> = (0..5).map(|n| store_one(&store, "adt", n)).collect();
        let batch: Vec<(InboxLease, Processed)> = store
            .lease_inbox("adt", 10)
            .unwrap()
            .into_iter()
            .map(|lease| {
                let body = format!("out-{}", lease.seq());
                (lease, routed(vec![output("ris", &body)]))
            })
            .collect();
        assert_eq!(batch.len(), 5);
        for result in store.complete_all(&batch) {
            result.unwrap();
        }
        drop(batch);
        store.flush().unwrap();
        seqs
    };
    // After a reopen: nothing left in the inbox, every output queued, served in arrival order.
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.lease_inbox("adt", 10).unwrap().is_empty());
    assert_eq!(store.outbox_stats("adt", "ris").unwrap().depth, 5);
    for seq in seqs {
        let lease = ready(
            store
                .poll_outbox("adt", "ris", OutboxOrder::Ordered, T0 + 2)
                .unwrap(),
        );
        assert_eq!(lease.seq(), seq);
        assert_eq!(lease.payload(), format!("out-{seq}").as_bytes());
        store
            .settle(lease, T0 + 3, Settlement::Sent { response: None })
            .unwrap();
        assert_eq!(
            store.record("adt", seq).unwrap().unwrap().status,
            Status::Sent
        );
    }
}

#[test]
fn filtered_and_errored_messages_finish_without_queueing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let filtered = store_one(&store, "adt", 1);
    let errored = store_one(&store, "adt", 2);
    let none_accepted = store_one(&store, "adt", 3);
    let finish = |disposition| Processed {
        at: T0 + 5,
        stages: vec![],
        disposition,
    };
    let mut leases = store.lease_inbox("adt", 3).unwrap().into_iter();
    let reason = "only A01".to_string();
    let error = "transform.rhai line 12: unknown path PID-99".to_string();
    store
        .complete(
            leases.next().unwrap(),
            finish(Disposition::Filtered {
                reason: reason.clone(),
            }),
        )
        .unwrap();
    store
        .complete(
            leases.next().unwrap(),
            finish(Disposition::Errored {
                error: error.clone(),
            }),
        )
        .unwrap();
    store
        .complete(leases.next().unwrap(), finish(Disposition::Routed(vec![])))
        .unwrap();

    let check = |seq, status, detail: Option<&str>| {
        let record = store.record("adt", seq).unwrap().unwrap();
        assert_eq!(record.status, status);
        let last = record.history.last().unwrap();
        assert_eq!(last.step, Step::Finished { status });
        if let Some(d) = detail {
            assert_eq!(last.detail.as_deref(), Some(d));
        }
    };
    check(filtered, Status::Filtered, Some(&reason));
    check(errored, Status::Errored, Some(&error));
    check(none_accepted, Status::Filtered, None);
    assert_eq!(store.inbox_stats("adt").unwrap().depth, 0);
    let errors = store
        .list(
            "adt",
            &ListFilter {
                status: Some(Status::Errored),
                ..ListFilter::default()
            },
        )
        .unwrap();
    assert_eq!(
        errors.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![errored]
    );
}

#[test]
fn a_dropped_inbox_lease_returns_the_message_and_a_held_one_is_not_handed_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let a = store_one(&store, "adt", 1);
    let b = store_one(&store, "adt", 2);
    let held = lease_one(&store, "adt");
    assert_eq!(held.seq(), a);
    let second = lease_one(&store, "adt");
    assert_eq!(second.seq(), b);
    assert!(store.lease_inbox("adt", 5).unwrap().is_empty());
    drop(held);
    assert_eq!(lease_one(&store, "adt").seq(), a);
}

#[test]
fn ordered_outbox_serves_only_the_head_and_waits_for_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let seqs = queue_messages(&store, 3, &["ris"]);
    let poll = |now| {
        store
            .poll_outbox("adt", "ris", OutboxOrder::Ordered, now)
            .unwrap()
    };

    let head = ready(poll(T0));
    assert_eq!(
        (head.seq(), head.attempt(), head.payload()),
        (seqs[0], 1, &b"ris-0"[..])
    );
    assert!(matches!(poll(T0), OutboxPoll::Idle), "head is in flight");
    let retry_at = T0 + 30_000;
    store
        .settle(
            head,
            T0 + 10,
            Settlement::Retry {
                error: "connection refused".into(),
                next_attempt_at: retry_at,
            },
        )
        .unwrap();
    assert!(matches!(poll(T0 + 20), OutboxPoll::NotBefore(t) if t == retry_at));

    let again = ready(poll(retry_at));
    assert_eq!((again.seq(), again.attempt()), (seqs[0], 2));
    store
        .settle(
            again,
            retry_at,
            Settlement::Sent {
                response: Some("MSA|AA|C0".into()),
            },
        )
        .unwrap();
    assert_eq!(ready(poll(retry_at)).seq(), seqs[1]);
}

#[test]
fn unordered_outbox_skips_entries_in_flight_or_waiting_for_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let seqs = queue_messages(&store, 3, &["http"]);
    let poll = |now| {
        store
            .poll_outbox("adt", "http", OutboxOrder::Unordered, now)
            .unwrap()
    };

    let first = ready(poll(T0));
    let second = ready(poll(T0));
    assert_eq!((first.seq(), second.seq()), (seqs[0], seqs[1]));
    store
        .settle(
            first,
            T0,
            Settlement::Retry {
                error: "503".into(),
                next_attempt_at: T0 + 500,
            },
        )
        .unwrap();
    let third = ready(poll(T0));
    assert_eq!(third.seq(), seqs[2]);
    store
        .settle(third, T0, Settlement::Sent { response: None })
        .unwrap();
    // seqs[0] waits for its retry and seqs[1] is in flight: nothing to do until the retry is due.
    assert!(matches!(poll(T0), OutboxPoll::NotBefore(t) if t == T0 + 500));
    assert_eq!(ready(poll(T0 + 500)).seq(), seqs[0]);
    assert_eq!(store.outbox_stats("adt", "http").unwrap().depth, 2);
}

#[test]
fn retry_schedule_and_unfinished_work_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let retry_at = T0 + 60_000;
    let (queued, waiting) = {
        let store = SledStore::open(dir.path()).unwrap();
        let queued = queue_messages(&store, 2, &["ris"]);
        let head = ready(
            store
                .poll_outbox("adt", "ris", OutboxOrder::Ordered, T0)
                .unwrap(),
        );
        store
            .settle(
                head,
                T0 + 1,
                Settlement::Retry {
                    error: "timeout".into(),
                    next_attempt_at: retry_at,
                },
            )
            .unwrap();
        let waiting = store_one(&store, "adt", 7);
        // A lease held at shutdown is not persisted: the entry must come back after reopen.
        let _in_flight = lease_one(&store, "adt");
        (queued, waiting)
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(lease_one(&store, "adt").seq(), waiting);
    assert_eq!(store.outbox_stats("adt", "ris").unwrap().depth, 2);
    assert!(matches!(
        store.poll_outbox("adt", "ris", OutboxOrder::Ordered, T0 + 2).unwrap(),
        OutboxPoll::NotBefore(t) if t == retry_at
    ));
    let head = ready(
        store
            .poll_outbox("adt", "ris", OutboxOrder::Ordered, retry_at)
            .unwrap(),
    );
    assert_eq!((head.seq(), head.attempt()), (queued[0], 2));
    let record = store.record("adt", queued[0]).unwrap().unwrap();
    let dest = &record.destinations["ris"];
    assert_eq!((dest.attempts, dest.next_attempt_at), (1, Some(retry_at)));
    assert_eq!(dest.last_error.as_deref(), Some("timeout"));
}

#[test]
fn record_keeps_the_whole_story_of_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let seq = store_one(&store, "adt", 1);
    let lease = lease_one(&store, "adt");
    let processed = Processed {
        at: T0 + 2,
        stages: vec![
            StageOutcome {
                at: T0 + 1,
                stage: "filter".into(),
                status: Status::Received,
                detail: None,
            },
            StageOutcome {
                at: T0 + 2,
                stage: "transform:ris".into(),
                status: Status::Transformed,
                detail: None,
            },
            StageOutcome {
                at: T0 + 2,
                stage: "transform:fhir".into(),
                status: Status::Errored,
                detail: Some("fhir.rhai line 3: PID-5 is empty".into()),
            },
        ],
        disposition: Disposition::Routed(vec![output("ris", "out")]),
    };
    store.complete(lease, processed).unwrap();
    let attempt = |now| {
        ready(
            store
                .poll_outbox("adt", "ris", OutboxOrder::Ordered, now)
                .unwrap(),
        )
    };
    store
        .settle(
            attempt(T0 + 3),
            T0 + 3,
            Settlement::Retry {
                error: "connection refused".into(),
                next_attempt_at: T0 + 10,
            },
        )
        .unwrap();
    store
        .settle(
            attempt(T0 + 10),
            T0 + 11,
            Settlement::Sent {
                response: Some("MSA|AA|C1".into()),
            },
        )
        .unwrap();

    let record = store.record("adt", seq).unwrap().unwrap();
    assert_eq!(record.status, Status::Sent);
    let ris = &record.destinations["ris"];
    assert_eq!(
        (ris.status, ris.attempts, ris.response.as_deref()),
        (Status::Sent, 2, Some("MSA|AA|C1"))
    );
    let story: Vec<(u64, Step, Option<&str>)> = record
        .history
        .iter()
        .map(|e| (e.at, e.step.clone(), e.detail.as_deref()))
        .collect();
    let stage = |stage: &str, status| Step::Stage {
        stage: stage.into(),
        status,
    };
    let attempt_step = |number, outcome| Step::Attempt {
        destination: "ris".into(),
        number,
        outcome,
    };
    assert_eq!(
        story,
        vec![
            (T0, Step::Received, None),
            (T0 + 1, stage("filter", Status::Received), None),
            (T0 + 2, stage("transform:ris", Status::Transformed), None),
            (
                T0 + 2,
                stage("transform:fhir", Status::Errored),
                Some("fhir.rhai line 3: PID-5 is empty")
            ),
            (
                T0 + 2,
                Step::Queued {
                    destination: "ris".into()
                },
                None
            ),
            (
                T0 + 3,
                attempt_step(
                    1,
                    AttemptOutcome::Retry {
                        next_attempt_at: T0 + 10
                    }
                ),
                Some("connection refused")
            ),
            (
                T0 + 11,
                attempt_step(2, AttemptOutcome::Sent),
                Some("MSA|AA|C1")
            ),
        ]
    );
    assert_eq!(store.find_by_control_id("C1").unwrap(), vec![record]);
    assert_eq!(store.outbox_stats("adt", "ris").unwrap().depth, 0);
}

#[test]
fn a_failed_delivery_leaves_the_queue_but_the_record_and_output_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let seqs = queue_messages(&store, 1, &["ris", "fhir"]);
    let lease = ready(
        store
            .poll_outbox("adt", "ris", OutboxOrder::Ordered, T0)
            .unwrap(),
    );
    store
        .settle(
            lease,
            T0 + 9,
            Settlement::Failed {
                error: "AR: unknown patient".into(),
            },
        )
        .unwrap();
    assert!(matches!(
        store
            .poll_outbox("adt", "ris", OutboxOrder::Ordered, T0)
            .unwrap(),
        OutboxPoll::Idle
    ));
    let record = store.record("adt", seqs[0]).unwrap().unwrap();
    assert_eq!(
        record.status,
        Status::Errored,
        "a failed copy must not be hidden by a queued one"
    );
    assert_eq!(record.destinations["ris"].status, Status::Errored);
    assert_eq!(record.destinations["fhir"].status, Status::Queued);
    assert_eq!(
        store.output("adt", seqs[0], "ris").unwrap().unwrap(),
        b"ris-0"
    );
}

#[test]
fn list_filters_by_time_and_limit_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let seqs: Vec<u64> = (0..5)
        .map(|n| {
            let meta = ReceiveMeta {
                received_at: T0 + n as u64 * 1000,
                ..meta("L")
            };
            store
                .receive("adt", &message(n), meta)
                .unwrap()
                .wait()
                .unwrap()
                .seq()
        })
        .collect();
    store_one(&store, "other", 9);
    let list = |since, limit| {
        store
            .list(
                "adt",
                &ListFilter {
                    status: None,
                    since,
                    limit,
                },
            )
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(None, 100),
        seqs.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(list(Some(T0 + 3000), 100), vec![seqs[4], seqs[3]]);
    assert_eq!(list(None, 2), vec![seqs[4], seqs[3]]);
}

#[test]
fn queue_stats_are_recounted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        queue_messages(&store, 3, &["ris"]);
        store_one(&store, "adt", 8);
    }
    let store = SledStore::open(dir.path()).unwrap();
    let inbox = store.inbox_stats("adt").unwrap();
    assert_eq!((inbox.depth, inbox.oldest_at), (1, Some(T0)));
    assert_eq!(store.outbox_stats("adt", "ris").unwrap().depth, 3);
    assert_eq!(
        store.outbox_stats("adt", "nowhere").unwrap(),
        Default::default()
    );
}

#[test]
fn temporary_store_works_like_the_disk_one() {
    let store = SledStore::temporary().unwrap();
    let seq = store_one(&store, "adt", 1);
    assert_eq!(store.raw("adt", seq).unwrap().unwrap(), message(1));
}

#[test]
fn a_message_is_announced_before_a_worker_can_lease_it() {
    let store = SledStore::temporary().unwrap();
    let mut announced = Vec::new();
    let pending = store
        .receive_announced("adt", &message(1), meta("C1"), &mut |seq| {
            // Whoever waits for this message's verdict registers here; no worker may have it yet.
            assert!(store.lease_inbox("adt", 10).unwrap().is_empty());
            announced.push(seq);
        })
        .unwrap();
    let stored = pending.wait().unwrap();
    assert_eq!(announced, [stored.seq()]);
    assert_eq!(lease_one(&store, "adt").seq(), stored.seq());
}

#[test]
fn a_long_outage_keeps_the_first_and_latest_attempts_and_the_exact_count() {
    let store = SledStore::temporary().unwrap();
    let seq = queue_messages(&store, 1, &["ris", "lab"])[0];
    let attempt = |destination: &str, n: u64, settlement: Settlement| {
        let lease = ready(
            store
                .poll_outbox("adt", destination, OutboxOrder::Ordered, T0 + 10 * n)
                .unwrap(),
        );
        store.settle(lease, T0 + 10 * n, settlement).unwrap();
    };
    let failed = |n: u64| Settlement::Retry {
        error: format!("connection refused ({n})"),
        next_attempt_at: T0 + 10 * n + 1,
    };
    attempt("lab", 0, failed(0));
    for n in 1..=40 {
        attempt("ris", n, failed(n));
    }
    let size_after_40 = store.record("adt", seq).unwrap().unwrap().history.len();
    for n in 41..=99 {
        attempt("ris", n, failed(n));
    }
    attempt("ris", 100, Settlement::Sent { response: None });

    let record = store.record("adt", seq).unwrap().unwrap();
    let numbers = |destination: &str| -> Vec<u32> {
        record
            .history
            .iter()
            .filter_map(|e| match &e.step {
                Step::Attempt {
                    destination: d,
                    number,
                    ..
                } if d == destination => Some(*number),
                _ => None,
            })
            .collect()
    };
    assert_eq!(numbers("ris"), [1, 2, 3, 4, 5, 96, 97, 98, 99, 100]);
    assert_eq!(
        numbers("lab"),
        [1],
        "another destination's attempts are its own"
    );
    assert_eq!(record.destinations["ris"].attempts, 100);
    assert_eq!(record.destinations["ris"].status, Status::Sent);
    assert_eq!(
        record.history.len(),
        size_after_40,
        "the record stops growing however long the outage"
    );
    let last_failure = record
        .history
        .iter()
        .rev()
        .find(|e| matches!(e.step, Step::Attempt { number: 99, .. }))
        .unwrap();
    assert_eq!(
        last_failure.detail.as_deref(),
        Some("connection refused (99)")
    );
}
