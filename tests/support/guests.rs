//! The example and test hooks of `wasm-hooks/`, built into components by `wasm-hooks/build.sh`
//! once per test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The folder holding `fuzzy.wasm`, `ordinals.wasm`, `yesno-eu.wasm` and `hostile.wasm`.
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
