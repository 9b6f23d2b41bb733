//! Writing our SDP: the offer in an INVITE ([`build_offer`]) and the answer to an offer the far end
//! sends in a re-INVITE ([`build_answer`]). Both use CRLF line endings (RFC 4566 §5).

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use super::answer::{negotiate, parse};
use super::{
    Codec, Direction, Negotiated, SdpError, TELEPHONE_EVENT_48K_PAYLOAD_TYPE, TELEPHONE_EVENT_PAYLOAD_TYPE,
};

/// The session name (`s=`) we write.
const SESSION_NAME: &str = "sip-assistant";

/// Our Opus receive preferences (RFC 7587 §6.1): 20 ms frames at least, in-band FEC, mono.
const OPUS_FMTP: &str = "minptime=20;useinbandfec=1;stereo=0;sprop-stereo=0";

/// The RFC 4733 events we offer: DTMF digits 0-15 and flash (16).
const OFFER_EVENTS: &str = "0-16";

/// The RFC 4733 events we accept in an answer: the DTMF digits, which any offer that has
/// `telephone-event` includes.
const ANSWER_EVENTS: &str = "0-15";

/// What our SDP says about us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferParams {
    /// Our media IP address, IPv4 or IPv6 (brackets allowed); written to `o=` and `c=`.
    pub address: String,
    /// Our RTP port; RTCP is on the next one (`a=rtcp`).
    pub rtp_port: u16,
    /// `o=` session id; stays the same for the whole dialog.
    pub session_id: u64,
    /// `o=` session version; must grow with every new offer or answer in the dialog (RFC 3264 §8).
    pub session_version: u64,
    /// Codecs in preference order. Duplicates are written once. An empty list yields an offer with
    /// `telephone-event` only, which no peer accepts: configuration must not allow it.
    pub codecs: Vec<Codec>,
    /// `a=ptime` in milliseconds (20); 0 leaves the attribute out.
    pub ptime_ms: u32,
}

/// The SDP offer for an INVITE (RFC 3264 §5): one `m=audio` line over RTP/AVP listing the codecs in
/// preference order, then `telephone-event/8000` (PT 101) and, when Opus is offered,
/// `telephone-event/48000` (PT 102), followed by `a=ptime`, `a=rtcp` (RFC 3605) and `a=sendrecv`.
pub fn build_offer(p: &OfferParams) -> String {
    let codecs = dedup(&p.codecs);
    let mut events = vec![(TELEPHONE_EVENT_PAYLOAD_TYPE, 8000)];
    if codecs.contains(&Codec::Opus) {
        events.push((TELEPHONE_EVENT_48K_PAYLOAD_TYPE, 48000));
    }
    let mut sdp = session_header(p);
    let pts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type())
        .chain(events.iter().map(|(pt, _)| *pt))
        .map(|pt| pt.to_string())
        .collect();
    line(
        &mut sdp,
        format_args!("m=audio {} RTP/AVP {}", p.rtp_port, pts.join(" ")),
    );
    for codec in &codecs {
        codec_lines(&mut sdp, *codec, codec.payload_type());
    }
    for (pt, rate) in events {
        line(&mut sdp, format_args!("a=rtpmap:{pt} telephone-event/{rate}"));
        line(&mut sdp, format_args!("a=fmtp:{pt} {OFFER_EVENTS}"));
    }
    stream_tail(&mut sdp, p, Direction::SendRecv);
    sdp
}

/// Answer an offer the far end sent (a re-INVITE for hold or resume), per RFC 3264 §6.
///
/// The offer is read with [`super::parse_remote_offer`] rules, `local.codecs` being what we
/// support. The answer has one `m=` line per offered one, in order: the chosen audio stream carries
/// the chosen codec and the far end's `telephone-event` under the far end's payload type numbers
/// (§6.1), our address and port, and the direction that mirrors the offer (`sendonly` is answered
/// `recvonly`, `inactive` with `inactive`; an offer with connection address `0.0.0.0` receives
/// nothing, so we do not send either). Every other stream is rejected with port 0.
///
/// Returns the negotiation result too, for the media layer. A bad offer gives the same errors as
/// [`super::parse_remote_offer`]; the SIP layer answers those with 488 Not Acceptable Here.
pub fn build_answer(local: &OfferParams, remote_offer: &[u8]) -> Result<(Negotiated, String), SdpError> {
    let text = String::from_utf8_lossy(remote_offer);
    let offer = parse(&text)?;
    let choice = negotiate(&offer, &local.codecs)?;
    let agreed = &choice.negotiated;

    // What the far end really does: with no address to send to, it receives nothing.
    let mut theirs = agreed.direction;
    if agreed.remote_ip.is_unspecified() {
        theirs = match theirs {
            Direction::SendRecv => Direction::SendOnly,
            Direction::RecvOnly => Direction::Inactive,
            other => other,
        };
    }

    let mut sdp = session_header(local);
    for (index, media) in offer.media.iter().enumerate() {
        if index != choice.index {
            line(
                &mut sdp,
                format_args!("m={} 0 {} {}", media.kind, media.proto, media.formats.join(" ")),
            );
            continue;
        }
        let mut pts = agreed.payload_type.to_string();
        if let Some(dtmf) = agreed.dtmf_payload_type {
            let _ = write!(pts, " {dtmf}");
        }
        line(
            &mut sdp,
            format_args!("m=audio {} {} {pts}", local.rtp_port, media.proto),
        );
        codec_lines(&mut sdp, agreed.codec, agreed.payload_type);
        if let (Some(pt), Some(rate)) = (agreed.dtmf_payload_type, choice.dtmf_clock_rate) {
            line(&mut sdp, format_args!("a=rtpmap:{pt} telephone-event/{rate}"));
            line(&mut sdp, format_args!("a=fmtp:{pt} {ANSWER_EVENTS}"));
        }
        stream_tail(&mut sdp, local, theirs.reversed());
    }
    Ok((choice.negotiated, sdp))
}

/// `v=`, `o=`, `s=`, `c=`, `t=`.
fn session_header(p: &OfferParams) -> String {
    let (addr_type, address) = address(&p.address);
    let mut sdp = String::with_capacity(512);
    line(&mut sdp, format_args!("v=0"));
    line(
        &mut sdp,
        format_args!(
            "o=- {} {} IN {addr_type} {address}",
            p.session_id, p.session_version
        ),
    );
    line(&mut sdp, format_args!("s={SESSION_NAME}"));
    line(&mut sdp, format_args!("c=IN {addr_type} {address}"));
    line(&mut sdp, format_args!("t=0 0"));
    sdp
}

/// `a=rtpmap` (and for Opus `a=fmtp`) of one codec under a payload type.
fn codec_lines(sdp: &mut String, codec: Codec, pt: u8) {
    line(sdp, format_args!("a=rtpmap:{pt} {}", codec.rtpmap()));
    if codec == Codec::Opus {
        line(sdp, format_args!("a=fmtp:{pt} {OPUS_FMTP}"));
    }
}

/// `a=ptime`, `a=rtcp`, direction.
fn stream_tail(sdp: &mut String, p: &OfferParams, direction: Direction) {
    if p.ptime_ms > 0 {
        line(sdp, format_args!("a=ptime:{}", p.ptime_ms));
    }
    if let Some(rtcp) = p.rtp_port.checked_add(1).filter(|_| p.rtp_port != 0) {
        line(sdp, format_args!("a=rtcp:{rtcp}"));
    }
    line(sdp, format_args!("a={}", direction.attribute()));
}

fn line(sdp: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = sdp.write_fmt(args);
    sdp.push_str("\r\n");
}

/// The address type and the address as SDP writes it: `IP6` for an IPv6 address (brackets
/// dropped), `IP4` otherwise. Whitespace and control characters are dropped so a bad configuration
/// value cannot add lines.
fn address(configured: &str) -> (&'static str, String) {
    let clean: String = configured
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    let bare = clean
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(&clean);
    if bare.parse::<Ipv6Addr>().is_ok() {
        ("IP6", bare.to_string())
    } else {
        ("IP4", clean)
    }
}

/// The codecs in order, each once.
fn dedup(codecs: &[Codec]) -> Vec<Codec> {
    let mut out = Vec::with_capacity(codecs.len());
    for c in codecs {
        if !out.contains(c) {
            out.push(*c);
        }
    }
    out
}
