//! The example and test hooks of `wasm-hooks/`, built into components by `wasm-hooks/build.sh`
//! once per test binary, and the helpers that put them in a hooks folder and load it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sip_assistant::call::ChoiceOption;
use sip_assistant::choice::{Alternative, MatchSettings};
use sip_assistant::hooks::{HookInput, Hooks, HooksSettings};

/// The folder holding the components `build.sh` makes: `fuzzy`, `ordinals`, `yesno-eu`,
/// `hostile`, `hostile-memories`, `echo` and `wasi-clock` (`.wasm`).
pub fn components() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hook-components");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("wasm-hooks/build.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(status.success(), "{} failed: {status}", script.display());
        out
    })
}

/// Put component `component` into `dir` as `name.wasm`, atomically (the watcher never sees half).
pub fn install(dir: &Path, component: &str, name: &str) {
    let from = components().join(format!("{component}.wasm"));
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::copy(&from, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).expect("rename");
}

/// A hooks folder holding `files` as (component, name).
pub fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (component, name) in files {
        install(dir.path(), component, name);
    }
    dir
}

/// The default limits, no default hook, no polling.
pub fn settings(dir: &Path, cache: Option<&Path>) -> HooksSettings {
    HooksSettings {
        dir: dir.to_path_buf(),
        poll: None,
        default: None,
        timeout: Duration::from_millis(50),
        memory_bytes: 16 << 20,
        fuel: 100_000_000,
        cache_dir: cache.map(Path::to_path_buf),
        builtin: MatchSettings::default(),
    }
}

/// Hooks set up with `settings` and loaded; every file must load.
pub fn loaded(settings: HooksSettings) -> Hooks {
    let hooks = Hooks::new(settings).expect("hooks");
    let report = hooks.reload_blocking();
    assert!(report.failed.is_empty(), "load failures: {:?}", report.failed);
    hooks
}

pub fn opt(value: &str, synonyms: &[&str]) -> ChoiceOption {
    ChoiceOption {
        value: value.into(),
        synonyms: synonyms.iter().map(|s| s.to_string()).collect(),
        dtmf: None,
    }
}

/// One hypothesis `transcript` (confidence 0.8) on the first attempt of call `t-1` to 1001.
pub fn input(transcript: &str, options: Vec<ChoiceOption>) -> HookInput {
    HookInput {
        alternatives: vec![Alternative {
            transcript: transcript.into(),
            confidence: Some(0.8),
        }],
        digits: String::new(),
        options,
        attempt: 1,
        language: None,
        call_id: "t-1".into(),
        extension: "1001".into(),
    }
}
