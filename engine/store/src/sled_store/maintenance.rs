//! Operations on finished messages: reprocessing a stored message and pruning old records. Kept apart
//! from the hot path (receive, complete, settle) because they run only on an operator's request or
//! from the retention task.

use sled::Transactional;

use super::{abort, decode, encode, encode_inbox, missing_record, tx_error, SledStore};
use crate::crypto::Keyring;
use crate::error::{Result, StoreError};
use crate::keys;
use crate::types::{
    Event, MessageRecord, Pending, PruneBatch, PruneRule, ReceiveMeta, ReprocessOf, Status, Step,
    Stored, UnixMillis,
};

/// Every key one processed message owns outside `records`, so pruning removes it without a scan.
struct Owned {
    message: Vec<u8>,
    bodies: Vec<Vec<u8>>,
    index: Option<Vec<u8>>,
}

fn owned_keys(message_key: Vec<u8>, record: &MessageRecord) -> Result<Owned> {
    let mut bodies = vec![keys::raw(&message_key)];
    for destination in record.destinations.keys() {
        bodies.push(keys::output(&message_key, destination)?);
    }
    let index = match &record.meta.control_id {
        Some(cid) => Some(keys::control_id_entry(
            &keys::control_id(cid)?,
            &message_key,
        )),
        None => None,
    };
    Ok(Owned {
        message: message_key,
        bodies,
        index,
    })
}

fn prunable(record: &MessageRecord, rule: &PruneRule) -> bool {
    record.is_finished() && !(rule.keep_errored && record.status == Status::Errored)
}

impl SledStore {
    /// See [`Store::reprocess`](crate::Store::reprocess).
    pub(super) fn reprocess_message(
        &self,
        channel: &str,
        seq: u64,
        destination: Option<&str>,
        at: UnixMillis,
    ) -> Result<Pending> {
        let original_key = keys::message(channel, seq)?;
        let not_found = || StoreError::NoSuchMessage {
            channel: channel.to_owned(),
            seq,
        };
        let Some(record) = self.read_record(&original_key)? else {
            if self
                .inbox
                .contains_key(&original_key)
                .map_err(StoreError::backend("reading an inbox entry"))?
            {
                return Err(StoreError::NotProcessed {
                    channel: channel.to_owned(),
                    seq,
                });
            }
            return Err(not_found());
        };
        let sealed = self
            .read_body(&keys::raw(&original_key))?
            .ok_or_else(|| missing_record(&original_key))?;
        // Opened and sealed again, so the copy is written the way the channel writes today.
        let key = self.keyring.writer(channel);
        let raw = Keyring::seal(key.as_deref(), &self.keyring.open(&sealed)?)?.into_owned();
        let copy_seq = self
            .db
            .generate_id()
            .map_err(StoreError::backend("allocating a sequence id"))?;
        let meta = ReceiveMeta {
            received_at: at,
            control_id: record.meta.control_id.clone(),
            message_type: record.meta.message_type.clone(),
            reprocess_of: Some(ReprocessOf {
                seq,
                destination: destination.map(str::to_owned),
            }),
        };
        let copy_key = keys::message(channel, copy_seq)?;
        let copy = encode_inbox(&meta, &raw)?;
        let link = Event {
            at,
            step: Step::Reprocessed { seq: copy_seq },
            detail: destination.map(|d| format!("only destination {d}")),
        };
        // The copy and the back link are written together: no copy without its link, and no link to a
        // copy that is not there.
        (&self.records, &self.inbox)
            .transaction(|(records, inbox)| {
                let stored = records
                    .get(original_key.as_slice())?
                    .ok_or_else(|| abort(not_found()))?;
                let mut original: MessageRecord =
                    decode("message record", &stored).map_err(abort)?;
                original.history.push(link.clone());
                Keyring::seal_record(key.as_deref(), &mut original).map_err(abort)?;
                records.insert(
                    original_key.as_slice(),
                    encode("message record", &original).map_err(abort)?,
                )?;
                inbox.insert(copy_key.as_slice(), copy.as_slice())?;
                Ok(())
            })
            .map_err(tx_error("reprocessing a message"))?;
        self.inbox_depths.add(&keys::channel(channel)?);
        tracing::info!(
            channel,
            seq,
            copy = copy_seq,
            control_id = meta.control_id.as_deref(),
            "message queued for reprocessing"
        );
        Ok(Pending::new(
            Stored::new(channel, copy_seq, meta.control_id),
            self.committer.register(),
        ))
    }

    /// See [`Store::prune`](crate::Store::prune).
    pub(super) fn prune_batch(
        &self,
        channel: &str,
        rule: &PruneRule,
        resume_after: Option<u64>,
        max: usize,
    ) -> Result<PruneBatch> {
        let prefix = keys::channel(channel)?;
        let start = match resume_after {
            Some(seq) => keys::message(channel, seq.saturating_add(1))?,
            None => prefix.clone(),
        };
        let mut batch = PruneBatch::default();
        let mut doomed = Vec::new();
        let mut looked = 0usize;
        for item in self.records.range(start..) {
            let (key, value) = item.map_err(StoreError::backend("scanning records to prune"))?;
            if !key.starts_with(&prefix) {
                break;
            }
            let record: MessageRecord = decode("message record", &value)?;
            // Sequence ids grow with arrival, so the first record young enough ends the pass.
            if record.meta.received_at >= rule.received_before {
                break;
            }
            if prunable(&record, rule) {
                doomed.push(owned_keys(key.to_vec(), &record)?);
            } else {
                batch.kept += 1;
            }
            looked += 1;
            if looked >= max {
                batch.resume_after = Some(record.seq);
                break;
            }
        }
        (&self.records, &self.bodies, &self.control_ids)
            .transaction(|(records, bodies, control_ids)| {
                let mut removed = 0;
                for owned in &doomed {
                    // Re-checked inside the transaction: a record that changed since the scan is left
                    // for the next pass.
                    let Some(current) = records.get(owned.message.as_slice())? else {
                        continue;
                    };
                    let record: MessageRecord =
                        decode("message record", &current).map_err(abort)?;
                    if !prunable(&record, rule) {
                        continue;
                    }
                    records.remove(owned.message.as_slice())?;
                    for body in &owned.bodies {
                        bodies.remove(body.as_slice())?;
                    }
                    if let Some(index) = &owned.index {
                        control_ids.remove(index.as_slice())?;
                    }
                    removed += 1;
                }
                Ok(removed)
            })
            .map(|removed| batch.removed = removed)
            .map_err(tx_error("pruning records"))?;
        Ok(batch)
    }
}
