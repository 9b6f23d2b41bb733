//! SIP messages in and out: parsing with rsip behind a panic guard and sanity checks, header
//! access by name (compact forms included), and building requests and responses that rsip prints.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::header::{parse_cseq, parse_name_addr, parse_via, NameAddr, ViaValue};

/// Why an incoming message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a SIP message: {0}")]
    Syntax(String),
    #[error("the parser failed on this input")]
    ParserPanic,
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    #[error("body shorter than Content-Length ({got} < {want})")]
    ShortBody { got: usize, want: usize },
}

/// A parsed message with the headers every layer needs already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub start: Start,
    /// (lower-case full name, value) in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    pub top_via: ViaValue,
    pub from: NameAddr,
    pub to: NameAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

fn full_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "e" => "content-encoding",
        "s" => "subject",
        _ => return lower,
    }
    .to_string()
}

impl Message {
    /// Every value of `name` (lower-case full name), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match &self.start {
            Start::Response { code, .. } => Some(*code),
            Start::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match &self.start {
            Start::Response { reason, .. } => reason,
            Start::Request { .. } => "",
        }
    }

    /// Every Via value (a header may hold several, comma-separated).
    pub fn vias(&self) -> Vec<String> {
        self.values("via")
            .flat_map(super::header::split_list)
            .map(str::to_string)
            .collect()
    }

    pub fn content_type(&self) -> Option<String> {
        self.value("content-type")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
    }

    /// The first Contact's URI.
    pub fn contact_uri(&self) -> Option<String> {
        self.values("contact")
            .flat_map(super::header::split_list)
            .find_map(parse_name_addr)
            .map(|n| n.uri)
    }
}

/// The reason phrase as it was on the wire (rsip keeps only the code).
fn wire_reason(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    line.trim_end()
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

/// The standard reason phrase of a status code we send.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        423 => "Interval Too Brief",
        484 => "Address Incomplete",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        415 => "Unsupported Media Type",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Longest parser error text we keep (rsip's errors quote the whole input, up to three times).
const MAX_ERROR_CHARS: usize = 160;

/// The first line of a parser error, bounded, with control characters escaped: it ends up in
/// logs, and the input it quotes came from the network.
fn summary(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    let mut out: String = line
        .chars()
        .take(MAX_ERROR_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if line.chars().count() > MAX_ERROR_CHARS {
        out.push('…');
    }
    out
}

/// Parse one datagram or one framed stream message. Never panics; drops what it cannot trust.
pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    let parsed = catch_unwind(AssertUnwindSafe(|| rsip::SipMessage::try_from(bytes)))
        .map_err(|_| ParseError::ParserPanic)?
        .map_err(|e| ParseError::Syntax(summary(&e.to_string())))?;
    let (start, headers, body) = match parsed {
        rsip::SipMessage::Request(r) => (
            Start::Request {
                method: r.method.to_string().to_ascii_uppercase(),
                uri: r.uri.to_string(),
            },
            r.headers,
            r.body,
        ),
        rsip::SipMessage::Response(r) => (
            Start::Response {
                code: r.status_code.code(),
                reason: wire_reason(bytes),
            },
            r.headers,
            r.body,
        ),
    };
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (n, v) = text.split_once(':')?;
            Some((full_name(n), v.trim().to_string()))
        })
        .collect();
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let mut body = body;
    if let Some(len) = get("content-length") {
        let want: usize = len
            .trim()
            .parse()
            .map_err(|_| ParseError::Header("Content-Length"))?;
        if body.len() < want {
            return Err(ParseError::ShortBody {
                got: body.len(),
                want,
            });
        }
        body.truncate(want);
    }
    let call_id = get("call-id")
        .filter(|v| !v.is_empty())
        .ok_or(ParseError::Header("Call-ID"))?
        .to_string();
    let (cseq, cseq_method) = get("cseq")
        .and_then(parse_cseq)
        .ok_or(ParseError::Header("CSeq"))?;
    let top_via = get("via")
        .and_then(|v| super::header::split_list(v).first().copied().and_then(parse_via))
        .ok_or(ParseError::Header("Via"))?;
    let from = get("from")
        .and_then(parse_name_addr)
        .ok_or(ParseError::Header("From"))?;
    let to = get("to")
        .and_then(parse_name_addr)
        .ok_or(ParseError::Header("To"))?;
    Ok(Message {
        start,
        headers,
        body,
        call_id,
        cseq,
        cseq_method,
        top_via,
        from,
        to,
    })
}

/// Headers in order, for building messages.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.0.push((name.to_string(), value.into()));
        self
    }

    fn into_rsip(self, body_len: usize) -> rsip::Headers {
        let mut out: Vec<rsip::Header> = self
            .0
            .into_iter()
            .map(|(n, v)| rsip::Header::Other(n, v))
            .collect();
        out.push(rsip::Header::Other("Content-Length".into(), body_len.to_string()));
        out.into()
    }
}

/// Why an outgoing message could not be built (a URI rsip rejects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build a SIP message: {0}")]
pub struct BuildError(pub String);

/// Print a request.
pub fn build_request(method: &str, uri: &str, headers: Headers, body: &[u8]) -> Result<Vec<u8>, BuildError> {
    let method: rsip::Method = method
        .parse()
        .map_err(|e: rsip::Error| BuildError(e.to_string()))?;
    let uri = rsip::Uri::try_from(uri).map_err(|e| BuildError(format!("{uri}: {e}")))?;
    let req = rsip::Request {
        method,
        uri,
        version: rsip::Version::V2,
        headers: headers.into_rsip(body.len()),
        body: body.to_vec(),
    };
    Ok(req.to_string().into_bytes())
}

/// Print a response to `req`: its Vias, From, To (with `to_tag` added when it has none), Call-ID
/// and CSeq, then `extra` headers and `body`.
pub fn build_response(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: Headers,
    body: &[u8],
) -> Vec<u8> {
    let mut h = Headers::new();
    for via in req.values("via") {
        h.add("Via", via);
    }
    if let Some(v) = req.value("from") {
        h.add("From", v);
    }
    let to = req.value("to").unwrap_or_default();
    match to_tag {
        Some(tag) if req.to.tag().is_none() && code > 100 => h.add("To", format!("{to};tag={tag}")),
        _ => h.add("To", to),
    };
    h.add("Call-ID", req.call_id.as_str());
    h.add("CSeq", format!("{} {}", req.cseq, req.cseq_method));
    h.0.extend(extra.0);
    let resp = rsip::Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers: h.into_rsip(body.len()),
        body: body.to_vec(),
    };
    // rsip prints enum names as reason phrases ("BusyHere"): write the status line ourselves.
    let printed = resp.to_string();
    let rest = printed.split_once("\r\n").map_or("", |(_, r)| r);
    let reason = if reason.is_empty() {
        reason_phrase(code)
    } else {
        reason
    };
    format!("SIP/2.0 {code} {reason}\r\n{rest}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:1001@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\n\
f: <sip:me@127.0.0.1>;tag=t1\r\n\
t: <sip:1001@127.0.0.1>\r\n\
i: call-1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\r\nv=0\r\nextra";

    #[test]
    fn parses_compact_forms_and_trims_to_content_length() {
        let m = parse(INVITE.as_bytes()).expect("parses");
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.call_id, "call-1@127.0.0.1");
        assert_eq!((m.cseq, m.cseq_method.as_str()), (1, "INVITE"));
        assert_eq!(m.top_via.branch(), Some("z9hG4bKabc"));
        assert_eq!(m.from.tag(), Some("t1"));
        assert_eq!(m.body, b"v=0\r");
        assert_eq!(m.content_type().as_deref(), Some("application/sdp"));
    }

    #[test]
    fn drops_what_it_cannot_trust() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x00\xff garbage").is_err());
        let no_callid = INVITE.replace("i: call-1@127.0.0.1\r\n", "");
        assert_eq!(
            parse(no_callid.as_bytes()).err(),
            Some(ParseError::Header("Call-ID"))
        );
        let short = INVITE.replace("l: 4", "l: 400");
        assert!(matches!(
            parse(short.as_bytes()),
            Err(ParseError::ShortBody { .. })
        ));
    }

    #[test]
    fn parser_errors_are_one_bounded_line() {
        // rsip's error for this quotes the whole input three times (6 kB for 2 kB in).
        let mut junk = b"INVITE\x07sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n".to_vec();
        junk.extend(std::iter::repeat_n(b'A', 2_000));
        junk.extend_from_slice(b"\r\n\x1b[31m\r\n\r\nx");
        let Err(ParseError::Syntax(reason)) = parse(&junk) else {
            panic!("not a syntax error");
        };
        // At most MAX_ERROR_CHARS characters, each escaped to at most 10 (`\u{1b}`).
        assert!(
            reason.chars().count() <= MAX_ERROR_CHARS * 10 + 1,
            "{} chars",
            reason.len()
        );
        assert!(!reason.contains(['\r', '\n', '\u{7}', '\u{1b}']), "{reason:?}");
        assert!(reason.contains("INVITE\\u{7}sip:x"), "{reason:?}");
    }

    #[test]
    fn response_echoes_the_request_and_adds_a_tag() {
        let req = parse(INVITE.as_bytes()).expect("parses");
        let mut extra = Headers::new();
        extra.add("Contact", "<sip:me@127.0.0.1:5060>");
        let bytes = build_response(&req, 486, "Busy Here", Some("tt"), extra, b"");
        let resp = parse(&bytes).expect("own response parses");
        assert_eq!(resp.code(), Some(486));
        assert_eq!(resp.to.tag(), Some("tt"));
        assert_eq!(resp.top_via.branch(), Some("z9hG4bKabc"));
        assert_eq!(resp.value("content-length"), Some("0"));
    }

    #[test]
    fn request_round_trip() {
        let mut h = Headers::new();
        h.add("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport")
            .add("From", "<sip:a@h>;tag=1")
            .add("To", "<sip:b@h>")
            .add("Call-ID", "c1")
            .add("CSeq", "2 OPTIONS");
        let bytes = build_request("OPTIONS", "sip:b@h:5080", h, b"").expect("builds");
        let m = parse(&bytes).expect("parses");
        assert_eq!(
            m.start,
            Start::Request {
                method: "OPTIONS".into(),
                uri: "sip:b@h:5080".into()
            }
        );
    }
}
