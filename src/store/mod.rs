//! The durable store: a small typed facade over sled, the only module that names sled.
//!
//! Trees: `calls` (call id → [`CallRecord`]), `outbox` (webhook id → [`Delivery`], pending only),
//! `meta` (id sequence). Values are versioned ([`codec`]). sled's background flusher is off: the
//! data reaches the disk at durable points only (call accepted, call started, call answered with
//! its SIP dialog, call final with its outbox entry) plus a periodic [`Store::flush_if_dirty`] for
//! the rest, so an SD card sees three flushes per unanswered call and four per answered one. A
//! crash loses at most non-durable steps (ringing, timeline events, a delivery's success, which is
//! then sent again: webhooks are at-least-once).

mod codec;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub use codec::CodecError;

use crate::call::{CallRecord, CallRequest, CallStatus, Timestamp, WebhookState};
use crate::webhook::Delivery;

const SEQ_KEY: &[u8] = b"call_seq";
const PROBE_KEY: &[u8] = b"health_probe";

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
    #[error("call '{0}' not found")]
    NotFound(String),
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

fn dec<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

pub struct Store {
    db: sled::Db,
    calls: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
    dirty: AtomicBool,
    flush_failed: AtomicBool,
    /// Successful flushes since open (each one is an fsync of sled's log: SD card wear).
    flushes: AtomicU64,
}

impl Store {
    /// Open (or create) the store in `data_dir/db`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(data_dir.join("db"))
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .open()?;
        Ok(Self {
            calls: db.open_tree("calls")?,
            outbox: db.open_tree("outbox")?,
            meta: db.open_tree("meta")?,
            db,
            dirty: AtomicBool::new(false),
            flush_failed: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
        })
    }

    /// Write everything to disk now.
    pub fn flush(&self) -> Result<(), StoreError> {
        match self.db.flush() {
            Ok(_) => {
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.dirty.store(false, Ordering::Relaxed);
                self.flush_failed.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.flush_failed.store(true, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// How many flushes succeeded since the store was opened (logged at shutdown; `.ci/figures`).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
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
    pub fn insert_call(
        &self,
        requested_id: Option<&str>,
        request: CallRequest,
        now: Timestamp,
    ) -> Result<CallRecord, StoreError> {
        let record = (&self.calls, &self.meta).transaction(|(calls, meta)| {
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
            Ok(record)
        })?;
        self.flush()?;
        Ok(record)
    }

    pub fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        match self.calls.get(id)? {
            Some(bytes) => dec(id.as_bytes(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Change a call record without flushing (ringing, answered, timeline steps).
    pub fn update_call(&self, id: &str, f: impl Fn(&mut CallRecord)) -> Result<CallRecord, StoreError> {
        let record = self.calls.transaction(|calls| {
            let bytes = calls
                .get(id)?
                .map_or_else(|| abort(StoreError::NotFound(id.to_string())), Ok)?;
            let mut record: CallRecord = dec(id.as_bytes(), &bytes).or_else(abort)?;
            f(&mut record);
            calls.insert(id.as_bytes(), enc(&record).or_else(abort)?)?;
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

    /// Make a call final and queue its webhook in one transaction, then flush.
    pub fn finalize_call(
        &self,
        id: &str,
        f: impl Fn(&mut CallRecord),
        delivery: impl Fn(&CallRecord) -> Option<Delivery>,
    ) -> Result<CallRecord, StoreError> {
        let record = (&self.calls, &self.outbox).transaction(|(calls, outbox)| {
            let bytes = calls
                .get(id)?
                .map_or_else(|| abort(StoreError::NotFound(id.to_string())), Ok)?;
            let mut record: CallRecord = dec(id.as_bytes(), &bytes).or_else(abort)?;
            f(&mut record);
            if let Some(d) = delivery(&record) {
                record.webhook = Some(d.view());
                outbox.insert(d.id.as_bytes(), enc(&d).or_else(abort)?)?;
            }
            calls.insert(id.as_bytes(), enc(&record).or_else(abort)?)?;
            Ok(record)
        })?;
        self.flush()?;
        Ok(record)
    }

    /// Calls newest first, optionally only those with `status`, at most `limit`.
    pub fn list_calls(
        &self,
        status: Option<CallStatus>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut all = self.all_calls()?;
        all.retain(|r| status.is_none_or(|s| r.status == s));
        all.sort_by_key(|r| std::cmp::Reverse(r.seq));
        all.truncate(limit);
        Ok(all)
    }

    /// Calls not yet final, oldest first (for recovery at start-up).
    pub fn unfinished_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut all = self.all_calls()?;
        all.retain(CallRecord::is_in_progress);
        all.sort_by_key(|r| r.seq);
        Ok(all)
    }

    /// Every readable record; an unreadable one is logged and skipped, never fatal.
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
        match self.outbox.get(id)? {
            Some(bytes) => dec(id.as_bytes(), &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Save a delivery after an attempt. A pending one stays in the outbox; a finished one leaves
    /// it and its final view lands in the call record, in one transaction. Not flushed: a crash
    /// at worst repeats one attempt.
    pub fn save_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        (&self.calls, &self.outbox).transaction(|(calls, outbox)| {
            if d.state == WebhookState::Pending {
                outbox.insert(d.id.as_bytes(), enc(d).or_else(abort)?)?;
            } else {
                outbox.remove(d.id.as_bytes())?;
            }
            if let Some(bytes) = calls.get(d.call_id.as_bytes())? {
                let mut record: CallRecord = dec(d.call_id.as_bytes(), &bytes).or_else(abort)?;
                record.webhook = Some(d.view());
                let now = d.attempts.last().map_or(d.created_at, |a| a.at);
                match d.state {
                    WebhookState::Pending => record.updated_at = now,
                    WebhookState::Delivered => record.push_event(now, "webhook_delivered", None),
                    WebhookState::Failed => record.push_event(now, "webhook_failed", d.last_error.clone()),
                }
                calls.insert(d.call_id.as_bytes(), enc(&record).or_else(abort)?)?;
            }
            Ok(())
        })?;
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Delete final records that ended before `cutoff` and have no pending webhook; returns how many.
    pub fn purge_finished_before(&self, cutoff: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for record in self.all_calls()? {
            let ended = record.ended_at.unwrap_or(record.updated_at);
            let pending = record
                .webhook
                .as_ref()
                .is_some_and(|w| w.state == WebhookState::Pending);
            if record.status.is_final() && ended < cutoff && !pending {
                self.calls.remove(record.call_id.as_bytes())?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(removed)
    }
}
