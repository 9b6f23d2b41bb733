//! The service's command line in tests: the built binary with a clean environment, and files to
//! hand it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `sip-assistant` with nothing of the caller's environment but `PATH`.
pub fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-assistant"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

/// `text` written to `dir/name`; its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}
