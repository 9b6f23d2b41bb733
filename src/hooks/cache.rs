//! The on-disk cache of precompiled hooks: `Component::serialize` output stored as
//! `<content sha256>-<engine compatibility hash>.cwasm`, next to a `.sha256` of the file itself.
//! The compatibility hash covers the wasmtime version and the engine settings, so an upgrade or a
//! setting change compiles afresh; the checksum keeps a damaged file from ever being deserialised.
//! Files are written to a temporary name and renamed into place.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache folder; `None` caches nothing.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl Cache {
    pub fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir,
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    fn paths(&self, content_hash: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = self.dir.as_ref()?;
        let stem = format!("{content_hash}-{}", self.engine_key);
        Some((
            dir.join(format!("{stem}.cwasm")),
            dir.join(format!("{stem}.sha256")),
        ))
    }

    /// The precompiled component for `content_hash`, when cached, intact and compatible.
    pub fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let (cwasm, sum) = self.paths(content_hash)?;
        let bytes = std::fs::read(&cwasm).ok()?;
        let expected = std::fs::read_to_string(&sum).ok()?;
        if expected.trim() != sha256_hex(&bytes) {
            tracing::warn!(file = %cwasm.display(), "precompiled hook does not match its checksum; recompiling");
            return None;
        }
        // SAFETY: the bytes are a `Component::serialize` output this process family wrote into
        // its own cache folder, verified against the checksum written with them; wasmtime checks
        // version and settings compatibility itself and errors on a mismatch.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(file = %cwasm.display(), error = %e, "precompiled hook unusable; recompiling");
                None
            }
        }
    }

    /// Store `component` under `content_hash`; failures are logged, never fatal.
    pub fn store(&self, content_hash: &str, component: &Component) {
        let Some((cwasm, sum)) = self.paths(content_hash) else {
            return;
        };
        let result = (|| -> Result<(), String> {
            let bytes = component.serialize().map_err(|e| e.to_string())?;
            if let Some(dir) = cwasm.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            write_atomically(&cwasm, &bytes)?;
            write_atomically(&sum, sha256_hex(&bytes).as_bytes())
        })();
        if let Err(e) = result {
            tracing::warn!(file = %cwasm.display(), error = %e, "cannot cache the precompiled hook");
        }
    }

    /// Delete cache files of content hashes not in `keep` (old versions of hooks).
    pub fn prune(&self, keep: &[String]) {
        let Some(dir) = &self.dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((hash, rest)) = name.split_once('-') else {
                continue;
            };
            let ours = rest.ends_with(".cwasm") || rest.ends_with(".sha256");
            if ours && hash.len() == 64 && !keep.iter().any(|k| k == hash) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
