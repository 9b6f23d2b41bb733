//! OpenAI-compatible HTTP speech engines (OpenAI, speaches, LocalAI, whisper.cpp's server):
//! `POST {base}/v1/audio/speech` for text to speech (WAV asked for) and
//! `POST {base}/v1/audio/transcriptions` (multipart, a 16 kHz WAV of the utterance) for speech to
//! text. Requests go through the project's [`HttpClient`].

use std::time::Duration;

use serde_json::{json, Value};

use super::remote::{language_code, millis, remote, unavailable};
use super::{
    wav, Alternative, BoxFuture, Pcm, Recognition, RecognitionContext, Recognizer, SpeechError, SynthRequest,
    Synthesizer, Utterance,
};
use crate::config::{OpenAiConfig, Secret};
use crate::http_client::{HttpClient, HttpError, HttpResponse};

const ENGINE: &str = "openai";
/// Largest speech response accepted (~6 minutes of 48 kHz 16-bit mono).
const MAX_AUDIO_BYTES: usize = 32 * 1024 * 1024;
/// Largest transcription response accepted.
const MAX_JSON_BYTES: usize = 1024 * 1024;
/// Longest utterance sent for transcription (16 kHz samples: 2 minutes).
const MAX_UTTERANCE_SAMPLES: usize = 16_000 * 120;
/// Whisper's prompt is bounded (224 tokens); the synonyms are cut well before.
const MAX_PROMPT_CHARS: usize = 600;

/// The server, its key, and our client with the configured timeouts.
#[derive(Clone)]
struct Endpoint {
    http: HttpClient,
    base: String,
    api_key: Option<Secret>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn new(config: &OpenAiConfig) -> Result<Self, SpeechError> {
        let url = url::Url::parse(&config.base_url).map_err(|e| {
            SpeechError::Invalid(format!("speech.openai.base_url '{}': {e}", config.base_url))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SpeechError::Invalid(format!(
                "speech.openai.base_url must be http:// or https:// (got '{}')",
                config.base_url
            )));
        }
        let base = config.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base).to_string();
        let connect_timeout = millis(config.connect_timeout_ms);
        let request_timeout = millis(config.request_timeout_ms);
        Ok(Self {
            http: HttpClient::new(connect_timeout, request_timeout),
            base,
            api_key: config.api_key.clone(),
            connect_timeout,
            request_timeout,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.base)
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("Accept", "application/json, audio/wav".to_string())];
        if let Some(key) = &self.api_key {
            h.push(("Authorization", format!("Bearer {}", key.expose())));
        }
        h
    }

    fn transport_error(&self, path: &str, e: HttpError) -> SpeechError {
        match e {
            HttpError::Timeout(ms) => remote(ENGINE, format!("{} timed out after {ms} ms", self.url(path))),
            e => remote(ENGINE, format!("{}: {e}", self.url(path))),
        }
    }

    async fn send(
        &self,
        method: http_types::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        limit: usize,
    ) -> Result<HttpResponse, SpeechError> {
        let headers = self.headers();
        let borrowed: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, v.clone())).collect();
        let resp = self
            .http
            .send(method, &self.url(path), &borrowed, body, limit)
            .await
            .map_err(|e| self.transport_error(path, e))?;
        if !(200..300).contains(&resp.status) {
            return Err(remote(
                ENGINE,
                format!(
                    "{} answered HTTP {}: {}",
                    self.url(path),
                    resp.status,
                    server_message(&resp.body)
                ),
            ));
        }
        if let Some(e) = &resp.body_error {
            return Err(remote(
                ENGINE,
                format!("{}: reading the response: {e}", self.url(path)),
            ));
        }
        if resp.truncated {
            return Err(remote(
                ENGINE,
                format!("{} sent more than {limit} bytes", self.url(path)),
            ));
        }
        Ok(resp)
    }

    /// Whether `GET /v1/models` answers and the key is accepted.
    async fn probe(&self) -> Result<String, SpeechError> {
        match self.send(http_types::Method::Get, "models", None, MAX_JSON_BYTES).await {
            Ok(_) => Ok(format!("OpenAI-compatible API at {} answers", self.base)),
            Err(SpeechError::Remote { detail, .. }) if detail.contains("HTTP 401") || detail.contains("HTTP 403") => {
                Err(unavailable(
                    ENGINE,
                    format!("{detail}; set speech.openai.api_key or speech.openai.api_key_file"),
                ))
            }
            // Any other HTTP answer (404 from servers without a model list) means it is up.
            Err(SpeechError::Remote { detail, .. }) if detail.contains(" answered HTTP ") => {
                Ok(format!("OpenAI-compatible API at {} answers", self.base))
            }
            Err(e) => Err(unavailable(
                ENGINE,
                format!(
                    "{e}; start an OpenAI-compatible server or set speech.openai.base_url (connect timeout {} ms)",
                    self.connect_timeout.as_millis()
                ),
            )),
        }
    }
}

/// The human part of an error body: OpenAI's `{"error": {"message"}}`, FastAPI's `{"detail"}`,
/// a plain `{"message"}`/`{"error": "..."}`, else the start of the text.
fn server_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error"));
        match found {
            Some(Value::String(s)) => return s.chars().take(500).collect(),
            Some(other) => return other.to_string().chars().take(500).collect(),
            None => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.chars().take(300).collect()
    }
}

/// Text to speech through `POST /v1/audio/speech`.
#[derive(Debug, Clone)]
pub struct OpenAiSynthesizer {
    endpoint: Endpoint,
    model: String,
    voice: String,
}

impl OpenAiSynthesizer {
    pub fn new(config: &OpenAiConfig) -> Result<Self, SpeechError> {
        Ok(Self {
            endpoint: Endpoint::new(config)?,
            model: config.tts_model.clone(),
            voice: config.voice.clone(),
        })
    }

    /// Whether the API answers and accepts the key; `Unavailable` says what to set.
    pub async fn probe(&self) -> Result<String, SpeechError> {
        self.endpoint.probe().await
    }

    async fn run(&self, req: &SynthRequest) -> Result<Pcm, SpeechError> {
        if req.text.trim().is_empty() {
            return Err(SpeechError::Invalid("nothing to say: the text is empty".into()));
        }
        let body = json!({
            "model": self.model,
            "input": req.text,
            "voice": req.voice.as_deref().unwrap_or(&self.voice),
            "response_format": "wav",
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| SpeechError::Invalid(e.to_string()))?;
        let resp = self
            .endpoint
            .send(
                http_types::Method::Post,
                "audio/speech",
                Some(("application/json", bytes)),
                MAX_AUDIO_BYTES,
            )
            .await?;
        let pcm = wav::read(&resp.body).map_err(|e| {
            let ct = resp.content_type.as_deref().unwrap_or("no content type");
            remote(
                ENGINE,
                format!(
                    "{} sent audio we cannot read ({ct}, {} bytes): {e}",
                    self.endpoint.url("audio/speech"),
                    resp.body.len()
                ),
            )
        })?;
        if pcm.samples.is_empty() {
            return Err(remote(
                ENGINE,
                format!("{} sent an empty WAV", self.endpoint.url("audio/speech")),
            ));
        }
        Ok(pcm)
    }
}

impl Synthesizer for OpenAiSynthesizer {
    fn name(&self) -> &str {
        ENGINE
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(self.run(req))
    }
}

/// Speech to text through `POST /v1/audio/transcriptions`. The utterance is buffered (the API
/// takes a whole file) and sent at end of speech.
#[derive(Debug, Clone)]
pub struct OpenAiRecognizer {
    endpoint: Endpoint,
    model: String,
    language: Option<String>,
}

impl OpenAiRecognizer {
    pub fn new(config: &OpenAiConfig) -> Result<Self, SpeechError> {
        Ok(Self {
            endpoint: Endpoint::new(config)?,
            model: config.stt_model.clone(),
            language: config.language.clone(),
        })
    }

    /// Whether the API answers and accepts the key; `Unavailable` says what to set.
    pub async fn probe(&self) -> Result<String, SpeechError> {
        self.endpoint.probe().await
    }

    /// The request timeout, for callers that bound a whole utterance.
    pub fn request_timeout(&self) -> Duration {
        self.endpoint.request_timeout
    }
}

/// The options' own words (values and synonyms) as Whisper's prompt: distinct, in order,
/// comma-separated, bounded; the spoken option numbers are left out. (Also the embedded whisper
/// engine's initial prompt.)
pub(crate) fn prompt(ctx: &RecognitionContext) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::new();
    for p in ctx.phrases.iter().filter(|p| !p.spoken_number) {
        let t = p.text.trim();
        if t.is_empty() || seen.iter().any(|s| s.eq_ignore_ascii_case(t)) {
            continue;
        }
        if out.len() + t.len() + 2 > MAX_PROMPT_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(t);
        seen.push(t);
    }
    (!out.is_empty()).then_some(out)
}

/// A `multipart/form-data` body: text fields, then the file.
fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let rng = crate::rng::XorShift64::from_entropy();
    let boundary = loop {
        let b = format!("sip-assistant-{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        let clash =
            file.windows(b.len()).any(|w| w == b.as_bytes()) || fields.iter().any(|(_, v)| v.contains(&b));
        if !clash {
            break b;
        }
    };
    let mut body = Vec::with_capacity(file.len() + 1024);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Recognizer for OpenAiRecognizer {
    fn name(&self) -> &str {
        ENGINE
    }

    fn start<'a>(
        &'a self,
        ctx: &'a RecognitionContext,
    ) -> BoxFuture<'a, Result<Box<dyn Utterance>, SpeechError>> {
        let language = ctx
            .language
            .as_ref()
            .or(self.language.as_ref())
            .and_then(|l| language_code(l));
        let utterance = OpenAiUtterance {
            endpoint: self.endpoint.clone(),
            model: self.model.clone(),
            language,
            prompt: prompt(ctx),
            samples: Vec::new(),
        };
        Box::pin(async move { Ok(Box::new(utterance) as Box<dyn Utterance>) })
    }
}

struct OpenAiUtterance {
    endpoint: Endpoint,
    model: String,
    language: Option<String>,
    prompt: Option<String>,
    samples: Vec<i16>,
}

impl OpenAiUtterance {
    async fn transcribe(self) -> Result<Recognition, SpeechError> {
        if self.samples.is_empty() {
            return Ok(Recognition::NoMatch { transcript: None });
        }
        let file = wav::write(&Pcm {
            rate: 16_000,
            samples: self.samples,
        });
        let mut fields = vec![("model", self.model.as_str()), ("response_format", "json")];
        if let Some(l) = &self.language {
            fields.push(("language", l.as_str()));
        }
        if let Some(p) = &self.prompt {
            fields.push(("prompt", p.as_str()));
        }
        let (content_type, body) = multipart(&fields, "utterance.wav", &file);
        let resp = self
            .endpoint
            .send(
                http_types::Method::Post,
                "audio/transcriptions",
                Some((content_type.as_str(), body)),
                MAX_JSON_BYTES,
            )
            .await?;
        let url = self.endpoint.url("audio/transcriptions");
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            remote(
                ENGINE,
                format!("{url} sent no JSON ({e}): {}", server_message(&resp.body)),
            )
        })?;
        let text = v
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| remote(ENGINE, format!("{url} sent JSON without \"text\"")))?
            .trim()
            .to_string();
        Ok(if text.is_empty() {
            Recognition::NoMatch { transcript: None }
        } else {
            Recognition::Heard(vec![Alternative {
                transcript: text,
                confidence: None,
            }])
        })
    }
}

impl Utterance for OpenAiUtterance {
    fn push<'a>(&'a mut self, pcm16k: &'a [i16]) -> BoxFuture<'a, Result<Option<String>, SpeechError>> {
        let result = if self.samples.len() + pcm16k.len() > MAX_UTTERANCE_SAMPLES {
            Err(SpeechError::Invalid(format!(
                "utterance longer than {} s",
                MAX_UTTERANCE_SAMPLES / 16_000
            )))
        } else {
            self.samples.extend_from_slice(pcm16k);
            Ok(None)
        };
        Box::pin(async move { result })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Recognition, SpeechError>> {
        Box::pin(self.transcribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::Phrase;

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(br#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(server_message(br#"{"detail":"no model"}"#), "no model");
        assert_eq!(server_message(br#"{"error":"flat"}"#), "flat");
        assert_eq!(
            server_message(b"  Internal Server Error\n"),
            "Internal Server Error"
        );
        assert_eq!(server_message(b""), "(empty body)");
    }

    #[test]
    fn prompt_is_distinct_and_bounded() {
        let phrase = |t: &str| Phrase::answer(t, 0);
        let ctx = RecognitionContext {
            language: None,
            phrases: vec![
                phrase("yes"),
                phrase("Yes"),
                phrase(" "),
                phrase("I confirm"),
                phrase("no"),
                Phrase {
                    text: "option two".into(),
                    option: 1,
                    spoken_number: true,
                },
            ],
        };
        assert_eq!(prompt(&ctx).as_deref(), Some("yes, I confirm, no"));
        assert_eq!(prompt(&RecognitionContext::default()), None);
        let long = RecognitionContext {
            language: None,
            phrases: (0..500).map(|i| phrase(&format!("word{i}"))).collect(),
        };
        assert!(prompt(&long).is_some_and(|p| p.len() <= MAX_PROMPT_CHARS));
    }

    #[test]
    fn multipart_layout() {
        let (ct, body) = multipart(&[("model", "m")], "u.wav", b"RIFF");
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n"
        )));
        assert!(text.contains("filename=\"u.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn base_url_forms() {
        let mut c = OpenAiConfig::default();
        for base in ["http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"] {
            c.base_url = base.into();
            assert_eq!(Endpoint::new(&c).unwrap().url("models"), "http://h:1/v1/models");
        }
        c.base_url = "ftp://h".into();
        assert!(Endpoint::new(&c).is_err());
    }
}
