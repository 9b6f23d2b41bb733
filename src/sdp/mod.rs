//! SDP offer/answer for one audio stream (RFC 4566 syntax, RFC 3264 offer/answer model).
//!
//! This module owns three things:
//!
//! - [`build_offer`]: the SDP body of our INVITE. It lists the configured codecs in preference order
//!   (PCMU as PT 0, PCMA as PT 8, Opus as dynamic PT 111 with the RFC 7587 `fmtp`), then RFC 4733
//!   `telephone-event/8000` (PT 101) and, when Opus is offered, `telephone-event/48000` (PT 102).
//! - [`parse_answer`]: reads the far end's answer and returns what was agreed, as [`Negotiated`]: the
//!   codec and payload type to send, where to send RTP and RTCP, the DTMF payload type, the stream
//!   direction and whether the far end holds the call.
//! - [`parse_remote_offer`] and [`build_answer`]: the same negotiation for an offer the far end sends
//!   (a re-INVITE for hold or resume), and an RFC 3264 §6 answer to it (a `sendonly` offer is answered
//!   `recvonly`, streams we do not take are rejected with port 0, one `m=` line per offered one).
//!
//! It is sans-IO: bytes in, values out. The parsers never panic, whatever the input; they accept
//! LF-only line endings, stray whitespace, blank lines, unknown lines and attributes, and media
//! sections we do not use (video, T.38, ...). Errors are [`SdpError`] values whose `Display` text is
//! fit for a call's `error` field; any text they quote from the far end is shortened and escaped.
//!
//! ```
//! use sip_assistant::sdp::{build_offer, parse_answer, Codec, OfferParams};
//!
//! let params = OfferParams {
//!     address: "192.0.2.10".to_string(),
//!     rtp_port: 40000,
//!     session_id: 1,
//!     session_version: 1,
//!     codecs: vec![Codec::Pcma, Codec::Pcmu],
//!     ptime_ms: 20,
//! };
//! let offer = build_offer(&params);
//! // (INVITE goes out with `offer`; the 200 OK comes back with the answer.)
//! let answer = "v=0\r\no=- 7 7 IN IP4 192.0.2.99\r\ns=-\r\nc=IN IP4 192.0.2.99\r\nt=0 0\r\n\
//!               m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
//! let agreed = parse_answer(answer.as_bytes(), &params.codecs).unwrap();
//! assert_eq!(agreed.codec, Codec::Pcma);
//! assert_eq!(agreed.remote_port, 30000);
//! assert_eq!(agreed.dtmf_payload_type, Some(101));
//! # let _ = offer;
//! ```

mod answer;
mod offer;

use std::fmt;
use std::net::IpAddr;

pub use answer::{parse_answer, parse_remote_offer};
pub use offer::{build_answer, build_offer, OfferParams};

/// Payload type of Opus in our offer (dynamic, RFC 3551 §6).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Payload type of `telephone-event/8000` (RFC 4733) in our offer.
pub const TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 101;
/// Payload type of `telephone-event/48000` in our offer, present when Opus is offered.
pub const TELEPHONE_EVENT_48K_PAYLOAD_TYPE: u8 = 102;

/// How much of a far-end value an error message quotes.
const ERROR_ECHO_CHARS: usize = 64;

/// An audio codec this service can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0, 8 kHz mono.
    Pcmu,
    /// G.711 A-law, static payload type 8, 8 kHz mono.
    Pcma,
    /// Opus (RFC 7587): RTP clock 48 kHz, `opus/48000/2` in `a=rtpmap` whatever is actually sent.
    Opus,
}

impl Codec {
    /// Every codec, in the default preference order.
    pub const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

    /// The encoding name as SDP writes it (`PCMU`, `PCMA`, `opus`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// The codec an encoding name stands for, ignoring ASCII case (`pcmu`, `PCMA`, `Opus`); also the
    /// way a configuration file names codecs.
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The RTP clock rate in Hz: 8000 for G.711, 48000 for Opus (RFC 7587 §4.1, whatever the
    /// audio bandwidth).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The channel count `a=rtpmap` carries: 1 for G.711, 2 for Opus (RFC 7587 §7 requires
    /// `opus/48000/2`; whether a stream is really stereo is the `stereo`/`sprop-stereo` business).
    pub fn channels(self) -> u8 {
        match self {
            Codec::Pcmu | Codec::Pcma => 1,
            Codec::Opus => 2,
        }
    }

    /// The payload type we use for this codec in an offer: 0, 8 (static) or 111 (dynamic).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::Opus => OPUS_PAYLOAD_TYPE,
        }
    }

    /// The codec a static payload type means without any `a=rtpmap` (RFC 3551 table 4).
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The `a=rtpmap` value after the payload type: `PCMU/8000`, `PCMA/8000`, `opus/48000/2`.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU/8000",
            Codec::Pcma => "PCMA/8000",
            Codec::Opus => "opus/48000/2",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A media stream's direction attribute (RFC 4566 §6, RFC 3264 §5.1), as the party that wrote the
/// SDP sees it: `SendOnly` in the far end's SDP means the far end sends and will not receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv`, also what an SDP without a direction attribute means.
    #[default]
    SendRecv,
    /// `a=sendonly`: the writer sends, it does not receive (it holds the call, RFC 3264 §8.4).
    SendOnly,
    /// `a=recvonly`: the writer receives, it does not send.
    RecvOnly,
    /// `a=inactive`: no media either way (also a hold).
    Inactive,
}

impl Direction {
    /// The attribute name, as written after `a=`.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction the other party writes for the same stream (RFC 3264 §6.1): sendonly and
    /// recvonly swap, sendrecv and inactive stay.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether the writer of this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer of this direction accepts media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.attribute().eq_ignore_ascii_case(name))
    }
}

/// What an offer/answer exchange agreed on for the audio stream, from the far end's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec to send (the far end's first listed format that we support).
    pub codec: Codec,
    /// The payload type the far end uses for [`Negotiated::codec`] (its number, not necessarily ours).
    pub payload_type: u8,
    /// The RTP clock rate of the codec, in Hz.
    pub clock_rate: u32,
    /// The codec's `a=rtpmap` channel count ([`Codec::channels`]).
    pub channels: u8,
    /// Where to send RTP: the media-level `c=` address, else the session-level one. `0.0.0.0` (or
    /// `::`) means "send nothing" (RFC 3264 §8.4) and sets [`Negotiated::on_hold`].
    pub remote_ip: IpAddr,
    /// The far end's RTP port (never 0: a zero port is [`SdpError::Rejected`]).
    pub remote_port: u16,
    /// The far end's RTCP port: `a=rtcp:` (RFC 3605) if present, else the RTP port + 1.
    pub remote_rtcp_port: u16,
    /// The stream direction as the far end wrote it (media level over session level; sendrecv when
    /// absent).
    pub direction: Direction,
    /// The far end's `telephone-event` payload type, preferring the one at the codec's clock rate,
    /// else the first one listed at any rate.
    pub dtmf_payload_type: Option<u8>,
    /// `a=ptime` in milliseconds (media level over session level), if given.
    pub ptime_ms: Option<u32>,
    /// The far end holds the call: its direction is `sendonly` or `inactive`, or its connection
    /// address is `0.0.0.0` / `::` (RFC 2543-style hold).
    pub on_hold: bool,
}

/// Why a far-end SDP body cannot be used. The `Display` text is written for a call's `error` field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is empty or only whitespace.
    #[error("the far end sent an empty SDP body")]
    Empty,
    /// There is no `m=audio` line.
    #[error("the far end's SDP has no audio stream")]
    NoAudio,
    /// Every audio stream has port 0: the far end declined audio (RFC 3264 §6).
    #[error("the far end rejected the audio stream (port 0)")]
    Rejected,
    /// The audio stream runs over a transport we do not speak (SRTP, DTLS, ...); we speak RTP/AVP.
    #[error("the far end's audio stream uses transport {profile}, we only support RTP/AVP")]
    UnsupportedProfile {
        /// The `m=` line's transport, quoted and shortened.
        profile: String,
    },
    /// None of the far end's audio formats is one we offered (or support).
    #[error("the far end offers no codec we support ({offered})")]
    NoCommonCodec {
        /// Our codecs, comma separated (`PCMU, PCMA, opus`), or `none`.
        offered: String,
    },
    /// Neither the audio section nor the session has a `c=` line.
    #[error("the far end's SDP has no connection address (c=) for the audio stream")]
    NoConnection,
    /// The `c=` line's address is not an IPv4 or IPv6 address (a host name, another network type).
    #[error("the far end's SDP connection address {address} is not an IP address")]
    BadAddress {
        /// The address as written, quoted and shortened.
        address: String,
    },
    /// A line breaks the SDP grammar: no `v=0` first, no `<letter>=` form, a short `m=` or `c=`
    /// line, an `m=` port that is not a number.
    #[error("malformed SDP line {line}")]
    Malformed {
        /// The offending line, quoted and shortened.
        line: String,
    },
}

/// Quote a far-end value for an error message: shortened, control characters escaped.
fn echo(s: &str) -> String {
    let mut short: String = s.chars().take(ERROR_ECHO_CHARS).collect();
    if short.len() < s.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// `PCMU, PCMA, opus` for a codec list, `none` for an empty one.
fn codec_list(codecs: &[Codec]) -> String {
    if codecs.is_empty() {
        return "none".to_string();
    }
    codecs.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    const ALL: &[Codec] = &Codec::ALL;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    fn params(codecs: &[Codec]) -> OfferParams {
        OfferParams {
            address: "192.0.2.10".to_string(),
            rtp_port: 40000,
            session_id: 4242,
            session_version: 1,
            codecs: codecs.to_vec(),
            ptime_ms: 20,
        }
    }

    /// LF-only text with `\n` turned into CRLF, the way it goes on the wire.
    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    // ---- Real-world answer shapes (written in the style each product sends) ----

    /// baresip 1.0: all common codecs in its own order, telephone-event/8000, its usual extras.
    const BARESIP: &str = "v=0
o=- 1796233186 3051489561 IN IP4 192.168.1.50
s=-
c=IN IP4 192.168.1.50
t=0 0
a=tool:baresip 1.0.0
m=audio 10218 RTP/AVP 0 8 101
b=AS:77
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:1573236385 cname:sip:101@192.168.1.50
a=ptime:20
";

    /// Asterisk chan_pjsip: one codec plus telephone-event, ptime/maxptime, direction last.
    const ASTERISK: &str = "v=0
o=- 1722505521 1722505523 IN IP4 203.0.113.10
s=Asterisk
c=IN IP4 203.0.113.10
t=0 0
m=audio 14662 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
";

    /// Asterisk chan_pjsip answering Opus (it keeps our PT 111, adds its own 48 kHz event type).
    const ASTERISK_OPUS: &str = "v=0
o=- 1722505600 1722505602 IN IP4 203.0.113.10
s=Asterisk
c=IN IP4 203.0.113.10
t=0 0
m=audio 14700 RTP/AVP 111 102
a=rtpmap:111 opus/48000/2
a=fmtp:111 useinbandfec=1
a=rtpmap:102 telephone-event/48000
a=fmtp:102 0-16
a=ptime:20
a=maxptime:60
a=sendrecv
";

    /// FreeSWITCH answering Opus under its own PT 102, with both telephone-event rates listed and
    /// `; `-separated fmtp parameters, RTCP with an address.
    const FREESWITCH: &str = "v=0
o=FreeSWITCH 1718013523 1718013524 IN IP4 198.51.100.7
s=FreeSWITCH
c=IN IP4 198.51.100.7
t=0 0
m=audio 27634 RTP/AVP 102 101 100
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxplaybackrate=16000; sprop-maxcapturerate=16000; maxaveragebitrate=20000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=ptime:20
a=sendrecv
a=rtcp:27635 IN IP4 198.51.100.7
";

    /// SIPp's built-in UAS scenario answer (`[media_port]` = 6000), LF-only as SIPp sends it when
    /// the scenario file has Unix line endings.
    const SIPP_UAS: &str = "v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
";

    /// A Yealink phone answering Opus with only telephone-event/8000 and `a=direction:both`.
    const YEALINK_OPUS: &str = "v=0
o=- 20000 20000 IN IP4 10.1.2.3
s=SDP data
c=IN IP4 10.1.2.3
t=0 0
m=audio 43272 RTP/AVP 102 101
a=rtpmap:102 opus/48000/2
a=fmtp:102 sprop-maxcapturerate=16000; maxaveragebitrate=20000; maxplaybackrate=48000; useinbandfec=1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=rtcp:43273
a=ptime:20
a=direction:both
";

    #[test]
    fn baresip_answer() {
        let n = parse_answer(&crlf(BARESIP), ALL).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.payload_type, 0);
        assert_eq!((n.clock_rate, n.channels), (8000, 1));
        assert_eq!(n.remote_ip, v4(192, 168, 1, 50));
        assert_eq!((n.remote_port, n.remote_rtcp_port), (10218, 10219));
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.dtmf_payload_type, Some(101));
        assert_eq!(n.ptime_ms, Some(20));
        assert!(!n.on_hold);
        // Only PCMA offered: baresip's second choice.
        let n = parse_answer(&crlf(BARESIP), &[Codec::Pcma]).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
    }

    #[test]
    fn asterisk_answers() {
        let n = parse_answer(&crlf(ASTERISK), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
        assert_eq!(n.remote_ip, v4(203, 0, 113, 10));
        assert_eq!((n.remote_port, n.remote_rtcp_port), (14662, 14663));
        assert_eq!(n.dtmf_payload_type, Some(101));
        assert_eq!(n.ptime_ms, Some(20));
        assert_eq!(n.direction, Direction::SendRecv);

        let n = parse_answer(&crlf(ASTERISK_OPUS), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Opus, 111));
        assert_eq!((n.clock_rate, n.channels), (48000, 2));
        assert_eq!(n.dtmf_payload_type, Some(102));
    }

    #[test]
    fn freeswitch_opus_answer_prefers_48k_events() {
        let n = parse_answer(&crlf(FREESWITCH), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type, n.clock_rate), (Codec::Opus, 102, 48000));
        assert_eq!(
            n.dtmf_payload_type,
            Some(100),
            "telephone-event at the codec's rate"
        );
        assert_eq!((n.remote_port, n.remote_rtcp_port), (27634, 27635));
        assert_eq!(n.remote_ip, v4(198, 51, 100, 7));
        // Opus not offered: nothing else in the answer is ours.
        assert_eq!(
            parse_answer(&crlf(FREESWITCH), &[Codec::Pcmu, Codec::Pcma]),
            Err(SdpError::NoCommonCodec {
                offered: "PCMU, PCMA".to_string()
            })
        );
    }

    #[test]
    fn sipp_default_uas_answer_lf_only() {
        let n = parse_answer(SIPP_UAS.as_bytes(), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 0));
        assert_eq!(n.remote_ip, v4(127, 0, 0, 1));
        assert_eq!((n.remote_port, n.remote_rtcp_port), (6000, 6001));
        assert_eq!(n.dtmf_payload_type, None);
        assert_eq!(n.ptime_ms, None);
        assert_eq!(n.direction, Direction::SendRecv);
    }

    #[test]
    fn yealink_opus_with_8k_events_only_and_explicit_rtcp() {
        let n = parse_answer(&crlf(YEALINK_OPUS), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Opus, 102));
        assert_eq!(
            n.dtmf_payload_type,
            Some(101),
            "no 48 kHz events: any rate will do"
        );
        assert_eq!((n.remote_port, n.remote_rtcp_port), (43272, 43273));
    }

    // ---- Hold, connection addresses ----

    /// A phone's hold re-INVITE offer (a=sendonly), as Asterisk relays it.
    const HOLD_SENDONLY: &str = "v=0
o=- 1722505521 1722505524 IN IP4 203.0.113.10
s=Asterisk
c=IN IP4 203.0.113.10
t=0 0
m=audio 14662 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendonly
";

    /// RFC 2543-style hold: connection address 0.0.0.0, no direction attribute.
    const HOLD_ZERO_ADDRESS: &str = "v=0
o=- 3 4 IN IP4 192.0.2.7
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 5004 RTP/AVP 0
";

    #[test]
    fn hold_sendonly_reinvite_and_answer() {
        let n = parse_remote_offer(&crlf(HOLD_SENDONLY), ALL).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);
        assert!(n.on_hold);
        assert_eq!(n.codec, Codec::Pcma);

        let (agreed, answer) = build_answer(&params(ALL), &crlf(HOLD_SENDONLY)).unwrap();
        assert_eq!(agreed, n);
        assert!(answer.contains("\r\na=recvonly\r\n"), "{answer}");
        assert!(answer.contains("\r\nm=audio 40000 RTP/AVP 8 101\r\n"), "{answer}");
        assert!(answer.contains("\r\na=rtpmap:101 telephone-event/8000\r\n"));
        // Our answer read back as the far end would: it may only send.
        let back = parse_answer(answer.as_bytes(), ALL).unwrap();
        assert_eq!(back.direction, Direction::RecvOnly);
        assert_eq!((back.codec, back.payload_type), (Codec::Pcma, 8));
        assert!(!back.on_hold);
    }

    #[test]
    fn hold_inactive_and_resume() {
        let inactive = HOLD_SENDONLY.replace("a=sendonly", "a=inactive");
        let (n, answer) = build_answer(&params(ALL), inactive.as_bytes()).unwrap();
        assert!(n.on_hold);
        assert_eq!(n.direction, Direction::Inactive);
        assert!(answer.contains("\r\na=inactive\r\n"));

        let resume = HOLD_SENDONLY.replace("a=sendonly", "a=sendrecv");
        let (n, answer) = build_answer(&params(ALL), resume.as_bytes()).unwrap();
        assert!(!n.on_hold);
        assert!(answer.contains("\r\na=sendrecv\r\n"));
    }

    #[test]
    fn hold_with_zero_address() {
        let n = parse_remote_offer(&crlf(HOLD_ZERO_ADDRESS), ALL).unwrap();
        assert!(n.on_hold);
        assert_eq!(n.remote_ip, v4(0, 0, 0, 0));
        assert_eq!(n.direction, Direction::SendRecv);
        let (_, answer) = build_answer(&params(ALL), &crlf(HOLD_ZERO_ADDRESS)).unwrap();
        assert!(
            answer.contains("\r\na=recvonly\r\n"),
            "nowhere to send to: {answer}"
        );
        // Same in an answer (a 200 OK on hold), and with IPv6's unspecified address.
        assert!(parse_answer(&crlf(HOLD_ZERO_ADDRESS), ALL).unwrap().on_hold);
        let v6 = HOLD_ZERO_ADDRESS.replace("c=IN IP4 0.0.0.0", "c=IN IP6 ::");
        assert!(parse_answer(v6.as_bytes(), ALL).unwrap().on_hold);
    }

    #[test]
    fn session_level_direction_and_media_override() {
        let session_only = SIPP_UAS.replace("t=0 0\n", "t=0 0\na=sendonly\n");
        let n = parse_answer(session_only.as_bytes(), ALL).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);
        assert!(n.on_hold);
        let overridden = format!("{session_only}a=sendrecv\n");
        let n = parse_answer(overridden.as_bytes(), ALL).unwrap();
        assert_eq!(n.direction, Direction::SendRecv);
        assert!(!n.on_hold);
        // recvonly from the far end is not a hold: it still listens.
        let recvonly = format!("{SIPP_UAS}a=recvonly\n");
        assert!(!parse_answer(recvonly.as_bytes(), ALL).unwrap().on_hold);
    }

    #[test]
    fn session_level_connection_only() {
        let n = parse_answer(SIPP_UAS.as_bytes(), ALL).unwrap();
        assert_eq!(n.remote_ip, v4(127, 0, 0, 1));
    }

    #[test]
    fn media_level_connection_overrides_session() {
        let sdp = "v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 7078 RTP/AVP 0 101
c=IN IP4 172.16.5.9
a=rtpmap:101 telephone-event/8000
";
        let n = parse_answer(sdp.as_bytes(), ALL).unwrap();
        assert_eq!(n.remote_ip, v4(172, 16, 5, 9));
        // Media-level only, no session c=.
        let media_only = sdp.replace("c=IN IP4 10.0.0.1\n", "");
        assert_eq!(
            parse_answer(media_only.as_bytes(), ALL).unwrap().remote_ip,
            v4(172, 16, 5, 9)
        );
        // A multicast-style TTL suffix is dropped.
        let ttl = sdp.replace("172.16.5.9", "172.16.5.9/127");
        assert_eq!(
            parse_answer(ttl.as_bytes(), ALL).unwrap().remote_ip,
            v4(172, 16, 5, 9)
        );
    }

    #[test]
    fn ipv6_answer() {
        let sdp = "v=0
o=- 8 9 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 16384 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=rtcp:16390 IN IP6 2001:db8::10
a=sendrecv
";
        let n = parse_answer(&crlf(sdp), ALL).unwrap();
        assert_eq!(
            n.remote_ip,
            IpAddr::V6("2001:db8::10".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(
            (n.codec, n.remote_port, n.remote_rtcp_port),
            (Codec::Pcma, 16384, 16390)
        );
    }

    // ---- Errors ----

    #[test]
    fn rejected_audio_port_zero() {
        let rejected = ASTERISK.replace("m=audio 14662", "m=audio 0");
        let err = parse_answer(rejected.as_bytes(), ALL).unwrap_err();
        assert_eq!(err, SdpError::Rejected);
        assert_eq!(err.to_string(), "the far end rejected the audio stream (port 0)");
    }

    #[test]
    fn no_common_codec() {
        let sdp = "v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 5000 RTP/AVP 18 9 96
a=rtpmap:18 G729/8000
a=rtpmap:9 G722/8000
a=rtpmap:96 PCMU/16000
";
        let err = parse_answer(sdp.as_bytes(), ALL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the far end offers no codec we support (PCMU, PCMA, opus)"
        );
        let err = parse_answer(sdp.as_bytes(), &[]).unwrap_err();
        assert_eq!(err.to_string(), "the far end offers no codec we support (none)");
        // A codec we support but did not offer is not taken.
        let err = parse_answer(SIPP_UAS.as_bytes(), &[Codec::Pcma]).unwrap_err();
        assert!(matches!(err, SdpError::NoCommonCodec { .. }));
    }

    #[test]
    fn missing_or_bad_connection() {
        let none = SIPP_UAS.replace("c=IN IP4 127.0.0.1\n", "");
        assert_eq!(parse_answer(none.as_bytes(), ALL), Err(SdpError::NoConnection));
        let host = SIPP_UAS.replace("c=IN IP4 127.0.0.1", "c=IN IP4 pbx.example.com");
        let err = parse_answer(host.as_bytes(), ALL).unwrap_err();
        assert!(matches!(err, SdpError::BadAddress { .. }), "{err:?}");
        assert!(err.to_string().contains("pbx.example.com"), "{err}");
        let atm = SIPP_UAS.replace("c=IN IP4 127.0.0.1", "c=ATM NSAP 47.0091.8100");
        assert!(matches!(
            parse_answer(atm.as_bytes(), ALL),
            Err(SdpError::BadAddress { .. })
        ));
        let short = SIPP_UAS.replace("c=IN IP4 127.0.0.1", "c=IN IP4");
        assert!(matches!(
            parse_answer(short.as_bytes(), ALL),
            Err(SdpError::Malformed { .. })
        ));
    }

    #[test]
    fn no_audio_and_unsupported_profiles() {
        let video_only = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
                          m=video 5002 RTP/AVP 96\na=rtpmap:96 H264/90000\n";
        assert_eq!(parse_answer(video_only.as_bytes(), ALL), Err(SdpError::NoAudio));
        let no_media = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n";
        assert_eq!(parse_answer(no_media.as_bytes(), ALL), Err(SdpError::NoAudio));
        let srtp = ASTERISK.replace("RTP/AVP", "RTP/SAVP");
        let err = parse_answer(srtp.as_bytes(), ALL).unwrap_err();
        assert_eq!(
            err,
            SdpError::UnsupportedProfile {
                profile: "\"RTP/SAVP\"".to_string()
            }
        );
        let webrtc = ASTERISK.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF");
        assert!(matches!(
            parse_answer(webrtc.as_bytes(), ALL),
            Err(SdpError::UnsupportedProfile { .. })
        ));
        // AVPF is served like AVP.
        let avpf = ASTERISK.replace("RTP/AVP", "RTP/AVPF");
        assert_eq!(parse_answer(avpf.as_bytes(), ALL).unwrap().codec, Codec::Pcma);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse_answer(b"", ALL), Err(SdpError::Empty));
        assert_eq!(parse_answer(b" \r\n\r\n\t", ALL), Err(SdpError::Empty));
        for junk in [
            &b"hello world"[..],
            b"\xff\xfe\x00\x01",
            b"<html><body>502 Bad Gateway</body></html>",
            b"v=1\r\n",
            b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n",
            b"v=0\r\nthis is not sdp\r\n",
            b"v=0\r\nm=audio\r\n",
            b"v=0\r\nm=audio 5000 RTP/AVP\r\n",
            b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\nm=audio -1 RTP/AVP 0\r\n",
            b"v=0\r\nab=cd\r\n",
        ] {
            let err = parse_answer(junk, ALL).unwrap_err();
            assert!(matches!(err, SdpError::Malformed { .. }), "{junk:?}: {err:?}");
        }
        // Quoted text is escaped and shortened.
        let long = format!("v=0\r\n{}\u{7}\r\n", "x".repeat(500));
        let msg = parse_answer(long.as_bytes(), ALL).unwrap_err().to_string();
        assert!(msg.len() < 120 && !msg.contains('\u{7}'), "{msg}");
    }

    #[test]
    fn quirks_whitespace_case_and_unknown_lines() {
        let sdp = "\r\n  v=0  \r\n\
                   o=- 1 1 IN IP4 10.0.0.1\r\n\
                   s= \r\n\
                   c=IN  IP4   10.0.0.2 \r\n\
                   t=0 0\r\n\
                   y=0123456789\r\n\
                   \r\n\
                   m=audio  8000\tRTP/AVP   97  98 \r\n\
                   a=rtpmap:97   PCMU/8000 \r\n\
                   a=rtpmap:98 TELEPHONE-EVENT/8000\r\n\
                   a=x-unknown:1 2 3\r\n\
                   a=ptime:20.0\r\n\
                   a=SENDRECV\r\n";
        let n = parse_answer(sdp.as_bytes(), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcmu, 97));
        assert_eq!(n.remote_ip, v4(10, 0, 0, 2));
        assert_eq!(n.dtmf_payload_type, Some(98));
        assert_eq!(n.ptime_ms, Some(20));
        // Dynamic PT with an upper-case Opus name, no channel count.
        let opus = "v=0\nc=IN IP4 10.0.0.3\nm=audio 9000 RTP/AVP 96\na=rtpmap:96 OPUS/48000\n";
        let n = parse_answer(opus.as_bytes(), ALL).unwrap();
        assert_eq!((n.codec, n.payload_type, n.channels), (Codec::Opus, 96, 2));
        // A dynamic PT without rtpmap is unknown; the next format is taken.
        let unmapped = "v=0\nc=IN IP4 10.0.0.3\nm=audio 9000 RTP/AVP 96 8\n";
        assert_eq!(parse_answer(unmapped.as_bytes(), ALL).unwrap().payload_type, 8);
    }

    #[test]
    fn multiple_media_lines() {
        let sdp = "v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=video 5002 RTP/AVP 96
c=IN IP4 10.0.0.99
a=rtpmap:96 H264/90000
a=sendonly
m=audio 0 RTP/AVP 0
m=audio 5000 RTP/AVP 8
m=image 0 udptl t38
";
        let n = parse_answer(sdp.as_bytes(), ALL).unwrap();
        assert_eq!((n.codec, n.remote_port), (Codec::Pcma, 5000));
        assert_eq!(n.remote_ip, v4(10, 0, 0, 1), "the video section's c= is not ours");
        assert_eq!(n.direction, Direction::SendRecv);

        let (_, answer) = build_answer(&params(ALL), sdp.as_bytes()).unwrap();
        let m_lines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            [
                "m=video 0 RTP/AVP 96",
                "m=audio 0 RTP/AVP 0",
                "m=audio 40000 RTP/AVP 8",
                "m=image 0 udptl t38"
            ]
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            SdpError::NoAudio.to_string(),
            "the far end's SDP has no audio stream"
        );
        assert_eq!(
            SdpError::NoConnection.to_string(),
            "the far end's SDP has no connection address (c=) for the audio stream"
        );
        assert_eq!(
            parse_answer(b"hello", ALL).unwrap_err().to_string(),
            "malformed SDP line \"hello\""
        );
    }

    // ---- Our offer ----

    #[test]
    fn offer_text() {
        let offer = build_offer(&params(&[Codec::Opus, Codec::Pcmu, Codec::Pcma]));
        assert_eq!(
            offer,
            "v=0\r\n\
             o=- 4242 1 IN IP4 192.0.2.10\r\n\
             s=sip-assistant\r\n\
             c=IN IP4 192.0.2.10\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 111 0 8 101 102\r\n\
             a=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=20;useinbandfec=1;stereo=0;sprop-stereo=0\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=rtpmap:102 telephone-event/48000\r\n\
             a=fmtp:102 0-16\r\n\
             a=ptime:20\r\n\
             a=rtcp:40001\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn offer_g711_only_ipv6_and_hostile_address() {
        let mut p = params(&[Codec::Pcma, Codec::Pcmu, Codec::Pcma]);
        p.address = "[2001:db8::1]".to_string();
        let offer = build_offer(&p);
        assert!(offer.contains("o=- 4242 1 IN IP6 2001:db8::1\r\n"), "{offer}");
        assert!(offer.contains("c=IN IP6 2001:db8::1\r\n"));
        assert!(
            offer.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"),
            "duplicates once: {offer}"
        );
        assert!(!offer.contains("48000"), "no Opus, no 48 kHz events");

        p.address = "10.0.0.1\r\na=inactive".to_string();
        p.ptime_ms = 0;
        let offer = build_offer(&p);
        assert!(!offer.contains("ptime"));
        assert!(offer
            .split("\r\n")
            .all(|l| !l.contains('\n') && !l.contains('\r')));
        assert!(!offer.contains("\r\na=inactive"), "{offer}");
    }

    #[test]
    fn round_trip_picks_first_preferred() {
        for codecs in [
            vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
            vec![Codec::Pcma, Codec::Pcmu],
            vec![Codec::Opus, Codec::Pcma],
            vec![Codec::Opus],
        ] {
            let p = params(&codecs);
            let n = parse_answer(build_offer(&p).as_bytes(), &codecs).unwrap();
            assert_eq!(n.codec, codecs[0]);
            assert_eq!(n.payload_type, codecs[0].payload_type());
            assert_eq!(n.remote_ip, v4(192, 0, 2, 10));
            assert_eq!((n.remote_port, n.remote_rtcp_port), (40000, 40001));
            assert_eq!(n.ptime_ms, Some(20));
            assert_eq!(n.direction, Direction::SendRecv);
            let events = if codecs[0] == Codec::Opus { 102 } else { 101 };
            assert_eq!(n.dtmf_payload_type, Some(events));
        }
        // IPv6 too.
        let mut p = params(ALL);
        p.address = "2001:db8::5".to_string();
        let n = parse_answer(build_offer(&p).as_bytes(), ALL).unwrap();
        assert_eq!(n.remote_ip, "2001:db8::5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn answer_to_opus_offer_keeps_their_payload_types() {
        // FreeSWITCH as offerer (a re-INVITE): opus at 102, events at 101 and 100.
        let (n, answer) = build_answer(&params(ALL), &crlf(FREESWITCH)).unwrap();
        assert_eq!(
            (n.codec, n.payload_type, n.dtmf_payload_type),
            (Codec::Opus, 102, Some(100))
        );
        assert!(
            answer.contains("\r\nm=audio 40000 RTP/AVP 102 100\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\na=rtpmap:102 opus/48000/2\r\n"));
        assert!(answer.contains("\r\na=fmtp:102 minptime=20;useinbandfec=1;stereo=0;sprop-stereo=0\r\n"));
        assert!(answer.contains("\r\na=rtpmap:100 telephone-event/48000\r\n"));
        let back = parse_answer(answer.as_bytes(), ALL).unwrap();
        assert_eq!(
            (back.codec, back.payload_type, back.dtmf_payload_type),
            (Codec::Opus, 102, Some(100))
        );
        // G.711 only locally: the far end's second choice.
        let (n, _) = build_answer(&params(&[Codec::Pcmu]), &crlf(BARESIP)).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert!(build_answer(&params(&[Codec::Opus]), &crlf(BARESIP)).is_err());
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::from_name(" Opus "), Some(Codec::Opus));
        assert_eq!(Codec::from_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("g729"), None);
        assert_eq!(Codec::Pcmu.to_string(), "PCMU");
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert!(Direction::RecvOnly.receives() && !Direction::RecvOnly.sends());
    }

    // ---- Property: mutated bodies never panic ----

    const INTERESTING: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"=",
        b":",
        b"/",
        b" ",
        b"\t",
        b"0",
        b"65535",
        b"65536",
        b"127",
        b"128",
        b"a=rtpmap:",
        b"telephone-event/",
        b"m=audio ",
        b"c=IN IP6 ",
        b"c=IN IP4 0.0.0.0",
        b"a=rtcp:",
        b"a=sendonly",
        b"opus/48000/2",
        b"\xff",
        b"\0",
        b"\x0b",
        b"[",
        b"::",
    ];

    #[test]
    fn mutated_bodies_never_panic() {
        let seeds: Vec<Vec<u8>> = [
            BARESIP,
            ASTERISK,
            ASTERISK_OPUS,
            FREESWITCH,
            SIPP_UAS,
            YEALINK_OPUS,
            HOLD_SENDONLY,
            HOLD_ZERO_ADDRESS,
        ]
        .iter()
        .map(|s| crlf(s))
        .chain([build_offer(&params(ALL)).into_bytes()])
        .collect();
        let mut rng = crate::testing::TestRng::seeded(0x9e37_79b9_7f4a_7c15);
        let local = params(ALL);
        let mut accepted = 0;
        for i in 0..5000 {
            let body = crate::testing::mutate(&mut rng, &seeds[i % seeds.len()], INTERESTING);
            let codecs = &ALL[..1 + rng.below(3)];
            if let Ok(n) = parse_answer(&body, codecs) {
                accepted += 1;
                assert!(codecs.contains(&n.codec));
                assert!(n.payload_type <= 127 && n.remote_port != 0);
                assert_eq!(n.clock_rate, n.codec.clock_rate());
            }
            if let Ok((n, answer)) = build_answer(&local, &body) {
                assert!(answer.split("\r\n").all(|l| !l.contains(['\r', '\n'])));
                assert!(answer.ends_with("\r\n"));
                let back = parse_answer(answer.as_bytes(), &[n.codec]).unwrap();
                assert_eq!((back.codec, back.payload_type), (n.codec, n.payload_type));
                assert_eq!(back.dtmf_payload_type, n.dtmf_payload_type);
            }
        }
        assert!(
            accepted > 500,
            "mutations too destructive to mean anything: {accepted}"
        );
    }
}
