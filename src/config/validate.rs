//! The rules every configuration value must meet; each broken rule names its key.

use std::net::SocketAddr;

use super::{Config, Problem, MIN_TOKEN_CHARS};

/// TTS engines the service knows by name.
pub const TTS_ENGINES: &[&str] = &["flite", "espeak", "piper", "wyoming", "openai"];
/// STT engines the service knows by name.
pub const STT_ENGINES: &[&str] = &["auto", "pocketsphinx", "whisper", "wyoming", "openai"];

struct Checker(Vec<Problem>);

impl Checker {
    fn fail(&mut self, key: &str, rule: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            rule: rule.into(),
        });
    }

    fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.fail(key, format!("must be between {min} and {max} (got {value})"));
        }
    }
}

/// All problems of `c`; empty when valid.
pub fn check(c: &Config) -> Vec<Problem> {
    let mut k = Checker(Vec::new());

    if c.api.listen.parse::<SocketAddr>().is_err() {
        k.fail(
            "api.listen",
            format!("must be IP:PORT such as 0.0.0.0:8080 (got '{}')", c.api.listen),
        );
    }
    if let Some(token) = &c.api.token {
        let t = token.expose();
        if t.chars().count() < MIN_TOKEN_CHARS || t.chars().any(char::is_whitespace) {
            k.fail(
                "api.token",
                format!("must be at least {MIN_TOKEN_CHARS} characters and contain no white space"),
            );
        }
    } else if let Ok(addr) = c.api.listen.parse::<SocketAddr>() {
        if !addr.ip().is_loopback() && !c.api.allow_unauthenticated {
            k.fail(
                "api.listen",
                format!(
                    "{addr} is reachable from the network, so api.token must be set (or api.allow_unauthenticated = true if the network is trusted)"
                ),
            );
        }
    }
    k.range(
        "api.rate_limit_per_second",
        c.api.rate_limit_per_second.into(),
        0,
        100_000,
    );
    k.range("api.rate_limit_burst", c.api.rate_limit_burst.into(), 1, 100_000);
    if c.calls.dial_allow.as_ref().is_some_and(|l| l.0.is_empty()) {
        k.fail(
            "calls.dial_allow",
            "must list at least one pattern (leave it unset for the built-in rule: extensions of 2 to 6 digits)",
        );
    }
    if let Err(e) = crate::policy::HostPolicy::new(c.webhook.allow_hosts.as_slice()) {
        k.fail("webhook.allow_hosts", e.to_string());
    }

    check_sip(c, &mut k);

    let (lo, hi) = (c.media.rtp_port_min, c.media.rtp_port_max);
    if lo < 1024 || lo % 2 != 0 {
        k.fail(
            "media.rtp_port_min",
            format!("must be an even port of at least 1024 (got {lo})"),
        );
    }
    if hi <= lo {
        k.fail(
            "media.rtp_port_max",
            format!("must be greater than media.rtp_port_min (got {hi} <= {lo})"),
        );
    } else {
        let pairs = (u32::from(hi) - u32::from(lo)).div_ceil(2);
        if pairs < c.calls.max_concurrent {
            k.fail(
                "media.rtp_port_max",
                format!(
                    "the RTP range holds {pairs} RTP/RTCP port pairs, fewer than calls.max_concurrent ({})",
                    c.calls.max_concurrent
                ),
            );
        }
    }

    if let Err(rule) = c.media.codec_list() {
        k.fail("media.codecs", rule);
    }
    if c.store.data_dir.as_os_str().is_empty() {
        k.fail("store.data_dir", "must not be empty");
    }
    k.range("store.retention_days", c.store.retention_days.into(), 1, 3650);
    k.range("calls.max_concurrent", c.calls.max_concurrent.into(), 1, 1024);
    k.range("calls.queue_limit", c.calls.queue_limit.into(), 0, 100_000);
    k.range(
        "calls.shutdown_grace_seconds",
        c.calls.shutdown_grace_seconds.into(),
        0,
        3600,
    );
    k.range(
        "calls.queue_max_age_seconds",
        c.calls.queue_max_age_seconds.into(),
        0,
        7 * 86_400,
    );

    let w = &c.webhook;
    k.range("webhook.max_retry_seconds", w.max_retry_seconds, 0, 7 * 86_400);
    k.range("webhook.initial_backoff_ms", w.initial_backoff_ms, 10, 3_600_000);
    if w.max_backoff_seconds.saturating_mul(1000) < w.initial_backoff_ms {
        k.fail(
            "webhook.max_backoff_seconds",
            "must not be shorter than webhook.initial_backoff_ms",
        );
    }
    k.range("webhook.connect_timeout_ms", w.connect_timeout_ms, 100, 60_000);
    k.range("webhook.request_timeout_ms", w.request_timeout_ms, 100, 300_000);
    if let Some(secret) = &w.secret {
        if secret.expose().len() < 16 {
            k.fail("webhook.secret", "must be at least 16 characters long");
        }
    }

    if !TTS_ENGINES.contains(&c.speech.tts.as_str()) {
        k.fail(
            "speech.tts",
            format!(
                "must be one of {} (got '{}')",
                TTS_ENGINES.join(", "),
                c.speech.tts
            ),
        );
    }
    if !STT_ENGINES.contains(&c.speech.stt.as_str()) {
        k.fail(
            "speech.stt",
            format!(
                "must be one of {} (got '{}')",
                STT_ENGINES.join(", "),
                c.speech.stt
            ),
        );
    }
    check_speech_remote(c, &mut k);
    check_speech(c, &mut k);
    check_script(c, &mut k);
    let h = &c.hooks;
    k.range("hooks.timeout_ms", h.timeout_ms, 1, 10_000);
    k.range("hooks.memory_bytes", h.memory_bytes, 1 << 20, 1 << 30);
    k.range("hooks.fuel", h.fuel, 1_000, 1 << 40);
    if h.poll_ms != 0 && !(100..=3_600_000).contains(&h.poll_ms) {
        k.fail(
            "hooks.poll_ms",
            format!(
                "must be 0 (no polling: SIGHUP reloads) or between 100 and 3600000 (got {})",
                h.poll_ms
            ),
        );
    }
    if let Some(name) = &h.default {
        if !super::names::is_valid_name(name) {
            k.fail(
                "hooks.default",
                format!("must be a hook file name without .wasm: letters, digits, '-', '_' (got '{name}')"),
            );
        }
    }
    if tracing_subscriber::EnvFilter::try_new(&c.log.level).is_err() {
        k.fail(
            "log.level",
            format!(
                "is not a valid filter such as 'info' or 'sip_assistant=debug' (got '{}')",
                c.log.level
            ),
        );
    }
    k.0
}

fn check_speech(c: &Config, k: &mut Checker) {
    let s = &c.speech;
    if !super::defaults::FLITE_VOICES.contains(&s.flite.voice.as_str()) {
        k.fail(
            "speech.flite.voice",
            format!(
                "must be one of {} (got '{}')",
                super::defaults::FLITE_VOICES.join(", "),
                s.flite.voice
            ),
        );
    }
    if s.espeak.command.trim().is_empty() {
        k.fail("speech.espeak.command", "must not be empty");
    }
    if s.espeak.voice.is_empty() || s.espeak.voice.starts_with('-') {
        k.fail(
            "speech.espeak.voice",
            "must be an espeak-ng voice name such as en-us",
        );
    }
    let ps = &s.pocketsphinx;
    for (key, value) in [
        ("speech.pocketsphinx.reject_threshold", ps.reject_threshold),
        ("speech.pocketsphinx.accept_threshold", ps.accept_threshold),
        ("speech.pocketsphinx.silence_threshold", ps.silence_threshold),
    ] {
        if !(-100_000..=0).contains(&value) {
            k.fail(key, format!("must be between -100000 and 0 (got {value})"));
        }
    }
    if ps.noise_floor_db != 0 && !(10..=60).contains(&ps.noise_floor_db) {
        k.fail(
            "speech.pocketsphinx.noise_floor_db",
            format!("must be 0 (off) or between 10 and 60 (got {})", ps.noise_floor_db),
        );
    }
    if ps.accept_threshold < ps.reject_threshold {
        k.fail(
            "speech.pocketsphinx.accept_threshold",
            format!(
                "must not be below speech.pocketsphinx.reject_threshold ({} < {})",
                ps.accept_threshold, ps.reject_threshold
            ),
        );
    }
    k.range(
        "speech.pocketsphinx.spot_threshold",
        ps.spot_threshold.into(),
        0,
        200,
    );
    k.range("speech.max_decodes", s.max_decodes.into(), 0, 64);
    k.range("speech.decode_queue", s.decode_queue.into(), 0, 1024);
    k.range("speech.decode_deadline_ms", s.decode_deadline_ms, 100, 60_000);
    k.range("speech.vad.hangover_ms", s.vad.hangover_ms.into(), 100, 5000);
    k.range("speech.vad.min_speech_ms", s.vad.min_speech_ms.into(), 32, 2000);
    k.range(
        "speech.vad.max_utterance_seconds",
        s.vad.max_utterance_seconds.into(),
        1,
        120,
    );
    k.range("speech.cache.memory_bytes", s.cache.memory_bytes, 0, 4 << 30);
    k.range("speech.cache.disk_bytes", s.cache.disk_bytes, 1 << 20, 64 << 30);
}

/// `[script]`: the confirmation threshold and question.
fn check_script(c: &Config, k: &mut Checker) {
    let s = &c.script;
    if !(0.0..=1.0).contains(&s.confirm_below) {
        k.fail(
            "script.confirm_below",
            format!("must be between 0 and 1 (got {})", s.confirm_below),
        );
    }
    if s.confirm && s.confirm_question.trim().is_empty() {
        k.fail(
            "script.confirm_question",
            "must not be empty while script.confirm is on (say what to ask, with {option} for the option)",
        );
    }
}

fn check_sip(c: &Config, k: &mut Checker) {
    let s = &c.sip;
    if let Some(registrar) = &s.registrar {
        if let Err(rule) = crate::sip_addr::parse_host_port(registrar) {
            k.fail("sip.registrar", rule.to_string());
        }
        if s.user.as_deref().is_none_or(str::is_empty) {
            k.fail("sip.user", "is required when sip.registrar is set");
        }
    }
    if let Some(user) = &s.user {
        if user.is_empty() || !user.chars().all(crate::sip_addr::is_user_char) {
            k.fail(
                "sip.user",
                format!("must be a SIP user name of letters, digits and -_.!~*'()&=+$,;?/ (got '{user}')"),
            );
        }
    }
    if let Some(domain) = &s.domain {
        if let Err(rule) = crate::sip_addr::parse_host_port(domain) {
            k.fail("sip.domain", rule.to_string());
        }
    }
    if let Some(public) = &s.public_address {
        if let Err(rule) = crate::sip_addr::parse_host_port(public) {
            k.fail("sip.public_address", rule.to_string());
        }
    }
    for realm in &s.auth_realms {
        if realm.len() > 255 || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            k.fail(
                "sip.auth_realms",
                format!("'{realm}' is not a digest realm (no quotes, backslashes or control characters, at most 255 bytes)"),
            );
        }
    }
    k.range("sip.register_expires", s.register_expires.into(), 60, 86_400);
    k.range(
        "sip.register_refresh_seconds",
        s.register_refresh_seconds.into(),
        0,
        3600,
    );
    k.range("sip.tcp_max_connections", s.tcp_max_connections.into(), 1, 65_535);
    k.range("sip.tcp_idle_seconds", s.tcp_idle_seconds.into(), 1, 86_400);
    k.range(
        "sip.tcp_write_timeout_ms",
        s.tcp_write_timeout_ms.into(),
        100,
        60_000,
    );
}

fn check_host_port(k: &mut Checker, key: &str, value: &str) {
    let ok = !value.contains('/')
        && matches!(crate::sip_addr::parse_host_port(value), Ok((_, Some(port))) if port != 0);
    if !ok {
        k.fail(
            key,
            format!("must be host:port such as 127.0.0.1:10200 (got '{value}')"),
        );
    }
}

/// `[speech.wyoming]`, `[speech.openai]`, `[speech.piper]`, `[speech.whisper]`.
fn check_speech_remote(c: &Config, k: &mut Checker) {
    let w = &c.speech.wyoming;
    check_host_port(k, "speech.wyoming.tts_address", &w.tts_address);
    check_host_port(k, "speech.wyoming.stt_address", &w.stt_address);
    k.range(
        "speech.wyoming.connect_timeout_ms",
        w.connect_timeout_ms,
        100,
        60_000,
    );
    k.range(
        "speech.wyoming.request_timeout_ms",
        w.request_timeout_ms,
        100,
        600_000,
    );

    let o = &c.speech.openai;
    match url::Url::parse(&o.base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            let uses = c.speech.tts == "openai" || c.speech.stt == "openai";
            if uses && u.host_str() == Some("api.openai.com") && o.api_key.is_none() {
                k.fail(
                    "speech.openai.api_key",
                    "is required for api.openai.com (set it or speech.openai.api_key_file)",
                );
            }
        }
        _ => k.fail(
            "speech.openai.base_url",
            format!("must be an http:// or https:// URL (got '{}')", o.base_url),
        ),
    }
    if let Some(key) = &o.api_key {
        let t = key.expose();
        if t.is_empty() || t.chars().any(char::is_whitespace) {
            k.fail(
                "speech.openai.api_key",
                "must be non-empty and contain no white space",
            );
        }
    }
    for (key, value) in [
        ("speech.openai.tts_model", &o.tts_model),
        ("speech.openai.stt_model", &o.stt_model),
        ("speech.openai.voice", &o.voice),
    ] {
        if value.trim().is_empty() {
            k.fail(key, "must not be empty");
        }
    }
    k.range(
        "speech.openai.connect_timeout_ms",
        o.connect_timeout_ms,
        100,
        60_000,
    );
    k.range(
        "speech.openai.request_timeout_ms",
        o.request_timeout_ms,
        100,
        600_000,
    );

    if c.speech.tts == "piper" && c.speech.piper.model.is_none() {
        k.fail(
            "speech.piper.model",
            "is required when speech.tts = \"piper\" (the voice's .onnx file)",
        );
    }
    if c.speech.piper.espeak_command.trim().is_empty() {
        k.fail("speech.piper.espeak_command", "must not be empty");
    }
    k.range("speech.piper.threads", c.speech.piper.threads.into(), 1, 64);
    if c.speech.stt == "whisper" && c.speech.whisper.model.is_none() {
        k.fail(
            "speech.whisper.model",
            "is required when speech.stt = \"whisper\" (a ggml model file)",
        );
    }
    k.range("speech.whisper.threads", c.speech.whisper.threads.into(), 1, 64);
    if !super::names::is_valid_name(&c.speech.whisper.model_name) {
        k.fail(
            "speech.whisper.model_name",
            format!(
                "must be a model name such as tiny.en (letters, digits, '.', '-', '_'; got '{}')",
                c.speech.whisper.model_name
            ),
        );
    }
    match url::Url::parse(&c.speech.models.base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => k.fail(
            "speech.models.base_url",
            format!(
                "must be an http:// or https:// URL (got '{}')",
                c.speech.models.base_url
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Config) -> Vec<String> {
        check(c).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn queue_max_age_defaults_to_an_hour_zero_means_never_and_a_week_is_the_most() {
        let mut c = Config::default();
        assert_eq!(
            c.calls.queue_max_age(),
            Some(std::time::Duration::from_secs(3600))
        );
        c.calls.queue_max_age_seconds = 0;
        assert_eq!(c.calls.queue_max_age(), None);
        assert!(!keys(&c).iter().any(|k| k == "calls.queue_max_age_seconds"));
        c.calls.queue_max_age_seconds = 7 * 86_400 + 1;
        assert!(keys(&c).iter().any(|k| k == "calls.queue_max_age_seconds"));
    }

    #[test]
    fn hook_limits_and_default_name_are_checked() {
        let mut c = Config::default();
        assert!(keys(&c).iter().all(|k| !k.starts_with("hooks.")));
        c.hooks.timeout_ms = 0;
        c.hooks.memory_bytes = 1024;
        c.hooks.fuel = 10;
        c.hooks.poll_ms = 50;
        c.hooks.default = Some("../evil".into());
        let got = keys(&c);
        for key in [
            "hooks.timeout_ms",
            "hooks.memory_bytes",
            "hooks.fuel",
            "hooks.poll_ms",
            "hooks.default",
        ] {
            assert!(got.iter().any(|k| k == key), "{key} missing from {got:?}");
        }
        // 0 turns polling off.
        let mut c = Config::default();
        c.hooks.poll_ms = 0;
        assert!(keys(&c).iter().all(|k| !k.starts_with("hooks.")));
    }

    #[test]
    fn the_api_is_safe_by_default() {
        let mut c = Config::default();
        assert_eq!(c.api.listen, "127.0.0.1:8080");
        assert!(keys(&c).is_empty(), "{:?}", check(&c));
        c.api.listen = "0.0.0.0:8080".into();
        let problems = check(&c);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "api.listen");
        assert!(
            problems[0].rule.contains("api.token") && problems[0].rule.contains("api.allow_unauthenticated"),
            "{}",
            problems[0].rule
        );
        c.api.allow_unauthenticated = true;
        assert!(keys(&c).is_empty());
        c.api.allow_unauthenticated = false;
        c.api.token = Some(crate::config::Secret::new("short-token"));
        assert_eq!(keys(&c), ["api.token"], "a token shorter than 16 characters");
        c.api.token = Some(crate::config::Secret::new("a-long-enough-token"));
        assert!(keys(&c).is_empty());
        c.calls.dial_allow = Some(crate::config::StringList(Vec::new()));
        c.webhook.allow_hosts = crate::config::StringList(vec!["http://x/".into()]);
        c.api.rate_limit_burst = 0;
        assert_eq!(
            keys(&c),
            ["api.rate_limit_burst", "calls.dial_allow", "webhook.allow_hosts"]
        );
    }

    #[test]
    fn sip_tcp_limits_are_checked() {
        let mut c = Config::default();
        assert!(keys(&c).iter().all(|k| !k.starts_with("sip.tcp_")));
        c.sip.tcp_max_connections = 0;
        c.sip.tcp_idle_seconds = 0;
        c.sip.tcp_write_timeout_ms = 10;
        let got = keys(&c);
        for key in [
            "sip.tcp_max_connections",
            "sip.tcp_idle_seconds",
            "sip.tcp_write_timeout_ms",
        ] {
            assert!(got.iter().any(|k| k == key), "{key} not named in {got:?}");
        }
    }

    #[test]
    fn auth_realms_must_be_plain_realm_names() {
        let mut c = Config::default();
        c.sip.auth_realms = vec!["asterisk".into(), "pbx.lan".into()];
        assert!(!keys(&c).iter().any(|k| k == "sip.auth_realms"));
        c.sip.auth_realms.push("bad\"realm".into());
        assert!(keys(&c).iter().any(|k| k == "sip.auth_realms"));
    }

    #[test]
    fn each_rule_names_its_key() {
        let mut c = Config::default();
        c.api.listen = "localhost".into();
        c.media.rtp_port_min = 40001;
        c.calls.max_concurrent = 0;
        c.speech.tts = "sam".into();
        c.speech.flite.voice = "hal".into();
        c.speech.vad.hangover_ms = 0;
        c.speech.pocketsphinx.reject_threshold = 5;
        c.sip.registrar = Some("pbx.lan:99999".into());
        let got = keys(&c);
        for key in [
            "api.listen",
            "media.rtp_port_min",
            "calls.max_concurrent",
            "speech.tts",
            "speech.flite.voice",
            "speech.vad.hangover_ms",
            "speech.pocketsphinx.reject_threshold",
            "sip.registrar",
            "sip.user",
        ] {
            assert!(got.iter().any(|k| k == key), "{key} missing from {got:?}");
        }
    }

    #[test]
    fn pocketsphinx_thresholds_are_checked_alone_and_against_each_other() {
        let ps_keys = |c: &Config| -> Vec<String> {
            keys(c)
                .into_iter()
                .filter(|k| k.starts_with("speech.pocketsphinx."))
                .collect()
        };
        let mut c = Config::default();
        assert!(ps_keys(&c).is_empty(), "defaults are valid: {:?}", ps_keys(&c));
        c.speech.pocketsphinx.silence_threshold = 1;
        c.speech.pocketsphinx.accept_threshold = -200_000;
        c.speech.pocketsphinx.noise_floor_db = 5;
        assert_eq!(
            ps_keys(&c),
            [
                "speech.pocketsphinx.accept_threshold",
                "speech.pocketsphinx.silence_threshold",
                "speech.pocketsphinx.noise_floor_db",
                "speech.pocketsphinx.accept_threshold"
            ]
        );
        let mut c = Config::default();
        c.speech.pocketsphinx.reject_threshold = -3000;
        c.speech.pocketsphinx.accept_threshold = -4000;
        assert_eq!(ps_keys(&c), ["speech.pocketsphinx.accept_threshold"]);
    }

    #[test]
    fn remote_speech_rules_name_their_keys() {
        let mut c = Config::default();
        c.speech.tts = "openai".into();
        c.speech.stt = "whisper".into();
        c.speech.wyoming.tts_address = "127.0.0.1".into();
        c.speech.wyoming.stt_address = "tcp://x:1".into();
        c.speech.wyoming.request_timeout_ms = 5;
        c.speech.openai.voice = " ".into();
        c.speech.whisper.model_name = "../tiny.en".into();
        c.speech.models.base_url = "ftp://mirror.example/models".into();
        let got = keys(&c);
        for key in [
            "speech.whisper.model_name",
            "speech.models.base_url",
            "speech.wyoming.tts_address",
            "speech.wyoming.stt_address",
            "speech.wyoming.request_timeout_ms",
            "speech.openai.api_key",
            "speech.openai.voice",
            "speech.whisper.model",
        ] {
            assert!(got.iter().any(|k| k == key), "{key} missing from {got:?}");
        }
        c.speech.openai.base_url = "http://127.0.0.1:8000".into();
        c.speech.openai.voice = "alloy".into();
        c.speech.stt = "openai".into();
        c.speech.wyoming = Default::default();
        c.speech.whisper.model_name = "base.en".into();
        c.speech.models.base_url = "http://127.0.0.1:8080/models".into();
        assert_eq!(keys(&c), Vec::<String>::new());
        c.speech.openai.base_url = "ftp://x".into();
        assert_eq!(keys(&c), vec!["speech.openai.base_url".to_string()]);
    }

    #[test]
    fn rtp_range_must_hold_enough_pairs() {
        let mut c = Config::default();
        c.media.rtp_port_min = 40000;
        c.media.rtp_port_max = 40003;
        c.calls.max_concurrent = 4;
        let problems = check(&c);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].rule.contains("2 RTP/RTCP port pairs"),
            "{}",
            problems[0]
        );
    }
}
