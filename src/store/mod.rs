//! The durable store: a small typed facade over sled, the only module that names sled.
//!
//! Trees: `calls` (call id → [`CallRecord`]), its indexes `calls_by_seq` and `calls_by_end`
//! ([`index`], written in the record's transaction), `outbox` (webhook id → [`Delivery`], pending
//! only), `meta` (id sequences, layout version), `notifications` and `notifications_by_seq`
//! ([`notifications`]). Values are versioned ([`codec`]). sled's
//! background flusher is off: the data reaches the disk at durable points only (call accepted,
//! call started, call answered with its SIP dialog, call final with its outbox entry) plus a
//! periodic [`Store::flush_if_dirty`] for the rest, so an SD card sees three flushes per unanswered
//! call and four per answered one. Each flush is followed by the fsyncs sled leaves out
//! ([`durable`]), so a durable point also survives a power cut; durable points reached at the same
//! time share one flush ([`group_commit`]). A crash loses at most non-durable
//! steps (ringing, timeline events, a delivery's success, which is then sent again: webhooks are
//! at-least-once).

mod codec;
mod durable;
mod group_commit;
mod index;
mod notifications;
mod outbox_index;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub use codec::CodecError;
use durable::SyncState;

use crate::call::{CallRecord, CallRequest, CallStatus, TimelineEvent, Timestamp, WebhookState};
use crate::webhook::Delivery;

const SEQ_KEY: &[u8] = b"call_seq";
const PROBE_KEY: &[u8] = b"health_probe";
/// The layout version in `meta`: 1 (or absent) = calls without indexes, 2 = indexed.
const SCHEMA_KEY: &[u8] = b"schema";
const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored value {key} cannot be read: {source}")]
    Decode { key: String, source: CodecError },
    #[error("cannot encode a value: {0}")]
    Encode(CodecError),
    #[error("call_id '{0}' is already in use")]
    IdInUse(String),
    #[error("notification_id '{0}' is already in use")]
    NotificationIdInUse(String),
    #[error("call '{0}' not found")]
    NotFound(String),
    #[error("cannot make the store durable (fsync): {0}")]
    Sync(std::io::Error),
    #[error("the store has layout version {0}, this build knows up to {SCHEMA_VERSION}; was the data dir written by a newer release?")]
    NewerSchema(u32),
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(v).map_err(StoreError::Encode)
}

/// The value under `id` in `tree`, decoded; `None` when there is none.
fn read<T: serde::de::DeserializeOwned>(tree: &sled::Tree, id: &str) -> Result<Option<T>, StoreError> {
    match tree.get(id)? {
        Some(bytes) => dec(id.as_bytes(), &bytes).map(Some),
        None => Ok(None),
    }
}

fn dec<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

pub struct Store {
    db: sled::Db,
    calls: sled::Tree,
    /// Index: acceptance order (seq) → status and id ([`index`]).
    by_seq: sled::Tree,
    /// Index: end time and id of final records ([`index`]).
    by_end: sled::Tree,
    outbox: sled::Tree,
    /// Pending deliveries by due time ([`outbox_index`]).
    outbox_by_due: sled::Tree,
    meta: sled::Tree,
    /// Notification id → [`crate::notify::NotificationRecord`] ([`notifications`]).
    notifications: sled::Tree,
    /// Notification seq (8 bytes, big-endian) → id: `GET /notifications` newest first.
    notifications_by_seq: sled::Tree,
    /// fsyncs sled's files after each flush ([`durable`]).
    sync: SyncState,
    dirty: AtomicBool,
    flush_failed: AtomicBool,
    /// Successful flushes since open (each one is an fsync of sled's log: SD card wear).
    flushes: AtomicU64,
    /// Concurrent flushes share one ([`group_commit`]).
    gate: group_commit::FlushGate,
    /// Tests only: how many of the next flushes fail.
    #[cfg(test)]
    fail_flushes: std::sync::atomic::AtomicU32,
}

impl Store {
    /// Open (or create) the store in `data_dir/db`; index a store written before the indexes
    /// existed (once, then the schema version in `meta` says it is done).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("db");
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .open()?;
        let store = Self {
            calls: db.open_tree("calls")?,
            by_seq: db.open_tree(index::BY_SEQ)?,
            by_end: db.open_tree(index::BY_END)?,
            outbox: db.open_tree("outbox")?,
            outbox_by_due: db.open_tree(outbox_index::BY_DUE)?,
            meta: db.open_tree("meta")?,
            notifications: db.open_tree(notifications::TREE)?,
            notifications_by_seq: db.open_tree(notifications::BY_SEQ)?,
            db,
            sync: SyncState::new(path),
            dirty: AtomicBool::new(false),
            flush_failed: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            gate: group_commit::FlushGate::default(),
            #[cfg(test)]
            fail_flushes: std::sync::atomic::AtomicU32::new(0),
        };
        store.migrate()?;
        store.reindex_outbox()?;
        Ok(store)
    }

    /// Bring the store's layout to [`SCHEMA_VERSION`].
    fn migrate(&self) -> Result<(), StoreError> {
        let found = self
            .meta
            .get(SCHEMA_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map_or(1, u32::from_be_bytes);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema(found));
        }
        if found < 2 {
            let n = index::rebuild(&self.by_seq, &self.by_end, self.all_calls()?.into_iter())?;
            tracing::info!(records = n, "store indexed by acceptance order and end time");
        }
        if found < SCHEMA_VERSION {
            self.meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            self.flush()?;
        }
        Ok(())
    }

    /// Write everything to disk now: sled's flush, then the fsyncs it leaves out ([`durable`]).
    /// Callers that arrive while a flush runs share the next one ([`group_commit`]).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.gate.flush(|| match self.flush_and_sync() {
            Ok(()) => {
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.dirty.store(false, Ordering::Relaxed);
                self.flush_failed.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.flush_failed.store(true, Ordering::Relaxed);
                Err(e)
            }
        })
    }

    fn flush_and_sync(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .fail_flushes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Sync(std::io::Error::other("injected flush failure")));
        }
        self.db.flush()?;
        self.sync.sync().map_err(StoreError::Sync)?;
        Ok(())
    }

    /// Tests only: make the next `n` flushes fail.
    #[cfg(test)]
    pub(crate) fn fail_next_flushes(&self, n: u32) {
        self.fail_flushes.store(n, Ordering::Relaxed);
    }

    /// How many flushes succeeded since the store was opened (logged at shutdown; `.ci/figures`).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// How many fsync calls (files and directories) the store made since it was opened.
    pub fn fsync_count(&self) -> u64 {
        self.sync.fsync_count()
    }

    /// Flush only if a non-durable write happened since the last flush.
    pub fn flush_if_dirty(&self) -> Result<(), StoreError> {
        if self.dirty.load(Ordering::Relaxed) {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Whether writes succeed (for `GET /health`): the last flush worked and a probe write works.
    pub fn is_writable(&self) -> bool {
        !self.flush_failed.load(Ordering::Relaxed)
            && self
                .meta
                .insert(PROBE_KEY, &Timestamp::now().0.to_be_bytes())
                .is_ok()
    }

    /// Store a new queued call and flush. Every call takes the next number of a persistent counter
    /// (its `seq`, the FIFO order). With `requested_id` the id must be free; without, the id is
    /// `out-<unix seconds>-<seq>`, so generated ids stay unique across restarts.
    ///
    /// If the flush fails, the record is deleted again (and that deletion flushed, if the disk
    /// lets us) before the error is returned: the caller answers 503, so a restart must not find
    /// the call and dial it.
    pub fn insert_call(
        &self,
        requested_id: Option<&str>,
        request: CallRequest,
        now: Timestamp,
    ) -> Result<CallRecord, StoreError> {
        let record = (&self.calls, &self.meta, &self.by_seq, &self.by_end).transaction(
            |(calls, meta, by_seq, by_end)| {
                let mut seq = meta
                    .get(SEQ_KEY)?
                    .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let id = match requested_id {
                    Some(id) => {
                        if calls.get(id)?.is_some() {
                            return abort(StoreError::IdInUse(id.to_string()));
                        }
                        seq += 1;
                        id.to_string()
                    }
                    None => loop {
                        seq += 1;
                        let id = format!("out-{}-{seq}", now.unix_seconds());
                        if calls.get(id.as_bytes())?.is_none() {
                            break id;
                        }
                    },
                };
                meta.insert(SEQ_KEY, &seq.to_be_bytes())?;
                let record = CallRecord::new_queued(id, seq, request.clone(), now);
                let bytes = enc(&record).or_else(abort)?;
                calls.insert(record.call_id.as_bytes(), bytes)?;
                index::put(by_seq, by_end, None, &record)?;
                Ok(record)
            },
        )?;
        if let Err(e) = self.flush() {
            self.undo_insert(&record);
            return Err(e);
        }
        Ok(record)
    }

    /// Delete a just-inserted record whose flush failed, and try to make that durable.
    fn undo_insert(&self, record: &CallRecord) {
        let removed = (&self.calls, &self.by_seq, &self.by_end).transaction(|(calls, by_seq, by_end)| {
            calls.remove(record.call_id.as_bytes())?;
            index::remove(by_seq, by_end, record)?;
            Ok(())
        });
        let flushed = match removed {
            Ok(()) => self.flush(),
            Err(e) => Err(StoreError::from(e)),
        };
        match flushed {
            Ok(()) => tracing::warn!(call_id = %record.call_id, "new call not stored durably: removed again"),
            Err(e) => tracing::error!(
                call_id = %record.call_id, error = %e,
                "new call not stored durably and its removal failed too: it may be dialled after a restart"
            ),
        }
    }

    pub fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        read(&self.calls, id)
    }

    /// Change a call record without flushing (ringing, answered, timeline steps).
    pub fn update_call(&self, id: &str, f: impl Fn(&mut CallRecord)) -> Result<CallRecord, StoreError> {
        let record = (&self.calls, &self.by_seq, &self.by_end).transaction(|(calls, by_seq, by_end)| {
            let bytes = calls
                .get(id)?
                .map_or_else(|| abort(StoreError::NotFound(id.to_string())), Ok)?;
            let old: CallRecord = dec(id.as_bytes(), &bytes).or_else(abort)?;
            let mut record = old.clone();
            f(&mut record);
            calls.insert(id.as_bytes(), enc(&record).or_else(abort)?)?;
            index::put(by_seq, by_end, Some(&old), &record)?;
            Ok(record)
        })?;
        self.dirty.store(true, Ordering::Relaxed);
        Ok(record)
    }

    /// Change a call record and flush (the call started: a crash after this must not redial).
    pub fn update_call_durably(
        &self,
        id: &str,
        f: impl Fn(&mut CallRecord),
    ) -> Result<CallRecord, StoreError> {
        let record = self.update_call(id, f)?;
        self.flush()?;
        Ok(record)
    }

    /// The trees a call's end and its webhook's deliveries change together, in one transaction:
    /// calls, outbox, calls by sequence, calls by end, outbox by due time.
    fn call_and_outbox_trees(&self) -> (&sled::Tree, &sled::Tree, &sled::Tree, &sled::Tree, &sled::Tree) {
        (
            &self.calls,
            &self.outbox,
            &self.by_seq,
            &self.by_end,
            &self.outbox_by_due,
        )
    }

    /// Make a call final and queue its webhook in one transaction, then flush.
    pub fn finalize_call(
        &self,
        id: &str,
        f: impl Fn(&mut CallRecord),
        delivery: impl Fn(&CallRecord) -> Option<Delivery>,
    ) -> Result<CallRecord, StoreError> {
        let trees = self.call_and_outbox_trees();
        let record = trees.transaction(|(calls, outbox, by_seq, by_end, by_due)| {
            let bytes = calls
                .get(id)?
                .map_or_else(|| abort(StoreError::NotFound(id.to_string())), Ok)?;
            let old: CallRecord = dec(id.as_bytes(), &bytes).or_else(abort)?;
            let mut record = old.clone();
            f(&mut record);
            if let Some(d) = delivery(&record) {
                record.webhook = Some(d.view());
                outbox.insert(d.id.as_bytes(), enc(&d).or_else(abort)?)?;
                outbox_index::put(by_due, None, Some(&d))?;
            }
            calls.insert(id.as_bytes(), enc(&record).or_else(abort)?)?;
            index::put(by_seq, by_end, Some(&old), &record)?;
            Ok(record)
        })?;
        self.flush()?;
        Ok(record)
    }

    /// Calls newest first, optionally only those with `status`, at most `limit`. Walks the
    /// acceptance-order index and decodes only the records it returns.
    pub fn list_calls(
        &self,
        status: Option<CallStatus>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.by_seq.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (_, value) = item?;
            let Some((indexed, id)) = index::parse_seq_value(&value) else {
                tracing::warn!("skipping an unreadable index entry");
                continue;
            };
            if status.is_some_and(|s| s != indexed) {
                continue;
            }
            if let Some(r) = self.readable_call(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Calls not yet final, oldest first (for recovery at start-up).
    pub fn unfinished_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.by_seq.iter() {
            let (_, value) = item?;
            match index::parse_seq_value(&value) {
                Some((status, id)) if !status.is_final() => {
                    if let Some(r) = self.readable_call(&id)? {
                        out.push(r);
                    }
                }
                Some(_) => {}
                None => tracing::warn!("skipping an unreadable index entry"),
            }
        }
        Ok(out)
    }

    /// A record named by an index; an unreadable one is logged and skipped, never fatal.
    fn readable_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        match self.get_call(id) {
            Ok(r) => Ok(r),
            Err(e @ StoreError::Decode { .. }) => {
                tracing::warn!(error = %e, "skipping unreadable call record");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every readable record, by key (building the indexes); an unreadable one is logged and
    /// skipped, never fatal.
    fn all_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.calls.iter() {
            let (key, bytes) = item?;
            match dec::<CallRecord>(&key, &bytes) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable call record"),
            }
        }
        Ok(out)
    }

    /// Webhook deliveries still pending.
    pub fn pending_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let mut out = Vec::new();
        for item in self.outbox.iter() {
            let (key, bytes) = item?;
            match dec::<Delivery>(&key, &bytes) {
                Ok(d) => out.push(d),
                Err(e) => tracing::warn!(error = %e, "skipping unreadable outbox entry"),
            }
        }
        Ok(out)
    }

    pub fn get_delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        read(&self.outbox, id)
    }

    /// Save a delivery after an attempt. A pending one stays in the outbox; a finished one leaves
    /// it and its final view lands in the call record, in one transaction. Not flushed: a crash
    /// at worst repeats one attempt.
    pub fn save_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        let trees = self.call_and_outbox_trees();
        trees.transaction(|(calls, outbox, by_seq, by_end, by_due)| {
            let old: Option<Delivery> = match outbox.get(d.id.as_bytes())? {
                Some(bytes) => dec(d.id.as_bytes(), &bytes).ok(),
                None => None,
            };
            if d.state == WebhookState::Pending {
                outbox.insert(d.id.as_bytes(), enc(d).or_else(abort)?)?;
                outbox_index::put(by_due, old.as_ref(), Some(d))?;
            } else {
                outbox.remove(d.id.as_bytes())?;
                outbox_index::put(by_due, old.as_ref(), None)?;
            }
            if d.notification {
                // A notification's final webhook: its view lands in the notification record.
                return Ok(());
            }
            if let Some(bytes) = calls.get(d.call_id.as_bytes())? {
                let old: CallRecord = dec(d.call_id.as_bytes(), &bytes).or_else(abort)?;
                let mut record = old.clone();
                record.webhook = Some(d.view());
                let now = d.attempts.last().map_or(d.created_at, |a| a.at);
                match d.state {
                    WebhookState::Pending => record.updated_at = now,
                    WebhookState::Delivered => record.push_event(now, TimelineEvent::WebhookDelivered, None),
                    WebhookState::Failed => {
                        record.push_event(now, TimelineEvent::WebhookFailed, d.last_error.clone())
                    }
                }
                calls.insert(d.call_id.as_bytes(), enc(&record).or_else(abort)?)?;
                index::put(by_seq, by_end, Some(&old), &record)?;
            }
            Ok(())
        })?;
        if d.notification {
            self.save_notification_delivery(d)?;
        }
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Delete final records that ended before `cutoff` and have no pending webhook; returns how
    /// many. Walks the end-time index up to `cutoff`: records that ended later are not read.
    pub fn purge_finished_before(&self, cutoff: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.by_end.range(..cutoff.0.to_be_bytes()) {
            let (key, _) = item?;
            let Some(id) = index::id_of_end_key(&key) else {
                continue;
            };
            let Some(record) = self.readable_call(id)? else {
                continue;
            };
            let ended = record.ended_at.unwrap_or(record.updated_at);
            let pending = record
                .webhook
                .as_ref()
                .is_some_and(|w| w.state == WebhookState::Pending);
            if !record.status.is_final() || ended >= cutoff || pending {
                continue;
            }
            (&self.calls, &self.by_seq, &self.by_end).transaction(|(calls, by_seq, by_end)| {
                calls.remove(record.call_id.as_bytes())?;
                index::remove(by_seq, by_end, &record)?;
                Ok(())
            })?;
            removed += 1;
        }
        if removed > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(removed)
    }
}
