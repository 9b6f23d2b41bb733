//! Guards against what Whisper invents on short clips, and the verdict on one decode.
//!
//! * **Loops**: with an initial prompt that lists phrases, a short clip tends to be decoded as the
//!   answer followed by the same answer again and again ("yes I confirm, yes I confirm, ...").
//!   [`ends_in_repeat`] lets the decoder stop at the first immediate repeat of a phrase of two or
//!   more tokens, and [`collapse_repeats`] drops repeated runs of words from the text. (Going on
//!   with the prompt's comma-separated list after the caller's words is prevented in the decoder
//!   itself, which never emits a comma.)
//! * **Non-speech**: bracketed annotations (`[BLANK_AUDIO]`, `(music)`, `*laughs*`) and text
//!   without a letter or digit are nothing heard.
//! * **Silence**: Whisper's own no-speech probability, with the rule of OpenAI's decoder (over 0.6
//!   while the mean token log-probability is under -1), also means nothing heard. The endpointer
//!   already keeps silence away; this catches a cough or a click that opened an utterance.

use crate::speech::{Alternative, Recognition};

/// No-speech probability above which a low-confidence decode counts as silence.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// Mean token log-probability under which a decode is low-confidence.
const LOGPROB_THRESHOLD: f32 = -1.0;

/// What one decode produced, before the guards.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub text: String,
    /// Probability of each text token (special tokens left out).
    pub token_probs: Vec<f32>,
    pub no_speech_prob: f32,
}

/// Whether `tokens` ends with some run of two or more tokens said twice in a row.
pub fn ends_in_repeat(tokens: &[i32]) -> bool {
    let n = tokens.len();
    (2..=n / 2).any(|len| tokens[n - len..] == tokens[n - 2 * len..n - len])
}

/// A word compared without case and punctuation.
fn key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// `text` with every run of words that directly repeats the run before it dropped, then (once
/// such a loop was seen) a trailing start of the phrase again that the token cap cut off, and the
/// punctuation left dangling at the end: "Yes, I confirm, yes I confirm, yes" becomes "Yes, I
/// confirm". Words compare without case and punctuation.
pub fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys: Vec<String> = words.iter().map(|w| key(w)).collect();
    let same = |a: usize, b: usize| !keys[a].is_empty() && keys[a] == keys[b];
    let mut kept: Vec<usize> = Vec::with_capacity(words.len());
    let mut looped = false;
    let mut i = 0;
    while i < words.len() {
        let full = (1..=kept.len()).rev().find(|&len| {
            i + len <= words.len() && kept[kept.len() - len..].iter().zip(i..).all(|(&a, b)| same(a, b))
        });
        if let Some(len) = full {
            i += len;
            looped = true;
            continue;
        }
        let rest = words.len() - i;
        let cut_off = looped
            && (rest + 1..=kept.len()).any(|len| {
                kept[kept.len() - len..]
                    .iter()
                    .take(rest)
                    .zip(i..)
                    .all(|(&a, b)| same(a, b))
            });
        if cut_off {
            break;
        }
        kept.push(i);
        i += 1;
    }
    let joined = kept.iter().map(|&k| words[k]).collect::<Vec<_>>().join(" ");
    joined
        .trim_end_matches([',', ';', ':', '-', '…'])
        .trim()
        .to_string()
}

/// `text` without bracketed annotations; `None` when no letter or digit is left.
pub fn spoken_text(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut close: Option<char> = None;
    for c in text.chars() {
        match (close, c) {
            (Some(end), c) if c == end => close = None,
            (Some(_), _) => {}
            (None, '[') => close = Some(']'),
            (None, '(') => close = Some(')'),
            (None, '*') => close = Some('*'),
            (None, c) => out.push(c),
        }
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    out.chars().any(char::is_alphanumeric).then_some(out)
}

/// The recognition of one decode, after the guards. The confidence is the mean probability of
/// the text tokens.
pub fn verdict(d: &Decoded) -> Recognition {
    let n = d.token_probs.len().max(1) as f32;
    let mean_logprob = d.token_probs.iter().map(|p| p.max(1e-9).ln()).sum::<f32>() / n;
    if d.no_speech_prob > NO_SPEECH_THRESHOLD && mean_logprob < LOGPROB_THRESHOLD {
        return Recognition::NoMatch { transcript: None };
    }
    let Some(text) = spoken_text(&d.text) else {
        return Recognition::NoMatch { transcript: None };
    };
    let text = collapse_repeats(&text);
    if text.is_empty() {
        return Recognition::NoMatch { transcript: None };
    }
    let confidence = if d.token_probs.is_empty() {
        None
    } else {
        Some((d.token_probs.iter().sum::<f32>() / n).clamp(0.0, 1.0))
    };
    Recognition::Heard(vec![Alternative {
        transcript: text,
        confidence,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_phrase_stops_the_decoder() {
        // " no" " thanks" "," " no" " thanks" ","
        assert!(ends_in_repeat(&[1400, 5176, 11, 1400, 5176, 11]));
        assert!(ends_in_repeat(&[7, 1400, 11, 1400, 11]));
        // A single repeated token is speech ("no no"), not a loop.
        assert!(!ends_in_repeat(&[1400, 1400]));
        assert!(!ends_in_repeat(&[1400, 5176, 11, 1400]));
        assert!(!ends_in_repeat(&[]));
    }

    #[test]
    fn loops_collapse_to_the_phrase() {
        let c = collapse_repeats;
        assert_eq!(
            c("Yes, I confirm, yes I confirm, yes I confirm, yes"),
            "Yes, I confirm"
        );
        assert_eq!(c(" no thanks, no thanks, no thanks,"), "no thanks");
        assert_eq!(
            c("The quick round fox jump over the lazy dog. The quick round fox jump over the lazy dog. The"),
            "The quick round fox jump over the lazy dog."
        );
        assert_eq!(c("Yes. I confirm, I confirm, I confirm"), "Yes. I confirm");
        assert_eq!(c("no no no"), "no");
        assert_eq!(c("What time is it?"), "What time is it?");
        assert_eq!(c("yes I said yes"), "yes I said yes");
        assert_eq!(c(""), "");
    }

    #[test]
    fn annotations_and_punctuation_are_not_speech() {
        assert_eq!(spoken_text(" [BLANK_AUDIO]"), None);
        assert_eq!(spoken_text("(music) ..."), None);
        assert_eq!(spoken_text(" *laughs* Yes."), Some("Yes.".into()));
        assert_eq!(spoken_text(" Sure [inaudible] thing"), Some("Sure thing".into()));
        assert_eq!(spoken_text("[unclosed"), None);
    }

    #[test]
    fn the_verdict_applies_the_guards() {
        let d = |text: &str, probs: &[f32], no_speech: f32| Decoded {
            text: text.into(),
            token_probs: probs.to_vec(),
            no_speech_prob: no_speech,
        };
        assert_eq!(
            verdict(&d(
                " No thanks, no thanks,",
                &[0.5, 0.7, 0.9, 0.5, 0.9, 0.5],
                0.01
            )),
            Recognition::Heard(vec![Alternative {
                transcript: "No thanks".into(),
                confidence: Some(0.6666667),
            }])
        );
        // Unsure and probably silence: nothing heard.
        assert_eq!(
            verdict(&d(" you", &[0.2], 0.8)),
            Recognition::NoMatch { transcript: None }
        );
        // Sure of its words despite a high no-speech probability: heard.
        assert!(matches!(
            verdict(&d(" Yes.", &[0.9, 0.8], 0.7)),
            Recognition::Heard(_)
        ));
        assert_eq!(
            verdict(&d(" [BLANK_AUDIO]", &[0.9], 0.1)),
            Recognition::NoMatch { transcript: None }
        );
        assert_eq!(
            verdict(&d("", &[], 0.0)),
            Recognition::NoMatch { transcript: None }
        );
    }
}
