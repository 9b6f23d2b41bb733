//! The registry of configuration keys that environment variables may set, with their value kinds.
//!
//! `SIP_ASSISTANT__<SECTION>__<KEY>` names a key here; the kind says how the variable's text becomes a
//! TOML value (so `SIP_ASSISTANT__SIP__USER=1001` stays a string and `..__LOCAL_PORT=5070` a number).
//! A nested section is written with dots here and with `__` in the variable:
//! `SIP_ASSISTANT__SPEECH__WYOMING__TTS_ADDRESS` sets `speech.wyoming.tts_address`.

/// How an environment variable's text is turned into a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Integer,
    Bool,
    Float,
}

/// Every settable key as (section, key, kind); nested sections are dotted (`speech.wyoming`).
pub const KEYS: &[(&str, &str, KeyKind)] = &[
    ("api", "listen", KeyKind::Text),
    ("api", "token", KeyKind::Text),
    ("api", "token_file", KeyKind::Text),
    ("api", "allow_unauthenticated", KeyKind::Bool),
    ("api", "rate_limit_per_second", KeyKind::Integer),
    ("api", "rate_limit_burst", KeyKind::Integer),
    ("sip", "user", KeyKind::Text),
    ("sip", "auth_user", KeyKind::Text),
    ("sip", "password", KeyKind::Text),
    ("sip", "password_file", KeyKind::Text),
    ("sip", "domain", KeyKind::Text),
    ("sip", "registrar", KeyKind::Text),
    ("sip", "transport", KeyKind::Text),
    ("sip", "local_port", KeyKind::Integer),
    ("sip", "public_address", KeyKind::Text),
    ("sip", "register_expires", KeyKind::Integer),
    ("sip", "register_refresh_seconds", KeyKind::Integer),
    ("sip", "tcp_max_connections", KeyKind::Integer),
    ("sip", "tcp_idle_seconds", KeyKind::Integer),
    ("sip", "tcp_write_timeout_ms", KeyKind::Integer),
    ("sip", "auth_realms", KeyKind::Text),
    ("media", "rtp_port_min", KeyKind::Integer),
    ("media", "rtp_port_max", KeyKind::Integer),
    ("media", "codecs", KeyKind::Text),
    ("store", "data_dir", KeyKind::Text),
    ("store", "retention_days", KeyKind::Integer),
    ("calls", "max_concurrent", KeyKind::Integer),
    ("calls", "queue_limit", KeyKind::Integer),
    ("calls", "shutdown_grace_seconds", KeyKind::Integer),
    ("calls", "dial_allow", KeyKind::Text),
    ("calls", "queue_max_age_seconds", KeyKind::Integer),
    ("webhook", "secret", KeyKind::Text),
    ("webhook", "secret_file", KeyKind::Text),
    ("webhook", "max_retry_seconds", KeyKind::Integer),
    ("webhook", "initial_backoff_ms", KeyKind::Integer),
    ("webhook", "max_backoff_seconds", KeyKind::Integer),
    ("webhook", "connect_timeout_ms", KeyKind::Integer),
    ("webhook", "request_timeout_ms", KeyKind::Integer),
    ("webhook", "allow_hosts", KeyKind::Text),
    ("speech", "tts", KeyKind::Text),
    ("speech", "stt", KeyKind::Text),
    ("speech", "max_decodes", KeyKind::Integer),
    ("speech", "decode_queue", KeyKind::Integer),
    ("speech", "decode_deadline_ms", KeyKind::Integer),
    ("speech.wyoming", "tts_address", KeyKind::Text),
    ("speech.wyoming", "stt_address", KeyKind::Text),
    ("speech.wyoming", "voice", KeyKind::Text),
    ("speech.wyoming", "language", KeyKind::Text),
    ("speech.wyoming", "connect_timeout_ms", KeyKind::Integer),
    ("speech.wyoming", "request_timeout_ms", KeyKind::Integer),
    ("speech.openai", "base_url", KeyKind::Text),
    ("speech.openai", "api_key", KeyKind::Text),
    ("speech.openai", "api_key_file", KeyKind::Text),
    ("speech.openai", "tts_model", KeyKind::Text),
    ("speech.openai", "stt_model", KeyKind::Text),
    ("speech.openai", "voice", KeyKind::Text),
    ("speech.openai", "language", KeyKind::Text),
    ("speech.openai", "connect_timeout_ms", KeyKind::Integer),
    ("speech.openai", "request_timeout_ms", KeyKind::Integer),
    ("speech.piper", "model", KeyKind::Text),
    ("speech.piper", "model_config", KeyKind::Text),
    ("speech.piper", "onnxruntime", KeyKind::Text),
    ("speech.piper", "espeak_command", KeyKind::Text),
    ("speech.piper", "speaker", KeyKind::Integer),
    ("speech.piper", "threads", KeyKind::Integer),
    ("speech.whisper", "model", KeyKind::Text),
    ("speech.whisper", "model_name", KeyKind::Text),
    ("speech.whisper", "language", KeyKind::Text),
    ("speech.whisper", "threads", KeyKind::Integer),
    ("speech.models", "base_url", KeyKind::Text),
    ("speech.flite", "voice", KeyKind::Text),
    ("speech.espeak", "command", KeyKind::Text),
    ("speech.espeak", "voice", KeyKind::Text),
    ("speech.pocketsphinx", "model_dir", KeyKind::Text),
    ("speech.pocketsphinx", "dict", KeyKind::Text),
    ("speech.pocketsphinx", "reject_threshold", KeyKind::Integer),
    ("speech.pocketsphinx", "accept_threshold", KeyKind::Integer),
    ("speech.pocketsphinx", "silence_threshold", KeyKind::Integer),
    ("speech.pocketsphinx", "decoys", KeyKind::Bool),
    ("speech.pocketsphinx", "noise_floor_db", KeyKind::Integer),
    ("speech.pocketsphinx", "spot_threshold", KeyKind::Integer),
    ("speech.vad", "hangover_ms", KeyKind::Integer),
    ("speech.vad", "min_speech_ms", KeyKind::Integer),
    ("speech.vad", "max_utterance_seconds", KeyKind::Integer),
    ("speech.cache", "memory_bytes", KeyKind::Integer),
    ("speech.cache", "disk", KeyKind::Bool),
    ("speech.cache", "disk_bytes", KeyKind::Integer),
    ("hooks", "dir", KeyKind::Text),
    ("hooks", "poll_ms", KeyKind::Integer),
    ("script", "acknowledgement", KeyKind::Text),
    ("script", "goodbye", KeyKind::Text),
    ("script", "spoken_numbers", KeyKind::Bool),
    ("script", "confirm", KeyKind::Bool),
    ("script", "confirm_below", KeyKind::Float),
    ("script", "confirm_question", KeyKind::Text),
    ("hooks", "default", KeyKind::Text),
    ("hooks", "timeout_ms", KeyKind::Integer),
    ("hooks", "memory_bytes", KeyKind::Integer),
    ("hooks", "fuel", KeyKind::Integer),
    ("log", "level", KeyKind::Text),
];

/// The kind of `section.key`, or `None` for a key that does not exist.
pub fn key_kind(section: &str, key: &str) -> Option<KeyKind> {
    KEYS.iter()
        .find(|(s, k, _)| *s == section && *k == key)
        .map(|(_, _, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Every registered key must exist in the typed config, and every typed key must be registered:
    /// the registry and the structs cannot drift apart.
    #[test]
    fn registry_matches_the_config_structs() {
        let mut c = Config::default();
        c.api.token = Some(crate::config::Secret::new("x"));
        c.api.token_file = Some("x".into());
        c.sip.user = Some("x".into());
        c.sip.auth_user = Some("x".into());
        c.sip.password = Some(crate::config::Secret::new("x"));
        c.sip.password_file = Some("x".into());
        c.sip.domain = Some("x".into());
        c.sip.registrar = Some("x".into());
        c.sip.public_address = Some("x".into());
        c.webhook.secret = Some(crate::config::Secret::new("x"));
        c.webhook.secret_file = Some("x".into());
        let s = &mut c.speech;
        s.wyoming.voice = Some("x".into());
        s.wyoming.language = Some("x".into());
        s.openai.api_key = Some(crate::config::Secret::new("x"));
        s.openai.api_key_file = Some("x".into());
        s.openai.language = Some("x".into());
        s.piper.model = Some("x".into());
        s.piper.model_config = Some("x".into());
        s.piper.onnxruntime = Some("x".into());
        s.piper.speaker = Some(1);
        s.whisper.model = Some("x".into());
        s.whisper.language = Some("x".into());
        c.hooks.default = Some("x".into());
        c.calls.dial_allow = Some(crate::config::StringList(vec!["x".into()]));
        let table: toml::Table = toml::from_str(&toml::to_string(&c).expect("render")).expect("parse");
        let mut from_structs = Vec::new();
        fn walk(section: &str, body: &toml::Table, out: &mut Vec<(String, String, KeyKind)>) {
            for (key, value) in body {
                match value {
                    toml::Value::Table(t) => walk(&format!("{section}.{key}"), t, out),
                    v if v.is_integer() => out.push((section.into(), key.clone(), KeyKind::Integer)),
                    v if v.is_bool() => out.push((section.into(), key.clone(), KeyKind::Bool)),
                    v if v.is_float() => out.push((section.into(), key.clone(), KeyKind::Float)),
                    _ => out.push((section.into(), key.clone(), KeyKind::Text)),
                }
            }
        }
        for (section, body) in &table {
            walk(
                section,
                body.as_table().expect("sections are tables"),
                &mut from_structs,
            );
        }
        assert_eq!(from_structs.len(), KEYS.len(), "{from_structs:?}");
        for (section, key, kind) in from_structs {
            assert_eq!(key_kind(&section, &key), Some(kind), "{section}.{key}");
        }
    }
}
