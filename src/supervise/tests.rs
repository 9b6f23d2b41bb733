use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::watchdog::WatchdogPlan;
use super::{Supervisor, EXIT_CODE};

/// A supervisor whose exit hook reports the code on a channel after `grace`.
fn armed(grace: Duration) -> (Supervisor, mpsc::Receiver<(i32, Instant)>) {
    let sup = Supervisor::new();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    sup.arm_exit(
        Box::new(move |code| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send((code, Instant::now()));
            }
        }),
        grace,
    );
    (sup, rx)
}

#[test]
fn a_panicking_task_turns_health_off_and_exits_with_70_after_the_grace() {
    let (sup, exits) = armed(Duration::from_millis(200));
    assert!(sup.is_healthy());
    let failed_at = Instant::now();
    let out = smol::block_on(sup.spawn("webhook delivery", async move {
        if failed_at.elapsed() < Duration::from_secs(3600) {
            panic!("boom in the worker");
        }
        1
    }));
    assert_eq!(out, None);
    assert!(!sup.is_healthy(), "health must turn off at once");
    let failures = sup.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("webhook delivery"), "{failures:?}");
    assert!(failures[0].contains("boom in the worker"), "{failures:?}");
    let (code, at) = exits
        .recv_timeout(Duration::from_secs(5))
        .expect("the exit hook is called");
    assert_eq!(code, EXIT_CODE);
    assert!(
        at.duration_since(failed_at) >= Duration::from_millis(190),
        "no grace given"
    );
    // Only one exit however many failures follow.
    sup.fail("scheduler", "panicked: again");
    assert!(exits.recv_timeout(Duration::from_millis(400)).is_err());
}

#[test]
fn a_task_that_ends_normally_is_no_failure() {
    let (sup, exits) = armed(Duration::from_millis(10));
    assert_eq!(smol::block_on(sup.spawn("store sweep", async { 7 })), Some(7));
    assert!(sup.is_healthy());
    assert!(exits.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn a_forever_task_that_ends_before_shutdown_is_a_failure_and_after_it_is_not() {
    let (sup, exits) = armed(Duration::from_millis(10));
    smol::block_on(sup.spawn_forever("api accept loop", async {}));
    assert!(!sup.is_healthy());
    assert!(sup.failures()[0].contains("api accept loop ended unexpectedly"));
    assert_eq!(
        exits.recv_timeout(Duration::from_secs(5)).map(|e| e.0),
        Ok(EXIT_CODE)
    );

    let (sup, exits) = armed(Duration::from_millis(10));
    sup.begin_shutdown();
    smol::block_on(sup.spawn_forever("api accept loop", async {}));
    assert!(sup.is_healthy());
    assert!(exits.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn a_panicking_thread_body_is_a_failure() {
    let (sup, exits) = armed(Duration::from_millis(10));
    let s = sup.clone();
    let joined =
        std::thread::spawn(move || s.run_guarded("media thread", || -> u8 { panic!("index out of bounds") }))
            .join();
    assert_eq!(joined.ok(), Some(None), "the panic is caught in the thread");
    assert!(!sup.is_healthy());
    assert!(sup.failures()[0].starts_with("media thread panicked"));
    assert_eq!(
        exits.recv_timeout(Duration::from_secs(5)).map(|e| e.0),
        Ok(EXIT_CODE)
    );
}

#[test]
fn an_unarmed_supervisor_reports_but_does_not_exit() {
    let sup = Supervisor::new();
    sup.fail("scheduler", "panicked: x");
    assert!(!sup.is_healthy());
    // Arming later does not exit for an old failure on its own; the next failure does.
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    sup.arm_exit(
        Box::new(move |c| {
            let _ = tx.lock().map(|t| t.send(c));
        }),
        Duration::from_millis(1),
    );
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    sup.fail("scheduler", "panicked: y");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(EXIT_CODE));
}

#[test]
fn heartbeats_go_stale_in_virtual_time_and_leave_when_dropped() {
    let sup = Supervisor::new();
    let t0 = Instant::now();
    let sip = sup.heartbeats().register_at("sip driver loop", t0);
    let media = sup.heartbeats().register_at("media thread", t0);
    let max = Duration::from_secs(3);
    assert!(sup.heartbeats().stale(t0 + max, max).is_empty());
    sip.beat_at(t0 + Duration::from_secs(2));
    assert_eq!(
        sup.heartbeats().stale(t0 + Duration::from_secs(4), max),
        vec!["media thread"]
    );
    // A beat from the past does not move the heartbeat back.
    media.beat_at(t0 + Duration::from_secs(4));
    media.beat_at(t0);
    assert_eq!(
        sup.heartbeats().stale(t0 + Duration::from_millis(5500), max),
        vec!["sip driver loop"]
    );
    drop(sip);
    assert!(sup
        .heartbeats()
        .stale(t0 + Duration::from_millis(5500), max)
        .is_empty());
    assert_eq!(sup.heartbeats().names(), vec!["media thread"]);
}

#[test]
fn the_watchdog_plan_follows_systemds_variables() {
    let plan = WatchdogPlan::from_env_values(Some("30000000"), None, 42).expect("plan");
    assert_eq!(plan.ping_every, Duration::from_secs(15));
    assert_eq!(plan.stale_after, Duration::from_secs(15));
    let short = WatchdogPlan::from_env_values(Some("1000000"), Some("42"), 42).expect("plan");
    assert_eq!(short.ping_every, Duration::from_millis(500));
    assert_eq!(
        short.stale_after,
        Duration::from_secs(3),
        "never staler than 3 beats"
    );
    assert_eq!(
        WatchdogPlan::from_env_values(Some("30000000"), Some("41"), 42),
        None
    );
    assert_eq!(WatchdogPlan::from_env_values(None, None, 42), None);
    assert_eq!(WatchdogPlan::from_env_values(Some("0"), None, 42), None);
    assert_eq!(WatchdogPlan::from_env_values(Some("x"), None, 42), None);
}

#[test]
fn the_pinger_pings_only_while_every_loop_beats() {
    let sup = Supervisor::new();
    let plan = WatchdogPlan::from_env_values(Some("10000000"), None, 1).expect("plan");
    let t0 = Instant::now();
    let hb = sup.heartbeats();
    let sip = hb.register_at("sip driver loop", t0);
    let _media = hb.register_at("media thread", t0);
    let sched = hb.register_at("scheduler", t0);
    // Every half interval the loops beat: pings go out.
    for i in 1..=4u32 {
        let now = t0 + plan.ping_every * i;
        sip.beat_at(now);
        _media.beat_at(now);
        sched.beat_at(now);
        assert_eq!(plan.decide(hb, now), Ok(()));
    }
    // The scheduler hangs: after stale_after, no ping.
    let hung_at = t0 + plan.ping_every * 4;
    let later = hung_at + plan.stale_after + Duration::from_millis(1);
    sip.beat_at(later);
    _media.beat_at(later);
    assert_eq!(plan.decide(hb, later), Err(vec!["scheduler"]));
    sched.beat_at(later);
    assert_eq!(plan.decide(hb, later), Ok(()));
}
