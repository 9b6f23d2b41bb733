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
use super::score::{self, PhraseScore, PriorCache, Scores, Stepper, Token, Trie};
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
    /// A state holding encoded silence (and the encoder context it was encoded with), for the
    /// scorer's priors; and the priors of phrases already scored.
    silence: Mutex<Option<(usize, WhisperState)>>,
    priors: Mutex<PriorCache>,
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
            silence: Mutex::new(None),
            priors: Mutex::new(PriorCache::default()),
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

    /// Decode one utterance and, when `phrases` (option, text) are given, score each of them and
    /// the free transcript against the audio and against silence ([`score`]). Blocking.
    pub fn recognize(
        &self,
        pcm16k: &[i16],
        req: &Request<'_>,
        phrases: &[(usize, String)],
    ) -> Result<(Decoded, Option<Scores>), SpeechError> {
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
        let (decoded, free) = collect(&state, self.ctx.token_eot());
        if phrases.is_empty() || free.is_empty() {
            self.give_back(state);
            return Ok((decoded, None));
        }
        let prefix = self.prefix(&state);
        // A transcript the decoder repeated ("just a moment. just a moment.") is weighed as said
        // once: the audio holds one copy, and the phrases are put in the place of a word of it.
        let once = super::guard::collapse_repeats(&decoded.text);
        let (text, free) = if once.split_whitespace().count() < decoded.text.split_whitespace().count() {
            let text = format!(" {once}");
            match self.ctx.tokenize(&text, 96) {
                Ok(t) if !t.is_empty() => (text, t),
                _ => (decoded.text.clone(), free),
            }
        } else {
            (decoded.text.clone(), free)
        };
        // A transcript that holds a phrase is the matcher's to judge: only it and its prior are
        // scored (is it speech at all?). Otherwise the phrases closest to it are weighed too.
        let weighed: Vec<usize> = if phrases.iter().any(|(_, p)| score::holds(&text, p)) {
            Vec::new()
        } else {
            score::closest(&text, phrases)
        };
        let written: Vec<(usize, Vec<Token>)> = weighed
            .iter()
            .filter_map(|&i| {
                let tokens = self.ctx.tokenize(&score::written(&phrases[i].1), 64).ok()?;
                (!tokens.is_empty()).then_some((i, tokens))
            })
            .collect();
        // The same phrases in the free transcript's context, where it is longer than them.
        let in_context: Vec<Option<Vec<Token>>> = written
            .iter()
            .map(|(i, _)| {
                let text = score::in_context(&text, &phrases[*i].1)?;
                self.ctx.tokenize(&text, 96).ok().filter(|t| !t.is_empty())
            })
            .collect();
        let mut hyps = vec![free.clone()];
        hyps.extend(written.iter().map(|(_, t)| t.clone()));
        hyps.extend(in_context.iter().flatten().cloned());
        let eot = self.ctx.token_eot();
        let nosp = self.ctx.token_nosp();
        let on_audio =
            Trie::new(&hyps).score(&mut Steps::new(&mut state, self.threads), &prefix, eot, &[nosp]);
        self.give_back(state);
        let (on_audio, first) = on_audio.map_err(|e| engine_error(format!("scoring failed: {e}")))?;
        let priors = self.priors(settings.audio_ctx, &prefix, &free, &written)?;
        let mut ctx_scores = on_audio.iter().skip(1 + written.len());
        let scored = written
            .iter()
            .zip(on_audio.iter().skip(1))
            .zip(&in_context)
            .map(|(((i, tokens), &score), ctx)| PhraseScore {
                phrase: *i,
                option: phrases[*i].0,
                score,
                prior: priors.phrase(tokens),
                in_context: ctx.as_ref().and_then(|_| ctx_scores.next().copied()),
            })
            .collect();
        let scores = Scores {
            free: on_audio[0],
            free_prior: priors.free,
            no_speech: first.first().map_or(0.0, |lp| lp.exp()),
            phrases: scored,
        };
        Ok((decoded, Some(scores)))
    }

    /// The decoder's start: start-of-transcript, the language and task on a multilingual model,
    /// no timestamps.
    fn prefix(&self, state: &WhisperState) -> Vec<Token> {
        let mut p = vec![self.ctx.token_sot()];
        if self.ctx.is_multilingual() {
            p.push(self.ctx.token_lang(state.full_lang_id_from_state().max(0)));
            p.push(self.ctx.token_transcribe());
        }
        p.push(self.ctx.token_not());
        p
    }

    /// The free transcript's and the phrases' log-probabilities on silence encoded with
    /// `audio_ctx` positions; phrases' priors are cached.
    fn priors(
        &self,
        audio_ctx: usize,
        prefix: &[Token],
        free: &[Token],
        written: &[(usize, Vec<Token>)],
    ) -> Result<Priors, SpeechError> {
        let mut known = std::collections::HashMap::new();
        let mut missing: Vec<Vec<Token>> = vec![free.to_vec()];
        {
            let cache = self.priors.lock().unwrap_or_else(|p| p.into_inner());
            for (_, tokens) in written {
                match cache.get(audio_ctx, tokens) {
                    Some(p) => {
                        known.insert(tokens.clone(), p);
                    }
                    None => missing.push(tokens.clone()),
                }
            }
        }
        let mut silence = self.silence.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = !matches!(&*silence, Some((ctx, _)) if *ctx == audio_ctx);
        if fresh {
            let mut state = match silence.take() {
                Some((_, s)) => s,
                None => self
                    .ctx
                    .create_state()
                    .map_err(|e| engine_error(format!("cannot create a decoder state: {e}")))?,
            };
            let settings = ClipSettings {
                audio_ctx,
                max_tokens: 1,
            };
            let zeros = vec![0.0f32; (audio_ctx * 320).max(clip::MIN_SAMPLES)];
            state
                .full(self.params(&settings, &[], "en"), &zeros)
                .map_err(|e| engine_error(format!("encoding silence failed: {e}")))?;
            *silence = Some((audio_ctx, state));
        }
        let Some((_, state)) = silence.as_mut() else {
            return Err(engine_error("no silence state"));
        };
        let (scores, _) = Trie::new(&missing)
            .score(
                &mut Steps::new(state, self.threads),
                prefix,
                self.ctx.token_eot(),
                &[],
            )
            .map_err(|e| engine_error(format!("scoring silence failed: {e}")))?;
        drop(silence);
        let mut cache = self.priors.lock().unwrap_or_else(|p| p.into_inner());
        for (tokens, &p) in missing.iter().zip(&scores).skip(1) {
            cache.put(audio_ctx, tokens.clone(), p);
            known.insert(tokens.clone(), p);
        }
        Ok(Priors {
            free: scores.first().copied().unwrap_or(f32::NEG_INFINITY),
            phrases: known,
        })
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
fn collect(state: &WhisperState, eot: whisper_rs::WhisperTokenId) -> (Decoded, Vec<Token>) {
    let mut d = Decoded::default();
    let mut tokens = Vec::new();
    for segment in state.as_iter() {
        if let Ok(text) = segment.to_str_lossy() {
            d.text.push_str(&text);
        }
        d.no_speech_prob = d.no_speech_prob.max(segment.no_speech_probability());
        for i in 0..segment.n_tokens() {
            if let Some(token) = segment.get_token(i) {
                if token.token_id() < eot {
                    d.token_probs.push(token.token_probability());
                    tokens.push(token.token_id());
                }
            }
        }
    }
    (d, tokens)
}

/// Priors on silence: the free transcript's, and each phrase's by its tokens.
struct Priors {
    free: f32,
    phrases: std::collections::HashMap<Vec<Token>, f32>,
}

impl Priors {
    fn phrase(&self, tokens: &[Token]) -> f32 {
        self.phrases.get(tokens).copied().unwrap_or(f32::NEG_INFINITY)
    }
}

/// The scorer's decoder steps on one state (whose encoder output is already in place).
struct Steps<'s> {
    state: &'s mut WhisperState,
    threads: usize,
}

impl<'s> Steps<'s> {
    fn new(state: &'s mut WhisperState, threads: c_int) -> Self {
        Self {
            state,
            threads: usize::try_from(threads).unwrap_or(1).max(1),
        }
    }
}

impl Stepper for Steps<'_> {
    type Error = whisper_rs::WhisperError;

    fn step(&mut self, token: Token, pos: usize, next: &[Token]) -> Result<Vec<f32>, Self::Error> {
        self.state.decode(&[token], pos, self.threads)?;
        if next.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.state.get_logits()?;
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_z = top + logits.iter().map(|l| (l - top).exp()).sum::<f32>().ln();
        Ok(next
            .iter()
            .map(|&t| {
                usize::try_from(t)
                    .ok()
                    .and_then(|i| logits.get(i))
                    .map_or(f32::NEG_INFINITY, |l| l - log_z)
            })
            .collect())
    }
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
