//! `manifest.json` in the models directory: what was installed, under which file, with which
//! SHA-256 and size, and whether it came from the catalogue or was imported. `verify` checks files
//! against it; written to a temporary file and renamed, so a crash leaves the old or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalogue::valid_name;
use super::ModelsError;

/// The manifest's file name in the models directory.
pub const FILE: &str = "manifest.json";

/// Where an installed model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Downloaded by `models fetch`, checked against the catalogue's pinned SHA-256.
    Catalogue,
    /// Installed by `models import` from a local file; its SHA-256 is what was read then.
    Imported,
}

/// One installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub source: Source,
}

/// The manifest of one models directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub models: Vec<Installed>,
}

impl Manifest {
    /// The manifest in `dir`; empty when there is none yet.
    pub fn load(dir: &Path) -> Result<Self, ModelsError> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ModelsError::io(&path, e)),
        };
        let m: Self = serde_json::from_str(&text).map_err(|e| ModelsError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // A manifest edited by hand must not point outside the directory.
        if let Some(bad) = m
            .models
            .iter()
            .find(|i| !valid_name(&i.name) || !valid_name(&i.file))
        {
            return Err(ModelsError::Manifest {
                path,
                reason: format!("invalid entry '{}' ({})", bad.name, bad.file),
            });
        }
        Ok(m)
    }

    /// Write the manifest to `dir` (temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), ModelsError> {
        let path = dir.join(FILE);
        let tmp: PathBuf = dir.join(format!("{FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| ModelsError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| ModelsError::io(&path, e))
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Installed> {
        self.models.iter().find(|i| i.name == name)
    }

    /// Record `entry`, replacing any entry of the same name or file.
    pub fn record(&mut self, entry: Installed) {
        self.models
            .retain(|i| i.name != entry.name && i.file != entry.file);
        self.models.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, file: &str) -> Installed {
        Installed {
            name: name.into(),
            file: file.into(),
            size: 3,
            sha256: "00".repeat(32),
            source: Source::Imported,
        }
    }

    #[test]
    fn round_trips_and_replaces_by_name_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(Manifest::load(dir.path()).expect("empty"), Manifest::default());
        let mut m = Manifest::default();
        m.record(entry("a", "ggml-a.bin"));
        m.record(entry("b", "ggml-b.bin"));
        m.record(entry("c", "ggml-a.bin"));
        assert_eq!(
            m.models.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        m.save(dir.path()).expect("save");
        assert_eq!(Manifest::load(dir.path()).expect("load"), m);
    }

    #[test]
    fn entries_pointing_outside_the_directory_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Manifest {
            models: vec![entry("a", "../../etc/passwd")],
        };
        m.save(dir.path()).expect("save");
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(ModelsError::Manifest { .. })
        ));
    }
}
