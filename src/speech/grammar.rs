//! Answer grammars for grammar-based recognizers (PocketSphinx), built from a choice's phrases.
//!
//! Sans-IO: the dictionary is a predicate, so building and interpreting are plain functions. A
//! grammar yields two JSGF texts: the *answer* grammar lists the answer phrases only; the *decoy*
//! grammar adds a branch of common English words (the decoys, [`DECOYS`]) that competes with the
//! answers, so a reply that is not an answer ("what", "who is this") can be explained by decoy
//! words instead of being forced onto the nearest answer. Each decoy word costs a penalty (a JSGF
//! weight below 1), so an answer that was really said still wins against decoy words that sound
//! alike; see [`DecoyPenalty`].

use std::collections::{BTreeSet, HashMap};

use super::Phrase;

/// The decoys: the 100 most common words of written English (the Oxford English Corpus list),
/// taken as they are rather than chosen for any question. Words of an answer phrase are left
/// out when a grammar is built, so a decoy never spells an answer.
pub const DECOYS: &[&str] = &[
    "the", "be", "to", "of", "and", "a", "in", "that", "have", "i", "it", "for", "not", "on", "with", "he",
    "as", "you", "do", "at", "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or",
    "an", "will", "my", "one", "all", "would", "there", "their", "what", "so", "up", "out", "if", "about",
    "who", "get", "which", "go", "me", "when", "make", "can", "like", "time", "no", "just", "him", "know",
    "take", "people", "into", "year", "your", "good", "some", "could", "them", "see", "other", "than",
    "then", "now", "look", "only", "come", "its", "over", "think", "also", "back", "after", "use", "two",
    "how", "our", "work", "first", "well", "way", "even", "new", "want", "because", "any", "these", "give",
    "day", "most", "us",
];

/// What decoy words cost, as JSGF weights (probabilities, `0 < w <= 1`). PocketSphinx 5prealpha
/// does not normalise JSGF weights: a weight `w` adds `ln(w) / ln(1.0001) / 1024` to the path
/// score (1e-10 costs 225, about what a few frames of a mismatched phone cost), and weights
/// below about 1e-45 underflow `float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoyPenalty {
    /// The first decoy word of a reply.
    pub first: f64,
    /// Each further decoy word (longer off-topic replies are explained by several).
    pub next: f64,
}

impl Default for DecoyPenalty {
    /// Tuned on the tuning half of the dev set (`tests/support/speech_devset.rs`).
    fn default() -> Self {
        Self {
            first: 1e-10,
            next: 1e-25,
        }
    }
}

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

/// The JSGF grammars of one question and how to read their hypotheses back.
#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    /// The answer phrases only.
    pub jsgf: String,
    /// The answer phrases and the decoy branch (`None` when no decoy word is left).
    pub decoy_jsgf: Option<String>,
    /// The decoy branch alone (common words, no answer): what else a reply says around an
    /// answer spotted in it (`None` when no decoy word is left).
    pub words_jsgf: Option<String>,
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
    /// Decoy words (or words of no phrase): an off-topic answer.
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
    pub fn build(
        phrases: &[Phrase],
        in_dict: &dyn Fn(&str) -> bool,
        decoys: DecoyPenalty,
    ) -> Option<Grammar> {
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
        let decoy_words: Vec<&str> = DECOYS
            .iter()
            .copied()
            .filter(|w| !answer_words.contains(w) && in_dict(w))
            .collect();
        let mut keys: Vec<&String> = answers.keys().collect();
        keys.sort();
        let choices = keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" | ");
        let head = format!("#JSGF V1.0;\ngrammar {ROOT};\n");
        let jsgf = format!("{head}public <{ROOT}> = {choices};\n");
        // The decoy branch: one or more common words, each with its penalty.
        let other = (!decoy_words.is_empty()).then(|| {
            let weighted = |w: f64| {
                decoy_words
                    .iter()
                    .map(|d| format!("/{}/ {d}", weight(w)))
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            format!(
                "<other> = <first> | <first> <more>;\n<more> = <next> | <next> <more>;\n\
                 <first> = {};\n<next> = {};\n",
                weighted(decoys.first),
                weighted(decoys.next)
            )
        });
        let decoy_jsgf = other
            .as_ref()
            .map(|o| format!("{head}public <{ROOT}> = <choice> | <other>;\n<choice> = {choices};\n{o}"));
        let words_jsgf = other.map(|o| format!("{head}public <{ROOT}> = <other>;\n{o}"));
        Some(Grammar {
            jsgf,
            decoy_jsgf,
            words_jsgf,
            answers,
            dropped,
        })
    }

    /// Every answer phrase (normalised).
    pub fn answers(&self) -> impl Iterator<Item = &str> {
        self.answers.keys().map(String::as_str)
    }

    /// The option `words` stand for, if they are an answer.
    pub fn option_of(&self, words: &str) -> Option<usize> {
        self.answers.get(words).copied()
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

/// A JSGF weight, clamped to what the parser's `float` holds. The 5prealpha parser reads
/// `0.5`, `1` and `1e-10` but not `1e0` or `1E-10`.
fn weight(w: f64) -> String {
    let w = if w.is_finite() { w.clamp(1e-38, 1.0) } else { 1.0 };
    if w >= 1e-4 {
        format!("{w}")
    } else {
        format!("{w:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(text: &str, option: usize) -> Phrase {
        Phrase::answer(text, option)
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
    fn answer_grammar_lists_answers_and_decoy_grammar_adds_penalised_common_words() {
        let g = Grammar::build(
            &[
                phrase("Yes", 0),
                phrase("yes, I confirm", 0),
                phrase("No!", 1),
                phrase("never mind", 1),
            ],
            &dict,
            DecoyPenalty::default(),
        )
        .expect("grammar");
        assert_eq!(
            g.jsgf,
            "#JSGF V1.0;\ngrammar answer;\npublic <answer> = never mind | no | yes | yes i confirm;\n"
        );
        let decoy = g.decoy_jsgf.as_deref().expect("decoy grammar");
        assert!(
            decoy.contains(
                "public <answer> = <choice> | <other>;\n<choice> = never mind | no | yes | yes i confirm;"
            ),
            "{decoy}"
        );
        let first = decoy.lines().find(|l| l.starts_with("<first>")).expect("first");
        let next = decoy.lines().find(|l| l.starts_with("<next>")).expect("next");
        assert!(first.contains("| /1e-10/ what |"), "{first}");
        assert!(next.contains("| /1e-25/ what |"), "{next}");
        let words: Vec<&str> = first
            .trim_end_matches(';')
            .split('|')
            .filter_map(|alt| alt.split_whitespace().last())
            .collect();
        assert!(words.contains(&"the") && words.contains(&"who"), "{words:?}");
        for answer_word in ["i", "no", "yes"] {
            assert!(
                !words.contains(&answer_word),
                "answer word {answer_word} is a decoy"
            );
        }
        assert!(decoy.contains("<other> = <first> | <first> <more>;\n<more> = <next> | <next> <more>;"));
        // The words grammar is the decoy branch alone: no answer can be heard through it.
        let words_only = g.words_jsgf.as_deref().expect("words grammar");
        assert!(
            words_only.contains("public <answer> = <other>;\n<other> = "),
            "{words_only}"
        );
        assert!(!words_only.contains("<choice>") && !words_only.contains("never mind"));
        assert!(words_only.ends_with(&decoy[decoy.find("<other> =").expect("other")..]));
        assert_eq!(
            g.interpret("YES I CONFIRM"),
            Interpretation::Answer {
                text: "yes i confirm".into(),
                option: 0
            }
        );
        assert_eq!(g.option_of("never mind"), Some(1));
        assert_eq!(g.option_of("what"), None);
        assert_eq!(
            g.interpret("what time is it"),
            Interpretation::Other {
                text: "what time is it".into()
            }
        );
        assert_eq!(g.interpret(""), Interpretation::Nothing);
    }

    #[test]
    fn weights_are_written_as_the_jsgf_parser_reads_them() {
        assert_eq!(weight(1.0), "1");
        assert_eq!(weight(0.5), "0.5");
        assert_eq!(weight(1e-10), "1e-10");
        assert_eq!(weight(2.5e-11), "2.5e-11");
        assert_eq!(weight(1e-60), "1e-38");
        assert_eq!(weight(7.0), "1");
        assert_eq!(weight(f64::NAN), "1");
        assert_eq!(weight(-1.0), "1e-38");
    }

    #[test]
    fn no_decoy_grammar_when_every_decoy_word_is_an_answer_or_unknown() {
        let g =
            Grammar::build(&[phrase("yes", 0)], &|w| w == "yes", DecoyPenalty::default()).expect("grammar");
        assert_eq!(g.decoy_jsgf, None);
        assert_eq!(g.words_jsgf, None);
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
            DecoyPenalty::default(),
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
        assert!(g.jsgf.contains("<answer> = no | yes;"), "{}", g.jsgf);
        assert!(Grammar::build(&[phrase("zorp", 0)], &dict, DecoyPenalty::default()).is_none());
        assert!(Grammar::build(&[], &dict, DecoyPenalty::default()).is_none());
    }
}
