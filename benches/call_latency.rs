//! Call latency figures for `docs/call-script.md` (issue #6), measured on whole calls with real peers on
//! loopback. Prints `FIGURE` lines; asserts nothing about speed.
//!
//! ```sh
//! cargo bench --bench call_latency                 # both, 50 and 20 calls
//! cargo bench --bench call_latency -- audio 50     # answer -> first RTP packet of the message
//! cargo bench --bench call_latency -- speech 20    # end of the caller's speech -> webhook received
//! ```
//!
//! 1. **Answer → first RTP packet of the message**, over calls to a SIPp UAS (direct `sip:` URI):
//!    the record's `media.answer_to_audio_ms`, timed by the service from the 200 OK reaching the
//!    call to the media thread sending the first packet that carries speech. Every call has its own
//!    message (no cache hits), four at a time. Two runs: the phone rings 2 s (the message is
//!    rendered while it rings), and the phone answers at once (the worst case: rendering may still
//!    be under way).
//! 2. **End of the caller's speech → webhook POST received**, over calls through Kamailio to a
//!    baresip phone that says "yes" (espeak-ng, at a known offset in the file it plays), with the
//!    embedded engines (flite, earshot, pocketsphinx) and the built-in matcher. The end of speech is
//!    the answer time in the record plus the offset of the last voiced 20 ms in the file; the
//!    webhook's arrival is stamped by the receiver (a real HTTP server). Also split into stages from
//!    the timeline, and run again with `script.acknowledgement = ""` to show what the spoken
//!    "Thank you." costs.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../tests/support/harness.rs"]
mod harness;
#[path = "../tests/support/peers.rs"]
mod peers;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::{request, router, start_app, test_config, wait_for, Receiver};
use peers::{Kamailio, Phone, PhoneMode, Sipp, SippScenario};
use serde_json::{json, Value};
use sip_assistant::app::App;
use sip_assistant::config::{Config, Secret, Transport};
use sip_assistant::driver::SipEngine;

fn base_config(dir: &Path) -> Config {
    let mut c = test_config(dir);
    c.sip.local_port = peers::free_udp_tcp_port();
    c.sip.transport = Transport::Udp;
    c.media.codecs = "PCMU,PCMA".into();
    let base = peers::free_port_block(40);
    c.media.rtp_port_min = base;
    c.media.rtp_port_max = base + 39;
    c.log.level = "warn".into();
    c
}

fn start(config: Config) -> App {
    let engine = smol::block_on(SipEngine::start(&config)).expect("SIP engine");
    start_app(config, Arc::new(engine))
}

fn post(app: &App, body: Value) -> String {
    let body = body.to_string();
    let r = request(&router(app), "POST", "/call", Some(body.as_bytes()), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["call_id"].as_str().expect("call_id").to_string()
}

fn record(app: &App, id: &str) -> Value {
    request(&router(app), "GET", &format!("/calls/{id}"), None, &[]).json()
}

fn is_final(rec: &Value) -> bool {
    matches!(
        rec["status"].as_str(),
        Some("completed" | "failed" | "busy" | "no_answer")
    )
}

/// `q` quantile (0..1) of sorted `v`, nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "FIGURE {name}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        quantile(&v, 0.5),
        quantile(&v, 0.9),
        quantile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

/// Seconds since the Unix epoch of an RFC 3339 time in a record.
fn epoch_seconds(v: &Value) -> Option<f64> {
    let t = humantime::parse_rfc3339(v.as_str()?).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// When timeline event `name` first happened (Unix seconds).
fn event_at(rec: &Value, name: &str) -> Option<f64> {
    rec["timeline"]
        .as_array()?
        .iter()
        .find(|e| e["event"] == name)
        .and_then(|e| epoch_seconds(&e["at"]))
}

// -------------------------------------------------------------------------------------------------
// 1. Answer -> first RTP packet of the message
// -------------------------------------------------------------------------------------------------

fn first_audio(calls: u32, ring: Duration) -> Vec<f64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sipp = Sipp::uas_calls(SippScenario::AnswerAfterRinging { ring }, calls);
    let mut config = base_config(dir.path());
    config.calls.max_concurrent = 4;
    config.calls.queue_limit = calls.max(10);
    let app = start(config);
    let ids: Vec<String> = (0..calls)
        .map(|n| {
            post(
                &app,
                json!({"message": format!("This is message number {n} of the latency benchmark. Goodbye."),
                       "extension": format!("sip:uas@127.0.0.1:{}", sipp.port)}),
            )
        })
        .collect();
    let budget = Duration::from_secs(30 + u64::from(calls) * 3);
    let done = wait_for(budget, || ids.iter().all(|id| is_final(&record(&app, id))));
    assert!(done, "calls did not finish in {budget:?}");
    let mut out = Vec::new();
    for id in &ids {
        let rec = record(&app, id);
        match rec["media"]["answer_to_audio_ms"].as_f64() {
            Some(ms) if rec["status"] == "completed" => out.push(ms),
            _ => eprintln!("call {id} has no figure: {rec}"),
        }
    }
    drop(app);
    drop(sipp);
    out
}

// -------------------------------------------------------------------------------------------------
// 2. End of the caller's speech -> webhook received
// -------------------------------------------------------------------------------------------------

/// Seconds from the start of `wav` (16-bit mono) to the end of its last 20 ms window above -40 dBFS.
fn end_of_speech(wav: &Path) -> f64 {
    let bytes = std::fs::read(wav).expect("wav");
    let pcm = sip_assistant::speech::wav::read(&bytes).expect("readable wav");
    let win = (pcm.rate / 50) as usize;
    let last = pcm
        .samples
        .chunks(win)
        .enumerate()
        .filter(|(_, c)| {
            let power = c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64;
            power.sqrt() > 328.0
        })
        .map(|(i, _)| i)
        .next_back()
        .expect("the file has speech");
    (last + 1) as f64 * 0.02
}

#[derive(Default)]
struct Stages {
    total: Vec<f64>,
    to_heard: Vec<f64>,
    heard_to_hangup: Vec<f64>,
    hangup_to_webhook: Vec<f64>,
}

fn speech_to_webhook(calls: u32, acknowledgement: &str) -> Stages {
    const US: &str = "1090";
    const PHONE: &str = "1091";
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kamailio::start(&[(US, "us-pw"), (PHONE, "phone-pw")], 30_000);
    let says = dir.path().join("yes.wav");
    // Message + prompt take about 4.5 s; the answer comes after them, then 4 s of silence.
    peers::speech_wav(&says, "yes", 6.0, 4.0);
    let speech_ends = end_of_speech(&says);
    let phone = Phone::start(
        PHONE,
        "phone-pw",
        k.port,
        "udp",
        PhoneMode::AutoAnswer,
        Some(&says),
    );
    assert!(
        phone.wait_registered(&k, Duration::from_secs(10)),
        "{}",
        phone.log()
    );
    // The receiver stops by itself after --max-seconds: give it the whole run.
    let max = (60 + 12 * calls).to_string();
    let receiver = Receiver::start_with(dir.path(), 0, 503, None, None, &["--max-seconds", &max]);
    let mut config = base_config(dir.path());
    config.sip.user = Some(US.into());
    config.sip.password = Some(Secret::new("us-pw"));
    config.sip.registrar = Some(format!("127.0.0.1:{}", k.port));
    config.script.acknowledgement = acknowledgement.into();
    let app = start(config);
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        k.ladder()
    );
    let choice = json!({
        "prompt": "Do you confirm the appointment? Say yes or no.",
        "options": [
            {"value": "confirmed", "synonyms": ["yes", "yeah", "confirm"]},
            {"value": "cancelled", "synonyms": ["no", "cancel"]}
        ],
        "timeout_seconds": 8,
        "repeat_count": 1
    });
    let mut stages = Stages::default();
    for _ in 0..calls {
        let id = post(
            &app,
            json!({"message": "This is a reminder.", "extension": PHONE,
                   "callback_url": receiver.url("/hook"), "choice": choice}),
        );
        let mut received = None;
        wait_for(Duration::from_secs(40), || {
            received = receiver.entries().into_iter().find_map(|e| {
                let body: Value = serde_json::from_str(e["body"].as_str()?).ok()?;
                (body["call_id"] == id.as_str()).then(|| (body, e["received_at"].as_f64()))
            });
            received.is_some()
        });
        let rec = record(&app, &id);
        let Some((hook, Some(arrived))) = received else {
            eprintln!("no webhook for {id}: {rec}");
            continue;
        };
        if hook["choice_response"] != "confirmed" {
            eprintln!("call {id} did not hear yes: {hook}");
            continue;
        }
        let (Some(answered), Some(heard), Some(hangup)) = (
            epoch_seconds(&rec["answered_at"]),
            event_at(&rec, "heard"),
            event_at(&rec, "hangup"),
        ) else {
            eprintln!("call {id}: timeline incomplete: {rec}");
            continue;
        };
        let end = answered + speech_ends;
        stages.total.push((arrived - end) * 1000.0);
        stages.to_heard.push((heard - end) * 1000.0);
        stages.heard_to_hangup.push((hangup - heard) * 1000.0);
        stages.hangup_to_webhook.push((arrived - hangup) * 1000.0);
        // The phone takes one call at a time: let it see the BYE.
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(app);
    stages
}

fn report_speech(label: &str, s: Stages) {
    summary(&format!("end of speech -> webhook received, {label}"), s.total);
    summary(
        &format!("  stage: end of speech -> heard (hangover + recognition), {label}"),
        s.to_heard,
    );
    summary(
        &format!("  stage: heard -> hang-up (match, acknowledgement, BYE), {label}"),
        s.heard_to_hangup,
    );
    summary(
        &format!("  stage: hang-up -> webhook received, {label}"),
        s.hangup_to_webhook,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let n = |default: u32| args.get(1).and_then(|a| a.parse().ok()).unwrap_or(default);
    let started = SystemTime::now();
    if matches!(which, "all" | "audio") {
        let calls = n(50);
        summary(
            "answer -> first RTP of the message, phone rings 2 s",
            first_audio(calls, Duration::from_secs(2)),
        );
        summary(
            "answer -> first RTP of the message, phone answers at once",
            first_audio(calls, Duration::ZERO),
        );
    }
    if matches!(which, "all" | "speech") {
        let calls = n(20);
        report_speech(
            "acknowledgement \"Thank you.\"",
            speech_to_webhook(calls, "Thank you."),
        );
        report_speech("no acknowledgement", speech_to_webhook(calls, ""));
    }
    let took = started.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    println!("(took {took} s)");
}
