//! What reaches a WebAssembly choice hook: every field of the input, intact (the `echo` test
//! guest says back what it was given), from a running call's answer and from `Hooks::decide`;
//! and inputs at (and past) the API's limits, through the host and `POST /hooks/{name}/test`.

use crate::guests;
use crate::harness;
use crate::openapi;

use std::time::{Duration, Instant};

use guests::{folder, input, loaded, opt, settings};
use serde_json::{json, Value};
use sip_assistant::call::{ActiveCall, CallEvents, CallRequest, CancelSignal, Choice, ChoiceOption};
use sip_assistant::choice::Alternative;
use sip_assistant::choice::{Answer, Verdict as ScriptVerdict};
use sip_assistant::driver::speech_script::Decider;
use sip_assistant::driver::HookDecider;
use sip_assistant::hooks::{HookInput, HookVerdict, BUILT_IN};

fn keyed(value: &str, synonyms: &[&str], key: Option<char>) -> ChoiceOption {
    ChoiceOption {
        dtmf: key,
        ..opt(value, synonyms)
    }
}

fn alternative(transcript: &str, confidence: Option<f32>) -> Alternative {
    Alternative {
        transcript: transcript.into(),
        confidence,
    }
}

/// What the echo guest says for the call below.
const ECHOED: &str = "attempt=3;call=out-1700000000-7;ext=sip:1001@127.0.0.1;lang=de-CH;digits=12#*;\
transcript=ja, gerne! Grüße;alts=[ja, gerne! Grüße@0.75|jawohl@none|ja wohl@0.125];\
opts=[yes(ja,jawohl)#1|no(nein)##|later()#-]";

fn options() -> Vec<ChoiceOption> {
    vec![
        keyed("yes", &["ja", "jawohl"], Some('1')),
        keyed("no", &["nein"], Some('#')),
        keyed("later", &[], None),
    ]
}

fn alternatives() -> Vec<Alternative> {
    vec![
        alternative("ja, gerne! Grüße", Some(0.75)),
        alternative("jawohl", None),
        alternative("ja wohl", Some(0.125)),
    ]
}

#[test]
fn every_input_field_reaches_the_guest() {
    let dir = folder(&[("echo", "echo")]);
    let hooks = loaded(settings(dir.path(), None));

    // From a call: the request gives options, language, extension and hook; the answer gives
    // the hypotheses, keys and attempt; the call its id.
    let request = CallRequest {
        message: "m".into(),
        extension: "sip:1001@127.0.0.1".into(),
        callback_url: Some("http://127.0.0.1:9/hook".into()),
        ring_timeout: 30,
        choice: Some(Choice {
            prompt: "p".into(),
            options: options(),
            timeout_seconds: 30,
            repeat_count: 3,
            matcher: Some("echo".into()),
        }),
        call_id: None,
        language: Some("de-CH".into()),
        voice: None,
        not_before: None,
        notification_id: None,
    };
    let (_cancel, signal) = CancelSignal::pair();
    let call = ActiveCall {
        call_id: "out-1700000000-7".into(),
        request,
        events: CallEvents::new(|_| {}),
        cancel: signal,
    };
    let answer = Answer {
        alternatives: alternatives(),
        digits: "12#*".into(),
        attempt: 3,
    };
    let decider = HookDecider { hooks: hooks.clone() };
    assert_eq!(
        smol::block_on(decider.decide(&call, &answer)),
        ScriptVerdict::Reprompt {
            text: ECHOED.into(),
            detail: "hook 'echo': reprompt".into()
        }
    );

    // Straight to the host: no language, no keys, one hypothesis without a confidence.
    let plain = HookInput {
        alternatives: vec![alternative("nein", None)],
        digits: String::new(),
        options: vec![opt("a", &[]), opt("b", &["bee"])],
        attempt: 1,
        language: None,
        call_id: "c".into(),
        extension: "1001".into(),
    };
    let d = smol::block_on(hooks.decide(Some("echo"), &plain));
    assert_eq!(
        d.verdict,
        HookVerdict::Reprompt(
            "attempt=1;call=c;ext=1001;lang=none;digits=;transcript=nein;alts=[nein@none];opts=[a()#-|b(bee)#-]"
                .into()
        )
    );
    // Nothing heard, only keys: the transcript is empty and there are no hypotheses.
    let keys = HookInput {
        alternatives: Vec::new(),
        digits: "9".into(),
        ..plain
    };
    let d = smol::block_on(hooks.decide(Some("echo"), &keys));
    assert_eq!(
        d.verdict,
        HookVerdict::Reprompt(
            "attempt=1;call=c;ext=1001;lang=none;digits=9;transcript=;alts=[];opts=[a()#-|b(bee)#-]".into()
        )
    );
}

/// `n` characters of `c`.
fn text(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// An answer as large as `POST /hooks/{name}/test` takes, with options as many as `POST /call`
/// takes: 10 hypotheses of 2000 characters, 2000 keys, 20 options of 50 synonyms of 24.
fn huge_input() -> HookInput {
    HookInput {
        alternatives: (0..10)
            .map(|i| alternative(&text(char::from(b'a' + i), 2000), Some(0.5)))
            .collect(),
        digits: "0123456789*#ABCD".repeat(125),
        options: (0..20)
            .map(|i| {
                let synonyms: Vec<String> = (0..50)
                    .map(|j| format!("option {i:02} synonym {j:02} ü é"))
                    .collect();
                let synonyms: Vec<&str> = synonyms.iter().map(String::as_str).collect();
                opt(&format!("value {i:02}"), &synonyms)
            })
            .collect(),
        attempt: 5,
        language: Some("de".into()),
        call_id: "c".into(),
        extension: "1001".into(),
    }
}

const HUGE_SUMMARY: &str = "big: attempt=5 transcript=2000 alternatives=10 alternative_chars=20000 \
digits=2000 options=20 value_chars=160 synonyms=1000 synonym_chars=24000 keys=";

#[test]
fn inputs_at_the_api_limits_are_handled_within_the_limits() {
    let dir = folder(&[
        ("echo", "echo"),
        ("fuzzy", "fuzzy"),
        ("ordinals", "ordinals"),
        ("yesno-eu", "yesno"),
    ]);
    let hooks = loaded(settings(dir.path(), None));
    let huge = huge_input();
    assert_eq!(huge.options[0].synonyms[0].chars().count(), 24);

    // Everything arrives: the echo guest counts it.
    let started = Instant::now();
    let d = smol::block_on(hooks.decide(Some("echo"), &huge));
    assert_eq!(d.verdict, HookVerdict::Reprompt(HUGE_SUMMARY.into()), "{d:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // The examples and the built-in matcher answer (or fall back, saying why) in sane time.
    for name in ["fuzzy", "ordinals", "yesno", BUILT_IN] {
        let started = Instant::now();
        let d = smol::block_on(hooks.decide(Some(name), &huge));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
        assert!(
            d.by == name || d.fallback.is_some(),
            "{name}: decided by {} without a reason: {d:?}",
            d.by
        );
    }
}

#[test]
fn an_input_larger_than_the_guest_may_hold_falls_back() {
    let dir = folder(&[("echo", "echo")]);
    let mut s = settings(dir.path(), None);
    s.memory_bytes = 1 << 20;
    let hooks = loaded(s);
    // A 2 MiB hypothesis cannot be copied into a guest that may hold 1 MiB in all.
    let mut big = input(&text('x', 2 << 20), vec![opt("yes", &[]), opt("no", &[])]);
    big.alternatives.push(alternative("yes", Some(0.1)));
    let started = Instant::now();
    let d = smol::block_on(hooks.decide(Some("echo"), &big));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((d.verdict, d.by.as_str()), (HookVerdict::Matched(0), BUILT_IN));
    let reason = d.fallback.expect("fallback");
    assert!(reason.contains("memory limit"), "{reason}");
}

/// A `POST /hooks/{name}/test` body at every limit of the endpoint (10 alternatives and a
/// transcript of 2000 characters, 2000 keys, 20 options of 50 synonyms), under 64 KiB.
fn test_body_at_the_limits() -> Value {
    let huge = huge_input();
    json!({
        "transcript": huge.alternatives[0].transcript,
        "alternatives": huge.alternatives[1..].iter()
            .map(|a| json!({"transcript": a.transcript, "confidence": a.confidence}))
            .chain(std::iter::once(json!({"transcript": text('k', 2000)})))
            .collect::<Vec<_>>(),
        "digits": huge.digits,
        "attempt": 10,
        "language": "de-CH",
        "options": huge.options.iter()
            .map(|o| json!({"value": o.value, "synonyms": o.synonyms}))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn the_test_endpoint_takes_inputs_at_its_limits_and_refuses_more() {
    let data = tempfile::tempdir().expect("data");
    let hooks_dir = folder(&[("echo", "echo")]);
    let mut config = harness::test_config(data.path());
    config.hooks.dir = hooks_dir.path().to_path_buf();
    let app = harness::start_app(config, harness::HoldEngine::new());
    let server = harness::router(&app);
    let spec = openapi::Spec::ours();
    let post = |body: &Value| {
        harness::request(
            &server,
            "POST",
            "/hooks/echo/test",
            Some(body.to_string().as_bytes()),
            &[],
        )
    };

    let body = test_body_at_the_limits();
    let size = body.to_string().len();
    assert!(size > 50_000 && size < 64 * 1024, "{size} bytes");
    assert_eq!(spec.check_schema("HookTestRequest", &body), Ok(()));
    let started = Instant::now();
    let r = post(&body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let v = r.json();
    assert_eq!(
        (v["decision"].as_str(), v["by"].as_str()),
        (Some("reprompt"), Some("echo")),
        "{v}"
    );
    assert_eq!(
        v["reprompt"].as_str(),
        Some(
            "big: attempt=10 transcript=2000 alternatives=11 alternative_chars=22000 digits=2000 \
             options=20 value_chars=160 synonyms=1000 synonym_chars=24000 keys="
        )
    );
    assert_eq!(spec.check_response("/hooks/{name}/test", "post", 200, &v), Ok(()));

    // One more character, alternative, option or byte is refused, by the spec and the service.
    let cases: [(&str, Value, &str); 5] = [
        (
            "digits",
            json!(text('1', 2001)),
            "digits must be at most 2000 characters",
        ),
        (
            "transcript",
            json!(text('t', 2001)),
            "transcript must be at most 2000 characters",
        ),
        (
            "alternatives",
            json!([{"transcript": "a"}, {"transcript": "b"}, {"transcript": text('t', 2001)}]),
            "alternatives[2].transcript must be at most 2000 characters",
        ),
        (
            "alternatives",
            json!(vec![json!({"transcript": "a"}); 11]),
            "alternatives must hold at most 10 entries",
        ),
        (
            "options",
            json!(vec![json!({"value": "a"}); 21]),
            "options must contain at most 20 options",
        ),
    ];
    for (key, value, want) in cases {
        let mut bad = json!({"options": [{"value": "a"}]});
        bad[key] = value;
        assert!(spec.check_schema("HookTestRequest", &bad).is_err(), "{key}");
        let r = post(&bad);
        assert_eq!((r.status, r.detail()), (400, want.to_string()), "{key}");
    }
    let mut too_big = body.clone();
    too_big["options"][0]["synonyms"][0] = json!(text('s', 12_000));
    assert!(too_big.to_string().len() > 64 * 1024);
    let r = post(&too_big);
    assert_eq!(r.status, 413, "{}", r.text);

    // The options are checked as POST /call checks them.
    for (options, want) in [
        (
            json!([{"value": "a"}, {"value": "a"}]),
            "options[1].value 'a' repeats options[0].value",
        ),
        (
            json!([{"value": "a", "dtmf": "1"}, {"value": "b", "dtmf": "1"}]),
            "options[1].dtmf '1' repeats options[0].dtmf",
        ),
        (
            json!([{"value": "a", "dtmf": "12"}]),
            "options[0].dtmf must be one key of 0-9, * or # (got '12')",
        ),
        (json!([]), "options must contain at least 1 option"),
    ] {
        let r = post(&json!({"transcript": "a", "options": options}));
        assert_eq!((r.status, r.detail()), (400, want.to_string()), "{options}");
    }
    smol::block_on(app.shutdown());
}
