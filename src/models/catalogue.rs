//! The named ggml Whisper models `sip-assistant models fetch` knows: file name, size and SHA-256
//! pinned here, so a download from any mirror is checked against what whisper.cpp published.
//!
//! The SHA-256 digests are those of the files in the public whisper.cpp model repository
//! (`ggerganov/whisper.cpp` on Hugging Face). Each was checked in two independent sources: as hex
//! in model catalogues of other projects, and as the base64 `sha256-` hashes Nix expressions pin
//! for the same URLs (decoded to the same hex); sizes agree across those sources.
//!
//! [`Catalogue::load`] adds entries from a JSON file named by `SIP_ASSISTANT_MODELS_CATALOGUE`
//! (a list of `{"name", "file", "size", "sha256"}`): for private mirrors of other models and for
//! tests that serve a model of their own. Such an entry may not replace a built-in one.

use std::path::Path;

use serde::Deserialize;

use super::ModelsError;

/// The environment variable naming an extra catalogue file.
pub const EXTRA_CATALOGUE_ENV: &str = "SIP_ASSISTANT_MODELS_CATALOGUE";

/// Largest model the catalogue accepts (bounds every download).
pub const MAX_MODEL_BYTES: u64 = 4 << 30;

/// One named model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    /// The name used on the command line and in `speech.whisper.model_name`.
    pub name: String,
    /// File name under the base URL and in the models directory.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Multilingual (else English only).
    #[serde(default)]
    pub multilingual: bool,
}

struct Builtin {
    name: &'static str,
    file: &'static str,
    size: u64,
    sha256: &'static str,
    multilingual: bool,
}

/// In the order `speech.stt = "auto"` tries installed models after the preferred one.
const BUILTIN: &[Builtin] = &[
    Builtin {
        name: "tiny.en",
        file: "ggml-tiny.en.bin",
        size: 77_704_715,
        sha256: "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
        multilingual: false,
    },
    Builtin {
        name: "base.en",
        file: "ggml-base.en.bin",
        size: 147_964_211,
        sha256: "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
        multilingual: false,
    },
    Builtin {
        name: "tiny",
        file: "ggml-tiny.bin",
        size: 77_691_713,
        sha256: "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21",
        multilingual: true,
    },
    Builtin {
        name: "base",
        file: "ggml-base.bin",
        size: 147_951_465,
        sha256: "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe",
        multilingual: true,
    },
];

/// A model name (the rule hooks and models share).
pub use crate::config::names::is_valid_name as valid_name;

/// A file name in the models directory: a valid name that ends in `.bin`.
fn valid_file(file: &str) -> bool {
    valid_name(file) && file.ends_with(".bin")
}

fn valid_sha256(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// The file name a model named `name` gets when imported.
pub fn file_for(name: &str) -> String {
    format!("ggml-{name}.bin")
}

/// The known models: the built-in ones, then any extra ones.
#[derive(Debug, Clone)]
pub struct Catalogue {
    entries: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// The built-in models only.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN
                .iter()
                .map(|b| CatalogueEntry {
                    name: b.name.into(),
                    file: b.file.into(),
                    size: b.size,
                    sha256: b.sha256.into(),
                    multilingual: b.multilingual,
                })
                .collect(),
        }
    }

    /// The built-in models plus those of `SIP_ASSISTANT_MODELS_CATALOGUE`, when set.
    pub fn load() -> Result<Self, ModelsError> {
        let mut c = Self::builtin();
        if let Some(path) = std::env::var_os(EXTRA_CATALOGUE_ENV) {
            c.add_file(Path::new(&path))?;
        }
        Ok(c)
    }

    /// Add the entries of a JSON catalogue file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), ModelsError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelsError::io(path, e))?;
        let extra: Vec<CatalogueEntry> = serde_json::from_str(&text).map_err(|e| ModelsError::Catalogue {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        for e in extra {
            self.add(e).map_err(|reason| ModelsError::Catalogue {
                path: path.to_path_buf(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Add one entry after checking it; the reason when it is refused.
    pub fn add(&mut self, e: CatalogueEntry) -> Result<(), String> {
        if !valid_name(&e.name) {
            return Err(format!("invalid model name '{}'", e.name));
        }
        if !valid_file(&e.file) {
            return Err(format!("invalid file name '{}' (NAME.bin)", e.file));
        }
        if !valid_sha256(&e.sha256) {
            return Err(format!("sha256 of '{}' is not 64 lower-case hex digits", e.name));
        }
        if e.size == 0 || e.size > MAX_MODEL_BYTES {
            return Err(format!("size of '{}' must be 1..={MAX_MODEL_BYTES}", e.name));
        }
        if self.entries.iter().any(|x| x.name == e.name || x.file == e.file) {
            return Err(format!("'{}' ({}) is already in the catalogue", e.name, e.file));
        }
        self.entries.push(e);
        Ok(())
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&CatalogueEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry whose file is `file`.
    pub fn by_file(&self, file: &str) -> Option<&CatalogueEntry> {
        self.entries.iter().find(|e| e.file == file)
    }

    /// Every entry, built-in ones first.
    pub fn entries(&self) -> &[CatalogueEntry] {
        &self.entries
    }

    /// The names, for messages.
    pub fn names(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `<base_url>/<file>`, with exactly one `/` between them.
pub fn url_for(base_url: &str, file: &str) -> String {
    format!("{}/{file}", base_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_the_required_models_with_pinned_digests() {
        let c = Catalogue::builtin();
        for name in ["tiny.en", "base.en", "tiny", "base"] {
            let e = c.get(name).expect(name);
            assert!(valid_sha256(&e.sha256), "{name}");
            assert!(valid_file(&e.file), "{name}");
            assert_eq!(e.file, file_for(name));
            assert!(e.size > 70_000_000 && e.size < 160_000_000, "{name}");
        }
        assert!(c.entries().iter().any(|e| e.multilingual));
        assert_eq!(
            c.get("tiny.en").map(|e| e.sha256.as_str()),
            Some("921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f")
        );
        assert!(c.get("small").is_none());
        assert_eq!(c.by_file("ggml-base.bin").map(|e| e.name.as_str()), Some("base"));
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        for good in ["tiny.en", "base", "my-model_2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", "ü", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn extra_entries_are_checked_and_cannot_replace_builtin_ones() {
        let mut c = Catalogue::builtin();
        let good = CatalogueEntry {
            name: "test".into(),
            file: "ggml-test.bin".into(),
            size: 10,
            sha256: "ab".repeat(32),
            multilingual: false,
        };
        let mut replace = good.clone();
        replace.name = "tiny.en".into();
        assert!(c.add(replace).is_err());
        let mut bad_hash = good.clone();
        bad_hash.sha256 = "AB".repeat(32);
        assert!(c.add(bad_hash).is_err());
        let mut bad_file = good.clone();
        bad_file.file = "../ggml-test.bin".into();
        assert!(c.add(bad_file).is_err());
        let mut huge = good.clone();
        huge.size = MAX_MODEL_BYTES + 1;
        assert!(c.add(huge).is_err());
        c.add(good.clone()).expect("valid entry");
        assert_eq!(c.get("test"), Some(&good));
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(url_for("http://h/m/", "f.bin"), "http://h/m/f.bin");
        assert_eq!(url_for("http://h/m", "f.bin"), "http://h/m/f.bin");
    }
}
