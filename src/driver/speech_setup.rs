//! Building the call script from the configuration: the engines named by `speech.tts` and
//! `speech.stt`, the earshot endpointer, the built-in matcher, and the `[script]` texts.

use std::sync::Arc;

use super::decider::BuiltinDecider;
use super::speech_script::{DetectorFactory, Phrasing, SpeechDetector, SpeechScript, VadEvent as ScriptVad};
use crate::choice::MatchSettings;
use crate::config::Config;
use crate::speech::espeak::Espeak;
use crate::speech::flite::{self, FliteSynthesizer};
use crate::speech::openai::{OpenAiRecognizer, OpenAiSynthesizer};
use crate::speech::piper::PiperSynthesizer;
use crate::speech::pocketsphinx::{self, PocketSphinx, PocketSphinxSettings};
use crate::speech::vad::{Endpointer, VadConfig, VadEvent};
use crate::speech::whisper::WhisperRecognizer;
use crate::speech::wyoming::{WyomingRecognizer, WyomingSynthesizer};
use crate::speech::{Recognizer, SpeechError, Synthesizer};

/// The voice flite speaks with unless a request names another.
pub const FLITE_VOICE: &str = "slt";

/// The configured text-to-speech engine; an embedded engine that cannot start says what to install.
pub fn synthesizer(config: &Config) -> Result<Arc<dyn Synthesizer>, SpeechError> {
    let s = &config.speech;
    Ok(match s.tts.as_str() {
        "flite" => {
            flite::probe(FLITE_VOICE)?;
            Arc::new(FliteSynthesizer::new(FLITE_VOICE))
        }
        "espeak" => Arc::new(Espeak::new("espeak-ng", "en-us")),
        "wyoming" => Arc::new(WyomingSynthesizer::new(&s.wyoming)?),
        "openai" => Arc::new(OpenAiSynthesizer::new(&s.openai)?),
        "piper" => Arc::new(PiperSynthesizer::new(&s.piper)?),
        other => {
            return Err(SpeechError::Invalid(format!(
                "unknown speech.tts engine '{other}'"
            )))
        }
    })
}

/// The configured speech-to-text engine.
pub fn recognizer(config: &Config) -> Result<Arc<dyn Recognizer>, SpeechError> {
    let s = &config.speech;
    Ok(match s.stt.as_str() {
        "pocketsphinx" => {
            let settings = PocketSphinxSettings::default();
            pocketsphinx::probe(&settings)?;
            Arc::new(PocketSphinx::new(settings))
        }
        "wyoming" => Arc::new(WyomingRecognizer::new(&s.wyoming)?),
        "openai" => Arc::new(OpenAiRecognizer::new(&s.openai)?),
        "whisper" => {
            // Always Unavailable in this build (no ggml model is obtainable here); says why.
            WhisperRecognizer::new(&s.whisper)?;
            return Err(SpeechError::Invalid(
                "speech.stt = whisper is not available in this build".into(),
            ));
        }
        other => {
            return Err(SpeechError::Invalid(format!(
                "unknown speech.stt engine '{other}'"
            )))
        }
    })
}

/// The earshot endpointer as the script's detector: it listens again after each utterance.
struct Earshot(Endpointer);

impl SpeechDetector for Earshot {
    fn push(&mut self, samples: &[i16], out: &mut Vec<ScriptVad>) {
        self.0.push(samples);
        while let Some(ev) = self.0.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => out.push(ScriptVad::Started(audio)),
                VadEvent::Audio(a) => out.push(ScriptVad::Audio(a)),
                VadEvent::SpeechEnd { .. } => {
                    out.push(ScriptVad::Ended);
                    self.0.reset();
                }
                VadEvent::NoSpeechTimeout { .. } => self.0.reset(),
            }
        }
    }

    fn reset(&mut self) {
        self.0.reset();
    }
}

/// The call script the configuration describes.
pub fn speech_script(config: &Config) -> Result<SpeechScript, SpeechError> {
    let detector: DetectorFactory = Arc::new(|| Box::new(Earshot(Endpointer::new(VadConfig::default()))));
    Ok(SpeechScript {
        tts: synthesizer(config)?,
        stt: recognizer(config)?,
        detector,
        decider: Arc::new(BuiltinDecider {
            settings: MatchSettings {
                spoken_numbers: config.script.spoken_numbers,
                min_confidence: None,
            },
        }),
        phrasing: Phrasing {
            acknowledgement: config.script.acknowledgement.clone(),
            goodbye: config.script.goodbye.clone(),
        },
    })
}
