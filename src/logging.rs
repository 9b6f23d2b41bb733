//! Log set-up: `tracing` to stderr; plain lines without timestamps or colour under journald
//! (which adds its own), detected through `JOURNAL_STREAM`.

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
    let result = if under_journald {
        builder.without_time().with_ansi(false).try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (tests) is fine.
    drop(result);
}
