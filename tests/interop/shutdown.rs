//! Graceful shutdown: new calls are refused, running calls get the grace period and then end
//! `failed` with "service shutting down" and their webhook, waiting calls stay queued for the next
//! start.

use crate::harness;

use std::time::{Duration, Instant};

use harness::{completed, request, router, start_app, test_config, wait_for, HoldEngine, Receiver};
use serde_json::json;

#[test]
fn drain_refuses_new_calls_and_ends_running_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let mut config = test_config(dir.path());
    config.calls.max_concurrent = 1;
    config.calls.shutdown_grace_seconds = 1;
    let engine = HoldEngine::new();
    let app = start_app(config.clone(), engine.clone());
    let server = router(&app);
    let body = |id: &str| json!({"message": "m", "extension": "1001", "call_id": id, "callback_url": receiver.url("/s")});
    assert_eq!(
        request(
            &server,
            "POST",
            "/call",
            Some(body("run-1").to_string().as_bytes()),
            &[]
        )
        .status,
        200
    );
    engine.wait_started("run-1");
    assert_eq!(
        request(
            &server,
            "POST",
            "/call",
            Some(body("wait-1").to_string().as_bytes()),
            &[]
        )
        .status,
        200
    );

    let started = Instant::now();
    let drain = std::thread::spawn({
        let scheduler = app.scheduler.clone();
        move || smol::block_on(scheduler.drain(Duration::from_secs(1)))
    });
    assert!(wait_for(Duration::from_secs(5), || {
        let r = request(
            &server,
            "POST",
            "/call",
            Some(body("late-1").to_string().as_bytes()),
            &[],
        );
        r.status == 503 && r.detail() == "service is shutting down"
    }));
    drain.join().expect("drain");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the grace period was not given"
    );
    let run = app.store.get_call("run-1").expect("store").expect("record");
    assert_eq!(run.status.as_str(), "failed");
    assert_eq!(run.error.as_deref(), Some("service shutting down"));
    let hooks = receiver.wait_entries(1, Duration::from_secs(10));
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0]["body"]
        .as_str()
        .expect("body")
        .contains("service shutting down"));
    smol::block_on(app.shutdown());
    drop(server);
    drop(app);

    // The waiting call was never started and runs after the next start.
    let engine = HoldEngine::new();
    let app = start_app(config, engine.clone());
    engine.wait_started("wait-1");
    assert!(engine.release("wait-1", completed()));
    assert!(wait_for(Duration::from_secs(10), || {
        app.store
            .get_call("wait-1")
            .ok()
            .flatten()
            .is_some_and(|r| r.status.as_str() == "completed")
    }));
    smol::block_on(app.shutdown());
}

#[test]
fn a_call_that_ends_within_the_grace_period_keeps_its_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.calls.shutdown_grace_seconds = 5;
    let engine = HoldEngine::new();
    let app = start_app(config, engine.clone());
    let server = router(&app);
    let body = json!({"message": "m", "extension": "1001", "call_id": "quick-1"}).to_string();
    assert_eq!(
        request(&server, "POST", "/call", Some(body.as_bytes()), &[]).status,
        200
    );
    engine.wait_started("quick-1");
    let drain = std::thread::spawn({
        let scheduler = app.scheduler.clone();
        move || smol::block_on(scheduler.drain(Duration::from_secs(5)))
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(engine.release("quick-1", completed()));
    drain.join().expect("drain");
    let r = app.store.get_call("quick-1").expect("store").expect("record");
    assert_eq!(r.status.as_str(), "completed");
    assert_eq!(r.error, None);
    smol::block_on(app.shutdown());
}
