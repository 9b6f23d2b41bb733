//! Reading the far end's SDP (an answer to our offer, or an offer in a re-INVITE) and choosing the
//! audio stream, codec, DTMF payload type, addresses and direction from it.
//!
//! Parsing is in two steps: [`parse`] splits the body into session-level fields and media sections
//! (checking only the grammar every SDP must follow: `v=0` first, `<letter>=<value>` lines, `m=` lines
//! with media, port, transport and formats); [`negotiate`] then interprets only what the chosen
//! audio section needs, so a strange video section or an unknown attribute cannot fail a call.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{codec_list, echo, Codec, Direction, Negotiated, SdpError};

/// Read the far end's answer to our offer (RFC 3264 §5, §6).
///
/// `offered` is the codec list of our offer. The audio stream is the first `m=audio` line with a
/// non-zero port; its codec is the first payload type in its format list that we offered and
/// understand (PT 0 and 8 without `a=rtpmap`; any PT whose `a=rtpmap` says `PCMU/8000`,
/// `PCMA/8000` or `opus/48000[/2]`, names compared ignoring case).
pub fn parse_answer(sdp: &[u8], offered: &[Codec]) -> Result<Negotiated, SdpError> {
    let text = String::from_utf8_lossy(sdp);
    let parsed = parse(&text)?;
    negotiate(&parsed, offered).map(|choice| choice.negotiated)
}

/// Read an offer the far end sends (a re-INVITE putting the call on hold or resuming it) with the
/// same rules as [`parse_answer`]: the far end's format order is its preference, and wins.
///
/// `supported` is the codec list we are willing to use. To answer the offer, see
/// [`super::build_answer`].
pub fn parse_remote_offer(sdp: &[u8], supported: &[Codec]) -> Result<Negotiated, SdpError> {
    parse_answer(sdp, supported)
}

/// One `<letter>=<value>` line that turned out to matter later, kept for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    pub(super) kind: char,
    pub(super) value: &'a str,
}

impl Line<'_> {
    fn malformed(self) -> SdpError {
        SdpError::Malformed {
            line: echo(&format!("{}={}", self.kind, self.value)),
        }
    }
}

/// Fields that may appear at session level and at media level; media level wins.
#[derive(Debug, Default)]
pub(super) struct Level<'a> {
    /// The first `c=` line.
    connection: Option<Line<'a>>,
    /// The last direction attribute.
    direction: Option<Direction>,
    /// The value of the last `a=ptime`.
    ptime: Option<&'a str>,
}

/// One media section: its `m=` line and the attributes we may need.
#[derive(Debug)]
pub(super) struct Media<'a> {
    /// `audio`, `video`, `image`, ... as written.
    pub(super) kind: &'a str,
    pub(super) port: u16,
    /// The transport (`RTP/AVP`, `RTP/SAVP`, `udptl`, ...), as written.
    pub(super) proto: &'a str,
    /// The format list (payload types for RTP), at least one entry.
    pub(super) formats: Vec<&'a str>,
    level: Level<'a>,
    /// `a=rtpmap` entries: payload type and encoding (`opus/48000/2`), first one per PT kept.
    rtpmaps: Vec<(u8, &'a str)>,
    /// The value of the first `a=rtcp`.
    rtcp: Option<&'a str>,
}

impl<'a> Media<'a> {
    fn rtpmap(&self, pt: u8) -> Option<&'a str> {
        self.rtpmaps.iter().find(|(p, _)| *p == pt).map(|(_, enc)| *enc)
    }

    /// The RTP payload types of the format list, in order, skipping entries that are not numbers
    /// in 0..=127.
    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt <= 127)
    }
}

/// A parsed body: session-level fields and the media sections in order.
#[derive(Debug)]
pub(super) struct Sdp<'a> {
    session: Level<'a>,
    pub(super) media: Vec<Media<'a>>,
}

/// What [`negotiate`] picked: the index of the audio section in [`Sdp::media`], the result, and the
/// clock rate of the DTMF payload type (for writing an answer).
#[derive(Debug)]
pub(super) struct Choice {
    pub(super) index: usize,
    pub(super) negotiated: Negotiated,
    pub(super) dtmf_clock_rate: Option<u32>,
}

/// Split a body into lines and sections, checking the grammar every SDP follows.
pub(super) fn parse(text: &str) -> Result<Sdp<'_>, SdpError> {
    let mut lines = text.split('\n').map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return Err(SdpError::Empty);
    };
    let version = split_line(first)?;
    if version.kind != 'v' || version.value != "0" {
        return Err(version.malformed());
    }
    let mut sdp = Sdp {
        session: Level::default(),
        media: Vec::new(),
    };
    for raw in lines {
        let line = split_line(raw)?;
        if line.kind == 'm' {
            sdp.media.push(parse_media_line(line)?);
            continue;
        }
        match sdp.media.last_mut() {
            Some(media) => media_line(media, line),
            None => session_line(&mut sdp.session, line),
        }
    }
    Ok(sdp)
}

/// `<letter>=<value>`, tolerating whitespace around the `=` (the line is already trimmed).
fn split_line(raw: &str) -> Result<Line<'_>, SdpError> {
    let malformed = || SdpError::Malformed { line: echo(raw) };
    let (kind, value) = raw.split_once('=').ok_or_else(malformed)?;
    let mut chars = kind.trim_end().chars();
    match (chars.next(), chars.next()) {
        (Some(kind), None) if kind.is_ascii_alphabetic() => Ok(Line {
            kind: kind.to_ascii_lowercase(),
            value: value.trim(),
        }),
        _ => Err(malformed()),
    }
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 4566 §5.14).
fn parse_media_line(line: Line<'_>) -> Result<Media<'_>, SdpError> {
    let mut fields = line.value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(line.malformed());
    };
    let formats: Vec<&str> = fields.collect();
    // Everything here may be echoed into an answer: printable ASCII only.
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if formats.is_empty() || ![kind, port, proto].iter().chain(&formats).all(|f| printable(f)) {
        return Err(line.malformed());
    }
    let port = port.split_once('/').map_or(port, |(base, _count)| base);
    let port = port.parse::<u16>().map_err(|_| line.malformed())?;
    Ok(Media {
        kind,
        port,
        proto,
        formats,
        level: Level::default(),
        rtpmaps: Vec::new(),
        rtcp: None,
    })
}

/// An `a=` line's name and value (`rtpmap`, `0 PCMU/8000`); the value is empty for flags.
fn attribute(value: &str) -> (&str, &str) {
    match value.split_once(':') {
        Some((name, rest)) => (name.trim(), rest.trim()),
        None => (value, ""),
    }
}

/// A line that can appear at either level; returns false when it is none of those.
fn level_line<'a>(level: &mut Level<'a>, line: Line<'a>) -> bool {
    match line.kind {
        'c' => {
            level.connection.get_or_insert(line);
            true
        }
        'a' => {
            let (name, value) = attribute(line.value);
            if let Some(direction) = Direction::from_attribute(name) {
                level.direction = Some(direction);
                true
            } else if name.eq_ignore_ascii_case("ptime") {
                level.ptime = Some(value);
                true
            } else {
                false
            }
        }
        _ => false,
    }
}

fn session_line<'a>(session: &mut Level<'a>, line: Line<'a>) {
    // Everything else at session level (o=, s=, t=, b=, unknown attributes) is not needed.
    level_line(session, line);
}

fn media_line<'a>(media: &mut Media<'a>, line: Line<'a>) {
    if level_line(&mut media.level, line) || line.kind != 'a' {
        return;
    }
    let (name, value) = attribute(line.value);
    if name.eq_ignore_ascii_case("rtpmap") {
        // `<pt> <encoding>/<rate>[/<channels>]`; an unreadable one is ignored like an unknown one.
        let Some((pt, encoding)) = value.split_once(|c: char| c.is_ascii_whitespace()) else {
            return;
        };
        let Ok(pt) = pt.parse::<u8>() else {
            return;
        };
        if pt <= 127 && media.rtpmap(pt).is_none() {
            media.rtpmaps.push((pt, encoding.trim()));
        }
    } else if name.eq_ignore_ascii_case("rtcp") && media.rtcp.is_none() {
        media.rtcp = Some(value);
    }
}

/// An `a=rtpmap` encoding split into lower-case name, clock rate and channel count (if written).
fn encoding(encoding: &str) -> Option<(Cow<'_, str>, u32, Option<u32>)> {
    let mut parts = encoding.split('/').map(str::trim);
    let name = parts.next()?;
    let rate = parts.next()?.parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(ch) => Some(ch.parse::<u32>().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    Some((name, rate, channels))
}

/// The codec an `a=rtpmap` encoding stands for, if we know it.
fn codec_of_encoding(enc: &str) -> Option<Codec> {
    let (name, rate, channels) = encoding(enc)?;
    let codec = Codec::ALL
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(&name))?;
    let channels_ok = match codec {
        Codec::Pcmu | Codec::Pcma => matches!(channels, None | Some(1)),
        // RFC 7587 requires `/2`; `/1` and none are seen in the wild and mean the same codec.
        Codec::Opus => matches!(channels, None | Some(1) | Some(2)),
    };
    (rate == codec.clock_rate() && channels_ok).then_some(codec)
}

/// The clock rate of an RFC 4733 `telephone-event` encoding.
fn telephone_event_rate(enc: &str) -> Option<u32> {
    let (name, rate, _) = encoding(enc)?;
    (name == "telephone-event" && rate > 0).then_some(rate)
}

/// The transports we can answer: plain RTP, and AVPF (RFC 4585), which an AVP endpoint can serve.
fn supported_profile(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// Choose the audio section and read everything [`Negotiated`] holds from it.
pub(super) fn negotiate(sdp: &Sdp<'_>, supported: &[Codec]) -> Result<Choice, SdpError> {
    let mut audio = sdp
        .media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind.eq_ignore_ascii_case("audio"))
        .peekable();
    if audio.peek().is_none() {
        return Err(SdpError::NoAudio);
    }
    let mut live = audio.filter(|(_, m)| m.port != 0).peekable();
    let Some((_, first_live)) = live.peek() else {
        return Err(SdpError::Rejected);
    };
    let first_profile = first_live.proto;
    let Some((index, media)) = live.find(|(_, m)| supported_profile(m.proto)) else {
        return Err(SdpError::UnsupportedProfile {
            profile: echo(first_profile),
        });
    };

    let (payload_type, codec) = media
        .payload_types()
        .find_map(|pt| {
            let codec = match media.rtpmap(pt) {
                Some(enc) => codec_of_encoding(enc),
                None => Codec::from_static_payload_type(pt),
            }?;
            supported.contains(&codec).then_some((pt, codec))
        })
        .ok_or_else(|| SdpError::NoCommonCodec {
            offered: codec_list(supported),
        })?;

    let events: Vec<(u8, u32)> = media
        .payload_types()
        .filter_map(|pt| Some((pt, telephone_event_rate(media.rtpmap(pt)?)?)))
        .collect();
    let dtmf = events
        .iter()
        .find(|(_, rate)| *rate == codec.clock_rate())
        .or_else(|| events.first())
        .copied();

    let connection = media
        .level
        .connection
        .or(sdp.session.connection)
        .ok_or(SdpError::NoConnection)?;
    let remote_ip = connection_address(connection)?;

    let remote_rtcp_port = media
        .rtcp
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .unwrap_or_else(|| media.port.saturating_add(1));

    let direction = media
        .level
        .direction
        .or(sdp.session.direction)
        .unwrap_or_default();
    let ptime_ms = media.level.ptime.or(sdp.session.ptime).and_then(parse_ptime);
    let on_hold =
        matches!(direction, Direction::SendOnly | Direction::Inactive) || remote_ip.is_unspecified();

    Ok(Choice {
        index,
        negotiated: Negotiated {
            codec,
            payload_type,
            clock_rate: codec.clock_rate(),
            channels: codec.channels(),
            remote_ip,
            remote_port: media.port,
            remote_rtcp_port,
            direction,
            dtmf_payload_type: dtmf.map(|(pt, _)| pt),
            ptime_ms,
            on_hold,
        },
        dtmf_clock_rate: dtmf.map(|(_, rate)| rate),
    })
}

/// `c=IN IP4 <address>[/<ttl>[/<count>]]` or `c=IN IP6 <address>[/<count>]` (RFC 4566 §5.7).
fn connection_address(line: Line<'_>) -> Result<IpAddr, SdpError> {
    let mut fields = line.value.split_ascii_whitespace();
    let (Some(net), Some(addr_type), Some(address)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(line.malformed());
    };
    let bad = || SdpError::BadAddress {
        address: echo(&format!("{net} {addr_type} {address}")),
    };
    if !net.eq_ignore_ascii_case("IN")
        || !(addr_type.eq_ignore_ascii_case("IP4") || addr_type.eq_ignore_ascii_case("IP6"))
    {
        return Err(bad());
    }
    let address = address.split_once('/').map_or(address, |(a, _)| a);
    let address = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    address.parse::<IpAddr>().map_err(|_| bad())
}

/// `a=ptime` value in whole milliseconds; tolerates a fraction (`20.0`), ignores nonsense and 0.
fn parse_ptime(value: &str) -> Option<u32> {
    let whole = value.split_once('.').map_or(value, |(w, _)| w);
    whole.trim().parse::<u32>().ok().filter(|ms| *ms > 0)
}
