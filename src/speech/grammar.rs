//! Answer grammars for grammar-based recognizers (PocketSphinx), built from a choice's phrases.
//!
//! Sans-IO: the dictionary is a predicate, so building and interpreting are plain functions. A
//! grammar listens for each answer phrase, plus a loop of common English words (the *filler*) that
//! absorbs off-topic speech ("what time is it"), so such an answer comes back as a filler
//! hypothesis — a no-match — instead of being forced onto the nearest option.

use std::collections::{BTreeSet, HashMap};

use super::Phrase;

/// Common words an off-topic answer is made of. Words that are part of an answer phrase are
/// removed from the loop when a grammar is built, so they cannot steal an answer.
const FILLER: &[&str] = &[
    "a", "about", "again", "all", "am", "an", "and", "are", "as", "ask", "at", "back", "be", "because",
    "but", "by", "call", "can", "come", "could", "day", "do", "don't", "for", "from", "get", "go", "good",
    "have", "he", "hello", "here", "how", "i", "if", "in", "is", "it", "just", "know", "later", "like", "me",
    "maybe", "morning", "my", "nice", "not", "now", "of", "on", "one", "or", "please", "really", "right",
    "say", "see", "she", "so", "some", "sorry", "that", "the", "then", "there", "they", "think", "this",
    "time", "to", "today", "tomorrow", "two", "um", "uh", "up", "wait", "want", "was", "we", "well", "what",
    "when", "where", "who", "why", "will", "with", "would", "you", "your",
];

/// Lowercase words of `text`: punctuation becomes a word break, an apostrophe inside a word stays.
pub fn normalize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’')) {
        let w: String = raw
            .chars()
            .map(|c| if c == '’' { '\'' } else { c })
            .flat_map(char::to_lowercase)
            .collect();
        let w = w.trim_matches('\'');
        if !w.is_empty() {
            words.push(w.to_string());
        }
    }
    words
}

/// Why a phrase is not in the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// Words the dictionary does not know.
    UnknownWords { phrase: String, words: Vec<String> },
    /// Nothing left after normalisation.
    Empty { phrase: String },
    /// The same words stand for two different options.
    Ambiguous { phrase: String },
}

/// A JSGF grammar and how to read its hypotheses back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    pub jsgf: String,
    /// Normalised phrase text → option index.
    answers: HashMap<String, usize>,
    pub dropped: Vec<Dropped>,
}

/// What a hypothesis means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    Answer {
        text: String,
        option: usize,
    },
    /// Only filler words (or words of no phrase): an off-topic answer.
    Other {
        text: String,
    },
    Nothing,
}

/// The rule name of the grammar's root (pass it to the decoder as the search name).
pub const ROOT: &str = "answer";

impl Grammar {
    /// Build from `phrases`; `in_dict` says whether the recognizer can pronounce a word. `None`
    /// when no phrase survives (nothing to listen for).
    pub fn build(phrases: &[Phrase], in_dict: &dyn Fn(&str) -> bool, filler_weight: f32) -> Option<Grammar> {
        let mut answers: HashMap<String, usize> = HashMap::new();
        let mut ambiguous = BTreeSet::new();
        let mut dropped = Vec::new();
        for p in phrases {
            let words = normalize(&p.text);
            if words.is_empty() {
                dropped.push(Dropped::Empty {
                    phrase: p.text.clone(),
                });
                continue;
            }
            let unknown: Vec<String> = words.iter().filter(|w| !in_dict(w)).cloned().collect();
            if !unknown.is_empty() {
                dropped.push(Dropped::UnknownWords {
                    phrase: p.text.clone(),
                    words: unknown,
                });
                continue;
            }
            let key = words.join(" ");
            match answers.get(&key) {
                Some(&o) if o != p.option => {
                    ambiguous.insert(key);
                }
                _ => {
                    answers.insert(key, p.option);
                }
            }
        }
        for key in ambiguous {
            answers.remove(&key);
            dropped.push(Dropped::Ambiguous { phrase: key });
        }
        if answers.is_empty() {
            return None;
        }
        let answer_words: BTreeSet<&str> = answers.keys().flat_map(|k| k.split(' ')).collect();
        let filler: Vec<&str> = FILLER
            .iter()
            .copied()
            .filter(|w| !answer_words.contains(w) && in_dict(w))
            .collect();
        let mut keys: Vec<&String> = answers.keys().collect();
        keys.sort();
        let mut jsgf = format!("#JSGF V1.0;\ngrammar {ROOT};\n");
        let choices = keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" | ");
        if filler.is_empty() || filler_weight <= 0.0 {
            jsgf.push_str(&format!("public <{ROOT}> = {choices};\n"));
        } else {
            jsgf.push_str(&format!(
                "public <{ROOT}> = /1/ <choice> | /{filler_weight}/ <other>;\n"
            ));
            jsgf.push_str(&format!("<choice> = {choices};\n"));
            jsgf.push_str(&format!(
                "<other> = <filler>+;\n<filler> = {};\n",
                filler.join(" | ")
            ));
        }
        Some(Grammar {
            jsgf,
            answers,
            dropped,
        })
    }

    /// Read a decoder hypothesis back.
    pub fn interpret(&self, hyp: &str) -> Interpretation {
        let text = normalize(hyp).join(" ");
        if text.is_empty() {
            return Interpretation::Nothing;
        }
        match self.answers.get(&text) {
            Some(&option) => Interpretation::Answer { text, option },
            None => Interpretation::Other { text },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(text: &str, option: usize) -> Phrase {
        Phrase {
            text: text.into(),
            option,
        }
    }

    fn dict(w: &str) -> bool {
        !matches!(w, "yesss" | "zorp")
    }

    #[test]
    fn normalisation_lowercases_and_strips_punctuation() {
        assert_eq!(normalize("Yes, I CONFIRM!"), ["yes", "i", "confirm"]);
        assert_eq!(normalize("Don’t -- call"), ["don't", "call"]);
        assert_eq!(normalize("  'ok'  "), ["ok"]);
        assert!(normalize("?!").is_empty());
    }

    #[test]
    fn grammar_lists_answers_and_a_filler_without_answer_words() {
        let g = Grammar::build(
            &[
                phrase("Yes", 0),
                phrase("yes, I confirm", 0),
                phrase("No!", 1),
                phrase("never mind", 1),
            ],
            &dict,
            0.1,
        )
        .expect("grammar");
        assert!(
            g.jsgf
                .contains("<choice> = never mind | no | yes | yes i confirm;"),
            "{}",
            g.jsgf
        );
        let filler_line = g
            .jsgf
            .lines()
            .find(|l| l.starts_with("<filler>"))
            .expect("filler");
        assert!(filler_line.contains(" the "), "{filler_line}");
        assert!(
            !filler_line.contains("| i |"),
            "answer word in filler: {filler_line}"
        );
        assert_eq!(
            g.interpret("YES I CONFIRM"),
            Interpretation::Answer {
                text: "yes i confirm".into(),
                option: 0
            }
        );
        assert_eq!(
            g.interpret("what time is it"),
            Interpretation::Other {
                text: "what time is it".into()
            }
        );
        assert_eq!(g.interpret(""), Interpretation::Nothing);
    }

    #[test]
    fn unknown_words_empty_and_ambiguous_phrases_are_dropped_not_fatal() {
        let g = Grammar::build(
            &[
                phrase("yesss", 0),
                phrase("yes", 0),
                phrase("...", 1),
                phrase("sure", 0),
                phrase("Sure.", 1),
                phrase("zorp no", 1),
                phrase("no", 1),
            ],
            &dict,
            0.1,
        )
        .expect("yes and no survive");
        assert!(g.dropped.contains(&Dropped::UnknownWords {
            phrase: "yesss".into(),
            words: vec!["yesss".into()]
        }));
        assert!(g.dropped.contains(&Dropped::Empty { phrase: "...".into() }));
        assert!(g.dropped.contains(&Dropped::Ambiguous {
            phrase: "sure".into()
        }));
        assert!(g
            .dropped
            .iter()
            .any(|d| matches!(d, Dropped::UnknownWords { phrase, .. } if phrase == "zorp no")));
        assert!(g.jsgf.contains("<choice> = no | yes;"), "{}", g.jsgf);
        assert!(Grammar::build(&[phrase("zorp", 0)], &dict, 0.1).is_none());
        assert!(Grammar::build(&[], &dict, 0.1).is_none());
    }
}
