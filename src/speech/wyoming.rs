//! Wyoming engines: text to speech and speech to text on servers that speak the Home Assistant
//! voice protocol over TCP (`wyoming-piper`, `wyoming-faster-whisper`, ...). One connection per
//! request. The wire format is in [`codec`], the connection in [`client`].

pub mod client;
pub mod codec;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use self::client::Connection;
use self::codec::Event;
use super::remote::{language_code, millis, remote, s16le_bytes, s16le_to_mono, unavailable};
use super::{
    Alternative, BoxFuture, Pcm, Recognition, RecognitionContext, Recognizer, SpeechError, SynthRequest,
    Synthesizer, Utterance,
};
use crate::config::WyomingConfig;

const ENGINE: &str = "wyoming";
/// Synthesized audio longer than this is refused (10 minutes at 48 kHz).
const MAX_TTS_SAMPLES: usize = 48_000 * 600;
/// Audio pushed to the server is sent in chunks of at most this many samples (1 s at 16 kHz).
const STT_CHUNK: usize = 16_000;

/// One voice (TTS) or model (STT) a server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoItem {
    pub name: String,
    pub languages: Vec<String>,
}

/// One program of a server's `info` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoProgram {
    pub name: String,
    pub version: Option<String>,
    /// Voices of a TTS program, models of an ASR program.
    pub items: Vec<InfoItem>,
}

/// What a server says it offers (`describe` -> `info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerInfo {
    pub tts: Vec<InfoProgram>,
    pub asr: Vec<InfoProgram>,
}

impl ServerInfo {
    fn programs(data: &serde_json::Map<String, Value>, key: &str, items_key: &str) -> Vec<InfoProgram> {
        let list = data
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        list.iter()
            .filter(|p| p.get("installed").and_then(Value::as_bool) != Some(false))
            .map(|p| InfoProgram {
                name: p.get("name").and_then(Value::as_str).unwrap_or("?").to_string(),
                version: p.get("version").and_then(Value::as_str).map(str::to_string),
                items: p
                    .get(items_key)
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|i| i.get("installed").and_then(Value::as_bool) != Some(false))
                    .filter_map(|i| {
                        Some(InfoItem {
                            name: i.get("name")?.as_str()?.to_string(),
                            languages: i
                                .get("languages")
                                .and_then(Value::as_array)
                                .map(|l| l.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                                .unwrap_or_default(),
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    pub fn from_event(e: &Event) -> Self {
        Self {
            tts: Self::programs(&e.data, "tts", "voices"),
            asr: Self::programs(&e.data, "asr", "models"),
        }
    }
}

/// Ask the server at `addr` what it offers.
pub async fn describe(
    addr: &str,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<ServerInfo, SpeechError> {
    let mut conn = Connection::connect(ENGINE, addr, connect_timeout).await?;
    let deadline = Instant::now() + timeout;
    conn.send(&Event::new("describe"), deadline).await?;
    loop {
        let e = conn.recv(deadline, "info").await?;
        if e.kind == "info" {
            return Ok(ServerInfo::from_event(&e));
        }
    }
}

fn summary(programs: &[InfoProgram], what: &str) -> String {
    programs
        .iter()
        .map(|p| {
            let version = p.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
            format!("{}{version} ({} {what})", p.name, p.items.len())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text to speech on a Wyoming server.
#[derive(Debug, Clone)]
pub struct WyomingSynthesizer {
    address: String,
    voice: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl WyomingSynthesizer {
    pub fn new(config: &WyomingConfig) -> Result<Self, SpeechError> {
        if config.tts_address.trim().is_empty() {
            return Err(SpeechError::Invalid("speech.wyoming.tts_address is empty".into()));
        }
        Ok(Self {
            address: config.tts_address.clone(),
            voice: config.voice.clone(),
            connect_timeout: millis(config.connect_timeout_ms),
            request_timeout: millis(config.request_timeout_ms),
        })
    }

    /// Whether the server answers `describe` with a TTS program (and the configured voice):
    /// `Ok` with what it runs, else `Unavailable` saying what to start or set.
    pub async fn probe(&self) -> Result<String, SpeechError> {
        let info = describe(&self.address, self.connect_timeout, self.request_timeout)
            .await
            .map_err(|e| {
                unavailable(
                    ENGINE,
                    format!(
                        "no Wyoming TTS server answers at {} ({e}); start one, e.g. `wyoming-piper --uri tcp://{} \
                         --voice en_US-joe-medium --data-dir DIR --local-files-only`, or set speech.wyoming.tts_address",
                        self.address, self.address
                    ),
                )
            })?;
        if info.tts.is_empty() {
            return Err(unavailable(
                ENGINE,
                format!("the Wyoming server at {} offers no text to speech", self.address),
            ));
        }
        if let Some(voice) = &self.voice {
            if !info.tts.iter().any(|p| p.items.iter().any(|v| &v.name == voice)) {
                return Err(unavailable(
                    ENGINE,
                    format!(
                        "the Wyoming server at {} has no voice '{voice}' (speech.wyoming.voice)",
                        self.address
                    ),
                ));
            }
        }
        Ok(format!(
            "Wyoming TTS at {}: {}",
            self.address,
            summary(&info.tts, "voices")
        ))
    }

    async fn run(&self, req: &SynthRequest) -> Result<Pcm, SpeechError> {
        if req.text.trim().is_empty() {
            return Err(SpeechError::Invalid("nothing to say: the text is empty".into()));
        }
        let deadline = Instant::now() + self.request_timeout;
        let mut conn = client::before(
            ENGINE,
            deadline,
            "connecting",
            Connection::connect(ENGINE, &self.address, self.connect_timeout),
        )
        .await?;
        let mut data = json!({ "text": req.text });
        if let Some(voice) = req.voice.as_ref().or(self.voice.as_ref()) {
            data["voice"] = json!({ "name": voice });
        }
        conn.send(&Event::new("synthesize").with_data(data), deadline)
            .await?;
        let mut audio = AudioCollector::default();
        loop {
            let e = conn.recv(deadline, "audio").await?;
            match e.kind.as_str() {
                "audio-start" => audio.format(&e, conn.addr())?,
                "audio-chunk" => audio.chunk(&e, conn.addr())?,
                "audio-stop" => return audio.finish(conn.addr()),
                _ => {} // other events (e.g. synthesize-stopped) carry nothing we need
            }
        }
    }
}

/// Assembles `audio-start` / `audio-chunk` events into mono PCM.
#[derive(Debug, Default)]
struct AudioCollector {
    /// (rate, channels) once known.
    format: Option<(u32, usize)>,
    samples: Vec<i16>,
    /// Bytes of a frame split across chunks.
    partial: Vec<u8>,
}

impl AudioCollector {
    fn read_format(e: &Event, addr: &str) -> Result<Option<(u32, usize)>, SpeechError> {
        let (Some(rate), Some(width), Some(channels)) = (e.uint("rate"), e.uint("width"), e.uint("channels"))
        else {
            return Ok(None);
        };
        if width != 2 {
            return Err(remote(
                ENGINE,
                format!("{addr} sent {width}-byte samples; only 16-bit audio is supported"),
            ));
        }
        let rate = u32::try_from(rate).ok().filter(|r| (1000..=384_000).contains(r));
        let channels = usize::try_from(channels).ok().filter(|c| (1..=16).contains(c));
        match (rate, channels) {
            (Some(r), Some(c)) => Ok(Some((r, c))),
            _ => Err(remote(
                ENGINE,
                format!("{addr} sent an unusable audio format: {:?}", e.data),
            )),
        }
    }

    fn format(&mut self, e: &Event, addr: &str) -> Result<(), SpeechError> {
        let Some(f) = Self::read_format(e, addr)? else {
            return Err(remote(
                ENGINE,
                format!("{addr} sent audio-start without rate/width/channels"),
            ));
        };
        if self.format.is_some_and(|old| old != f) {
            return Err(remote(
                ENGINE,
                format!("{addr} changed the audio format mid-stream"),
            ));
        }
        self.format = Some(f);
        Ok(())
    }

    fn chunk(&mut self, e: &Event, addr: &str) -> Result<(), SpeechError> {
        if let Some(f) = Self::read_format(e, addr)? {
            if self.format.is_some_and(|old| old != f) {
                return Err(remote(
                    ENGINE,
                    format!("{addr} changed the audio format mid-stream"),
                ));
            }
            self.format = Some(f);
        }
        let Some((_, channels)) = self.format else {
            return Err(remote(ENGINE, format!("{addr} sent audio before its format")));
        };
        self.partial.extend_from_slice(&e.payload);
        let whole = self.partial.len() / (2 * channels) * (2 * channels);
        s16le_to_mono(&self.partial[..whole], channels, &mut self.samples);
        self.partial.drain(..whole);
        if self.samples.len() > MAX_TTS_SAMPLES {
            return Err(remote(
                ENGINE,
                format!("{addr} sent more than {MAX_TTS_SAMPLES} samples"),
            ));
        }
        Ok(())
    }

    fn finish(self, addr: &str) -> Result<Pcm, SpeechError> {
        match self.format {
            Some((rate, _)) if !self.samples.is_empty() => Ok(Pcm {
                rate,
                samples: self.samples,
            }),
            _ => Err(remote(
                ENGINE,
                format!("{addr} ended the audio without sending any"),
            )),
        }
    }
}

impl Synthesizer for WyomingSynthesizer {
    fn name(&self) -> &str {
        ENGINE
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(self.run(req))
    }
}

/// Speech to text on a Wyoming server; audio streams to it while the caller speaks.
#[derive(Debug, Clone)]
pub struct WyomingRecognizer {
    address: String,
    language: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl WyomingRecognizer {
    pub fn new(config: &WyomingConfig) -> Result<Self, SpeechError> {
        if config.stt_address.trim().is_empty() {
            return Err(SpeechError::Invalid("speech.wyoming.stt_address is empty".into()));
        }
        Ok(Self {
            address: config.stt_address.clone(),
            language: config.language.clone(),
            connect_timeout: millis(config.connect_timeout_ms),
            request_timeout: millis(config.request_timeout_ms),
        })
    }

    /// Whether the server answers `describe` with a speech-to-text program.
    pub async fn probe(&self) -> Result<String, SpeechError> {
        let info = describe(&self.address, self.connect_timeout, self.request_timeout)
            .await
            .map_err(|e| {
                unavailable(
                    ENGINE,
                    format!(
                        "no Wyoming STT server answers at {} ({e}); start one, e.g. `wyoming-faster-whisper --uri tcp://{} \
                         --model MODEL_DIR --data-dir DIR --local-files-only`, or set speech.wyoming.stt_address",
                        self.address, self.address
                    ),
                )
            })?;
        if info.asr.is_empty() {
            return Err(unavailable(
                ENGINE,
                format!("the Wyoming server at {} offers no speech to text", self.address),
            ));
        }
        Ok(format!(
            "Wyoming STT at {}: {}",
            self.address,
            summary(&info.asr, "models")
        ))
    }

    async fn begin(&self, ctx: &RecognitionContext) -> Result<Box<dyn Utterance>, SpeechError> {
        let deadline = Instant::now() + self.connect_timeout + self.request_timeout;
        let mut conn = Connection::connect(ENGINE, &self.address, self.connect_timeout).await?;
        let mut data = json!({});
        if let Some(lang) = ctx
            .language
            .as_ref()
            .or(self.language.as_ref())
            .and_then(|l| language_code(l))
        {
            data["language"] = json!(lang);
        }
        conn.send(&Event::new("transcribe").with_data(data), deadline)
            .await?;
        conn.send(
            &Event::new("audio-start").with_data(json!({"rate": 16000, "width": 2, "channels": 1})),
            deadline,
        )
        .await?;
        Ok(Box::new(WyomingUtterance {
            conn,
            timeout: self.request_timeout,
        }))
    }
}

impl Recognizer for WyomingRecognizer {
    fn name(&self) -> &str {
        ENGINE
    }

    fn start<'a>(
        &'a self,
        ctx: &'a RecognitionContext,
    ) -> BoxFuture<'a, Result<Box<dyn Utterance>, SpeechError>> {
        Box::pin(self.begin(ctx))
    }
}

/// One utterance streaming to a Wyoming server.
struct WyomingUtterance {
    conn: Connection,
    timeout: Duration,
}

impl Utterance for WyomingUtterance {
    fn push<'a>(&'a mut self, pcm16k: &'a [i16]) -> BoxFuture<'a, Result<Option<String>, SpeechError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.timeout;
            for chunk in pcm16k.chunks(STT_CHUNK) {
                let e = Event::new("audio-chunk")
                    .with_data(json!({"rate": 16000, "width": 2, "channels": 1}))
                    .with_payload(s16le_bytes(chunk));
                self.conn.send(&e, deadline).await?;
            }
            Ok(None)
        })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<Recognition, SpeechError>> {
        let mut this = *self;
        Box::pin(async move {
            let deadline = Instant::now() + this.timeout;
            this.conn.send(&Event::new("audio-stop"), deadline).await?;
            loop {
                let e = this.conn.recv(deadline, "the transcript").await?;
                if e.kind == "transcript" {
                    let text = e.text("text").unwrap_or_default().trim().to_string();
                    return Ok(if text.is_empty() {
                        Recognition::NoMatch { transcript: None }
                    } else {
                        Recognition::Heard(vec![Alternative {
                            transcript: text,
                            confidence: None,
                        }])
                    });
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, data: Value, payload: &[i16]) -> Event {
        Event::new(kind)
            .with_data(data)
            .with_payload(s16le_bytes(payload))
    }

    #[test]
    fn collector_mixes_stereo_and_joins_split_frames() {
        let mut c = AudioCollector::default();
        c.format(
            &ev(
                "audio-start",
                json!({"rate": 22050, "width": 2, "channels": 2}),
                &[],
            ),
            "x",
        )
        .unwrap();
        let bytes = s16le_bytes(&[10, 30, -4, -6]);
        c.chunk(&Event::new("audio-chunk").with_payload(bytes[..3].to_vec()), "x")
            .unwrap();
        c.chunk(&Event::new("audio-chunk").with_payload(bytes[3..].to_vec()), "x")
            .unwrap();
        assert_eq!(
            c.finish("x").unwrap(),
            Pcm {
                rate: 22050,
                samples: vec![20, -5]
            }
        );
    }

    #[test]
    fn collector_rejects_bad_formats() {
        let mut c = AudioCollector::default();
        assert!(c.chunk(&ev("audio-chunk", json!({}), &[1]), "x").is_err());
        assert!(c
            .format(
                &ev(
                    "audio-start",
                    json!({"rate": 16000, "width": 4, "channels": 1}),
                    &[]
                ),
                "x"
            )
            .is_err());
        assert!(c
            .format(
                &ev("audio-start", json!({"rate": 0, "width": 2, "channels": 1}), &[]),
                "x"
            )
            .is_err());
        c.format(
            &ev(
                "audio-start",
                json!({"rate": 16000, "width": 2, "channels": 1}),
                &[],
            ),
            "x",
        )
        .unwrap();
        assert!(c
            .chunk(
                &ev(
                    "audio-chunk",
                    json!({"rate": 8000, "width": 2, "channels": 1}),
                    &[1]
                ),
                "x"
            )
            .is_err());
        assert!(AudioCollector::default().finish("x").is_err());
    }

    #[test]
    fn info_lists_installed_programs() {
        let e = Event::new("info").with_data(json!({
            "asr": [{"name": "faster-whisper", "version": "3", "installed": true,
                     "models": [{"name": "tiny.en", "languages": ["en"], "installed": true}]}],
            "tts": [{"name": "old", "installed": false, "voices": []},
                    {"name": "piper", "voices": [{"name": "joe", "languages": ["en_US"]}, {"bad": 1}]}],
        }));
        let info = ServerInfo::from_event(&e);
        assert_eq!(info.asr[0].items[0].name, "tiny.en");
        assert_eq!(info.tts.len(), 1);
        assert_eq!(
            info.tts[0].items,
            vec![InfoItem {
                name: "joe".into(),
                languages: vec!["en_US".into()]
            }]
        );
        assert_eq!(ServerInfo::from_event(&Event::new("info")), ServerInfo::default());
    }
}
