//! Which installed model `speech.stt = "auto"` loads: the one `speech.whisper.model_name` names,
//! else the first installed catalogue model in catalogue order (tiny.en, base.en, tiny, base),
//! else the first imported one. A model counts as installed when its file is in the models
//! directory with the size recorded in the manifest (or, for a catalogue file copied in by hand,
//! the catalogue's size); hashes are checked by `models verify`, not at every start.

use std::path::{Path, PathBuf};

use super::catalogue::Catalogue;
use super::manifest::Manifest;
use super::ModelsError;

/// A model found in the models directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub path: PathBuf,
}

fn has_size(path: &Path, size: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

/// Every installed model in `dir`, in the order `auto` prefers them after `preferred`.
pub fn all(dir: &Path, catalogue: &Catalogue) -> Result<Vec<Found>, ModelsError> {
    let manifest = Manifest::load(dir)?;
    let mut out: Vec<Found> = Vec::new();
    let mut push = |name: &str, path: PathBuf| {
        if !out.iter().any(|f| f.name == name || f.path == path) {
            out.push(Found {
                name: name.into(),
                path,
            });
        }
    };
    for e in catalogue.entries() {
        match manifest.get(&e.name) {
            Some(i) if has_size(&dir.join(&i.file), i.size) => push(&i.name, dir.join(&i.file)),
            Some(_) => {}
            None if has_size(&dir.join(&e.file), e.size) => push(&e.name, dir.join(&e.file)),
            None => {}
        }
    }
    for i in &manifest.models {
        if has_size(&dir.join(&i.file), i.size) {
            push(&i.name, dir.join(&i.file));
        }
    }
    Ok(out)
}

/// The model `auto` loads from `dir`: `preferred` when installed, else the first of [`all`].
pub fn best(dir: &Path, preferred: &str, catalogue: &Catalogue) -> Result<Option<Found>, ModelsError> {
    let mut found = all(dir, catalogue)?;
    if let Some(i) = found.iter().position(|f| f.name == preferred) {
        return Ok(Some(found.swap_remove(i)));
    }
    Ok(found.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::catalogue::CatalogueEntry;
    use crate::models::manifest::{Installed, Source};

    fn catalogue() -> Catalogue {
        let mut c = Catalogue::builtin();
        for (name, size) in [("small-a", 3), ("small-b", 4)] {
            c.add(CatalogueEntry {
                name: name.into(),
                file: format!("ggml-{name}.bin"),
                size,
                sha256: "00".repeat(32),
                multilingual: false,
            })
            .expect("entry");
        }
        c
    }

    #[test]
    fn preferred_then_catalogue_order_then_imported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let c = catalogue();
        assert_eq!(best(d, "tiny.en", &c).expect("empty dir"), None);
        // A file of the wrong size (a partial copy) is not a model.
        std::fs::write(d.join("ggml-small-b.bin"), b"abc").expect("write");
        assert_eq!(best(d, "small-b", &c).expect("best"), None);
        std::fs::write(d.join("ggml-small-b.bin"), b"abcd").expect("write");
        std::fs::write(d.join("ggml-small-a.bin"), b"abc").expect("write");
        let got = best(d, "tiny.en", &c).expect("best").expect("a model");
        assert_eq!(
            got.name, "small-a",
            "catalogue order when the preferred one is absent"
        );
        let got = best(d, "small-b", &c).expect("best").expect("a model");
        assert_eq!(got.name, "small-b");
        assert_eq!(got.path, d.join("ggml-small-b.bin"));

        // An imported model is found through the manifest.
        std::fs::write(d.join("ggml-mine.bin"), b"12345").expect("write");
        let mut m = Manifest::default();
        m.record(Installed {
            name: "mine".into(),
            file: "ggml-mine.bin".into(),
            size: 5,
            sha256: "11".repeat(32),
            source: Source::Imported,
        });
        m.save(d).expect("save");
        let names: Vec<String> = all(d, &c).expect("all").into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["small-a", "small-b", "mine"]);
        assert_eq!(
            best(d, "mine", &c).expect("best").map(|f| f.name).as_deref(),
            Some("mine")
        );
    }
}
