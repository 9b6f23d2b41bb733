//! The hooks folder: which `NAME.wasm` files are there, and turning one into a prepared hook
//! (from the precompiled cache when possible, else compiled and cached).

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::cache::{sha256_hex, Cache};
use super::guest::{GuestState, Prepared};
use super::is_valid_name;
use crate::call::Timestamp;

/// Components larger than this are refused.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// A hook file as last seen: enough to tell whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub path: PathBuf,
    pub modified: Option<SystemTime>,
    pub len: u64,
}

/// The `*.wasm` files of `dir` with valid names, sorted by name. A missing folder has none.
pub fn scan(dir: &Path) -> std::io::Result<Vec<Seen>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if !is_valid_name(name) {
            tracing::warn!(file = %path.display(), "ignoring hook file: the name must be letters, digits, '-', '_', '.'");
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Seen {
            name: name.to_string(),
            path,
            modified: meta.modified().ok(),
            len: meta.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A hook ready to run.
pub struct Loaded {
    pub hash: String,
    pub loaded_at: Timestamp,
    /// Taken from the precompiled cache rather than compiled.
    pub from_cache: bool,
    /// Time to compile or deserialise, and resolve imports.
    pub load_ms: u64,
    pub prepared: Prepared,
}

/// Why a hook file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path} is larger than {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path} is not a usable component: {detail}")]
    Compile { path: String, detail: String },
    #[error("{path} does not fit the choice-matcher world (sip-assistant:hooks@0.1.0): {detail}")]
    Link { path: String, detail: String },
}

/// Read a hook file.
pub fn read(seen: &Seen) -> Result<Vec<u8>, LoadError> {
    let path = seen.path.display().to_string();
    if seen.len > MAX_COMPONENT_BYTES {
        return Err(LoadError::TooLarge { path });
    }
    let bytes = std::fs::read(&seen.path).map_err(|e| LoadError::Read {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(LoadError::TooLarge { path });
    }
    Ok(bytes)
}

/// Compile (or take from `cache`) and prepare `bytes`.
pub fn load(
    engine: &Engine,
    linker: &Linker<GuestState>,
    cache: &Cache,
    path: &Path,
    bytes: &[u8],
) -> Result<Loaded, LoadError> {
    let started = Instant::now();
    let shown = path.display().to_string();
    let hash = sha256_hex(bytes);
    let (component, from_cache) = match cache.load(engine, &hash) {
        Some(c) => (c, true),
        None => {
            let c = Component::new(engine, bytes).map_err(|e| LoadError::Compile {
                path: shown.clone(),
                detail: chain(&e),
            })?;
            cache.store(&hash, &c);
            (c, false)
        }
    };
    let link = |e: wasmtime::Error| LoadError::Link {
        path: shown.clone(),
        detail: chain(&e),
    };
    let pre = linker.instantiate_pre(&component).map_err(link)?;
    let prepared = Prepared::new(pre).map_err(link)?;
    Ok(Loaded {
        hash,
        loaded_at: Timestamp::now(),
        from_cache,
        load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        prepared,
    })
}

fn chain(err: &wasmtime::Error) -> String {
    err.chain().map(|e| e.to_string()).collect::<Vec<_>>().join(": ")
}
