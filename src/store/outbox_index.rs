//! The outbox's due-time index, `outbox_by_due`: key = when the delivery's next attempt is due (ms,
//! 8 bytes big-endian) followed by its id, value empty; one entry per pending delivery, written in
//! the same transaction as the delivery. The worker reads only what is due ([`Store::due_deliveries`]),
//! so a call's end costs the same with ten deliveries waiting for a dead receiver as with none.
//! Rebuilt from the outbox at every open (the outbox holds pending deliveries only).

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use super::{dec, Store, StoreError};
use crate::call::Timestamp;
use crate::webhook::Delivery;

pub const BY_DUE: &str = "outbox_by_due";

/// The index key of a pending delivery.
pub fn key(d: &Delivery) -> Vec<u8> {
    let at = d.next_attempt_at.unwrap_or(d.created_at);
    let mut k = at.0.to_be_bytes().to_vec();
    k.extend_from_slice(d.id.as_bytes());
    k
}

fn parse(k: &[u8]) -> Option<(Timestamp, &str)> {
    let at = <[u8; 8]>::try_from(k.get(..8)?).ok()?;
    let id = std::str::from_utf8(k.get(8..)?).ok()?;
    Some((Timestamp(u64::from_be_bytes(at)), id))
}

/// Move `old`'s entry to `new`'s (either may be absent: a new delivery, one that left the outbox).
pub fn put(
    by_due: &TransactionalTree,
    old: Option<&Delivery>,
    new: Option<&Delivery>,
) -> Result<(), UnabortableTransactionError> {
    if let Some(o) = old {
        by_due.remove(key(o))?;
    }
    if let Some(n) = new {
        by_due.insert(key(n), &[])?;
    }
    Ok(())
}

impl Store {
    /// Rebuild the index from the outbox (at open).
    pub(super) fn reindex_outbox(&self) -> Result<(), StoreError> {
        self.outbox_by_due.clear()?;
        for item in self.outbox.iter() {
            let (k, bytes) = item?;
            match dec::<Delivery>(&k, &bytes) {
                Ok(d) => {
                    self.outbox_by_due.insert(key(&d), &[])?;
                }
                Err(e) => tracing::warn!(error = %e, "skipping unreadable outbox entry"),
            }
        }
        Ok(())
    }

    /// Up to `limit` deliveries due at `now`, earliest first, and when the next one is due after
    /// them (`now` when more than `limit` are due). Reads only those.
    pub fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<(Vec<Delivery>, Option<Timestamp>), StoreError> {
        let mut due = Vec::new();
        for item in self.outbox_by_due.iter() {
            let (k, _) = item?;
            let Some((at, id)) = parse(&k) else {
                continue;
            };
            if at > now {
                return Ok((due, Some(at)));
            }
            if due.len() >= limit {
                return Ok((due, Some(now)));
            }
            match self.get_delivery(id) {
                Ok(Some(d)) => due.push(d),
                Ok(None) => {}
                Err(e @ StoreError::Decode { .. }) => {
                    tracing::warn!(error = %e, "skipping unreadable outbox entry")
                }
                Err(e) => return Err(e),
            }
        }
        Ok((due, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::WebhookState;

    fn delivery(id: &str, due: u64) -> Delivery {
        let mut d = Delivery::new(id, "c", "http://127.0.0.1:9/h", "{}".into(), Timestamp(1));
        d.next_attempt_at = Some(Timestamp(due));
        d
    }

    #[test]
    fn only_due_deliveries_are_read_earliest_first_and_the_index_follows_every_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        for (id, due) in [("late", 9_000), ("a", 1_000), ("b", 2_000), ("c", 3_000)] {
            store.save_delivery(&delivery(id, due)).expect("save");
        }
        let ids = |v: &[Delivery]| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        let (due, next) = store.due_deliveries(Timestamp(2_500), 10).expect("due");
        assert_eq!(ids(&due), ["a", "b"]);
        assert_eq!(next, Some(Timestamp(3_000)));
        // More due than the limit: the rest is due now.
        let (due, next) = store.due_deliveries(Timestamp(5_000), 2).expect("due");
        assert_eq!(ids(&due), ["a", "b"]);
        assert_eq!(next, Some(Timestamp(5_000)));
        // A retry moves its entry; a delivered one leaves the index.
        store.save_delivery(&delivery("a", 8_000)).expect("reschedule");
        let mut done = delivery("b", 2_000);
        done.state = WebhookState::Delivered;
        done.next_attempt_at = None;
        store.save_delivery(&done).expect("delivered");
        let (due, next) = store.due_deliveries(Timestamp(5_000), 10).expect("due");
        assert_eq!(ids(&due), ["c"]);
        assert_eq!(next, Some(Timestamp(8_000)));
        assert_eq!(store.outbox_by_due.len(), 3, "a, c, late");
        // Reopened: rebuilt from the outbox, the same answer.
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let (due, _) = store.due_deliveries(Timestamp(10_000), 10).expect("due");
        assert_eq!(ids(&due), ["c", "a", "late"]);
    }
}
