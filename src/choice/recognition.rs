//! What a recogniser reports of one utterance, as the answer matcher and the call script read it:
//! the phrases listened for, the hypotheses, a scorer's pick. Plain data (the engines in
//! [`crate::speech`] produce it), so the matcher and the call flow need nothing of the engines.

/// One phrase the caller may say, and the option it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub text: String,
    /// Index into the choice's options.
    pub option: usize,
    /// A way of saying the option's number ("option two", "the second one") that the call adds
    /// with `script.spoken_numbers`, not one of the option's own words. Grammar engines listen for
    /// it; Whisper's prompt leaves it out (listing them there made tiny.en mishear answers: 75 %
    /// of the dev set's answers right with them, 89 % without).
    pub spoken_number: bool,
}

impl Phrase {
    /// One of the option's own words: its value or a synonym.
    pub fn answer(text: impl Into<String>, option: usize) -> Self {
        Self {
            text: text.into(),
            option,
            spoken_number: false,
        }
    }
}

/// What a recognizer is listening for in one utterance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecognitionContext {
    /// BCP 47 language tag; `None` = the engine's configured default.
    pub language: Option<String>,
    /// Every synonym of every option (the option values included). Grammar-based engines listen
    /// for these only (plus a rejection path); open-vocabulary engines use them as a prompt.
    pub phrases: Vec<Phrase>,
}

/// One hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub transcript: String,
    /// 0..=1 where the engine has a confidence, else `None`.
    pub confidence: Option<f32>,
}

/// The end result of one utterance.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognition {
    /// Best first; never empty.
    Heard(Vec<Alternative>),
    /// The engine heard speech but it matched nothing it listens for (an off-topic answer).
    /// `transcript` is what it thinks was said, where it can tell; the choice matcher still
    /// sees it (a fuzzy hook may map "council" to "cancel").
    NoMatch { transcript: Option<String> },
    /// The engine itself judged the speech off-topic (PocketSphinx's rejection): no option was
    /// said. `heard` is its best guess at the words, kept as the call's raw text but never
    /// matched (it may well contain an answer word: "cancel what" is not "cancel").
    Rejected { heard: Option<String> },
    /// A closed-vocabulary scorer (whisper's decoder forced through each option's phrases, see
    /// `whisper::score`) weighed the options against the audio, with the model's own free
    /// transcript as the "something else" hypothesis. `transcript` is that free transcript (the
    /// call's raw text, and what the matcher judges first); `pick` is the phrase the scorer
    /// accepts by its margins, if any.
    Scored { transcript: String, pick: Option<Pick> },
}

/// The option phrase a scorer accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// Index into the choice's options.
    pub option: usize,
    /// The phrase as listed in the context (an option value or synonym).
    pub phrase: String,
    /// What the matcher judges: the free transcript with the phrase in place of its closest
    /// stretch ("not feeling" -> "not billing"), so a negation or a second option said around it
    /// still counts; the phrase itself when the transcript is no longer than it.
    pub said: String,
    /// 0..=1: how sure the scorer is (its share of the probability among the best phrase, the
    /// best phrase of another option and the free transcript).
    pub confidence: f32,
}

impl Recognition {
    /// What the engine heard as words, if anything (the call's raw text).
    pub fn raw_text(&self) -> Option<&str> {
        match self {
            Recognition::Heard(alts) => alts.first().map(|a| a.transcript.as_str()),
            Recognition::NoMatch { transcript } => transcript.as_deref(),
            Recognition::Rejected { heard } => heard.as_deref(),
            Recognition::Scored { transcript, .. } => Some(transcript.as_str()),
        }
    }

    /// The hypotheses the answer matcher reads, best first: a rejection has none; a scored result
    /// gives the free transcript first (the matcher judges free text: negation, two options) and
    /// the accepted phrase in the transcript's context second ([`Pick::said`]), with the
    /// scorer's confidence.
    pub fn alternatives(&self) -> Vec<Alternative> {
        match self {
            Recognition::Heard(alts) => alts.clone(),
            Recognition::NoMatch { transcript } => transcript
                .iter()
                .map(|t| Alternative {
                    transcript: t.clone(),
                    confidence: None,
                })
                .collect(),
            Recognition::Rejected { .. } => Vec::new(),
            Recognition::Scored { transcript, pick } => {
                let mut out = vec![Alternative {
                    transcript: transcript.clone(),
                    confidence: None,
                }];
                out.extend(pick.iter().map(|p| Alternative {
                    transcript: p.said.clone(),
                    confidence: Some(p.confidence),
                }));
                out
            }
        }
    }
}
