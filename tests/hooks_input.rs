//! What reaches a WebAssembly choice hook: every field of the input, intact (the `echo` test
//! guest says back what it was given), from a running call's answer and from `Hooks::decide`.

#[path = "support/guests.rs"]
mod guests;

use guests::{folder, loaded, opt, settings};
use sip_assistant::call::script::{Answer, Verdict as ScriptVerdict};
use sip_assistant::call::{ActiveCall, CallEvents, CallRequest, CancelSignal, Choice, ChoiceOption};
use sip_assistant::choice::Alternative;
use sip_assistant::driver::speech_script::Decider;
use sip_assistant::driver::HookDecider;
use sip_assistant::hooks::{HookInput, Verdict};

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
        Verdict::Reprompt(
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
        Verdict::Reprompt(
            "attempt=1;call=c;ext=1001;lang=none;digits=9;transcript=;alts=[];opts=[a()#-|b(bee)#-]".into()
        )
    );
}
