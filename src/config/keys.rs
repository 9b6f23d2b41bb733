//! The registry of configuration keys that environment variables may set, with their value kinds.
//!
//! `SIP_ASSISTANT__<SECTION>__<KEY>` names a key here; the kind says how the variable's text becomes a
//! TOML value (so `SIP_ASSISTANT__SIP__USER=1001` stays a string and `..__LOCAL_PORT=5070` a number).

/// How an environment variable's text is turned into a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Integer,
}

/// Every settable key as (section, key, kind).
pub const KEYS: &[(&str, &str, KeyKind)] = &[
    ("api", "listen", KeyKind::Text),
    ("api", "token", KeyKind::Text),
    ("api", "token_file", KeyKind::Text),
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
    ("media", "rtp_port_min", KeyKind::Integer),
    ("media", "rtp_port_max", KeyKind::Integer),
    ("media", "codecs", KeyKind::Text),
    ("store", "data_dir", KeyKind::Text),
    ("store", "retention_days", KeyKind::Integer),
    ("calls", "max_concurrent", KeyKind::Integer),
    ("calls", "queue_limit", KeyKind::Integer),
    ("calls", "shutdown_grace_seconds", KeyKind::Integer),
    ("webhook", "secret", KeyKind::Text),
    ("webhook", "secret_file", KeyKind::Text),
    ("webhook", "max_retry_seconds", KeyKind::Integer),
    ("webhook", "initial_backoff_ms", KeyKind::Integer),
    ("webhook", "max_backoff_seconds", KeyKind::Integer),
    ("webhook", "connect_timeout_ms", KeyKind::Integer),
    ("webhook", "request_timeout_ms", KeyKind::Integer),
    ("speech", "tts", KeyKind::Text),
    ("speech", "stt", KeyKind::Text),
    ("hooks", "dir", KeyKind::Text),
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
        c.hooks.default = Some("x".into());
        let table: toml::Table = toml::from_str(&toml::to_string(&c).expect("render")).expect("parse");
        let mut from_structs = Vec::new();
        for (section, body) in &table {
            for (key, value) in body.as_table().expect("sections are tables") {
                let kind = if value.is_integer() {
                    KeyKind::Integer
                } else {
                    KeyKind::Text
                };
                from_structs.push((section.clone(), key.clone(), kind));
            }
        }
        assert_eq!(from_structs.len(), KEYS.len(), "{from_structs:?}");
        for (section, key, kind) in from_structs {
            assert_eq!(key_kind(&section, &key), Some(kind), "{section}.{key}");
        }
    }
}
