//! The built-in answer matcher, sans-IO: what was heard (n-best transcripts, DTMF keys) and the
//! options in, an option index or a reasoned no-match out. [`match_answer`] is the entry point.
//!
//! Rules, in order:
//! 1. **Keys** ([`dtmf`]) decide first. Key N picks option N (1..9) unless any option carries an
//!    explicit `dtmf` key; then only explicit keys count. `0`, `*`, `#` (and `A`-`D`) are never
//!    implicit: they work only as explicit keys. Keys that pick nothing fall through to speech.
//! 2. **Speech**: the alternatives are tried best first; the first that matches wins. Alternatives
//!    whose confidence is below [`MatchSettings::min_confidence`] are skipped. An alternative that
//!    holds answer words but negated (rule 5) or for two options (rule 6) ends the search: a lower
//!    hypothesis ("sales" under "not sales") does not overrule what a higher one clearly said.
//! 3. Text is folded ([`normalize`]): NFKD, accents dropped (`café` = `cafe`), lower case,
//!    apostrophes joined (`don't` → `dont`), punctuation a word break, `, . ; : ! ?` and `but` a
//!    clause break, and a few spelling variants (`okay` → `ok`).
//! 4. Every option's `value` and `synonyms` are phrases, found as whole words (`yesterday` is not
//!    `yes`, `nobody` is not `no`), or with spaces removed on both sides (`never mind` =
//!    `nevermind`). A hit inside a longer hit is dropped (`no` inside `no problem`).
//! 5. **Negation** ([`negation`]): a hit preceded in its clause, within four words, by a negating
//!    word (`not sure`, `don't cancel`, `no, I don't want to confirm`) makes the whole alternative
//!    a no-match (ask again), unless the negating word is part of a hit itself (a synonym such as
//!    `don't cancel` or `never mind`).
//! 6. Hits for two different options: no match (ambiguous). The call script then asks back about
//!    one of them ([`options_heard`] lists them in the order said; see `crate::flow::confirm`).
//! 7. Only when no phrase was found and [`MatchSettings::spoken_numbers`] is on: option numbers
//!    ([`numbers`]: `option two`, `the second one`, `number 2`, `press two`, a bare `2`).

mod dtmf;
mod heard;
mod idioms;
mod negation;
mod normalize;
mod numbers;
mod phrases;
pub mod recognition;

use std::fmt;

use crate::call::ChoiceOption;
pub use recognition::Alternative;

pub use dtmf::option_for_key;
pub use heard::options_heard;
pub use normalize::words as fold_words;
pub use numbers::phrases as number_phrases;

/// What the caller answered: recogniser hypotheses (best first) and/or keys pressed. The one
/// answer type from the call script through the matcher and the hooks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// Recogniser hypotheses, best first (empty for a key press).
    pub alternatives: Vec<Alternative>,
    /// DTMF keys in the order pressed (`0`-`9`, `*`, `#`, `A`-`D`); empty for speech.
    pub digits: String,
    /// 1-based attempt of the question (0 where no call asks, as in the matcher's own tests).
    pub attempt: u32,
}

impl Answer {
    /// One transcript without a confidence.
    pub fn heard(transcript: &str) -> Self {
        Self {
            alternatives: vec![Alternative {
                transcript: transcript.to_string(),
                confidence: None,
            }],
            ..Self::default()
        }
    }

    /// Keys only.
    pub fn keys(digits: &str) -> Self {
        Self {
            digits: digits.to_string(),
            ..Self::default()
        }
    }
}

/// Knobs of the built-in matcher; the default has both off.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchSettings {
    /// Accept option numbers (`option two`, `the second one`, `2`). Off by default: a bare number
    /// is a plausible answer to some questions.
    pub spoken_numbers: bool,
    /// Skip alternatives whose confidence is known and below this (0..=1). `None` = use all.
    pub min_confidence: Option<f32>,
}

/// Why an option was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchReason {
    Key {
        key: char,
    },
    /// `phrase` (as configured) was heard in alternative `alternative` (0 = best).
    Phrase {
        alternative: usize,
        phrase: String,
    },
    /// The option number was said.
    Number {
        alternative: usize,
        number: usize,
    },
}

/// Why nothing was picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatchReason {
    /// No keys and no (non-empty) transcript.
    NothingHeard,
    /// Keys pressed that pick no option, and nothing usable said.
    UnknownKeys { digits: String },
    /// Keys pointing at different options.
    ConflictingKeys { digits: String, options: Vec<usize> },
    /// Every alternative was below the confidence floor.
    LowConfidence,
    /// A phrase was negated (`not sure`).
    Negated {
        alternative: usize,
        negation: String,
        phrase: String,
    },
    /// Phrases of different options were heard.
    Ambiguous { alternative: usize, options: Vec<usize> },
    /// A spoken option number that no option has.
    NumberOutOfRange { alternative: usize, number: usize },
    /// Words were heard, none of them an answer.
    NoPhrase,
}

/// The matcher's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `option` indexes the options given.
    Matched {
        option: usize,
        why: MatchReason,
    },
    NoMatch {
        why: NoMatchReason,
    },
}

impl Decision {
    pub fn option(&self) -> Option<usize> {
        match self {
            Decision::Matched { option, .. } => Some(*option),
            Decision::NoMatch { .. } => None,
        }
    }

    /// The verdict the call acts on, its detail naming the built-in matcher.
    pub fn into_verdict(self) -> Verdict {
        match self {
            Decision::Matched { option, why } => Verdict::Matched {
                option,
                detail: format!("built-in matcher: {why}"),
            },
            Decision::NoMatch { why } => Verdict::NoMatch {
                why: format!("built-in matcher: {why}"),
            },
        }
    }
}

/// What was decided about an [`Answer`], whoever decided it (the built-in matcher through
/// [`Decision::into_verdict`], a hook through `hooks::Decided::into_verdict`): the one decision type
/// the call script acts on and the timeline records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Option index; `detail` says who matched and how (for the timeline).
    Matched {
        option: usize,
        detail: String,
    },
    NoMatch {
        why: String,
    },
    /// Ask again with this text; `detail` says who asked (for the timeline).
    Reprompt {
        text: String,
        detail: String,
    },
}

impl fmt::Display for MatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchReason::Key { key } => write!(f, "key {key}"),
            MatchReason::Phrase { alternative, phrase } => {
                write!(f, "heard \"{phrase}\" (alternative {})", alternative + 1)
            }
            MatchReason::Number { alternative, number } => {
                write!(
                    f,
                    "heard option number {number} (alternative {})",
                    alternative + 1
                )
            }
        }
    }
}

impl fmt::Display for NoMatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoMatchReason::NothingHeard => f.write_str("nothing heard"),
            NoMatchReason::UnknownKeys { digits } => write!(f, "keys {digits} pick no option"),
            NoMatchReason::ConflictingKeys { digits, options } => {
                write!(f, "keys {digits} pick different options {}", one_based(options))
            }
            NoMatchReason::LowConfidence => f.write_str("every hypothesis was below the confidence floor"),
            NoMatchReason::Negated { negation, phrase, .. } => {
                write!(f, "\"{phrase}\" was negated by \"{negation}\"")
            }
            NoMatchReason::Ambiguous { options, .. } => {
                write!(f, "ambiguous: heard phrases of options {}", one_based(options))
            }
            NoMatchReason::NumberOutOfRange { number, .. } => write!(f, "there is no option {number}"),
            NoMatchReason::NoPhrase => f.write_str("no option phrase heard"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Matched { option, why } => write!(f, "option {}: {why}", option + 1),
            Decision::NoMatch { why } => write!(f, "no match: {why}"),
        }
    }
}

fn one_based(options: &[usize]) -> String {
    options
        .iter()
        .map(|o| (o + 1).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Match what was heard against `options` (see the module docs for the rules).
pub fn match_answer(answer: &Answer, options: &[ChoiceOption], settings: &MatchSettings) -> Decision {
    let keys = dtmf::decide(&answer.digits, options);
    if let dtmf::Keys::Picked { option, key } = keys {
        return Decision::Matched {
            option,
            why: MatchReason::Key { key },
        };
    }
    let speech = match_speech(&answer.alternatives, options, settings);
    match (speech, keys) {
        (Ok(decision), _) => decision,
        (Err(why), dtmf::Keys::None) => Decision::NoMatch { why },
        (Err(_), dtmf::Keys::Conflicting(options)) => Decision::NoMatch {
            why: NoMatchReason::ConflictingKeys {
                digits: answer.digits.trim().to_string(),
                options,
            },
        },
        (Err(why), _) if why != NoMatchReason::NothingHeard => Decision::NoMatch { why },
        (Err(_), _) => Decision::NoMatch {
            why: NoMatchReason::UnknownKeys {
                digits: answer.digits.trim().to_string(),
            },
        },
    }
}

/// The first alternative that matches, else the reason the first usable alternative gave.
fn match_speech(
    alternatives: &[Alternative],
    options: &[ChoiceOption],
    settings: &MatchSettings,
) -> Result<Decision, NoMatchReason> {
    let phrases = phrases::phrases(options);
    let mut first_reason: Option<NoMatchReason> = None;
    let mut any_confident = false;
    let mut any_words = false;
    for (index, alt) in alternatives.iter().enumerate() {
        if let (Some(floor), Some(c)) = (settings.min_confidence, alt.confidence) {
            if c < floor {
                continue;
            }
        }
        any_confident = true;
        let tokens = normalize::tokens(&alt.transcript);
        if tokens.is_empty() {
            continue;
        }
        any_words = true;
        match match_one(index, &tokens, &phrases, options.len(), settings) {
            Ok(decision) => return Ok(decision),
            // A hypothesis that holds answer words, negated or for two options, has said what it
            // means: a lower one ("sales" under "not sales") does not overrule it.
            Err(why @ (NoMatchReason::Negated { .. } | NoMatchReason::Ambiguous { .. })) => {
                return Err(first_reason.unwrap_or(why));
            }
            Err(why) => {
                first_reason.get_or_insert(why);
            }
        }
    }
    Err(match first_reason {
        Some(why) => why,
        None if !alternatives.is_empty() && !any_confident => NoMatchReason::LowConfidence,
        None if any_words => NoMatchReason::NoPhrase,
        None => NoMatchReason::NothingHeard,
    })
}

fn match_one(
    alternative: usize,
    tokens: &[normalize::Token],
    phrases: &[phrases::Phrase],
    option_count: usize,
    settings: &MatchSettings,
) -> Result<Decision, NoMatchReason> {
    let mut hits = phrases::find(tokens, phrases);
    hits.retain(|h| !idioms::is_idiom(tokens, h));
    for hit in &hits {
        if let Some(at) = negation::negated_by(tokens, hit.start, &hits) {
            return Err(NoMatchReason::Negated {
                alternative,
                negation: tokens[at].text.clone(),
                phrase: phrases[hit.phrase].text.clone(),
            });
        }
    }
    let mut options: Vec<usize> = hits.iter().map(|h| h.option).collect();
    options.sort_unstable();
    options.dedup();
    match options.as_slice() {
        [option] => {
            let phrase = hits
                .iter()
                .find(|h| h.option == *option)
                .map(|h| phrases[h.phrase].text.clone())
                .unwrap_or_default();
            return Ok(Decision::Matched {
                option: *option,
                why: MatchReason::Phrase { alternative, phrase },
            });
        }
        [] => {}
        _ => return Err(NoMatchReason::Ambiguous { alternative, options }),
    }
    if !settings.spoken_numbers {
        return Err(NoMatchReason::NoPhrase);
    }
    let spoken = numbers::find(tokens);
    for s in &spoken {
        if let Some(at) = negation::negated_by(tokens, s.at, &[]) {
            return Err(NoMatchReason::Negated {
                alternative,
                negation: tokens[at].text.clone(),
                phrase: tokens[s.at].text.clone(),
            });
        }
    }
    let mut numbers: Vec<usize> = spoken.iter().map(|s| s.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    match numbers.as_slice() {
        [] => Err(NoMatchReason::NoPhrase),
        [number] if (1..=option_count).contains(number) => Ok(Decision::Matched {
            option: number - 1,
            why: MatchReason::Number {
                alternative,
                number: *number,
            },
        }),
        [number] => Err(NoMatchReason::NumberOutOfRange {
            alternative,
            number: *number,
        }),
        many => Err(NoMatchReason::Ambiguous {
            alternative,
            options: many
                .iter()
                .filter(|n| (1..=option_count).contains(*n))
                .map(|n| n - 1)
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests;
