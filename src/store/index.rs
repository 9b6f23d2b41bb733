//! Secondary indexes over the `calls` tree, so listing and the retention sweep read only the
//! records they return or delete.
//!
//! - `calls_by_seq`: key = `seq` (8 bytes, big-endian: the acceptance order `GET /calls` sorts by),
//!   value = `<status>\0<call id>`, so a status filter needs no record decoding;
//! - `calls_by_end`: key = end time in ms (8 bytes, big-endian) followed by the call id, value
//!   empty; final records only (the end is `ended_at`, else `updated_at`).
//!
//! Both are written in the same sled transaction as the record ([`put`], [`remove`]). A store
//! written before the indexes existed is indexed once at open ([`rebuild`]).

use sled::transaction::{TransactionalTree, UnabortableTransactionError};

use crate::call::{CallRecord, CallStatus};

pub const BY_SEQ: &str = "calls_by_seq";
pub const BY_END: &str = "calls_by_end";

type TxResult = Result<(), UnabortableTransactionError>;

pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn seq_value(r: &CallRecord) -> Vec<u8> {
    let mut v = r.status.as_str().as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(r.call_id.as_bytes());
    v
}

/// A `calls_by_seq` value: (status, call id); `None` if it is not one this module wrote.
pub fn parse_seq_value(v: &[u8]) -> Option<(CallStatus, String)> {
    let nul = v.iter().position(|&b| b == 0)?;
    let status = CallStatus::parse(std::str::from_utf8(&v[..nul]).ok()?)?;
    let id = std::str::from_utf8(&v[nul + 1..]).ok()?;
    Some((status, id.to_string()))
}

/// The `calls_by_end` key of a final record.
fn end_key(r: &CallRecord) -> Option<Vec<u8>> {
    if !r.status.is_final() {
        return None;
    }
    let ended = r.ended_at.unwrap_or(r.updated_at);
    let mut k = ended.0.to_be_bytes().to_vec();
    k.extend_from_slice(r.call_id.as_bytes());
    Some(k)
}

/// The call id of a `calls_by_end` key.
pub fn id_of_end_key(k: &[u8]) -> Option<&str> {
    k.get(8..).and_then(|id| std::str::from_utf8(id).ok())
}

/// Index `new`, which replaces `old` (if any), inside the record's transaction.
pub fn put(
    by_seq: &TransactionalTree,
    by_end: &TransactionalTree,
    old: Option<&CallRecord>,
    new: &CallRecord,
) -> TxResult {
    let new_end = end_key(new);
    if let Some(old) = old {
        if old.seq != new.seq {
            by_seq.remove(&seq_key(old.seq))?;
        }
        if let Some(k) = end_key(old).filter(|k| Some(k) != new_end.as_ref()) {
            by_end.remove(k)?;
        }
    }
    by_seq.insert(&seq_key(new.seq), seq_value(new))?;
    if let Some(k) = new_end {
        by_end.insert(k, &[][..])?;
    }
    Ok(())
}

/// Drop the index entries of `old`, deleted in the same transaction.
pub fn remove(by_seq: &TransactionalTree, by_end: &TransactionalTree, old: &CallRecord) -> TxResult {
    by_seq.remove(&seq_key(old.seq))?;
    if let Some(k) = end_key(old) {
        by_end.remove(k)?;
    }
    Ok(())
}

/// Build both indexes from scratch over `records` (every readable record). Not atomic: the
/// caller marks the schema version only after this returns, so an interrupted build is redone.
pub fn rebuild(
    by_seq: &sled::Tree,
    by_end: &sled::Tree,
    records: impl Iterator<Item = CallRecord>,
) -> Result<usize, sled::Error> {
    by_seq.clear()?;
    by_end.clear()?;
    let mut n = 0;
    for r in records {
        by_seq.insert(seq_key(r.seq), seq_value(&r))?;
        if let Some(k) = end_key(&r) {
            by_end.insert(k, &[][..])?;
        }
        n += 1;
    }
    Ok(n)
}
