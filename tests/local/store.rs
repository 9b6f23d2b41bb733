//! The store facade on its own: retention, versioned values and unreadable records.

use sip_assistant::call::{CallRequest, CallStatus, Timestamp};
use sip_assistant::store::Store;
use sip_assistant::webhook::Delivery;

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

const DAY: u64 = 86_400_000;

#[test]
fn retention_deletes_only_old_finished_records_without_pending_webhooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let now = Timestamp(100 * DAY);
    let old = Timestamp(now.0 - 40 * DAY);
    let recent = Timestamp(now.0 - 5 * DAY);
    let end = |id: &str, at: Timestamp, with_hook: bool| {
        store
            .finalize_call(
                id,
                |r| {
                    r.status = CallStatus::Completed;
                    r.ended_at = Some(at);
                },
                |r| {
                    with_hook.then(|| {
                        Delivery::new(
                            &format!("wh-{}", r.call_id),
                            &r.call_id,
                            "http://127.0.0.1:9/x",
                            "{}".into(),
                            at,
                        )
                    })
                },
            )
            .expect("finalize");
    };
    for id in ["old-done", "old-hook", "new-done", "old-running"] {
        store.insert_call(Some(id), request(None), old).expect("insert");
    }
    end("old-done", old, false);
    end("old-hook", old, true);
    end("new-done", recent, false);
    let cutoff = Timestamp(now.0 - 30 * DAY);
    assert_eq!(store.purge_finished_before(cutoff).expect("purge"), 1);
    assert!(store.get_call("old-done").expect("get").is_none());
    for kept in ["old-hook", "new-done", "old-running"] {
        assert!(store.get_call(kept).expect("get").is_some(), "{kept} must stay");
    }
    // Once its webhook is done, the old record goes too.
    let mut d = store.get_delivery("wh-old-hook").expect("get").expect("pending");
    d.state = sip_assistant::call::WebhookState::Delivered;
    store.save_delivery(&d).expect("save");
    assert!(
        store.get_delivery("wh-old-hook").expect("get").is_none(),
        "a finished delivery leaves the outbox"
    );
    assert_eq!(store.purge_finished_before(cutoff).expect("purge"), 1);
}

#[test]
fn list_order_and_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let t = Timestamp(1_000);
    let a = store.insert_call(None, request(None), t).expect("a");
    let b = store.insert_call(Some("mine"), request(None), t).expect("b");
    let c = store.insert_call(None, request(None), t).expect("c");
    assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
    assert_eq!((a.call_id.as_str(), c.call_id.as_str()), ("out-1-1", "out-1-3"));
    let ids: Vec<String> = store
        .list_calls(None, 10)
        .expect("list")
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    assert_eq!(ids, [c.call_id.clone(), "mine".into(), a.call_id.clone()]);
    assert_eq!(
        store
            .list_calls(Some(CallStatus::Completed), 10)
            .expect("list")
            .len(),
        0
    );
    assert_eq!(store.list_calls(None, 2).expect("list").len(), 2);
    assert!(matches!(
        store.insert_call(Some("mine"), request(None), t),
        Err(sip_assistant::store::StoreError::IdInUse(_))
    ));
}

#[test]
fn values_survive_reopen_and_unknown_versions_are_refused_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        store
            .insert_call(Some("keep"), request(Some("http://127.0.0.1:9/x")), Timestamp(5))
            .expect("insert");
        store.flush().expect("flush");
    }
    // Plant a record written by a "future" release straight into sled.
    {
        let db = sled::open(dir.path().join("db")).expect("raw open");
        let calls = db.open_tree("calls").expect("tree");
        calls.insert("future", &[9u8, b'{', b'}'][..]).expect("insert");
        db.flush().expect("flush");
    }
    let store = Store::open(dir.path()).expect("reopen");
    let kept = store.get_call("keep").expect("get").expect("kept");
    assert_eq!(kept.request.callback_url.as_deref(), Some("http://127.0.0.1:9/x"));
    let err = store.get_call("future").expect_err("version 9 is unknown");
    assert!(err.to_string().contains("unknown value version 9"), "{err}");
    // Scans skip the unreadable record instead of failing.
    assert_eq!(store.list_calls(None, 10).expect("list").len(), 1);
    assert_eq!(store.unfinished_calls().expect("scan").len(), 1);
}

fn saved_dialog() -> sip_assistant::sip::ua::SavedDialog {
    sip_assistant::sip::ua::SavedDialog {
        call_id: "c0ffee@127.0.0.1".into(),
        local_uri: "sip:1050@127.0.0.1".into(),
        local_tag: "ours".into(),
        remote_uri: "sip:1001@127.0.0.1".into(),
        remote_tag: "theirs".into(),
        remote_target: "sip:1001@127.0.0.1:5080".into(),
        route_set: vec!["<sip:127.0.0.1:5060;lr>".into()],
        local_cseq: 3,
        local_host: "127.0.0.1".into(),
        dest_host: "127.0.0.1".into(),
        dest_port: 5060,
        transport: sip_assistant::sip::ua::Transport::Tcp,
    }
}

#[test]
fn a_calls_dialog_survives_reopen_and_records_without_one_still_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        store
            .insert_call(Some("answered"), request(None), Timestamp(5))
            .expect("insert");
        store
            .update_call("answered", |r| r.dialog = Some(saved_dialog()))
            .expect("update");
        store.flush().expect("flush");
    }
    // A version-1 record as written before the field existed (no "dialog" key at all).
    {
        let store = Store::open(dir.path()).expect("open");
        let mut old =
            serde_json::to_value(store.get_call("answered").expect("get").expect("record")).expect("json");
        let obj = old.as_object_mut().expect("object");
        assert!(
            obj.remove("dialog").is_some(),
            "the dialog is stored with the record"
        );
        obj.insert("call_id".into(), "older".into());
        drop(store);
        let db = sled::open(dir.path().join("db")).expect("raw open");
        let mut bytes = vec![1u8];
        bytes.extend(serde_json::to_vec(&old).expect("encode"));
        db.open_tree("calls")
            .expect("tree")
            .insert("older", bytes)
            .expect("insert");
        db.flush().expect("flush");
    }
    let store = Store::open(dir.path()).expect("reopen");
    let r = store.get_call("answered").expect("get").expect("record");
    assert_eq!(r.dialog, Some(saved_dialog()));
    let older = store.get_call("older").expect("decodes").expect("record");
    assert_eq!(older.dialog, None);
}
