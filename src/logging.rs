//! Log set-up: `tracing` to stderr; plain lines without timestamps or colour under journald
//! (which adds its own), detected through `JOURNAL_STREAM`; colour only on a terminal (and not
//! with `NO_COLOR`), so logs piped to a file or another program carry no escape codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `RUST_LOG` wins over `level` when set.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let result = if under_journald {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.with_ansi(colour).try_init()
    };
    // A subscriber already installed (tests) is fine.
    drop(result);
}
