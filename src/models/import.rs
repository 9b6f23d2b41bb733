//! `sip-assistant models import PATH [--name NAME]`: install a local ggml file (such as tiny.en
//! converted from the CTranslate2 model on PyPI, whose bytes differ from the public file) under
//! `ggml-<NAME>.bin`, recording the SHA-256 read while copying, so `verify` checks it later.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::catalogue::{file_for, valid_name, MAX_MODEL_BYTES};
use super::manifest::{Installed, Manifest, Source};
use super::verify::hex;
use super::ModelsError;
use crate::models::ggml::ModelHeader;

/// The name a file is imported under when none is given: `ggml-tiny.en.bin` -> `tiny.en`.
pub fn default_name(path: &Path) -> Option<String> {
    let stem = path.file_name()?.to_str()?;
    let stem = stem.strip_suffix(".bin").unwrap_or(stem);
    let name = stem.strip_prefix("ggml-").unwrap_or(stem);
    valid_name(name).then(|| name.to_string())
}

/// Copy `source` into `dir` as model `name`; the installed entry.
pub fn import(dir: &Path, source: &Path, name: &str) -> Result<(PathBuf, Installed), ModelsError> {
    if !valid_name(name) {
        return Err(ModelsError::InvalidName(name.into()));
    }
    // A file that is not a ggml Whisper model is refused before it is copied.
    ModelHeader::read(source).map_err(|e| ModelsError::NotAModel {
        path: source.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(|e| ModelsError::io(dir, e))?;
    let file = file_for(name);
    let target = dir.join(&file);
    let part = dir.join(format!("{file}.part"));
    let copy = || -> std::io::Result<(String, u64)> {
        let mut from = std::fs::File::open(source)?;
        let mut to = std::fs::File::create(&part)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > MAX_MODEL_BYTES {
                return Err(std::io::Error::other(format!(
                    "larger than {MAX_MODEL_BYTES} bytes"
                )));
            }
            hasher.update(&buf[..n]);
            to.write_all(&buf[..n])?;
        }
        to.sync_all()?;
        Ok((hex(&hasher.finalize()), size))
    };
    let (sha256, size) = match copy() {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(ModelsError::io(source, e));
        }
    };
    std::fs::rename(&part, &target).map_err(|e| ModelsError::io(&target, e))?;
    let entry = Installed {
        name: name.into(),
        file,
        size,
        sha256,
        source: Source::Imported,
    };
    let mut m = Manifest::load(dir)?;
    m.record(entry.clone());
    m.save(dir)?;
    Ok((target, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_ggml_file_names() {
        assert_eq!(
            default_name(Path::new("/x/ggml-tiny.en.bin")).as_deref(),
            Some("tiny.en")
        );
        assert_eq!(default_name(Path::new("model.bin")).as_deref(), Some("model"));
        assert_eq!(default_name(Path::new("/x/bad name.bin")), None);
    }

    #[test]
    fn a_file_that_is_not_a_model_is_refused_and_nothing_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("notes.bin");
        std::fs::write(&src, b"not a model").expect("write");
        let models = dir.path().join("models");
        assert!(matches!(
            import(&models, &src, "notes"),
            Err(ModelsError::NotAModel { .. })
        ));
        assert!(!models.join("ggml-notes.bin").exists());
        assert!(import(&models, &src, "../x").is_err());
    }
}
