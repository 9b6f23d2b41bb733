//! Service configuration: the typed settings, their defaults and their validation rules.
//!
//! Loading (file discovery, environment overrides, `*_file` secrets) lives in [`load`]; this module
//! only says what a valid configuration is. Every key name here is part of the user-facing contract
//! (`docs/configuration.md`, `systemd/config.example.toml`).

pub mod defaults;
mod keys;
mod list;
mod load;
pub mod names;
mod secret;
mod speech_remote;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use keys::{key_kind, KeyKind, KEYS};
pub use list::StringList;
pub use load::{load, ConfigSource, LoadOptions};
pub use secret::Secret;
pub use speech_remote::{ModelsConfig, OpenAiConfig, PiperConfig, WhisperConfig, WyomingConfig};

/// A problem with one key: which key, and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub rule: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.rule)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {rule}")]
    Env { var: String, rule: String },
    #[error("{}", join_problems(.0))]
    Invalid(Vec<Problem>),
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// SIP transport towards the PBX (`udp`, the default, or `tcp`): the user agent's own type.
pub use crate::sip::ua::Transport;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub api: ApiConfig,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub store: StoreConfig,
    pub calls: CallsConfig,
    pub webhook: WebhookConfig,
    pub speech: SpeechConfig,
    pub hooks: HooksConfig,
    pub script: ScriptConfig,
    pub log: LogConfig,
}

/// What the call script says around the caller's answer, and how answers are matched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptConfig {
    /// Spoken after an answer matched; empty = hang up at once.
    pub acknowledgement: String,
    /// Spoken when no answer matched after the last prompt; empty = hang up at once.
    pub goodbye: String,
    /// Whether "option two", "the second one" and "2" pick the second option.
    pub spoken_numbers: bool,
    /// Ask back once ("Did you say sales?") when the answer names two options, or the engine's
    /// confidence is below `confirm_below`.
    pub confirm: bool,
    /// Confidence (0..=1) under which an answer is confirmed.
    pub confirm_below: f64,
    /// The question asked back; `{option}` stands for the option's value.
    pub confirm_question: String,
}

impl Default for ScriptConfig {
    fn default() -> Self {
        Self {
            acknowledgement: "Thank you.".into(),
            goodbye: "Goodbye.".into(),
            spoken_numbers: true,
            confirm: true,
            confirm_below: defaults::DEFAULT_CONFIRM_BELOW,
            confirm_question: defaults::DEFAULT_QUESTION.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the REST API listens on (loopback by default; another address needs `token`).
    pub listen: String,
    /// Bearer token; when set every route but `/health` requires it.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// Serve a non-loopback `listen` without a token (the operator says the network is trusted).
    pub allow_unauthenticated: bool,
    /// Requests per second one client address may make (every route but `/health`); 0 = no limit.
    pub rate_limit_per_second: u32,
    /// Requests one client may make at once before the rate applies.
    pub rate_limit_burst: u32,
}

/// The shortest bearer token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            token: None,
            token_file: None,
            allow_unauthenticated: false,
            rate_limit_per_second: 50,
            rate_limit_burst: 200,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub user: Option<String>,
    /// Digest username when the PBX wants one that differs from `user` (3CX's Authentication ID).
    pub auth_user: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// Domain used for `sip:EXT@domain`; defaults to the registrar's host.
    pub domain: Option<String>,
    /// `host[:port]` or a `sip:` URI; absent means no registration.
    pub registrar: Option<String>,
    pub transport: Transport,
    /// Local SIP port; 0 picks a free port (tests).
    pub local_port: u16,
    /// Address written into Via/Contact/SDP when the service sits behind NAT.
    pub public_address: Option<String>,
    /// Requested registration lifetime in seconds.
    pub register_expires: u32,
    /// Longest time between two REGISTERs, so a restarted PBX has us back quickly; 0 = refresh
    /// only before expiry.
    pub register_refresh_seconds: u32,
    /// Accepted SIP TCP connections open at once; more are closed at once.
    pub tcp_max_connections: u32,
    /// A SIP TCP connection with no traffic this long is closed (the registrar's is kept).
    pub tcp_idle_seconds: u32,
    /// Longest one SIP message may take to write on TCP before the connection is closed.
    pub tcp_write_timeout_ms: u32,
    /// Digest realms whose challenges get our credentials. Empty = the realm the registrar
    /// challenges our REGISTER with, and `domain` when set; a far end's own realm never.
    #[serde(deserialize_with = "list::string_or_list")]
    pub auth_realms: Vec<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            user: None,
            auth_user: None,
            password: None,
            password_file: None,
            domain: None,
            registrar: None,
            transport: Transport::Udp,
            local_port: 5060,
            public_address: None,
            register_expires: 300,
            register_refresh_seconds: 20,
            tcp_max_connections: 256,
            tcp_idle_seconds: 300,
            tcp_write_timeout_ms: 5000,
            auth_realms: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codecs offered, in order of preference: comma-separated PCMU, PCMA, opus.
    pub codecs: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_port_min: 40000,
            rtp_port_max: 40999,
            codecs: "PCMU,PCMA,opus".into(),
        }
    }
}

impl MediaConfig {
    /// The codec preference list (validated at load time).
    pub fn codec_list(&self) -> Result<Vec<crate::sdp::Codec>, String> {
        let mut out = Vec::new();
        for name in self.codecs.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let codec = crate::sdp::Codec::from_name(name)
                .ok_or_else(|| format!("unknown codec '{name}' (known: PCMU, PCMA, opus)"))?;
            if !out.contains(&codec) {
                out.push(codec);
            }
        }
        if out.is_empty() {
            return Err("must name at least one codec (PCMU, PCMA, opus)".into());
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Finished call records older than this are deleted.
    pub retention_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    pub max_concurrent: u32,
    /// Calls that may wait for a free slot; one more gets 503.
    pub queue_limit: u32,
    /// How long active calls may run on after SIGTERM.
    pub shutdown_grace_seconds: u32,
    /// Glob patterns (`*`, `?`) an `extension` must match to be dialled; unset: 2-6 digits only.
    pub dial_allow: Option<StringList>,
    /// A call still waiting for a slot this long ends `failed` instead of being dialled late;
    /// 0 = waiting calls never expire.
    pub queue_max_age_seconds: u32,
}

impl CallsConfig {
    /// `queue_max_age_seconds` as a duration; `None` when 0 (never).
    pub fn queue_max_age(&self) -> Option<std::time::Duration> {
        (self.queue_max_age_seconds > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.queue_max_age_seconds)))
    }
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            queue_limit: 100,
            shutdown_grace_seconds: 30,
            dial_allow: None,
            queue_max_age_seconds: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// HMAC-SHA256 key for `Webhook-Signature`.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// Give up retrying a delivery this long after the call ended.
    pub max_retry_seconds: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_seconds: u64,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Callback hosts allowed (names, IPs, CIDR ranges); empty: all but loopback and link-local.
    pub allow_hosts: StringList,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            secret: None,
            secret_file: None,
            max_retry_seconds: 86_400,
            initial_backoff_ms: 1_000,
            max_backoff_seconds: 3_600,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            allow_hosts: StringList::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechConfig {
    /// Text-to-speech engine: flite (default), espeak, piper, wyoming, openai.
    pub tts: String,
    /// Speech-to-text engine: auto (default: whisper when a model is installed, else
    /// pocketsphinx), pocketsphinx, whisper, wyoming, openai.
    pub stt: String,
    pub wyoming: WyomingConfig,
    pub openai: OpenAiConfig,
    pub piper: PiperConfig,
    pub whisper: WhisperConfig,
    pub models: ModelsConfig,
    pub flite: FliteConfig,
    pub espeak: EspeakConfig,
    pub pocketsphinx: PocketSphinxConfig,
    pub vad: VadConfig,
    pub cache: SpeechCacheConfig,
    /// In-process decodes (whisper, PocketSphinx) running at once; 0 = one less than the CPU
    /// cores, at least 1.
    pub max_decodes: u32,
    /// Decodes that may wait for a slot; past that, a reply fails at once and is asked again.
    pub decode_queue: u32,
    /// How long a reply's decode may wait for a slot before it fails and is asked again.
    pub decode_deadline_ms: u64,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        Self {
            tts: "flite".into(),
            stt: "auto".into(),
            wyoming: WyomingConfig::default(),
            openai: OpenAiConfig::default(),
            piper: PiperConfig::default(),
            whisper: WhisperConfig::default(),
            models: ModelsConfig::default(),
            flite: FliteConfig::default(),
            espeak: EspeakConfig::default(),
            pocketsphinx: PocketSphinxConfig::default(),
            vad: VadConfig::default(),
            cache: SpeechCacheConfig::default(),
            max_decodes: 0,
            decode_queue: 16,
            decode_deadline_ms: 3000,
        }
    }
}

/// `[speech.flite]`: the embedded default TTS (English only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FliteConfig {
    /// slt (default), kal, awb or rms; a call's `voice` overrides it.
    pub voice: String,
}

impl Default for FliteConfig {
    fn default() -> Self {
        Self { voice: "slt".into() }
    }
}

/// `[speech.espeak]`: eSpeak NG as a subprocess (100+ languages).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EspeakConfig {
    /// The command to run.
    pub command: String,
    /// Voice when a call names neither voice nor language.
    pub voice: String,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        Self {
            command: "espeak-ng".into(),
            voice: "en-us".into(),
        }
    }
}

/// `[speech.pocketsphinx]`: the embedded default STT (English).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PocketSphinxConfig {
    pub model_dir: PathBuf,
    pub dict: PathBuf,
    /// Lowest path score per second of audio an answer may have (negative; higher = stricter).
    pub reject_threshold: i64,
    /// Path score per second from which an answer is kept without the decoy check.
    pub accept_threshold: i64,
    /// Lowest acoustic score of a silence segment in an answer's path (speech swallowed by it).
    pub silence_threshold: i64,
    /// Check answers between the two thresholds against a grammar of decoy words.
    pub decoys: bool,
    /// Noise floor added to a reply before decoding, in dB below its level (0 = none).
    pub noise_floor_db: u8,
    /// Keyword spotting of the answer phrases inside free speech when the grammar found none:
    /// a phrase counts when it beats a phone loop by 1e-(spot_threshold / 10) per phone (0 = off).
    pub spot_threshold: u32,
}

impl Default for PocketSphinxConfig {
    fn default() -> Self {
        Self {
            model_dir: defaults::DEFAULT_MODEL_DIR.into(),
            dict: defaults::DEFAULT_DICT.into(),
            reject_threshold: defaults::DEFAULT_REJECT_THRESHOLD,
            accept_threshold: defaults::DEFAULT_ACCEPT_THRESHOLD,
            silence_threshold: defaults::DEFAULT_SILENCE_THRESHOLD,
            decoys: true,
            noise_floor_db: defaults::DEFAULT_NOISE_FLOOR_DB,
            spot_threshold: defaults::DEFAULT_SPOT_THRESHOLD,
        }
    }
}

/// `[speech.vad]`: when the caller has finished speaking.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// Silence that ends an answer.
    pub hangover_ms: u32,
    /// Shorter sounds are ignored.
    pub min_speech_ms: u32,
    /// An answer is cut after this long.
    pub max_utterance_seconds: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            hangover_ms: 500,
            min_speech_ms: 150,
            max_utterance_seconds: 10,
        }
    }
}

/// `[speech.cache]`: rendered prompts kept for reuse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeechCacheConfig {
    /// Memory for cached audio, in bytes (0 = no memory cache).
    pub memory_bytes: u64,
    /// Also keep renderings in `<store.data_dir>/tts-cache/` (those used at least twice).
    pub disk: bool,
    /// Most bytes the disk cache may hold; the least recently used files go first.
    pub disk_bytes: u64,
}

impl Default for SpeechCacheConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 32 * 1024 * 1024,
            disk: true,
            disk_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// Folder of WebAssembly choice-matcher components (`NAME.wasm`); watched for changes.
    pub dir: PathBuf,
    /// How often the folder is looked at for changes; 0 = never (SIGHUP reloads it).
    pub poll_ms: u64,
    /// The hook used when a request names none; `None` = the built-in matcher.
    pub default: Option<String>,
    /// Wall-clock limit of one hook call (epoch deadline).
    pub timeout_ms: u64,
    /// Memory limit of one hook call: all its linear memories and tables together.
    pub memory_bytes: u64,
    /// Fuel (roughly, wasm instructions) of one hook call.
    pub fuel: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./hooks"),
            poll_ms: 2000,
            default: None,
            timeout_ms: 50,
            memory_bytes: 16 * 1024 * 1024,
            fuel: 100_000_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `sip_assistant=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

impl Config {
    /// The parsed API listen address (validated at load time).
    pub fn api_listen(&self) -> SocketAddr {
        self.api
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8080)))
    }

    /// The configuration as TOML with every secret value replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// Check every rule; all broken rules are reported, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::check(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documented_values() {
        let c = Config::default();
        c.validate().expect("defaults valid");
        assert_eq!(c.api.listen, "127.0.0.1:8080");
        assert!(c.calls.dial_allow.is_none() && c.webhook.allow_hosts.0.is_empty());
        assert_eq!(c.sip.local_port, 5060);
        assert_eq!((c.media.rtp_port_min, c.media.rtp_port_max), (40000, 40999));
        assert_eq!(c.store.data_dir, PathBuf::from("./data"));
        assert_eq!(c.calls.max_concurrent, 4);
        assert_eq!(c.sip.register_expires, 300);
    }

    #[test]
    fn redacted_output_hides_secrets() {
        let mut c = Config::default();
        c.sip.password = Some(Secret::new("hunter2"));
        c.api.token = Some(Secret::new("tok-123456"));
        let out = c.to_redacted_toml();
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("tok-123456"), "{out}");
        assert!(out.contains("<redacted>"), "{out}");
    }
}
