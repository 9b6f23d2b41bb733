//! The embedded default speech-to-text engine: CMU PocketSphinx 5prealpha (`libpocketsphinx3`,
//! `libsphinxbase3`, model `pocketsphinx-en-us`), opened at run time with `libloading`.
//!
//! Each utterance is decoded against a JSGF grammar of the choice's phrases ([`super::grammar`]).
//! Such a decode always ends on some answer, so an off-topic reply ("what time is it") must be
//! caught afterwards. The answer's path is judged in three steps ([`first_look`], then the
//! decoy decode):
//!
//! 1. Rejected when its path score per second of audio is below `reject_threshold`, or when one
//!    of its silence segments scores below `silence_threshold` (speech the answer could not
//!    explain was swallowed by "silence": "cancel what" decoded as `cancel <sil>`).
//! 2. Kept when its path score per second reaches `accept_threshold`: it fits well.
//! 3. In between, the same audio is decoded again with the *decoy grammar*: the answers plus a
//!    branch of the 100 most common English words, each word with a penalty. The answer is kept
//!    only when the decoder still prefers an answer of the same option to decoy words. On the
//!    dev set this runs for about 3 replies in 10 and costs about 50 ms of CPU on top of the
//!    first decode's 20 ms (x86; a Pi is 4-6 times slower).
//!
//! Before decoding, a floor of noise 28 dB below the reply's level is added (`noise_floor_db`,
//! [`dithered`]): digital silence inside a reply otherwise wrecks every score.
//!
//! Measured on the dev set (`tests/interop/speech_roundtrip.rs`, `docs/speech.md`), with what was
//! tried and not kept (thresholds alone, CI and CD phone loops, a common-word loop without the
//! first look, the general language model). Keyword spotting of the answer phrases inside longer
//! replies ([`super::spotting`], `spot_threshold`) is built and measured but off by default: it
//! takes far more natural answers and rejects far fewer must-reject replies
//! (`docs/recognition.md`).
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

use super::decode_gate::DecodeGate;
use super::grammar::{DecoyPenalty, Grammar, Interpretation};
use super::{Alternative, BoxFuture, Recognition, RecognitionContext, Recognizer, SpeechError, Utterance};

const ENGINE: &str = "pocketsphinx";
const INSTALL: &str =
    "install libpocketsphinx3 (Debian: apt install libpocketsphinx3 libsphinxbase3 pocketsphinx-en-us)";
pub use crate::config::defaults::{
    DEFAULT_ACCEPT_THRESHOLD, DEFAULT_DICT, DEFAULT_MODEL_DIR, DEFAULT_NOISE_FLOOR_DB,
    DEFAULT_REJECT_THRESHOLD, DEFAULT_SILENCE_THRESHOLD, DEFAULT_SPOT_THRESHOLD,
};
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
    ps_set_kws: unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int,
    ps_start_utt: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_process_raw: unsafe extern "C" fn(*mut c_void, *const i16, usize, c_int, c_int) -> c_int,
    ps_end_utt: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_get_hyp: unsafe extern "C" fn(*mut c_void, *mut i32) -> *const c_char,
    ps_get_n_frames: unsafe extern "C" fn(*mut c_void) -> c_int,
    ps_seg_iter: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    ps_seg_next: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    ps_seg_word: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    ps_seg_frames: unsafe extern "C" fn(*mut c_void, *mut c_int, *mut c_int),
    ps_seg_prob: unsafe extern "C" fn(*mut c_void, *mut i32, *mut i32, *mut i32) -> i32,
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
        ps_args: sym!(ps, p, ps_args),
        ps_init: sym!(ps, p, ps_init),
        ps_free: sym!(ps, p, ps_free),
        ps_lookup_word: sym!(ps, p, ps_lookup_word),
        ps_set_jsgf_string: sym!(ps, p, ps_set_jsgf_string),
        ps_set_search: sym!(ps, p, ps_set_search),
        ps_set_kws: sym!(ps, p, ps_set_kws),
        ps_start_utt: sym!(ps, p, ps_start_utt),
        ps_process_raw: sym!(ps, p, ps_process_raw),
        ps_end_utt: sym!(ps, p, ps_end_utt),
        ps_get_hyp: sym!(ps, p, ps_get_hyp),
        ps_get_n_frames: sym!(ps, p, ps_get_n_frames),
        ps_seg_iter: sym!(ps, p, ps_seg_iter),
        ps_seg_next: sym!(ps, p, ps_seg_next),
        ps_seg_word: sym!(ps, p, ps_seg_word),
        ps_seg_frames: sym!(ps, p, ps_seg_frames),
        ps_seg_prob: sym!(ps, p, ps_seg_prob),
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
    /// Lowest path score per second an answer may have.
    pub reject_threshold: i64,
    /// Path score per second from which an answer is kept without the decoy check.
    pub accept_threshold: i64,
    /// Lowest acoustic score of a silence segment in the answer's path.
    pub silence_threshold: i64,
    /// Run the decoy check on answers between the two thresholds (off: keep them).
    pub decoys: bool,
    /// What decoy words cost in the decoy grammar.
    pub decoy_penalty: DecoyPenalty,
    /// Noise floor added before decoding, in dB below the reply's level (0 = none), see
    /// [`dithered`].
    pub noise_floor_db: u8,
    /// Keyword spotting of the answer phrases when the grammar found no answer: a phrase is
    /// spotted when it beats the phone loop by 1e-(spot_threshold / 10 per phone); 0 = off
    /// ([`super::spotting`]).
    pub spot_threshold: u32,
}

impl Default for PocketSphinxSettings {
    fn default() -> Self {
        Self {
            model_dir: DEFAULT_MODEL_DIR.into(),
            dict: DEFAULT_DICT.into(),
            reject_threshold: DEFAULT_REJECT_THRESHOLD,
            accept_threshold: DEFAULT_ACCEPT_THRESHOLD,
            silence_threshold: DEFAULT_SILENCE_THRESHOLD,
            decoys: true,
            decoy_penalty: DecoyPenalty::default(),
            noise_floor_db: DEFAULT_NOISE_FLOOR_DB,
            spot_threshold: DEFAULT_SPOT_THRESHOLD,
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
    /// The JSGF text each search was last given, so an unchanged grammar is not rebuilt (the
    /// decoy grammar takes a few milliseconds to set up).
    loaded: Vec<(&'static CStr, String)>,
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
        Ok(Decoder {
            ps,
            config,
            api,
            loaded: Vec::new(),
        })
    }

    fn knows(&self, word: &str) -> bool {
        self.phones(word).is_some()
    }

    /// How many phones the dictionary gives `word` (its first pronunciation); `None` when it
    /// lacks the word.
    fn phones(&self, word: &str) -> Option<usize> {
        let w = CString::new(word).ok()?;
        // SAFETY: valid decoder and C string; the result is malloc'd by sphinxbase (ckd_free)
        // and read before it is freed.
        unsafe {
            let phones = (self.api.ps_lookup_word)(self.ps, w.as_ptr());
            if phones.is_null() {
                return None;
            }
            let n = CStr::from_ptr(phones)
                .to_string_lossy()
                .split_whitespace()
                .count();
            (self.api.ckd_free)(phones.cast());
            Some(n)
        }
    }

    /// Spot the phrases of `keys` (a keyphrase list, [`super::spotting::keyphrases`]) in `audio`.
    /// The list is handed over as a file (the only way PocketSphinx 5prealpha takes several
    /// phrases), written once per list and removed at once.
    fn spot(&mut self, keys: &str, audio: &[i16]) -> Result<Decoded, SpeechError> {
        let fresh = self
            .loaded
            .iter()
            .any(|(n, text)| *n == SPOT_SEARCH && text == keys);
        if !fresh {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("sip-assistant-kws-{}-{n}.txt", std::process::id()));
            // A new file only (O_EXCL: never through a link someone left at that name), private.
            let written = {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut f| f.write_all(keys.as_bytes()))
            };
            written.map_err(|e| {
                engine_error(format!("cannot write the keyphrase list {}: {e}", path.display()))
            })?;
            // SAFETY: valid decoder and C strings; the file is read within the call.
            let rc = cstring(&path)
                .map(|f| unsafe { (self.api.ps_set_kws)(self.ps, SPOT_SEARCH.as_ptr(), f.as_ptr()) });
            let _ = std::fs::remove_file(&path);
            self.loaded.retain(|(n, _)| *n != SPOT_SEARCH);
            if rc? < 0 {
                return Err(engine_error("the keyphrase list was rejected"));
            }
            self.loaded.push((SPOT_SEARCH, keys.to_owned()));
        }
        self.run(SPOT_SEARCH, audio)
    }

    /// Decode `audio` against `jsgf`, kept as search `name`.
    fn decode(&mut self, name: &'static CStr, jsgf: &str, audio: &[i16]) -> Result<Decoded, SpeechError> {
        let fresh = self.loaded.iter().any(|(n, text)| *n == name && text == jsgf);
        if !fresh {
            let grammar = CString::new(jsgf).map_err(|_| SpeechError::Invalid("grammar holds NUL".into()))?;
            self.loaded.retain(|(n, _)| *n != name);
            // SAFETY: valid decoder and C strings.
            if unsafe { (self.api.ps_set_jsgf_string)(self.ps, name.as_ptr(), grammar.as_ptr()) } < 0 {
                return Err(engine_error("the answer grammar was rejected"));
            }
            self.loaded.push((name, jsgf.to_owned()));
        }
        self.run(name, audio)
    }

    fn run(&mut self, name: &CStr, audio: &[i16]) -> Result<Decoded, SpeechError> {
        let a = self.api;
        // SAFETY: valid decoder, C strings and audio slice for the duration of each call; the
        // hypothesis and segment strings are read before the next call into the decoder.
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
            let hypothesis = if hyp.is_null() {
                String::new()
            } else {
                CStr::from_ptr(hyp).to_string_lossy().into_owned()
            };
            let frames = (a.ps_get_n_frames)(self.ps);
            let mut segments = Vec::new();
            // ps_seg_next frees the iterator when it returns NULL at the end.
            let mut seg = (a.ps_seg_iter)(self.ps);
            while !seg.is_null() {
                let word = (a.ps_seg_word)(seg);
                let (mut start, mut end) = (0, 0);
                (a.ps_seg_frames)(seg, &mut start, &mut end);
                let (mut acoustic, mut language, mut backoff) = (0, 0, 0);
                (a.ps_seg_prob)(seg, &mut acoustic, &mut language, &mut backoff);
                segments.push(Segment {
                    word: if word.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(word).to_string_lossy().into_owned()
                    },
                    frames: (start, end),
                    acoustic,
                });
                seg = (a.ps_seg_next)(seg);
            }
            Ok(Decoded {
                hypothesis,
                path_score: score,
                frames,
                segments,
            })
        }
    }
}

/// One word or silence of a decoded path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The dictionary word (`<sil>`, `[NOISE]` for fillers; `one(2)` for a second pronunciation).
    pub word: String,
    /// First and last frame, inclusive.
    pub frames: (i32, i32),
    /// Acoustic score (log base 1.0001, scaled down by 2^10 like every PocketSphinx score).
    pub acoustic: i32,
}

impl Segment {
    /// Silence or noise rather than a word.
    pub fn is_filler(&self) -> bool {
        self.word.starts_with('<') || self.word.starts_with('[') || self.word.starts_with('+')
    }
}

/// What one decode found.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub hypothesis: String,
    pub path_score: i32,
    pub frames: i32,
    pub segments: Vec<Segment>,
}

impl Decoded {
    /// Path score per second of audio.
    pub fn score_per_second(&self) -> f64 {
        f64::from(self.path_score) / (f64::from(self.frames.max(1)) / FRAME_RATE)
    }

    /// The lowest acoustic score of a silence segment (0 without one).
    pub fn worst_silence(&self) -> i32 {
        self.segments
            .iter()
            .filter(|s| s.is_filler())
            .map(|s| s.acoustic)
            .min()
            .unwrap_or(0)
            .min(0)
    }
}

/// What the first decode says about an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLook {
    /// Path score per second below `reject_threshold`.
    LowScore,
    /// A silence segment below `silence_threshold`: speech the answer does not explain.
    SpeechInSilence,
    /// Fits well: keep it.
    Accept,
    /// In between: ask the decoy grammar.
    CheckDecoys,
}

/// Judge an answer by its first decode (pure: thresholds from `settings`).
pub fn first_look(decoded: &Decoded, settings: &PocketSphinxSettings) -> FirstLook {
    let per_second = decoded.score_per_second();
    if per_second < settings.reject_threshold as f64 {
        FirstLook::LowScore
    } else if i64::from(decoded.worst_silence()) < settings.silence_threshold {
        FirstLook::SpeechInSilence
    } else if per_second >= settings.accept_threshold as f64 || !settings.decoys {
        FirstLook::Accept
    } else {
        FirstLook::CheckDecoys
    }
}

/// How an utterance was judged, with the raw figures (for tuning, the tests and the benchmark).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeDetail {
    /// The answer-grammar decode.
    pub first: Decoded,
    /// What it said about an answer (`None` when it found none).
    pub look: Option<FirstLook>,
    /// The decoy-grammar decode, when it ran.
    pub decoy: Option<Decoded>,
    /// The keyword search, when it ran (the grammar found no answer and spotting is on).
    pub spot: Option<Decoded>,
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
    /// Bounds the decodes running and waiting ([`super::decode_gate`]).
    gate: DecodeGate,
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
            gate: DecodeGate::default(),
        }
    }

    /// Decode through `gate` (shared with the other in-process recognisers) instead of a gate of
    /// its own ([`DecodeGate::default`]: patient, for use outside the service).
    pub fn with_gate(mut self, gate: DecodeGate) -> Self {
        self.gate = gate;
        self
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
    let settings = &shared.settings;
    let grammar = Grammar::build(&ctx.phrases, &|w| decoder.knows(w), settings.decoy_penalty);
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
    let audio = dithered(audio, settings.noise_floor_db);
    let result = judge(&mut decoder, &grammar, settings, &audio);
    shared.give_back(decoder);
    result
}

/// `audio` with a floor of uniform noise `floor_db` below its RMS level (at least ±4), from a
/// fixed seed (the same audio always decodes the same way); `floor_db == 0` leaves it as it is.
/// Digital silence (zeros where a TTS voice or a codec's silence suppression leaves a pause, or
/// where the media plane fills a lost packet) has no log energy, and such frames fit no acoustic
/// model: measured on the dev set, a floor 28 dB down took answers right from 93 to 97 of 102 and
/// made off-topic replies separable at all; tied to the reply's level, it spares quiet callers.
pub fn dithered(audio: &[i16], floor_db: u8) -> Vec<i16> {
    if floor_db == 0 || audio.is_empty() {
        return audio.to_vec();
    }
    let energy: f64 = audio.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / audio.len() as f64).sqrt();
    let peak = (rms * 10f64.powf(-f64::from(floor_db) / 20.0)).clamp(4.0, 4000.0) as u64;
    let span = 2 * peak + 1;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    audio
        .iter()
        .map(|&s| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % span) as i64 - peak as i64;
            (i64::from(s) + noise).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
        })
        .collect()
}

/// Search names: one per grammar, so each keeps its compiled form between utterances.
const ANSWER_SEARCH: &CStr = c"answer";
const DECOY_SEARCH: &CStr = c"decoy";
const SPOT_SEARCH: &CStr = c"spot";
const WORDS_SEARCH: &CStr = c"words";

/// The grammar's judgement ([`judge_grammar`]); when it found no answer, the answer phrases
/// spotted in free speech among the words heard around them ([`super::spotting`]), for the
/// matcher to judge.
fn judge(
    decoder: &mut Decoder,
    grammar: &Grammar,
    settings: &PocketSphinxSettings,
    audio: &[i16],
) -> Result<(Recognition, Option<DecodeDetail>), SpeechError> {
    let (recognition, detail) = judge_grammar(decoder, grammar, settings, audio)?;
    // Not when the answer's path fit the audio badly everywhere (noise, a far-off reply): only
    // where other words were heard around or instead of an answer.
    let poor_fit = detail
        .as_ref()
        .is_some_and(|d| d.look == Some(FirstLook::LowScore));
    if settings.spot_threshold == 0 || matches!(recognition, Recognition::Heard(_)) || poor_fit {
        return Ok((recognition, detail));
    }
    let mut keys: Vec<&str> = grammar.answers().collect();
    keys.sort_unstable();
    let list = super::spotting::keyphrases(&keys, &|w| decoder.phones(w), settings.spot_threshold);
    if list.is_empty() {
        return Ok((recognition, detail));
    }
    let spot = decoder.spot(&list, audio)?;
    let timed = |d: &Decoded| -> Vec<super::spotting::Timed> {
        d.segments
            .iter()
            .map(|s| super::spotting::Timed {
                // The keyword search names a detection with a trailing space.
                text: s.word.trim().to_string(),
                frames: s.frames,
            })
            .collect()
    };
    let spotted: Vec<_> = timed(&spot)
        .into_iter()
        .filter(|t| grammar.option_of(&t.text).is_some())
        .collect();
    let mut detail = detail;
    if spotted.is_empty() {
        if let Some(d) = detail.as_mut() {
            d.spot = Some(spot);
        }
        return Ok((recognition, detail));
    }
    // The words around the phrase ("not", "don't", "please"): a decode with common words only.
    let around = match grammar.words_jsgf.as_deref() {
        Some(jsgf) => timed(&decoder.decode(WORDS_SEARCH, jsgf, audio)?),
        None => Vec::new(),
    };
    let text = super::spotting::transcript(&spotted, &around).unwrap_or_default();
    tracing::debug!(%text, "answer phrase spotted in free speech");
    if let Some(d) = detail.as_mut() {
        d.spot = Some(spot);
    }
    Ok((
        Recognition::Heard(vec![Alternative {
            transcript: text,
            confidence: None,
        }]),
        detail,
    ))
}

fn judge_grammar(
    decoder: &mut Decoder,
    grammar: &Grammar,
    settings: &PocketSphinxSettings,
    audio: &[i16],
) -> Result<(Recognition, Option<DecodeDetail>), SpeechError> {
    let first = decoder.decode(ANSWER_SEARCH, &grammar.jsgf, audio)?;
    let (text, option) = match grammar.interpret(&first.hypothesis) {
        Interpretation::Nothing => {
            let detail = DecodeDetail {
                first,
                look: None,
                decoy: None,
                spot: None,
            };
            return Ok((Recognition::NoMatch { transcript: None }, Some(detail)));
        }
        Interpretation::Other { text } => {
            let detail = DecodeDetail {
                first,
                look: None,
                decoy: None,
                spot: None,
            };
            return Ok((
                Recognition::NoMatch {
                    transcript: Some(text),
                },
                Some(detail),
            ));
        }
        Interpretation::Answer { text, option } => (text, option),
    };
    let look = first_look(&first, settings);
    let (keep, heard, decoy) = match (look, grammar.decoy_jsgf.as_deref()) {
        (FirstLook::Accept, _) | (FirstLook::CheckDecoys, None) => (true, text.clone(), None),
        (FirstLook::LowScore | FirstLook::SpeechInSilence, _) => (false, text.clone(), None),
        (FirstLook::CheckDecoys, Some(decoy_jsgf)) => {
            let second = decoder.decode(DECOY_SEARCH, decoy_jsgf, audio)?;
            let words = super::grammar::normalize(&second.hypothesis).join(" ");
            let keep = grammar.option_of(&words) == Some(option);
            let heard = if words.is_empty() { text.clone() } else { words };
            (keep, heard, Some(second))
        }
    };
    let per_second = first.score_per_second();
    let recognition = if keep {
        // No confidence is claimed: ps_get_prob's posterior was 1.0 for every grammar hypothesis
        // measured.
        Recognition::Heard(vec![Alternative {
            transcript: text,
            confidence: None,
        }])
    } else {
        tracing::debug!(answer = %text, %heard, ?look, per_second, "answer rejected");
        Recognition::Rejected { heard: Some(heard) }
    };
    Ok((
        recognition,
        Some(DecodeDetail {
            first,
            look: Some(look),
            decoy,
            spot: None,
        }),
    ))
}

struct PsUtterance {
    shared: Arc<Shared>,
    gate: DecodeGate,
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
        let PsUtterance {
            shared,
            gate,
            ctx,
            audio,
        } = *self;
        Box::pin(async move {
            gate.run(ENGINE, move || {
                decode_utterance(&shared, &ctx, &audio).map(|(r, _)| r)
            })
            .await
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
                gate: self.gate.clone(),
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
            phrases: phrases.iter().map(|(t, o)| Phrase::answer(*t, *o)).collect(),
        }
    }

    fn decoded(path_score: i32, frames: i32, silences: &[i32]) -> Decoded {
        let mut segments = vec![Segment {
            word: "yes".into(),
            frames: (0, frames - 1),
            acoustic: path_score,
        }];
        segments.extend(silences.iter().map(|&acoustic| Segment {
            word: "<sil>".into(),
            frames: (0, 0),
            acoustic,
        }));
        Decoded {
            hypothesis: "yes".into(),
            path_score,
            frames,
            segments,
        }
    }

    #[test]
    fn first_look_rejects_low_scores_and_swallowed_speech_accepts_good_fits_and_checks_the_rest() {
        let s = PocketSphinxSettings::default();
        // 100 frames = 1 s: the path score is the score per second.
        assert_eq!(
            first_look(&decoded(-7_000, 100, &[-100]), &s),
            FirstLook::LowScore
        );
        assert_eq!(
            first_look(&decoded(-3_000, 100, &[-100, -1_500]), &s),
            FirstLook::SpeechInSilence
        );
        assert_eq!(first_look(&decoded(-3_000, 100, &[-100]), &s), FirstLook::Accept);
        assert_eq!(first_look(&decoded(-1_500, 50, &[]), &s), FirstLook::Accept);
        assert_eq!(
            first_look(&decoded(-4_500, 100, &[-100]), &s),
            FirstLook::CheckDecoys
        );
        let no_decoys = PocketSphinxSettings {
            decoys: false,
            ..PocketSphinxSettings::default()
        };
        assert_eq!(
            first_look(&decoded(-4_500, 100, &[-100]), &no_decoys),
            FirstLook::Accept
        );
        // A path without frames cannot divide by zero.
        assert_eq!(first_look(&decoded(0, 0, &[]), &s), FirstLook::Accept);
    }

    #[test]
    fn fillers_are_told_from_words_and_positive_silence_scores_count_as_zero() {
        let seg = |w: &str| Segment {
            word: w.into(),
            frames: (0, 1),
            acoustic: 5,
        };
        assert!(seg("<sil>").is_filler() && seg("[NOISE]").is_filler() && seg("+SPN+").is_filler());
        assert!(!seg("one(2)").is_filler() && !seg("yes").is_filler());
        assert_eq!(decoded(-100, 10, &[7]).worst_silence(), 0);
        assert_eq!(decoded(-100, 10, &[-7, -300]).worst_silence(), -300);
    }

    #[test]
    fn noise_floor_follows_the_level_is_deterministic_and_saturates() {
        // A square wave of ±1000 has an RMS of 1000: 20 dB down, the noise peaks at ±100.
        let tone: Vec<i16> = (0..2000).map(|i| if i % 2 == 0 { 1000 } else { -1000 }).collect();
        let a = dithered(&tone, 20);
        assert_eq!(a, dithered(&tone, 20));
        let dev: Vec<i16> = a.iter().zip(&tone).map(|(x, t)| x - t).collect();
        assert!(dev.iter().all(|d| (-100..=100).contains(d)), "bounded");
        assert!(
            dev.iter().any(|&d| d > 80) && dev.iter().any(|&d| d < -80),
            "fills its range"
        );
        // Digital silence still gets the ±4 minimum; 0 dB means off.
        let silent = dithered(&[0; 1000], 28);
        assert!(silent.iter().all(|s| (-4..=4).contains(s)) && silent.iter().any(|&s| s != 0));
        assert_eq!(dithered(&tone, 0), tone);
        assert!(dithered(&[], 28).is_empty());
        let loud = dithered(&[i16::MAX, i16::MIN, i16::MAX, i16::MIN], 1);
        assert!(loud.iter().all(|&s| s.unsigned_abs() >= 32_767 - 4000));
    }

    #[test]
    #[ignore = "interop tier: needs libpocketsphinx3 and flite (cargo test -- --include-ignored; .ci/dev test)"]
    fn an_answer_inside_a_sentence_is_spotted() {
        let ps = PocketSphinx::new(PocketSphinxSettings {
            spot_threshold: 10,
            ..PocketSphinxSettings::default()
        });
        let tts = crate::speech::flite::FliteSynthesizer::new("slt");
        let c = ctx(&[("sales", 0), ("technical support", 1), ("billing", 2)]);
        for text in ["well I would like to talk to billing please", "billing"] {
            let req = crate::speech::SynthRequest {
                text: text.into(),
                voice: None,
                language: None,
            };
            let pcm = smol::block_on(crate::speech::Synthesizer::synthesize(&tts, &req)).expect("flite");
            let (r, d) = ps.decode_blocking(&c, &pcm.samples).expect("decode");
            let Recognition::Heard(alternatives) = &r else {
                panic!("{text}: {r:?} {d:?}");
            };
            let words: Vec<&str> = alternatives[0].transcript.split(' ').collect();
            assert!(words.contains(&"billing"), "{text}: {r:?}");
            // Alone, the grammar hears it; in a sentence, the keyword search finds it.
            let spotted = d.as_ref().is_some_and(|d| d.spot.is_some());
            assert_eq!(spotted, text != "billing", "{text}: {d:?}");
        }
    }

    #[test]
    #[ignore = "interop tier: needs libpocketsphinx3 and flite (cargo test -- --include-ignored; .ci/dev test)"]
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
    #[ignore = "interop tier: needs libpocketsphinx3 and flite (cargo test -- --include-ignored; .ci/dev test)"]
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
