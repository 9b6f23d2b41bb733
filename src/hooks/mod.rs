//! WebAssembly choice hooks: user components (WIT world `choice-matcher` in `wasm-hooks/wit/`)
//! that decide which option a caller's answer picks, run under wasmtime with a fresh `Store` per
//! call limited by fuel, an epoch deadline and a memory cap. Anything that goes wrong (trap,
//! timeout, memory, an option index out of range, an over-long reprompt, a missing hook) falls
//! back to the built-in matcher ([`crate::choice`]); [`Decided`] says who decided and why.
//!
//! Driven by the shell: [`Hooks::new`] once (one `Engine`, one epoch-ticker thread), then
//! [`Hooks::reload`] at start and on SIGHUP, and the polling watcher ([`Hooks::spawn_watcher`],
//! every `hooks.poll_ms` unless that is 0);
//! [`Hooks::decide`] per answer, which runs the guest on `smol::unblock`.
//!
//! Hooks live in `hooks.dir` as `NAME.wasm`; `NAME` is what `choice.matcher` and `hooks.default`
//! refer to. Compiled code is cached in `cache_dir` (see [`cache`]) so a restart does not
//! recompile. Note for systemd units: the JIT needs writable+executable memory, so
//! `MemoryDenyWriteExecute=yes` must not be set.

mod cache;
mod engine;
mod guest;
mod library;
mod stats;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

use crate::call::{ChoiceOption, Timestamp};
use crate::choice::{match_answer, Alternative, Answer, Decision, MatchSettings};
use crate::config::HooksConfig;
use engine::EpochTicker;
use guest::{GuestState, Limits, MatchInput, MatchResult, WitAlternative, WitOption};
use library::{Loaded, Seen};
use stats::{Missing, Stats};

pub use guest::GuestFailure;
pub use stats::{MAX_MISSING_NAMES, OTHER_MISSING};

/// The name that always means the built-in matcher.
pub const BUILT_IN: &str = "built-in";
/// Longest reprompt text a hook may return.
pub const MAX_REPROMPT_CHARS: usize = 1000;

/// Whether `name` can name a hook (the rule hooks and models share).
pub use crate::config::names::is_valid_name;

/// How hooks are found, limited and cached.
#[derive(Debug, Clone)]
pub struct HooksSettings {
    pub dir: PathBuf,
    /// How often the watcher looks at the folder; `None`: never (SIGHUP and [`Hooks::reload`]).
    pub poll: Option<Duration>,
    pub default: Option<String>,
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub fuel: u64,
    /// Where precompiled hooks are kept; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// The fallback's settings.
    pub builtin: MatchSettings,
}

impl HooksSettings {
    pub fn from_config(c: &HooksConfig, cache_dir: Option<PathBuf>) -> Self {
        Self {
            dir: c.dir.clone(),
            poll: (c.poll_ms > 0).then(|| Duration::from_millis(c.poll_ms)),
            default: c.default.clone(),
            timeout: Duration::from_millis(c.timeout_ms),
            memory_bytes: usize::try_from(c.memory_bytes).unwrap_or(usize::MAX),
            fuel: c.fuel,
            cache_dir,
            builtin: MatchSettings::default(),
        }
    }
}

/// Everything a hook is told about one answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookInput {
    /// Best first; the first one's transcript is the hook's `transcript`.
    pub alternatives: Vec<Alternative>,
    pub digits: String,
    pub options: Vec<ChoiceOption>,
    /// 1 for the first ask.
    pub attempt: u32,
    pub language: Option<String>,
    pub call_id: String,
    pub extension: String,
}

impl HookInput {
    fn answer(&self) -> Answer {
        Answer {
            alternatives: self.alternatives.clone(),
            digits: self.digits.clone(),
            attempt: self.attempt,
        }
    }

    fn to_wit(&self) -> MatchInput {
        MatchInput {
            transcript: self
                .alternatives
                .first()
                .map(|a| a.transcript.clone())
                .unwrap_or_default(),
            alternatives: self
                .alternatives
                .iter()
                .map(|a| WitAlternative {
                    transcript: a.transcript.clone(),
                    confidence: a.confidence,
                })
                .collect(),
            digits: self.digits.clone(),
            options: self
                .options
                .iter()
                .map(|o| WitOption {
                    value: o.value.clone(),
                    synonyms: o.synonyms.clone(),
                    dtmf: o.dtmf,
                })
                .collect(),
            attempt: self.attempt,
            language: self.language.clone(),
            call_id: self.call_id.clone(),
            extension: self.extension.clone(),
        }
    }
}

/// What a hook (or the built-in matcher standing in for it) returned for one answer; [`Decided::into_verdict`] turns it into the [`crate::choice::Verdict`] the call acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Index into the options.
    Matched(usize),
    NoMatch,
    /// Ask again, speaking this instead of the prompt.
    Reprompt(String),
}

/// A verdict, who reached it, and why a hook was bypassed if it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub verdict: HookVerdict,
    /// The hook's name, or [`BUILT_IN`].
    pub by: String,
    /// Set when the chosen hook failed and the built-in matcher decided instead.
    pub fallback: Option<String>,
    /// One line for the timeline.
    pub detail: String,
}

impl Decided {
    /// The verdict the call acts on; its detail names who decided and, on a fallback, why the hook
    /// was bypassed.
    pub fn into_verdict(self) -> crate::choice::Verdict {
        use crate::choice::Verdict;
        let who = if self.by == BUILT_IN {
            "built-in matcher".to_string()
        } else {
            format!("hook '{}'", self.by)
        };
        let detail = match &self.fallback {
            Some(reason) => format!("{reason}; fallback to the {who}: {}", self.detail),
            None if self.by == BUILT_IN => format!("{who}: {}", self.detail),
            None => self.detail.clone(),
        };
        match self.verdict {
            HookVerdict::Matched(option) => Verdict::Matched { option, detail },
            HookVerdict::NoMatch => Verdict::NoMatch { why: detail },
            HookVerdict::Reprompt(text) => Verdict::Reprompt { text, detail },
        }
    }
}

/// What `GET /hooks` shows of one hook file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookInfo {
    pub name: String,
    /// Whether a version of it can run (the last good one stays loaded if a new one fails).
    pub loaded: bool,
    /// SHA-256 of the loaded component.
    pub hash: Option<String>,
    pub loaded_at: Option<Timestamp>,
    pub from_cache: bool,
    pub load_ms: Option<u64>,
    pub last_error: Option<String>,
    pub calls: u64,
    pub failures: u64,
}

/// Why the hook machinery could not start.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
}

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub removed: Vec<String>,
    pub failed: Vec<(String, String)>,
    /// `hooks.default` when it names no loaded hook after the reload.
    pub default_missing: Option<String>,
}

/// When a reload warns that `hooks.default` names no loaded hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Warn {
    /// Every time (start-up, SIGHUP: someone asked).
    Always,
    /// Only when it was fine before (the polling watcher).
    OnChange,
}

struct Entry {
    seen: Seen,
    loaded: Option<Arc<Loaded>>,
    stats: Arc<Stats>,
}

struct Inner {
    engine: wasmtime::Engine,
    linker: wasmtime::component::Linker<GuestState>,
    cache: cache::Cache,
    settings: HooksSettings,
    entries: RwLock<BTreeMap<String, Entry>>,
    missing: Missing,
    /// Whether the last reload found `hooks.default` not loaded.
    default_missing: AtomicBool,
    reloading: Mutex<()>,
    _ticker: EpochTicker,
}

/// The loaded hooks; cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    inner: Arc<Inner>,
}

impl Hooks {
    /// Set up the engine and the epoch ticker; loads nothing yet (see [`Hooks::reload`]).
    pub fn new(settings: HooksSettings) -> Result<Self, HooksError> {
        let engine = engine::new_engine().map_err(|e| HooksError::Engine(e.to_string()))?;
        let linker = guest::linker(&engine).map_err(|e| HooksError::Engine(e.to_string()))?;
        let ticker = EpochTicker::start(engine.clone()).map_err(HooksError::Ticker)?;
        let cache = cache::Cache::new(settings.cache_dir.clone(), &engine);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                settings,
                entries: RwLock::new(BTreeMap::new()),
                missing: Missing::default(),
                default_missing: AtomicBool::new(false),
                reloading: Mutex::new(()),
                _ticker: ticker,
            }),
        })
    }

    pub fn settings(&self) -> &HooksSettings {
        &self.inner.settings
    }

    /// Whether the precompiled cache folder passed its ownership and mode checks and is used.
    pub fn cache_in_use(&self) -> bool {
        self.inner.cache.enabled()
    }

    /// Look at the folder again and (re)load what changed; warn when `hooks.default` names no
    /// loaded hook. Blocking (compiles): prefer [`Hooks::reload`] on the executor.
    pub fn reload_blocking(&self) -> ReloadReport {
        self.rescan(Warn::Always)
    }

    fn rescan(&self, warn: Warn) -> ReloadReport {
        let inner = &self.inner;
        let _one_at_a_time = inner.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = ReloadReport::default();
        let files = match library::scan(&inner.settings.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %inner.settings.dir.display(), error = %e, "cannot read the hooks folder");
                return report;
            }
        };
        let known: BTreeMap<String, (Seen, Option<String>)> = self
            .read_entries()
            .iter()
            .map(|(n, e)| {
                (
                    n.clone(),
                    (e.seen.clone(), e.loaded.as_ref().map(|l| l.hash.clone())),
                )
            })
            .collect();
        let mut updates: Vec<(Seen, Option<Result<Loaded, String>>)> = Vec::new();
        for seen in &files {
            let previous = known.get(&seen.name);
            if previous.is_some_and(|(s, _)| s == seen) {
                continue;
            }
            let outcome = match library::read(seen) {
                Err(e) => Some(Err(e.to_string())),
                Ok(bytes) => {
                    let unchanged = previous
                        .and_then(|(_, h)| h.as_deref())
                        .is_some_and(|h| h == cache::sha256_hex(&bytes));
                    if unchanged {
                        None
                    } else {
                        Some(
                            library::load(&inner.engine, &inner.linker, &inner.cache, &seen.path, &bytes)
                                .map_err(|e| e.to_string()),
                        )
                    }
                }
            };
            updates.push((seen.clone(), outcome));
        }
        let mut entries = inner.entries.write().unwrap_or_else(|p| p.into_inner());
        for (seen, outcome) in updates {
            let name = seen.name.clone();
            let entry = entries.entry(name.clone()).or_insert_with(|| Entry {
                seen: seen.clone(),
                loaded: None,
                stats: Arc::new(Stats::default()),
            });
            entry.seen = seen;
            match outcome {
                None => {}
                Some(Ok(loaded)) => {
                    tracing::info!(
                        hook = %name,
                        hash = %loaded.hash,
                        from_cache = loaded.from_cache,
                        load_ms = loaded.load_ms,
                        "hook loaded"
                    );
                    entry.loaded = Some(Arc::new(loaded));
                    report.loaded.push(name);
                }
                Some(Err(e)) => {
                    tracing::warn!(hook = %name, error = %e, keeps_previous = entry.loaded.is_some(), "hook failed to load");
                    entry.stats.set_error(e.clone());
                    report.failed.push((name, e));
                }
            }
        }
        let gone: Vec<String> = entries
            .keys()
            .filter(|n| !files.iter().any(|f| &f.name == *n))
            .cloned()
            .collect();
        for name in gone {
            entries.remove(&name);
            tracing::info!(hook = %name, "hook removed");
            report.removed.push(name);
        }
        let keep: Vec<String> = entries
            .values()
            .filter_map(|e| e.loaded.as_ref().map(|l| l.hash.clone()))
            .collect();
        report.default_missing = inner
            .settings
            .default
            .as_ref()
            .filter(|d| d.as_str() != BUILT_IN && entries.get(*d).is_none_or(|e| e.loaded.is_none()))
            .cloned();
        drop(entries);
        inner.cache.prune(&keep);
        let was_missing = inner
            .default_missing
            .swap(report.default_missing.is_some(), Ordering::Relaxed);
        match &report.default_missing {
            Some(name) if warn == Warn::Always || !was_missing => tracing::warn!(
                default = %name,
                dir = %inner.settings.dir.display(),
                "hooks.default names no loaded hook: the built-in matcher decides for requests that name none"
            ),
            None if was_missing => {
                tracing::info!(default = ?inner.settings.default, "hooks.default is loaded now");
            }
            _ => {}
        }
        report
    }

    /// [`Hooks::reload_blocking`] on the blocking pool.
    pub async fn reload(&self) -> ReloadReport {
        let hooks = self.clone();
        smol::unblock(move || hooks.reload_blocking()).await
    }

    /// A reload by the polling watcher: warns about `hooks.default` only when that changes.
    async fn poll(&self) -> ReloadReport {
        let hooks = self.clone();
        smol::unblock(move || hooks.rescan(Warn::OnChange)).await
    }

    fn read_entries(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.inner.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Names of the hooks that can run, sorted.
    pub fn loaded_names(&self) -> Vec<String> {
        self.read_entries()
            .iter()
            .filter(|(_, e)| e.loaded.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether a request may name `matcher` (`None` and [`BUILT_IN`] always may); the error is
    /// the API's 400 detail.
    pub fn check_matcher(&self, matcher: Option<&str>) -> Result<(), String> {
        match matcher {
            None | Some(BUILT_IN) => Ok(()),
            Some(name) => {
                let loaded = self.loaded_names();
                if loaded.iter().any(|n| n == name) {
                    return Ok(());
                }
                let list = if loaded.is_empty() {
                    "none".to_string()
                } else {
                    loaded.join(", ")
                };
                Err(format!(
                    "choice.matcher '{name}' is not a loaded hook (loaded: {list}; '{BUILT_IN}' is the built-in matcher)"
                ))
            }
        }
    }

    /// Whether `name` is a hook file in the folder (loaded or not) or [`BUILT_IN`].
    pub fn knows(&self, name: &str) -> bool {
        name == BUILT_IN || self.read_entries().contains_key(name)
    }

    /// The state of every hook file.
    pub fn infos(&self) -> Vec<HookInfo> {
        self.read_entries()
            .iter()
            .map(|(name, e)| HookInfo {
                name: name.clone(),
                loaded: e.loaded.is_some(),
                hash: e.loaded.as_ref().map(|l| l.hash.clone()),
                loaded_at: e.loaded.as_ref().map(|l| l.loaded_at),
                from_cache: e.loaded.as_ref().is_some_and(|l| l.from_cache),
                load_ms: e.loaded.as_ref().map(|l| l.load_ms),
                last_error: e.stats.last_error(),
                calls: e.stats.calls.load(Ordering::Relaxed),
                failures: e.stats.failures.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Calls per hook name that was not loaded when they came (the built-in matcher decided).
    pub fn missing(&self) -> BTreeMap<String, u64> {
        self.inner.missing.snapshot()
    }

    /// Decide about one answer: the hook `matcher` names (else `hooks.default`, else the
    /// built-in matcher); on any hook failure the built-in matcher, with the reason.
    pub async fn decide(&self, matcher: Option<&str>, input: &HookInput) -> Decided {
        let name = matcher.or(self.inner.settings.default.as_deref());
        let Some(name) = name.filter(|n| *n != BUILT_IN) else {
            return self.builtin(input, None);
        };
        let found = self
            .read_entries()
            .get(name)
            .map(|e| (e.loaded.clone(), e.stats.clone()));
        let (loaded, stats) = match found {
            None => {
                self.inner.missing.count(name);
                tracing::warn!(hook = %name, call_id = %input.call_id, "hook is not loaded; the built-in matcher decides");
                return self.builtin(input, Some(format!("hook '{name}' is not loaded")));
            }
            Some((None, stats)) => {
                stats.count_call();
                stats.count_failure();
                let reason = format!("hook '{name}' failed to load");
                return self.builtin(input, Some(reason));
            }
            Some((Some(loaded), stats)) => (loaded, stats),
        };
        stats.count_call();
        let engine = self.inner.engine.clone();
        let limits = Limits {
            fuel: self.inner.settings.fuel,
            timeout: self.inner.settings.timeout,
            memory_bytes: self.inner.settings.memory_bytes,
        };
        let wit = input.to_wit();
        let hook = name.to_string();
        let outcome =
            smol::unblock(move || guest::call(&engine, &hook, &loaded.prepared, &wit, limits)).await;
        match outcome
            .map_err(|f| f.to_string())
            .and_then(|r| check(r, input.options.len()))
        {
            Ok(verdict) => {
                let detail = match &verdict {
                    HookVerdict::Matched(i) => format!("hook '{name}': option {}", i + 1),
                    HookVerdict::NoMatch => format!("hook '{name}': no match"),
                    HookVerdict::Reprompt(_) => format!("hook '{name}': reprompt"),
                };
                Decided {
                    verdict,
                    by: name.to_string(),
                    fallback: None,
                    detail,
                }
            }
            Err(problem) => {
                let reason = format!("hook '{name}' {problem}");
                stats.count_failure();
                stats.set_error(reason.clone());
                tracing::warn!(hook = %name, call_id = %input.call_id, reason = %reason, "hook failed; the built-in matcher decides");
                self.builtin(input, Some(reason))
            }
        }
    }

    /// Time `n` bare instantiations of hook `name` (fresh store each, no call): for benchmarks.
    pub fn time_instantiation(&self, name: &str, n: u32) -> Option<Duration> {
        let loaded = self.read_entries().get(name)?.loaded.clone()?;
        let limits = Limits {
            fuel: self.inner.settings.fuel,
            timeout: self.inner.settings.timeout,
            memory_bytes: self.inner.settings.memory_bytes,
        };
        let started = std::time::Instant::now();
        for _ in 0..n {
            guest::instantiate_only(&self.inner.engine, name, &loaded.prepared, limits).ok()?;
        }
        Some(started.elapsed())
    }

    fn builtin(&self, input: &HookInput, fallback: Option<String>) -> Decided {
        let decision = match_answer(&input.answer(), &input.options, &self.inner.settings.builtin);
        let verdict = match &decision {
            Decision::Matched { option, .. } => HookVerdict::Matched(*option),
            Decision::NoMatch { .. } => HookVerdict::NoMatch,
        };
        Decided {
            verdict,
            by: BUILT_IN.to_string(),
            fallback,
            detail: decision.to_string(),
        }
    }
}

/// A hook's answer, if usable for `options` options.
fn check(result: MatchResult, options: usize) -> Result<HookVerdict, String> {
    match result {
        MatchResult::Matched(i) => {
            let i = usize::try_from(i).unwrap_or(usize::MAX);
            if i < options {
                Ok(HookVerdict::Matched(i))
            } else {
                Err(format!(
                    "answered option index {i}, but there are {options} options"
                ))
            }
        }
        MatchResult::NoMatch => Ok(HookVerdict::NoMatch),
        MatchResult::Reprompt(text) => {
            let n = text.chars().count();
            if n > MAX_REPROMPT_CHARS {
                Err(format!(
                    "returned a reprompt of {n} characters (at most {MAX_REPROMPT_CHARS})"
                ))
            } else if text.trim().is_empty() {
                Err("returned an empty reprompt".to_string())
            } else {
                Ok(HookVerdict::Reprompt(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("fuzzy"));
        assert!(is_valid_name("yes-no_eu.v2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(".hidden"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(&"x".repeat(65)));
    }

    #[test]
    fn hook_answers_are_checked() {
        assert_eq!(check(MatchResult::Matched(1), 2), Ok(HookVerdict::Matched(1)));
        assert!(check(MatchResult::Matched(2), 2).is_err());
        assert!(check(MatchResult::Matched(u32::MAX), 2).is_err());
        assert_eq!(check(MatchResult::NoMatch, 2), Ok(HookVerdict::NoMatch));
        assert!(check(MatchResult::Reprompt("x".repeat(1001)), 2).is_err());
        assert!(check(MatchResult::Reprompt("  ".into()), 2).is_err());
        assert_eq!(
            check(MatchResult::Reprompt("Say yes or no.".into()), 2),
            Ok(HookVerdict::Reprompt("Say yes or no.".into()))
        );
    }
}

#[cfg(test)]
mod decided_tests {
    use super::*;
    use crate::choice::Verdict;

    fn decided(verdict: HookVerdict, by: &str, fallback: Option<&str>, detail: &str) -> Decided {
        Decided {
            verdict,
            by: by.into(),
            fallback: fallback.map(Into::into),
            detail: detail.into(),
        }
    }

    #[test]
    fn verdicts_say_who_decided_and_why_a_hook_was_bypassed() {
        assert_eq!(
            decided(HookVerdict::Matched(1), "fuzzy", None, "hook 'fuzzy': option 2").into_verdict(),
            Verdict::Matched {
                option: 1,
                detail: "hook 'fuzzy': option 2".into()
            }
        );
        assert_eq!(
            decided(
                HookVerdict::Matched(0),
                BUILT_IN,
                Some("hook 'hostile' ran out of fuel"),
                "option 1: heard 'yes'"
            )
            .into_verdict(),
            Verdict::Matched {
                option: 0,
                detail:
                    "hook 'hostile' ran out of fuel; fallback to the built-in matcher: option 1: heard 'yes'"
                        .into()
            }
        );
        assert_eq!(
            decided(HookVerdict::NoMatch, BUILT_IN, None, "no match: nothing").into_verdict(),
            Verdict::NoMatch {
                why: "built-in matcher: no match: nothing".into()
            }
        );
        assert_eq!(
            decided(
                HookVerdict::Reprompt("Say yes or no.".into()),
                "yesno",
                None,
                "hook 'yesno': reprompt"
            )
            .into_verdict(),
            Verdict::Reprompt {
                text: "Say yes or no.".into(),
                detail: "hook 'yesno': reprompt".into()
            }
        );
    }
}
