//! Building the call script from the configuration: the engines named by `speech.tts` and
//! `speech.stt` ([`engines`]), the earshot endpointer, the built-in matcher, and the `[script]` texts.

use std::sync::Arc;

use super::decider::BuiltinDecider;
use super::speech_script::{
    Decider, DetectorFactory, Phrasing, SpeechDetector, SpeechScript, VadEvent as ScriptVad,
};
use crate::choice::MatchSettings;
use crate::config::Config;
use crate::flow::confirm::ConfirmSettings;
use crate::speech::engines;
use crate::speech::vad::{Endpointer, VadEvent};
use crate::speech::SpeechError;

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

/// The built-in matcher with the `[script]` settings.
pub fn builtin_decider(config: &Config) -> Arc<dyn Decider> {
    Arc::new(BuiltinDecider {
        settings: match_settings(config),
    })
}

/// The built-in matcher's settings from `[script]`.
pub fn match_settings(config: &Config) -> MatchSettings {
    MatchSettings {
        spoken_numbers: config.script.spoken_numbers,
        min_confidence: None,
    }
}

/// The call script the configuration describes: the engines of [`engines::build`] (TTS behind the
/// prompt cache), an endpointer per listen with the `[speech.vad]` settings, and `decider` (the
/// hooks, or the built-in matcher).
pub fn speech_script(config: &Config, decider: Arc<dyn Decider>) -> Result<SpeechScript, SpeechError> {
    let built = engines::build(config)?;
    let vad = built.vad;
    let detector: DetectorFactory = Arc::new(move || Box::new(Earshot(Endpointer::new(vad.clone()))));
    Ok(SpeechScript {
        tts: built.tts,
        stt: built.stt,
        detector,
        decider,
        phrasing: Phrasing {
            acknowledgement: config.script.acknowledgement.clone(),
            goodbye: config.script.goodbye.clone(),
            confirm_question: config.script.confirm_question.clone(),
        },
        spoken_numbers: config.script.spoken_numbers,
        confirm: ConfirmSettings {
            enabled: config.script.confirm,
            below: config.script.confirm_below as f32,
        },
        encoded: Arc::default(),
    })
}
