//! Fuzzy, sound-alike matching for recognisers that mishear: "council" → cancel, "conform" →
//! confirm. Each option phrase (value and synonyms) is compared with every same-length run of
//! words in every hypothesis; words score 1 when equal, high when they sound alike (a
//! Soundex-like consonant code) and otherwise by edit distance. The best option must score at
//! least 0.75 and beat the runner-up by 0.1; a close race asks again naming both options.
//! Keys pressed pick options as in the built-in matcher.

wit_bindgen::generate!({ path: "../../wit", world: "choice-matcher" });

use exports::sip_assistant::hooks::matcher::{Guest, MatchInput, MatchResult};
use hook_common::{option_for_digits, words};
use sip_assistant::hooks::host::{log, Level};

const ACCEPT: f32 = 0.75;
const MARGIN: f32 = 0.1;
const NEGATORS: &[&str] = &["not", "dont", "never", "no"];

struct Fuzzy;

impl Guest for Fuzzy {
    fn match_choice(input: MatchInput) -> MatchResult {
        let keys: Vec<Option<char>> = input.options.iter().map(|o| o.dtmf).collect();
        if let Some(i) = option_for_digits(&input.digits, &keys) {
            return MatchResult::Matched(i as u32);
        }
        let mut scores = vec![0.0f32; input.options.len()];
        for alt in input.alternatives.iter().take(5) {
            let heard = words(&alt.transcript);
            for (i, opt) in input.options.iter().enumerate() {
                for phrase in std::iter::once(&opt.value).chain(&opt.synonyms) {
                    let phrase = words(phrase);
                    scores[i] = scores[i].max(best_window(&heard, &phrase));
                }
            }
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        let (Some(&best), second) = (order.first(), order.get(1).map(|&i| scores[i]).unwrap_or(0.0)) else {
            return MatchResult::NoMatch;
        };
        log(Level::Debug, &format!("fuzzy scores {scores:?}"));
        if scores[best] >= ACCEPT && scores[best] - second >= MARGIN {
            return MatchResult::Matched(best as u32);
        }
        if scores[best] >= ACCEPT && input.attempt < 3 {
            let other = order[1];
            return MatchResult::Reprompt(format!(
                "Sorry, did you mean {} or {}?",
                input.options[best].value, input.options[other].value
            ));
        }
        MatchResult::NoMatch
    }
}

/// The best score of `phrase` against any run of as many words in `heard` (not right after a
/// negating word).
fn best_window(heard: &[String], phrase: &[String]) -> f32 {
    if phrase.is_empty() || heard.len() < phrase.len() {
        return 0.0;
    }
    let mut best = 0.0f32;
    for start in 0..=heard.len() - phrase.len() {
        if start > 0 && NEGATORS.contains(&heard[start - 1].as_str()) {
            continue;
        }
        let window = &heard[start..start + phrase.len()];
        let sum: f32 = window.iter().zip(phrase).map(|(h, p)| word_score(h, p)).sum();
        best = best.max(sum / phrase.len() as f32);
    }
    best
}

fn word_score(heard: &str, wanted: &str) -> f32 {
    if heard == wanted {
        return 1.0;
    }
    let longest = heard.chars().count().max(wanted.chars().count()).max(1);
    let similar = 1.0 - edit_distance(heard, wanted) as f32 / longest as f32;
    if sound_code(heard) == sound_code(wanted) && !sound_code(wanted).is_empty() {
        if longest <= 3 && similar < 0.5 {
            return similar;
        }
        return 0.85 + 0.15 * similar;
    }
    similar
}

/// Consonant classes in order, repeats collapsed, vowels and h/w/y dropped: "council" and
/// "cancel" are both "2524".
fn sound_code(word: &str) -> String {
    let mut out = String::new();
    let mut last = ' ';
    for c in word.chars() {
        let code = match c {
            'b' | 'f' | 'p' | 'v' => '1',
            'c' | 'g' | 'j' | 'k' | 'q' | 's' | 'x' | 'z' => '2',
            'd' | 't' => '3',
            'l' => '4',
            'm' | 'n' => '5',
            'r' => '6',
            '0'..='9' => c,
            _ => {
                last = ' ';
                continue;
            }
        };
        if code != last {
            out.push(code);
        }
        last = code;
    }
    out
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

export!(Fuzzy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sounds() {
        assert_eq!(sound_code("council"), sound_code("cancel"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert!(word_score("council", "cancel") >= ACCEPT);
        assert!(word_score("conform", "confirm") >= ACCEPT);
        assert!(word_score("yesterday", "yes") < ACCEPT);
        assert!(word_score("go", "no") < ACCEPT);
    }
}
