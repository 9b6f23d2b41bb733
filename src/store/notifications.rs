//! Notifications in the store: `notifications` (id → [`NotificationRecord`]) and
//! `notifications_by_seq` (seq → id, for newest-first listing). Durable points: the notification
//! accepted (flushed before the API answers), each attempt's call placed (the record is written
//! unflushed just before the scheduler's insert flushes both), settled with its final webhook in
//! the outbox (one transaction, flushed).

use std::sync::atomic::Ordering;

use sled::transaction::Transactional;

use super::{abort, dec, enc, Store, StoreError};
use crate::call::{Timestamp, WebhookState};
use crate::notify::{NotificationRecord, NotificationRequest, NotificationStatus};
use crate::webhook::Delivery;

pub const TREE: &str = "notifications";
pub const BY_SEQ: &str = "notifications_by_seq";
const SEQ_KEY: &[u8] = b"notification_seq";

impl Store {
    /// Store a new notification and flush. With `requested_id` the id must be free; without, it
    /// is `ntf-<unix seconds>-<seq>`.
    pub fn insert_notification(
        &self,
        requested_id: Option<&str>,
        request: NotificationRequest,
        now: Timestamp,
    ) -> Result<NotificationRecord, StoreError> {
        let trees = (&self.notifications, &self.notifications_by_seq, &self.meta);
        let record = trees.transaction(|(tree, by_seq, meta)| {
            let mut seq = meta
                .get(SEQ_KEY)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            seq += 1;
            let id = match requested_id {
                Some(id) if tree.get(id)?.is_some() => {
                    return abort(StoreError::NotificationIdInUse(id.to_string()))
                }
                Some(id) => id.to_string(),
                None => loop {
                    let id = format!("ntf-{}-{seq}", now.unix_seconds());
                    if tree.get(id.as_bytes())?.is_none() {
                        break id;
                    }
                    seq += 1;
                },
            };
            meta.insert(SEQ_KEY, &seq.to_be_bytes())?;
            let record = NotificationRecord::new(id, seq, request.clone(), now);
            tree.insert(record.notification_id.as_bytes(), enc(&record).or_else(abort)?)?;
            by_seq.insert(&seq.to_be_bytes(), record.notification_id.as_bytes())?;
            Ok(record)
        })?;
        if let Err(e) = self.flush() {
            // The API answers 503: a restart must not find it and start calling.
            let removed: Result<(), sled::transaction::TransactionError<StoreError>> =
                (&self.notifications, &self.notifications_by_seq).transaction(|(tree, by_seq)| {
                    tree.remove(record.notification_id.as_bytes())?;
                    by_seq.remove(&record.seq.to_be_bytes())?;
                    Ok(())
                });
            if removed.is_ok() {
                let _ = self.flush();
            }
            return Err(e);
        }
        Ok(record)
    }

    pub fn get_notification(&self, id: &str) -> Result<Option<NotificationRecord>, StoreError> {
        super::read(&self.notifications, id)
    }

    /// Write a notification's new state without flushing (the scheduler's insert of the attempt's
    /// call, right after, flushes both).
    pub fn put_notification(&self, r: &NotificationRecord) -> Result<(), StoreError> {
        self.notifications.insert(r.notification_id.as_bytes(), enc(r)?)?;
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Write a notification durably (flushed).
    pub fn put_notification_durably(&self, r: &NotificationRecord) -> Result<(), StoreError> {
        self.put_notification(r)?;
        self.flush()
    }

    /// Write a settled notification and queue its final webhook in one transaction, then flush.
    pub fn settle_notification(
        &self,
        r: &NotificationRecord,
        delivery: Option<&Delivery>,
    ) -> Result<NotificationRecord, StoreError> {
        let mut record = r.clone();
        if let Some(d) = delivery {
            record.webhook = Some(d.view());
        }
        (&self.notifications, &self.outbox, &self.outbox_by_due).transaction(|(tree, outbox, by_due)| {
            if let Some(d) = delivery {
                outbox.insert(d.id.as_bytes(), enc(d).or_else(abort)?)?;
                super::outbox_index::put(by_due, None, Some(d))?;
            }
            tree.insert(record.notification_id.as_bytes(), enc(&record).or_else(abort)?)?;
            Ok(())
        })?;
        self.flush()?;
        Ok(record)
    }

    /// A notification's webhook after an attempt (see [`Store::save_delivery`]).
    pub(super) fn save_notification_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.notifications.transaction(|tree| {
            let Some(bytes) = tree.get(d.call_id.as_bytes())? else {
                return Ok(());
            };
            let mut r: NotificationRecord = dec(d.call_id.as_bytes(), &bytes).or_else(abort)?;
            r.webhook = Some(d.view());
            tree.insert(d.call_id.as_bytes(), enc(&r).or_else(abort)?)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Notifications newest first, optionally only those with `status`, at most `limit`.
    pub fn list_notifications(
        &self,
        status: Option<NotificationStatus>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.notifications_by_seq.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (_, id) = item?;
            let id = String::from_utf8_lossy(&id).into_owned();
            match self.get_notification(&id) {
                Ok(Some(r)) if status.is_none_or(|s| s == r.status) => out.push(r),
                Ok(_) => {}
                Err(e @ StoreError::Decode { .. }) => {
                    tracing::warn!(error = %e, "skipping an unreadable notification")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Notifications not yet settled, oldest first (for recovery at start-up).
    pub fn unsettled_notifications(&self) -> Result<Vec<NotificationRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.notifications_by_seq.iter() {
            let (_, id) = item?;
            let id = String::from_utf8_lossy(&id).into_owned();
            match self.get_notification(&id) {
                Ok(Some(r)) if !r.is_settled() => out.push(r),
                Ok(_) => {}
                Err(e @ StoreError::Decode { .. }) => {
                    tracing::warn!(error = %e, "skipping an unreadable notification")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Delete settled notifications that ended before `cutoff` and whose webhook is not pending;
    /// returns how many.
    pub fn purge_notifications_before(&self, cutoff: Timestamp) -> Result<usize, StoreError> {
        let mut removed = 0;
        for item in self.notifications_by_seq.iter() {
            let (key, id) = item?;
            let Ok(Some(r)) = self.get_notification(&String::from_utf8_lossy(&id)) else {
                continue;
            };
            let pending = r
                .webhook
                .as_ref()
                .is_some_and(|w| w.state == WebhookState::Pending);
            if r.ended_at.is_none_or(|e| e >= cutoff) || pending {
                continue;
            }
            (&self.notifications, &self.notifications_by_seq).transaction(|(tree, by_seq)| {
                tree.remove(r.notification_id.as_bytes())?;
                by_seq.remove(&key)?;
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
