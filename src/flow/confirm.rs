//! Asking back when unsure, sans-IO: when to confirm an answer, which option to confirm, and
//! what a reply to "Did you say <option>? Say yes or press 1." means.
//!
//! An answer is confirmed (once; `script.confirm`, on by default) when:
//! - its transcript holds phrases of two or more options ("sales or support"). The option asked
//!   about is the one the matcher picked; when the matcher picked none (it calls such a reply
//!   ambiguous), the one the scorer picked if it is among them, else the one said last
//!   ("support, no wait, sales" asks about sales);
//! - a closed-vocabulary scorer picked another option than the matcher did (the free transcript
//!   says one thing, the scorer another): the matcher's option is asked about;
//! - the engine's confidence in the answer is below `script.confirm_below` (the scorer's
//!   confidence in its pick, or the free-text engine's confidence in its best transcript; an
//!   engine without a confidence never triggers this).
//!
//! Keys are never confirmed. A reply of yes (or key 1) settles the option (`confirmed_by` =
//! `confirmation`); no (or key 2), anything else, silence or a recogniser failure is a no-match,
//! and the call goes on with its next attempt.

use std::fmt;

use crate::call::ChoiceOption;
use crate::choice::recognition::{Alternative, Phrase, Recognition};
use crate::choice::{self, Decision, MatchSettings};

pub use crate::config::defaults::{DEFAULT_CONFIRM_BELOW, DEFAULT_QUESTION};

/// The placeholder in the question text.
pub const OPTION_PLACEHOLDER: &str = "{option}";

/// When the script asks back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfirmSettings {
    pub enabled: bool,
    /// Confidence (0..=1) under which a matched answer is confirmed.
    pub below: f32,
}

impl ConfirmSettings {
    /// Never ask back.
    pub const OFF: ConfirmSettings = ConfirmSettings {
        enabled: false,
        below: 0.0,
    };
}

impl Default for ConfirmSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            below: DEFAULT_CONFIRM_BELOW as f32,
        }
    }
}

/// The question, with `value` in place of `{option}` (a text without the placeholder is said as
/// it is).
pub fn question(template: &str, value: &str) -> String {
    template.replace(OPTION_PLACEHOLDER, value)
}

/// What the script keeps of a spoken answer while the matcher decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeardAnswer {
    /// The free transcript, if any.
    pub transcript: Option<String>,
    /// The engine's confidence in the answer, where it has one.
    pub confidence: Option<f32>,
    /// The option a closed-vocabulary scorer picked.
    pub pick: Option<usize>,
}

impl HeardAnswer {
    pub fn of(rec: &Recognition) -> Self {
        match rec {
            Recognition::Heard(alts) => Self {
                transcript: alts.first().map(|a| a.transcript.clone()),
                confidence: alts.first().and_then(|a| a.confidence),
                pick: None,
            },
            Recognition::Scored { transcript, pick } => Self {
                transcript: Some(transcript.clone()),
                confidence: pick.as_ref().map(|p| p.confidence),
                pick: pick.as_ref().map(|p| p.option),
            },
            Recognition::NoMatch { transcript } => Self {
                transcript: transcript.clone(),
                ..Self::default()
            },
            Recognition::Rejected { .. } => Self::default(),
        }
    }
}

/// Why an answer is confirmed.
#[derive(Debug, Clone, PartialEq)]
pub enum Unsure {
    /// Phrases of these options were heard (in the order said).
    TwoOptions { options: Vec<usize> },
    /// The scorer picked this other option.
    ScorerDisagrees { picked: usize },
    /// The engine's confidence, below the threshold.
    LowConfidence { confidence: f32, below: f32 },
}

impl fmt::Display for Unsure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsure::TwoOptions { options } => {
                let list: Vec<String> = options.iter().map(|o| (o + 1).to_string()).collect();
                write!(f, "heard phrases of options {}", list.join(", "))
            }
            Unsure::ScorerDisagrees { picked } => {
                write!(f, "the scorer picked option {} instead", picked + 1)
            }
            Unsure::LowConfidence { confidence, below } => {
                write!(f, "confidence {confidence:.2} is below {below:.2}")
            }
        }
    }
}

/// The option to confirm and why, or `None` to take the matcher's verdict as it is. `matched` is
/// the option the matcher picked (`None`: no match).
pub fn to_confirm(
    settings: &ConfirmSettings,
    heard: &HeardAnswer,
    matched: Option<usize>,
    options: &[ChoiceOption],
) -> Option<(usize, Unsure)> {
    if !settings.enabled {
        return None;
    }
    let said = heard
        .transcript
        .as_deref()
        .map(|t| choice::options_heard(t, options))
        .unwrap_or_default();
    let Some(option) = matched else {
        let last = *said.last()?;
        if said.len() < 2 {
            return None;
        }
        let option = heard.pick.filter(|p| said.contains(p)).unwrap_or(last);
        return Some((option, Unsure::TwoOptions { options: said }));
    };
    if said.len() >= 2 {
        return Some((option, Unsure::TwoOptions { options: said }));
    }
    if let Some(picked) = heard.pick.filter(|&p| p != option) {
        return Some((option, Unsure::ScorerDisagrees { picked }));
    }
    match heard.confidence {
        Some(c) if c < settings.below => Some((
            option,
            Unsure::LowConfidence {
                confidence: c,
                below: settings.below,
            },
        )),
        _ => None,
    }
}

/// What a reply to the confirmation question means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Yes,
    No,
    /// Neither (another answer, a negated yes, keys other than 1 and 2); says what was heard.
    Other(String),
}

const YES: &[&str] = &[
    "yeah",
    "yep",
    "yup",
    "correct",
    "right",
    "that's right",
    "sure",
    "exactly",
    "I did",
    "affirmative",
];
const NO: &[&str] = &["nope", "nah", "wrong", "incorrect", "I didn't", "no I did not"];

fn yes_no() -> [ChoiceOption; 2] {
    let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    [
        ChoiceOption {
            value: "yes".into(),
            synonyms: list(YES),
            dtmf: Some('1'),
        },
        ChoiceOption {
            value: "no".into(),
            synonyms: list(NO),
            dtmf: Some('2'),
        },
    ]
}

/// The phrases a recogniser listens for during the confirmation (yes = option 0, no = option 1).
pub fn phrases() -> Vec<Phrase> {
    yes_no()
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            std::iter::once(&o.value)
                .chain(o.synonyms.iter())
                .map(move |t| Phrase::answer(t.clone(), i))
        })
        .collect()
}

/// The built-in matcher's reading of a reply: yes/no words (whole words, negation), key 1 or 2.
pub fn reply(alternatives: &[Alternative], digits: &str) -> Reply {
    let answer = choice::Answer {
        alternatives: alternatives.to_vec(),
        digits: digits.to_string(),
        attempt: 0,
    };
    match choice::match_answer(&answer, &yes_no(), &MatchSettings::default()) {
        Decision::Matched { option: 0, .. } => Reply::Yes,
        Decision::Matched { .. } => Reply::No,
        Decision::NoMatch { why } => Reply::Other(why.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choice::recognition::Pick;

    fn options() -> Vec<ChoiceOption> {
        ["sales", "support", "billing"]
            .iter()
            .map(|v| ChoiceOption {
                value: v.to_string(),
                synonyms: vec![],
                dtmf: None,
            })
            .collect()
    }

    fn said(t: &str, confidence: Option<f32>) -> HeardAnswer {
        HeardAnswer::of(&Recognition::Heard(vec![Alternative {
            transcript: t.into(),
            confidence,
        }]))
    }

    fn scored(t: &str, pick: Option<(usize, f32)>) -> HeardAnswer {
        HeardAnswer::of(&Recognition::Scored {
            transcript: t.into(),
            pick: pick.map(|(option, confidence)| Pick {
                option,
                phrase: options()[option].value.clone(),
                said: options()[option].value.clone(),
                confidence,
            }),
        })
    }

    #[test]
    fn low_confidence_two_options_and_a_disagreeing_scorer_are_confirmed() {
        let on = ConfirmSettings::default();
        let o = options();
        assert_eq!(to_confirm(&on, &said("sales", Some(0.9)), Some(0), &o), None);
        assert_eq!(to_confirm(&on, &said("sales", None), Some(0), &o), None);
        assert_eq!(
            to_confirm(&on, &said("sales", Some(0.4)), Some(0), &o),
            Some((
                0,
                Unsure::LowConfidence {
                    confidence: 0.4,
                    below: 0.6
                }
            ))
        );
        // Two options and no match: the one said last; with a scorer, its pick.
        let two = Unsure::TwoOptions { options: vec![1, 0] };
        assert_eq!(
            to_confirm(&on, &said("support, no wait, sales", Some(0.9)), None, &o),
            Some((0, two.clone()))
        );
        assert_eq!(
            to_confirm(&on, &scored("support, no wait, sales", Some((1, 0.9))), None, &o),
            Some((1, two.clone()))
        );
        // A scorer's pick outside what was said does not count.
        assert_eq!(
            to_confirm(&on, &scored("support, no wait, sales", Some((2, 0.9))), None, &o),
            Some((0, two.clone()))
        );
        // Two options and a match (through the scorer's phrase): the matched one.
        assert_eq!(
            to_confirm(
                &on,
                &scored("support, no wait, sales", Some((1, 0.9))),
                Some(1),
                &o
            ),
            Some((1, two))
        );
        assert_eq!(
            to_confirm(&on, &scored("sales please", Some((1, 0.9))), Some(0), &o),
            Some((0, Unsure::ScorerDisagrees { picked: 1 }))
        );
        assert_eq!(
            to_confirm(&on, &scored("sales please", Some((0, 0.9))), Some(0), &o),
            None
        );
        assert_eq!(to_confirm(&on, &scored("sales please", None), Some(0), &o), None);
        // A plain no-match (nothing, one negated option) is not confirmed.
        assert_eq!(to_confirm(&on, &said("not sales", Some(0.2)), None, &o), None);
        assert_eq!(to_confirm(&on, &said("weather", Some(0.2)), None, &o), None);
        // Off: never.
        assert_eq!(
            to_confirm(
                &ConfirmSettings::OFF,
                &said("sales or support", Some(0.1)),
                None,
                &o
            ),
            None
        );
    }

    #[test]
    fn replies_are_yes_no_or_neither() {
        let alt = |t: &str| {
            vec![Alternative {
                transcript: t.into(),
                confidence: None,
            }]
        };
        assert_eq!(reply(&alt("yes"), ""), Reply::Yes);
        assert_eq!(reply(&alt("yeah that's right"), ""), Reply::Yes);
        assert_eq!(reply(&alt("no"), ""), Reply::No);
        assert_eq!(reply(&alt("nope, I didn't"), ""), Reply::No);
        assert_eq!(reply(&[], "1"), Reply::Yes);
        assert_eq!(reply(&[], "2"), Reply::No);
        assert!(matches!(reply(&[], "3"), Reply::Other(_)));
        assert!(matches!(reply(&alt("that's not right"), ""), Reply::Other(_)));
        assert!(matches!(reply(&alt("support"), ""), Reply::Other(_)));
        assert!(matches!(reply(&alt("yes no"), ""), Reply::Other(_)));
        assert_eq!(
            question(DEFAULT_QUESTION, "support"),
            "Did you say support? Say yes or press 1."
        );
        let words = phrases();
        assert!(words.contains(&Phrase::answer("yes", 0)) && words.contains(&Phrase::answer("no", 1)));
    }
}
