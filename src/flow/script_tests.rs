use super::test_util::{drain, events, plays, s};
use super::*;
use crate::call::ChoiceOption;

fn choice(repeat: u32) -> Choice {
    Choice {
        prompt: "Say yes or no".into(),
        options: vec![
            ChoiceOption {
                value: "confirmed".into(),
                synonyms: vec!["yes".into()],
                dtmf: None,
            },
            ChoiceOption {
                value: "cancelled".into(),
                synonyms: vec!["no".into()],
                dtmf: None,
            },
        ],
        timeout_seconds: 10,
        repeat_count: repeat,
        matcher: None,
    }
}

fn heard(text: &str) -> Input {
    Input::Heard(Recognition::Heard(vec![Alternative {
        transcript: text.into(),
        confidence: Some(0.9),
    }]))
}

/// Message played in full; the question's first prompt is playing.
fn asking(repeat: u32) -> Script {
    let mut sc = Script::new(Some(choice(repeat)));
    sc.start(s(0.0));
    sc.handle_input(s(3.0), Input::PlaybackDone { complete: true });
    sc
}

#[test]
fn a_notification_plays_the_message_and_hangs_up() {
    let mut sc = Script::new(None);
    sc.start(s(0.0));
    assert_eq!(
        drain(&mut sc),
        vec![
            Output::Event {
                name: TimelineEvent::MessageStarted,
                detail: None
            },
            Output::Play(Prompt::Message)
        ]
    );
    assert!(!sc.listening());
    sc.handle_input(s(4.0), Input::PlaybackDone { complete: true });
    let outs = drain(&mut sc);
    assert_eq!(outs.last(), Some(&Output::Hangup));
    assert!(sc.is_done());
    assert!(sc.result().message_played);
    assert_eq!(sc.result().choice_response, None);
}

#[test]
fn a_message_cut_short_is_not_played() {
    let mut sc = Script::new(None);
    sc.start(s(0.0));
    sc.handle_input(s(1.0), Input::PlaybackDone { complete: false });
    assert!(!sc.result().message_played);
    assert_eq!(drain(&mut sc).last(), Some(&Output::Hangup));
}

#[test]
fn a_spoken_answer_is_matched_acknowledged_and_reported() {
    let mut sc = asking(2);
    let outs = drain(&mut sc);
    assert_eq!(
        plays(&outs),
        vec![Prompt::Message, Prompt::Question { attempt: 1 }]
    );
    assert!(sc.listening(), "listening starts with the prompt (barge-in)");
    assert_eq!(sc.poll_timeout(), None, "the timeout starts when the prompt ends");
    sc.handle_input(s(6.0), Input::PlaybackDone { complete: true });
    assert_eq!(sc.poll_timeout(), Some(s(16.0)));
    sc.handle_input(s(7.0), Input::SpeechStarted);
    assert_eq!(sc.poll_timeout(), None, "no timeout while the caller speaks");
    sc.handle_input(s(8.0), heard("yes I confirm"));
    let outs = drain(&mut sc);
    assert!(outs.contains(&Output::Decide(Answer {
        alternatives: vec![Alternative {
            transcript: "yes I confirm".into(),
            confidence: Some(0.9)
        }],
        digits: String::new(),
        attempt: 1
    })));
    sc.handle_input(
        s(8.1),
        Input::Decided(Verdict::Matched {
            option: 0,
            detail: "built-in: synonym 'yes'".into(),
        }),
    );
    let outs = drain(&mut sc);
    assert_eq!(plays(&outs), vec![Prompt::Acknowledgement]);
    assert_eq!(events(&outs), vec!["matched"]);
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    assert_eq!(drain(&mut sc), vec![Output::Hangup]);
    let r = sc.result();
    assert!(r.message_played);
    assert_eq!(r.choice_response.as_deref(), Some("confirmed"));
    assert_eq!(r.choice_raw_text.as_deref(), Some("yes I confirm"));
    assert_eq!(r.error, None);
}

#[test]
fn speech_during_the_prompt_stops_it_and_is_the_answer() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(4.0), Input::SpeechStarted);
    let outs = drain(&mut sc);
    assert_eq!(outs[0], Output::StopPlayback);
    assert_eq!(events(&outs), vec!["barge_in"]);
    // The stopped playback reports back; no timeout starts while the caller speaks.
    sc.handle_input(s(4.02), Input::PlaybackDone { complete: false });
    assert_eq!(sc.poll_timeout(), None);
    sc.handle_input(s(5.0), heard("no"));
    sc.handle_input(
        s(5.1),
        Input::Decided(Verdict::Matched {
            option: 1,
            detail: "x".into(),
        }),
    );
    assert_eq!(sc.result().choice_response.as_deref(), Some("cancelled"));
}

#[test]
fn a_key_during_the_prompt_stops_it_and_is_decided() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(4.0), Input::Digit('2'));
    let outs = drain(&mut sc);
    assert_eq!(outs[0], Output::StopPlayback);
    assert!(outs.contains(&Output::Decide(Answer {
        alternatives: vec![],
        digits: "2".into(),
        attempt: 1
    })));
    sc.handle_input(
        s(4.1),
        Input::Decided(Verdict::Matched {
            option: 1,
            detail: "key 2".into(),
        }),
    );
    assert_eq!(sc.result().choice_response.as_deref(), Some("cancelled"));
    assert_eq!(sc.result().choice_raw_text.as_deref(), Some("2"));
}

#[test]
fn silence_repeats_the_prompt_then_says_goodbye() {
    let mut sc = asking(3);
    let mut all = drain(&mut sc);
    let mut t = 3.0;
    for _ in 0..3 {
        t += 2.0;
        sc.handle_input(s(t), Input::PlaybackDone { complete: true });
        // A timer that fires early changes nothing.
        sc.handle_input(s(t + 5.0), Input::Timer);
        assert!(drain(&mut sc).is_empty());
        t += 10.0;
        sc.handle_input(s(t), Input::Timer);
        all.extend(drain(&mut sc));
    }
    assert_eq!(
        plays(&all),
        vec![
            Prompt::Message,
            Prompt::Question { attempt: 1 },
            Prompt::Question { attempt: 2 },
            Prompt::Question { attempt: 3 },
            Prompt::Goodbye
        ]
    );
    assert_eq!(events(&all).iter().filter(|e| **e == "no_answer").count(), 3);
    assert!(events(&all).contains(&"no_choice"));
    sc.handle_input(s(t + 1.0), Input::PlaybackDone { complete: true });
    assert_eq!(drain(&mut sc), vec![Output::Hangup]);
    assert_eq!(sc.result().choice_response, None);
    assert_eq!(sc.result().choice_raw_text, None, "nothing was heard");
    assert!(sc.result().message_played);
}

#[test]
fn no_match_asks_again_and_keeps_the_last_thing_heard() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(5.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(6.0), Input::SpeechStarted);
    sc.handle_input(s(7.0), heard("maybe later"));
    sc.handle_input(
        s(7.1),
        Input::Decided(Verdict::NoMatch {
            why: "no option".into(),
        }),
    );
    let outs = drain(&mut sc);
    assert_eq!(plays(&outs), vec![Prompt::Question { attempt: 2 }]);
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(10.0), Input::Heard(Recognition::NoMatch { transcript: None }));
    let outs = drain(&mut sc);
    assert_eq!(plays(&outs), vec![Prompt::Goodbye]);
    assert_eq!(sc.result().choice_response, None);
    assert_eq!(sc.result().choice_raw_text.as_deref(), Some("maybe later"));
}

#[test]
fn a_rejected_reply_is_never_matched_but_kept_as_the_raw_text() {
    // "cancel what" holds an answer word; the recogniser rejected it, so the matcher must not
    // see it (it would pick "cancel").
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(5.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(6.0), Input::SpeechStarted);
    sc.handle_input(
        s(7.0),
        Input::Heard(Recognition::Rejected {
            heard: Some("cancel what".into()),
        }),
    );
    let outs = drain(&mut sc);
    assert!(!outs.iter().any(|o| matches!(o, Output::Decide(_))), "{outs:?}");
    assert_eq!(plays(&outs), vec![Prompt::Question { attempt: 2 }]);
    assert!(events(&outs).contains(&"no_match"));
    assert_eq!(sc.result().choice_raw_text.as_deref(), Some("cancel what"));
    sc.handle_input(s(9.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(10.0), Input::Heard(Recognition::Rejected { heard: None }));
    let outs = drain(&mut sc);
    assert_eq!(plays(&outs), vec![Prompt::Goodbye]);
    assert_eq!(sc.result().choice_response, None);
    assert_eq!(sc.result().choice_raw_text.as_deref(), Some("cancel what"));
}

#[test]
fn an_out_of_grammar_transcript_still_goes_to_the_matcher() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(
        s(5.0),
        Input::Heard(Recognition::NoMatch {
            transcript: Some("council".into()),
        }),
    );
    let outs = drain(&mut sc);
    assert!(matches!(outs.last(), Some(Output::Decide(a)) if a.alternatives[0].transcript == "council"));
}

#[test]
fn a_recogniser_failure_is_recorded_and_the_question_asked_again() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(5.0), Input::SpeechStarted);
    sc.handle_input(
        s(6.0),
        Input::RecognizerFailed("wyoming: connection refused".into()),
    );
    let outs = drain(&mut sc);
    assert_eq!(plays(&outs), vec![Prompt::Question { attempt: 2 }]);
    assert!(sc
        .result()
        .error
        .as_deref()
        .is_some_and(|e| e.contains("connection refused")));
}

#[test]
fn a_busy_recogniser_asks_again_without_using_an_attempt_twice_a_call() {
    // One attempt: a failure would end the call; busy asks the same question again, twice.
    let mut sc = asking(1);
    drain(&mut sc);
    for (i, at) in [5.0, 9.0].into_iter().enumerate() {
        sc.handle_input(s(at), Input::SpeechStarted);
        sc.handle_input(s(at + 1.0), Input::RecognizerBusy("whisper is busy".into()));
        let outs = drain(&mut sc);
        assert_eq!(
            plays(&outs),
            vec![Prompt::Question { attempt: 1 }],
            "busy retry {i}"
        );
        sc.handle_input(s(at + 2.0), Input::PlaybackDone { complete: true });
        drain(&mut sc);
    }
    sc.handle_input(s(13.0), Input::SpeechStarted);
    sc.handle_input(s(14.0), Input::RecognizerBusy("whisper is busy".into()));
    assert_eq!(plays(&drain(&mut sc)), vec![Prompt::Goodbye]);
    assert!(sc.result().error.as_deref().is_some_and(|e| e.contains("busy")));
}

#[test]
fn a_reprompt_verdict_speaks_its_text_on_the_next_attempt() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(5.0), heard("what"));
    sc.handle_input(
        s(5.1),
        Input::Decided(Verdict::Reprompt {
            text: "Please say yes or no.".into(),
            detail: "hook 'yesno': reprompt".into(),
        }),
    );
    let outs = drain(&mut sc);
    // The timeline says who asked again, as it does for a match or a no-match.
    assert!(
        outs.contains(&Output::Event {
            name: TimelineEvent::Reprompt,
            detail: Some("\"Please say yes or no.\": hook 'yesno': reprompt".into()),
        }),
        "{outs:?}"
    );
    assert_eq!(
        plays(&outs),
        vec![Prompt::Reprompt {
            attempt: 2,
            text: "Please say yes or no.".into()
        }]
    );
    // On the last attempt a reprompt ends the question.
    sc.handle_input(s(7.0), heard("what"));
    sc.handle_input(
        s(7.1),
        Input::Decided(Verdict::Reprompt {
            text: "again".into(),
            detail: "hook 'yesno': reprompt".into(),
        }),
    );
    assert_eq!(plays(&drain(&mut sc)), vec![Prompt::Goodbye]);
}

#[test]
fn an_option_index_out_of_range_is_no_match() {
    let mut sc = asking(1);
    drain(&mut sc);
    sc.handle_input(s(5.0), heard("yes"));
    sc.handle_input(
        s(5.1),
        Input::Decided(Verdict::Matched {
            option: 9,
            detail: "x".into(),
        }),
    );
    assert_eq!(plays(&drain(&mut sc)), vec![Prompt::Goodbye]);
    assert_eq!(sc.result().choice_response, None);
}

#[test]
fn short_noise_restarts_the_timeout() {
    let mut sc = asking(2);
    drain(&mut sc);
    sc.handle_input(s(5.0), Input::PlaybackDone { complete: true });
    sc.handle_input(s(8.0), Input::SpeechStarted);
    sc.handle_input(s(8.2), Input::SpeechDiscarded);
    assert_eq!(sc.poll_timeout(), Some(s(18.2)));
}
