//! The `models` subcommand: parses its arguments, runs [`super::fetch`], [`super::import`],
//! [`super::verify`] or the listing, and prints what happened. Exit codes: 0 done, 1 failed (or
//! `verify` found a file corrupt or missing), 2 bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use super::catalogue::Catalogue;
use super::fetch::{fetch, FetchOptions, Fetched};
use super::import::{default_name, import};
use super::installed;
use super::manifest::{Manifest, Source};
use super::verify::{verify, Status};
use super::{models_dir, ModelsError};
use crate::config::Config;

/// Usage of the subcommand.
pub const USAGE: &str = "\
       sip-assistant models list [--config PATH]
       sip-assistant models fetch NAME [--config PATH]
       sip-assistant models verify [NAME] [--config PATH]
       sip-assistant models import PATH [--name NAME] [--config PATH]";

/// One parsed `models` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelsCommand {
    List,
    Fetch(String),
    Verify(Option<String>),
    Import { path: PathBuf, name: Option<String> },
}

impl ModelsCommand {
    /// Parse the words after `models` (`--config` already taken out).
    pub fn parse(words: &[String]) -> Result<Self, String> {
        let mut it = words.iter().map(String::as_str);
        let cmd = it
            .next()
            .ok_or("models needs a command: list, fetch, verify or import")?;
        let rest: Vec<&str> = it.collect();
        match (cmd, rest.as_slice()) {
            ("list", []) => Ok(Self::List),
            ("fetch", [name]) => Ok(Self::Fetch((*name).into())),
            ("verify", []) => Ok(Self::Verify(None)),
            ("verify", [name]) => Ok(Self::Verify(Some((*name).into()))),
            ("import", [path]) => Ok(Self::Import {
                path: path.into(),
                name: None,
            }),
            ("import", [path, "--name", name]) | ("import", ["--name", name, path]) => Ok(Self::Import {
                path: path.into(),
                name: Some((*name).into()),
            }),
            ("list" | "fetch" | "verify" | "import", _) => Err(format!("wrong arguments for 'models {cmd}'")),
            (other, _) => Err(format!("unknown models command '{other}'")),
        }
    }
}

/// Run `cmd` for `config`; prints to stdout (results) and stderr (errors, progress).
pub fn run(cmd: &ModelsCommand, config: &Config) -> ExitCode {
    match run_inner(cmd, config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sip-assistant models: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_inner(cmd: &ModelsCommand, config: &Config) -> Result<ExitCode, ModelsError> {
    let catalogue = Catalogue::load()?;
    let dir = models_dir(config);
    match cmd {
        ModelsCommand::List => {
            list(config, &catalogue)?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Fetch(name) => {
            let entry = catalogue.get(name).ok_or_else(|| ModelsError::Unknown {
                name: name.clone(),
                known: catalogue.names(),
            })?;
            let opts = FetchOptions::new(&config.speech.models.base_url);
            eprintln!(
                "fetching {} ({:.1} MB) from {}",
                entry.name,
                entry.size as f64 / 1e6,
                opts.base_url
            );
            match smol::block_on(fetch(&dir, entry, &opts))? {
                Fetched::Installed { path, downloaded } => println!(
                    "installed {} at {} ({downloaded} bytes downloaded, SHA-256 {})",
                    entry.name,
                    path.display(),
                    entry.sha256
                ),
                Fetched::AlreadyInstalled { path } => println!(
                    "{} is already installed at {} (SHA-256 checked)",
                    entry.name,
                    path.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify(name) => {
            let reports = verify(&dir, &catalogue, name.as_deref())?;
            if reports.is_empty() {
                println!("no models installed in {}", dir.display());
            }
            let mut bad = false;
            for r in &reports {
                match &r.status {
                    Status::Ok => println!("ok       {} ({})", r.name, r.file),
                    Status::Corrupt { reason } => {
                        bad = true;
                        println!("corrupt  {} ({}): {reason}", r.name, r.file);
                    }
                    Status::Missing => {
                        bad = true;
                        println!("missing  {} ({})", r.name, r.file);
                    }
                }
            }
            Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        ModelsCommand::Import { path, name } => {
            let name = match name {
                Some(n) => n.clone(),
                None => {
                    default_name(path).ok_or_else(|| ModelsError::InvalidName(path.display().to_string()))?
                }
            };
            let (target, entry) = import(&dir, path, &name)?;
            println!(
                "imported {} at {} ({} bytes, SHA-256 {})",
                entry.name,
                target.display(),
                entry.size,
                entry.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(config: &Config, catalogue: &Catalogue) -> Result<(), ModelsError> {
    let dir = models_dir(config);
    let manifest = Manifest::load(&dir)?;
    let found = installed::all(&dir, catalogue)?;
    let chosen = crate::models::stt_choice::choose(config);
    println!("# models directory: {}", dir.display());
    println!("# base URL: {}", config.speech.models.base_url);
    println!(
        "{:<10} {:>9}  {:<13} {:<10} sha256",
        "name", "MB", "language", "installed"
    );
    let state = |name: &str| -> &str {
        let here = found.iter().any(|f| f.name == name);
        match manifest.get(name).map(|i| i.source) {
            _ if !here => "-",
            Some(Source::Imported) => "imported",
            _ => "yes",
        }
    };
    for e in catalogue.entries() {
        println!(
            "{:<10} {:>9.1}  {:<13} {:<10} {}",
            e.name,
            e.size as f64 / 1e6,
            if e.multilingual { "multilingual" } else { "English" },
            state(&e.name),
            manifest
                .get(&e.name)
                .map_or(e.sha256.as_str(), |i| i.sha256.as_str())
        );
    }
    for i in manifest
        .models
        .iter()
        .filter(|i| catalogue.get(&i.name).is_none())
    {
        println!(
            "{:<10} {:>9.1}  {:<13} {:<10} {}",
            i.name,
            i.size as f64 / 1e6,
            "-",
            state(&i.name),
            i.sha256
        );
    }
    match &chosen.model {
        Some(m) => println!(
            "# recognizer: {} with {} ({})",
            chosen.engine,
            m.display(),
            chosen.reason
        ),
        None => println!("# recognizer: {} ({})", chosen.engine, chosen.reason),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(ModelsCommand::parse(&words("list")), Ok(ModelsCommand::List));
        assert_eq!(
            ModelsCommand::parse(&words("fetch tiny.en")),
            Ok(ModelsCommand::Fetch("tiny.en".into()))
        );
        assert_eq!(
            ModelsCommand::parse(&words("verify")),
            Ok(ModelsCommand::Verify(None))
        );
        assert_eq!(
            ModelsCommand::parse(&words("import /x/m.bin --name mine")),
            Ok(ModelsCommand::Import {
                path: "/x/m.bin".into(),
                name: Some("mine".into())
            })
        );
        assert!(ModelsCommand::parse(&words("fetch")).is_err());
        assert!(ModelsCommand::parse(&words("fetch a b")).is_err());
        assert!(ModelsCommand::parse(&words("remove tiny.en")).is_err());
        assert!(ModelsCommand::parse(&[]).is_err());
    }
}
