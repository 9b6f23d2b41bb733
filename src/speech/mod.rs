//! Speech engines behind two traits: a [`Synthesizer`] turns text into PCM, a [`Recognizer`] turns
//! caller audio into transcripts. The call script only sees these traits; engines live in one file
//! each and are chosen by `speech.tts` / `speech.stt`.
//!
//! Audio is mono signed 16-bit PCM. Synthesizers return their native rate; recognizers are fed the
//! 16 kHz stream the media plane decodes (`MediaEvent::Audio16k`), already cut to one utterance by
//! the voice-activity detector, so silence never reaches an engine that would invent text on it.

pub mod cache;
pub mod decode_gate;
pub mod engines;
pub mod espeak;
pub mod flite;
pub mod grammar;
pub mod openai;
pub mod piper;
pub mod pocketsphinx;
mod remote;
pub mod spotting;
pub mod vad;
pub mod wav;
pub mod whisper;
pub mod wyoming;

pub use openai::{OpenAiRecognizer, OpenAiSynthesizer};
pub use piper::PiperSynthesizer;
pub use whisper::WhisperRecognizer;
pub use wyoming::{WyomingRecognizer, WyomingSynthesizer};

use std::future::Future;
use std::pin::Pin;

/// Whether BCP 47 `tag` is English (`en`, `en-US`, `en_GB`), for the English-only engines.
pub fn is_english(tag: &str) -> bool {
    tag.split(['-', '_'])
        .next()
        .is_some_and(|primary| primary.eq_ignore_ascii_case("en"))
}

/// A boxed future, as the engine traits return (engines are chosen at run time).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Mono 16-bit PCM at `rate` Hz.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Pcm {
    pub fn duration(&self) -> std::time::Duration {
        if self.rate == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate))
    }
}

/// What to say, and optionally how.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SynthRequest {
    pub text: String,
    /// Engine-specific voice name; `None` = the engine's configured default.
    pub voice: Option<String>,
    /// BCP 47 language tag such as `en-US`; `None` = the engine's configured default.
    pub language: Option<String>,
}

/// An error of a speech engine, in words a person running the appliance can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeechError {
    /// The engine cannot run here (missing library, model file, command); says what to install/set.
    #[error("{engine} is not available: {detail}")]
    Unavailable { engine: String, detail: String },
    /// A remote engine could not be reached or answered with an error.
    #[error("{engine} failed: {detail}")]
    Remote { engine: String, detail: String },
    /// The engine ran but failed on this input.
    #[error("{engine} failed: {detail}")]
    Engine { engine: String, detail: String },
    /// Too many decodes at once: the queue was full or no decode slot freed up in time (the
    /// call asks again).
    #[error("{engine} is busy: {detail}")]
    Busy { engine: String, detail: String },
    /// The request itself is unusable (unknown voice, unsupported language, empty text).
    #[error("{0}")]
    Invalid(String),
}

/// Text to speech.
pub trait Synthesizer: Send + Sync {
    /// The engine's config name (`flite`, `espeak`, `piper`, `wyoming`, `openai`).
    fn name(&self) -> &str;
    /// Whether this engine can speak with `voice` in `language` at all (checked when a call is
    /// requested, so a call that could not speak is refused with a 400 instead of ringing a
    /// phone in silence). Engines that cannot tell (remote servers) accept everything.
    fn supports(&self, _voice: Option<&str>, _language: Option<&str>) -> Result<(), String> {
        Ok(())
    }
    /// Render `req` as PCM at the engine's native rate.
    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>>;
    /// As [`Self::synthesize`], without a copy: a cache in front of the engine gives every caller
    /// of the same text the same rendering (and so the same encoded frames, see
    /// `driver::prompt_frames`).
    fn synthesize_shared<'a>(
        &'a self,
        req: &'a SynthRequest,
    ) -> BoxFuture<'a, Result<std::sync::Arc<Pcm>, SpeechError>> {
        Box::pin(async move { self.synthesize(req).await.map(std::sync::Arc::new) })
    }
}

pub use crate::choice::recognition::{Alternative, Phrase, Pick, Recognition, RecognitionContext};

/// A recognizer working on one utterance: push 16 kHz audio as it arrives, then finish.
pub trait Utterance: Send {
    /// Feed audio; returns a partial transcript when the engine has a new one.
    fn push<'a>(&'a mut self, pcm16k: &'a [i16]) -> BoxFuture<'a, Result<Option<String>, SpeechError>>;
    /// End of speech: the final result.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Recognition, SpeechError>>;
}

/// Speech to text.
pub trait Recognizer: Send + Sync {
    /// The engine's config name (`pocketsphinx`, `whisper`, `wyoming`, `openai`).
    fn name(&self) -> &str;
    /// Whether this engine can listen in `language` (checked when a call with a choice is
    /// requested). Engines that cannot tell (remote servers) accept everything.
    fn supports_language(&self, _language: Option<&str>) -> Result<(), String> {
        Ok(())
    }
    /// Begin one utterance.
    fn start<'a>(
        &'a self,
        ctx: &'a RecognitionContext,
    ) -> BoxFuture<'a, Result<Box<dyn Utterance>, SpeechError>>;
}
