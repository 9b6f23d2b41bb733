//! Negation: a phrase preceded, in the same clause and within a few words, by a negating word
//! (`not sure`, `don't cancel`, `I do not want to confirm`) is not an answer. A negating word that
//! is itself part of a found phrase (`never mind`, a synonym `don't cancel`) negates nothing.
//! `no` is not a negating word: it is an answer.

use super::normalize::Token;
use super::phrases::Hit;

/// Folded negating words (apostrophes already removed: `don't` → `dont`).
const NEGATORS: &[&str] = &[
    "not", "dont", "never", "cannot", "cant", "wont", "didnt", "doesnt", "isnt", "arent", "wasnt", "werent",
    "shouldnt", "wouldnt", "couldnt", "aint", "neither", "nor", "without", "hardly",
];

/// How many words may stand between the negating word and the phrase it negates.
pub const NEGATION_REACH: usize = 4;

pub fn is_negator(word: &str) -> bool {
    NEGATORS.contains(&word)
}

/// The negating token that reaches the span `start..end`, if any. `covered` are the spans of the
/// hits that count; a negating word inside one of them is part of an answer, not a negation.
pub fn negated_by(tokens: &[Token], start: usize, covered: &[Hit]) -> Option<usize> {
    let clause = tokens.get(start)?.clause;
    let from = start.saturating_sub(NEGATION_REACH + 1);
    (from..start).rev().find(|&i| {
        tokens[i].clause == clause
            && is_negator(&tokens[i].text)
            && !covered.iter().any(|h| h.start <= i && i < h.end)
    })
}

#[cfg(test)]
mod tests {
    use super::super::normalize::tokens;
    use super::*;

    #[test]
    fn reach_and_clauses() {
        let t = tokens("I do not really want to cancel");
        // "not" at 2, "cancel" at 6: four words between? no, three ("really want to").
        assert_eq!(negated_by(&t, 6, &[]), Some(2));
        let t = tokens("not now, cancel");
        assert_eq!(negated_by(&t, 2, &[]), None);
        let t = tokens("I don't know what you mean but yes");
        assert_eq!(negated_by(&t, 6, &[]), None);
        let t = tokens("not a b c d e yes");
        assert_eq!(negated_by(&t, 6, &[]), None);
    }

    #[test]
    fn negator_inside_an_answer_negates_nothing() {
        let t = tokens("never mind cancel");
        let covered = [Hit {
            phrase: 0,
            option: 0,
            start: 0,
            end: 2,
        }];
        assert_eq!(negated_by(&t, 2, &covered), None);
        assert_eq!(negated_by(&t, 2, &[]), Some(0));
    }
}
