//! Real calls with natural replies (issue #18, "Done when"): the service registered to Kamailio calls
//! a baresip phone that answers a departments choice with a recorded reply, through G.711, with the
//! default recogniser configuration of a machine with a Whisper model installed (`speech.stt =
//! "whisper"`, the model of `SIP_ASSISTANT_WHISPER_MODEL`, which `tests/support/whisper_model.sh`
//! prints) and the default `[script]` (confirmation on). A multi-word natural reply must end with the
//! right `choice_response`; a negated synonym with none.
//!
//! Should the script ask back ("Did you say support?"), the phone presses 1, as a caller would; the
//! test prints which way the answer was settled (`confirmed_by`).
//!
//! `cargo test --features interop --test interop call_natural:: -- --nocapture --test-threads=1` prints the timelines.

use crate::harness;
use crate::peers;
use crate::speech_servers;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use harness::{record, request, router, start_app, test_config, timeline, wait_for, Receiver};
use peers::PhoneMode;
use serde_json::{json, Value};
use sip_assistant::config::Config;
use sip_assistant::driver::SipEngine;
use sip_assistant::speech::flite::FliteSynthesizer;
use sip_assistant::speech::{SynthRequest, Synthesizer};

const US: &str = "1060";
const OUR_PW: &str = "our-pw";

/// The service's configuration: loopback ports, registered to the PBX on `registrar`, G.711, and
/// Whisper with the test model as its recogniser; everything else as shipped.
fn config_for(dir: &Path, registrar: u16) -> Config {
    let mut c = test_config(dir);
    peers::register_to(&mut c, registrar, US, OUR_PW, "PCMU,PCMA", 40);
    c.webhook.initial_backoff_ms = 200;
    c.speech.stt = "whisper".into();
    c.speech.whisper.model = Some(speech_servers::whisper_model());
    c
}

/// A 16 kHz mono WAV of flite's `voice` saying each `(pause, text)` after `pause` seconds of
/// silence, followed by `tail` seconds of it (the phone's microphone: baresip hangs up when its
/// file ends).
fn reply_wav(path: &Path, voice: &str, said: &[(f32, &str)], tail: f32) {
    let tts = FliteSynthesizer::new(voice);
    let mut parts = Vec::new();
    for (i, (pause, text)) in said.iter().enumerate() {
        let pcm = smol::block_on(tts.synthesize(&SynthRequest {
            text: text.to_string(),
            voice: None,
            language: None,
        }))
        .expect("flite renders the reply");
        let raw = path.with_extension(format!("{i}.flite.wav"));
        write_wav(&raw, pcm.rate, &pcm.samples);
        let part = path.with_extension(format!("{i}.wav"));
        let end = if i + 1 == said.len() {
            tail.to_string()
        } else {
            "0".to_string()
        };
        let st = Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(&part)
            .args(["pad", &pause.to_string(), &end])
            .status()
            .expect("run sox");
        let _ = std::fs::remove_file(&raw);
        assert!(st.success(), "sox failed: {st}");
        parts.push(part);
    }
    let st = Command::new("sox")
        .args(&parts)
        .arg(path)
        .status()
        .expect("run sox");
    assert!(st.success(), "sox failed: {st}");
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, w).expect("write wav");
}

fn departments() -> Value {
    json!({
        "prompt": "Which department would you like: sales, support or billing?",
        "options": [
            {"value": "sales", "synonyms": ["buy something"]},
            {"value": "support", "synonyms": ["help", "technical support"]},
            {"value": "billing", "synonyms": ["invoice", "payment"]}
        ],
        "timeout_seconds": 8,
        "repeat_count": 1
    })
}

/// The one webhook of `call_id`, or a panic with what came.
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

/// One call to phone `ext` that answers with `voice` saying `said` (pauses and texts); the
/// webhook and the record. When the script asks back and `press_1` is set, the phone presses 1.
fn call_with_reply(ext: &str, voice: &str, said: &[(f32, &str)], press_1: bool) -> (Value, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("reply.wav");
    reply_wav(&wav, voice, said, 30.0);
    let reply = said.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" / ");
    let (_pbx, phone) = peers::pbx_with_phone(&[(US, OUR_PW)], ext, PhoneMode::AutoAnswer, Some(&wav));
    let k = &_pbx;
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let config = config_for(dir.path(), k.port);
    let engine = smol::block_on(SipEngine::start(&config)).expect("SIP engine with whisper");
    let app = start_app(config, Arc::new(engine));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup(US).is_some()),
        "{}",
        k.ladder()
    );
    let body = json!({"message": "This is your service desk.", "extension": ext,
                      "callback_url": receiver.url("/hook"), "choice": departments()})
    .to_string();
    let r = request(&router(&app), "POST", "/call", Some(body.as_bytes()), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()["call_id"].as_str().expect("call_id").to_string();
    let mut pressed = false;
    let hook = {
        let mut found = None;
        wait_for(Duration::from_secs(90), || {
            if press_1 && !pressed && timeline(&record(&app, &id)).iter().any(|(e, _)| e == "confirm") {
                pressed = phone.command("sndcode", "1").is_ok();
            }
            found = receiver.entries().into_iter().find_map(|e| {
                let body: Value = serde_json::from_str(e["body"].as_str()?).ok()?;
                (body["call_id"] == id.as_str()).then_some(body)
            });
            found.is_some()
        });
        found.unwrap_or_else(|| webhook_of(&receiver, &id, Duration::from_secs(1)))
    };
    let rec = record(&app, &id);
    eprintln!("reply {reply:?} ({voice}): webhook {hook}");
    for (e, d) in timeline(&rec) {
        eprintln!("  {e}: {d}");
    }
    drop(app);
    (hook, rec)
}

#[test]
fn a_multi_word_natural_reply_ends_with_the_right_choice() {
    // The message and the question take about 5 s; the reply comes after them.
    let (hook, rec) = call_with_reply("1061", "slt", &[(7.0, "I'd like support please.")], true);
    assert_eq!(hook["status"], "completed", "{rec}");
    assert_eq!(hook["choice_response"], "support", "{rec}");
    let raw = hook["choice_raw_text"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(raw.contains("support"), "raw text {raw:?}");
    assert!(
        ["speech", "confirmation"].contains(&hook["confirmed_by"].as_str().unwrap_or_default()),
        "{hook}"
    );
    assert_eq!(
        rec["confirmed_by"], hook["confirmed_by"],
        "the record says the same"
    );
}

#[test]
fn a_negated_synonym_ends_without_a_choice() {
    let (hook, rec) = call_with_reply("1062", "slt", &[(7.0, "No, not support.")], true);
    assert_eq!(hook["status"], "completed", "{rec}");
    assert_eq!(hook["choice_response"], Value::Null, "{rec}");
    assert_eq!(hook["confirmed_by"], Value::Null, "{rec}");
    let tl = timeline(&rec);
    assert!(
        !tl.iter().any(|(e, _)| e == "confirm"),
        "a negated answer is not asked back: {tl:?}"
    );
    assert!(
        tl.iter().any(|(e, _)| e == "heard"),
        "the reply was heard: {tl:?}"
    );
}

#[test]
fn a_reply_naming_two_options_is_asked_back_and_a_spoken_yes_settles_it() {
    // "Sales, or support." names two options: the script asks "Did you say support?" (the one
    // said last) about a second after the reply ends; the caller's "Yes." comes 4 s after it, while
    // the question plays (barge-in) or just after.
    let (hook, rec) = call_with_reply(
        "1063",
        "slt",
        &[(7.0, "Sales, or support."), (4.0, "Yes.")],
        false,
    );
    let tl = timeline(&rec);
    assert!(
        tl.iter()
            .any(|(e, d)| e == "confirm" && d.starts_with("support?")),
        "{tl:?}"
    );
    assert!(tl.iter().any(|(e, _)| e == "confirmed"), "{tl:?}");
    assert_eq!(hook["choice_response"], "support", "{rec}");
    assert_eq!(hook["confirmed_by"], "confirmation", "{hook}");
    let raw = hook["choice_raw_text"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        raw.contains("sales") && raw.contains("support"),
        "the raw text is the answer, not the yes: {raw:?}"
    );
}
