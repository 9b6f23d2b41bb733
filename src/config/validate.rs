//! The rules every configuration value must meet; each broken rule names its key.

use std::net::SocketAddr;

use super::{Config, Problem};

/// TTS engines the service knows by name.
pub const TTS_ENGINES: &[&str] = &["flite", "espeak", "piper", "wyoming", "openai"];
/// STT engines the service knows by name.
pub const STT_ENGINES: &[&str] = &["pocketsphinx", "whisper", "wyoming", "openai"];

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
        if t.is_empty() || t.chars().any(char::is_whitespace) {
            k.fail("api.token", "must be non-empty and contain no white space");
        }
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
    k.range("calls.max_concurrent", c.calls.max_concurrent.into(), 1, 256);
    k.range("calls.queue_limit", c.calls.queue_limit.into(), 0, 100_000);
    k.range(
        "calls.shutdown_grace_seconds",
        c.calls.shutdown_grace_seconds.into(),
        0,
        3600,
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
    let h = &c.hooks;
    k.range("hooks.timeout_ms", h.timeout_ms, 1, 10_000);
    k.range("hooks.memory_bytes", h.memory_bytes, 1 << 20, 1 << 30);
    k.range("hooks.fuel", h.fuel, 1_000, 1 << 40);
    if let Some(name) = &h.default {
        if !crate::hooks::is_valid_name(name) {
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

fn check_sip(c: &Config, k: &mut Checker) {
    let s = &c.sip;
    if let Some(registrar) = &s.registrar {
        if let Err(rule) = crate::sip_addr::parse_host_port(registrar) {
            k.fail("sip.registrar", rule);
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
            k.fail("sip.domain", rule);
        }
    }
    if let Some(public) = &s.public_address {
        if let Err(rule) = crate::sip_addr::parse_host_port(public) {
            k.fail("sip.public_address", rule);
        }
    }
    k.range("sip.register_expires", s.register_expires.into(), 60, 86_400);
    k.range(
        "sip.register_refresh_seconds",
        s.register_refresh_seconds.into(),
        0,
        3600,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: &Config) -> Vec<String> {
        check(c).into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn hook_limits_and_default_name_are_checked() {
        let mut c = Config::default();
        assert!(keys(&c).iter().all(|k| !k.starts_with("hooks.")));
        c.hooks.timeout_ms = 0;
        c.hooks.memory_bytes = 1024;
        c.hooks.fuel = 10;
        c.hooks.default = Some("../evil".into());
        let got = keys(&c);
        for key in [
            "hooks.timeout_ms",
            "hooks.memory_bytes",
            "hooks.fuel",
            "hooks.default",
        ] {
            assert!(got.iter().any(|k| k == key), "{key} missing from {got:?}");
        }
    }

    #[test]
    fn each_rule_names_its_key() {
        let mut c = Config::default();
        c.api.listen = "localhost".into();
        c.media.rtp_port_min = 40001;
        c.calls.max_concurrent = 0;
        c.speech.tts = "sam".into();
        c.sip.registrar = Some("pbx.lan:99999".into());
        let got = keys(&c);
        for key in [
            "api.listen",
            "media.rtp_port_min",
            "calls.max_concurrent",
            "speech.tts",
            "sip.registrar",
            "sip.user",
        ] {
            assert!(got.iter().any(|k| k == key), "{key} missing from {got:?}");
        }
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
