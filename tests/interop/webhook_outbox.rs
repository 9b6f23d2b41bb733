//! The webhook outbox against a real HTTP receiver on 127.0.0.1 (a Python process): retries through
//! failures and a restart of the service, exactly one successful delivery, valid signatures,
//! `Retry-After`, permanent 4xx, and giving up.

use crate::harness;

use std::time::Duration;

use harness::{completed, start_app, test_config, wait_for, HoldEngine, Receiver};
use serde_json::{json, Value};
use sip_assistant::app::App;
use sip_assistant::call::CallRequest;
use sip_assistant::config::{Secret, StringList};

const SECRET: &str = "test-webhook-secret-0123456789";

fn request_to(url: &str) -> CallRequest {
    CallRequest {
        message: "Your package has been delivered.".into(),
        extension: "1001".into(),
        callback_url: Some(url.into()),
        ring_timeout: 30,
        choice: None,
        call_id: None,
        language: None,
        voice: None,
        not_before: None,
        notification_id: None,
    }
}

fn record(app: &App, id: &str) -> Value {
    serde_json::to_value(app.store.get_call(id).expect("store").expect("record")).expect("json")
}

/// Submit a call with `id` to the hold engine and complete it.
fn complete_call(app: &App, engine: &HoldEngine, id: &str, url: &str) {
    smol::block_on(app.scheduler.submit(Some(id), request_to(url))).expect("submit");
    engine.wait_started(id);
    assert!(engine.release(id, completed()));
}

#[test]
fn failures_and_a_restart_end_in_exactly_one_signed_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 4, 503, None, Some(SECRET));
    let mut config = test_config(dir.path());
    config.webhook.secret = Some(Secret::new(SECRET));
    config.webhook.initial_backoff_ms = 150;
    let engine = HoldEngine::new();
    let app = start_app(config.clone(), engine.clone());
    complete_call(&app, &engine, "hook-1", &receiver.url("/hooks/a"));

    // Two failed attempts, then the service stops (flushing) and starts again.
    let seen = receiver.wait_entries(2, Duration::from_secs(15));
    assert!(seen.len() >= 2, "{seen:?}");
    smol::block_on(app.shutdown());
    drop(app);
    let before_restart = receiver.entries().len();
    assert!(
        before_restart < 5,
        "all attempts happened before the restart: {before_restart}"
    );

    let app = start_app(config, HoldEngine::new());
    assert!(
        wait_for(Duration::from_secs(20), || record(&app, "hook-1")["webhook"]
            ["state"]
            == "delivered"),
        "not delivered: {}",
        record(&app, "hook-1")
    );
    // Nothing more arrives after the success.
    std::thread::sleep(Duration::from_millis(600));
    let entries = receiver.entries();
    assert_eq!(entries.len(), 5, "4 failures then 1 success: {entries:#?}");
    let answered: Vec<i64> = entries
        .iter()
        .map(|e| e["answered"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(answered, [503, 503, 503, 503, 200]);
    let first_body = entries[0]["body"].as_str().expect("body");
    let webhook_id = entries[0]["headers"]["webhook-id"]
        .as_str()
        .expect("webhook-id")
        .to_string();
    assert!(
        webhook_id.starts_with("wh-") && webhook_id.len() == 35,
        "{webhook_id}"
    );
    for e in &entries {
        assert_eq!(e["path"], "/hooks/a");
        assert_eq!(
            e["headers"]["webhook-id"],
            webhook_id.as_str(),
            "stable across retries"
        );
        assert_eq!(e["signature_valid"], true, "python rejected the signature: {e}");
        assert_eq!(e["body"], first_body, "the body must not change between attempts");
        assert_eq!(e["headers"]["content-type"], "application/json");
        let ts: u64 = e["headers"]["webhook-timestamp"]
            .as_str()
            .expect("ts")
            .parse()
            .expect("unix seconds");
        let sig = e["headers"]["webhook-signature"].as_str().expect("sig");
        assert!(sip_assistant::webhook::verify(
            SECRET.as_bytes(),
            &webhook_id,
            ts,
            first_body.as_bytes(),
            sig
        ));
    }
    let payload: Value = serde_json::from_str(first_body).expect("payload JSON");
    let mut keys: Vec<&str> = payload
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "call_id",
            "choice_raw_text",
            "choice_response",
            "confirmed_by",
            "duration_seconds",
            "ended_at",
            "error",
            "extension",
            "message_played",
            "status"
        ]
    );
    assert_eq!(payload["call_id"], "hook-1");
    assert_eq!(payload["status"], "completed");
    assert_eq!(payload["extension"], "1001");
    assert_eq!(payload["message_played"], true);
    assert_eq!(payload["choice_response"], "confirmed");
    assert_eq!(payload["choice_raw_text"], "yes I confirm");
    assert_eq!(payload["confirmed_by"], "speech");
    assert_eq!(payload["error"], Value::Null);

    let r = record(&app, "hook-1");
    let attempts = r["webhook"]["attempts"].as_array().expect("attempts");
    assert_eq!(
        attempts.len(),
        5,
        "every attempt, also those before the restart, is in the record: {r}"
    );
    assert_eq!(attempts[0]["status_code"], 503);
    assert_eq!(attempts[4]["status_code"], 200);
    assert_eq!(r["webhook"]["next_attempt_at"], Value::Null);
    assert!(r["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|e| e["event"] == "webhook_delivered"));
    smol::block_on(app.shutdown());
}

#[test]
fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 1, 429, Some("1"), None);
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    complete_call(&app, &engine, "ra-1", &receiver.url("/x"));
    assert!(wait_for(Duration::from_secs(15), || record(&app, "ra-1")
        ["webhook"]["state"]
        == "delivered"));
    let r = record(&app, "ra-1");
    let at = |i: usize| {
        let t = r["webhook"]["attempts"][i]["at"].as_str().expect("at");
        humantime::parse_rfc3339_weak(t).expect("time")
    };
    let gap = at(1).duration_since(at(0)).expect("ordered");
    assert!(
        gap >= Duration::from_millis(1000),
        "second attempt came {gap:?} after a Retry-After: 1"
    );
    assert_eq!(receiver.entries().len(), 2);
    smol::block_on(app.shutdown());
}

#[test]
fn a_permanent_4xx_stops_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 100, 410, None, None);
    let engine = HoldEngine::new();
    let app = start_app(test_config(dir.path()), engine.clone());
    complete_call(&app, &engine, "gone-1", &receiver.url("/x"));
    assert!(wait_for(Duration::from_secs(15), || record(&app, "gone-1")
        ["webhook"]["state"]
        == "failed"));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(receiver.entries().len(), 1, "no retry after a 410");
    let r = record(&app, "gone-1");
    assert_eq!(
        r["webhook"]["last_error"],
        "HTTP 410: the receiver rejected the webhook"
    );
    let last = r["timeline"]
        .as_array()
        .expect("timeline")
        .last()
        .cloned()
        .expect("event");
    assert_eq!(last["event"], "webhook_failed");
    smol::block_on(app.shutdown());
}

#[test]
fn an_unreachable_receiver_is_retried_until_the_window_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = test_config(dir.path());
    config.webhook.max_retry_seconds = 1;
    let engine = HoldEngine::new();
    let app = start_app(config, engine.clone());
    complete_call(&app, &engine, "down-1", &format!("http://127.0.0.1:{port}/x"));
    assert!(wait_for(Duration::from_secs(15), || record(&app, "down-1")
        ["webhook"]["state"]
        == "failed"));
    let r = record(&app, "down-1");
    let attempts = r["webhook"]["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 3, "retried with backoff: {r}");
    assert!(attempts
        .iter()
        .all(|a| a["status_code"].is_null() && a["error"].is_string()));
    let why = r["webhook"]["last_error"].as_str().expect("reason");
    assert!(why.starts_with("gave up after"), "{why}");
    assert_eq!(r["status"], json!("completed"));
    smol::block_on(app.shutdown());
}

#[test]
fn deliveries_never_connect_where_the_host_policy_forbids() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A listener that must see no connection at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let mut config = test_config(dir.path());
    config.webhook.max_retry_seconds = 1;
    config.webhook.allow_hosts = StringList(vec!["hooks.lan".into()]);
    let engine = HoldEngine::new();
    let app = start_app(config, engine.clone());
    // Stored calls whose callbacks name loopback (e.g. accepted before the policy changed).
    complete_call(&app, &engine, "ssrf-1", &format!("http://localhost:{port}/x"));
    complete_call(&app, &engine, "ssrf-2", &format!("http://127.0.0.1:{port}/x"));
    for id in ["ssrf-1", "ssrf-2"] {
        assert!(wait_for(Duration::from_secs(15), || record(&app, id)["webhook"]
            ["state"]
            == "failed"));
        let r = record(&app, id);
        let attempts = r["webhook"]["attempts"].as_array().expect("attempts");
        assert!(
            attempts.iter().all(|a| a["status_code"].is_null()
                && a["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("webhook.allow_hosts"))),
            "{r}"
        );
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the policy was checked before connecting"
    );
    smol::block_on(app.shutdown());
}

/// Regression: with every handle dropped, the worker must return, not spin on a closed channel
/// (which once starved every other task on the executor).
#[test]
fn the_worker_returns_once_its_handles_are_gone() {
    use futures_lite::FutureExt;
    use sip_assistant::driver::DeliveryWorker;
    use sip_assistant::webhook::{RetryPolicy, WebhookClient};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(sip_assistant::store::Store::open(dir.path()).expect("store"));
    let policy = RetryPolicy {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        max_age: Duration::from_secs(60),
    };
    let client = WebhookClient::new(
        Duration::from_secs(1),
        Duration::from_secs(2),
        std::sync::Arc::new(sip_assistant::policy::HostPolicy::default()),
    );
    let (worker, handle) = DeliveryWorker::new(store, client, policy, None);
    drop(handle);
    let returned = smol::block_on(
        async {
            worker.run().await;
            true
        }
        .or(async {
            smol::Timer::after(Duration::from_secs(3)).await;
            false
        }),
    );
    assert!(returned, "the worker kept running with no handle left");
}

#[test]
fn a_stalled_receiver_hits_the_request_timeout_and_is_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start_with(
        dir.path(),
        0,
        503,
        None,
        None,
        &["--delay", "3", "--delay-count", "1"],
    );
    let mut config = test_config(dir.path());
    config.webhook.request_timeout_ms = 500;
    let engine = HoldEngine::new();
    let app = start_app(config, engine.clone());
    complete_call(&app, &engine, "slow-1", &receiver.url("/x"));
    assert!(wait_for(Duration::from_secs(15), || record(&app, "slow-1")
        ["webhook"]["state"]
        == "delivered"));
    let r = record(&app, "slow-1");
    let first = &r["webhook"]["attempts"][0];
    assert_eq!(first["error"], "timed out after 500 ms", "{r}");
    let took = first["duration_ms"].as_u64().expect("duration");
    assert!((450..2000).contains(&took), "the timeout fired after {took} ms");
    assert_eq!(r["webhook"]["attempts"][1]["status_code"], 200);
    smol::block_on(app.shutdown());
}
