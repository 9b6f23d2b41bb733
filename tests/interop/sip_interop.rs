//! The SIP user agent against real peers the suite starts itself (tests/support/peers.rs):
//! Kamailio as registrar and proxy with digest auth, baresip phones that answer, reject (486) or
//! ring forever, and SIPp user agents for calls by direct SIP URI without a registrar; over UDP
//! and TCP. On failure each test prints the SIP ladder it saw.

use crate::harness;
use crate::peers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{request, router, start_app, test_config, wait_for};
use peers::{Kamailio, Phone, PhoneMode, Sipp, SippScenario};
use sip_assistant::app::App;
use sip_assistant::call::{CallRecord, CallRequest};
use sip_assistant::config::{Config, Secret, Transport};
use sip_assistant::driver::SipEngine;

const OUR_USER: &str = "1050";
const OUR_PASSWORD: &str = "our-secret-pw";

fn sip_config(dir: &std::path::Path, kamailio: Option<&Kamailio>, transport: Transport) -> Config {
    let mut c = test_config(dir);
    c.sip.local_port = peers::free_udp_tcp_port();
    c.sip.transport = transport;
    if let Some(k) = kamailio {
        c.sip.user = Some(OUR_USER.into());
        c.sip.password = Some(Secret::new(OUR_PASSWORD));
        c.sip.registrar = Some(format!("127.0.0.1:{}", k.port));
        c.sip.domain = Some("127.0.0.1".into());
    }
    c
}

fn start(config: Config) -> (App, SipEngine) {
    let engine = smol::block_on(SipEngine::start(&config)).expect("SIP engine starts");
    let app = start_app(config, Arc::new(engine.clone()));
    (app, engine)
}

fn call(app: &App, id: &str, extension: &str, ring_timeout: u32) {
    let req = CallRequest {
        message: "Hello from the test suite.".into(),
        extension: extension.into(),
        callback_url: None,
        ring_timeout,
        choice: None,
        call_id: None,
        language: None,
        voice: None,
        not_before: None,
        notification_id: None,
    };
    smol::block_on(app.scheduler.submit(Some(id), req)).expect("submit");
}

/// Wait until the call is final; its record.
fn finished(app: &App, id: &str, timeout: Duration, ladder: &dyn Fn() -> String) -> CallRecord {
    let done = wait_for(timeout, || {
        app.store
            .get_call(id)
            .ok()
            .flatten()
            .is_some_and(|r| r.status.is_final())
    });
    let record = app.store.get_call(id).ok().flatten().expect("record");
    assert!(done, "call {id} did not end: {record:?}\n{}", ladder());
    record
}

fn events(r: &CallRecord) -> Vec<String> {
    r.timeline.iter().map(|e| e.event.clone()).collect()
}

fn registered_phones(k: &Kamailio, transport: &str) -> (Phone, Phone, Phone) {
    let answer = Phone::start("1001", "pw-1001", k.port, transport, PhoneMode::AutoAnswer, None);
    let reject = Phone::start("1002", "pw-1002", k.port, transport, PhoneMode::Reject, None);
    let ring = Phone::start("1003", "pw-1003", k.port, transport, PhoneMode::Ring, None);
    for p in [&answer, &reject, &ring] {
        assert!(
            p.wait_registered(k, Duration::from_secs(10)),
            "phone {} did not register\n{}",
            p.user,
            p.log()
        );
    }
    (answer, reject, ring)
}

fn users() -> Vec<(&'static str, &'static str)> {
    vec![
        (OUR_USER, OUR_PASSWORD),
        ("1001", "pw-1001"),
        ("1002", "pw-1002"),
        ("1003", "pw-1003"),
    ]
}

/// Registration 401 → 200, health follows it, and an answered, a busy, a ringing-forever and an
/// unknown extension end as they should; on shutdown the registration is removed.
fn pbx_scenarios(transport: Transport, transport_name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kamailio::start(&users(), 30_000);
    let phones = registered_phones(&k, transport_name);
    let (app, engine) = start(sip_config(dir.path(), Some(&k), transport));
    let ladder = || format!("===== kamailio ladder =====\n{}", k.ladder());
    let server = router(&app);

    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(OUR_USER).is_some()),
        "we never registered\n{}",
        ladder()
    );
    assert!(wait_for(Duration::from_secs(5), || {
        request(&server, "GET", "/health", None, &[]).json()
            == serde_json::json!({"status": "healthy", "sip_registered": true})
    }));
    let contact = k.lookup(OUR_USER).unwrap_or_default();
    assert!(
        contact.contains(&format!(":{}", engine.local_port)),
        "contact {contact}"
    );
    if transport == Transport::Tcp {
        assert!(
            contact.contains("transport=tcp"),
            "not registered over TCP: {contact}"
        );
    }
    let lad = k.ladder();
    assert!(
        lad.contains("401") && lad.contains("REGISTER"),
        "no digest challenge seen:\n{lad}"
    );
    // We answer OPTIONS (qualify) with 200.
    if transport == Transport::Udp {
        assert_eq!(
            peers::options_ping(engine.local_port, Duration::from_secs(2)),
            Some(200)
        );
    }

    call(&app, "answered", "1001", 20);
    call(&app, "busy", "1002", 20);
    call(&app, "rings", "1003", 5);
    call(&app, "unknown", "1099", 20);
    let t0 = Instant::now();
    let answered = finished(&app, "answered", Duration::from_secs(20), &ladder);
    assert_eq!(
        answered.status.as_str(),
        "completed",
        "{answered:?}\n{}",
        ladder()
    );
    assert!(answered.answered_at.is_some());
    let ev = events(&answered);
    for step in [
        "ringing",
        "answered",
        "media_started",
        "message_started",
        "message_ended",
        "hangup",
    ] {
        assert!(ev.contains(&step.to_string()), "{step} missing from {ev:?}");
    }
    let media = answered.media.clone().expect("media health recorded");
    assert_eq!(media.codec, "PCMU", "{media:?}");
    assert!(
        answered.message_played,
        "the message was spoken in full: {answered:?}"
    );

    let busy = finished(&app, "busy", Duration::from_secs(20), &ladder);
    assert_eq!(busy.status.as_str(), "busy", "{busy:?}\n{}", ladder());
    assert_eq!(busy.error.as_deref(), Some("486 Busy Here"));

    let unknown = finished(&app, "unknown", Duration::from_secs(20), &ladder);
    assert_eq!(unknown.status.as_str(), "failed", "{unknown:?}");
    assert_eq!(unknown.error.as_deref(), Some("404 Not Found"), "{}", ladder());

    let rings = finished(&app, "rings", Duration::from_secs(30), &ladder);
    assert_eq!(rings.status.as_str(), "no_answer", "{rings:?}\n{}", ladder());
    assert!(
        t0.elapsed() >= Duration::from_secs(5),
        "the ring timeout was not honoured"
    );
    assert!(events(&rings).contains(&"ringing".to_string()));
    let lad = k.ladder();
    assert!(
        lad.contains("CANCEL") && lad.contains("487"),
        "no CANCEL/487 seen:\n{lad}"
    );

    // Graceful stop: Expires: 0 removes the binding.
    smol::block_on(app.shutdown());
    assert!(
        wait_for(Duration::from_secs(5), || k.lookup(OUR_USER).is_none()),
        "the registration survived shutdown\n{}",
        ladder()
    );
    drop(phones);
}

#[test]
fn through_kamailio_over_udp() {
    pbx_scenarios(Transport::Udp, "udp");
}

#[test]
fn through_kamailio_over_tcp() {
    pbx_scenarios(Transport::Tcp, "tcp");
}

#[test]
fn registered_again_within_30_seconds_of_a_pbx_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut k = Kamailio::start(&users(), 30_000);
    let (app, engine) = start(sip_config(dir.path(), Some(&k), Transport::Udp));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(OUR_USER).is_some()),
        "{}",
        k.ladder()
    );
    k.restart();
    let back = Instant::now();
    assert!(
        k.lookup(OUR_USER).is_none(),
        "Kamailio kept the binding across the restart"
    );
    let again = wait_for(Duration::from_secs(30), || k.lookup(OUR_USER).is_some());
    let took = back.elapsed();
    assert!(again, "not registered again within 30 s\n{}", k.ladder());
    eprintln!("registered again {took:?} after the PBX came back");
    assert!(engine.local_port > 0);
    smol::block_on(app.shutdown());
}

#[test]
fn direct_sip_uris_without_a_registrar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, _engine) = start(sip_config(dir.path(), None, Transport::Udp));
    let mut answer = Sipp::uas(SippScenario::Answer { bye_after: None });
    let mut busy = Sipp::uas(SippScenario::Busy);
    let mut ring = Sipp::uas(SippScenario::RingForever);
    let ladder = |s: &Sipp| format!("===== sipp =====\n{}", s.messages());
    call(&app, "d-answer", &answer.uri("uas"), 20);
    call(&app, "d-busy", &busy.uri("uas"), 20);
    call(&app, "d-ring", &ring.uri("uas"), 5);

    let r = finished(&app, "d-answer", Duration::from_secs(20), &|| ladder(&answer));
    assert_eq!(r.status.as_str(), "completed", "{r:?}\n{}", ladder(&answer));
    assert_eq!(
        answer.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        ladder(&answer)
    );

    let r = finished(&app, "d-busy", Duration::from_secs(20), &|| ladder(&busy));
    assert_eq!(r.status.as_str(), "busy", "{r:?}");
    assert_eq!(
        busy.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        ladder(&busy)
    );

    let r = finished(&app, "d-ring", Duration::from_secs(30), &|| ladder(&ring));
    assert_eq!(r.status.as_str(), "no_answer", "{r:?}\n{}", ladder(&ring));
    assert_eq!(
        ring.wait_exit(Duration::from_secs(10)),
        Some(0),
        "CANCEL/487/ACK incomplete:\n{}",
        ladder(&ring)
    );
    smol::block_on(app.shutdown());
}

#[test]
fn public_address_goes_into_via_contact_and_sdp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = sip_config(dir.path(), None, Transport::Udp);
    // Another loopback address than the one the kernel would pick, so its use is visible.
    config.sip.public_address = Some("127.0.0.2".into());
    let (app, _engine) = start(config);
    let mut answer = Sipp::uas(SippScenario::Answer { bye_after: None });
    call(&app, "p-answer", &answer.uri("uas"), 20);
    let r = finished(&app, "p-answer", Duration::from_secs(20), &|| answer.messages());
    assert_eq!(r.status.as_str(), "completed", "{r:?}\n{}", answer.messages());
    assert_eq!(
        answer.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        answer.messages()
    );
    let seen = answer.messages();
    assert!(seen.contains("Via: SIP/2.0/UDP 127.0.0.2:"), "{seen}");
    assert!(seen.contains("Contact: <sip:sip-assistant@127.0.0.2:"), "{seen}");
    assert!(seen.contains("c=IN IP4 127.0.0.2"), "{seen}");
    smol::block_on(app.shutdown());
}
