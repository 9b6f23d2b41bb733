//! Where configuration comes from, in order of precedence (later wins):
//! built-in defaults → the TOML file → the original project's variables (`SIP_USER`, ...) →
//! `SIP_ASSISTANT__<SECTION>__<KEY>` variables. Secrets may then come from `*_file` paths, which are
//! resolved against `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) when relative.

use std::path::{Path, PathBuf};

use super::keys::{key_kind, KeyKind};
use super::{Config, ConfigError, Problem, Secret};

const ENV_PREFIX: &str = "SIP_ASSISTANT__";

/// The files looked at when no `--config` is given, first found wins.
pub const DEFAULT_SEARCH_PATHS: &[&str] = &["./sip-assistant.toml", "/etc/sip-assistant/config.toml"];

/// Inputs of [`load`], explicit so tests need not touch the process environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config PATH`: must exist.
    pub explicit_path: Option<PathBuf>,
    /// Files tried in order when no explicit path is given.
    pub search_paths: Vec<PathBuf>,
    /// The environment as (name, value) pairs.
    pub env: Vec<(String, String)>,
}

impl LoadOptions {
    /// Options from the real process environment and the default search paths.
    pub fn from_process(explicit_path: Option<PathBuf>) -> Self {
        Self {
            explicit_path,
            search_paths: DEFAULT_SEARCH_PATHS.iter().map(PathBuf::from).collect(),
            env: std::env::vars().collect(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Which file, if any, the configuration was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// Load, merge, resolve secrets and validate.
pub fn load(opts: &LoadOptions) -> Result<(Config, ConfigSource), ConfigError> {
    let (mut table, source) = read_file(opts)?;
    apply_legacy_env(&mut table, opts);
    apply_prefixed_env(&mut table, opts)?;
    let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        ConfigError::Invalid(vec![Problem {
            key: e.path().to_string(),
            // toml appends "in `key`" itself; the key is already named.
            rule: e
                .inner()
                .message()
                .split("\nin `")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        }])
    })?;
    let credentials_dir = opts.var("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let mut problems = Vec::new();
    let cred = credentials_dir.as_deref();
    resolve_secret(
        "api.token",
        &mut config.api.token,
        &config.api.token_file,
        cred,
        &mut problems,
    );
    resolve_secret(
        "sip.password",
        &mut config.sip.password,
        &config.sip.password_file,
        cred,
        &mut problems,
    );
    resolve_secret(
        "webhook.secret",
        &mut config.webhook.secret,
        &config.webhook.secret_file,
        cred,
        &mut problems,
    );
    let openai = &mut config.speech.openai;
    resolve_secret(
        "speech.openai.api_key",
        &mut openai.api_key,
        &openai.api_key_file,
        cred,
        &mut problems,
    );
    problems.extend(super::validate::check(&config));
    if problems.is_empty() {
        Ok((config, source))
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

fn read_file(opts: &LoadOptions) -> Result<(toml::Table, ConfigSource), ConfigError> {
    let path = match &opts.explicit_path {
        Some(p) => Some(p.clone()),
        None => opts.search_paths.iter().find(|p| p.is_file()).cloned(),
    };
    let Some(path) = path else {
        return Ok((toml::Table::new(), ConfigSource::Defaults));
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let table = text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax {
        path: path.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    Ok((table, ConfigSource::File(path)))
}

/// Set `key` in `section`, a dotted path of tables (`speech.wyoming`) created as needed.
fn set(table: &mut toml::Table, section: &str, key: &str, value: toml::Value) {
    let mut t = table;
    for part in section.split('.') {
        let entry = t
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        t = inner;
    }
    t.insert(key.to_string(), value);
}

/// The original project's variable names. `SIP_PORT` is the PBX's port: it completes the registrar
/// address. Without `SIP_REGISTRAR`, the original registered to `SIP_DOMAIN` whenever a user was set,
/// and so do we.
fn apply_legacy_env(table: &mut toml::Table, opts: &LoadOptions) {
    for (var, key) in [
        ("SIP_USER", "user"),
        ("SIP_PASSWORD", "password"),
        ("SIP_DOMAIN", "domain"),
    ] {
        if let Some(v) = opts.var(var) {
            set(table, "sip", key, toml::Value::String(v.to_string()));
        }
    }
    if let Some(v) = opts.var("SIP_TRANSPORT") {
        set(
            table,
            "sip",
            "transport",
            toml::Value::String(v.to_ascii_lowercase()),
        );
    }
    let registrar = opts.var("SIP_REGISTRAR").map(str::to_string).or_else(|| {
        match (opts.var("SIP_USER"), opts.var("SIP_DOMAIN")) {
            (Some(_), Some(domain)) => Some(domain.to_string()),
            _ => None,
        }
    });
    if let Some(mut registrar) = registrar {
        if let Some(port) = opts.var("SIP_PORT") {
            if !has_port(&registrar) {
                registrar = format!("{registrar}:{port}");
            }
        }
        set(table, "sip", "registrar", toml::Value::String(registrar));
    }
}

/// Whether a `host[:port]` or `sip:host[:port][;params]` string names a port.
pub(crate) fn has_port(addr: &str) -> bool {
    let rest = addr
        .strip_prefix("sips:")
        .or_else(|| addr.strip_prefix("sip:"))
        .unwrap_or(addr);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let host_port = rest.split(';').next().unwrap_or(rest);
    if let Some(after) = host_port.strip_prefix('[') {
        return after.split_once("]:").is_some();
    }
    host_port.matches(':').count() == 1
}

fn apply_prefixed_env(table: &mut toml::Table, opts: &LoadOptions) -> Result<(), ConfigError> {
    for (name, value) in &opts.env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // The key is the last `__` part; the parts before it name a (possibly nested) section.
        let (section, key) = path
            .rsplit_once("__")
            .map(|(s, k)| (s.to_ascii_lowercase().replace("__", "."), k.to_ascii_lowercase()))
            .ok_or_else(|| ConfigError::Env {
                var: name.clone(),
                rule: "expected SIP_ASSISTANT__<SECTION>__<KEY>".into(),
            })?;
        let kind = key_kind(&section, &key).ok_or_else(|| ConfigError::Env {
            var: name.clone(),
            rule: format!("unknown config key {section}.{key}"),
        })?;
        let value = match kind {
            KeyKind::Text => toml::Value::String(value.clone()),
            KeyKind::Integer => {
                let n = value.trim().parse::<i64>().map_err(|_| ConfigError::Env {
                    var: name.clone(),
                    rule: format!("{section}.{key} must be an integer (got '{value}')"),
                })?;
                toml::Value::Integer(n)
            }
            KeyKind::Float => {
                let n = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| ConfigError::Env {
                        var: name.clone(),
                        rule: format!("{section}.{key} must be a number (got '{value}')"),
                    })?;
                toml::Value::Float(n)
            }
            KeyKind::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => {
                    return Err(ConfigError::Env {
                        var: name.clone(),
                        rule: format!("{section}.{key} must be true or false (got '{value}')"),
                    })
                }
            },
        };
        set(table, &section, &key, value);
    }
    Ok(())
}

fn resolve_secret(
    key: &str,
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
    credentials_dir: Option<&Path>,
    problems: &mut Vec<Problem>,
) {
    let Some(file) = file else { return };
    if value.is_some() {
        problems.push(Problem {
            key: key.into(),
            rule: format!("set either {key} or {key}_file, not both"),
        });
        return;
    }
    let path = match credentials_dir {
        Some(dir) if file.is_relative() && dir.join(file).is_file() => dir.join(file),
        _ => file.clone(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                problems.push(Problem {
                    key: format!("{key}_file"),
                    rule: format!("{} is empty", path.display()),
                });
            } else {
                *value = Some(Secret::new(secret));
            }
        }
        Err(e) => problems.push(Problem {
            key: format!("{key}_file"),
            rule: format!("cannot read {}: {e}", path.display()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_speech_keys_come_from_the_environment() {
        let env = |pairs: &[(&str, &str)]| LoadOptions {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..LoadOptions::default()
        };
        let (c, _) = load(&env(&[
            ("SIP_ASSISTANT__SPEECH__FLITE__VOICE", "awb"),
            ("SIP_ASSISTANT__SPEECH__CACHE__DISK", "false"),
            ("SIP_ASSISTANT__SPEECH__VAD__HANGOVER_MS", "700"),
            ("SIP_ASSISTANT__SPEECH__TTS", "espeak"),
        ]))
        .expect("valid");
        assert_eq!(c.speech.flite.voice, "awb");
        assert!(!c.speech.cache.disk);
        assert_eq!(c.speech.vad.hangover_ms, 700);
        assert_eq!(c.speech.tts, "espeak");
        let bad = load(&env(&[("SIP_ASSISTANT__SPEECH__CACHE__DISK", "maybe")]));
        assert!(matches!(bad, Err(ConfigError::Env { .. })), "{bad:?}");
        let unknown = load(&env(&[("SIP_ASSISTANT__SPEECH__FLITE__PITCH", "3")]));
        assert!(matches!(unknown, Err(ConfigError::Env { .. })), "{unknown:?}");
    }

    #[test]
    fn port_detection() {
        assert!(has_port("pbx.lan:5060"));
        assert!(!has_port("pbx.lan"));
        assert!(has_port("sip:pbx.lan:5070;transport=tcp"));
        assert!(!has_port("sip:pbx.lan;transport=tcp"));
        assert!(has_port("[::1]:5060"));
        assert!(!has_port("[::1]"));
    }
}
