//! Which recognizer `speech.stt` means here. `"auto"` (the default) is whisper.cpp when a model is
//! found (`speech.whisper.model`, else an installed model: `crate::models::installed`), else
//! PocketSphinx, the low-memory fallback, with a warning that says how to install a model. Any
//! other value is taken as it is. `check-config` prints the choice and its reason; start-up logs
//! it, and the warning, once.

use std::path::PathBuf;

use super::{self as models, catalogue::Catalogue, installed};
use crate::config::{Config, SpeechConfig};

/// The recognizer chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttChoice {
    /// A concrete `speech.stt` value (never `auto`).
    pub engine: String,
    /// The ggml model whisper.cpp loads, for `whisper`.
    pub model: Option<PathBuf>,
    pub reason: String,
    /// Said once at start-up when `auto` falls back to PocketSphinx.
    pub warning: Option<String>,
}

/// The command that installs the default model.
pub const INSTALL_HINT: &str = "sip-assistant models fetch tiny.en";

/// Choose the recognizer of `config`.
pub fn choose(config: &Config) -> SttChoice {
    let s = &config.speech;
    if s.stt != "auto" {
        return SttChoice {
            engine: s.stt.clone(),
            model: (s.stt == "whisper").then(|| s.whisper.model.clone()).flatten(),
            reason: format!("speech.stt = \"{}\"", s.stt),
            warning: None,
        };
    }
    let fallback = |reason: String, warning: Option<String>| SttChoice {
        engine: "pocketsphinx".into(),
        model: None,
        reason,
        warning,
    };
    if !cfg!(feature = "whisper") {
        return fallback(
            "speech.stt = \"auto\" and this build has no whisper.cpp (built without the `whisper` feature)"
                .into(),
            None,
        );
    }
    if let Some(model) = &s.whisper.model {
        return SttChoice {
            engine: "whisper".into(),
            model: Some(model.clone()),
            reason: "speech.stt = \"auto\" and speech.whisper.model is set".into(),
            warning: None,
        };
    }
    let dir = models::models_dir(config);
    let found = Catalogue::load().and_then(|c| installed::best(&dir, &s.whisper.model_name, &c));
    match found {
        Ok(Some(f)) => {
            let why = if f.name == s.whisper.model_name {
                "the one speech.whisper.model_name names".to_string()
            } else {
                format!(
                    "speech.whisper.model_name '{}' is not installed",
                    s.whisper.model_name
                )
            };
            SttChoice {
                engine: "whisper".into(),
                reason: format!(
                    "speech.stt = \"auto\" and model '{}' is installed in {} ({why})",
                    f.name,
                    dir.display()
                ),
                model: Some(f.path),
                warning: None,
            }
        }
        Ok(None) => fallback(
            format!(
                "speech.stt = \"auto\" and no Whisper model is installed in {}",
                dir.display()
            ),
            Some(format!(
                "no Whisper model is installed in {}: listening with PocketSphinx, the low-memory \
                 fallback, which understands far fewer callers. Install one with `{INSTALL_HINT}` \
                 (or `sip-assistant models import FILE`) and restart",
                dir.display()
            )),
        ),
        Err(e) => fallback(
            format!("speech.stt = \"auto\" and the models directory cannot be read: {e}"),
            Some(format!(
                "the models directory cannot be read ({e}): listening with PocketSphinx, the \
                 low-memory fallback; `sip-assistant models verify` says more"
            )),
        ),
    }
}

/// `config`'s `[speech]` with `stt` made concrete by `choice` (and the model it chose).
pub fn resolve(config: &Config, choice: &SttChoice) -> SpeechConfig {
    let mut s = config.speech.clone();
    s.stt = choice.engine.clone();
    if choice.engine == "whisper" {
        s.whisper.model = choice.model.clone();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &std::path::Path) -> Config {
        let mut c = Config::default();
        c.store.data_dir = dir.to_path_buf();
        c
    }

    #[test]
    fn auto_without_a_model_falls_back_to_pocketsphinx_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config_in(dir.path());
        assert_eq!(c.speech.stt, "auto");
        let choice = choose(&c);
        assert_eq!(choice.engine, "pocketsphinx");
        assert_eq!(choice.model, None);
        if cfg!(feature = "whisper") {
            let w = choice.warning.expect("a warning");
            assert!(w.contains(INSTALL_HINT), "{w}");
        }
        assert_eq!(resolve(&c, &choose(&c)).stt, "pocketsphinx");
    }

    #[test]
    fn auto_with_an_installed_model_chooses_whisper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config_in(dir.path());
        let models = dir.path().join("models");
        std::fs::create_dir_all(&models).expect("mkdir");
        // A catalogue file of the catalogue's size counts as installed (its hash is verify's job).
        let tiny = Catalogue::builtin().get("tiny.en").cloned().expect("tiny.en");
        let f = std::fs::File::create(models.join(&tiny.file)).expect("create");
        f.set_len(tiny.size).expect("size");
        let choice = choose(&c);
        if !cfg!(feature = "whisper") {
            assert_eq!(choice.engine, "pocketsphinx");
            return;
        }
        assert_eq!(choice.engine, "whisper");
        assert_eq!(choice.model.as_deref(), Some(models.join(&tiny.file).as_path()));
        assert_eq!(choice.warning, None);
        assert!(choice.reason.contains("tiny.en"), "{}", choice.reason);
        let s = resolve(&c, &choice);
        assert_eq!(s.stt, "whisper");
        assert_eq!(s.whisper.model, choice.model);

        // A configured model file wins over the models directory.
        c.speech.whisper.model = Some("/elsewhere/ggml-base.en.bin".into());
        assert_eq!(
            choose(&c).model.as_deref(),
            Some(std::path::Path::new("/elsewhere/ggml-base.en.bin"))
        );
    }

    #[test]
    fn explicit_engines_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config_in(dir.path());
        c.speech.stt = "pocketsphinx".into();
        let choice = choose(&c);
        assert_eq!((choice.engine.as_str(), choice.warning), ("pocketsphinx", None));
        c.speech.stt = "whisper".into();
        c.speech.whisper.model = Some("/m.bin".into());
        let choice = choose(&c);
        assert_eq!(choice.engine, "whisper");
        assert_eq!(choice.model.as_deref(), Some(std::path::Path::new("/m.bin")));
    }
}
