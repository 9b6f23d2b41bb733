//! Whole calls, end to end: API → scheduler → SIP (Kamailio, baresip phones, SIPp) → media →
//! speech (the embedded engines: flite speaks, pocketsphinx listens) → choice → store → webhook
//! (a real HTTP receiver). Each test starts its own PBX, phones and service on loopback.

use crate::guests;
use crate::harness;
use crate::peers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::{record, request, router, start_app, test_config, timeline, wait_for, Receiver};
use peers::{Kamailio, Phone, PhoneMode, Sipp, SippScenario};
use serde_json::{json, Value};
use sip_assistant::app::App;
use sip_assistant::config::Config;
use sip_assistant::driver::SipEngine;

const US: &str = "1050";
const OUR_PW: &str = "our-pw";

fn config_for(dir: &Path, registrar: Option<u16>) -> Config {
    let mut c = test_config(dir);
    match registrar {
        Some(port) => peers::register_to(&mut c, port, US, OUR_PW, "PCMU,PCMA", 40),
        None => peers::loopback_service(&mut c, "PCMU,PCMA", 40),
    }
    c.webhook.initial_backoff_ms = 200;
    c
}

fn start(config: Config) -> App {
    let engine =
        smol::block_on(SipEngine::start(&config)).expect("SIP engine with the configured speech engines");
    start_app(config, Arc::new(engine))
}

/// A PBX, one phone on it and the service registered to it, with a webhook receiver. Bind it as
/// `let Rig { k: _pbx, phone, receiver, app } = ...`, so that the service goes first, the PBX last.
struct Rig {
    k: Kamailio,
    phone: Phone,
    receiver: Receiver,
    app: App,
}

/// Kamailio with our extension and phone `ext` (password `pw-<ext>`), which answers at once with
/// `wav` as its microphone; the service, launched by `launch` with `config_for` changed by
/// `configure`, registered to the PBX.
fn rig(
    dir: &Path,
    ext: &str,
    wav: &Path,
    configure: impl FnOnce(&mut Config),
    launch: fn(Config) -> App,
) -> Rig {
    let (k, phone) = peers::pbx_with_phone(&[(US, OUR_PW)], ext, PhoneMode::AutoAnswer, Some(wav));
    let receiver = Receiver::start(dir, 0, 503, None, None);
    let mut config = config_for(dir, Some(k.port));
    configure(&mut config);
    let app = launch(config);
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        k.ladder()
    );
    Rig {
        k,
        phone,
        receiver,
        app,
    }
}

fn post_call(app: &App, body: Value) -> String {
    let body = body.to_string();
    let r = request(&router(app), "POST", "/call", Some(body.as_bytes()), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["call_id"].as_str().expect("call_id").to_string()
}

/// The one webhook of `call_id`, as JSON.
fn webhook_of(receiver: &Receiver, call_id: &str, timeout: Duration) -> Value {
    let mut found = None;
    wait_for(timeout, || {
        found = receiver.entries().into_iter().find_map(|e| {
            let body: Value = serde_json::from_str(e["body"].as_str()?).ok()?;
            (body["call_id"] == call_id).then_some(body)
        });
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no webhook for {call_id}: {:?}", receiver.entries()))
}

fn count(rec: &Value, event: &str) -> usize {
    timeline(rec).iter().filter(|(e, _)| e == event).count()
}

fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).expect("wav");
    let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .map(|p| p + 8)
        .expect("data chunk");
    let samples = bytes[data..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    (rate, samples)
}

/// Seconds of `samples` in 20 ms windows louder than -40 dBFS.
fn voiced_seconds(rate: u32, samples: &[i16]) -> f64 {
    let win = (rate / 50) as usize;
    let loud = samples
        .chunks(win)
        .filter(|c| {
            let rms = (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt();
            rms > 330.0
        })
        .count();
    loud as f64 * 0.02
}

fn seconds_between(rec: &Value, from: &str, to: &str) -> f64 {
    let at = |name: &str| {
        rec["timeline"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["event"] == name))
            .and_then(|e| e["at"].as_str())
            .and_then(|s| humantime::parse_rfc3339(s).ok())
            .unwrap_or_else(|| panic!("no {name} in {rec}"))
    };
    at(to)
        .duration_since(at(from))
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn choice(timeout: u32, repeat: u32) -> Value {
    json!({
        "prompt": "Do you confirm the appointment? Say yes or no.",
        "options": [
            {"value": "confirmed", "synonyms": ["yes", "yeah", "confirm"]},
            {"value": "cancelled", "synonyms": ["no", "cancel"]}
        ],
        "timeout_seconds": timeout,
        "repeat_count": repeat
    })
}

#[test]
fn notification_only_is_spoken_and_completed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 30.0);
    let Rig {
        k: _pbx,
        mut phone,
        receiver,
        app,
    } = rig(dir.path(), "1001", &silence, |_| {}, start);

    let id = post_call(
        &app,
        json!({"message": "Hello. This is your appliance calling with a short notification about the backup.",
               "extension": "1001", "callback_url": receiver.url("/hook")}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(40));
    assert_eq!(hook["status"], "completed", "{hook}");
    assert_eq!(hook["message_played"], true, "{hook}");
    assert_eq!(hook["choice_response"], Value::Null);
    assert!(hook["duration_seconds"].as_f64().unwrap_or(0.0) > 2.0, "{hook}");
    let rec = record(&app, &id);
    let spoken = seconds_between(&rec, "message_started", "message_ended");
    assert!((2.5..15.0).contains(&spoken), "message lasted {spoken} s: {rec}");

    // The phone's recording of what it decoded holds speech for about the message's length.
    phone.stop();
    let decoded = phone
        .recordings()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("dec"))
        .unwrap_or_else(|| panic!("no recording: {:?}", phone.recordings()));
    let (rate, samples) = read_wav(&decoded);
    let voiced = voiced_seconds(rate, &samples);
    eprintln!("message {spoken:.2} s, phone heard {voiced:.2} s of speech");
    assert!(
        voiced > spoken * 0.5 && voiced < spoken * 1.2,
        "phone heard {voiced} s of speech for a {spoken} s message"
    );
}

#[test]
fn a_spoken_yes_confirms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let says = dir.path().join("yes.wav");
    peers::speech_wav(&says, "yes", 7.0, 15.0);
    let Rig {
        k: _pbx,
        phone: _phone,
        receiver,
        app,
    } = rig(dir.path(), "1002", &says, |_| {}, start);

    let id = post_call(
        &app,
        json!({"message": "This is a reminder.", "extension": "1002",
               "callback_url": receiver.url("/hook"), "choice": choice(10, 2)}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(60));
    let rec = record(&app, &id);
    assert_eq!(hook["status"], "completed", "{hook}\n{rec}");
    assert_eq!(hook["choice_response"], "confirmed", "{rec}");
    let raw = hook["choice_raw_text"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    // The raw text is what the recogniser heard: one of the confirming phrases (espeak's "yes" is
    // sometimes heard as "yeah", which confirms just the same).
    assert!(
        ["yes", "yeah", "confirm"].iter().any(|w| raw.contains(w)),
        "raw text {raw:?}"
    );
    assert_eq!(hook["message_played"], true);
    let tl = timeline(&rec);
    assert!(
        tl.iter()
            .any(|(e, d)| e == "heard" && d.to_lowercase().contains(raw.as_str())),
        "{tl:?}"
    );
    assert!(tl.iter().any(|(e, _)| e == "matched"), "{tl:?}");
}

#[test]
fn a_key_press_picks_the_mapped_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 40.0);
    let Rig {
        k: _pbx,
        phone,
        receiver,
        app,
    } = rig(dir.path(), "1003", &silence, |_| {}, start);

    let id = post_call(
        &app,
        json!({"message": "This is a reminder.", "extension": "1003",
               "callback_url": receiver.url("/hook"), "choice": choice(15, 2)}),
    );
    assert!(
        wait_for(Duration::from_secs(20), || count(&record(&app, &id), "prompt")
            >= 1),
        "{}",
        record(&app, &id)
    );
    phone.command("sndcode", "2").expect("sndcode");
    let hook = webhook_of(&receiver, &id, Duration::from_secs(30));
    let rec = record(&app, &id);
    assert_eq!(hook["choice_response"], "cancelled", "{rec}");
    assert_eq!(hook["choice_raw_text"], "2", "{rec}");
    // The key came while the prompt played (sent as soon as it started): barge-in stopped it.
    let tl = timeline(&rec);
    assert!(
        tl.iter().any(|(e, d)| e == "barge_in" && d.contains("key 2")),
        "{tl:?}"
    );
}

#[test]
fn silence_repeats_the_prompt_then_ends_without_a_choice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 60.0);
    let Rig {
        k: _pbx,
        phone: _phone,
        receiver,
        app,
    } = rig(dir.path(), "1004", &silence, |_| {}, start);

    let id = post_call(
        &app,
        json!({"message": "This is a reminder.", "extension": "1004",
               "callback_url": receiver.url("/hook"), "choice": choice(5, 2)}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(60));
    let rec = record(&app, &id);
    assert_eq!(hook["status"], "completed", "{rec}");
    assert_eq!(hook["choice_response"], Value::Null, "{rec}");
    assert_eq!(hook["choice_raw_text"], Value::Null, "{rec}");
    assert_eq!(count(&rec, "prompt"), 2, "{rec}");
    assert_eq!(count(&rec, "no_answer"), 2, "{rec}");
    assert_eq!(count(&rec, "no_choice"), 1, "{rec}");
}

#[test]
fn busy_and_unanswered_phones_get_their_webhooks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kamailio::start(&[(US, OUR_PW), ("1005", "pw-1005"), ("1006", "pw-1006")], 30_000);
    let busy = Phone::start("1005", "pw-1005", k.port, "udp", PhoneMode::Reject, None);
    let ringing = Phone::start("1006", "pw-1006", k.port, "udp", PhoneMode::Ring, None);
    assert!(
        busy.wait_registered(&k, Duration::from_secs(10)),
        "{}",
        busy.log()
    );
    assert!(
        ringing.wait_registered(&k, Duration::from_secs(10)),
        "{}",
        ringing.log()
    );
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let app = start(config_for(dir.path(), Some(k.port)));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        k.ladder()
    );

    let b = post_call(
        &app,
        json!({"message": "m", "extension": "1005", "callback_url": receiver.url("/hook")}),
    );
    let n = post_call(
        &app,
        json!({"message": "m", "extension": "1006", "ring_timeout": 5, "callback_url": receiver.url("/hook")}),
    );
    let hb = webhook_of(&receiver, &b, Duration::from_secs(30));
    assert_eq!(hb["status"], "busy", "{hb}");
    assert_eq!(hb["duration_seconds"].as_f64(), Some(0.0));
    let hn = webhook_of(&receiver, &n, Duration::from_secs(30));
    assert_eq!(hn["status"], "no_answer", "{hn}");
    assert_eq!(hn["message_played"], false);
}

#[test]
fn direct_uri_to_sipp_without_a_registrar_and_two_at_once_with_a_third_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Each scripted peer takes one call.
    let peers: Vec<Sipp> = (0..3)
        .map(|_| Sipp::uas(SippScenario::Answer { bye_after: None }))
        .collect();
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let mut config = config_for(dir.path(), None);
    config.calls.max_concurrent = 2;
    let app = start(config);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            post_call(
                &app,
                json!({"message": format!("Direct call number {i} to a scripted peer."),
                       "extension": peers[i].uri("svc"), "callback_url": receiver.url("/hook")}),
            )
        })
        .collect();
    // The third waits while two are up.
    let statuses = || -> Vec<String> {
        ids.iter()
            .map(|id| {
                record(&app, id)["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let mut seen_two_and_queued = false;
    wait_for(Duration::from_secs(20), || {
        let s = statuses();
        let active = s.iter().filter(|s| *s == "answered" || *s == "ringing").count();
        if active == 2 && s.iter().any(|s| s == "queued") {
            seen_two_and_queued = true;
        }
        seen_two_and_queued
    });
    assert!(
        seen_two_and_queued,
        "never saw two calls up and one queued: {:?}",
        statuses()
    );
    for id in &ids {
        let hook = webhook_of(&receiver, id, Duration::from_secs(60));
        assert_eq!(hook["status"], "completed", "{hook}");
        assert_eq!(hook["message_played"], true, "{hook}");
    }
}

#[test]
fn an_answer_without_a_usable_codec_fails_the_call_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sipp = Sipp::uas(SippScenario::AnswerG729);
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let app = start(config_for(dir.path(), None));
    let id = post_call(
        &app,
        json!({"message": "m", "extension": sipp.uri("svc"), "callback_url": receiver.url("/hook")}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(30));
    assert_eq!(hook["status"], "failed", "{hook}");
    let error = hook["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("unusable SDP answer") && error.contains("no codec we support"),
        "{error}"
    );
    assert_eq!(hook["message_played"], false);
}

/// The service's way of starting: hooks from `hooks.dir` decide the answers.
fn start_with_hooks(config: Config) -> App {
    let hooks = sip_assistant::app::load_hooks(&config).expect("hooks");
    let decider = Arc::new(sip_assistant::driver::HookDecider { hooks: hooks.clone() });
    let engine = smol::block_on(SipEngine::start_with_decider(&config, decider)).expect("SIP engine");
    App::start_with_hooks(config, Arc::new(engine), hooks).expect("app")
}

#[test]
fn a_hook_named_by_the_request_decides_and_a_broken_default_falls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks_dir = dir.path().join("hooks");
    std::fs::create_dir_all(&hooks_dir).expect("hooks dir");
    guests::install(&hooks_dir, "ordinals", "ordinals");
    std::fs::write(hooks_dir.join("broken.wasm"), b"\0asm but not really").expect("broken hook");
    let silence = dir.path().join("silence.wav");
    peers::write_silence_wav(&silence, 16_000, 90.0);
    let configure = |c: &mut Config| {
        c.hooks.dir = hooks_dir.clone();
        c.hooks.default = Some("broken".into());
    };
    let Rig {
        k: _pbx,
        phone,
        receiver,
        app,
    } = rig(dir.path(), "1007", &silence, configure, start_with_hooks);
    // A request may not name a hook that did not load.
    let body = json!({"message": "x", "extension": "1007", "callback_url": receiver.url("/unused"),
                      "choice": {"prompt": "p", "options": [{"value": "a"}], "matcher": "broken"}})
    .to_string();
    let r = request(&router(&app), "POST", "/call", Some(body.as_bytes()), &[]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("choice.matcher 'broken' is not a loaded hook"),
        "{}",
        r.text
    );

    // The hook the request names decides: key 2 through the ordinals hook.
    let mut with_matcher = choice(15, 2);
    with_matcher["matcher"] = json!("ordinals");
    let mut decided = Vec::new();
    for choice in [with_matcher, choice(15, 2)] {
        let id = post_call(
            &app,
            json!({"message": "This is a reminder.", "extension": "1007",
                   "callback_url": receiver.url("/hook"), "choice": choice}),
        );
        assert!(
            wait_for(Duration::from_secs(20), || count(&record(&app, &id), "prompt")
                >= 1),
            "{}",
            record(&app, &id)
        );
        phone.command("sndcode", "2").expect("sndcode");
        let hook = webhook_of(&receiver, &id, Duration::from_secs(30));
        let rec = record(&app, &id);
        assert_eq!(hook["choice_response"], "cancelled", "{rec}");
        let matched = timeline(&rec)
            .into_iter()
            .find(|(e, _)| e == "matched")
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("no match in {rec}"));
        decided.push(matched);
        // One call at a time on the one phone.
        assert!(
            wait_for(Duration::from_secs(10), || record(&app, &id)["status"]
                == "completed"),
            "{}",
            record(&app, &id)
        );
    }
    assert_eq!(decided[0], "cancelled: hook 'ordinals': option 2", "{decided:?}");
    // No matcher named: the configured default, which failed to load, so the built-in matcher
    // decided and the timeline says why.
    assert!(
        decided[1].starts_with("cancelled: hook 'broken' failed to load; fallback to the built-in matcher"),
        "{decided:?}"
    );
    let hooks = request(&router(&app), "GET", "/hooks", None, &[]).json();
    let broken = hooks["hooks"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["name"] == "broken"))
        .cloned()
        .unwrap_or_else(|| panic!("{hooks}"));
    assert_eq!(broken["failures"], 1, "{hooks}");
    assert_eq!(broken["loaded"], false, "{hooks}");
}

#[test]
fn remote_engines_that_are_down_fail_their_steps_and_the_call_still_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kamailio::start(&[(US, OUR_PW), ("1008", "pw-1008")], 30_000);
    let says = dir.path().join("yes.wav");
    peers::speech_wav(&says, "yes", 1.0, 20.0);
    let phone = Phone::start(
        "1008",
        "pw-1008",
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
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let mut config = config_for(dir.path(), Some(k.port));
    // Nothing listens there: both Wyoming servers are down.
    let closed = peers::free_udp_tcp_port();
    config.speech.tts = "wyoming".into();
    config.speech.stt = "wyoming".into();
    config.speech.wyoming.tts_address = format!("127.0.0.1:{closed}");
    config.speech.wyoming.stt_address = format!("127.0.0.1:{closed}");
    config.speech.wyoming.connect_timeout_ms = 500;
    let app = start(config);
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        k.ladder()
    );
    let id = post_call(
        &app,
        json!({"message": "This is a reminder.", "extension": "1008",
               "callback_url": receiver.url("/hook"), "choice": choice(5, 1)}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(60));
    let rec = record(&app, &id);
    assert_eq!(hook["status"], "completed", "{rec}");
    assert_eq!(hook["message_played"], false, "{rec}");
    assert_eq!(hook["choice_response"], Value::Null, "{rec}");
    let tl = timeline(&rec);
    let failed: Vec<&String> = tl
        .iter()
        .filter(|(e, _)| e == "speech_failed" || e == "recognizer_error")
        .map(|(_, d)| d)
        .collect();
    assert!(!failed.is_empty(), "{tl:?}");
    assert!(
        failed
            .iter()
            .all(|d| d.contains("wyoming") && d.contains(&closed.to_string())),
        "{failed:?}"
    );
    assert!(tl.iter().any(|(e, _)| e == "hangup"), "{tl:?}");
    // The failures are recorded step by step, and the outcome says why nothing was chosen.
    assert!(
        tl.iter()
            .any(|(e, d)| e == "completed" && d.contains("speech recognition failed")),
        "{tl:?}"
    );
}

/// A language or voice the configured engines cannot speak or hear is refused before any phone
/// rings, naming the engine and what to use instead.
#[test]
fn a_language_or_voice_the_engines_lack_is_a_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start(config_for(dir.path(), None));
    let refused = |body: Value| {
        let r = request(
            &router(&app),
            "POST",
            "/call",
            Some(body.to_string().as_bytes()),
            &[],
        );
        assert_eq!(r.status, 400, "{}", r.text);
        r.json()["detail"].as_str().unwrap_or_default().to_string()
    };
    let to = "sip:1001@127.0.0.1:5999";
    let d = refused(json!({"message": "Hallo", "extension": to, "language": "de-DE"}));
    assert!(
        d.contains("flite speaks English only") && d.contains("espeak"),
        "{d}"
    );
    let d = refused(json!({"message": "Hello", "extension": to, "voice": "nosuch"}));
    assert!(d.contains("no voice 'nosuch'") && d.contains("slt"), "{d}");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config_for(dir.path(), None);
    c.speech.tts = "espeak".into();
    let app = start(c);
    let refused = |body: Value| {
        let r = request(
            &router(&app),
            "POST",
            "/call",
            Some(body.to_string().as_bytes()),
            &[],
        );
        assert_eq!(r.status, 400, "{}", r.text);
        r.json()["detail"].as_str().unwrap_or_default().to_string()
    };
    // espeak speaks German, but the embedded recogniser only hears English.
    let d = refused(
        json!({"message": "Hallo", "extension": to, "language": "de", "choice": choice(5, 1),
                           "callback_url": "http://127.0.0.1:9/hook"}),
    );
    assert!(d.contains("pocketsphinx model is English only"), "{d}");
    let d = refused(json!({"message": "Hallo", "extension": to, "language": "xx-YY"}));
    assert!(d.contains("espeak-ng has no voice for 'xx-YY'"), "{d}");
}

/// The far end hangs up in the middle of the message: the call is completed, but the message was
/// not all sent, the timeline says who hung up, and the duration runs from answer to hang-up.
#[test]
fn a_phone_hanging_up_mid_message_leaves_message_played_false() {
    let dir = tempfile::tempdir().expect("tempdir");
    // baresip hangs up (BYE) when its audio file ends: 4 s after answering.
    let short = dir.path().join("short.wav");
    peers::write_silence_wav(&short, 16_000, 4.0);
    let Rig {
        k: _pbx,
        phone: _phone,
        receiver,
        app,
    } = rig(dir.path(), "1004", &short, |_| {}, start);

    let id = post_call(
        &app,
        json!({"message": "This is a long notification. The backup of the file server did not finish last night, \
                           and the disk of the mail server is almost full. Please check both systems as soon as you can.",
               "extension": "1004", "callback_url": receiver.url("/hook")}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(40));
    let rec = record(&app, &id);
    assert_eq!(hook["status"], "completed", "{rec}");
    assert_eq!(hook["message_played"], false, "{rec}");
    let tl = timeline(&rec);
    assert!(
        tl.iter().any(|(e, d)| e == "hangup" && d == "by the far end"),
        "{tl:?}"
    );
    assert!(!tl.iter().any(|(e, _)| e == "message_ended"), "{tl:?}");
    let duration = hook["duration_seconds"].as_f64().unwrap_or(-1.0);
    let answered_to_hangup = seconds_between(&rec, "answered", "hangup");
    assert!((3.0..8.0).contains(&duration), "duration {duration}: {rec}");
    assert!(
        (duration - answered_to_hangup).abs() < 1.0,
        "duration {duration} s, answered→hangup {answered_to_hangup} s"
    );
}

/// The caller answers while the question is still being asked: the prompt stops (barge-in) and
/// what was said is the answer.
#[test]
fn speaking_during_the_prompt_stops_it_and_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // "yes" 4.5 s after answering: a one-word message (~1 s), then a prompt of ~9 s.
    let says = dir.path().join("yes.wav");
    peers::speech_wav(&says, "yes", 4.5, 20.0);
    let Rig {
        k: _pbx,
        phone: _phone,
        receiver,
        app,
    } = rig(dir.path(), "1005", &says, |_| {}, start);

    let mut question = choice(10, 2);
    question["prompt"] = json!(
        "Please listen to the whole question before you answer. Your appointment is tomorrow afternoon \
         at two o'clock at the main office. Do you confirm it? Say yes or no."
    );
    let id = post_call(
        &app,
        json!({"message": "Hello.", "extension": "1005",
               "callback_url": receiver.url("/hook"), "choice": question}),
    );
    let hook = webhook_of(&receiver, &id, Duration::from_secs(60));
    let rec = record(&app, &id);
    assert_eq!(hook["choice_response"], "confirmed", "{rec}");
    let tl = timeline(&rec);
    assert!(
        tl.iter()
            .any(|(e, d)| e == "barge_in" && d == "speech during the prompt"),
        "{tl:?}"
    );
    assert_eq!(count(&rec, "prompt"), 1, "answered on the first prompt: {tl:?}");
    let prompt_to_heard = seconds_between(&rec, "prompt", "heard");
    assert!(
        prompt_to_heard < 6.0,
        "the answer came {prompt_to_heard} s into a ~9 s prompt, so it interrupted it"
    );
}
