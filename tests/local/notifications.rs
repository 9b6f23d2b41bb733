//! Notifications through the API in process, with an engine the test controls (`HoldEngine`): the
//! validation answers, a sequential chain, a parallel ring with its quorum, cancel, a restart in
//! the middle of a round, and `/call`'s `not_before`. Every answer is checked against our
//! `openapi.yaml`. The same notifications against Kamailio and baresip are in the interop tier.

use crate::harness;
use crate::openapi::Spec;

use std::time::Duration;

use harness::{request, router, start_app, test_config, wait_for, HoldEngine};
use serde_json::{json, Value};
use sip_assistant::app::App;
use sip_assistant::call::{CallOutcome, FinalStatus};

fn outcome(status: FinalStatus, played: bool, choice: Option<&str>, error: Option<&str>) -> CallOutcome {
    CallOutcome {
        status,
        error: error.map(str::to_string),
        message_played: played,
        choice_response: choice.map(str::to_string),
        choice_raw_text: choice.map(str::to_string),
        confirmed_by: None,
        media: None,
    }
}

fn post(app: &App, body: Value) -> harness::Reply {
    let reply = request(
        &router(app),
        "POST",
        "/notifications",
        Some(body.to_string().as_bytes()),
        &[],
    );
    Spec::ours()
        .check_response("/notifications", "post", reply.status, &reply.json())
        .unwrap_or_else(|e| panic!("POST /notifications answer off the spec: {e:?}\n{}", reply.text));
    reply
}

fn get(app: &App, id: &str) -> Value {
    let reply = request(&router(app), "GET", &format!("/notifications/{id}"), None, &[]);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let v = reply.json();
    Spec::ours()
        .check_response("/notifications/{notification_id}", "get", 200, &v)
        .unwrap_or_else(|e| panic!("GET /notifications/{{id}} off the spec: {e:?}\n{v:#}"));
    v
}

fn wait_status(app: &App, id: &str, status: &str) -> Value {
    let ok = wait_for(Duration::from_secs(10), || {
        get(app, id)["status"] == status && !get(app, id)["ended_at"].is_null()
    });
    let v = get(app, id);
    assert!(ok, "notification {id} never ended {status}: {v:#}");
    v
}

fn notification_deliveries(app: &App) -> Vec<sip_assistant::webhook::Delivery> {
    app.store
        .pending_deliveries()
        .expect("outbox")
        .into_iter()
        .filter(|d| d.notification)
        .collect()
}

#[test]
fn bad_notifications_get_400_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_app(test_config(dir.path()), HoldEngine::new());
    let cases = [
        (json!({"message": "m"}), "targets is required"),
        (
            json!({"message": "m", "targets": []}),
            "targets must hold 1 to 20 entries (got 0)",
        ),
        (
            json!({"message": "m", "targets": ["1001"], "quorum": 2}),
            "quorum must be between 1 and 1 (got 2)",
        ),
        (
            json!({"message": "m", "targets": ["1001"], "rounds": 0}),
            "rounds must be between 1 and 10 (got 0)",
        ),
        (
            json!({"message": "m", "targets": ["1001"], "quiet_hours": {"from": "22:00", "to": "07:00", "timezone": "Nowhere/City"}}),
            "quiet_hours.timezone must be an IANA time zone name such as Europe/Berlin (got 'Nowhere/City')",
        ),
        (json!({"targets": ["1001"]}), "message is required"),
    ];
    for (body, want) in cases {
        let reply = post(&app, body.clone());
        assert_eq!((reply.status, reply.detail()), (400, want.to_string()), "{body}");
    }
    // A target the dial policy does not allow: 403, nothing stored.
    let reply = post(&app, json!({"message": "m", "targets": ["1001", "+15551234567"]}));
    assert_eq!(reply.status, 403, "{}", reply.text);
    let list = request(&router(&app), "GET", "/notifications", None, &[]).json();
    assert_eq!(list["count"], 0);
    let reply = request(&router(&app), "GET", "/notifications?status=done", None, &[]);
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.detail(),
        "status must be one of scheduled, running, acknowledged, exhausted, cancelled"
    );
    smol::block_on(app.shutdown());
}

#[test]
fn a_sequential_notification_goes_to_the_next_target_and_ends_at_the_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    let reply = post(
        &app,
        json!({"notification_id": "page-1", "message": "disk full", "targets": ["1003", "1001", "1002"],
               "callback_url": "http://127.0.0.1:9/pages"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"notification_id": "page-1", "status": "queued"})
    );
    engine.wait_started("page-1.r1.t0");
    assert_eq!(get(&app, "page-1")["status"], "running");
    // The attempt is an ordinary call, with its notification, and no webhook of its own.
    let call = harness::record(&app, "page-1.r1.t0");
    assert_eq!(call["notification_id"], "page-1");
    assert!(call["request"]["callback_url"].is_null());
    assert!(engine.release("page-1.r1.t0", outcome(FinalStatus::NoAnswer, false, None, None)));
    engine.wait_started("page-1.r1.t1");
    assert!(engine.release("page-1.r1.t1", outcome(FinalStatus::Completed, true, None, None)));
    let n = wait_status(&app, "page-1", "acknowledged");
    assert_eq!(n["acknowledged_by"][0]["extension"], "1001");
    let statuses: Vec<&str> = n["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["no_answer", "completed"]);
    assert_eq!(
        engine.started(),
        ["page-1.r1.t0", "page-1.r1.t1"],
        "1002 is never called"
    );
    // One final webhook, carrying every attempt; no per-call webhooks.
    let deliveries = notification_deliveries(&app);
    assert_eq!(deliveries.len(), 1);
    let body: Value = serde_json::from_str(&deliveries[0].body).expect("json body");
    assert_eq!(body["event"], "notification.ended");
    assert_eq!(body["attempts"].as_array().map(Vec::len), Some(2));
    Spec::ours()
        .check_schema("NotificationWebhookPayload", &body)
        .unwrap_or_else(|e| panic!("webhook body off the spec: {e:?}"));
    assert_eq!(app.store.pending_deliveries().expect("outbox").len(), 1);
    // The listing and the 409 of a second cancel.
    let list = request(
        &router(&app),
        "GET",
        "/notifications?status=acknowledged",
        None,
        &[],
    )
    .json();
    assert_eq!(list["count"], 1);
    let again = request(&router(&app), "DELETE", "/notifications/page-1", None, &[]);
    assert_eq!(again.status, 409);
    assert_eq!(
        again.detail(),
        "notification 'page-1' already finished with status acknowledged"
    );
    let dup = post(
        &app,
        json!({"notification_id": "page-1", "message": "m", "targets": ["1001"]}),
    );
    assert_eq!(dup.status, 409);
    smol::block_on(app.shutdown());
}

#[test]
fn a_parallel_notification_hangs_up_the_others_at_the_quorum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    let reply = post(
        &app,
        json!({"notification_id": "ring", "message": "door", "targets": ["1001", "1002", "1003"], "strategy": "parallel",
               "choice": {"prompt": "Coming?", "options": [{"value": "yes"}, {"value": "no"}]}, "acknowledge": ["yes"]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    for t in 0..3 {
        engine.wait_started(&format!("ring.r1.t{t}"));
    }
    assert!(engine.release(
        "ring.r1.t1",
        outcome(FinalStatus::Completed, true, Some("no"), None)
    ));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        get(&app, "ring")["status"],
        "running",
        "'no' does not acknowledge"
    );
    assert!(engine.release(
        "ring.r1.t2",
        outcome(FinalStatus::Completed, true, Some("yes"), None)
    ));
    let n = wait_status(&app, "ring", "acknowledged");
    assert_eq!(n["acknowledged_by"][0]["extension"], "1003");
    // 1001 was still ringing: hung up (the hold engine ends a cancelled call "hung up on request").
    let first = harness::record(&app, "ring.r1.t0");
    assert_eq!(first["status"], "failed", "{first:#}");
    assert_eq!(n["attempts"][0]["status"], "failed");
    smol::block_on(app.shutdown());
}

#[test]
fn delete_cancels_a_running_notification_and_its_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    post(
        &app,
        json!({"notification_id": "c1", "message": "m", "targets": ["1001", "1002"], "rounds": 3}),
    );
    engine.wait_started("c1.r1.t0");
    let reply = request(&router(&app), "DELETE", "/notifications/c1", None, &[]);
    assert_eq!(reply.status, 200, "{}", reply.text);
    Spec::ours()
        .check_response("/notifications/{notification_id}", "delete", 200, &reply.json())
        .expect("spec");
    assert_eq!(reply.json()["status"], "cancelled");
    let n = wait_status(&app, "c1", "cancelled");
    assert_eq!(n["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(engine.started(), ["c1.r1.t0"], "no new call after the cancel");
    assert_eq!(
        request(&router(&app), "DELETE", "/notifications/nope", None, &[]).status,
        404
    );
    smol::block_on(app.shutdown());
}

#[test]
fn a_restart_in_the_middle_of_a_round_goes_on_with_the_next_target_and_one_final_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    post(
        &app,
        json!({"notification_id": "r1", "message": "m", "targets": ["1001", "1002"], "callback_url": "http://127.0.0.1:9/x"}),
    );
    engine.wait_started("r1.r1.t0");
    // Shut down while the first call rings: it ends failed; the next one is not placed now.
    smol::block_on(app.shutdown());
    drop(app);
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    engine.wait_started("r1.r1.t1");
    assert_eq!(
        engine.started(),
        ["r1.r1.t1"],
        "the cut call is not dialled again"
    );
    assert!(engine.release("r1.r1.t1", outcome(FinalStatus::Completed, true, None, None)));
    let n = wait_status(&app, "r1", "acknowledged");
    assert_eq!(n["attempts"][0]["status"], "failed");
    assert_eq!(
        notification_deliveries(&app).len(),
        1,
        "exactly one final webhook"
    );
    smol::block_on(app.shutdown());
}

#[test]
fn a_call_with_not_before_waits_and_can_be_cancelled_while_it_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(1500);
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let body = |id: &str, at: jiff::Timestamp| json!({"call_id": id, "message": "m", "extension": "1001", "not_before": at.to_string()});
    let server = router(&app);
    let r = request(
        &server,
        "POST",
        "/call",
        Some(body("soon", soon).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = request(
        &server,
        "POST",
        "/call",
        Some(body("later", later).to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::sleep(Duration::from_millis(700));
    assert!(engine.started().is_empty(), "not before its time");
    engine.wait_started("soon");
    let rec = harness::record(&app, "later");
    assert_eq!(rec["status"], "queued");
    assert!(rec["request"]["not_before"].is_string());
    let r = request(&server, "DELETE", "/call/later", None, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(harness::record(&app, "later")["status"], "failed");
    let bad = request(
        &server,
        "POST",
        "/call",
        Some(br#"{"message":"m","extension":"1001","not_before":"8am"}"#),
        &[],
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.detail().starts_with("not_before must be an RFC 3339"),
        "{}",
        bad.text
    );
    smol::block_on(app.shutdown());
}

#[test]
fn a_parallel_round_waits_for_free_slots_and_the_quorum_ends_the_waiting_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let mut config = test_config(dir.path());
    config.calls.max_concurrent = 1;
    let app = start_app(config, engine.clone());
    let reply = post(
        &app,
        json!({"notification_id": "slots", "message": "m", "targets": ["1001", "1002", "1003"], "strategy": "parallel"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    engine.wait_started("slots.r1.t0");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        engine.started(),
        ["slots.r1.t0"],
        "one slot: the others wait in the queue"
    );
    assert_eq!(harness::record(&app, "slots.r1.t1")["status"], "queued");
    assert!(engine.release("slots.r1.t0", outcome(FinalStatus::Completed, true, None, None)));
    let n = wait_status(&app, "slots", "acknowledged");
    // The slot t0 frees is not given to a queued attempt until the notifier has taken in t0's
    // end, which settles the notification: neither waiting attempt is ever dialled.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(engine.started(), ["slots.r1.t0"]);
    for t in [1, 2] {
        assert_eq!(n["attempts"][t]["status"], "failed", "{n:#}");
        let call = harness::record(&app, &format!("slots.r1.t{t}"));
        assert!(call["started_at"].is_null(), "{call:#}");
    }
    smol::block_on(app.shutdown());
}
