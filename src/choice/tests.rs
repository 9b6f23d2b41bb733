//! The traps of answer matching, end to end through [`match_answer`].

use super::*;

fn opt(value: &str, synonyms: &[&str]) -> ChoiceOption {
    ChoiceOption {
        value: value.into(),
        synonyms: synonyms.iter().map(|s| s.to_string()).collect(),
        dtmf: None,
    }
}

fn keyed(value: &str, key: char) -> ChoiceOption {
    ChoiceOption {
        value: value.into(),
        synonyms: vec![],
        dtmf: Some(key),
    }
}

fn yes_no() -> Vec<ChoiceOption> {
    vec![
        opt("yes", &["yeah", "sure", "ok", "confirm", "of course"]),
        opt("no", &["nope", "cancel", "never mind", "not now"]),
    ]
}

fn said(text: &str, options: &[ChoiceOption]) -> Option<usize> {
    match_answer(&Answer::heard(text), options, &MatchSettings::default()).option()
}

fn numbered(text: &str, options: &[ChoiceOption]) -> Decision {
    let settings = MatchSettings {
        spoken_numbers: true,
        ..MatchSettings::default()
    };
    match_answer(&Answer::heard(text), options, &settings)
}

#[test]
fn plain_answers() {
    let o = yes_no();
    assert_eq!(said("yes", &o), Some(0));
    assert_eq!(said("Yes.", &o), Some(0));
    assert_eq!(said("YEAH!", &o), Some(0));
    assert_eq!(said("no", &o), Some(1));
    assert_eq!(said("uh, nope", &o), Some(1));
    assert_eq!(said("of course", &o), Some(0));
    assert_eq!(said("please cancel it", &o), Some(1));
}

#[test]
fn the_value_counts_as_a_synonym() {
    let o = [opt("Confirm", &[]), opt("Cancel", &[])];
    assert_eq!(said("confirm", &o), Some(0));
    assert_eq!(said("CANCEL", &o), Some(1));
}

#[test]
fn whole_words_only() {
    let o = yes_no();
    assert_eq!(said("yesterday", &o), None);
    assert_eq!(said("I don't know", &o), None);
    assert_eq!(said("nobody", &o), None);
    assert_eq!(said("nobody told me", &o), None);
    assert_eq!(said("cancellation", &o), None);
    assert_eq!(said("snow", &o), None);
}

#[test]
fn accents_case_and_width_fold() {
    let o = [opt("café", &[]), opt("thé", &[])];
    assert_eq!(said("cafe", &o), Some(0));
    assert_eq!(said("CAFÉ please", &o), Some(0));
    assert_eq!(said("the", &o), Some(1));
    let o = [opt("ja", &["jawohl"]), opt("nein", &[])];
    assert_eq!(said("ＪＡ", &o), Some(0));
    let o = [opt("weiß", &[]), opt("rot", &[])];
    assert_eq!(said("WEISS", &o), Some(0));
}

#[test]
fn spelling_variants() {
    let o = yes_no();
    assert_eq!(said("okay", &o), Some(0));
    assert_eq!(said("O.K.", &o), Some(0));
    assert_eq!(said("nevermind", &o), Some(1));
    assert_eq!(said("never-mind", &o), Some(1));
    let o = [opt("cancel", &["nevermind"]), opt("keep", &[])];
    assert_eq!(said("oh never mind", &o), Some(0));
    let o = [opt("yes", &["okay"]), opt("no", &[])];
    assert_eq!(said("ok", &o), Some(0));
}

#[test]
fn negation_is_not_an_answer() {
    let o = yes_no();
    assert_eq!(said("not sure", &o), None);
    assert_eq!(said("I'm not sure", &o), None);
    assert_eq!(said("don't cancel", &o), None);
    assert_eq!(said("no, I don't want to confirm", &o), None);
    assert_eq!(said("I do not want to confirm", &o), None);
    let d = match_answer(&Answer::heard("not sure"), &o, &MatchSettings::default());
    assert!(matches!(
        d,
        Decision::NoMatch {
            why: NoMatchReason::Negated { ref negation, ref phrase, .. }
        } if negation == "not" && phrase == "sure"
    ));
}

#[test]
fn negation_stops_at_clause_breaks_and_distance() {
    let o = yes_no();
    assert_eq!(said("I don't know. Yes.", &o), Some(0));
    assert_eq!(said("not really sure but yes", &o), None); // "sure" is negated
    let o = [opt("yes", &[]), opt("no", &[])];
    assert_eq!(said("I didn't hear the start, yes", &o), Some(0));
    assert_eq!(said("not that I would ever say so but yes", &o), Some(0));
}

#[test]
fn a_synonym_that_contains_the_negation_matches() {
    let o = [
        opt("keep", &["don't cancel", "do not cancel"]),
        opt("cancel", &[]),
    ];
    assert_eq!(said("don't cancel", &o), Some(0));
    assert_eq!(said("please do not cancel it", &o), Some(0));
    assert_eq!(said("cancel", &o), Some(1));
    let o = yes_no();
    assert_eq!(said("never mind", &o), Some(1));
    assert_eq!(said("not now", &o), Some(1));
}

#[test]
fn two_options_heard_is_ambiguous() {
    let o = yes_no();
    let d = match_answer(&Answer::heard("yes no"), &o, &MatchSettings::default());
    assert_eq!(
        d,
        Decision::NoMatch {
            why: NoMatchReason::Ambiguous {
                alternative: 0,
                options: vec![0, 1]
            }
        }
    );
    assert_eq!(said("yes, cancel", &o), None);
    // The same option twice is fine.
    assert_eq!(said("yes yes sure", &o), Some(0));
}

#[test]
fn the_longest_phrase_wins() {
    let o = [opt("fine", &["no problem"]), opt("no", &[])];
    assert_eq!(said("no problem", &o), Some(0));
    assert_eq!(said("no", &o), Some(1));
    let o = [
        opt("call back", &["call me back later"]),
        opt("call", &["call me"]),
    ];
    assert_eq!(said("call me back later please", &o), Some(0));
    assert_eq!(said("call me", &o), Some(1));
}

#[test]
fn alternatives_in_order_first_match_wins() {
    let o = yes_no();
    let answer = Answer {
        alternatives: vec![
            Alternative {
                transcript: "yesterday".into(),
                confidence: Some(0.6),
            },
            Alternative {
                transcript: "yes today".into(),
                confidence: Some(0.5),
            },
            Alternative {
                transcript: "no".into(),
                confidence: Some(0.4),
            },
        ],
        digits: String::new(),
        attempt: 0,
    };
    let d = match_answer(&answer, &o, &MatchSettings::default());
    assert_eq!(
        d,
        Decision::Matched {
            option: 0,
            why: MatchReason::Phrase {
                alternative: 1,
                phrase: "yes".into()
            }
        }
    );
}

#[test]
fn a_negated_or_two_option_hypothesis_is_not_overruled_by_a_lower_one() {
    let o = yes_no();
    let two = |first: &str, second: &str| Answer {
        alternatives: vec![
            Alternative {
                transcript: first.into(),
                confidence: None,
            },
            Alternative {
                transcript: second.into(),
                confidence: Some(0.9),
            },
        ],
        digits: String::new(),
        attempt: 0,
    };
    let d = match_answer(&two("not yes", "yes"), &o, &MatchSettings::default());
    assert!(
        matches!(
            d,
            Decision::NoMatch {
                why: NoMatchReason::Negated { alternative: 0, .. }
            }
        ),
        "{d:?}"
    );
    let d = match_answer(&two("yes no", "yes"), &o, &MatchSettings::default());
    assert!(
        matches!(
            d,
            Decision::NoMatch {
                why: NoMatchReason::Ambiguous { alternative: 0, .. }
            }
        ),
        "{d:?}"
    );
    // A hypothesis without answer words still gives way to the next.
    assert_eq!(
        match_answer(&two("what", "yes"), &o, &MatchSettings::default()).option(),
        Some(0)
    );
}

#[test]
fn confidence_floor_skips_alternatives() {
    let o = yes_no();
    let answer = Answer {
        alternatives: vec![
            Alternative {
                transcript: "yes".into(),
                confidence: Some(0.2),
            },
            Alternative {
                transcript: "no".into(),
                confidence: Some(0.9),
            },
        ],
        digits: String::new(),
        attempt: 0,
    };
    let settings = MatchSettings {
        min_confidence: Some(0.5),
        ..MatchSettings::default()
    };
    assert_eq!(match_answer(&answer, &o, &settings).option(), Some(1));
    let low = Answer {
        alternatives: vec![answer.alternatives[0].clone()],
        digits: String::new(),
        attempt: 0,
    };
    assert_eq!(
        match_answer(&low, &o, &settings),
        Decision::NoMatch {
            why: NoMatchReason::LowConfidence
        }
    );
}

#[test]
fn empty_and_noise() {
    let o = yes_no();
    let d = match_answer(&Answer::default(), &o, &MatchSettings::default());
    assert_eq!(
        d,
        Decision::NoMatch {
            why: NoMatchReason::NothingHeard
        }
    );
    let d = match_answer(&Answer::heard("  ...  "), &o, &MatchSettings::default());
    assert_eq!(
        d,
        Decision::NoMatch {
            why: NoMatchReason::NothingHeard
        }
    );
    let d = match_answer(&Answer::heard("what"), &o, &MatchSettings::default());
    assert_eq!(
        d,
        Decision::NoMatch {
            why: NoMatchReason::NoPhrase
        }
    );
    assert_eq!(said("", &[]), None);
}

#[test]
fn spoken_numbers_only_when_enabled() {
    let o = [opt("red", &[]), opt("green", &[]), opt("blue", &[])];
    assert_eq!(said("option two", &o), None);
    for text in [
        "option two",
        "the second one",
        "number 2",
        "2",
        "press two",
        "two please",
    ] {
        assert_eq!(numbered(text, &o).option(), Some(1), "{text}");
    }
    assert_eq!(numbered("the third", &o).option(), Some(2));
    assert_eq!(
        numbered("option five", &o),
        Decision::NoMatch {
            why: NoMatchReason::NumberOutOfRange {
                alternative: 0,
                number: 5
            }
        }
    );
    assert_eq!(numbered("option 0", &o).option(), None);
    assert_eq!(numbered("not the second one", &o).option(), None);
    assert_eq!(numbered("the first or the second", &o).option(), None);
    assert_eq!(numbered("I have two dogs", &o).option(), None);
    assert_eq!(numbered("hang on a second", &o).option(), None);
    assert_eq!(numbered("hang on a second...", &o).option(), None);
    // Phrases come first.
    assert_eq!(numbered("blue, option one", &o).option(), Some(2));
}

#[test]
fn implicit_keys_pick_by_position() {
    let o = yes_no();
    let d = match_answer(&Answer::keys("2"), &o, &MatchSettings::default());
    assert_eq!(
        d,
        Decision::Matched {
            option: 1,
            why: MatchReason::Key { key: '2' }
        }
    );
    assert_eq!(
        match_answer(&Answer::keys("3"), &o, &MatchSettings::default()).option(),
        None
    );
    assert_eq!(
        match_answer(&Answer::keys("#"), &o, &MatchSettings::default()).option(),
        None
    );
    assert_eq!(
        match_answer(&Answer::keys("*"), &o, &MatchSettings::default()).option(),
        None
    );
    assert_eq!(
        match_answer(&Answer::keys("0"), &o, &MatchSettings::default()).option(),
        None
    );
    assert_eq!(
        match_answer(&Answer::keys("9"), &o, &MatchSettings::default()),
        Decision::NoMatch {
            why: NoMatchReason::UnknownKeys { digits: "9".into() }
        }
    );
}

#[test]
fn explicit_keys_replace_implicit_ones() {
    let o = [keyed("yes", '#'), opt("no", &[]), keyed("later", '*')];
    let s = MatchSettings::default();
    assert_eq!(match_answer(&Answer::keys("#"), &o, &s).option(), Some(0));
    assert_eq!(match_answer(&Answer::keys("*"), &o, &s).option(), Some(2));
    // Option 2 has no key, and key 1/2 are not implicit any more.
    assert_eq!(match_answer(&Answer::keys("1"), &o, &s).option(), None);
    assert_eq!(match_answer(&Answer::keys("2"), &o, &s).option(), None);
}

#[test]
fn keys_beat_speech_and_unknown_keys_fall_through() {
    let o = yes_no();
    let s = MatchSettings::default();
    let mut both = Answer::heard("no");
    both.digits = "1".into();
    assert_eq!(match_answer(&both, &o, &s).option(), Some(0));
    both.digits = "7".into();
    assert_eq!(match_answer(&both, &o, &s).option(), Some(1));
    let d = match_answer(&Answer::keys("12"), &o, &s);
    assert_eq!(
        d,
        Decision::NoMatch {
            why: NoMatchReason::ConflictingKeys {
                digits: "12".into(),
                options: vec![0, 1]
            }
        }
    );
}

#[test]
fn reasons_read_well() {
    let o = yes_no();
    let s = MatchSettings::default();
    assert_eq!(
        match_answer(&Answer::heard("sure"), &o, &s).to_string(),
        "option 1: heard \"sure\" (alternative 1)"
    );
    assert_eq!(
        match_answer(&Answer::heard("yes no"), &o, &s).to_string(),
        "no match: ambiguous: heard phrases of options 1, 2"
    );
    assert_eq!(
        match_answer(&Answer::keys("2"), &o, &s).to_string(),
        "option 2: key 2"
    );
}

#[test]
fn hostile_input_does_not_panic() {
    let o = yes_no();
    let long = "yes ".repeat(10_000);
    assert_eq!(said(&long, &o), Some(0));
    for text in [
        "\u{0301}\u{0301}",
        "\u{FEFF}yes",
        "🙂 yes 🙂",
        "ǅ",
        "İstanbul",
        "\0no",
    ] {
        let _ = said(text, &o);
    }
    assert_eq!(said("\u{FEFF}yes", &o), Some(0));
    let weird = [opt("", &[""]), opt("  ", &["..."])];
    assert_eq!(said("yes", &weird), None);
    assert_eq!(said("", &weird), None);
}

#[test]
fn number_phrases_are_read_back_as_their_option() {
    let options = vec![
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
        ChoiceOption {
            value: "later".into(),
            synonyms: vec![],
            dtmf: None,
        },
    ];
    let settings = MatchSettings {
        spoken_numbers: true,
        ..MatchSettings::default()
    };
    let phrases = super::number_phrases(options.len());
    assert_eq!(phrases.len(), 3);
    for (option, said) in phrases {
        assert_eq!(said.len(), 6);
        for text in said {
            let answer = Answer {
                alternatives: vec![Alternative {
                    transcript: text.clone(),
                    confidence: None,
                }],
                digits: String::new(),
                attempt: 0,
            };
            match match_answer(&answer, &options, &settings) {
                Decision::Matched { option: got, .. } => assert_eq!(got, option, "{text}"),
                other => panic!("{text}: {other}"),
            }
        }
    }
    assert!(super::number_phrases(40).len() == 12);
}

#[test]
fn no_as_a_determiner_is_not_the_answer_no() {
    let o = [opt("yes", &["sure"]), opt("no", &["cancel"])];
    for text in [
        "no idea",
        "I have no idea",
        "No problem.",
        "no worries",
        "no doubt",
    ] {
        assert_eq!(said(text, &o), None, "{text}");
    }
    // Refusals that start with "no" stay refusals, and so does "no" on its own clause.
    for text in [
        "no",
        "no way",
        "no thanks",
        "no, no idea why you ask",
        "no. problem solved",
    ] {
        assert_eq!(said(text, &o), Some(1), "{text}");
    }
    // An option that lists the idiom itself gets it.
    let o = [opt("yes", &["no problem"]), opt("no", &[])];
    assert_eq!(said("no problem", &o), Some(0));
}
