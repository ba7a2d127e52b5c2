//! The sled implementation of [`Store`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};

mod maintenance;

use crate::commit::{Committer, GATHER_WINDOW};
use crate::crypto::{record_text, Cipher, Keyring};
use crate::error::{Result, StoreError};
use crate::keys;
use crate::lease::LeaseTable;
use crate::store::{Settlement, Store};
use crate::types::{
    AttemptOutcome, DestinationRecord, Disposition, Event, InboxLease, ListFilter, MessageRecord,
    OutboxLease, OutboxOrder, OutboxPoll, Output, Pending, Processed, PruneBatch, PruneRule,
    QueueStats, ReceiveMeta, Status, Step, Stored, UnixMillis,
};

/// One outbox entry; the payload lives in `bodies` so it is stored once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxEntry {
    content_type: String,
    control_id: Option<String>,
    queued_at: UnixMillis,
    attempts: u32,
    not_before: Option<UnixMillis>,
}

/// One outbox write of `complete`, prepared outside the transaction.
/// Everything one inbox message's completion writes, encoded ahead of the transaction.
struct Completion<'a> {
    lease: &'a InboxLease,
    message_key: Vec<u8>,
    record: Vec<u8>,
    raw_key: Vec<u8>,
    raw: std::borrow::Cow<'a, [u8]>,
    index_key: Option<Vec<u8>>,
    queued: Vec<Queued<'a>>,
}

struct Queued<'a> {
    prefix: Vec<u8>,
    outbox_key: Vec<u8>,
    entry: Vec<u8>,
    output_key: Vec<u8>,
    payload: std::borrow::Cow<'a, [u8]>,
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(StoreError::corrupt(what))
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(StoreError::corrupt(what))
}

/// Inbox value: the `ReceiveMeta` JSON with a u32 big-endian length in front, then the raw message. One
/// insert per received message keeps the ACK path to a single sled write; the record, body and control id
/// index are written when the message is processed.
fn encode_inbox(meta: &ReceiveMeta, raw: &[u8]) -> Result<Vec<u8>> {
    let meta = encode("inbox entry", meta)?;
    let len = u32::try_from(meta.len()).map_err(|_| StoreError::NameTooLong {
        what: "message metadata",
        len: meta.len(),
    })?;
    let mut value = Vec::with_capacity(4 + meta.len() + raw.len());
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(&meta);
    value.extend_from_slice(raw);
    Ok(value)
}

fn decode_inbox(value: &[u8]) -> Result<(ReceiveMeta, &[u8])> {
    let corrupt = || StoreError::Corrupt {
        what: "inbox entry",
        detail: "metadata length runs past the end".into(),
    };
    let (len, rest) = value.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| corrupt())?;
    if rest.len() < len {
        return Err(corrupt());
    }
    let (meta, raw) = rest.split_at(len);
    Ok((decode("inbox entry", meta)?, raw))
}

/// The record of a message still in the inbox (nothing has happened to it yet but its arrival).
fn inbox_record(key: &[u8], value: &[u8]) -> Result<MessageRecord> {
    let (channel, rest) = keys::split_name(key)?;
    let (_, seq) = keys::split_seq(rest)?;
    let (meta, _) = decode_inbox(value)?;
    Ok(MessageRecord::received(&channel, seq, meta))
}

/// Up to `filter.limit` records matching `filter` from `entries` (newest first), stopping at `since`.
fn newest_matching(
    entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    to_record: impl Fn(&[u8], &[u8]) -> Result<MessageRecord>,
    filter: &ListFilter,
) -> Result<Vec<MessageRecord>> {
    let mut found = Vec::new();
    for item in entries {
        if found.len() >= filter.limit {
            break;
        }
        let (key, value) = item.map_err(StoreError::backend("listing records"))?;
        let record = to_record(&key, &value)?;
        if filter
            .since
            .is_some_and(|since| record.meta.received_at < since)
        {
            break;
        }
        if !filter.status.is_some_and(|s| s != record.status) {
            found.push(record);
        }
    }
    Ok(found)
}

fn tx_error(op: &'static str) -> impl FnOnce(TransactionError<StoreError>) -> StoreError {
    move |e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::backend(op)(e),
    }
}

/// Turns a store error inside a transaction into an abort carrying it.
fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn missing_record(message_key: &[u8]) -> StoreError {
    let detail = match keys::split_seq(message_key).and_then(|(ch, seq)| {
        keys::split_name(ch).map(|(channel, _)| format!("channel {channel:?} seq {seq}"))
    }) {
        Ok(d) => d,
        Err(e) => e.to_string(),
    };
    StoreError::Corrupt {
        what: "message record",
        detail: format!("missing for {detail}"),
    }
}

/// In-memory queue depths keyed by queue prefix, counted once on open and kept up to date after each
/// committed transaction, so metrics never scan a deep queue.
#[derive(Debug, Default)]
struct Depths(Mutex<HashMap<Vec<u8>, u64>>);

impl Depths {
    fn counted(tree: &sled::Tree) -> Result<Self> {
        let mut map: HashMap<Vec<u8>, u64> = HashMap::new();
        for item in tree.iter().keys() {
            let key = item.map_err(StoreError::backend("counting queue entries"))?;
            let (prefix, _) = keys::split_seq(&key)?;
            *map.entry(prefix.to_vec()).or_default() += 1;
        }
        Ok(Self(Mutex::new(map)))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, prefix: &[u8]) {
        *self.lock().entry(prefix.to_vec()).or_default() += 1;
    }

    fn remove(&self, prefix: &[u8]) {
        if let Some(n) = self.lock().get_mut(prefix) {
            *n = n.saturating_sub(1);
        }
    }

    fn get(&self, prefix: &[u8]) -> u64 {
        self.lock().get(prefix).copied().unwrap_or(0)
    }

    /// Every non-empty queue whose prefix starts with `prefix`, with its depth.
    fn under(&self, prefix: &[u8]) -> Vec<(Vec<u8>, u64)> {
        self.lock()
            .iter()
            .filter(|(queue, depth)| **depth > 0 && queue.starts_with(prefix))
            .map(|(queue, depth)| (queue.clone(), *depth))
            .collect()
    }
}

/// [`Store`] on sled. Dropping it answers every outstanding durability waiter and flushes.
pub struct SledStore {
    // Declared first so it is dropped first: the flusher finishes while the trees are still open.
    committer: Committer,
    db: sled::Db,
    records: sled::Tree,
    bodies: sled::Tree,
    inbox: sled::Tree,
    outbox: sled::Tree,
    control_ids: sled::Tree,
    /// Per-channel state kept across restarts (paused channels), keyed by channel name.
    channel_state: sled::Tree,
    inbox_leases: Arc<LeaseTable>,
    outbox_leases: Arc<LeaseTable>,
    inbox_depths: Depths,
    outbox_depths: Depths,
    keyring: Keyring,
    /// Inbox entries already reported as unreadable, so each is logged once per process.
    unreadable: Mutex<std::collections::HashSet<Vec<u8>>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, recovering everything that was flushed before.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref();
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
        Self::with_db(db)
    }

    /// A store in a temporary file that is deleted on drop (for tests of other crates).
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(StoreError::backend("opening a temporary store"))?;
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> Result<Self> {
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(StoreError::backend("opening a tree"))
        };
        let inbox = tree("inbox")?;
        let outbox = tree("outbox")?;
        let flush_db = db.clone();
        let committer = Committer::start(GATHER_WINDOW, move || {
            flush_db
                .flush()
                .map(|_| ())
                .map_err(|e| StoreError::Flush { source: e.into() })
        })
        .map_err(|e| StoreError::Backend {
            op: "starting the flusher thread",
            source: sled::Error::Io(e).into(),
        })?;
        Ok(Self {
            committer,
            records: tree("records")?,
            bodies: tree("bodies")?,
            control_ids: tree("control_ids")?,
            channel_state: tree("channel_state")?,
            inbox_depths: Depths::counted(&inbox)?,
            outbox_depths: Depths::counted(&outbox)?,
            inbox,
            outbox,
            db,
            inbox_leases: Arc::default(),
            outbox_leases: Arc::default(),
            keyring: Keyring::default(),
            unreadable: Mutex::default(),
        })
    }

    fn read_record(&self, message_key: &[u8]) -> Result<Option<MessageRecord>> {
        self.records
            .get(message_key)
            .map_err(StoreError::backend("reading a record"))?
            .map(|v| decode("message record", &v))
            .transpose()
    }

    fn read_body(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .bodies
            .get(key)
            .map_err(StoreError::backend("reading a message body"))?
            .map(|v| v.to_vec()))
    }

    /// The encoded writes that complete one inbox message; the record is built from the lease because it
    /// does not exist until this commit.
    fn prepare_completion<'a>(
        &self,
        lease: &'a InboxLease,
        processed: &'a Processed,
    ) -> Result<Completion<'a>> {
        let message_key = keys::message(&lease.channel, lease.seq)?;
        let mut by_destination: BTreeMap<&str, &Output> = BTreeMap::new();
        // A reprocess limited to one destination queues only that destination's output.
        let only = lease
            .meta
            .reprocess_of
            .as_ref()
            .and_then(|r| r.destination.as_deref());
        if let Disposition::Routed(outputs) = &processed.disposition {
            for out in outputs {
                if only.is_none_or(|d| d == out.destination) {
                    by_destination.insert(&out.destination, out);
                }
            }
        }
        let outputs: Vec<&Output> = by_destination.into_values().collect();
        let mut record = MessageRecord::received(&lease.channel, lease.seq, lease.meta.clone());
        apply_processed(&mut record, processed, &outputs);
        let key = self.keyring.writer(&lease.channel);
        Keyring::seal_record(key.as_deref(), &mut record)?;
        let record = encode("message record", &record)?;
        let raw = Keyring::seal(key.as_deref(), &lease.raw)?;
        let raw_key = keys::raw(&message_key);
        let index_key = match &lease.meta.control_id {
            Some(cid) => Some(keys::control_id_entry(
                &keys::control_id(cid)?,
                &message_key,
            )),
            None => None,
        };
        let mut queued = Vec::with_capacity(outputs.len());
        for out in &outputs {
            let prefix = keys::outbox(&lease.channel, &out.destination)?;
            let entry = OutboxEntry {
                content_type: out.content_type.clone(),
                control_id: lease.meta.control_id.clone(),
                queued_at: processed.at,
                attempts: 0,
                not_before: None,
            };
            queued.push(Queued {
                outbox_key: keys::outbox_entry(&prefix, lease.seq),
                prefix,
                entry: encode("outbox entry", &entry)?,
                output_key: keys::output(&message_key, &out.destination)?,
                payload: Keyring::seal(key.as_deref(), &out.payload)?,
            });
        }
        Ok(Completion {
            lease,
            message_key,
            record,
            raw_key,
            raw,
            index_key,
            queued,
        })
    }

    /// Writes one completion without a sled transaction (in sled 0.34 each takes a store-wide lock and
    /// writes the log buffer out twice, which cost more than the rest of a message's handling). Order
    /// keeps it crash-safe: bodies, record, index and queue entries are written first, all idempotent, and
    /// removing the inbox entry comes last, so a crash before it runs the message again from its raw bytes.
    fn complete_one(&self, c: &Completion<'_>) -> Result<()> {
        let lease = c.lease;
        // The lease makes this worker the only one completing the message; the entry must still be there.
        if !self
            .inbox
            .contains_key(c.message_key.as_slice())
            .map_err(StoreError::backend("reading an inbox entry"))?
        {
            return Err(StoreError::NotQueued {
                channel: lease.channel.clone(),
                seq: lease.seq,
                queue: "inbox".into(),
            });
        }
        let write = |tree: &sled::Tree, key: &[u8], value: &[u8], op| {
            tree.insert(key, value)
                .map(drop)
                .map_err(StoreError::backend(op))
        };
        write(&self.bodies, &c.raw_key, &c.raw, "storing a raw message")?;
        for q in &c.queued {
            write(&self.bodies, &q.output_key, &q.payload, "storing an output")?;
        }
        write(&self.records, &c.message_key, &c.record, "storing a record")?;
        if let Some(k) = &c.index_key {
            write(&self.control_ids, k, &[], "indexing a control id")?;
        }
        for q in &c.queued {
            let previous = self
                .outbox
                .insert(q.outbox_key.as_slice(), q.entry.as_slice())
                .map_err(StoreError::backend("queueing an output"))?;
            // A rerun after a failed completion finds its entry already queued: count it once.
            if previous.is_none() {
                self.outbox_depths.add(&q.prefix);
            }
        }
        self.inbox
            .remove(c.message_key.as_slice())
            .map_err(StoreError::backend("removing a processed inbox entry"))?;
        self.inbox_depths.remove(&keys::channel(&lease.channel)?);
        tracing::debug!(
            channel = lease.channel,
            seq = lease.seq,
            control_id = lease.meta.control_id.as_deref(),
            destinations = c.queued.len(),
            "message processed"
        );
        Ok(())
    }

    fn lease_outbox_entry(
        &self,
        channel: &str,
        destination: &str,
        key: &[u8],
        entry: OutboxEntry,
    ) -> Result<Option<OutboxLease>> {
        let Some(guard) = self.outbox_leases.try_take(key) else {
            return Ok(None);
        };
        let (_, seq) = keys::split_seq(guard.key())?;
        let output_key = keys::output(&keys::message(channel, seq)?, destination)?;
        let payload = self
            .read_body(&output_key)?
            .map(|sealed| self.keyring.open(&sealed).map(|p| p.into_owned()))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt {
                what: "outbox payload",
                detail: format!(
                    "missing for channel {channel:?} destination {destination:?} seq {seq}"
                ),
            })?;
        Ok(Some(OutboxLease {
            channel: channel.to_owned(),
            destination: destination.to_owned(),
            seq,
            attempt: entry.attempts.saturating_add(1),
            control_id: entry.control_id,
            content_type: entry.content_type,
            payload,
            _guard: guard,
        }))
    }
}

/// Applies a finished pipeline run to the record.
fn apply_processed(record: &mut MessageRecord, processed: &Processed, outputs: &[&Output]) {
    for s in &processed.stages {
        record.history.push(Event {
            at: s.at,
            step: Step::Stage {
                stage: s.stage.clone(),
                status: s.status,
            },
            detail: s.detail.as_deref().map(record_text),
        });
    }
    let finished = |status, detail: &str| Event {
        at: processed.at,
        step: Step::Finished { status },
        detail: Some(record_text(detail)),
    };
    match &processed.disposition {
        Disposition::Filtered { reason } => {
            record.status = Status::Filtered;
            record.history.push(finished(Status::Filtered, reason));
        }
        Disposition::Errored { error } => {
            record.status = Status::Errored;
            record.history.push(finished(Status::Errored, error));
        }
        Disposition::Routed(_) if outputs.is_empty() => {
            record.status = Status::Filtered;
            record.history.push(finished(
                Status::Filtered,
                "no destination accepted the message",
            ));
        }
        Disposition::Routed(_) => {
            for out in outputs {
                record.destinations.insert(
                    out.destination.clone(),
                    DestinationRecord {
                        status: Status::Queued,
                        content_type: out.content_type.clone(),
                        attempts: 0,
                        next_attempt_at: None,
                        last_error: None,
                        response: None,
                    },
                );
                record.history.push(Event {
                    at: processed.at,
                    step: Step::Queued {
                        destination: out.destination.clone(),
                    },
                    detail: None,
                });
            }
            record.settle_status();
        }
    }
}

/// Applies a delivery attempt to the record.
fn apply_settlement(
    record: &mut MessageRecord,
    destination: &str,
    attempt: u32,
    at: UnixMillis,
    settlement: &Settlement,
) -> Result<()> {
    let dest = record
        .destinations
        .get_mut(destination)
        .ok_or_else(|| StoreError::Corrupt {
            what: "message record",
            detail: format!("no destination {destination:?} on seq {}", record.seq),
        })?;
    dest.attempts = attempt;
    let (outcome, detail) = match settlement {
        Settlement::Sent { response } => {
            dest.status = Status::Sent;
            dest.next_attempt_at = None;
            let response = response.as_deref().map(record_text);
            dest.response.clone_from(&response);
            (AttemptOutcome::Sent, response)
        }
        Settlement::Retry {
            error,
            next_attempt_at,
        } => {
            dest.next_attempt_at = Some(*next_attempt_at);
            dest.last_error = Some(record_text(error));
            (
                AttemptOutcome::Retry {
                    next_attempt_at: *next_attempt_at,
                },
                dest.last_error.clone(),
            )
        }
        Settlement::Failed { error } => {
            dest.status = Status::Errored;
            dest.next_attempt_at = None;
            dest.last_error = Some(record_text(error));
            (AttemptOutcome::Failed, dest.last_error.clone())
        }
    };
    record.history.push(Event {
        at,
        step: Step::Attempt {
            destination: destination.to_owned(),
            number: attempt,
            outcome,
        },
        detail,
    });
    record.forget_middle_attempts(destination);
    record.settle_status();
    Ok(())
}

impl Store for SledStore {
    fn set_channel_cipher(&self, channel: &str, cipher: Option<Cipher>) {
        self.keyring.install(channel, cipher);
    }

    fn receive_announced(
        &self,
        channel: &str,
        raw: &[u8],
        meta: ReceiveMeta,
        announce: &mut dyn FnMut(u64),
    ) -> Result<Pending> {
        // sled persists its id generator ahead of use, so ids are never handed out twice, even after kill -9.
        let seq = self
            .db
            .generate_id()
            .map_err(StoreError::backend("allocating a sequence id"))?;
        announce(seq);
        let control_id = meta.control_id.clone();
        self.inbox
            .insert(
                keys::message(channel, seq)?,
                encode_inbox(
                    &meta,
                    &Keyring::seal(self.keyring.writer(channel).as_deref(), raw)?,
                )?,
            )
            .map_err(StoreError::backend("storing a received message"))?;
        self.inbox_depths.add(&keys::channel(channel)?);
        tracing::debug!(
            channel,
            seq,
            control_id = control_id.as_deref(),
            "message stored, awaiting flush"
        );
        Ok(Pending::new(
            Stored::new(channel, seq, control_id),
            self.committer.register(),
        ))
    }

    fn lease_inbox(&self, channel: &str, max: usize) -> Result<Vec<InboxLease>> {
        let mut leases = Vec::new();
        if max == 0 {
            return Ok(leases);
        }
        for item in self.inbox.scan_prefix(keys::channel(channel)?) {
            let (key, value) = item.map_err(StoreError::backend("scanning an inbox"))?;
            let Some(guard) = self.inbox_leases.try_take(&key) else {
                continue;
            };
            let (_, seq) = keys::split_seq(&key)?;
            let readable = decode_inbox(&value)
                .and_then(|(meta, raw)| Ok((meta, self.keyring.open(raw)?.into_owned())));
            // One entry that cannot be read (its key is no longer configured, or it is damaged) stays
            // where it is, said once, and does not hold up the messages behind it.
            let (meta, raw) = match readable {
                Ok(entry) => entry,
                Err(e) => {
                    if self
                        .unreadable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key.to_vec())
                    {
                        tracing::error!(channel, seq, error = %e, "inbox message cannot be read; it stays queued and the ones after it go on");
                    }
                    continue;
                }
            };
            leases.push(InboxLease {
                channel: channel.to_owned(),
                seq,
                meta,
                raw,
                _guard: guard,
            });
            if leases.len() == max {
                break;
            }
        }
        Ok(leases)
    }

    fn complete_all(&self, batch: &[(InboxLease, Processed)]) -> Vec<Result<()>> {
        batch
            .iter()
            .map(|(lease, processed)| {
                self.complete_one(&self.prepare_completion(lease, processed)?)
            })
            .collect()
    }

    fn poll_outbox(
        &self,
        channel: &str,
        destination: &str,
        order: OutboxOrder,
        now: UnixMillis,
    ) -> Result<OutboxPoll> {
        let mut earliest: Option<UnixMillis> = None;
        for item in self.outbox.scan_prefix(keys::outbox(channel, destination)?) {
            let (key, value) = item.map_err(StoreError::backend("scanning an outbox"))?;
            let leased = self.outbox_leases.is_leased(&key);
            let entry: OutboxEntry = decode("outbox entry", &value)?;
            let due = entry.not_before.filter(|t| *t > now);
            match (order, leased, due) {
                (OutboxOrder::Ordered, true, _) => return Ok(OutboxPoll::Idle),
                (OutboxOrder::Ordered, false, Some(t)) => return Ok(OutboxPoll::NotBefore(t)),
                (OutboxOrder::Unordered, true, _) => continue,
                (OutboxOrder::Unordered, false, Some(t)) => {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                    continue;
                }
                (_, false, None) => {}
            }
            match self.lease_outbox_entry(channel, destination, &key, entry)? {
                Some(lease) => return Ok(OutboxPoll::Ready(lease)),
                // Another worker leased it between the check and now.
                None if order == OutboxOrder::Ordered => return Ok(OutboxPoll::Idle),
                None => continue,
            }
        }
        Ok(earliest.map_or(OutboxPoll::Idle, OutboxPoll::NotBefore))
    }

    fn settle(&self, lease: OutboxLease, at: UnixMillis, settlement: Settlement) -> Result<()> {
        let message_key = keys::message(&lease.channel, lease.seq)?;
        let prefix = keys::outbox(&lease.channel, &lease.destination)?;
        let outbox_key = keys::outbox_entry(&prefix, lease.seq);
        let removes = !matches!(settlement, Settlement::Retry { .. });
        let key = self.keyring.writer(&lease.channel);
        // No sled transaction here: in sled 0.34 each one takes a store-wide write lock and writes the log
        // buffer out twice, which made settling cost more than receiving. The lease makes this worker the
        // only writer of the entry, and the record (shared with the message's other destinations) changes by
        // compare-and-swap. The attempt is recorded before the entry moves, so a crash in between leaves the
        // message queued and it is delivered again (at-least-once), never marked queued when it is not.
        let stored_entry = self
            .outbox
            .get(outbox_key.as_slice())
            .map_err(StoreError::backend("reading an outbox entry"))?
            .ok_or_else(|| StoreError::NotQueued {
                channel: lease.channel.clone(),
                seq: lease.seq,
                queue: format!("outbox {}", lease.destination),
            })?;
        let mut failure = None;
        self.records
            .fetch_and_update(message_key.as_slice(), |stored| {
                let stored = stored?;
                let updated =
                    decode::<MessageRecord>("message record", stored).and_then(|mut r| {
                        apply_settlement(
                            &mut r,
                            &lease.destination,
                            lease.attempt,
                            at,
                            &settlement,
                        )?;
                        Keyring::seal_record(key.as_deref(), &mut r)?;
                        encode("message record", &r)
                    });
                // The closure may run again after a conflict: only the last run's outcome counts.
                match updated {
                    Ok(bytes) => {
                        failure = None;
                        Some(bytes)
                    }
                    Err(e) => {
                        failure = Some(e);
                        Some(stored.to_vec())
                    }
                }
            })
            .map_err(StoreError::backend("recording a delivery attempt"))?
            .ok_or_else(|| missing_record(&message_key))?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Settlement::Retry {
            next_attempt_at, ..
        } = &settlement
        {
            let mut entry: OutboxEntry = decode("outbox entry", &stored_entry)?;
            entry.attempts = lease.attempt;
            entry.not_before = Some(*next_attempt_at);
            self.outbox
                .insert(outbox_key.as_slice(), encode("outbox entry", &entry)?)
                .map_err(StoreError::backend("rescheduling an outbox entry"))?;
        } else {
            self.outbox
                .remove(outbox_key.as_slice())
                .map_err(StoreError::backend("removing a delivered outbox entry"))?;
        }
        if removes {
            self.outbox_depths.remove(&prefix);
        }
        tracing::debug!(
            channel = lease.channel,
            destination = lease.destination,
            seq = lease.seq,
            control_id = lease.control_id.as_deref(),
            attempt = lease.attempt,
            outcome = match settlement {
                Settlement::Sent { .. } => "sent",
                Settlement::Retry { .. } => "retry",
                Settlement::Failed { .. } => "failed",
            },
            "delivery attempt recorded"
        );
        Ok(())
    }

    fn record(&self, channel: &str, seq: u64) -> Result<Option<MessageRecord>> {
        let key = keys::message(channel, seq)?;
        // Inbox first: `complete` moves a message atomically from there to `records`, so looking in this
        // order can see it twice at worst, never miss it.
        if let Some(value) = self
            .inbox
            .get(&key)
            .map_err(StoreError::backend("reading an inbox entry"))?
        {
            return inbox_record(&key, &value).map(Some);
        }
        self.read_record(&key)?
            .map(|r| self.keyring.open_record(r, false))
            .transpose()
    }

    fn find_by_control_id(&self, control_id: &str) -> Result<Vec<MessageRecord>> {
        let mut found = BTreeMap::new();
        // Unprocessed messages are not indexed yet; the inbox is short unless processing is stalled.
        for item in self.inbox.iter() {
            let (key, value) = item.map_err(StoreError::backend("scanning the inboxes"))?;
            let (meta, _) = decode_inbox(&value)?;
            if meta.control_id.as_deref() == Some(control_id) {
                let record = inbox_record(&key, &value)?;
                found.insert((record.channel.clone(), record.seq), record);
            }
        }
        let prefix = keys::control_id(control_id)?;
        for item in self.control_ids.scan_prefix(&prefix).keys() {
            let key = item.map_err(StoreError::backend("scanning the control id index"))?;
            let message_key = key.get(prefix.len()..).unwrap_or_default();
            // A long id is indexed by its start only (see `keys::control_id`): compare all of it.
            if let Some(record) = self
                .read_record(message_key)?
                .filter(|r| r.meta.control_id.as_deref() == Some(control_id))
            {
                found.insert((record.channel.clone(), record.seq), record);
            }
        }
        found
            .into_values()
            .map(|r| self.keyring.open_record(r, true))
            .collect()
    }

    fn list(&self, channel: &str, filter: &ListFilter) -> Result<Vec<MessageRecord>> {
        let prefix = keys::channel(channel)?;
        let mut found = Vec::new();
        if !filter.status.is_some_and(|s| s != Status::Received) {
            found = newest_matching(self.inbox.scan_prefix(&prefix).rev(), inbox_record, filter)?;
        }
        found.extend(newest_matching(
            self.records.scan_prefix(&prefix).rev(),
            |_, value| decode("message record", value),
            filter,
        )?);
        found.sort_by_key(|r| std::cmp::Reverse(r.seq));
        found.dedup_by_key(|r| r.seq);
        found.truncate(filter.limit);
        found
            .into_iter()
            .map(|r| self.keyring.open_record(r, true))
            .collect()
    }

    fn raw(&self, channel: &str, seq: u64) -> Result<Option<Vec<u8>>> {
        let key = keys::message(channel, seq)?;
        if let Some(value) = self
            .inbox
            .get(&key)
            .map_err(StoreError::backend("reading an inbox entry"))?
        {
            return Ok(Some(
                self.keyring.open(decode_inbox(&value)?.1)?.into_owned(),
            ));
        }
        self.read_body(&keys::raw(&key))?
            .map(|b| self.keyring.open(&b).map(|p| p.into_owned()))
            .transpose()
    }

    fn output(&self, channel: &str, seq: u64, destination: &str) -> Result<Option<Vec<u8>>> {
        self.read_body(&keys::output(&keys::message(channel, seq)?, destination)?)?
            .map(|b| self.keyring.open(&b).map(|p| p.into_owned()))
            .transpose()
    }

    fn inbox_stats(&self, channel: &str) -> Result<QueueStats> {
        let prefix = keys::channel(channel)?;
        let head = self
            .inbox
            .scan_prefix(&prefix)
            .values()
            .next()
            .transpose()
            .map_err(StoreError::backend("reading an inbox head"))?;
        let oldest_at = match head {
            Some(value) => Some(decode_inbox(&value)?.0.received_at),
            None => None,
        };
        Ok(QueueStats {
            depth: self.inbox_depths.get(&prefix),
            oldest_at,
        })
    }

    fn outbox_stats(&self, channel: &str, destination: &str) -> Result<QueueStats> {
        let prefix = keys::outbox(channel, destination)?;
        let oldest = self
            .outbox
            .scan_prefix(&prefix)
            .values()
            .next()
            .transpose()
            .map_err(StoreError::backend("reading an outbox head"))?;
        let oldest_at = match oldest {
            Some(v) => Some(decode::<OutboxEntry>("outbox entry", &v)?.queued_at),
            None => None,
        };
        Ok(QueueStats {
            depth: self.outbox_depths.get(&prefix),
            oldest_at,
        })
    }

    fn queued_destinations(&self, channel: &str) -> Result<Vec<(String, u64)>> {
        let prefix = keys::channel(channel)?;
        let mut queued = self
            .outbox_depths
            .under(&prefix)
            .into_iter()
            .map(|(queue, depth)| {
                let rest = queue.get(prefix.len()..).unwrap_or_default();
                Ok((keys::split_name(rest)?.0, depth))
            })
            .collect::<Result<Vec<_>>>()?;
        queued.sort();
        Ok(queued)
    }

    fn reprocess(
        &self,
        channel: &str,
        seq: u64,
        destination: Option<&str>,
        at: UnixMillis,
    ) -> Result<Pending> {
        self.reprocess_message(channel, seq, destination, at)
    }

    fn prune(
        &self,
        channel: &str,
        rule: &PruneRule,
        resume_after: Option<u64>,
        max: usize,
    ) -> Result<PruneBatch> {
        self.prune_batch(channel, rule, resume_after, max)
    }

    fn set_paused(&self, channel: &str, paused: bool) -> Result<()> {
        let key = keys::channel(channel)?;
        let written = if paused {
            self.channel_state
                .insert(key, b"paused".as_slice())
                .map(drop)
        } else {
            self.channel_state.remove(key).map(drop)
        };
        written.map_err(StoreError::backend("recording a channel's paused state"))?;
        self.flush()
    }

    fn is_paused(&self, channel: &str) -> Result<bool> {
        self.channel_state
            .contains_key(keys::channel(channel)?)
            .map_err(StoreError::backend("reading a channel's paused state"))
    }

    fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| StoreError::Flush { source: e.into() })
    }
}
