//! The confirmation step of the script, in virtual time: when it asks back, what the replies do,
//! and what `confirmed_by` says.

use super::test_util::{drain, events, plays, s};
use super::*;
use crate::call::ChoiceOption;
use crate::choice::recognition::Pick;

fn departments(repeat: u32) -> Choice {
    let o = |v: &str| ChoiceOption {
        value: v.into(),
        synonyms: vec![],
        dtmf: None,
    };
    Choice {
        prompt: "Sales, support or billing?".into(),
        options: vec![o("sales"), o("support"), o("billing")],
        timeout_seconds: 10,
        repeat_count: repeat,
        matcher: None,
    }
}

fn detail_of(outs: &[Output], event: &str) -> String {
    outs.iter()
        .find_map(|o| match o {
            Output::Event { name, detail } if name.as_str() == event => detail.clone(),
            _ => None,
        })
        .unwrap_or_default()
}

fn heard(text: &str, confidence: Option<f32>) -> Input {
    Input::Heard(Recognition::Heard(vec![Alternative {
        transcript: text.into(),
        confidence,
    }]))
}

fn matched(option: usize) -> Input {
    Input::Decided(Verdict::Matched {
        option,
        detail: "built-in matcher".into(),
    })
}

/// The prompt of attempt 1 played; listening. Confirmation on with the default threshold (0.6).
fn asking(repeat: u32, confirm: ConfirmSettings) -> Script {
    let mut sc = Script::new(Some(departments(repeat))).with_confirmation(confirm);
    sc.start(s(0.0));
    sc.handle_input(s(3.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(5.0), Input::PlaybackDone { complete: true });
    drain(&mut sc);
    assert_eq!(sc.listening_for(), Some(Listening::Answer));
    sc
}

/// `sc` heard "support" said with confidence 0.4 and the matcher matched it: the question about
/// support is playing.
fn confirming_support(sc: &mut Script) -> Vec<Output> {
    sc.handle_input(s(6.0), Input::SpeechStarted);
    sc.handle_input(s(7.0), heard("support please", Some(0.4)));
    drain(sc);
    sc.handle_input(s(7.1), matched(1));
    let outs = drain(sc);
    assert_eq!(
        plays(&outs),
        vec![Prompt::Confirmation {
            attempt: 1,
            option: 1,
            value: "support".into()
        }],
        "{outs:?}"
    );
    assert_eq!(events(&outs), vec!["confirm"]);
    assert_eq!(sc.listening_for(), Some(Listening::Confirmation));
    assert_eq!(
        sc.poll_timeout(),
        None,
        "the reply's timeout starts when the question ends"
    );
    assert_eq!(
        sc.result().choice_response,
        None,
        "nothing is settled before the reply"
    );
    outs
}

fn finish(sc: &mut Script, at: f64) {
    sc.handle_input(s(at), Input::PlaybackDone { complete: true });
    assert_eq!(drain(sc).last(), Some(&Output::Hangup));
    assert!(sc.is_done());
}

#[test]
fn low_confidence_is_asked_back_and_a_yes_settles_it() {
    let mut sc = asking(2, ConfirmSettings::default());
    let outs = confirming_support(&mut sc);
    let why = detail_of(&outs, "confirm");
    assert!(
        why.contains("support?") && why.contains("confidence 0.40 is below 0.60"),
        "{why}"
    );
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    assert_eq!(sc.poll_timeout(), Some(s(19.0)));
    sc.handle_input(s(9.5), Input::SpeechStarted);
    sc.handle_input(s(10.0), heard("yes", Some(0.3)));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["heard", "confirmed", "matched"], "{outs:?}");
    assert_eq!(plays(&outs), vec![Prompt::Acknowledgement]);
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Decide(_))),
        "the reply is not the hook's to judge"
    );
    finish(&mut sc, 11.0);
    let r = sc.result();
    assert_eq!(r.choice_response.as_deref(), Some("support"));
    assert_eq!(r.confirmed_by, Some(ConfirmedBy::Confirmation));
    assert_eq!(
        r.choice_raw_text.as_deref(),
        Some("support please"),
        "the raw text is the answer, not the yes"
    );
}

#[test]
fn a_no_is_a_no_match_and_the_next_attempt_follows() {
    let mut sc = asking(2, ConfirmSettings::default());
    confirming_support(&mut sc);
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(10.0), heard("no", Some(0.9)));
    let outs = drain(&mut sc);
    assert_eq!(
        events(&outs),
        vec!["heard", "not_confirmed", "prompt"],
        "{outs:?}"
    );
    assert_eq!(plays(&outs), vec![Prompt::Question { attempt: 2 }]);
    assert_eq!(sc.listening_for(), Some(Listening::Answer));
    // The second answer is sure: taken as said.
    sc.handle_input(s(12.0), heard("billing", Some(0.95)));
    drain(&mut sc);
    sc.handle_input(s(12.1), matched(2));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["matched"]);
    finish(&mut sc, 13.0);
    assert_eq!(sc.result().choice_response.as_deref(), Some("billing"));
    assert_eq!(sc.result().confirmed_by, Some(ConfirmedBy::Speech));
}

#[test]
fn key_1_confirms_during_the_question_and_key_2_refuses() {
    let mut sc = asking(2, ConfirmSettings::default());
    confirming_support(&mut sc);
    sc.handle_input(s(8.0), Input::Digit('1'));
    let outs = drain(&mut sc);
    assert_eq!(outs.first(), Some(&Output::StopPlayback), "{outs:?}");
    assert_eq!(events(&outs), vec!["barge_in", "heard", "confirmed", "matched"]);
    finish(&mut sc, 9.0);
    assert_eq!(sc.result().choice_response.as_deref(), Some("support"));
    assert_eq!(sc.result().confirmed_by, Some(ConfirmedBy::Confirmation));

    let mut sc = asking(1, ConfirmSettings::default());
    confirming_support(&mut sc);
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(10.0), Input::Digit('2'));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["heard", "not_confirmed", "no_choice"]);
    assert_eq!(plays(&outs), vec![Prompt::Goodbye]);
    finish(&mut sc, 11.0);
    assert_eq!(sc.result().choice_response, None);
    assert_eq!(sc.result().confirmed_by, None);
}

#[test]
fn silence_after_the_question_is_a_no_match() {
    let mut sc = asking(2, ConfirmSettings::default());
    confirming_support(&mut sc);
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(18.9), Input::Timer);
    assert!(drain(&mut sc).is_empty(), "not yet");
    sc.handle_input(s(19.0), Input::Timer);
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["no_answer", "prompt"]);
    assert!(detail_of(&outs, "no_answer").contains("no reply to the confirmation"));
    assert_eq!(plays(&outs), vec![Prompt::Question { attempt: 2 }]);
    assert_eq!(sc.result().choice_response, None);
}

#[test]
fn anything_but_yes_or_no_and_a_failed_recogniser_are_no_matches() {
    let mut sc = asking(3, ConfirmSettings::default());
    confirming_support(&mut sc);
    sc.handle_input(s(10.0), heard("support", Some(0.9)));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["heard", "not_confirmed", "prompt"]);
    assert!(detail_of(&outs, "not_confirmed").contains("neither yes nor no"));
    sc.handle_input(s(11.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(12.0), heard("support please", Some(0.4)));
    drain(&mut sc);
    sc.handle_input(s(12.1), matched(1));
    drain(&mut sc);
    assert_eq!(sc.listening_for(), Some(Listening::Confirmation));
    sc.handle_input(s(13.0), Input::RecognizerFailed("busy".into()));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["recognizer_error", "prompt"]);
    assert_eq!(plays(&outs), vec![Prompt::Question { attempt: 3 }]);
}

#[test]
fn a_reply_naming_two_options_confirms_the_one_said_last() {
    let mut sc = asking(2, ConfirmSettings::default());
    sc.handle_input(s(7.0), heard("sales, no, support", Some(0.9)));
    drain(&mut sc);
    sc.handle_input(
        s(7.1),
        Input::Decided(Verdict::NoMatch {
            why: "ambiguous: heard phrases of options 1, 2".into(),
        }),
    );
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["confirm"], "{outs:?}");
    assert!(detail_of(&outs, "confirm").contains("heard phrases of options 1, 2"));
    assert_eq!(
        plays(&outs),
        vec![Prompt::Confirmation {
            attempt: 1,
            option: 1,
            value: "support".into()
        }]
    );
    sc.handle_input(s(9.0), heard("yes", None));
    drain(&mut sc);
    finish(&mut sc, 10.0);
    assert_eq!(sc.result().choice_response.as_deref(), Some("support"));
    assert_eq!(sc.result().confirmed_by, Some(ConfirmedBy::Confirmation));
}

#[test]
fn a_scorer_pick_among_two_options_is_the_one_confirmed() {
    let mut sc = asking(2, ConfirmSettings::default());
    sc.handle_input(
        s(7.0),
        Input::Heard(Recognition::Scored {
            transcript: "sales, no, support".into(),
            pick: Some(Pick {
                option: 0,
                phrase: "sales".into(),
                said: "sales".into(),
                confidence: 0.9,
            }),
        }),
    );
    drain(&mut sc);
    // The matcher took the scorer's phrase (its second alternative).
    sc.handle_input(s(7.1), matched(0));
    let outs = drain(&mut sc);
    assert_eq!(
        plays(&outs),
        vec![Prompt::Confirmation {
            attempt: 1,
            option: 0,
            value: "sales".into()
        }]
    );
}

#[test]
fn a_sure_answer_and_keys_are_never_asked_back() {
    let mut sc = asking(2, ConfirmSettings::default());
    sc.handle_input(s(7.0), heard("support please", Some(0.8)));
    drain(&mut sc);
    sc.handle_input(s(7.1), matched(1));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["matched"]);
    finish(&mut sc, 8.0);
    assert_eq!(sc.result().confirmed_by, Some(ConfirmedBy::Speech));

    let mut sc = asking(2, ConfirmSettings::default());
    sc.handle_input(s(7.0), Input::Digit('2'));
    drain(&mut sc);
    sc.handle_input(s(7.1), matched(1));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["matched"]);
    finish(&mut sc, 8.0);
    assert_eq!(sc.result().choice_response.as_deref(), Some("support"));
    assert_eq!(sc.result().confirmed_by, Some(ConfirmedBy::Dtmf));
}

#[test]
fn with_confirmation_off_an_unsure_answer_is_taken_as_heard() {
    let mut sc = asking(2, ConfirmSettings::OFF);
    sc.handle_input(s(7.0), heard("support please", Some(0.1)));
    drain(&mut sc);
    sc.handle_input(s(7.1), matched(1));
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["matched"]);
    finish(&mut sc, 8.0);
    assert_eq!(sc.result().choice_response.as_deref(), Some("support"));
    assert_eq!(sc.result().confirmed_by, Some(ConfirmedBy::Speech));

    let mut sc = asking(1, ConfirmSettings::OFF);
    sc.handle_input(s(7.0), heard("sales or support", Some(0.9)));
    drain(&mut sc);
    sc.handle_input(
        s(7.1),
        Input::Decided(Verdict::NoMatch {
            why: "ambiguous".into(),
        }),
    );
    let outs = drain(&mut sc);
    assert_eq!(events(&outs), vec!["no_match", "no_choice"]);
}
