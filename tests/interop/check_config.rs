//! `check-config` on a configuration whose engines start: the effective configuration printed,
//! secrets redacted (the local speech engines must load, so this is in the interop tier; the
//! rejections are in tests/local/config.rs).

use crate::cli::{binary, write};

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "c.toml",
        "[sip]\nuser = \"1001\"\npassword = \"hunter2-password\"\nregistrar = \"127.0.0.1:5060\"\n",
    );
    let out = binary()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("SIP_ASSISTANT__API__TOKEN", "token-value-from-env")
        .env("SIP_ASSISTANT__CALLS__MAX_CONCURRENT", "3")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("# source: {}", file.display())),
        "{stdout}"
    );
    assert!(stdout.contains("max_concurrent = 3"), "{stdout}");
    assert!(stdout.contains("registrar = \"127.0.0.1:5060\""), "{stdout}");
    assert!(
        !stdout.contains("hunter2-password") && !stdout.contains("token-value-from-env"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("\"<redacted>\"").count(), 2, "{stdout}");
    // What it prints is itself a loadable config.
    let body: String = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    toml::from_str::<toml::Table>(&body).expect("printed config is TOML");
}
