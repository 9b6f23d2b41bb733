//! Notifications against real peers: Kamailio as the PBX, baresip phones (1001 answers and says
//! "yes", 1002 answers with silence, 1003 rings and never answers), the embedded speech engines,
//! the Python webhook receiver, and the release-style binary killed with SIGKILL in the middle of
//! a round.

use crate::binary;
use crate::harness;
use crate::peers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use binary::{http, Service};
use harness::{request, router, start_app, test_config, wait_for, Receiver};
use peers::{Kamailio, Phone, PhoneMode};
use serde_json::{json, Value};
use sip_assistant::app::App;
use sip_assistant::driver::SipEngine;

const US: &str = "1050";
const OUR_PW: &str = "our-pw";

/// Kamailio with our extension and the phones `(ext, mode, wav)` registered to it.
fn pbx(phones: &[(&str, PhoneMode, Option<&Path>)]) -> (Kamailio, Vec<Phone>) {
    let passwords: Vec<(String, String)> = phones
        .iter()
        .map(|(e, _, _)| ((*e).to_string(), format!("pw-{e}")))
        .collect();
    let mut users: Vec<(&str, &str)> = vec![(US, OUR_PW)];
    users.extend(passwords.iter().map(|(e, p)| (e.as_str(), p.as_str())));
    let k = Kamailio::start(&users, 30_000);
    let started: Vec<Phone> = phones
        .iter()
        .map(|(ext, mode, wav)| {
            let p = Phone::start(ext, &format!("pw-{ext}"), k.port, "udp", *mode, *wav);
            assert!(p.wait_registered(&k, Duration::from_secs(10)), "{}", p.log());
            p
        })
        .collect();
    (k, started)
}

fn service(dir: &Path, k: &Kamailio) -> App {
    let mut c = test_config(dir);
    peers::register_to(&mut c, k.port, US, OUR_PW, "PCMU,PCMA", 40);
    c.webhook.initial_backoff_ms = 200;
    let engine = smol::block_on(SipEngine::start(&c)).expect("SIP engine with the embedded speech engines");
    let app = start_app(c, Arc::new(engine));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        k.ladder()
    );
    app
}

fn post(app: &App, body: Value) {
    let r = request(
        &router(app),
        "POST",
        "/notifications",
        Some(body.to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The final webhooks of notification `id` at the receiver, after waiting for at least one.
fn final_webhooks(receiver: &Receiver, id: &str, timeout: Duration) -> Vec<Value> {
    let of_id = || -> Vec<Value> {
        receiver
            .entries()
            .into_iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["body"].as_str()?).ok())
            .filter(|b| b["notification_id"] == id && b["event"] == "notification.ended")
            .collect()
    };
    wait_for(timeout, || !of_id().is_empty());
    of_id()
}

fn yes_choice() -> Value {
    json!({
        "prompt": "Say yes to take this page.",
        "options": [
            {"value": "yes", "synonyms": ["yes", "yeah", "okay"]},
            {"value": "no", "synonyms": ["no"]}
        ],
        "timeout_seconds": 10,
        "repeat_count": 2
    })
}

fn attempt_summary(n: &Value) -> Vec<(String, String)> {
    n["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["extension"].as_str().unwrap_or_default().to_string(),
                        x["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sequential_no_answer_at_1003_then_1001_says_yes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let says = dir.path().join("yes.wav");
    peers::speech_wav(&says, "yes", 6.0, 15.0);
    let (k, _phones) = pbx(&[
        ("1003", PhoneMode::Ring, None),
        ("1001", PhoneMode::AutoAnswer, Some(&says)),
    ]);
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let app = service(dir.path(), &k);
    post(
        &app,
        json!({"notification_id": "seq", "message": "Disk full on storage one.",
               "targets": [{"extension": "1003", "ring_timeout": 6}, "1001"],
               "choice": yes_choice(), "acknowledge": ["yes"],
               "callback_url": receiver.url("/pages")}),
    );
    let hooks = final_webhooks(&receiver, "seq", Duration::from_secs(90));
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let n = &hooks[0];
    assert_eq!(n["status"], "acknowledged", "{n:#}\n{}", k.ladder());
    assert_eq!(
        attempt_summary(n),
        [
            ("1003".into(), "no_answer".into()),
            ("1001".into(), "completed".into())
        ]
    );
    assert_eq!(n["acknowledged_by"][0]["extension"], "1001");
    assert_eq!(n["acknowledged_by"][0]["choice_response"], "yes");
    // No per-call webhooks without callback_each.
    assert_eq!(receiver.entries().len(), 1);
    smol::block_on(app.shutdown());
}

#[test]
fn parallel_to_1001_and_1002_ends_at_the_first_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let says = dir.path().join("yes.wav");
    peers::speech_wav(&says, "yes", 6.0, 15.0);
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 60.0);
    let (k, _phones) = pbx(&[
        ("1001", PhoneMode::AutoAnswer, Some(&says)),
        ("1002", PhoneMode::AutoAnswer, Some(&silence)),
    ]);
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let app = service(dir.path(), &k);
    post(
        &app,
        json!({"notification_id": "par", "message": "Door bell.", "targets": ["1001", "1002"],
               "strategy": "parallel", "quorum": 1, "choice": yes_choice(),
               "callback_url": receiver.url("/pages")}),
    );
    let hooks = final_webhooks(&receiver, "par", Duration::from_secs(90));
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let n = &hooks[0];
    assert_eq!(n["status"], "acknowledged", "{n:#}");
    assert_eq!(n["acknowledged_by"].as_array().map(Vec::len), Some(1));
    assert_eq!(n["acknowledged_by"][0]["extension"], "1001");
    // 1002 heard the prompt in silence and was hung up when 1001 said yes: its call ended before
    // its own listening gave up (2 x 10 s), as a cancelled call.
    let other = &n["attempts"][1];
    assert_eq!(other["extension"], "1002");
    assert_eq!(other["status"], "failed", "{n:#}");
    assert_eq!(other["error"], "cancelled by API request", "{n:#}");
    smol::block_on(app.shutdown());
}

#[test]
fn targets_that_never_answer_exhaust_the_rounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (k, _phones) = pbx(&[("1003", PhoneMode::Ring, None), ("1002", PhoneMode::Reject, None)]);
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let app = service(dir.path(), &k);
    post(
        &app,
        json!({"notification_id": "never", "message": "Backup failed.",
               "targets": [{"extension": "1003", "ring_timeout": 5}, "1002"],
               "rounds": 2, "round_interval_seconds": 30,
               "callback_url": receiver.url("/pages")}),
    );
    let hooks = final_webhooks(&receiver, "never", Duration::from_secs(120));
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let n = &hooks[0];
    assert_eq!(n["status"], "exhausted", "{n:#}");
    assert_eq!(
        attempt_summary(n),
        [
            ("1003".into(), "no_answer".into()),
            ("1002".into(), "busy".into()),
            ("1003".into(), "no_answer".into()),
            ("1002".into(), "busy".into()),
        ]
    );
    // The second round began 30 s after the first round's last call ended.
    let ts = |v: &Value| -> jiff::Timestamp { v.as_str().and_then(|s| s.parse().ok()).expect("timestamp") };
    let gap = ts(&n["attempts"][2]["created_at"]) - ts(&n["attempts"][1]["ended_at"]);
    let gap = gap.total(jiff::Unit::Second).expect("seconds");
    assert!((29.5..35.0).contains(&gap), "round gap {gap} s");
    smol::block_on(app.shutdown());
}

#[test]
fn a_sigkill_in_the_middle_of_a_round_resumes_and_sends_one_final_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 30.0);
    let (k, _phones) = pbx(&[
        ("1003", PhoneMode::Ring, None),
        ("1001", PhoneMode::AutoAnswer, Some(&silence)),
    ]);
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let env = |sip_port: u16, rtp: u16| {
        vec![
            ("SIP_ASSISTANT__SIP__REGISTRAR", format!("127.0.0.1:{}", k.port)),
            ("SIP_ASSISTANT__SIP__USER", US.to_string()),
            ("SIP_ASSISTANT__SIP__PASSWORD", OUR_PW.to_string()),
            ("SIP_ASSISTANT__SIP__LOCAL_PORT", sip_port.to_string()),
            ("SIP_ASSISTANT__MEDIA__RTP_PORT_MIN", rtp.to_string()),
            ("SIP_ASSISTANT__MEDIA__RTP_PORT_MAX", (rtp + 39).to_string()),
            ("SIP_ASSISTANT__MEDIA__CODECS", "PCMU,PCMA".to_string()),
        ]
    };
    // The binary checks its configuration: the RTP range starts on an even port.
    let block = peers::free_port_block(42);
    let (sip_port, rtp) = (peers::free_udp_tcp_port(), block + block % 2);
    let mut first = Service::start(dir.path(), &env(sip_port, rtp));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        first.lines()
    );
    let body = json!({"notification_id": "crash", "message": "Power failure in rack four.",
        "targets": [{"extension": "1003", "ring_timeout": 60}, "1001"],
        "callback_url": receiver.url("/pages")})
    .to_string();
    let (status, text) = http(first.api, "POST", "/notifications", &body);
    assert_eq!(status, 200, "{text}");
    // 1003 rings: the first call of the round is under way.
    let ringing = wait_for(Duration::from_secs(15), || {
        let (_, r) = http(first.api, "GET", "/calls/crash.r1.t0", "");
        r.contains(r#""status":"ringing""#)
    });
    assert!(ringing, "{}", first.lines());
    first.signal("KILL");
    let (_, status, _) = first.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "killed");

    let second = Service::start(dir.path(), &env(peers::free_udp_tcp_port(), rtp));
    let hooks = final_webhooks(&receiver, "crash", Duration::from_secs(60));
    assert_eq!(hooks.len(), 1, "{}", second.lines());
    let n = &hooks[0];
    assert_eq!(n["status"], "acknowledged", "{n:#}\n{}", second.lines());
    assert_eq!(
        attempt_summary(n),
        [
            ("1003".into(), "failed".into()),
            ("1001".into(), "completed".into())
        ]
    );
    assert_eq!(n["attempts"][0]["error"], "service restarted during call");
    // Exactly one: nothing more arrives.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        final_webhooks(&receiver, "crash", Duration::from_millis(10)).len(),
        1
    );
    let (_, rec) = http(second.api, "GET", "/notifications/crash", "");
    let rec: Value = serde_json::from_str(&rec).expect("json");
    assert_eq!(rec["attempts"].as_array().map(Vec::len), Some(2), "{rec:#}");
}
