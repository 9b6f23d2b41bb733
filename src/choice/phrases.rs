//! Whole-word phrase search: every option's value and synonyms, folded, found in a transcript as
//! whole words, or with spaces removed on both sides (`never mind` = `nevermind`), never across a
//! clause break. Where one hit lies inside a longer one (`no` inside `no problem`), only the longer
//! one counts.

use super::normalize::{words, Token};
use crate::call::ChoiceOption;

/// One phrase that picks an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub option: usize,
    /// As configured (for reasons shown to people).
    pub text: String,
    pub words: Vec<String>,
    /// `words` joined without spaces.
    pub compact: String,
}

/// Where a phrase was found: tokens `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub phrase: usize,
    pub option: usize,
    pub start: usize,
    pub end: usize,
}

impl Hit {
    fn len(&self) -> usize {
        self.end - self.start
    }

    fn contains(&self, other: &Hit) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// Every option's value and synonyms as phrases; empty ones (only punctuation) are skipped.
pub fn phrases(options: &[ChoiceOption]) -> Vec<Phrase> {
    let mut out = Vec::new();
    for (option, opt) in options.iter().enumerate() {
        for text in std::iter::once(&opt.value).chain(&opt.synonyms) {
            let words = words(text);
            if words.is_empty() {
                continue;
            }
            let compact = words.concat();
            out.push(Phrase {
                option,
                text: text.clone(),
                words,
                compact,
            });
        }
    }
    out
}

/// All hits of all phrases in `tokens`, longest-match resolved.
pub fn find(tokens: &[Token], phrases: &[Phrase]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for (index, phrase) in phrases.iter().enumerate() {
        for start in 0..tokens.len() {
            if let Some(end) = match_at(tokens, start, phrase) {
                let hit = Hit {
                    phrase: index,
                    option: phrase.option,
                    start,
                    end,
                };
                if !hits
                    .iter()
                    .any(|h| h.option == hit.option && h.start == start && h.end == end)
                {
                    hits.push(hit);
                }
            }
        }
    }
    keep_longest(hits)
}

/// The end of `phrase` found at `start`, word for word or spaces removed.
fn match_at(tokens: &[Token], start: usize, phrase: &Phrase) -> Option<usize> {
    let clause = tokens[start].clause;
    let end = start + phrase.words.len();
    if end <= tokens.len()
        && tokens[start..end]
            .iter()
            .zip(&phrase.words)
            .all(|(t, w)| t.clause == clause && t.text == *w)
    {
        return Some(end);
    }
    let mut joined = String::new();
    for (i, token) in tokens.iter().enumerate().skip(start) {
        if token.clause != clause {
            break;
        }
        joined.push_str(&token.text);
        if !phrase.compact.starts_with(joined.as_str()) {
            break;
        }
        if joined.len() == phrase.compact.len() {
            return Some(i + 1);
        }
    }
    None
}

/// Drops every hit that lies inside a strictly longer hit.
fn keep_longest(hits: Vec<Hit>) -> Vec<Hit> {
    hits.iter()
        .filter(|h| !hits.iter().any(|g| g.len() > h.len() && g.contains(h)))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::normalize::tokens;
    use super::*;

    fn opt(value: &str, synonyms: &[&str]) -> ChoiceOption {
        ChoiceOption {
            value: value.into(),
            synonyms: synonyms.iter().map(|s| s.to_string()).collect(),
            dtmf: None,
        }
    }

    fn options_hit(text: &str, options: &[ChoiceOption]) -> Vec<usize> {
        let p = phrases(options);
        find(&tokens(text), &p).iter().map(|h| h.option).collect()
    }

    #[test]
    fn whole_words_only() {
        let o = [opt("yes", &[]), opt("no", &[])];
        assert!(options_hit("yesterday", &o).is_empty());
        assert!(options_hit("nobody", &o).is_empty());
        assert!(options_hit("I don't know", &o).is_empty());
        assert_eq!(options_hit("well yes", &o), [0]);
    }

    #[test]
    fn spaces_removed_variant_both_ways() {
        let o = [opt("cancel", &["never mind"]), opt("confirm", &["all right"])];
        assert_eq!(options_hit("nevermind", &o), [0]);
        assert_eq!(options_hit("never-mind", &o), [0]);
        assert_eq!(options_hit("allright", &o), [1]);
        assert!(options_hit("never, mind", &o).is_empty());
    }

    #[test]
    fn longest_hit_wins() {
        let o = [opt("ok", &["no problem"]), opt("no", &[])];
        assert_eq!(options_hit("no problem", &o), [0]);
        let both = options_hit("no, no problem", &o);
        assert!(both.contains(&0) && both.contains(&1));
    }

    #[test]
    fn punctuation_only_synonym_is_ignored() {
        let o = [opt("yes", &["?!"])];
        assert_eq!(phrases(&o).len(), 1);
    }
}
