//! Sans-IO codec for Wyoming events (the Home Assistant voice protocol).
//!
//! An event on the wire is one JSON header line `{"type", "data"?, "data_length"?,
//! "payload_length"?, "version"?}` ended by `\n`, then `data_length` bytes of a JSON object that is
//! merged into `data`, then `payload_length` bytes of binary payload (audio). The decoder takes
//! bytes in any slicing, bounds every size, and never panics; after an error the stream is out of
//! step and the decoder stays failed.

use serde_json::{Map, Value};

/// The protocol version we write in headers.
pub const VERSION: &str = "1.5.2";

/// One event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.into(),
            ..Self::default()
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// A string field of `data`.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer field of `data`.
    pub fn uint(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }

    /// The bytes of this event on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut header = Map::new();
        header.insert("type".into(), Value::String(self.kind.clone()));
        header.insert("version".into(), Value::String(VERSION.into()));
        let data = if self.data.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.data).unwrap_or_default()
        };
        if !data.is_empty() {
            header.insert("data_length".into(), Value::from(data.len()));
        }
        if !self.payload.is_empty() {
            header.insert("payload_length".into(), Value::from(self.payload.len()));
        }
        let mut out = serde_json::to_vec(&header).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(&data);
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Size bounds for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header: usize,
    pub data: usize,
    pub payload: usize,
}

impl Default for Limits {
    /// A header line of 64 KiB, 4 MiB of data (wyoming-piper's `info` lists every known voice:
    /// ~90 KB), 4 MiB of payload (audio chunks are usually 2-8 KB).
    fn default() -> Self {
        Self {
            header: 64 * 1024,
            data: 4 * 1024 * 1024,
            payload: 4 * 1024 * 1024,
        }
    }
}

/// Why the byte stream is not a Wyoming event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("header line longer than {0} bytes")]
    HeaderTooLong(usize),
    #[error("bad event header: {0}")]
    BadHeader(String),
    #[error("{what} of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        what: &'static str,
        len: u64,
        limit: usize,
    },
    #[error("bad event data: {0}")]
    BadData(String),
    #[error("stream already failed")]
    Failed,
}

#[derive(Debug)]
enum State {
    Header,
    Body {
        event: Event,
        data_len: usize,
        payload_len: usize,
    },
    Failed,
}

/// Incremental decoder: [`Decoder::feed`] bytes, then take events with [`Decoder::next_event`].
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed (compacted lazily).
    pos: usize,
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            state: State::Header,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Failed) {
            return;
        }
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet part of a returned event.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, CodecError> {
        let result = self.step();
        if result.is_err() {
            self.state = State::Failed;
            self.buf = Vec::new();
            self.pos = 0;
        }
        result
    }

    fn step(&mut self) -> Result<Option<Event>, CodecError> {
        loop {
            match &mut self.state {
                State::Failed => return Err(CodecError::Failed),
                State::Header => {
                    let pending = &self.buf[self.pos..];
                    let Some(nl) = pending.iter().position(|&b| b == b'\n') else {
                        if pending.len() > self.limits.header {
                            return Err(CodecError::HeaderTooLong(self.limits.header));
                        }
                        return Ok(None);
                    };
                    if nl > self.limits.header {
                        return Err(CodecError::HeaderTooLong(self.limits.header));
                    }
                    let line = &pending[..nl];
                    self.pos += nl + 1;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue; // tolerate blank lines between events
                    }
                    self.state = parse_header(line, &self.limits)?;
                }
                State::Body {
                    event,
                    data_len,
                    payload_len,
                } => {
                    let need = *data_len + *payload_len;
                    if self.buf.len() - self.pos < need {
                        return Ok(None);
                    }
                    let data = &self.buf[self.pos..self.pos + *data_len];
                    let payload = &self.buf[self.pos + *data_len..self.pos + need];
                    let mut event = std::mem::take(event);
                    if !data.is_empty() {
                        match serde_json::from_slice::<Value>(data) {
                            Ok(Value::Object(extra)) => event.data.extend(extra),
                            Ok(_) => return Err(CodecError::BadData("not a JSON object".into())),
                            Err(e) => return Err(CodecError::BadData(e.to_string())),
                        }
                    }
                    event.payload = payload.to_vec();
                    self.pos += need;
                    self.state = State::Header;
                    return Ok(Some(event));
                }
            }
        }
    }
}

fn length(header: &Map<String, Value>, key: &'static str, limit: usize) -> Result<usize, CodecError> {
    match header.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => {
            let len = v
                .as_u64()
                .ok_or_else(|| CodecError::BadHeader(format!("{key} is not a non-negative integer")))?;
            match usize::try_from(len) {
                Ok(n) if n <= limit => Ok(n),
                _ => Err(CodecError::TooLarge {
                    what: key,
                    len,
                    limit,
                }),
            }
        }
    }
}

fn parse_header(line: &[u8], limits: &Limits) -> Result<State, CodecError> {
    let header = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(CodecError::BadHeader("not a JSON object".into())),
        Err(e) => return Err(CodecError::BadHeader(e.to_string())),
    };
    let kind = match header.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(CodecError::BadHeader("no \"type\" string".into())),
    };
    let data = match header.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(CodecError::BadHeader("\"data\" is not an object".into())),
    };
    Ok(State::Body {
        event: Event {
            kind,
            data,
            payload: Vec::new(),
        },
        data_len: length(&header, "data_length", limits.data)?,
        payload_len: length(&header, "payload_length", limits.payload)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_all(bytes: &[u8], step: usize) -> Result<Vec<Event>, CodecError> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(step.max(1)) {
            d.feed(chunk);
            while let Some(e) = d.next_event()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    #[test]
    fn round_trip_in_any_slicing() {
        let events = vec![
            Event::new("describe"),
            Event::new("synthesize").with_data(json!({"text": "héllo", "voice": {"name": "joe"}})),
            Event::new("audio-chunk")
                .with_data(json!({"rate": 16000, "width": 2, "channels": 1}))
                .with_payload((0..=255).collect()),
        ];
        let wire: Vec<u8> = events.iter().flat_map(Event::encode).collect();
        for step in [1, 2, 7, 64, wire.len()] {
            assert_eq!(decode_all(&wire, step).unwrap(), events, "step {step}");
        }
    }

    #[test]
    fn inline_data_merges_with_data_bytes() {
        let wire = b"{\"type\":\"transcript\",\"data\":{\"a\":1,\"text\":\"x\"},\"data_length\":14}\n{\"text\":\"yes\"}";
        let e = decode_all(wire, 5).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].text("text"), Some("yes"));
        assert_eq!(e[0].uint("a"), Some(1));
    }

    #[test]
    fn bad_input_is_an_error_and_sticks() {
        for bad in [
            &b"not json\n"[..],
            b"[1,2]\n",
            b"{\"data\":{}}\n",
            b"{\"type\":\"x\",\"data\":3}\n",
            b"{\"type\":\"x\",\"data_length\":-1}\n",
            b"{\"type\":\"x\",\"payload_length\":1e3}\n",
            b"{\"type\":\"x\",\"payload_length\":99999999999}\n",
            b"{\"type\":\"x\",\"data_length\":2}\n[]",
        ] {
            let mut d = Decoder::default();
            d.feed(bad);
            assert!(d.next_event().is_err(), "{}", String::from_utf8_lossy(bad));
            d.feed(&Event::new("ok").encode());
            assert_eq!(d.next_event(), Err(CodecError::Failed));
        }
    }

    #[test]
    fn header_is_bounded_without_a_newline() {
        let mut d = Decoder::new(Limits {
            header: 16,
            data: 16,
            payload: 16,
        });
        d.feed(&[b'{'; 17]);
        assert_eq!(d.next_event(), Err(CodecError::HeaderTooLong(16)));
    }

    #[test]
    fn mutated_streams_never_panic() {
        let wire: Vec<u8> = [
            Event::new("audio-start").with_data(json!({"rate": 22050, "width": 2, "channels": 1})),
            Event::new("audio-chunk").with_payload(vec![1; 40]),
            Event::new("audio-stop"),
        ]
        .iter()
        .flat_map(Event::encode)
        .collect();
        let mut rng = crate::testing::TestRng::seeded(0x9E37_79B9);
        for _ in 0..3000 {
            let mut v = wire.clone();
            for _ in 0..3 {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            let _ = decode_all(&v, rng.below(13) + 1);
        }
    }
}
