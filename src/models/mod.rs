//! Whisper models as a first-class thing: `sip-assistant models list | fetch NAME | verify [NAME] |
//! import PATH [--name NAME]`.
//!
//! Models live in `<store.data_dir>/models/` ([`models_dir`]) with a manifest ([`manifest`]) that
//! records each installed file's name, size and SHA-256. [`fetch`] downloads a named model of the
//! [`catalogue`] from `speech.models.base_url` into a `.part` file, resumes it with HTTP Range
//! requests, and renames it into place only once its SHA-256 is the pinned one. [`import`] installs
//! a local file (a model converted from another format) and records its hash. [`verify`] hashes the
//! installed files again. [`installed`] answers which model `speech.stt = "auto"` would load.
//! This is a shell module (files, HTTP), used by the command line and at start-up.

pub mod catalogue;
pub mod cli;
pub mod fetch;
pub mod ggml;
pub mod import;
pub mod installed;
pub mod manifest;
pub mod progress;
pub mod stt_choice;
pub mod verify;

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Why a models command failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("unknown model '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("catalogue {path}: {reason}")]
    Catalogue { path: PathBuf, reason: String },
    #[error("manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("invalid model name '{0}' (letters, digits, '.', '-', '_')")]
    InvalidName(String),
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{file}: SHA-256 is {got}, expected {want}; the download was deleted and nothing installed")]
    Corrupt { file: String, got: String, want: String },
    #[error("{file}: {reason}; nothing installed")]
    Size { file: String, reason: String },
    #[error("{path}: not a ggml Whisper model ({reason}); nothing installed")]
    NotAModel { path: PathBuf, reason: String },
    #[error("{file}: download incomplete after {attempts} attempts ({have} of {want} bytes kept in {part}; run the same command again to resume)")]
    Incomplete {
        file: String,
        attempts: u32,
        have: u64,
        want: u64,
        part: PathBuf,
    },
}

impl ModelsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where the models of `config` live: `<store.data_dir>/models`.
pub fn models_dir(config: &Config) -> PathBuf {
    config.store.data_dir.join("models")
}
