//! Options by number or position: "option 3", "number two", "press two", "the second one",
//! "the last one", a bare "2"; also an option's value said as whole words. A number that no
//! option has gets a reprompt naming the range. Keys pressed pick options as in the built-in
//! matcher.

wit_bindgen::generate!({ path: "../../wit", world: "choice-matcher" });

use exports::sip_assistant::hooks::matcher::{Guest, MatchInput, MatchResult};
use hook_common::{contains_words, option_for_digits, words};

const CARDINALS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];
const ORDINALS: &[&str] = &[
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
];
const CUES: &[&str] = &[
    "option", "number", "press", "choice", "key", "digit", "button", "item",
];
const FILLERS: &[&str] = &[
    "the", "please", "um", "uh", "i", "want", "take", "pick", "say", "choose", "one",
];

struct Ordinals;

/// A number or position heard.
enum Heard {
    Number(usize),
    Last,
}

impl Guest for Ordinals {
    fn match_choice(input: MatchInput) -> MatchResult {
        let keys: Vec<Option<char>> = input.options.iter().map(|o| o.dtmf).collect();
        if let Some(i) = option_for_digits(&input.digits, &keys) {
            return MatchResult::Matched(i as u32);
        }
        let n = input.options.len();
        for alt in &input.alternatives {
            let heard = words(&alt.transcript);
            let by_value: Vec<usize> = (0..n)
                .filter(|&i| {
                    let o = &input.options[i];
                    std::iter::once(&o.value)
                        .chain(&o.synonyms)
                        .any(|p| contains_words(&heard, &words(p)))
                })
                .collect();
            if let [only] = by_value.as_slice() {
                return MatchResult::Matched(*only as u32);
            }
            match find(&heard) {
                Some(Heard::Last) if n > 0 => return MatchResult::Matched((n - 1) as u32),
                Some(Heard::Number(k)) if (1..=n).contains(&k) => {
                    return MatchResult::Matched((k - 1) as u32)
                }
                Some(Heard::Number(k)) => {
                    return MatchResult::Reprompt(format!(
                        "There is no option {k}. Please say a number from 1 to {n}."
                    ))
                }
                _ => {}
            }
        }
        MatchResult::NoMatch
    }
}

fn cardinal(w: &str) -> Option<usize> {
    CARDINALS.iter().position(|c| *c == w).or_else(|| {
        (w.len() <= 3 && w.bytes().all(|b| b.is_ascii_digit()))
            .then(|| w.parse().ok())
            .flatten()
    })
}

fn ordinal(w: &str) -> Option<usize> {
    if let Some(i) = ORDINALS.iter().position(|c| *c == w) {
        return Some(i);
    }
    let digits = ["st", "nd", "rd", "th"].iter().find_map(|s| w.strip_suffix(s))?;
    (!digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The one number or position in `heard`, if exactly one is said.
fn find(heard: &[String]) -> Option<Heard> {
    let mut found: Option<usize> = None;
    let mut last = false;
    for (i, w) in heard.iter().enumerate() {
        let n = if let Some(n) = ordinal(w) {
            Some(n)
        } else if w == "last" || w == "final" {
            last = true;
            None
        } else if let Some(n) = cardinal(w) {
            let cued = i > 0 && CUES.contains(&heard[i - 1].as_str());
            let after_ordinal =
                w == "one" && i > 0 && (ordinal(&heard[i - 1]).is_some() || heard[i - 1] == "last");
            let bare = heard
                .iter()
                .enumerate()
                .all(|(j, o)| j == i || FILLERS.contains(&o.as_str()));
            (!after_ordinal && (cued || bare)).then_some(n)
        } else {
            None
        };
        if let Some(n) = n {
            if found.is_some_and(|f| f != n) {
                return None;
            }
            found = Some(n);
        }
    }
    match (found, last) {
        (Some(n), false) => Some(Heard::Number(n)),
        (None, true) => Some(Heard::Last),
        _ => None,
    }
}

export!(Ordinals);
