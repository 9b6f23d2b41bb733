//! Settings of the remote speech engines (`[speech.wyoming]`, `[speech.openai]`) and of the
//! optional embedded ones built behind cargo features (`[speech.piper]`, `[speech.whisper]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// A Wyoming server pair (Home Assistant voice protocol over TCP), e.g. `wyoming-piper` and
/// `wyoming-faster-whisper`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WyomingConfig {
    /// `host:port` of the text-to-speech server (wyoming-piper listens on 10200 by convention).
    pub tts_address: String,
    /// `host:port` of the speech-to-text server (wyoming-faster-whisper: 10300).
    pub stt_address: String,
    /// Voice name sent with each `synthesize`; absent = the server's default voice.
    pub voice: Option<String>,
    /// Language sent with each `transcribe` (`en`, `de`, or a BCP 47 tag whose primary subtag is
    /// used); absent = the server's default.
    pub language: Option<String>,
    pub connect_timeout_ms: u64,
    /// TTS: the whole request. STT: each write while audio streams, and end of speech to transcript.
    pub request_timeout_ms: u64,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        Self {
            tts_address: "127.0.0.1:10200".into(),
            stt_address: "127.0.0.1:10300".into(),
            voice: None,
            language: None,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 15_000,
        }
    }
}

/// An OpenAI-compatible HTTP speech API (OpenAI, speaches, LocalAI, whisper.cpp's server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Scheme, host and optional path prefix; `/v1/audio/...` is appended (a trailing `/v1` is
    /// accepted too).
    pub base_url: String,
    /// Bearer token; local servers usually need none.
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    pub tts_model: String,
    pub stt_model: String,
    pub voice: String,
    /// Language hint for transcription (ISO 639-1 such as `en`; the primary subtag of a BCP 47
    /// tag is used); absent = the server detects it.
    pub language: Option<String>,
    pub connect_timeout_ms: u64,
    /// The whole request, response body included.
    pub request_timeout_ms: u64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com".into(),
            api_key: None,
            api_key_file: None,
            tts_model: "tts-1".into(),
            stt_model: "whisper-1".into(),
            voice: "alloy".into(),
            language: None,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 20_000,
        }
    }
}

/// Piper (VITS voices in ONNX) run in-process; needs the `piper` cargo feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiperConfig {
    /// The voice's `.onnx` file; required when `speech.tts = "piper"`.
    pub model: Option<PathBuf>,
    /// The voice's `.onnx.json`; absent = `<model>.json`.
    pub model_config: Option<PathBuf>,
    /// Path of `libonnxruntime.so`; absent = `ORT_DYLIB_PATH`, else the system loader's search.
    pub onnxruntime: Option<PathBuf>,
    /// The espeak-ng command that turns text into IPA phonemes.
    pub espeak_command: String,
    /// Speaker id of a multi-speaker voice.
    pub speaker: Option<u32>,
    /// Inference threads.
    pub threads: u32,
}

impl Default for PiperConfig {
    fn default() -> Self {
        Self {
            model: None,
            model_config: None,
            onnxruntime: None,
            espeak_command: "espeak-ng".into(),
            speaker: None,
            threads: 1,
        }
    }
}

/// whisper.cpp run in-process; needs the `whisper` cargo feature and a ggml model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhisperConfig {
    /// The ggml model file (`ggml-tiny.en.bin`); required when `speech.stt = "whisper"`. With
    /// `speech.stt = "auto"` and no file named here, the model `model_name` installed under
    /// `<store.data_dir>/models/` is used (`sip-assistant models fetch`).
    pub model: Option<PathBuf>,
    /// Which installed model `speech.stt = "auto"` prefers (`sip-assistant models list`).
    pub model_name: String,
    pub language: Option<String>,
    pub threads: u32,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            model: None,
            model_name: "tiny.en".into(),
            language: None,
            threads: 1,
        }
    }
}

/// `[speech.models]`: where `sip-assistant models fetch` downloads the named ggml models from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Base URL; a model's file name is appended (`<base_url>/ggml-tiny.en.bin`).
    pub base_url: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            base_url: "https://huggingface.co/ggerganov/whisper.cpp/resolve/main".into(),
        }
    }
}
