//! Graceful shutdown of the real `sip-assistant run` binary with a call ringing at a SIPp peer that
//! never answers, then SIGTERM. During the grace period (2 s) a new `POST /call` gets 503; when the
//! grace runs out the call is CANCELled and ends `failed` with "service shutting down", and its
//! webhook is delivered before the process exits with code 0; the store counted its flushes.
//! With a registrar (a real Kamailio) the registration is removed too (REGISTER Expires: 0, seen in
//! Kamailio's location table).
//!
//! Until the speech engines land an answered call is hung up at once, so "a call that stays up" is
//! a call that keeps ringing (SIPp `RingForever`, ring_timeout 60 s).

use crate::binary;
use crate::harness;
use crate::peers;

use std::time::{Duration, Instant};

use binary::{http, Service};
use harness::{wait_for, Receiver};
use peers::{Kamailio, Sipp, SippScenario};

/// Place a call to `uri` that will still ring at SIGTERM, and wait until it rings.
fn place_ringing_call(service: &Service, uri: &str, hook: &str, peer: &Sipp) {
    let call = format!(
        r#"{{"message":"Hold on","extension":"{uri}","callback_url":"{hook}","call_id":"held-1","ring_timeout":60}}"#
    );
    let (status, body) = http(service.api, "POST", "/call", &call);
    assert_eq!(status, 200, "{body}");
    assert!(
        wait_for(Duration::from_secs(15), || {
            http(service.api, "GET", "/calls/held-1", "")
                .1
                .contains(r#""status":"ringing""#)
        }),
        "the call never rang: {}\n{}\n{}",
        http(service.api, "GET", "/calls/held-1", "").1,
        service.lines(),
        peer.messages()
    );
}

/// SIGTERM; assert 503 for a new call during the grace, exit code 0 after at least the grace;
/// returns the log.
fn sigterm_and_expect_clean_exit(service: &mut Service) -> String {
    let sigterm_at = Instant::now();
    service.signal("TERM");
    let late = r#"{"message":"too late","extension":"1001","call_id":"late-1"}"#;
    let mut refused = (0, String::new());
    assert!(
        wait_for(Duration::from_secs(2), || {
            refused = http(service.api, "POST", "/call", late);
            refused.0 == 503
        }),
        "no 503 during the grace period: {refused:?}"
    );
    assert!(refused.1.contains("shutting down"), "503 body: {}", refused.1);
    let (exited, status, lines) = service.wait_exit(Duration::from_secs(25));
    let took = sigterm_at.elapsed();
    assert!(exited && status.success(), "exit {status:?}\n{lines}");
    assert!(
        took >= Duration::from_millis(1900),
        "the grace period was not given ({took:?})\n{lines}"
    );
    assert!(
        lines.contains("stopped") && lines.contains("store_flushes="),
        "{lines}"
    );
    lines
}

fn assert_shutdown_webhook(receiver: &Receiver, context: &str) {
    let hooks = receiver.entries();
    assert_eq!(hooks.len(), 1, "webhooks: {hooks:?}\n{context}");
    let payload: serde_json::Value =
        serde_json::from_str(hooks[0]["body"].as_str().expect("body")).expect("json");
    assert_eq!(payload["call_id"], "held-1");
    assert_eq!(payload["status"], "failed", "{payload}");
    assert_eq!(payload["error"], "service shutting down", "{payload}");
}

#[test]
fn sigterm_refuses_new_calls_cancels_the_ringing_call_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let mut ringing = Sipp::uas(SippScenario::RingForever);
    let mut service = Service::start(dir.path(), &[]);
    place_ringing_call(&service, &ringing.uri("uas"), &receiver.url("/hook"), &ringing);
    let lines = sigterm_and_expect_clean_exit(&mut service);
    assert_shutdown_webhook(&receiver, &lines);
    // The peer saw the whole RingForever scenario: CANCEL -> 200, 487 -> ACK.
    assert_eq!(
        ringing.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        ringing.messages()
    );
    assert!(
        !lines.contains("did not stop in time"),
        "the CANCEL path was not taken:\n{lines}"
    );
}

/// Through Kamailio the SIPp 487 loses its Via (SIPp builds it from the proxy's hop-by-hop CANCEL,
/// so the proxy strips the only Via): the call never hears its 487, which is exactly the case of a
/// PBX that never confirms a CANCEL. The drain then makes the call final itself.
#[test]
fn sigterm_with_a_registrar_unregisters_and_ends_a_call_the_pbx_never_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let pbx = Kamailio::start(&[("1050", "shutdown-pass")], 60_000);
    let ringing = Sipp::uas(SippScenario::RingForever);
    let mut service = Service::start(
        dir.path(),
        &[
            ("SIP_ASSISTANT__SIP__USER", "1050".into()),
            ("SIP_ASSISTANT__SIP__PASSWORD", "shutdown-pass".into()),
            ("SIP_ASSISTANT__SIP__REGISTRAR", format!("127.0.0.1:{}", pbx.port)),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(15), || {
            http(service.api, "GET", "/health", "")
                .1
                .contains(r#""sip_registered":true"#)
        }),
        "not registered; kamailio:\n{}",
        pbx.ladder()
    );
    assert!(pbx.lookup("1050").is_some(), "{}", pbx.ladder());
    place_ringing_call(&service, &ringing.uri("uas"), &receiver.url("/hook"), &ringing);
    let lines = sigterm_and_expect_clean_exit(&mut service);
    assert_shutdown_webhook(&receiver, &format!("{lines}\n--- kamailio ---\n{}", pbx.ladder()));
    // De-registration: Kamailio no longer has a contact for the extension, and saw the REGISTER
    // after the CANCEL.
    assert!(
        wait_for(Duration::from_secs(5), || pbx.lookup("1050").is_none()),
        "still registered after exit:\n{}",
        pbx.ladder()
    );
    let ladder = pbx.ladder();
    let cancel = ladder.find("IN  CANCEL").expect("CANCEL seen by the proxy");
    assert!(
        ladder[cancel..].contains("IN  REGISTER"),
        "no REGISTER after the CANCEL:\n{ladder}"
    );
}
