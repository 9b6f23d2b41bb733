//! The embedded default text-to-speech engine: CMU Flite (`libflite1`), opened at run time.
//!
//! Nothing links against libflite: the libraries are opened with `libloading` on first use, so the
//! binary builds and cross-compiles without them and a machine that lacks them gets a
//! [`SpeechError::Unavailable`] saying what to install. Flite keeps global state and is not safe to
//! initialise or drive from two threads at once: the library, `flite_init` and every registered
//! voice live in one process-wide [`OnceLock`], and synthesis is serialised by a [`Mutex`] and runs
//! on a render worker ([`crate::workers`]) so it never blocks an executor thread nor starves the
//! media thread.
//!
//! Voices: `slt` (default, US English female, 16 kHz), `kal` (the 16 kHz `kal16` diphone voice),
//! `awb` and `rms`, each from its own `libflite_cmu_us_*.so.1` (all in Debian `libflite1`).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_short, c_void, CString};
use std::sync::{Mutex, OnceLock};

use libloading::Library;

use super::{BoxFuture, Pcm, SpeechError, SynthRequest, Synthesizer};

const ENGINE: &str = "flite";
const INSTALL: &str = "install libflite1 (Debian: apt install flite1-dev or libflite1)";

/// Voice name → (library, registration function).
const VOICES: &[(&str, &str, &str)] = &[
    ("slt", "libflite_cmu_us_slt.so.1", "register_cmu_us_slt"),
    ("kal", "libflite_cmu_us_kal16.so.1", "register_cmu_us_kal16"),
    ("awb", "libflite_cmu_us_awb.so.1", "register_cmu_us_awb"),
    ("rms", "libflite_cmu_us_rms.so.1", "register_cmu_us_rms"),
];

/// The voice names this module knows (whether or not their library is installed).
pub fn known_voices() -> impl Iterator<Item = &'static str> {
    VOICES.iter().map(|(name, _, _)| *name)
}

fn no_such_voice(name: &str) -> String {
    format!(
        "flite has no voice '{name}' (known: {})",
        known_voices().collect::<Vec<_>>().join(", ")
    )
}

/// Flite's `cst_wave` (cst_wave.h).
#[repr(C)]
struct CstWave {
    kind: *const c_char,
    sample_rate: c_int,
    num_samples: c_int,
    num_channels: c_int,
    samples: *mut c_short,
}

type TextToWave = unsafe extern "C" fn(*const c_char, *mut c_void) -> *mut CstWave;
type DeleteWave = unsafe extern "C" fn(*mut CstWave);
type RegisterVoice = unsafe extern "C" fn(*const c_char) -> *mut c_void;

/// The opened library and the voices registered so far. Only reachable through the mutex.
struct Flite {
    text_to_wave: TextToWave,
    delete_wave: DeleteWave,
    /// Registered voices; a voice is registered once and lives as long as the process.
    voices: HashMap<&'static str, *mut c_void>,
    /// Libraries stay open for the life of the process (the function pointers point into them).
    libs: Vec<Library>,
}

// SAFETY: the raw voice pointers are only used while holding the `Mutex<Flite>`, which serialises
// every call into libflite; flite has no thread affinity, only no internal locking.
unsafe impl Send for Flite {}

static FLITE: OnceLock<Result<Mutex<Flite>, String>> = OnceLock::new();

fn unavailable(detail: impl Into<String>) -> SpeechError {
    SpeechError::Unavailable {
        engine: ENGINE.into(),
        detail: detail.into(),
    }
}

fn open(name: &str) -> Result<Library, String> {
    // SAFETY: loading libflite runs no initialisers with preconditions we could violate.
    unsafe { Library::new(name) }.map_err(|e| format!("cannot open {name} ({e}); {INSTALL}"))
}

fn load() -> Result<Mutex<Flite>, String> {
    let lib = open("libflite.so.1")?;
    // SAFETY: the signatures match flite.h / cst_wave.h of flite 2.x.
    let (init, text_to_wave, delete_wave) = unsafe {
        let init = *lib
            .get::<unsafe extern "C" fn() -> c_int>(b"flite_init\0")
            .map_err(|e| format!("libflite.so.1 lacks flite_init ({e}); {INSTALL}"))?;
        let t2w = *lib
            .get::<TextToWave>(b"flite_text_to_wave\0")
            .map_err(|e| format!("libflite.so.1 lacks flite_text_to_wave ({e}); {INSTALL}"))?;
        let del = *lib
            .get::<DeleteWave>(b"delete_wave\0")
            .map_err(|e| format!("libflite.so.1 lacks delete_wave ({e}); {INSTALL}"))?;
        (init, t2w, del)
    };
    // SAFETY: called once, before any other flite call (we are inside the OnceLock initialiser).
    unsafe { init() };
    Ok(Mutex::new(Flite {
        text_to_wave,
        delete_wave,
        voices: HashMap::new(),
        libs: vec![lib],
    }))
}

fn flite() -> Result<&'static Mutex<Flite>, SpeechError> {
    FLITE
        .get_or_init(load)
        .as_ref()
        .map_err(|e| unavailable(e.clone()))
}

impl Flite {
    fn voice(&mut self, name: &str) -> Result<*mut c_void, SpeechError> {
        let Some(&(key, lib_name, register)) = VOICES.iter().find(|(n, _, _)| *n == name) else {
            return Err(SpeechError::Invalid(no_such_voice(name)));
        };
        if let Some(v) = self.voices.get(key) {
            return Ok(*v);
        }
        let lib = open(lib_name).map_err(unavailable)?;
        let mut symbol = register.as_bytes().to_vec();
        symbol.push(0);
        // SAFETY: every register_cmu_us_* takes the voice directory (may be NULL) and returns a
        // cst_voice* or NULL.
        let voice = unsafe {
            let f = *lib
                .get::<RegisterVoice>(&symbol)
                .map_err(|e| unavailable(format!("{lib_name} lacks {register} ({e}); {INSTALL}")))?;
            f(std::ptr::null())
        };
        if voice.is_null() {
            return Err(unavailable(format!("{register} returned no voice")));
        }
        self.libs.push(lib);
        self.voices.insert(key, voice);
        Ok(voice)
    }

    fn render(&mut self, text: &CString, voice: &str) -> Result<Pcm, SpeechError> {
        let v = self.voice(voice)?;
        // SAFETY: `text` is NUL-terminated, `v` a registered voice; the mutex guard we are called
        // under serialises all flite calls.
        let wave = unsafe { (self.text_to_wave)(text.as_ptr(), v) };
        if wave.is_null() {
            return Err(SpeechError::Engine {
                engine: ENGINE.into(),
                detail: "flite_text_to_wave returned nothing".into(),
            });
        }
        // SAFETY: non-null wave from flite: `samples` holds num_samples * num_channels shorts.
        let pcm = unsafe {
            let w = &*wave;
            let channels = usize::try_from(w.num_channels).unwrap_or(1).max(1);
            let frames = usize::try_from(w.num_samples).unwrap_or(0);
            let samples = if w.samples.is_null() || frames == 0 {
                Vec::new()
            } else {
                let all = std::slice::from_raw_parts(w.samples, frames * channels);
                all.iter().step_by(channels).copied().collect()
            };
            Pcm {
                rate: u32::try_from(w.sample_rate).unwrap_or(16_000),
                samples,
            }
        };
        // SAFETY: `wave` came from flite_text_to_wave and is freed exactly once.
        unsafe { (self.delete_wave)(wave) };
        Ok(pcm)
    }
}

/// Check that libflite and `voice` can be loaded (used by `check-config` and at start-up).
pub fn probe(voice: &str) -> Result<(), SpeechError> {
    let mutex = flite()?;
    let mut f = mutex.lock().unwrap_or_else(|p| p.into_inner());
    f.voice(voice).map(|_| ())
}

/// The Flite synthesizer; cheap to construct, the library is opened on first use.
#[derive(Debug, Clone)]
pub struct FliteSynthesizer {
    default_voice: String,
}

impl FliteSynthesizer {
    pub fn new(default_voice: impl Into<String>) -> Self {
        Self {
            default_voice: default_voice.into(),
        }
    }
}

impl Synthesizer for FliteSynthesizer {
    fn name(&self) -> &str {
        ENGINE
    }

    fn supports(&self, voice: Option<&str>, language: Option<&str>) -> Result<(), String> {
        if let Some(lang) = language.filter(|l| !super::is_english(l)) {
            return Err(format!(
                "flite speaks English only (asked for '{lang}'); use speech.tts = \"espeak\" for other languages"
            ));
        }
        match voice.filter(|v| !known_voices().any(|k| k == *v)) {
            Some(v) => Err(no_such_voice(v)),
            None => Ok(()),
        }
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(async move {
            self.supports(req.voice.as_deref(), req.language.as_deref())
                .map_err(SpeechError::Invalid)?;
            if req.text.trim().is_empty() {
                return Err(SpeechError::Invalid("nothing to say: the text is empty".into()));
            }
            let text = CString::new(req.text.replace('\0', " "))
                .map_err(|_| SpeechError::Invalid("text holds a NUL character".into()))?;
            let voice = req.voice.clone().unwrap_or_else(|| self.default_voice.clone());
            // On a render worker (lower priority, bounded): a burst of calls must not starve the
            // media thread.
            crate::workers::run(move || {
                let mutex = flite()?;
                let mut f = mutex.lock().unwrap_or_else(|p| p.into_inner());
                f.render(&text, &voice)
            })
            .await
            .map_err(|e| SpeechError::Engine {
                engine: "flite".into(),
                detail: e.to_string(),
            })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str, voice: Option<&str>, language: Option<&str>) -> SynthRequest {
        SynthRequest {
            text: text.into(),
            voice: voice.map(str::to_string),
            language: language.map(str::to_string),
        }
    }

    #[test]
    #[ignore = "interop tier: needs libflite1 (cargo test -- --include-ignored; .ci/dev test)"]
    fn slt_speaks_sixteen_khz_audio_of_plausible_length() {
        let tts = FliteSynthesizer::new("slt");
        let pcm = smol::block_on(tts.synthesize(&req("Hello, this is a test.", None, None)))
            .expect("flite with slt (install libflite1)");
        assert_eq!(pcm.rate, 16_000);
        let secs = pcm.duration().as_secs_f64();
        assert!((0.8..4.0).contains(&secs), "{secs}");
        let peak = pcm.samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 3000, "audio is near silent: peak {peak}");
    }

    #[test]
    #[ignore = "interop tier: needs libflite1 (cargo test -- --include-ignored; .ci/dev test)"]
    fn every_voice_renders_from_parallel_threads() {
        let handles: Vec<_> = known_voices()
            .map(|v| {
                std::thread::spawn(move || {
                    let tts = FliteSynthesizer::new(v);
                    smol::block_on(tts.synthesize(&req("yes I confirm", None, None)))
                })
            })
            .collect();
        for h in handles {
            let pcm = h.join().expect("no panic").expect("voice renders");
            assert!(pcm.samples.len() > 8000);
        }
    }

    #[test]
    #[ignore = "interop tier: needs libflite1 (cargo test -- --include-ignored; .ci/dev test)"]
    fn bad_requests_are_invalid_not_panics() {
        let tts = FliteSynthesizer::new("slt");
        for r in [
            req("  ", None, None),
            req("hello", Some("nobody"), None),
            req("hallo", None, Some("de-DE")),
        ] {
            let got = smol::block_on(tts.synthesize(&r));
            assert!(matches!(got, Err(SpeechError::Invalid(_))), "{r:?}: {got:?}");
        }
        let nul = smol::block_on(tts.synthesize(&req("a\0b", None, Some("en-GB"))));
        assert!(nul.is_ok(), "{nul:?}");
    }
}

#[cfg(test)]
mod voice_list_tests {
    #[test]
    fn the_configuration_lists_exactly_the_voices_this_engine_maps() {
        assert_eq!(
            super::known_voices().collect::<Vec<_>>(),
            crate::config::defaults::FLITE_VOICES
        );
    }
}
