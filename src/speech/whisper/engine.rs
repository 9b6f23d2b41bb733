//! The whisper.cpp model of one `WhisperRecognizer` (feature `whisper`): loaded once, shared by
//! every call (the context is immutable and thread-safe), with a small pool of decoder states
//! (each holds its own buffers and caches, so one decode uses one state at a time).

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use whisper_rs::whisper_rs_sys;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

use super::clip::{self, ClipSettings};
use super::guard::{self, Decoded};
use super::ENGINE;
use crate::speech::remote::unavailable;
use crate::speech::SpeechError;

/// Idle decoder states kept for reuse.
const POOL_SIZE: usize = 4;

fn engine_error(detail: impl Into<String>) -> SpeechError {
    SpeechError::Engine {
        engine: ENGINE.into(),
        detail: detail.into(),
    }
}

/// The loaded model and its idle states.
pub struct Model {
    ctx: WhisperContext,
    path: PathBuf,
    threads: c_int,
    idle: Mutex<Vec<WhisperState>>,
    /// Read by [`filter_logits`] during each decode (it outlives every decode of this model).
    rules: FilterRules,
}

/// What the logits filter needs to know about the vocabulary.
#[derive(Debug, Default)]
struct FilterRules {
    /// The comma tokens (`,` and ` ,`), never decoded: the prompt lists the answer phrases with
    /// commas, and with a comma allowed the decoder tends to go on with the list after the
    /// caller's words ("call me tomorrow, no"; "cancel, okay"), turning off-topic replies into
    /// answers and answers into ambiguous ones. The matcher needs no commas.
    commas: Vec<whisper_rs::WhisperTokenId>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// What one utterance asks of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// Whisper's language code (`en`, `de`), or `auto` on a multilingual model.
    pub language: &'a str,
    /// Text that conditions the decoder (the answer phrases), if any.
    pub prompt: Option<&'a str>,
}

/// The whisper.cpp version compiled in.
pub fn version() -> &'static str {
    whisper_rs::WHISPER_CPP_VERSION
}

/// Whether whisper.cpp knows `code` as a language.
pub fn knows_language(code: &str) -> bool {
    // get_lang_id panics on NUL; codes reaching here are ASCII letters only.
    !code.contains('\0') && whisper_rs::get_lang_id(code).is_some()
}

impl Model {
    /// Load the model at `path` (its header already checked) for decodes on `threads` threads.
    pub fn load(path: &Path, threads: u32) -> Result<Self, SpeechError> {
        // whisper.cpp logs every load step to stderr; route its log into whisper-rs's hooks, which
        // drop it (the failures that matter come back as errors and are reported by us).
        static QUIET: Once = Once::new();
        QUIET.call_once(whisper_rs::install_logging_hooks);
        let params = WhisperContextParameters {
            use_gpu: false,
            ..WhisperContextParameters::default()
        };
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| {
            unavailable(
                ENGINE,
                format!(
                    "whisper.cpp could not load {} ({e}); check speech.whisper.model",
                    path.display()
                ),
            )
        })?;
        let eot = ctx.token_eot();
        let commas = (0..eot)
            .filter(|&id| ctx.token_to_bytes(id).is_ok_and(|b| b == b"," || b == b" ,"))
            .collect();
        Ok(Self {
            ctx,
            path: path.to_path_buf(),
            threads: c_int::try_from(threads.clamp(1, 64)).unwrap_or(1),
            idle: Mutex::new(Vec::new()),
            rules: FilterRules { commas },
        })
    }

    /// Whether the loaded model knows languages other than English.
    pub fn is_multilingual(&self) -> bool {
        self.ctx.is_multilingual()
    }

    fn take_state(&self) -> Result<WhisperState, SpeechError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(s) => Ok(s),
            None => self
                .ctx
                .create_state()
                .map_err(|e| engine_error(format!("cannot create a decoder state: {e}"))),
        }
    }

    fn give_back(&self, state: WhisperState) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(state);
        }
    }

    /// Create one decoder state now, so the first answer does not pay for it.
    pub fn warm_up(&self) -> Result<(), SpeechError> {
        let s = self.take_state()?;
        self.give_back(s);
        Ok(())
    }

    /// The prompt as tokens, bounded to half the text context as Whisper's decoder takes it;
    /// a prompt that does not tokenize is left out (and logged), not an error.
    fn prompt_tokens(&self, prompt: Option<&str>) -> Vec<whisper_rs::WhisperTokenId> {
        let Some(text) = prompt else { return Vec::new() };
        let max = usize::try_from(self.ctx.n_text_ctx() / 2).unwrap_or(0);
        match self.ctx.tokenize(text, max) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "whisper: the answer phrases do not fit its prompt; decoding without it");
                Vec::new()
            }
        }
    }

    /// Decode one utterance (blocking; run it on `smol::unblock`).
    pub fn decode(&self, pcm16k: &[i16], req: &Request<'_>) -> Result<Decoded, SpeechError> {
        let audio = clip::to_float(pcm16k);
        let model_ctx = usize::try_from(self.ctx.n_audio_ctx()).unwrap_or(clip::MIN_AUDIO_CTX);
        let settings = ClipSettings::for_clip(pcm16k.len(), model_ctx);
        let prompt = self.prompt_tokens(req.prompt);
        let params = self.params(&settings, &prompt, req.language);
        let mut state = self.take_state()?;
        if let Err(e) = state.full(params, &audio) {
            // The state may be half-way through a decode: drop it rather than reuse it.
            return Err(engine_error(format!("decoding failed: {e}")));
        }
        let decoded = collect(&state, self.ctx.token_eot());
        self.give_back(state);
        Ok(decoded)
    }

    /// Greedy, one segment, no timestamps, no context from earlier decodes, no temperature
    /// fallback (one pass: the guards deal with loops), non-speech tokens suppressed.
    fn params<'p>(
        &self,
        settings: &ClipSettings,
        prompt: &'p [whisper_rs::WhisperTokenId],
        language: &'p str,
    ) -> FullParams<'p, 'p> {
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(self.threads);
        p.set_translate(false);
        p.set_no_context(true);
        p.set_single_segment(true);
        p.set_no_timestamps(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_temperature(0.0);
        p.set_temperature_inc(0.0);
        p.set_audio_ctx(c_int::try_from(settings.audio_ctx).unwrap_or(c_int::MAX));
        p.set_max_tokens(c_int::try_from(settings.max_tokens).unwrap_or(c_int::MAX));
        if !prompt.is_empty() {
            p.set_tokens(prompt);
        }
        // whisper.cpp's default is English; setting the language allocates a C string that
        // whisper-rs never frees, so it is only set when it differs.
        if language != "en" {
            p.set_language(Some(language));
        }
        // SAFETY: `filter_logits` reads the token and logit arrays it is handed within the
        // lengths given, and `self.rules` read-only; `self` outlives the decode these parameters
        // are used for (`decode` borrows it throughout).
        unsafe {
            p.set_filter_logits_callback(Some(filter_logits));
            p.set_filter_logits_callback_user_data(std::ptr::from_ref(&self.rules).cast_mut().cast());
        }
        p
    }
}

/// The text, text-token probabilities and no-speech probability of the decode in `state`;
/// tokens from `eot` on are special (end of text, timestamps) and carry no text.
fn collect(state: &WhisperState, eot: whisper_rs::WhisperTokenId) -> Decoded {
    let mut d = Decoded::default();
    for segment in state.as_iter() {
        if let Ok(text) = segment.to_str_lossy() {
            d.text.push_str(&text);
        }
        d.no_speech_prob = d.no_speech_prob.max(segment.no_speech_probability());
        for i in 0..segment.n_tokens() {
            if let Some(token) = segment.get_token(i) {
                if token.token_id() < eot {
                    d.token_probs.push(token.token_probability());
                }
            }
        }
    }
    d
}

/// whisper.cpp's logits filter, run before each decoded token: commas are never decoded (see
/// [`FilterRules`]), and once the text ends in a phrase said twice in a row only end-of-text is
/// left possible, so a loop costs one repeat rather than the whole token budget.
unsafe extern "C" fn filter_logits(
    ctx: *mut whisper_rs_sys::whisper_context,
    _state: *mut whisper_rs_sys::whisper_state,
    tokens: *const whisper_rs_sys::whisper_token_data,
    n_tokens: c_int,
    logits: *mut f32,
    user_data: *mut std::ffi::c_void,
) {
    if ctx.is_null() || logits.is_null() || user_data.is_null() {
        return;
    }
    let n = usize::try_from(n_tokens).unwrap_or(0);
    // SAFETY: whisper.cpp passes the current sequence's `n_tokens` tokens and the `n_vocab`
    // logits of the next step, both valid for the duration of the call; `user_data` is the
    // `FilterRules` of the model being decoded with (see `Model::params`).
    let (ids, logits, eot, rules) = unsafe {
        let ids: Vec<i32> = if tokens.is_null() || n == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(tokens, n)
                .iter()
                .map(|t| t.id)
                .collect()
        };
        let n_vocab = usize::try_from(whisper_rs_sys::whisper_n_vocab(ctx)).unwrap_or(0);
        let logits = std::slice::from_raw_parts_mut(logits, n_vocab);
        let rules = &*(user_data as *const FilterRules);
        (ids, logits, whisper_rs_sys::whisper_token_eot(ctx), rules)
    };
    for &c in &rules.commas {
        if let Some(l) = usize::try_from(c).ok().and_then(|c| logits.get_mut(c)) {
            *l = f32::NEG_INFINITY;
        }
    }
    if guard::ends_in_repeat(&ids) {
        let Ok(eot) = usize::try_from(eot) else { return };
        for (i, l) in logits.iter_mut().enumerate() {
            if i != eot {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}
