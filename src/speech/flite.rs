//! The embedded default text-to-speech engine: CMU Flite (`libflite1`), opened at run time.
//!
//! Nothing links against libflite: the libraries are opened with `libloading` on first use, so the
//! binary builds and cross-compiles without them and a machine that lacks them gets a
//! [`SpeechError::Unavailable`] saying what to install. The library, `flite_init` and every
//! registered voice live in one process-wide [`OnceLock`]. Synthesis runs on the render workers
//! ([`crate::workers`]), so it never blocks an executor thread nor starves the media thread.
//!
//! Threads: flite 2.x is thread-safe *after initialisation* (its README: "thread safe (again)
//! [after initialization]"; `flite.h`: `flite_add_voice` and friends "are *not* thread-safe, they
//! are designed to be called before the initial synthesis"). An utterance is built per call and
//! only links the voice's features (`feat_link_into`), the regular expressions are compiled
//! constants matched with per-call state, and the one shared source of randomness of the
//! clustergen voices (their noise excitation) is libc's `rand`, which glibc locks. So the
//! initialisation (`flite_init`, registering a voice, which also sets up the shared lexicon) takes
//! the [`RwLock`] for writing, and syntheses share it for reading: one render per worker thread at
//! once. Checked on Debian's libflite 2.2 (see `docs/scale.md`): valgrind's helgrind reports no
//! race when two threads render with all four voices at once, and with `rand` made per-thread and
//! reset before each render, renders from four threads at once are bit-identical to renders made
//! one at a time.
//!
//! Voices: `slt` (default, US English female, 16 kHz), `kal` (the 16 kHz `kal16` diphone voice),
//! `awb` and `rms`, each from its own `libflite_cmu_us_*.so.1` (all in Debian `libflite1`).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_short, c_void, CString};
use std::sync::{OnceLock, RwLock};

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

/// The opened library and the voices registered so far. Only reachable through the lock: read
/// to render with a registered voice, write to register one.
struct Flite {
    text_to_wave: TextToWave,
    delete_wave: DeleteWave,
    /// Registered voices; a voice is registered once and lives as long as the process.
    voices: HashMap<&'static str, *mut c_void>,
    /// Libraries stay open for the life of the process (the function pointers point into them).
    libs: Vec<Library>,
}

// SAFETY: flite has no thread affinity. The raw voice pointers are only used while holding the
// `RwLock<Flite>`: a voice is registered (flite's not thread-safe initialisation) under the write
// lock, so never while another thread renders, and is then only read, by syntheses that flite
// allows to run at once after initialisation (module docs).
unsafe impl Send for Flite {}
// SAFETY: as for `Send`: shared access (`&Flite`, the read lock) only renders.
unsafe impl Sync for Flite {}

static FLITE: OnceLock<Result<RwLock<Flite>, String>> = OnceLock::new();

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

fn load() -> Result<RwLock<Flite>, String> {
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
    Ok(RwLock::new(Flite {
        text_to_wave,
        delete_wave,
        voices: HashMap::new(),
        libs: vec![lib],
    }))
}

fn flite() -> Result<&'static RwLock<Flite>, SpeechError> {
    FLITE
        .get_or_init(load)
        .as_ref()
        .map_err(|e| unavailable(e.clone()))
}

/// Render `text` with `voice`, registering the voice first if no call has yet. Renders share the
/// lock (they run at once, one per render worker); a registration has it to itself.
fn render(text: &CString, voice: &str) -> Result<Pcm, SpeechError> {
    let lock = flite()?;
    {
        let f = lock.read().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = f.registered(voice)? {
            return f.render(text, v);
        }
    }
    lock.write().unwrap_or_else(|p| p.into_inner()).voice(voice)?;
    let f = lock.read().unwrap_or_else(|p| p.into_inner());
    let v = f.voice_registered(voice)?;
    f.render(text, v)
}

impl Flite {
    /// `name`'s voice if it is registered; an error if flite has no such voice.
    fn registered(&self, name: &str) -> Result<Option<*mut c_void>, SpeechError> {
        let Some(&(key, _, _)) = VOICES.iter().find(|(n, _, _)| *n == name) else {
            return Err(SpeechError::Invalid(no_such_voice(name)));
        };
        Ok(self.voices.get(key).copied())
    }

    /// `name`'s voice, which must be registered by now.
    fn voice_registered(&self, name: &str) -> Result<*mut c_void, SpeechError> {
        self.registered(name)?
            .ok_or_else(|| unavailable(format!("the voice {name} is not registered")))
    }

    /// Register `name`'s voice (once); flite's initialisation, so only under the write lock.
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

    /// Render with the registered voice `v`. Called under the read lock: other renders may run
    /// at the same time, a registration may not.
    fn render(&self, text: &CString, v: *mut c_void) -> Result<Pcm, SpeechError> {
        // SAFETY: `text` is NUL-terminated, `v` a registered voice; the read guard we are called
        // under keeps flite's initialisation (voice registration) out while we render, and flite
        // renders from several threads at once after it (module docs).
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
    let lock = flite()?;
    if lock
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .registered(voice)?
        .is_some()
    {
        return Ok(());
    }
    let mut f = lock.write().unwrap_or_else(|p| p.into_inner());
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
            crate::workers::run(move || render(&text, &voice))
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
    fn a_render_does_not_wait_for_another_render_under_way() {
        probe("slt").expect("flite with slt (install libflite1)");
        // What a render on another worker holds while flite works; with one render at a time
        // (the former mutex) the render below could not start until this guard is dropped.
        let under_way = flite().expect("flite").read().expect("not poisoned");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let text = CString::new("yes I confirm").expect("no NUL");
            let _ = tx.send(render(&text, "slt"));
        });
        // Only a guard against hanging forever, not a speed check.
        let got = rx.recv_timeout(std::time::Duration::from_secs(300));
        drop(under_way);
        let pcm = got
            .expect("the second render ran while the first was under way")
            .expect("renders");
        assert!(pcm.samples.len() > 8000, "{}", pcm.samples.len());
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
