//! `sip-assistant models verify [NAME]`: hash the installed files again and compare them with the
//! manifest (what was recorded when installed) or, for a catalogue file copied in by hand, with
//! the catalogue's pinned SHA-256.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::catalogue::Catalogue;
use super::manifest::Manifest;
use super::ModelsError;

/// The SHA-256 (lower-case hex) and size of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `verify` found for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The file is there but its hash or size is not the recorded one.
    Corrupt {
        reason: String,
    },
    /// Recorded (or asked for) but not there.
    Missing,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    pub file: String,
    pub status: Status,
}

fn check(dir: &Path, name: &str, file: &str, size: u64, sha256: &str) -> Report {
    let path = dir.join(file);
    let status = match sha256_file(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Status::Missing,
        Err(e) => Status::Corrupt {
            reason: format!("cannot be read: {e}"),
        },
        Ok((_, got)) if got != size => Status::Corrupt {
            reason: format!("{got} bytes, expected {size}"),
        },
        Ok((hash, _)) if hash != sha256 => Status::Corrupt {
            reason: format!("SHA-256 {hash}, expected {sha256}"),
        },
        Ok(_) => Status::Ok,
    };
    Report {
        name: name.into(),
        file: file.into(),
        status,
    }
}

/// Verify every model in the manifest and every catalogue file found in `dir` without a manifest
/// entry; with `only`, just that model (missing when it is not installed).
pub fn verify(dir: &Path, catalogue: &Catalogue, only: Option<&str>) -> Result<Vec<Report>, ModelsError> {
    let manifest = Manifest::load(dir)?;
    let mut out = Vec::new();
    for i in &manifest.models {
        if only.is_none_or(|n| n == i.name) {
            out.push(check(dir, &i.name, &i.file, i.size, &i.sha256));
        }
    }
    for e in catalogue.entries() {
        let recorded = manifest.get(&e.name).is_some() || manifest.models.iter().any(|i| i.file == e.file);
        if recorded || only.is_some_and(|n| n != e.name) {
            continue;
        }
        if only.is_some() || dir.join(&e.file).exists() {
            out.push(check(dir, &e.name, &e.file, e.size, &e.sha256));
        }
    }
    if let Some(name) = only.filter(|n| out.is_empty() && catalogue.get(n).is_none()) {
        return Err(ModelsError::Unknown {
            name: name.into(),
            known: catalogue.names(),
        });
    }
    Ok(out)
}
