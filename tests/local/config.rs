//! Configuration: file discovery, environment overrides (namespaced and the original project's
//! names), `*_file` secrets, error messages that name the key and the rule, and the real binary's
//! `check-config`.

use crate::cli::{binary, write};
use std::path::Path;

use sip_assistant::config::{load, ConfigError, ConfigSource, LoadOptions, Transport};

fn opts(path: Option<&Path>, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        explicit_path: path.map(Path::to_path_buf),
        search_paths: Vec::new(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn error_text(r: Result<impl std::fmt::Debug, ConfigError>) -> String {
    r.expect_err("should be rejected").to_string()
}

#[test]
fn defaults_when_no_file_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(None, &[]);
    o.search_paths = vec![
        dir.path().join("absent.toml"),
        dir.path().join("also-absent.toml"),
    ];
    let (c, source) = load(&o).expect("defaults load");
    assert_eq!(source, ConfigSource::Defaults);
    assert_eq!(c.api.listen, "127.0.0.1:8080", "loopback unless configured");
    assert_eq!(c.calls.max_concurrent, 4);
    assert!(c.sip.registrar.is_none());
}

#[test]
fn search_paths_are_tried_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let second = write(dir.path(), "second.toml", "[api]\nlisten = \"127.0.0.1:7002\"\n");
    let mut o = opts(None, &[]);
    o.search_paths = vec![dir.path().join("first.toml"), second.clone()];
    let (c, source) = load(&o).expect("loads");
    assert_eq!(source, ConfigSource::File(second));
    assert_eq!(c.api.listen, "127.0.0.1:7002");
    let first = write(dir.path(), "first.toml", "[api]\nlisten = \"127.0.0.1:7001\"\n");
    let (c, source) = load(&o).expect("loads");
    assert_eq!(source, ConfigSource::File(first));
    assert_eq!(c.api.listen, "127.0.0.1:7001");
}

#[test]
fn an_explicit_path_must_exist() {
    let text = error_text(load(&opts(Some(Path::new("/nonexistent/sip.toml")), &[])));
    assert!(
        text.starts_with("cannot read config file /nonexistent/sip.toml:"),
        "{text}"
    );
}

#[test]
fn env_overrides_the_file_and_namespaced_beats_legacy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "c.toml",
        "[api]\nlisten = \"127.0.0.1:7000\"\n[calls]\nmax_concurrent = 2\n[sip]\nuser = \"filer\"\n",
    );
    let (c, _) = load(&opts(
        Some(&file),
        &[
            ("SIP_ASSISTANT__API__LISTEN", "127.0.0.1:9090"),
            ("SIP_ASSISTANT__CALLS__MAX_CONCURRENT", "8"),
            ("SIP_ASSISTANT__SIP__USER", "1001"),
            ("SIP_USER", "legacy"),
            ("SIP_ASSISTANT__MEDIA__RTP_PORT_MIN", "30000"),
            ("SIP_ASSISTANT__CALLS__DIAL_ALLOW", "sip:*@127.0.0.1:*,1???"),
            ("SIP_ASSISTANT__WEBHOOK__ALLOW_HOSTS", "127.0.0.1, hooks.lan"),
            ("SIP_ASSISTANT__API__ALLOW_UNAUTHENTICATED", "true"),
        ],
    ))
    .expect("loads");
    assert_eq!(
        c.calls.dial_allow.as_ref().map(|l| l.as_slice().to_vec()),
        Some(vec!["sip:*@127.0.0.1:*".to_string(), "1???".to_string()]),
        "a comma-separated list from the environment"
    );
    assert_eq!(c.webhook.allow_hosts.as_slice(), ["127.0.0.1", "hooks.lan"]);
    assert!(c.api.allow_unauthenticated);
    assert_eq!(c.api.listen, "127.0.0.1:9090");
    assert_eq!(c.calls.max_concurrent, 8);
    assert_eq!(
        c.sip.user.as_deref(),
        Some("1001"),
        "a numeric user stays a string"
    );
    assert_eq!(c.media.rtp_port_min, 30000);
}

#[test]
fn the_original_projects_variables_are_accepted() {
    let (c, _) = load(&opts(
        None,
        &[
            ("SIP_USER", "1050"),
            ("SIP_PASSWORD", "pw-legacy"),
            ("SIP_DOMAIN", "pbx.lan"),
            ("SIP_PORT", "5080"),
            ("SIP_TRANSPORT", "TCP"),
        ],
    ))
    .expect("loads");
    assert_eq!(c.sip.user.as_deref(), Some("1050"));
    assert_eq!(c.sip.password.as_ref().map(|s| s.expose()), Some("pw-legacy"));
    assert_eq!(c.sip.domain.as_deref(), Some("pbx.lan"));
    assert_eq!(c.sip.registrar.as_deref(), Some("pbx.lan:5080"));
    assert_eq!(c.sip.transport, Transport::Tcp);

    let (c, _) = load(&opts(
        None,
        &[
            ("SIP_USER", "1050"),
            ("SIP_REGISTRAR", "10.1.1.1:5070"),
            ("SIP_PORT", "5080"),
        ],
    ))
    .expect("loads");
    assert_eq!(
        c.sip.registrar.as_deref(),
        Some("10.1.1.1:5070"),
        "an explicit port wins over SIP_PORT"
    );
}

#[test]
fn secrets_from_files_and_credentials_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).expect("mkdir");
    write(&creds, "sip-password", "from-credential\n");
    let token = write(dir.path(), "token", "abs-token-value-0123\n");
    let file = write(
        dir.path(),
        "c.toml",
        &format!(
            "[sip]\npassword_file = \"sip-password\"\n[api]\ntoken_file = \"{}\"\n",
            token.display()
        ),
    );
    let (c, _) = load(&opts(
        Some(&file),
        &[("CREDENTIALS_DIRECTORY", creds.to_str().expect("utf8"))],
    ))
    .expect("loads");
    assert_eq!(
        c.sip.password.as_ref().map(|s| s.expose()),
        Some("from-credential")
    );
    assert_eq!(
        c.api.token.as_ref().map(|s| s.expose()),
        Some("abs-token-value-0123")
    );

    // The env var route for a secret.
    let (c, _) = load(&opts(
        None,
        &[("SIP_ASSISTANT__WEBHOOK__SECRET", "an-env-secret-long-enough")],
    ))
    .expect("loads");
    assert_eq!(
        c.webhook.secret.as_ref().map(|s| s.expose()),
        Some("an-env-secret-long-enough")
    );
}

#[test]
fn secret_errors_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let both = write(
        dir.path(),
        "both.toml",
        "[sip]\npassword = \"x\"\npassword_file = \"/tmp/x\"\n",
    );
    assert_eq!(
        error_text(load(&opts(Some(&both), &[]))),
        "sip.password: set either sip.password or sip.password_file, not both"
    );
    let missing = write(
        dir.path(),
        "missing.toml",
        "[webhook]\nsecret_file = \"/nonexistent/secret\"\n",
    );
    let text = error_text(load(&opts(Some(&missing), &[])));
    assert!(
        text.starts_with("webhook.secret_file: cannot read /nonexistent/secret:"),
        "{text}"
    );
    let empty_file = write(dir.path(), "empty", "\n");
    let empty = write(
        dir.path(),
        "empty.toml",
        &format!("[api]\ntoken_file = \"{}\"\n", empty_file.display()),
    );
    assert_eq!(
        error_text(load(&opts(Some(&empty), &[]))),
        format!("api.token_file: {} is empty", empty_file.display())
    );
}

#[test]
fn invalid_values_name_the_key_and_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        (
            "[api]\nlisten = \"localhost\"\n",
            "api.listen: must be IP:PORT such as 0.0.0.0:8080 (got 'localhost')",
        ),
        (
            "[calls]\nmax_concurrent = 0\n",
            "calls.max_concurrent: must be between 1 and 1024 (got 0)",
        ),
        (
            "[sip]\nlocal_port = 70000\n",
            "sip.local_port: invalid value: integer `70000`, expected u16",
        ),
        (
            "[sip]\ntransport = \"tls\"\n",
            "sip.transport: unknown variant `tls`, expected `udp` or `tcp`",
        ),
        (
            "[media]\nrtp_port_min = 40001\n",
            "media.rtp_port_min: must be an even port of at least 1024 (got 40001)",
        ),
        (
            "[speech]\ntts = \"sam\"\n",
            "speech.tts: must be one of flite, espeak, piper, wyoming, openai (got 'sam')",
        ),
        (
            "[sip]\nregistrar = \"pbx.lan\"\n",
            "sip.user: is required when sip.registrar is set",
        ),
        (
            "[webhook]\nsecret = \"short\"\n",
            "webhook.secret: must be at least 16 characters long",
        ),
        (
            "[api]\nlisen = \"x\"\n",
            "api.lisen: unknown field `lisen`, expected one of `listen`, `token`, `token_file`, `allow_unauthenticated`, `rate_limit_per_second`, `rate_limit_burst`",
        ),
        (
            "[api]\nlisten = \"0.0.0.0:8080\"\n",
            "api.listen: 0.0.0.0:8080 is reachable from the network, so api.token must be set (or api.allow_unauthenticated = true if the network is trusted)",
        ),
        (
            "[api]\ntoken = \"tok-12345\"\n",
            "api.token: must be at least 16 characters and contain no white space",
        ),
        (
            "[calls]\ndial_allow = \"\"\n",
            "calls.dial_allow: must list at least one pattern (leave it unset for the built-in rule: extensions of 2 to 6 digits)",
        ),
        (
            "[script]\nconfirm_below = 1.5\n",
            "script.confirm_below: must be between 0 and 1 (got 1.5)",
        ),
        (
            "[script]\nconfirm_question = \" \"\n",
            "script.confirm_question: must not be empty while script.confirm is on (say what to ask, with {option} for the option)",
        ),
        (
            "[speech]\ndecode_deadline_ms = 10\n",
            "speech.decode_deadline_ms: must be between 100 and 60000 (got 10)",
        ),
        (
            "[webhook]\nallow_hosts = [\"http://hooks.lan/\"]\n",
            "webhook.allow_hosts: 'http://hooks.lan/' is neither a host name pattern, an IP address nor a CIDR range",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = write(dir.path(), &format!("bad{i}.toml"), text);
        assert_eq!(error_text(load(&opts(Some(&f), &[]))), *want, "{text}");
    }
    let syntax = write(dir.path(), "syntax.toml", "[api\n");
    let text = error_text(load(&opts(Some(&syntax), &[])));
    assert!(
        text.starts_with(&format!("config file {} is not valid TOML:", syntax.display())),
        "{text}"
    );
    // Several broken rules are all reported.
    let many = write(
        dir.path(),
        "many.toml",
        "[calls]\nmax_concurrent = 0\nqueue_limit = 200000\n",
    );
    let text = error_text(load(&opts(Some(&many), &[])));
    assert!(
        text.contains("calls.max_concurrent") && text.contains("calls.queue_limit"),
        "{text}"
    );
}

#[test]
fn env_errors_name_the_variable() {
    assert_eq!(
        error_text(load(&opts(None, &[("SIP_ASSISTANT__CALLS__MAX_CONCURRENT", "lots")]))),
        "environment variable SIP_ASSISTANT__CALLS__MAX_CONCURRENT: calls.max_concurrent must be an integer (got 'lots')"
    );
    assert_eq!(
        error_text(load(&opts(None, &[("SIP_ASSISTANT__API__PORT", "1")]))),
        "environment variable SIP_ASSISTANT__API__PORT: unknown config key api.port"
    );
    assert_eq!(
        error_text(load(&opts(None, &[("SIP_ASSISTANT__SCRIPT__CONFIRM_BELOW", "most")]))),
        "environment variable SIP_ASSISTANT__SCRIPT__CONFIRM_BELOW: script.confirm_below must be a number (got 'most')"
    );
    let (c, _) = load(&opts(
        None,
        &[
            ("SIP_ASSISTANT__SCRIPT__CONFIRM_BELOW", "0.35"),
            ("SIP_ASSISTANT__SCRIPT__CONFIRM", "off"),
        ],
    ))
    .expect("a number from the environment");
    assert_eq!((c.script.confirm_below, c.script.confirm), (0.35, false));
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/config.example.toml");
    let (c, _) = load(&opts(Some(&example), &[])).expect("example config loads");
    let (d, _) = load(&opts(None, &[])).expect("defaults");
    assert_eq!(
        c.to_redacted_toml(),
        d.to_redacted_toml(),
        "the example shows the defaults"
    );
}

#[test]
fn check_config_rejects_invalid_values_with_exit_2() {
    let out = binary()
        .args(["check-config"])
        .env("SIP_ASSISTANT__MEDIA__RTP_PORT_MAX", "1000")
        .env("SIP_ASSISTANT__STORE__RETENTION_DAYS", "0")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("media.rtp_port_max: must be greater than media.rtp_port_min (got 1000 <= 40000)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("store.retention_days: must be between 1 and 3650 (got 0)"),
        "{stderr}"
    );

    let version = binary().arg("--version").output().expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("sip-assistant {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = binary().arg("--frobnicate").output().expect("runs");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn remote_speech_sections_from_file_env_and_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write(dir.path(), "openai-key", "sk-test-123\n");
    let file = write(
        dir.path(),
        "c.toml",
        &format!(
            "[speech]\ntts = \"wyoming\"\nstt = \"openai\"\n[speech.wyoming]\ntts_address = \"127.0.0.1:10200\"\n\
             voice = \"en_US-joe-medium\"\n[speech.openai]\napi_key_file = \"{}\"\n",
            key.display()
        ),
    );
    let env = [
        ("SIP_ASSISTANT__SPEECH__WYOMING__STT_ADDRESS", "127.0.0.1:10333"),
        ("SIP_ASSISTANT__SPEECH__WYOMING__REQUEST_TIMEOUT_MS", "9000"),
        (
            "SIP_ASSISTANT__SPEECH__OPENAI__BASE_URL",
            "http://127.0.0.1:8000/v1",
        ),
    ];
    let (c, _) = load(&opts(Some(&file), &env)).expect("loads");
    let s = &c.speech;
    assert_eq!(s.wyoming.voice.as_deref(), Some("en_US-joe-medium"));
    assert_eq!(s.wyoming.stt_address, "127.0.0.1:10333");
    assert_eq!(s.wyoming.request_timeout_ms, 9000);
    assert_eq!(s.openai.base_url, "http://127.0.0.1:8000/v1");
    assert_eq!(s.openai.api_key.as_ref().map(|k| k.expose()), Some("sk-test-123"));
    assert!(!c.to_redacted_toml().contains("sk-test-123"));

    let text = error_text(load(&opts(
        Some(&file),
        &[("SIP_ASSISTANT__SPEECH__WYOMING__PORT", "1")],
    )));
    assert!(text.contains("unknown config key speech.wyoming.port"), "{text}");
    let bad = write(dir.path(), "bad.toml", "[speech.openai]\nmodel = \"x\"\n");
    let text = error_text(load(&opts(Some(&bad), &[])));
    assert!(
        text.contains("speech.openai") && text.contains("unknown field `model`"),
        "{text}"
    );
}

/// A loopback TCP port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn check_config_and_start_up_name_speech_engines_that_cannot_start() {
    let port = closed_port();
    let out = binary()
        .args(["check-config"])
        .env("SIP_ASSISTANT__SPEECH__STT", "wyoming")
        .env(
            "SIP_ASSISTANT__SPEECH__WYOMING__STT_ADDRESS",
            format!("127.0.0.1:{port}"),
        )
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("wyoming-faster-whisper"),
        "the unreachable server and what to start: {stderr}"
    );

    // An engine that cannot start at all keeps the service from starting, naming what to set.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = binary()
        .args(["run"])
        .env("SIP_ASSISTANT__SPEECH__TTS", "espeak")
        .env("SIP_ASSISTANT__SPEECH__ESPEAK__COMMAND", "/nonexistent/espeak-ng")
        .env("SIP_ASSISTANT__API__LISTEN", "127.0.0.1:0")
        .env("SIP_ASSISTANT__SIP__LOCAL_PORT", "0")
        .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/espeak-ng") && stderr.contains("apt install espeak-ng"),
        "{stderr}"
    );
}

#[test]
fn the_service_refuses_to_serve_the_network_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = binary();
        cmd.args(["run"])
            .env("SIP_ASSISTANT__API__LISTEN", "0.0.0.0:0")
            .env("SIP_ASSISTANT__SIP__LOCAL_PORT", "0")
            .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("runs")
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("api.listen")
            && stderr.contains("api.token")
            && stderr.contains("api.allow_unauthenticated"),
        "names both keys: {stderr}"
    );
    assert!(!dir.path().join("db").exists(), "nothing was started");
    let out = run(&[("SIP_ASSISTANT__API__TOKEN", "too-short")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("api.token: must be at least 16 characters"),
        "{stderr}"
    );
}

#[test]
fn auth_realms_from_a_toml_array_or_a_comma_separated_env_string() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "c.toml",
        "[sip]\nauth_realms = [\"asterisk\", \"pbx.lan\"]\n",
    );
    let (c, _) = load(&opts(Some(&file), &[])).expect("loads");
    assert_eq!(c.sip.auth_realms, vec!["asterisk", "pbx.lan"]);
    let (c, _) = load(&opts(
        Some(&file),
        &[("SIP_ASSISTANT__SIP__AUTH_REALMS", "one, two")],
    ))
    .expect("loads");
    assert_eq!(c.sip.auth_realms, vec!["one", "two"]);
    let (c, _) = load(&opts(None, &[])).expect("loads");
    assert!(
        c.sip.auth_realms.is_empty(),
        "default: the registrar's realm only"
    );
}
