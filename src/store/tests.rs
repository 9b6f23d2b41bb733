//! The store's own invariants: durability (fsync after every durable point), the indexes giving
//! the same answers as a full scan, the migration of an unindexed store, and failed inserts.

use super::*;
use crate::call::CallRequest;

fn request(url: Option<&str>) -> CallRequest {
    CallRequest {
        message: "m".into(),
        extension: "1001".into(),
        callback_url: url.map(str::to_string),
        ring_timeout: 30,
        choice: None,
        call_id: None,
        language: None,
        voice: None,
        not_before: None,
        notification_id: None,
    }
}

fn hook(r: &CallRecord, at: Timestamp) -> Delivery {
    Delivery::new(
        &format!("wh-{}", r.call_id),
        &r.call_id,
        "http://127.0.0.1:9/x",
        "{}".into(),
        at,
    )
}

/// What `list_calls` answered before the index: every record decoded, filtered, sorted by seq.
fn full_scan(store: &Store, status: Option<CallStatus>, limit: usize) -> Vec<String> {
    let mut all = store.all_calls().expect("scan");
    all.retain(|r| status.is_none_or(|s| r.status == s));
    all.sort_by_key(|r| std::cmp::Reverse(r.seq));
    all.truncate(limit);
    all.into_iter().map(|r| r.call_id).collect()
}

fn listed(store: &Store, status: Option<CallStatus>, limit: usize) -> Vec<String> {
    let records = store.list_calls(status, limit).expect("list");
    records.into_iter().map(|r| r.call_id).collect()
}

/// 40 calls in every status, some with webhooks, some delivered, some purged.
fn mixed_store(store: &Store) {
    let statuses = [
        CallStatus::Completed,
        CallStatus::NoAnswer,
        CallStatus::Failed,
        CallStatus::Busy,
    ];
    for i in 0..40u64 {
        let at = Timestamp(1_000_000 + i * 1_000);
        let wanted = (i % 3 == 0).then(|| format!("mine-{i}"));
        let url = (i % 2 == 0).then_some("http://127.0.0.1:9/x");
        let r = store
            .insert_call(wanted.as_deref(), request(url), at)
            .expect("insert");
        match i % 6 {
            0 => {}
            1 => {
                store
                    .update_call(&r.call_id, |r| r.status = CallStatus::Ringing)
                    .expect("ringing");
            }
            2 => {
                store
                    .update_call(&r.call_id, |r| r.status = CallStatus::Answered)
                    .expect("answered");
            }
            _ => {
                let end = Timestamp(at.0 + 500);
                let status = statuses[(i as usize) % statuses.len()];
                store
                    .finalize_call(
                        &r.call_id,
                        |r| {
                            r.status = status;
                            r.ended_at = Some(end);
                        },
                        |r| r.request.callback_url.as_ref().map(|_| hook(r, end)),
                    )
                    .expect("finalize");
            }
        }
    }
}

fn assert_lists_match_a_full_scan(store: &Store) {
    let mut filters = vec![None];
    filters.extend(CallStatus::ALL.iter().copied().map(Some));
    for status in filters {
        for limit in [1, 3, 7, 40, 500] {
            assert_eq!(
                listed(store, status, limit),
                full_scan(store, status, limit),
                "status {status:?}, limit {limit}"
            );
        }
    }
    let mut unfinished = store.all_calls().expect("scan");
    unfinished.retain(CallRecord::is_in_progress);
    unfinished.sort_by_key(|r| r.seq);
    let ids = |v: Vec<CallRecord>| v.into_iter().map(|r| r.call_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.unfinished_calls().expect("unfinished")),
        ids(unfinished)
    );
}

#[test]
fn every_durable_point_fsyncs_the_store_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let last = std::cell::Cell::new(store.fsync_count());
    assert!(
        last.get() >= 2,
        "open fsyncs the log and its directory ({})",
        last.get()
    );
    let grew = |what: &str, store: &Store| {
        let now = store.fsync_count();
        assert!(now > last.get(), "{what} must fsync ({} -> {now})", last.get());
        last.set(now);
    };
    let r = store
        .insert_call(None, request(Some("http://127.0.0.1:9/x")), Timestamp(1_000))
        .expect("insert");
    grew("insert", &store);
    store
        .update_call_durably(&r.call_id, |r| r.started_at = Some(Timestamp(2_000)))
        .expect("started");
    grew("started", &store);
    let before = store.fsync_count();
    store
        .update_call(&r.call_id, |r| r.status = CallStatus::Ringing)
        .expect("ringing");
    assert_eq!(store.fsync_count(), before, "a non-durable step does not fsync");
    store.flush_if_dirty().expect("lazy flush");
    last.set(before);
    grew("lazy flush", &store);
    store
        .finalize_call(
            &r.call_id,
            |r| r.status = CallStatus::Completed,
            |r| Some(hook(r, Timestamp(3_000))),
        )
        .expect("finalize");
    grew("finalize", &store);
    let d = store.pending_deliveries().expect("outbox").remove(0);
    store.save_delivery(&d).expect("save");
    store.flush().expect("flush");
    grew("flush", &store);
}

#[test]
fn indexed_lists_sweep_and_recovery_match_a_full_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    mixed_store(&store);
    assert_lists_match_a_full_scan(&store);
    // A delivered webhook rewrites its record (and must keep the index right).
    for d in store.pending_deliveries().expect("outbox").into_iter().take(3) {
        let mut d = d;
        d.state = WebhookState::Delivered;
        store.save_delivery(&d).expect("save");
    }
    assert_lists_match_a_full_scan(&store);
    // The sweep: ended before the cutoff, final, no pending webhook.
    let cutoff = Timestamp(1_000_000 + 20 * 1_000);
    let expected: Vec<String> = store
        .all_calls()
        .expect("scan")
        .into_iter()
        .filter(|r| {
            r.status.is_final()
                && r.ended_at.unwrap_or(r.updated_at) < cutoff
                && r.webhook
                    .as_ref()
                    .is_none_or(|w| w.state != WebhookState::Pending)
        })
        .map(|r| r.call_id)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        store.purge_finished_before(cutoff).expect("purge"),
        expected.len()
    );
    for id in &expected {
        assert!(store.get_call(id).expect("get").is_none(), "{id} purged");
    }
    assert_eq!(store.purge_finished_before(cutoff).expect("purge"), 0);
    assert_lists_match_a_full_scan(&store);
    assert_eq!(store.by_seq.len(), store.calls.len());
}

#[test]
fn a_store_without_indexes_is_indexed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected: Vec<(Option<CallStatus>, Vec<String>)>;
    {
        let store = Store::open(dir.path()).expect("open");
        mixed_store(&store);
        expected = [None, Some(CallStatus::Queued), Some(CallStatus::Completed)]
            .into_iter()
            .map(|s| (s, full_scan(&store, s, 500)))
            .collect();
        // What a data dir written by the previous release looks like: no index trees, no schema.
        store.db.drop_tree(index::BY_SEQ).expect("drop");
        store.db.drop_tree(index::BY_END).expect("drop");
        store.meta.remove(SCHEMA_KEY).expect("remove");
        store.db.flush().expect("flush");
    }
    let store = reopen(dir.path());
    assert_eq!(
        store.meta.get(SCHEMA_KEY).expect("meta").as_deref(),
        Some(&SCHEMA_VERSION.to_be_bytes()[..])
    );
    for (status, ids) in expected {
        assert_eq!(listed(&store, status, 500), ids, "status {status:?}");
    }
    assert_lists_match_a_full_scan(&store);
    assert!(store.purge_finished_before(Timestamp(u64::MAX)).expect("purge") > 0);
    assert_lists_match_a_full_scan(&store);
}

#[test]
fn a_store_from_a_newer_release_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        store.meta.insert(SCHEMA_KEY, &9u32.to_be_bytes()).expect("meta");
        store.flush().expect("flush");
    }
    assert!(matches!(Store::open(dir.path()), Err(StoreError::NewerSchema(9))));
}

#[test]
fn a_call_whose_insert_was_not_flushed_is_gone_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        store.fail_next_flushes(1);
        let err = store
            .insert_call(Some("lost"), request(None), Timestamp(1_000))
            .expect_err("the flush fails");
        assert!(matches!(err, StoreError::Sync(_)), "{err}");
        assert!(store.get_call("lost").expect("get").is_none());
        assert!(store.list_calls(None, 10).expect("list").is_empty());
    }
    let store = reopen(dir.path());
    assert!(store.get_call("lost").expect("get").is_none());
    assert!(store.unfinished_calls().expect("unfinished").is_empty());
    // The id is free again.
    store
        .insert_call(Some("lost"), request(None), Timestamp(2_000))
        .expect("insert again");
}

/// Open the store again; sled's lock of the previous instance can outlive its drop for a moment
/// on a busy machine.
fn reopen(path: &std::path::Path) -> Store {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(path) {
            Ok(s) => return s,
            Err(e) if std::time::Instant::now() < end => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}
