//! Spoken option numbers, when `MatchSettings::spoken_numbers` is on: `option two`, `number 2`,
//! `press two`, `choice 3`, `key 1`; an ordinal after `the` or before `one`/`option` (`the second
//! one`, `the 1st`, `second option`), not a time (`hang on a second`, `at first`); and a bare
//! cardinal or ordinal that is the whole answer (`2`, `two`, `two please`, `second`). Numbers
//! are 1-based.

use super::normalize::Token;

/// Words that announce an option number.
const CUES: &[&str] = &[
    "option", "number", "press", "pressing", "choice", "key", "digit", "button", "nummer",
];

/// Words after an ordinal that make it an option number ("the second one", "first option").
const AFTER_ORDINAL: &[&str] = &["one", "option", "choice"];

/// Words that may surround a bare number without changing it.
const FILLERS: &[&str] = &[
    "please", "the", "um", "uh", "er", "erm", "hmm", "i", "say", "said", "pick", "take", "choose", "want",
];

const CARDINALS: &[&str] = &[
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
];

const ORDINALS: &[&str] = &[
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth",
];

fn cardinal(word: &str) -> Option<usize> {
    if let Some(n) = CARDINALS.iter().position(|c| *c == word) {
        return Some(n);
    }
    if word.len() <= 4 && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok();
    }
    None
}

fn ordinal(word: &str) -> Option<usize> {
    if let Some(n) = ORDINALS.iter().position(|c| *c == word) {
        return Some(n);
    }
    let digits = word
        .strip_suffix("st")
        .or_else(|| word.strip_suffix("nd"))
        .or_else(|| word.strip_suffix("rd"))
        .or_else(|| word.strip_suffix("th"))?;
    if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits.parse().ok();
    }
    None
}

/// For options `0..count` (at most 12), the ways of saying each one's 1-based number that [`find`]
/// reads back: "one", "option one", "number one", "press one", "the first one", "the first".
/// Grammar-based recognisers listen for these so that spoken numbers can reach the matcher.
pub fn phrases(count: usize) -> Vec<(usize, Vec<String>)> {
    (0..count.min(CARDINALS.len() - 1))
        .map(|i| {
            let (c, o) = (CARDINALS[i + 1], ORDINALS[i + 1]);
            let said = vec![
                c.to_string(),
                format!("option {c}"),
                format!("number {c}"),
                format!("press {c}"),
                format!("the {o} one"),
                format!("the {o}"),
            ];
            (i, said)
        })
        .collect()
}

/// A number found in a transcript: its value and the token it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spoken {
    pub number: usize,
    pub at: usize,
}

/// Every option number in `tokens`.
pub fn find(tokens: &[Token]) -> Vec<Spoken> {
    let mut out = Vec::new();
    // The word before / after `at`, in the same clause.
    let before = |at: usize| {
        at.checked_sub(1)
            .map(|b| &tokens[b])
            .filter(|t| t.clause == tokens[at].clause)
            .map(|t| t.text.as_str())
    };
    let after = |at: usize| {
        tokens
            .get(at + 1)
            .filter(|t| t.clause == tokens[at].clause)
            .map(|t| t.text.as_str())
    };
    // The ordinal at `at` and only fillers around it ("second", "second one please").
    let bare = |at: usize| {
        tokens.iter().enumerate().all(|(i, t)| {
            i == at
                || FILLERS.contains(&t.text.as_str())
                || (i > at && AFTER_ORDINAL.contains(&t.text.as_str()))
        })
    };
    for (at, token) in tokens.iter().enumerate() {
        if let Some(number) = ordinal(&token.text) {
            let marked = before(at) == Some("the") || after(at).is_some_and(|w| AFTER_ORDINAL.contains(&w));
            if marked || bare(at) {
                out.push(Spoken { number, at });
            }
            continue;
        }
        let Some(number) = cardinal(&token.text) else {
            continue;
        };
        let cued = before(at).is_some_and(|w| CUES.contains(&w));
        // "one" right after an ordinal is "the second one", not a number.
        let after_ordinal = at > 0 && token.text == "one" && ordinal(&tokens[at - 1].text).is_some();
        if after_ordinal {
            continue;
        }
        let alone = tokens
            .iter()
            .enumerate()
            .all(|(i, t)| i == at || FILLERS.contains(&t.text.as_str()));
        if cued || alone {
            out.push(Spoken { number, at });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::normalize::tokens;
    use super::*;

    fn numbers(text: &str) -> Vec<usize> {
        find(&tokens(text)).iter().map(|s| s.number).collect()
    }

    #[test]
    fn forms() {
        assert_eq!(numbers("option two"), [2]);
        assert_eq!(numbers("the second one"), [2]);
        assert_eq!(numbers("number 2"), [2]);
        assert_eq!(numbers("2"), [2]);
        assert_eq!(numbers("two please"), [2]);
        assert_eq!(numbers("press two"), [2]);
        assert_eq!(numbers("the 3rd"), [3]);
        assert_eq!(numbers("Option Three."), [3]);
        assert_eq!(numbers("one"), [1]);
        assert_eq!(numbers("second"), [2]);
        assert_eq!(numbers("second one please"), [2]);
        assert_eq!(numbers("first option please"), [1]);
        assert_eq!(numbers("I take the first"), [1]);
    }

    #[test]
    fn an_ordinal_of_time_is_no_option_number() {
        assert!(numbers("hang on a second").is_empty());
        assert!(numbers("wait a second please").is_empty());
        assert!(numbers("at first I thought so").is_empty());
        assert!(numbers("first things first").is_empty());
        assert!(numbers("one second").is_empty());
    }

    #[test]
    fn numbers_inside_sentences_need_a_cue() {
        assert!(numbers("I have two kids").is_empty());
        assert!(numbers("no one is home").is_empty());
        assert!(numbers("one two").is_empty());
        assert_eq!(numbers("I want option 1 please"), [1]);
    }
}
