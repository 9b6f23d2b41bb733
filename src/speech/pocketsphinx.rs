//! The embedded default speech-to-text engine: CMU PocketSphinx 5prealpha (`libpocketsphinx3`,
//! `libsphinxbase3`, model `pocketsphinx-en-us`), opened at run time with `libloading`.
//!
//! Each utterance is decoded against a JSGF grammar built from the choice's phrases
//! ([`super::grammar`]). An off-topic reply is then forced onto the nearest answer, so an answer
//! whose path score per second of audio falls below `reject_threshold` is rejected as
//! [`Recognition::NoMatch`]. (Comparing with a free phone loop separated better in a first
//! measurement but cost 2-15 s of CPU per answer here, so it is not used.)
//! (A filler loop of common words in the grammar was tried and swallowed most real answers; it
//! stays available as `filler_weight`, off by default.)
//!
//! Decoders are not thread-safe and costly to create (the acoustic model and dictionary load in
//! about a quarter of a second), so idle decoders wait in a small pool; each utterance takes one
//! for the whole decode, which runs on `smol::unblock`. Audio is buffered while the caller speaks
//! and decoded in one pass at the end of speech: a grammar decode of a short answer takes tens of
//! milliseconds, and cepstral mean normalisation works best on the whole utterance.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use libloading::Library;

use super::grammar::{Grammar, Interpretation, ROOT};
use super::{Alternative, BoxFuture, Recognition, RecognitionContext, Recognizer, SpeechError, Utterance};

const ENGINE: &str = "pocketsphinx";
const INSTALL: &str =
    "install libpocketsphinx3 (Debian: apt install libpocketsphinx3 libsphinxbase3 pocketsphinx-en-us)";
/// Default acoustic model directory of Debian's `pocketsphinx-en-us`.
pub const DEFAULT_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us/en-us";
/// Default pronunciation dictionary of Debian's `pocketsphinx-en-us`.
pub const DEFAULT_DICT: &str = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
/// Default rejection threshold: the lowest path score per second of audio (log base 1.0001, so
/// negative) an answer may have. Tuned on the dev set of `tests/speech_roundtrip.rs` (VAD-cut
/// G.711 audio): -4400 keeps 77/84 answers right and rejects 21/48 off-topic replies; -3800 would
/// reject 34/48 but keep only 73/84.
pub const DEFAULT_REJECT_THRESHOLD: i64 = -4_400;
/// Default weight of the filler loop: off. Measured on the dev set, a loop of common words took
/// 77 of 84 answers away from their option whatever its JSGF weight.
pub const DEFAULT_FILLER_WEIGHT: f32 = 0.0;
/// Idle decoders kept for reuse.
const POOL_SIZE: usize = 4;
/// Frames per second of the front end (`-frate` default).
const FRAME_RATE: f64 = 100.0;

type CmdLnInit = unsafe extern "C" fn(*mut c_void, *const c_void, c_int, ...) -> *mut c_void;

struct Api {
    cmd_ln_init: CmdLnInit,
    cmd_ln_free_r: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_args: unsafe extern "C" fn() -> *const c_void,
    ps_init: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    ps_free: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_lookup_word: unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_char,
    ckd_free: unsafe extern "C" fn(*mut c_void),
    ps_set_jsgf_string: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int,
    ps_set_search: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    ps_start_utt: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_process_raw: unsafe extern "C" fn(*mut c_void, *const i16, usize, c_int, c_int) -> c_int,
    ps_end_utt: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_get_hyp: unsafe extern "C" fn(*mut c_void, *mut i32) -> *const c_char,
    ps_get_prob: unsafe extern "C" fn(*mut c_void) -> i32,
    ps_get_n_frames: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_get_logmath: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    logmath_exp: unsafe extern "C" fn(*mut c_void, c_int) -> f64,
    _libs: [Library; 2],
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

fn unavailable(detail: impl Into<String>) -> SpeechError {
    SpeechError::Unavailable {
        engine: ENGINE.into(),
        detail: detail.into(),
    }
}

fn engine_error(detail: impl Into<String>) -> SpeechError {
    SpeechError::Engine {
        engine: ENGINE.into(),
        detail: detail.into(),
    }
}

macro_rules! sym {
    ($lib:expr, $libname:expr, $name:ident) => {{
        // SAFETY: the field's type is the C signature from pocketsphinx.h / sphinxbase headers.
        let f = unsafe { $lib.get(concat!(stringify!($name), "\0").as_bytes()) }
            .map_err(|e| format!("{} lacks {} ({e}); {INSTALL}", $libname, stringify!($name)))?;
        *f
    }};
}

fn load() -> Result<Api, String> {
    // SAFETY: opening the libraries runs their initialisers, which have no preconditions.
    let sb = unsafe { Library::new("libsphinxbase.so.3") }
        .map_err(|e| format!("cannot open libsphinxbase.so.3 ({e}); {INSTALL}"))?;
    // SAFETY: as above.
    let ps = unsafe { Library::new("libpocketsphinx.so.3") }
        .map_err(|e| format!("cannot open libpocketsphinx.so.3 ({e}); {INSTALL}"))?;
    let (s, p) = ("libsphinxbase.so.3", "libpocketsphinx.so.3");
    let err_set_logfp: unsafe extern "C" fn(*mut c_void) = sym!(sb, s, err_set_logfp);
    // SAFETY: NULL disables sphinxbase's logging (err.h); called before any decoder exists.
    unsafe { err_set_logfp(std::ptr::null_mut()) };
    Ok(Api {
        cmd_ln_init: sym!(sb, s, cmd_ln_init),
        cmd_ln_free_r: sym!(sb, s, cmd_ln_free_r),
        ckd_free: sym!(sb, s, ckd_free),
        logmath_exp: sym!(sb, s, logmath_exp),
        ps_args: sym!(ps, p, ps_args),
        ps_init: sym!(ps, p, ps_init),
        ps_free: sym!(ps, p, ps_free),
        ps_lookup_word: sym!(ps, p, ps_lookup_word),
        ps_set_jsgf_string: sym!(ps, p, ps_set_jsgf_string),
        ps_set_search: sym!(ps, p, ps_set_search),
        ps_start_utt: sym!(ps, p, ps_start_utt),
        ps_process_raw: sym!(ps, p, ps_process_raw),
        ps_end_utt: sym!(ps, p, ps_end_utt),
        ps_get_hyp: sym!(ps, p, ps_get_hyp),
        ps_get_prob: sym!(ps, p, ps_get_prob),
        ps_get_n_frames: sym!(ps, p, ps_get_n_frames),
        ps_get_logmath: sym!(ps, p, ps_get_logmath),
        _libs: [sb, ps],
    })
}

fn api() -> Result<&'static Api, SpeechError> {
    API.get_or_init(load).as_ref().map_err(|e| unavailable(e.clone()))
}

/// Where the model lives and how strict rejection is.
#[derive(Debug, Clone, PartialEq)]
pub struct PocketSphinxSettings {
    pub model_dir: PathBuf,
    pub dict: PathBuf,
    pub reject_threshold: i64,
    /// Weight of the off-topic filler loop against the answers (0 = no filler loop).
    pub filler_weight: f32,
}

impl Default for PocketSphinxSettings {
    fn default() -> Self {
        Self {
            model_dir: DEFAULT_MODEL_DIR.into(),
            dict: DEFAULT_DICT.into(),
            reject_threshold: DEFAULT_REJECT_THRESHOLD,
            filler_weight: DEFAULT_FILLER_WEIGHT,
        }
    }
}

fn check_files(s: &PocketSphinxSettings) -> Result<(), SpeechError> {
    for f in ["mdef", "means", "variances", "transition_matrices"] {
        if !s.model_dir.join(f).is_file() {
            return Err(unavailable(format!(
                "acoustic model {} lacks '{f}': set speech.pocketsphinx.model_dir or apt install pocketsphinx-en-us",
                s.model_dir.display()
            )));
        }
    }
    if !s.dict.is_file() {
        return Err(unavailable(format!(
            "dictionary {} not found: set speech.pocketsphinx.dict or apt install pocketsphinx-en-us",
            s.dict.display()
        )));
    }
    Ok(())
}

/// Check that the libraries load and the model files exist (used by `check-config`, start-up).
pub fn probe(s: &PocketSphinxSettings) -> Result<(), SpeechError> {
    api()?;
    check_files(s)
}

/// One decoder; owned by one utterance at a time.
struct Decoder {
    ps: *mut c_void,
    config: *mut c_void,
    api: &'static Api,
}

// SAFETY: a decoder is used by one thread at a time (owned by value, moved between threads);
// pocketsphinx decoders have no thread affinity.
unsafe impl Send for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: both pointers came from ps_init / cmd_ln_init and are freed once.
        unsafe {
            (self.api.ps_free)(self.ps);
            (self.api.cmd_ln_free_r)(self.config);
        }
    }
}

fn cstring(p: &Path) -> Result<CString, SpeechError> {
    CString::new(p.to_string_lossy().as_bytes())
        .map_err(|_| SpeechError::Invalid(format!("path {} holds NUL", p.display())))
}

impl Decoder {
    fn new(s: &PocketSphinxSettings) -> Result<Decoder, SpeechError> {
        let api = api()?;
        check_files(s)?;
        let hmm = cstring(&s.model_dir)?;
        let dict = cstring(&s.dict)?;
        let k = |t: &'static CStr| t.as_ptr();
        // SAFETY: cmd_ln_init takes NULL, the argument definitions, strict, then NULL-terminated
        // name/value C strings that outlive the call.
        let config = unsafe {
            (api.cmd_ln_init)(
                std::ptr::null_mut(),
                (api.ps_args)(),
                1,
                k(c"-hmm"),
                hmm.as_ptr(),
                k(c"-dict"),
                dict.as_ptr(),
                k(c"-logfn"),
                k(c"/dev/null"),
                k(c"-samprate"),
                k(c"16000"),
                std::ptr::null::<c_char>(),
            )
        };
        if config.is_null() {
            return Err(engine_error("cmd_ln_init rejected the configuration"));
        }
        // SAFETY: a valid config; ps_init retains it, we free our reference in Drop.
        let ps = unsafe { (api.ps_init)(config) };
        if ps.is_null() {
            // SAFETY: config is ours and not used again.
            unsafe { (api.cmd_ln_free_r)(config) };
            return Err(engine_error(format!(
                "ps_init failed with model {} and dictionary {}",
                s.model_dir.display(),
                s.dict.display()
            )));
        }
        Ok(Decoder { ps, config, api })
    }

    fn knows(&self, word: &str) -> bool {
        let Ok(w) = CString::new(word) else { return false };
        // SAFETY: valid decoder and C string; the result is malloc'd by sphinxbase (ckd_free).
        unsafe {
            let phones = (self.api.ps_lookup_word)(self.ps, w.as_ptr());
            if phones.is_null() {
                false
            } else {
                (self.api.ckd_free)(phones.cast());
                true
            }
        }
    }

    /// Decode `audio` against `jsgf`; (hypothesis, path score, frames, posterior).
    fn decode(&mut self, jsgf: &str, audio: &[i16]) -> Result<(String, i32, i32, f64), SpeechError> {
        let grammar = CString::new(jsgf).map_err(|_| SpeechError::Invalid("grammar holds NUL".into()))?;
        let name = CString::new(ROOT).map_err(|_| SpeechError::Invalid("search name".into()))?;
        // SAFETY: valid decoder and C strings.
        unsafe {
            if (self.api.ps_set_jsgf_string)(self.ps, name.as_ptr(), grammar.as_ptr()) < 0 {
                return Err(engine_error("the answer grammar was rejected"));
            }
        }
        self.run(&name, audio)
    }

    fn run(&mut self, name: &CStr, audio: &[i16]) -> Result<(String, i32, i32, f64), SpeechError> {
        let a = self.api;
        // SAFETY: valid decoder, C strings and audio slice for the duration of each call.
        unsafe {
            if (a.ps_set_search)(self.ps, name.as_ptr()) < 0 {
                return Err(engine_error("cannot select the answer grammar"));
            }
            if (a.ps_start_utt)(self.ps) < 0 {
                return Err(engine_error("ps_start_utt failed"));
            }
            if (a.ps_process_raw)(self.ps, audio.as_ptr(), audio.len(), 0, 1) < 0 {
                (a.ps_end_utt)(self.ps);
                return Err(engine_error("ps_process_raw failed"));
            }
            if (a.ps_end_utt)(self.ps) < 0 {
                return Err(engine_error("ps_end_utt failed"));
            }
            let mut score = 0i32;
            let hyp = (a.ps_get_hyp)(self.ps, &mut score);
            let text = if hyp.is_null() {
                String::new()
            } else {
                CStr::from_ptr(hyp).to_string_lossy().into_owned()
            };
            let frames = (a.ps_get_n_frames)(self.ps);
            let prob = (a.ps_get_prob)(self.ps);
            let lmath = (a.ps_get_logmath)(self.ps);
            let posterior = if lmath.is_null() {
                f64::NAN
            } else {
                (a.logmath_exp)(lmath, prob)
            };
            Ok((text, score, frames, posterior))
        }
    }
}

/// Raw figures of one decode, for tuning and the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeDetail {
    pub hypothesis: String,
    pub path_score: i32,
    pub frames: i32,
    /// Path score per second of audio.
    pub score_per_second: f64,
    pub posterior: f64,
}

struct Shared {
    settings: PocketSphinxSettings,
    pool: Mutex<Vec<Decoder>>,
}

impl Shared {
    fn take(&self) -> Result<Decoder, SpeechError> {
        let idle = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(d) => Ok(d),
            None => Decoder::new(&self.settings),
        }
    }

    fn give_back(&self, d: Decoder) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_SIZE {
            pool.push(d);
        }
    }
}

/// The PocketSphinx recognizer.
#[derive(Clone)]
pub struct PocketSphinx {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PocketSphinx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PocketSphinx")
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl PocketSphinx {
    /// A recognizer; decoders are created on demand (see [`Self::warm_up`]).
    pub fn new(settings: PocketSphinxSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                pool: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Create one decoder now, so the first call does not pay for loading the model.
    pub async fn warm_up(&self) -> Result<(), SpeechError> {
        let shared = self.shared.clone();
        smol::unblock(move || {
            let d = shared.take()?;
            shared.give_back(d);
            Ok(())
        })
        .await
    }

    /// Decode one whole utterance (blocking) and return the raw figures with the result.
    pub fn decode_blocking(
        &self,
        ctx: &RecognitionContext,
        audio: &[i16],
    ) -> Result<(Recognition, Option<DecodeDetail>), SpeechError> {
        decode_utterance(&self.shared, ctx, audio)
    }
}

fn decode_utterance(
    shared: &Shared,
    ctx: &RecognitionContext,
    audio: &[i16],
) -> Result<(Recognition, Option<DecodeDetail>), SpeechError> {
    if let Some(lang) = &ctx.language {
        let primary = lang.split(['-', '_']).next().unwrap_or_default();
        if !primary.eq_ignore_ascii_case("en") {
            return Err(SpeechError::Invalid(format!(
                "the pocketsphinx model is English only (asked for '{lang}')"
            )));
        }
    }
    let mut decoder = shared.take()?;
    let grammar = Grammar::build(&ctx.phrases, &|w| decoder.knows(w), shared.settings.filler_weight);
    let Some(grammar) = grammar else {
        shared.give_back(decoder);
        return Err(SpeechError::Invalid(
            "no answer phrase can be recognised: every phrase is empty or has words the dictionary lacks"
                .into(),
        ));
    };
    for d in &grammar.dropped {
        tracing::warn!(dropped = ?d, "answer phrase left out of the pocketsphinx grammar");
    }
    if audio.is_empty() {
        shared.give_back(decoder);
        return Ok((Recognition::NoMatch { transcript: None }, None));
    }
    let result = decoder.decode(&grammar.jsgf, audio);
    shared.give_back(decoder);
    let (hyp, score, frames, posterior) = result?;
    let seconds = (f64::from(frames.max(1))) / FRAME_RATE;
    let detail = DecodeDetail {
        hypothesis: hyp.clone(),
        path_score: score,
        frames,
        score_per_second: f64::from(score) / seconds,
        posterior,
    };
    let recognition = match grammar.interpret(&hyp) {
        Interpretation::Nothing => Recognition::NoMatch { transcript: None },
        Interpretation::Other { text } => Recognition::NoMatch {
            transcript: Some(text),
        },
        Interpretation::Answer { text, .. }
            if detail.score_per_second < shared.settings.reject_threshold as f64 =>
        {
            tracing::debug!(%text, per_second = detail.score_per_second, "answer rejected: score below threshold");
            Recognition::NoMatch {
                transcript: Some(text),
            }
        }
        Interpretation::Answer { text, .. } => {
            // ps_get_prob's posterior was 1.0 for every grammar hypothesis measured: it says
            // nothing, so no confidence is claimed.
            Recognition::Heard(vec![Alternative {
                transcript: text,
                confidence: None,
            }])
        }
    };
    Ok((recognition, Some(detail)))
}

struct PsUtterance {
    shared: Arc<Shared>,
    ctx: RecognitionContext,
    audio: Vec<i16>,
}

/// Longest audio buffered for one utterance (the endpointer ends utterances well before).
const MAX_SAMPLES: usize = 16_000 * 30;

impl Utterance for PsUtterance {
    fn push<'a>(&'a mut self, pcm16k: &'a [i16]) -> BoxFuture<'a, Result<Option<String>, SpeechError>> {
        let room = MAX_SAMPLES.saturating_sub(self.audio.len());
        self.audio.extend_from_slice(&pcm16k[..pcm16k.len().min(room)]);
        Box::pin(async { Ok(None) })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Recognition, SpeechError>> {
        let PsUtterance { shared, ctx, audio } = *self;
        Box::pin(async move {
            smol::unblock(move || decode_utterance(&shared, &ctx, &audio).map(|(r, _)| r)).await
        })
    }
}

impl Recognizer for PocketSphinx {
    fn name(&self) -> &str {
        ENGINE
    }

    fn supports_language(&self, language: Option<&str>) -> Result<(), String> {
        match language.filter(|l| !super::is_english(l)) {
            Some(lang) => Err(format!(
                "the pocketsphinx model is English only (asked for '{lang}'); use speech.stt = \"wyoming\" or \"openai\" for other languages"
            )),
            None => Ok(()),
        }
    }

    fn start<'a>(
        &'a self,
        ctx: &'a RecognitionContext,
    ) -> BoxFuture<'a, Result<Box<dyn Utterance>, SpeechError>> {
        Box::pin(async move {
            let u: Box<dyn Utterance> = Box::new(PsUtterance {
                shared: self.shared.clone(),
                ctx: ctx.clone(),
                audio: Vec::with_capacity(16_000 * 3),
            });
            Ok(u)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::Phrase;

    fn ctx(phrases: &[(&str, usize)]) -> RecognitionContext {
        RecognitionContext {
            language: None,
            phrases: phrases
                .iter()
                .map(|(t, o)| Phrase {
                    text: (*t).into(),
                    option: *o,
                })
                .collect(),
        }
    }

    #[test]
    fn probe_names_what_to_install_or_set() {
        probe(&PocketSphinxSettings::default()).expect("pocketsphinx-en-us installed");
        let missing = PocketSphinxSettings {
            model_dir: "/nonexistent/model".into(),
            ..PocketSphinxSettings::default()
        };
        let err = probe(&missing).expect_err("no model");
        assert!(matches!(err, SpeechError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("speech.pocketsphinx.model_dir"), "{err}");
    }

    #[test]
    fn flite_yes_is_heard_and_unusable_contexts_are_errors_not_crashes() {
        let ps = PocketSphinx::new(PocketSphinxSettings::default());
        let tts = crate::speech::flite::FliteSynthesizer::new("slt");
        let req = crate::speech::SynthRequest {
            text: "never mind".into(),
            voice: None,
            language: None,
        };
        let pcm = smol::block_on(crate::speech::Synthesizer::synthesize(&tts, &req)).expect("flite");
        let c = ctx(&[("Yes!", 0), ("Never mind.", 1), ("qwzxv", 1)]);
        let (r, d) = ps.decode_blocking(&c, &pcm.samples).expect("decode");
        assert_eq!(
            r,
            Recognition::Heard(vec![Alternative {
                transcript: "never mind".into(),
                confidence: None
            }]),
            "{d:?}"
        );
        let (silent, _) = ps.decode_blocking(&c, &[]).expect("empty audio");
        assert_eq!(silent, Recognition::NoMatch { transcript: None });
        let oov = ps.decode_blocking(&ctx(&[("qwzxv", 0)]), &pcm.samples);
        assert!(matches!(oov, Err(SpeechError::Invalid(_))), "{oov:?}");
        let german = RecognitionContext {
            language: Some("de-DE".into()),
            ..c
        };
        assert!(matches!(
            ps.decode_blocking(&german, &pcm.samples),
            Err(SpeechError::Invalid(_))
        ));
    }
}
