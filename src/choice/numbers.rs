//! Spoken option numbers, when `MatchSettings::spoken_numbers` is on: `option two`, `number 2`,
//! `press two`, `choice 3`, `key 1`, ordinals anywhere (`the second one`, `the 1st`), and a bare
//! cardinal that is the whole answer (`2`, `two`, `two please`). Numbers are 1-based.

use super::normalize::Token;

/// Words that announce an option number.
const CUES: &[&str] = &[
    "option", "number", "press", "pressing", "choice", "key", "digit", "button", "nummer",
];

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
    for (at, token) in tokens.iter().enumerate() {
        if let Some(number) = ordinal(&token.text) {
            out.push(Spoken { number, at });
            continue;
        }
        let Some(number) = cardinal(&token.text) else {
            continue;
        };
        let cued =
            at > 0 && CUES.contains(&tokens[at - 1].text.as_str()) && tokens[at - 1].clause == token.clause;
        // "one" right after an ordinal is "the second one", not a number.
        let after_ordinal = at > 0 && token.text == "one" && ordinal(&tokens[at - 1].text).is_some();
        if after_ordinal {
            continue;
        }
        let bare = tokens
            .iter()
            .enumerate()
            .all(|(i, t)| i == at || FILLERS.contains(&t.text.as_str()));
        if cued || bare {
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
    }

    #[test]
    fn numbers_inside_sentences_need_a_cue() {
        assert!(numbers("I have two kids").is_empty());
        assert!(numbers("no one is home").is_empty());
        assert!(numbers("one two").is_empty());
        assert_eq!(numbers("I want option 1 please"), [1]);
    }
}
