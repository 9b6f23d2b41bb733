//! RTP data packets (RFC 3550 §5.1): parsing, writing and a sender that numbers packets.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers  (0..15)    |
//! | [extension: profile (16) | length in 32-bit words (16) | data] |
//! | payload ...                 [padding ... | padding count (8)] |
//! ```
//!
//! * [`parse`] validates the version, the CSRC list, the header extension and the padding against
//!   the datagram length and returns the header plus the payload with extension and padding
//!   removed. It never panics and never allocates (the CSRC list is stored inline).
//! * [`write`] appends a packet to a caller-owned buffer: a 12-byte header (plus CSRCs) and the
//!   payload; no allocation beyond growing `out`. [`write_full`] also writes a header extension
//!   and padding (used by tests and the fuzz target for round trips).
//! * [`RtpSender`] owns one outgoing stream: SSRC, sequence number and timestamp base are given by
//!   the caller (sans-IO: no randomness here). The timestamp follows the caller's frame counter
//!   (`base + frame_index * samples_per_frame`, wrapping) so that silence and prompts share one
//!   clock, and the sequence number grows by one per packet sent. It also keeps the packet and
//!   octet counts an RTCP sender report needs.

use std::fmt;

use thiserror::Error;

/// The only RTP version in use (RFC 3550).
pub const RTP_VERSION: u8 = 2;
/// Length of the fixed RTP header, without CSRCs or extension.
pub const FIXED_HEADER_LEN: usize = 12;
/// At most 15 contributing sources fit the 4-bit CC field.
pub const MAX_CSRCS: usize = 15;

/// A synchronization source identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl From<u32> for Ssrc {
    fn from(v: u32) -> Self {
        Ssrc(v)
    }
}

/// An RTP payload type (7 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(u8);

impl PayloadType {
    /// `None` when `pt` does not fit the 7-bit field.
    pub fn new(pt: u8) -> Option<Self> {
        (pt <= 0x7f).then_some(PayloadType(pt))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A 16-bit RTP sequence number with wrap-aware comparison (RFC 1982 serial arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u16);

impl Seq {
    /// Signed distance from `earlier` to `self`: positive when `self` is newer, in `-32768..=32767`.
    pub fn diff(self, earlier: Seq) -> i16 {
        self.0.wrapping_sub(earlier.0) as i16
    }

    /// Whether `self` comes after `other` (modulo 2^16).
    pub fn is_after(self, other: Seq) -> bool {
        self.diff(other) > 0
    }

    pub fn next(self) -> Seq {
        Seq(self.0.wrapping_add(1))
    }
}

/// Why a datagram is not an acceptable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("RTP packet truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    #[error("RTP padding count {count} invalid for {available} bytes after the header")]
    BadPadding { count: u8, available: usize },
}

/// Up to 15 CSRC identifiers, stored inline (no allocation per packet).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Csrcs {
    len: u8,
    ids: [u32; MAX_CSRCS],
}

impl Csrcs {
    pub const fn new() -> Self {
        Csrcs {
            len: 0,
            ids: [0; MAX_CSRCS],
        }
    }

    /// Up to 15 identifiers from `ids`; `None` if there are more.
    pub fn from_slice(ids: &[u32]) -> Option<Self> {
        if ids.len() > MAX_CSRCS {
            return None;
        }
        let mut c = Csrcs::new();
        for &id in ids {
            c.push(id);
        }
        Some(c)
    }

    /// Appends `id`; returns false (and does nothing) when 15 are already held.
    pub fn push(&mut self, id: u32) -> bool {
        match self.ids.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn as_slice(&self) -> &[u32] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Csrcs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl std::ops::Deref for Csrcs {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

/// The RTP header. Field types are the wire types; see [`Ssrc`], [`Seq`] and [`PayloadType`] for
/// typed views.
///
/// `padding` and `extension` report what [`parse`] saw; [`write`] writes neither (it has no
/// extension data or padding to write) and emits P = X = 0 — use [`write_full`] for those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Always 2 after a successful parse.
    pub version: u8,
    pub padding: bool,
    pub extension: bool,
    pub marker: bool,
    /// 7 bits; [`write`] masks off anything above.
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: Csrcs,
}

impl RtpHeader {
    /// A header with no CSRCs, padding or extension.
    pub fn new(payload_type: u8, seq: u16, timestamp: u32, ssrc: u32, marker: bool) -> Self {
        RtpHeader {
            version: RTP_VERSION,
            padding: false,
            extension: false,
            marker,
            payload_type,
            seq,
            timestamp,
            ssrc,
            csrcs: Csrcs::new(),
        }
    }

    pub fn ssrc_id(&self) -> Ssrc {
        Ssrc(self.ssrc)
    }

    pub fn sequence(&self) -> Seq {
        Seq(self.seq)
    }

    /// Header length on the wire as [`write`] emits it (12 + 4 × CSRCs).
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len()
    }

    /// Never true: a header is at least 12 bytes (present for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A header extension (RFC 3550 §5.3.1): a profile-defined 16-bit value and whole 32-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    pub profile: u16,
    /// A multiple of 4 bytes long.
    pub data: &'a [u8],
}

/// Everything [`parse_full`] finds in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub extension: Option<HeaderExtension<'a>>,
    /// Payload without extension and padding.
    pub payload: &'a [u8],
    /// Padding octets removed from the end, including the count octet (0 when P = 0).
    pub padding_len: u8,
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    buf.get(at..)?.first_chunk::<2>().map(|b| u16::from_be_bytes(*b))
}

/// Parses an RTP packet; returns the header and the payload without extension and padding.
pub fn parse(buf: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
    parse_full(buf).map(|p| (p.header, p.payload))
}

/// Parses an RTP packet, keeping the header extension.
pub fn parse_full(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let available = buf.len();
    let truncated = |needed: usize| RtpError::Truncated { needed, available };
    let Some(&[b0, b1, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3]) = buf.first_chunk::<FIXED_HEADER_LEN>()
    else {
        return Err(truncated(FIXED_HEADER_LEN));
    };
    let version = b0 >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let padding = b0 & 0x20 != 0;
    let extension = b0 & 0x10 != 0;
    let cc = usize::from(b0 & 0x0f);
    let mut at = FIXED_HEADER_LEN + 4 * cc;
    let csrc_bytes = buf.get(FIXED_HEADER_LEN..at).ok_or(truncated(at))?;
    let mut csrcs = Csrcs::new();
    for id in csrc_bytes.chunks_exact(4).filter_map(|c| c.first_chunk::<4>()) {
        csrcs.push(u32::from_be_bytes(*id));
    }
    let mut ext = None;
    if extension {
        let (Some(profile), Some(words)) = (be16(buf, at), be16(buf, at + 2)) else {
            return Err(truncated(at + 4));
        };
        let start = at + 4;
        let end = start + 4 * usize::from(words);
        let data = buf.get(start..end).ok_or(truncated(end))?;
        ext = Some(HeaderExtension { profile, data });
        at = end;
    }
    let mut end = available;
    let mut padding_len = 0u8;
    if padding {
        let after_header = available.saturating_sub(at);
        let count = buf.last().copied().unwrap_or(0);
        if count == 0 || usize::from(count) > after_header {
            return Err(RtpError::BadPadding {
                count,
                available: after_header,
            });
        }
        padding_len = count;
        end -= usize::from(count);
    }
    let payload = buf.get(at..end).unwrap_or_default();
    let header = RtpHeader {
        version,
        padding,
        extension,
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
        csrcs,
    };
    Ok(RtpPacket {
        header,
        extension: ext,
        payload,
        padding_len,
    })
}

#[inline]
fn write_fixed(header: &RtpHeader, padding: bool, extension: bool, out: &mut Vec<u8>) {
    let cc = header.csrcs.len() as u8;
    let b0 = (RTP_VERSION << 6) | (u8::from(padding) << 5) | (u8::from(extension) << 4) | cc;
    let b1 = (u8::from(header.marker) << 7) | (header.payload_type & 0x7f);
    let seq = header.seq.to_be_bytes();
    let ts = header.timestamp.to_be_bytes();
    let ssrc = header.ssrc.to_be_bytes();
    out.extend_from_slice(&[
        b0, b1, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3], ssrc[0], ssrc[1], ssrc[2], ssrc[3],
    ]);
    for id in header.csrcs.as_slice() {
        out.extend_from_slice(&id.to_be_bytes());
    }
}

/// Appends `header` (with its CSRCs, version 2, P = X = 0) and `payload` to `out`.
pub fn write(header: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(header.len() + payload.len());
    write_fixed(header, false, false, out);
    out.extend_from_slice(payload);
}

/// Appends a packet with an optional header extension and `padding` octets (0 = none; the last
/// padding octet holds the count, the others are zero). Extension data is zero-padded to whole
/// 32-bit words and cut at 65535 words.
pub fn write_full(
    header: &RtpHeader,
    extension: Option<HeaderExtension<'_>>,
    payload: &[u8],
    padding: u8,
    out: &mut Vec<u8>,
) {
    write_fixed(header, padding > 0, extension.is_some(), out);
    if let Some(ext) = extension {
        let max = 4 * usize::from(u16::MAX);
        let data = ext.data.get(..max).unwrap_or(ext.data);
        let words = data.len().div_ceil(4);
        out.extend_from_slice(&ext.profile.to_be_bytes());
        out.extend_from_slice(&(words as u16).to_be_bytes());
        out.extend_from_slice(data);
        out.resize(out.len() + (words * 4 - data.len()), 0);
    }
    out.extend_from_slice(payload);
    if padding > 0 {
        out.resize(out.len() + usize::from(padding) - 1, 0);
        out.push(padding);
    }
}

/// One outgoing RTP stream.
///
/// The caller supplies SSRC, first sequence number and timestamp base (random per RFC 3550, but
/// chosen by the caller: this type has no randomness). The RTP timestamp of a packet is
/// `timestamp_base + frame_index * samples_per_frame` (mod 2^32), so frames skipped by the
/// caller's pacer still move the clock; the sequence number advances by exactly one per packet,
/// across silence, prompts and DTMF.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp_base: u32,
    last_timestamp: u32,
    packets: u64,
    octets: u64,
}

impl RtpSender {
    pub fn new(ssrc: u32, initial_seq: u16, timestamp_base: u32) -> Self {
        RtpSender {
            ssrc,
            seq: initial_seq,
            timestamp_base,
            last_timestamp: timestamp_base,
            packets: 0,
            octets: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The RTP timestamp of frame `frame_index`.
    pub fn timestamp_for(&self, frame_index: u64, samples_per_frame: u32) -> u32 {
        let offset = frame_index.wrapping_mul(u64::from(samples_per_frame)) as u32;
        self.timestamp_base.wrapping_add(offset)
    }

    /// The timestamp of the last packet sent (the base before any).
    pub fn last_timestamp(&self) -> u32 {
        self.last_timestamp
    }

    /// Appends the packet for frame `frame_index` to `out` (which is not cleared).
    pub fn packet(
        &mut self,
        frame_index: u64,
        samples_per_frame: u32,
        marker: bool,
        pt: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let ts = self.timestamp_for(frame_index, samples_per_frame);
        self.packet_at(ts, marker, pt, payload, out);
    }

    /// Appends a packet with an explicit timestamp (RFC 4733 events keep the timestamp of the
    /// event's start for all of its packets). The sequence number still advances by one.
    pub fn packet_at(&mut self, timestamp: u32, marker: bool, pt: u8, payload: &[u8], out: &mut Vec<u8>) {
        let header = RtpHeader::new(pt, self.seq, timestamp, self.ssrc, marker);
        write(&header, payload, out);
        self.seq = self.seq.wrapping_add(1);
        self.last_timestamp = timestamp;
        self.packets += 1;
        self.octets += payload.len() as u64;
    }

    /// Packets sent so far (RTCP SR's sender packet count is this mod 2^32).
    pub fn packets_sent(&self) -> u64 {
        self.packets
    }

    /// Payload octets sent so far (headers and padding excluded, as RFC 3550 §6.4.1 asks).
    pub fn octets_sent(&self) -> u64 {
        self.octets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        // V=2 P=0 X=0 CC=0, M=1 PT=0, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304, payload 4 bytes
        vec![
            0x80, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 1, 2, 3, 4,
        ]
    }

    #[test]
    fn parses_minimal_packet() {
        let buf = sample();
        let (h, payload) = parse(&buf).unwrap();
        assert_eq!(h.version, 2);
        assert!(h.marker && !h.padding && !h.extension);
        assert_eq!(h.payload_type, 0);
        assert_eq!(h.seq, 0x1234);
        assert_eq!(h.timestamp, 0xdead_beef);
        assert_eq!(h.ssrc, 0x0102_0304);
        assert!(h.csrcs.is_empty());
        assert_eq!(payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn empty_payload_is_fine() {
        let buf = &sample()[..12];
        let (_, payload) = parse(buf).unwrap();
        assert!(payload.is_empty());
    }

    #[test]
    fn rejects_other_versions() {
        for v in [0u8, 1, 3] {
            let mut buf = sample();
            buf[0] = (v << 6) | (buf[0] & 0x3f);
            assert_eq!(parse(&buf), Err(RtpError::BadVersion(v)));
        }
    }

    #[test]
    fn csrcs_extension_and_padding() {
        let mut h = RtpHeader::new(96, 65535, 7, 42, false);
        h.csrcs = Csrcs::from_slice(&[1, 2, 3]).unwrap();
        let ext = HeaderExtension {
            profile: 0xbede,
            data: &[9, 9, 9, 9, 8, 8, 8, 8],
        };
        let mut buf = Vec::new();
        write_full(&h, Some(ext), b"hello", 3, &mut buf);
        assert_eq!(buf.len(), 12 + 12 + 4 + 8 + 5 + 3);
        let p = parse_full(&buf).unwrap();
        assert_eq!(p.header.csrcs.as_slice(), &[1, 2, 3]);
        assert!(p.header.padding && p.header.extension);
        assert_eq!(p.extension, Some(ext));
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.padding_len, 3);
        assert_eq!(p.header.seq, 65535);
        // Every strict prefix is an error, never a panic.
        for n in 0..buf.len() {
            assert!(parse(&buf[..n]).is_err(), "prefix {n} parsed");
        }
    }

    #[test]
    fn extension_data_is_padded_to_words() {
        let h = RtpHeader::new(0, 1, 2, 3, false);
        let mut buf = Vec::new();
        write_full(
            &h,
            Some(HeaderExtension {
                profile: 1,
                data: &[7],
            }),
            b"x",
            0,
            &mut buf,
        );
        let p = parse_full(&buf).unwrap();
        assert_eq!(p.extension.unwrap().data, &[7, 0, 0, 0]);
        assert_eq!(p.payload, b"x");
    }

    #[test]
    fn every_prefix_of_minimal_header_errs() {
        let buf = sample();
        for n in 0..12 {
            assert_eq!(
                parse(&buf[..n]),
                Err(RtpError::Truncated {
                    needed: 12,
                    available: n
                })
            );
        }
    }

    #[test]
    fn bad_padding() {
        let mut buf = sample();
        buf[0] |= 0x20;
        // count 0
        *buf.last_mut().unwrap() = 0;
        assert!(matches!(parse(&buf), Err(RtpError::BadPadding { count: 0, .. })));
        // count larger than what follows the header
        *buf.last_mut().unwrap() = 5;
        assert!(matches!(
            parse(&buf),
            Err(RtpError::BadPadding {
                count: 5,
                available: 4
            })
        ));
        // exactly everything after the header
        *buf.last_mut().unwrap() = 4;
        let (_, payload) = parse(&buf).unwrap();
        assert!(payload.is_empty());
        // a header alone with P set has nothing to hold the count
        let mut hdr = sample()[..12].to_vec();
        hdr[0] |= 0x20;
        assert!(matches!(parse(&hdr), Err(RtpError::BadPadding { .. })));
    }

    #[test]
    fn csrc_count_beyond_buffer() {
        let mut buf = sample();
        buf[0] |= 0x0f; // 15 CSRCs = 60 bytes
        assert_eq!(
            parse(&buf),
            Err(RtpError::Truncated {
                needed: 72,
                available: 16
            })
        );
    }

    #[test]
    fn extension_length_beyond_buffer() {
        let mut buf = sample();
        buf[0] |= 0x10;
        // extension header = payload bytes 1,2,3,4: profile 0x0102, 0x0304 words
        assert!(matches!(parse(&buf), Err(RtpError::Truncated { needed, .. }) if needed == 16 + 4 * 0x0304));
        let mut buf = sample();
        buf[0] |= 0x10;
        buf.truncate(14);
        assert_eq!(
            parse(&buf),
            Err(RtpError::Truncated {
                needed: 16,
                available: 14
            })
        );
    }

    #[test]
    fn write_round_trips_and_masks_payload_type() {
        let mut h = RtpHeader::new(0xff, 9, 10, 11, true);
        h.padding = true; // ignored by write
        let mut out = vec![0xaa];
        write(&h, &[1, 2], &mut out);
        assert_eq!(out[0], 0xaa);
        let (p, payload) = parse(&out[1..]).unwrap();
        assert_eq!(p.payload_type, 0x7f);
        assert!(p.marker && !p.padding);
        assert_eq!(payload, &[1, 2]);
    }

    #[test]
    fn sender_numbers_packets_and_follows_frame_clock() {
        let mut s = RtpSender::new(0xabcd, 65534, u32::MAX - 200);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for (frame, payload) in [(0u64, 160usize), (1, 160), (5, 160)] {
            out.clear();
            s.packet(frame, 160, frame == 0, 0, &vec![0xff; payload], &mut out);
            let (h, p) = parse(&out).unwrap();
            assert_eq!(p.len(), payload);
            seen.push((h.seq, h.timestamp, h.marker, h.ssrc));
        }
        assert_eq!(
            seen,
            vec![
                (65534, u32::MAX - 200, true, 0xabcd),
                (65535, (u32::MAX - 200).wrapping_add(160), false, 0xabcd),
                (0, (u32::MAX - 200).wrapping_add(800), false, 0xabcd),
            ]
        );
        assert_eq!(s.packets_sent(), 3);
        assert_eq!(s.octets_sent(), 480);
        assert_eq!(s.next_seq(), 1);
        // a huge frame index wraps instead of overflowing
        let ts = s.timestamp_for(u64::MAX, 960);
        assert_eq!(
            ts,
            (u32::MAX - 200).wrapping_add(u64::MAX.wrapping_mul(960) as u32)
        );
        // explicit timestamps (DTMF) keep the sequence running
        out.clear();
        s.packet_at(1234, true, 101, &[1, 2, 3, 4], &mut out);
        let (h, _) = parse(&out).unwrap();
        assert_eq!((h.seq, h.timestamp, h.payload_type), (1, 1234, 101));
        assert_eq!(s.last_timestamp(), 1234);
    }

    #[test]
    fn seq_serial_arithmetic() {
        assert!(Seq(0).is_after(Seq(65535)));
        assert!(!Seq(65535).is_after(Seq(0)));
        assert_eq!(Seq(2).diff(Seq(65534)), 4);
        assert_eq!(Seq(65535).next(), Seq(0));
        assert_eq!(PayloadType::new(128), None);
        assert_eq!(PayloadType::new(101).map(PayloadType::get), Some(101));
        assert_eq!(Ssrc(0xab).to_string(), "000000ab");
    }

    #[test]
    fn csrcs_cap_at_fifteen() {
        let ids: Vec<u32> = (0..16).collect();
        assert!(Csrcs::from_slice(&ids).is_none());
        let mut c = Csrcs::from_slice(&ids[..15]).unwrap();
        assert!(!c.push(99));
        assert_eq!(c.len(), 15);
        assert_eq!(&c[..2], &[0, 1]);
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut rng = crate::testing::TestRng::seeded(0x1234_5678);
        for _ in 0..20_000 {
            let len = rng.below(80);
            let mut buf = rng.bytes(len);
            if let Some(b) = buf.first_mut() {
                *b = (*b & 0x3f) | 0x80; // mostly version 2, so deeper checks run
            }
            if let Ok(p) = parse_full(&buf) {
                assert!(p.payload.len() <= buf.len());
            }
        }
    }
}
