//! The configured engines, built from `[speech]`: what `app` hands to the call script.
//!
//! [`build`] returns the TTS engine behind the prompt cache, the recognizer and the endpointer
//! settings; [`probe`] checks that each configured engine can start here (its library opens, its
//! model files exist, its command runs) and says what to install or set when it cannot. Both
//! `check-config` and start-up run the probe, and both refuse to go on when it fails: a phone
//! call that cannot speak or listen is worse than a service that does not start. Both resolve
//! `speech.stt = "auto"` first ([`crate::models::stt_choice`]).

use std::sync::Arc;

use super::cache::{CachedSynthesizer, DiskCache};
use super::decode_gate::{DecodeGate, GateSettings};
use super::espeak::Espeak;
use super::flite::{self, FliteSynthesizer};
use super::pocketsphinx::{self, PocketSphinx, PocketSphinxSettings};
use super::vad::VadSettings;
use super::{OpenAiRecognizer, OpenAiSynthesizer, PiperSynthesizer, WhisperRecognizer};
use super::{Recognizer, SpeechError, Synthesizer, WyomingRecognizer, WyomingSynthesizer};
use crate::config::{Config, SpeechConfig};
use crate::models::stt_choice;

/// The speech engines of one running service.
pub struct Engines {
    /// The configured TTS engine behind the prompt cache.
    pub tts: Arc<CachedSynthesizer>,
    pub stt: Arc<dyn Recognizer>,
    /// Endpointer settings for each listen (`no_speech_timeout_ms` is left to the call script,
    /// whose `choice.timeout_seconds` governs).
    pub vad: VadSettings,
}

fn pocketsphinx_settings(s: &SpeechConfig) -> PocketSphinxSettings {
    PocketSphinxSettings {
        model_dir: s.pocketsphinx.model_dir.clone(),
        dict: s.pocketsphinx.dict.clone(),
        reject_threshold: s.pocketsphinx.reject_threshold,
        accept_threshold: s.pocketsphinx.accept_threshold,
        silence_threshold: s.pocketsphinx.silence_threshold,
        decoys: s.pocketsphinx.decoys,
        noise_floor_db: s.pocketsphinx.noise_floor_db,
        spot_threshold: s.pocketsphinx.spot_threshold,
        ..PocketSphinxSettings::default()
    }
}

/// Endpointer settings from `[speech.vad]`.
pub fn vad_settings(s: &SpeechConfig) -> VadSettings {
    VadSettings {
        hangover_ms: s.vad.hangover_ms,
        min_speech_ms: s.vad.min_speech_ms,
        max_utterance_ms: s.vad.max_utterance_seconds.saturating_mul(1000),
        ..VadSettings::default()
    }
}

/// The configured TTS engine, uncached.
pub fn synthesizer(s: &SpeechConfig) -> Result<Arc<dyn Synthesizer>, SpeechError> {
    match s.tts.as_str() {
        "flite" => Ok(Arc::new(FliteSynthesizer::new(s.flite.voice.clone()))),
        "espeak" => Ok(Arc::new(Espeak::new(
            s.espeak.command.clone(),
            s.espeak.voice.clone(),
        ))),
        "piper" => Ok(Arc::new(PiperSynthesizer::new(&s.piper)?)),
        "wyoming" => Ok(Arc::new(WyomingSynthesizer::new(&s.wyoming)?)),
        "openai" => Ok(Arc::new(OpenAiSynthesizer::new(&s.openai)?)),
        other => Err(SpeechError::Invalid(format!("unknown speech.tts '{other}'"))),
    }
}

/// The configured recognizer; `s.stt` must be concrete (`auto` resolved by [`effective_speech`]).
/// The in-process ones decode through one [`DecodeGate`] with the `[speech]` limits.
pub fn recognizer(s: &SpeechConfig) -> Result<Arc<dyn Recognizer>, SpeechError> {
    let gate = DecodeGate::new(GateSettings::from_config(s));
    match s.stt.as_str() {
        "pocketsphinx" => Ok(Arc::new(
            PocketSphinx::new(pocketsphinx_settings(s)).with_gate(gate),
        )),
        "wyoming" => Ok(Arc::new(WyomingRecognizer::new(&s.wyoming)?)),
        "openai" => Ok(Arc::new(OpenAiRecognizer::new(&s.openai)?)),
        // Loads the model; `Unavailable` in a build without the `whisper` feature.
        "whisper" => Ok(Arc::new(WhisperRecognizer::new(&s.whisper)?.with_gate(gate))),
        other => Err(SpeechError::Invalid(format!("unknown speech.stt '{other}'"))),
    }
}

/// `config`'s `[speech]` with `speech.stt = "auto"` resolved to the engine (and model) it means here.
pub fn effective_speech(config: &Config) -> SpeechConfig {
    stt_choice::resolve(config, &stt_choice::choose(config))
}

/// Build the engines of `config` (cheap for the embedded engines, whose libraries and models load
/// on first use or in [`probe`]; Piper loads its voice here, Whisper its model). Remote engines are not contacted:
/// a server that is down fails the step of the call that needs it, which the call records.
pub fn build(config: &Config) -> Result<Engines, SpeechError> {
    let s = &effective_speech(config);
    let inner = synthesizer(s)?;
    let disk = s.cache.disk.then(|| DiskCache {
        dir: config.store.data_dir.join("tts-cache"),
        budget_bytes: s.cache.disk_bytes,
    });
    let memory = usize::try_from(s.cache.memory_bytes).unwrap_or(usize::MAX);
    Ok(Engines {
        tts: Arc::new(CachedSynthesizer::new(inner, memory, disk)),
        stt: recognizer(s)?,
        vad: vad_settings(s),
    })
}

/// Check that the configured engines can start; every problem found, empty when all is well.
pub fn probe(config: &Config) -> Vec<SpeechError> {
    let s = &effective_speech(config);
    let mut problems = Vec::new();
    let tts = match s.tts.as_str() {
        "flite" => flite::probe(&s.flite.voice),
        "espeak" => Espeak::new(s.espeak.command.clone(), s.espeak.voice.clone()).probe(),
        "piper" => PiperSynthesizer::probe(&s.piper).map(|_| ()),
        _ => synthesizer(s).map(|_| ()),
    };
    problems.extend(tts.err());
    let stt = match s.stt.as_str() {
        "pocketsphinx" => pocketsphinx::probe(&pocketsphinx_settings(s)),
        "whisper" => WhisperRecognizer::probe(&s.whisper).map(|_| ()),
        _ => recognizer(s).map(|_| ()),
    };
    problems.extend(stt.err());
    problems
}

/// Ask the configured remote servers (Wyoming, OpenAI-compatible) whether they answer; every
/// server that does not, empty when all answer or none is configured. `check-config` reports these
/// as errors; at start-up they are warnings, as a server may well come up after this service.
pub async fn probe_remote(config: &Config) -> Vec<SpeechError> {
    let s = &config.speech;
    let mut problems = Vec::new();
    if s.tts == "wyoming" {
        problems.extend(
            async { WyomingSynthesizer::new(&s.wyoming)?.probe().await }
                .await
                .err(),
        );
    }
    if s.tts == "openai" {
        problems.extend(
            async { OpenAiSynthesizer::new(&s.openai)?.probe().await }
                .await
                .err(),
        );
    }
    if s.stt == "wyoming" {
        problems.extend(
            async { WyomingRecognizer::new(&s.wyoming)?.probe().await }
                .await
                .err(),
        );
    }
    // One OpenAI endpoint serves both directions: ask it once.
    if s.stt == "openai" && s.tts != "openai" {
        problems.extend(
            async { OpenAiRecognizer::new(&s.openai)?.probe().await }
                .await
                .err(),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "interop tier: needs flite, PocketSphinx and espeak-ng (cargo test -- --include-ignored; .ci/dev test)"]
    fn defaults_build_and_probe_clean() {
        // No model installed under the data dir: `auto` is PocketSphinx.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Config::default();
        c.store.data_dir = dir.path().to_path_buf();
        assert_eq!(probe(&c), Vec::<SpeechError>::new());
        let e = build(&c).expect("build");
        assert_eq!(e.tts.name(), "flite");
        assert_eq!(e.stt.name(), "pocketsphinx");
        assert_eq!(e.vad.hangover_ms, 500);
        assert_eq!(e.vad.max_utterance_ms, 10_000);
    }

    #[test]
    #[ignore = "interop tier: needs flite, PocketSphinx and espeak-ng (cargo test -- --include-ignored; .ci/dev test)"]
    fn probe_reports_each_engine_that_cannot_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Config::default();
        c.store.data_dir = dir.path().to_path_buf();
        c.speech.tts = "espeak".into();
        c.speech.espeak.command = "/nonexistent/espeak-ng".into();
        c.speech.pocketsphinx.dict = "/nonexistent/dict".into();
        let problems = probe(&c);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].to_string().contains("apt install espeak-ng"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].to_string().contains("speech.pocketsphinx.dict"),
            "{}",
            problems[1]
        );

        c.speech.tts = "flite".into();
        c.speech.stt = "whisper".into();
        c.speech.pocketsphinx.dict = crate::speech::pocketsphinx::DEFAULT_DICT.into();
        let problems = probe(&c);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            matches!(&problems[0], SpeechError::Unavailable { engine, .. } if engine == "whisper"),
            "{problems:?}"
        );
        assert!(build(&c).is_err());
    }
}
