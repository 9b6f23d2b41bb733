//! The `sip-assistant` command: `run` (default), `check-config`, `models ...`, `--version`,
//! `--help`.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

use std::path::PathBuf;
use std::process::ExitCode;

use sip_assistant::config::{self, LoadOptions};
use sip_assistant::models::cli::{self as models_cli, ModelsCommand};
use sip_assistant::models::stt_choice;

const USAGE: &str = "\
usage: sip-assistant [run] [--config PATH]
       sip-assistant check-config [--config PATH]
       sip-assistant models list | fetch NAME | verify [NAME] | import PATH [--name NAME]
       sip-assistant --version

Without --config the first of ./sip-assistant.toml and /etc/sip-assistant/config.toml that exists is
read, else built-in defaults are used. SIP_ASSISTANT__<SECTION>__<KEY> variables override any key.";

enum Command {
    Run,
    CheckConfig,
    Models(ModelsCommand),
}

fn parse_args() -> Result<(Command, Option<PathBuf>), String> {
    let mut command = None;
    let mut path = None;
    let mut models_words: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("sip-assistant {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--config" | "-c" => {
                path = Some(PathBuf::from(args.next().ok_or("--config needs a path")?));
            }
            a if a.starts_with("--config=") => path = Some(PathBuf::from(&a["--config=".len()..])),
            "run" if command.is_none() => command = Some(Command::Run),
            "check-config" if command.is_none() => command = Some(Command::CheckConfig),
            "models" if command.is_none() && models_words.is_none() => {
                models_words = Some(Vec::new());
            }
            other => match models_words.as_mut() {
                Some(words) => words.push(other.to_string()),
                None => return Err(format!("unexpected argument '{other}'")),
            },
        }
    }
    if let Some(words) = models_words {
        command = Some(Command::Models(ModelsCommand::parse(&words)?));
    }
    Ok((command.unwrap_or(Command::Run), path))
}

/// glibc gives every thread that allocates its own malloc arena. Speech synthesis, prompt encoding
/// and recognition run on smol's blocking pool, so each concurrent call touched its own arena, and
/// memory freed in one was not reused by the others: 22.9 MB RSS per speaking call with 20 calls,
/// 5.5 MB with two arenas (`.ci/figures`). `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let (command, path) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("sip-assistant: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (config, source) = match config::load(&LoadOptions::from_process(path)) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("sip-assistant: invalid configuration:");
            for line in e.to_string().lines() {
                eprintln!("  {line}");
            }
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Models(cmd) => models_cli::run(&cmd, &config),
        Command::CheckConfig => {
            println!(
                "# sip-assistant {} effective configuration",
                env!("CARGO_PKG_VERSION")
            );
            println!("# source: {source}; secrets are redacted\n");
            print!("{}", config.to_redacted_toml());
            let choice = stt_choice::choose(&config);
            println!("\n# recognizer: {}", choice.engine);
            if let Some(model) = &choice.model {
                println!("# model: {}", model.display());
            }
            println!("# because: {}", choice.reason);
            if let Some(w) = &choice.warning {
                println!("# warning: {w}");
            }
            let mut problems = sip_assistant::speech::engines::probe(&config);
            problems.extend(smol::block_on(sip_assistant::speech::engines::probe_remote(
                &config,
            )));
            if problems.is_empty() {
                return ExitCode::SUCCESS;
            }
            eprintln!("sip-assistant: speech engines cannot start:");
            for p in &problems {
                eprintln!("  {p}");
            }
            ExitCode::from(1)
        }
        Command::Run => {
            sip_assistant::logging::init(&config.log.level);
            tracing::info!(config = %source, "starting sip-assistant {}", env!("CARGO_PKG_VERSION"));
            let choice = stt_choice::choose(&config);
            tracing::info!(
                engine = %choice.engine,
                model = %choice.model.as_deref().map(|m| m.display().to_string()).unwrap_or_default(),
                reason = %choice.reason,
                "speech recognizer"
            );
            if let Some(w) = &choice.warning {
                tracing::warn!("{w}");
            }
            // The configured speech engines must be able to start: refuse to run rather than
            // answer calls that cannot speak or listen.
            let problems = sip_assistant::speech::engines::probe(&config);
            if !problems.is_empty() {
                for p in &problems {
                    tracing::error!(error = %p, "speech engine cannot start");
                    eprintln!("sip-assistant: {p}");
                }
                return ExitCode::from(1);
            }
            // A remote speech server that does not answer yet is a warning: it may come up after
            // this service, and a call that needs it records the failure and still ends.
            for p in smol::block_on(sip_assistant::speech::engines::probe_remote(&config)) {
                tracing::warn!(error = %p, "speech server does not answer (calls will fail that step until it does)");
            }
            match smol::block_on(sip_assistant::app::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "sip-assistant failed");
                    eprintln!("sip-assistant: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
