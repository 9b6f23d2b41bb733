//! RTCP (RFC 3550 §6): building our compound reports and reading the far end's.
//!
//! Every RTCP packet starts with the same 4-byte header:
//!
//! ```text
//! |V=2|P| count(5) |  packet type (8)  |  length in 32-bit words minus one (16)  |
//! ```
//!
//! # Building
//!
//! [`Compound`] writes one compound packet as RFC 3550 §6.1 requires: first an SR (when we have
//! sent RTP since the last report; [`SenderInfo`] carries the NTP time, which is an argument —
//! this module has no clock) or else an RR, with up to 31 report blocks (more go into extra RRs),
//! then an SDES packet with our CNAME (required in every compound packet), then optionally a BYE.
//! Report blocks come from [`crate::rtp::stats::ReceiverStats::report_block`]. Individual writers
//! ([`write_sr`], [`write_rr`], [`write_sdes_cname`], [`write_bye`]) are public too.
//!
//! # Parsing
//!
//! [`parse_compound`] (or the iterator [`packets`]) walks a compound datagram packet by packet:
//! SR, RR, SDES (CNAME kept) and BYE are decoded; APP and unknown types are skipped by their
//! length field. Every length is checked before it is used, so any input yields either packets
//! or a typed [`RtcpError`] — never a panic. The order of packets is not enforced (reduced-size
//! RTCP, RFC 5506, may start with anything). [`report_about`] picks the report block a peer sent
//! about our SSRC: its fraction lost, cumulative loss, jitter and — with [`ReportBlock::round_trip`]
//! — the round-trip time, i.e. the far end's view of the stream we send.

use std::time::Duration;

use thiserror::Error;

use super::packet::Ssrc;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;

/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;
/// At most 31 report blocks fit one SR/RR (5-bit count).
pub const MAX_REPORT_BLOCKS: usize = 31;

const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why a datagram is not acceptable RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("RTCP truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    #[error("RTCP padding count {count} invalid in a {packet_len}-byte packet")]
    BadPadding { count: u8, packet_len: usize },
    #[error("RTCP packet type {packet_type}: {what}")]
    Malformed { packet_type: u8, what: &'static str },
}

/// A 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, fraction in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The NTP timestamp of `since_unix_epoch` (wall-clock time supplied by the caller).
    pub fn from_unix(since_unix_epoch: Duration) -> Self {
        let secs = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET) as u32;
        let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTimestamp((u64::from(secs) << 32) | frac)
    }

    /// The middle 32 bits, as carried in LSR (RFC 3550 §6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// Converts a duration to units of 1/65536 s (DLSR and RTT arithmetic), saturating.
pub fn duration_to_units_65536(d: Duration) -> u32 {
    let units = d.as_nanos().saturating_mul(65_536) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// Converts units of 1/65536 s to a duration.
pub fn units_65536_to_duration(units: u32) -> Duration {
    Duration::from_nanos(u64::from(units) * 1_000_000_000 / 65_536)
}

/// The sender information block of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: NtpTimestamp,
    /// The RTP timestamp corresponding to `ntp` on our media clock.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    /// Payload octets only.
    pub octet_count: u32,
}

impl SenderInfo {
    /// Sender info from an [`RtpSender`](super::packet::RtpSender)'s counters (mod 2^32).
    pub fn from_sender(sender: &super::packet::RtpSender, ntp: NtpTimestamp, rtp_timestamp: u32) -> Self {
        SenderInfo {
            ntp,
            rtp_timestamp,
            packet_count: sender.packets_sent() as u32,
            octet_count: sender.octets_sent() as u32,
        }
    }
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: Ssrc,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost, a 24-bit signed value (duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Cycles of the sequence number in the high 16 bits, highest sequence number in the low 16.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (0 if none).
    pub lsr: u32,
    /// Delay since that SR was received, in 1/65536 s (0 if none).
    pub dlsr: u32,
}

impl ReportBlock {
    pub const MIN_CUMULATIVE_LOST: i32 = -0x80_0000;
    pub const MAX_CUMULATIVE_LOST: i32 = 0x7f_ffff;

    /// `fraction_lost` as a percentage.
    pub fn fraction_lost_percent(&self) -> f64 {
        f64::from(self.fraction_lost) * 100.0 / 256.0
    }

    /// Jitter in milliseconds for a stream on a `clock_rate` Hz RTP clock.
    pub fn jitter_ms(&self, clock_rate: u32) -> f64 {
        if clock_rate == 0 {
            return 0.0;
        }
        f64::from(self.jitter) * 1000.0 / f64::from(clock_rate)
    }

    /// Round-trip time (RFC 3550 §6.4.1: A − LSR − DLSR) when this block answers one of our SRs;
    /// `arrival` is when the block arrived, on the same NTP clock our SRs used.
    pub fn round_trip(&self, arrival: NtpTimestamp) -> Option<Duration> {
        if self.lsr == 0 {
            return None;
        }
        let rtt = arrival.middle32().wrapping_sub(self.lsr).wrapping_sub(self.dlsr);
        // A negative result (clock trouble, or a forged block) shows up as a huge value.
        (rtt < 0x8000_0000).then(|| units_65536_to_duration(rtt))
    }

    fn write(&self, out: &mut Vec<u8>) {
        let lost = self
            .cumulative_lost
            .clamp(Self::MIN_CUMULATIVE_LOST, Self::MAX_CUMULATIVE_LOST);
        let lost = (lost as u32) & 0x00ff_ffff;
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&self.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.lsr.to_be_bytes());
        out.extend_from_slice(&self.dlsr.to_be_bytes());
    }

    fn parse(b: &[u8]) -> Option<ReportBlock> {
        let w1 = be32(b, 4)?;
        // sign-extend the 24-bit cumulative loss
        let lost = ((w1 << 8) as i32) >> 8;
        Some(ReportBlock {
            ssrc: Ssrc(be32(b, 0)?),
            fraction_lost: (w1 >> 24) as u8,
            cumulative_lost: lost,
            extended_highest_seq: be32(b, 8)?,
            jitter: be32(b, 12)?,
            lsr: be32(b, 16)?,
            dlsr: be32(b, 20)?,
        })
    }
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    buf.get(at..)?.first_chunk::<2>().map(|b| u16::from_be_bytes(*b))
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..)?.first_chunk::<4>().map(|b| u32::from_be_bytes(*b))
}

/// Starts a packet; returns its start offset for [`finish_packet`].
fn begin_packet(count: u8, packet_type: u8, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0x80 | (count & 0x1f), packet_type, 0, 0]);
    start
}

/// Zero-pads the packet begun at `start` to a 32-bit boundary and fills in its length field.
fn finish_packet(start: usize, out: &mut Vec<u8>) {
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    if let Some(len) = out.get_mut(start + 2..start + 4) {
        len.copy_from_slice(&words.to_be_bytes());
    }
}

fn write_blocks(
    packet_type: u8,
    ssrc: Ssrc,
    info: Option<&SenderInfo>,
    blocks: &[ReportBlock],
    out: &mut Vec<u8>,
) {
    let first = blocks.get(..MAX_REPORT_BLOCKS).unwrap_or(blocks);
    let start = begin_packet(first.len() as u8, packet_type, out);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    if let Some(info) = info {
        out.extend_from_slice(&info.ntp.0.to_be_bytes());
        out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&info.packet_count.to_be_bytes());
        out.extend_from_slice(&info.octet_count.to_be_bytes());
    }
    for b in first {
        b.write(out);
    }
    finish_packet(start, out);
    // RFC 3550 §6.4.2: more than 31 sources continue in further RRs.
    for chunk in blocks
        .get(MAX_REPORT_BLOCKS..)
        .unwrap_or(&[])
        .chunks(MAX_REPORT_BLOCKS)
    {
        let start = begin_packet(chunk.len() as u8, PT_RR, out);
        out.extend_from_slice(&ssrc.0.to_be_bytes());
        for b in chunk {
            b.write(out);
        }
        finish_packet(start, out);
    }
}

/// Appends an SR (plus extra RRs if there are more than 31 blocks).
pub fn write_sr(ssrc: Ssrc, info: &SenderInfo, blocks: &[ReportBlock], out: &mut Vec<u8>) {
    write_blocks(PT_SR, ssrc, Some(info), blocks, out);
}

/// Appends an RR (plus extra RRs if there are more than 31 blocks). An RR with no blocks is valid.
pub fn write_rr(ssrc: Ssrc, blocks: &[ReportBlock], out: &mut Vec<u8>) {
    write_blocks(PT_RR, ssrc, None, blocks, out);
}

fn cut_255(s: &str) -> &[u8] {
    let b = s.as_bytes();
    if b.len() <= 255 {
        return b;
    }
    // Cut on a character boundary so the text stays valid UTF-8.
    let mut end = 255;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.get(..end).unwrap_or(b)
}

/// Appends an SDES packet with one chunk holding our CNAME (cut to 255 bytes).
pub fn write_sdes_cname(ssrc: Ssrc, cname: &str, out: &mut Vec<u8>) {
    let start = begin_packet(1, PT_SDES, out);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    let text = cut_255(cname);
    out.push(SDES_CNAME);
    out.push(text.len() as u8);
    out.extend_from_slice(text);
    // End of item list: at least one null octet, then nulls to the 32-bit boundary.
    out.push(0);
    finish_packet(start, out);
}

/// Appends a BYE for up to 31 `ssrcs` with an optional reason (cut to 255 bytes).
pub fn write_bye(ssrcs: &[Ssrc], reason: Option<&str>, out: &mut Vec<u8>) {
    let ssrcs = ssrcs.get(..MAX_REPORT_BLOCKS).unwrap_or(ssrcs);
    let start = begin_packet(ssrcs.len() as u8, PT_BYE, out);
    for s in ssrcs {
        out.extend_from_slice(&s.0.to_be_bytes());
    }
    if let Some(reason) = reason {
        let text = cut_255(reason);
        out.push(text.len() as u8);
        out.extend_from_slice(text);
    }
    finish_packet(start, out);
}

/// One compound RTCP packet to send.
#[derive(Debug, Clone, Copy)]
pub struct Compound<'a> {
    pub ssrc: Ssrc,
    /// `Some` when we sent RTP since the last report: an SR is written, else an RR.
    pub sender: Option<SenderInfo>,
    pub reports: &'a [ReportBlock],
    pub cname: &'a str,
    /// `Some(reason)` appends a BYE for `ssrc` (the reason itself is optional).
    pub bye: Option<Option<&'a str>>,
}

impl Compound<'_> {
    /// Appends the compound packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match &self.sender {
            Some(info) => write_sr(self.ssrc, info, self.reports, out),
            None => write_rr(self.ssrc, self.reports, out),
        }
        write_sdes_cname(self.ssrc, self.cname, out);
        if let Some(reason) = self.bye {
            write_bye(&[self.ssrc], reason, out);
        }
    }
}

/// A parsed sender report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: Ssrc,
    pub info: SenderInfo,
    pub reports: Vec<ReportBlock>,
}

/// A parsed receiver report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    pub ssrc: Ssrc,
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk; only the CNAME is kept, other items are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    pub ssrc: Ssrc,
    /// Lossy UTF-8.
    pub cname: Option<String>,
    pub other_items: usize,
}

/// A parsed BYE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    pub ssrcs: Vec<Ssrc>,
    /// Lossy UTF-8.
    pub reason: Option<String>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    Sdes(Vec<SdesChunk>),
    Bye(Bye),
    /// APP or a type this module does not decode, skipped by its length.
    Other {
        packet_type: u8,
        count: u8,
        len: usize,
    },
}

/// Iterator over the packets of a compound RTCP datagram; after the first error it ends.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Walks the packets of a compound datagram.
pub fn packets(buf: &[u8]) -> Packets<'_> {
    Packets {
        rest: buf,
        failed: false,
    }
}

impl Iterator for Packets<'_> {
    type Item = Result<RtcpPacket, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match split_packet(self.rest) {
            Ok((packet, rest)) => {
                self.rest = rest;
                let r = decode_packet(packet);
                self.failed = r.is_err();
                Some(r)
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Parses a whole compound datagram; any malformed packet fails the whole datagram.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::Truncated {
            needed: 4,
            available: 0,
        });
    }
    packets(buf).collect()
}

/// RFC 5761 demultiplexing: whether a datagram on a shared RTP/RTCP port is RTCP (second octet,
/// i.e. packet type, in 192..=223; RTP payload types 64..=95 with the marker bit would collide
/// and must not be used).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 4 && buf.first().map(|b| b >> 6) == Some(2) && matches!(buf.get(1), Some(192..=223))
}

/// The first report block about `our_ssrc` in `packets`, with the reporter's SSRC.
pub fn report_about(packets: &[RtcpPacket], our_ssrc: Ssrc) -> Option<(Ssrc, ReportBlock)> {
    packets.iter().find_map(|p| {
        let (reporter, blocks) = match p {
            RtcpPacket::SenderReport(sr) => (sr.ssrc, &sr.reports),
            RtcpPacket::ReceiverReport(rr) => (rr.ssrc, &rr.reports),
            _ => return None,
        };
        blocks.iter().find(|b| b.ssrc == our_ssrc).map(|b| (reporter, *b))
    })
}

/// The packet at the start of `buf` (padding removed: header + body) and what follows it.
fn split_packet(buf: &[u8]) -> Result<(Packet<'_>, &[u8]), RtcpError> {
    let available = buf.len();
    let (Some(&b0), Some(&packet_type), Some(len)) = (buf.first(), buf.get(1), be16(buf, 2)) else {
        return Err(RtcpError::Truncated { needed: 4, available });
    };
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let total = (usize::from(len) + 1) * 4;
    let (Some(packet), Some(rest)) = (buf.get(..total), buf.get(total..)) else {
        return Err(RtcpError::Truncated {
            needed: total,
            available,
        });
    };
    let mut body_end = total;
    if b0 & 0x20 != 0 {
        let count = packet.last().copied().unwrap_or(0);
        if count == 0 || usize::from(count) > total - 4 {
            return Err(RtcpError::BadPadding {
                count,
                packet_len: total,
            });
        }
        body_end -= usize::from(count);
    }
    let body = packet.get(4..body_end).unwrap_or(&[]);
    Ok((
        Packet {
            count: b0 & 0x1f,
            packet_type,
            body,
        },
        rest,
    ))
}

struct Packet<'a> {
    count: u8,
    packet_type: u8,
    body: &'a [u8],
}

fn malformed(packet_type: u8, what: &'static str) -> RtcpError {
    RtcpError::Malformed { packet_type, what }
}

fn decode_blocks(p: &Packet<'_>, offset: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    let n = usize::from(p.count);
    let needed = offset + n * REPORT_BLOCK_LEN;
    if p.body.len() < needed {
        return Err(malformed(p.packet_type, "report count exceeds packet length"));
    }
    // Anything after the blocks is a profile-specific extension: ignored.
    (0..n)
        .map(|i| {
            let at = offset + i * REPORT_BLOCK_LEN;
            p.body
                .get(at..at + REPORT_BLOCK_LEN)
                .and_then(ReportBlock::parse)
                .ok_or_else(|| malformed(p.packet_type, "report block"))
        })
        .collect()
}

fn decode_packet(p: Packet<'_>) -> Result<RtcpPacket, RtcpError> {
    let pt = p.packet_type;
    match pt {
        PT_SR => {
            let (Some(ssrc), Some(ntp_hi), Some(ntp_lo), Some(rtp), Some(pc), Some(oc)) = (
                be32(p.body, 0),
                be32(p.body, 4),
                be32(p.body, 8),
                be32(p.body, 12),
                be32(p.body, 16),
                be32(p.body, 20),
            ) else {
                return Err(malformed(pt, "sender info truncated"));
            };
            let info = SenderInfo {
                ntp: NtpTimestamp((u64::from(ntp_hi) << 32) | u64::from(ntp_lo)),
                rtp_timestamp: rtp,
                packet_count: pc,
                octet_count: oc,
            };
            let reports = decode_blocks(&p, 4 + SENDER_INFO_LEN)?;
            Ok(RtcpPacket::SenderReport(SenderReport {
                ssrc: Ssrc(ssrc),
                info,
                reports,
            }))
        }
        PT_RR => {
            let ssrc = be32(p.body, 0).ok_or_else(|| malformed(pt, "SSRC truncated"))?;
            let reports = decode_blocks(&p, 4)?;
            Ok(RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(ssrc),
                reports,
            }))
        }
        PT_SDES => decode_sdes(&p).map(RtcpPacket::Sdes),
        PT_BYE => {
            let n = usize::from(p.count);
            let ssrcs = (0..n)
                .map(|i| be32(p.body, 4 * i).map(Ssrc))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed(pt, "SSRC count exceeds packet length"))?;
            let at = 4 * n;
            let reason = match p.body.get(at) {
                None => None,
                Some(&len) => {
                    let text = p
                        .body
                        .get(at + 1..at + 1 + usize::from(len))
                        .ok_or_else(|| malformed(pt, "reason exceeds packet length"))?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
            };
            Ok(RtcpPacket::Bye(Bye { ssrcs, reason }))
        }
        _ => Ok(RtcpPacket::Other {
            packet_type: pt,
            count: p.count,
            len: p.body.len() + 4,
        }),
    }
}

fn decode_sdes(p: &Packet<'_>) -> Result<Vec<SdesChunk>, RtcpError> {
    let pt = p.packet_type;
    let body = p.body;
    let mut chunks = Vec::with_capacity(usize::from(p.count));
    let mut at = 0usize;
    for _ in 0..p.count {
        let ssrc = be32(body, at).ok_or_else(|| malformed(pt, "chunk count exceeds packet length"))?;
        at += 4;
        let mut chunk = SdesChunk {
            ssrc: Ssrc(ssrc),
            cname: None,
            other_items: 0,
        };
        loop {
            let kind = *body
                .get(at)
                .ok_or_else(|| malformed(pt, "item list not terminated"))?;
            if kind == 0 {
                // Null terminator, then nulls up to the next 32-bit boundary (the body starts on
                // one, right after the 4-byte header).
                at = (at + 4) & !3;
                break;
            }
            let len = usize::from(*body.get(at + 1).ok_or_else(|| malformed(pt, "item truncated"))?);
            let text = body
                .get(at + 2..at + 2 + len)
                .ok_or_else(|| malformed(pt, "item truncated"))?;
            if kind == SDES_CNAME && chunk.cname.is_none() {
                chunk.cname = Some(String::from_utf8_lossy(text).into_owned());
            } else {
                chunk.other_items += 1;
            }
            at += 2 + len;
        }
        chunks.push(chunk);
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(ssrc),
            fraction_lost: 25,
            cumulative_lost: lost,
            extended_highest_seq: 0x0001_0005,
            jitter: 80,
            lsr: 0x1234_5678,
            dlsr: 65536,
        }
    }

    fn info() -> SenderInfo {
        SenderInfo {
            ntp: NtpTimestamp(0x0102_0304_0506_0708),
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        }
    }

    #[test]
    fn sr_sdes_bye_round_trip() {
        let blocks = [block(7, 12), block(8, -3)];
        let c = Compound {
            ssrc: Ssrc(0xaabb_ccdd),
            sender: Some(info()),
            reports: &blocks,
            cname: "sip-assistant@pi",
            bye: Some(Some("call ended")),
        };
        let mut out = Vec::new();
        c.write(&mut out);
        assert_eq!(out.len() % 4, 0);
        assert!(is_rtcp(&out));
        let packets = parse_compound(&out).unwrap();
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets[0],
            RtcpPacket::SenderReport(SenderReport {
                ssrc: Ssrc(0xaabb_ccdd),
                info: info(),
                reports: blocks.to_vec()
            })
        );
        assert_eq!(
            packets[1],
            RtcpPacket::Sdes(vec![SdesChunk {
                ssrc: Ssrc(0xaabb_ccdd),
                cname: Some("sip-assistant@pi".into()),
                other_items: 0
            }])
        );
        assert_eq!(
            packets[2],
            RtcpPacket::Bye(Bye {
                ssrcs: vec![Ssrc(0xaabb_ccdd)],
                reason: Some("call ended".into())
            })
        );
        assert_eq!(
            report_about(&packets, Ssrc(8)),
            Some((Ssrc(0xaabb_ccdd), blocks[1]))
        );
        assert_eq!(report_about(&packets, Ssrc(9)), None);
        // Every prefix that does not end on a packet boundary is an error, never a panic.
        let boundaries = [0, 8 + 20 + 48, 8 + 20 + 48 + 28, out.len()];
        for n in 0..out.len() {
            let r = parse_compound(&out[..n]);
            assert_eq!(r.is_ok(), boundaries[1..].contains(&n), "prefix {n}: {r:?}");
        }
    }

    #[test]
    fn rr_when_not_sending_and_exact_bytes() {
        let mut out = Vec::new();
        Compound {
            ssrc: Ssrc(1),
            sender: None,
            reports: &[],
            cname: "ab",
            bye: None,
        }
        .write(&mut out);
        assert_eq!(
            out,
            vec![
                0x80, 201, 0, 1, 0, 0, 0, 1, // RR, no blocks
                0x81, 202, 0, 3, 0, 0, 0, 1, 1, 2, b'a', b'b', 0, 0, 0, 0 // SDES CNAME "ab"
            ]
        );
        let packets = parse_compound(&out).unwrap();
        assert_eq!(
            packets[0],
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(1),
                reports: vec![]
            })
        );
    }

    #[test]
    fn cumulative_lost_is_24_bit_signed_and_clamped() {
        for (given, wire) in [
            (-1, -1),
            (-0x80_0000, -0x80_0000),
            (i32::MIN, -0x80_0000),
            (i32::MAX, 0x7f_ffff),
        ] {
            let mut out = Vec::new();
            write_rr(Ssrc(1), &[block(2, given)], &mut out);
            let RtcpPacket::ReceiverReport(rr) = &parse_compound(&out).unwrap()[0] else {
                panic!()
            };
            assert_eq!(rr.reports[0].cumulative_lost, wire);
        }
    }

    #[test]
    fn more_than_31_blocks_continue_in_rrs() {
        let blocks: Vec<ReportBlock> = (0..40).map(|i| block(i, 0)).collect();
        let mut out = Vec::new();
        write_sr(Ssrc(5), &info(), &blocks, &mut out);
        let packets = parse_compound(&out).unwrap();
        assert_eq!(packets.len(), 2);
        let RtcpPacket::SenderReport(sr) = &packets[0] else {
            panic!()
        };
        let RtcpPacket::ReceiverReport(rr) = &packets[1] else {
            panic!()
        };
        assert_eq!(sr.reports.len(), 31);
        assert_eq!(rr.reports.len(), 9);
        assert_eq!(rr.reports[8].ssrc, Ssrc(39));
    }

    #[test]
    fn skips_unknown_and_app_by_length() {
        let mut out = vec![0x80, PT_APP, 0, 2, 0, 0, 0, 1, b'n', b'a', b'm', b'e'];
        out.extend_from_slice(&[0x80, 210, 0, 0]);
        write_rr(Ssrc(3), &[], &mut out);
        let packets = parse_compound(&out).unwrap();
        assert_eq!(
            packets[0],
            RtcpPacket::Other {
                packet_type: PT_APP,
                count: 0,
                len: 12
            }
        );
        assert_eq!(
            packets[1],
            RtcpPacket::Other {
                packet_type: 210,
                count: 0,
                len: 4
            }
        );
        assert!(matches!(packets[2], RtcpPacket::ReceiverReport(_)));
    }

    #[test]
    fn padding_on_last_packet() {
        let mut out = Vec::new();
        write_rr(Ssrc(3), &[block(4, 1)], &mut out);
        // pad the RR by 4 octets
        out[0] |= 0x20;
        out.extend_from_slice(&[0, 0, 0, 4]);
        let len = u16::from_be_bytes([out[2], out[3]]) + 1;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        let packets = parse_compound(&out).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
            panic!()
        };
        assert_eq!(rr.reports, vec![block(4, 1)]);
        // a padding count larger than the body is an error
        let n = out.len();
        out[n - 1] = 200;
        assert!(matches!(
            parse_compound(&out),
            Err(RtcpError::BadPadding { count: 200, .. })
        ));
        out[n - 1] = 0;
        assert!(matches!(
            parse_compound(&out),
            Err(RtcpError::BadPadding { count: 0, .. })
        ));
    }

    #[test]
    fn typed_errors() {
        assert_eq!(
            parse_compound(&[]),
            Err(RtcpError::Truncated {
                needed: 4,
                available: 0
            })
        );
        assert_eq!(parse_compound(&[0x40, 201, 0, 0]), Err(RtcpError::BadVersion(1)));
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 1]),
            Err(RtcpError::Truncated {
                needed: 8,
                available: 4
            })
        );
        // RR claiming one block with only the SSRC present
        assert!(matches!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Malformed { packet_type: 201, .. })
        ));
        // SR without sender info
        assert!(matches!(
            parse_compound(&[0x80, 200, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Malformed { packet_type: 200, .. })
        ));
        // SDES item running past the packet
        assert!(matches!(
            parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b']),
            Err(RtcpError::Malformed { packet_type: 202, .. })
        ));
        // SDES chunk without terminator
        assert!(matches!(
            parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b']),
            Err(RtcpError::Malformed { packet_type: 202, .. })
        ));
        // BYE reason too long
        assert!(matches!(
            parse_compound(&[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', b'b', b'c']),
            Err(RtcpError::Malformed { packet_type: 203, .. })
        ));
        // The iterator yields good packets before the bad one, then stops.
        let mut buf = Vec::new();
        write_rr(Ssrc(1), &[], &mut buf);
        buf.extend_from_slice(&[0x40, 0, 0, 0, 0x80, 201, 0, 1, 0, 0, 0, 1]);
        let all: Vec<_> = packets(&buf).collect();
        assert_eq!(all.len(), 2);
        assert!(all[0].is_ok() && all[1].is_err());
    }

    #[test]
    fn sdes_with_several_items_and_chunks() {
        // chunk 1: NAME "x", CNAME "c" ; chunk 2: CNAME "dd"
        let body = [
            0, 0, 0, 1, 2, 1, b'x', 1, 1, b'c', 0, 0, //
            0, 0, 0, 2, 1, 2, b'd', b'd', 0, 0, 0, 0,
        ];
        let mut buf = vec![0x82, 202, 0, (body.len() / 4) as u8];
        buf.extend_from_slice(&body);
        let packets = parse_compound(&buf).unwrap();
        assert_eq!(
            packets[0],
            RtcpPacket::Sdes(vec![
                SdesChunk {
                    ssrc: Ssrc(1),
                    cname: Some("c".into()),
                    other_items: 1
                },
                SdesChunk {
                    ssrc: Ssrc(2),
                    cname: Some("dd".into()),
                    other_items: 0
                },
            ])
        );
    }

    #[test]
    fn long_texts_are_cut_to_255_bytes_on_char_boundaries() {
        let cname = "é".repeat(200); // 400 bytes
        let mut out = Vec::new();
        write_sdes_cname(Ssrc(1), &cname, &mut out);
        write_bye(&[Ssrc(1)], Some(&cname), &mut out);
        let packets = parse_compound(&out).unwrap();
        let RtcpPacket::Sdes(chunks) = &packets[0] else {
            panic!()
        };
        assert_eq!(chunks[0].cname.as_deref(), Some("é".repeat(127).as_str()));
        let RtcpPacket::Bye(bye) = &packets[1] else {
            panic!()
        };
        assert_eq!(bye.reason.as_deref().map(str::len), Some(254));
    }

    #[test]
    fn ntp_and_round_trip() {
        let t = NtpTimestamp::from_unix(Duration::new(1_700_000_000, 500_000_000));
        assert_eq!(t.0 >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(t.0 as u32, 0x8000_0000);
        // SR sent at t, peer held it 1 s, block arrives at t + 1.25 s: RTT 250 ms
        let b = ReportBlock {
            lsr: t.middle32(),
            dlsr: 65536,
            ..Default::default()
        };
        let arrival = NtpTimestamp::from_unix(Duration::new(1_700_000_001, 750_000_000));
        let rtt = b.round_trip(arrival).unwrap();
        assert!((rtt.as_secs_f64() - 0.25).abs() < 0.001, "{rtt:?}");
        assert_eq!(ReportBlock::default().round_trip(arrival), None);
        assert_eq!(duration_to_units_65536(Duration::from_millis(500)), 32768);
        assert_eq!(duration_to_units_65536(Duration::from_secs(u64::MAX)), u32::MAX);
        let blk = block(1, 0);
        assert!((blk.fraction_lost_percent() - 9.765625).abs() < 1e-9);
        assert!((blk.jitter_ms(8000) - 10.0).abs() < 1e-9);
        assert_eq!(blk.jitter_ms(0), 0.0);
    }

    #[test]
    fn is_rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(!is_rtcp(&[0x80, 0x80, 0, 6])); // PCMU with marker
        assert!(!is_rtcp(&[0x80, 200]));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let mut rng = crate::testing::TestRng::seeded(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(120);
            let mut buf = rng.bytes(len);
            if buf.len() >= 4 {
                buf[0] = 0x80 | (buf[0] & 0x3f);
                buf[1] = 200 + (buf[1] % 6);
                let words = ((len / 4) as u16).saturating_sub(1);
                let words = words.min(u16::from(buf[2]));
                buf[2..4].copy_from_slice(&words.to_be_bytes());
            }
            let _ = parse_compound(&buf);
        }
    }
}
