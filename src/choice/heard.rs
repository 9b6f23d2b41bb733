//! Which options a transcript names, in the order they were said: the call script's check for a
//! reply that holds phrases of two options ("sales or support"), which it confirms instead of
//! guessing. The same phrase search as the matcher ([`super::phrases`]); idioms (`no idea`) and
//! negated phrases (`not sales`) name nothing.

use super::{idioms, negation, normalize, phrases};
use crate::call::ChoiceOption;

/// The options whose phrases `transcript` holds, each once, ordered by where it was last said
/// (the last element is the option said last). Negated phrases and idioms are left out.
pub fn options_heard(transcript: &str, options: &[ChoiceOption]) -> Vec<usize> {
    let tokens = normalize::tokens(transcript);
    if tokens.is_empty() {
        return Vec::new();
    }
    let phrases = phrases::phrases(options);
    let mut hits = phrases::find(&tokens, &phrases);
    hits.retain(|h| !idioms::is_idiom(&tokens, h));
    let kept: Vec<_> = hits
        .iter()
        .filter(|h| negation::negated_by(&tokens, h.start, &hits).is_none())
        .copied()
        .collect();
    let mut last: Vec<(usize, usize)> = Vec::new();
    for h in kept {
        match last.iter_mut().find(|(o, _)| *o == h.option) {
            Some(entry) => entry.1 = entry.1.max(h.start),
            None => last.push((h.option, h.start)),
        }
    }
    last.sort_by_key(|&(_, at)| at);
    last.into_iter().map(|(o, _)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<ChoiceOption> {
        let o = |value: &str, synonyms: &[&str]| ChoiceOption {
            value: value.into(),
            synonyms: synonyms.iter().map(|s| s.to_string()).collect(),
            dtmf: None,
        };
        vec![
            o("sales", &["buy something"]),
            o("support", &["help"]),
            o("billing", &["invoice"]),
        ]
    }

    #[test]
    fn options_come_in_the_order_they_were_last_said() {
        let o = options();
        assert_eq!(options_heard("sales or support", &o), vec![0, 1]);
        assert_eq!(options_heard("support, no wait, sales", &o), vec![1, 0]);
        assert_eq!(options_heard("help with sales, I mean help", &o), vec![0, 1]);
        assert_eq!(options_heard("I'd like support please", &o), vec![1]);
        assert_eq!(options_heard("the weather is nice", &o), Vec::<usize>::new());
        assert_eq!(options_heard("", &o), Vec::<usize>::new());
    }

    #[test]
    fn negated_phrases_name_nothing() {
        let o = options();
        assert_eq!(options_heard("not sales", &o), Vec::<usize>::new());
        assert_eq!(options_heard("not sales, support", &o), vec![1]);
        assert_eq!(options_heard("I don't need help, billing", &o), vec![2]);
    }
}
