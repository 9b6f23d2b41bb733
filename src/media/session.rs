//! One call's media, sans-IO: what to send on each 20 ms tick (prompt frames, else silence) and
//! what to make of each datagram that arrives (source policy, symmetric RTP latching, statistics,
//! reordering, RFC 4733 digits, decoding to 16 kHz for the recogniser). The media thread owns the
//! socket and the clock and calls [`MediaSession::handle_tick`] / [`MediaSession::handle_datagram`].
//!
//! Source policy (anyone on the LAN can send to our port): RTP, RFC 4733 events and RTCP are
//! accepted only from the IP address of the SDP answer (or of the latest re-INVITE). The first RTP
//! packet from that IP fixes the exact source (symmetric RTP: its port may differ from the SDP's,
//! and our audio then goes there); after that only that address is accepted until the far end moves
//! its media ([`MediaSession::update_remote`]). An unspecified SDP address (`0.0.0.0`, `::`: RFC
//! 2543 hold) accepts nothing. Everything else is counted ([`MediaHealth::rejected_packets`]) and
//! dropped unparsed: never decoded, never latched.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use crate::call::MediaHealth;

use super::dtmf::{events_for_digit, DigitStream};
use super::g711::{self, Law};
use super::opus_codec::OpusDecoder;
use super::resample::Resampler;
use crate::rtp::packet::{parse as parse_rtp, RtpSender, Ssrc};
use crate::rtp::reorder::Reorder;
use crate::rtp::rtcp::{Compound, NtpTimestamp, SenderInfo};
use crate::rtp::stats::ReceiverStats;

/// The audio codec of a session, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    Pcmu,
    Pcma,
    Opus,
}

impl AudioCodec {
    pub fn clock_rate(self) -> u32 {
        match self {
            AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
            AudioCodec::Opus => 48_000,
        }
    }

    /// RTP timestamp units per 20 ms frame.
    pub fn samples_per_frame(self) -> u32 {
        self.clock_rate() / 50
    }

    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
            AudioCodec::Opus => "opus",
        }
    }
}

/// Why a media session cannot start, or cannot send a key press.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Opus(#[from] super::opus_codec::OpusError),
    #[error("{0}")]
    Resample(#[from] super::resample::ResampleError),
    #[error("the far end accepts no telephone-event (RFC 4733) packets")]
    NoTelephoneEvent,
    #[error("{0}")]
    Digit(#[from] super::dtmf::DtmfError),
}

/// SSRC and initial numbers of a session's RTP stream (RFC 3550 §5.1: random).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpNumbers {
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
}

/// What the SDP answer settled.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionParams {
    pub codec: AudioCodec,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    pub remote: SocketAddr,
    /// Where RTCP goes (`a=rtcp`, else the RTP port + 1).
    pub remote_rtcp: SocketAddr,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
}

/// Something the call script wants to know.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// Every frame of playback `id` was sent (`complete`) or it was stopped early.
    PlaybackDone {
        id: u64,
        complete: bool,
    },
    Digit(char),
    /// Decoded caller audio, 16 kHz mono, in arrival order.
    Audio16k(Vec<i16>),
}

/// How long without a single inbound packet before the session is flagged one-way.
pub const NO_RTP_AFTER: Duration = Duration::from_secs(5);

struct Playback {
    id: u64,
    frames: Arc<Vec<Vec<u8>>>,
    next: usize,
}

enum Decoder {
    G711(Law),
    Opus(Box<OpusDecoder>),
}

pub struct MediaSession {
    params: SessionParams,
    sender: RtpSender,
    silence: Vec<u8>,
    queue: VecDeque<Playback>,
    talking: bool,
    remote: SocketAddr,
    /// The exact source RTP is accepted from, once the first packet from the SDP's IP fixed it.
    source: Option<SocketAddr>,
    /// Datagrams (RTP and RTCP) dropped because of where they came from.
    rejected: u64,
    stats: ReceiverStats,
    reorder: Reorder,
    digits: DigitStream,
    /// RFC 4733 packets still to send for a key press: (timestamp, payload, marker).
    outgoing_digits: VecDeque<(u32, [u8; 4], bool)>,
    /// False while the far end holds the call (it wants nothing from us); ticks still advance.
    sending: bool,
    /// The frame index the next tick will carry (as far as the session has seen).
    next_frame: u64,
    decoder: Decoder,
    to_16k: Option<Resampler>,
    packets_sent: u64,
    bytes_sent: u64,
    bytes_received: u64,
    started: Duration,
    first_rx: Option<Duration>,
    /// When the first packet carrying a prompt frame went out.
    first_audio: Option<Duration>,
    out: VecDeque<MediaEvent>,
    pcm: Vec<i16>,
}

impl MediaSession {
    /// A session started at `now` (time since the media thread's epoch). `silence` is one
    /// encoded frame of silence for the codec.
    pub fn new(params: SessionParams, silence: Vec<u8>, now: Duration) -> Result<Self, SessionError> {
        let decoder = match params.codec {
            AudioCodec::Pcmu => Decoder::G711(Law::Ulaw),
            AudioCodec::Pcma => Decoder::G711(Law::Alaw),
            AudioCodec::Opus => Decoder::Opus(Box::new(OpusDecoder::new()?)),
        };
        let rate = params.codec.clock_rate();
        let to_16k = if rate == 16_000 {
            None
        } else {
            Some(Resampler::new(rate, 16_000)?)
        };
        Ok(Self {
            sender: RtpSender::new(params.ssrc, params.initial_seq, params.initial_timestamp),
            silence,
            queue: VecDeque::new(),
            talking: false,
            remote: params.remote,
            source: None,
            rejected: 0,
            stats: ReceiverStats::new(rate),
            reorder: Reorder::new(4),
            digits: DigitStream::new(),
            outgoing_digits: VecDeque::new(),
            sending: true,
            next_frame: 0,
            decoder,
            to_16k,
            packets_sent: 0,
            bytes_sent: 0,
            bytes_received: 0,
            started: now,
            first_rx: None,
            first_audio: None,
            out: VecDeque::new(),
            pcm: Vec::with_capacity(960),
            params,
        })
    }

    /// Where packets go now (the latched source once the far end has sent from it).
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The exact address RTP is accepted from, once latched (the shell may have the kernel filter
    /// on it); `None` until then and again after the far end moved its media.
    pub fn source(&self) -> Option<SocketAddr> {
        self.source
    }

    /// Queue pre-encoded frames to play after what is queued; `id` comes back in `PlaybackDone`.
    /// Nothing to play (an engine that rendered no audio) ends at once, incomplete: nothing of
    /// it reached the far end.
    pub fn play(&mut self, id: u64, frames: Arc<Vec<Vec<u8>>>) {
        if frames.is_empty() {
            self.out
                .push_back(MediaEvent::PlaybackDone { id, complete: false });
            return;
        }
        self.queue.push_back(Playback { id, frames, next: 0 });
    }

    /// Stop all playback now (barge-in).
    pub fn stop_playback(&mut self) {
        for p in self.queue.drain(..) {
            self.out.push_back(MediaEvent::PlaybackDone {
                id: p.id,
                complete: false,
            });
        }
    }

    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Send a key press as RFC 4733 events (it replaces audio for its duration). Fails when the
    /// far end did not offer `telephone-event` or the key is not a DTMF key.
    pub fn send_digit(&mut self, digit: char, duration_ms: u32) -> Result<(), SessionError> {
        if self.params.dtmf_payload_type.is_none() {
            return Err(SessionError::NoTelephoneEvent);
        }
        let events = events_for_digit(digit, duration_ms, self.params.codec.clock_rate())?;
        // A press queued behind another starts where the previous one ends.
        let spf = self.params.codec.samples_per_frame();
        let start_frame = self.next_frame + (self.outgoing_digits.len() as u64);
        let ts = self.sender.timestamp_for(start_frame, spf);
        self.outgoing_digits.extend(
            events
                .into_iter()
                .map(|(payload, marker, _)| (ts, payload, marker)),
        );
        Ok(())
    }

    /// A digit the far end sent as SIP INFO: merged with the RFC 4733 digits (a phone that sends
    /// both gives one digit).
    pub fn push_info_digit(&mut self, digit: char, now: Duration) {
        if self.digits.push_info(digit, now).is_ok() {
            self.drain_digits();
        }
    }

    /// The far end moved its media (a re-INVITE): send there from now on, accept media only from
    /// the new address's IP, and latch again. `sending` is false while it holds the call.
    pub fn update_remote(&mut self, remote: SocketAddr, remote_rtcp: SocketAddr, sending: bool) {
        if remote != self.params.remote {
            self.params.remote = remote;
            self.remote = remote;
            self.source = None;
        }
        self.params.remote_rtcp = remote_rtcp;
        self.sending = sending;
    }

    fn drain_digits(&mut self) {
        while let Some(d) = self.digits.next_digit() {
            self.out.push_back(MediaEvent::Digit(d.digit));
        }
    }

    /// The packet for tick `frame_index`, sent at `now`: the next prompt frame, else silence; an
    /// RFC 4733 event while a key press is being sent; nothing (`out` empty) while the far end
    /// holds the call. Playback and queued key presses pause while held and go on after the
    /// resume, so a prompt only completes when every frame of it was sent.
    pub fn handle_tick(&mut self, frame_index: u64, now: Duration, out: &mut Vec<u8>) {
        out.clear();
        self.next_frame = frame_index + 1;
        if !self.sending {
            self.talking = false;
            return;
        }
        let spf = self.params.codec.samples_per_frame();
        if let (Some((ts, payload, marker)), Some(pt)) =
            (self.outgoing_digits.pop_front(), self.params.dtmf_payload_type)
        {
            self.sender.packet_at(ts, marker, pt, &payload, out);
            self.packets_sent += 1;
            self.bytes_sent += payload.len() as u64;
            return;
        }
        let (payload, marker) = match self.queue.front_mut() {
            Some(p) => {
                if self.first_audio.is_none() {
                    self.first_audio = Some(now);
                }
                let marker = !self.talking;
                self.talking = true;
                let frame = p
                    .frames
                    .get(p.next)
                    .cloned()
                    .unwrap_or_else(|| self.silence.clone());
                p.next += 1;
                if p.next >= p.frames.len() {
                    let id = p.id;
                    self.queue.pop_front();
                    self.out
                        .push_back(MediaEvent::PlaybackDone { id, complete: true });
                }
                (frame, marker)
            }
            None => {
                self.talking = false;
                (self.silence.clone(), false)
            }
        };
        self.sender
            .packet(frame_index, spf, marker, self.params.payload_type, &payload, out);
        self.packets_sent += 1;
        self.bytes_sent += payload.len() as u64;
    }

    /// The IP media may come from, `None` while the far end holds with an unspecified address.
    fn expected_ip(&self) -> Option<IpAddr> {
        let ip = self.params.remote.ip().to_canonical();
        (!ip.is_unspecified()).then_some(ip)
    }

    /// Whether `from` may send RTP now; counts a refusal.
    fn admits_rtp(&mut self, from: SocketAddr) -> bool {
        let ok =
            self.expected_ip() == Some(from.ip().to_canonical()) && self.source.is_none_or(|s| s == from);
        if !ok {
            self.rejected += 1;
        }
        ok
    }

    /// A datagram arrived on the RTP socket from `from` at `now`. Only the far end's address is
    /// heard (see the module docs); anything else is counted and dropped before parsing.
    pub fn handle_datagram(&mut self, from: SocketAddr, bytes: &[u8], now: Duration) {
        if !self.admits_rtp(from) {
            return;
        }
        let Ok((header, payload)) = parse_rtp(bytes) else {
            return;
        };
        if self.source.is_none() {
            // Symmetric RTP: answer to where the far end really sends from (same IP, any port).
            self.remote = from;
            self.source = Some(from);
        }
        self.first_rx.get_or_insert(now);
        self.bytes_received += payload.len() as u64;
        self.stats
            .handle_packet(header.ssrc, header.seq, header.timestamp, now);
        if Some(header.payload_type) == self.params.dtmf_payload_type {
            // A malformed event is counted by the receiver and otherwise ignored.
            let _ = self
                .digits
                .handle_rtp_event(header.timestamp, header.marker, payload, now);
            self.drain_digits();
            return;
        }
        if header.payload_type != self.params.payload_type {
            return;
        }
        for (_, frame) in self.reorder.push(header.seq, payload.to_vec()) {
            self.decode(&frame);
        }
    }

    fn decode(&mut self, frame: &[u8]) {
        self.pcm.clear();
        match &mut self.decoder {
            Decoder::G711(law) => g711::decode(*law, frame, &mut self.pcm),
            Decoder::Opus(d) => {
                if d.decode(frame, &mut self.pcm).is_err() {
                    return;
                }
            }
        }
        let mut out16 = Vec::with_capacity(320);
        match &mut self.to_16k {
            Some(r) => r.process(&self.pcm, &mut out16),
            None => out16.extend_from_slice(&self.pcm),
        }
        if !out16.is_empty() {
            self.out.push_back(MediaEvent::Audio16k(out16));
        }
    }

    /// Time-driven work at `now`: a key press whose end packets were all lost is reported once
    /// the DTMF receiver's timeout passes.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.digits.poll(now);
        self.drain_digits();
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.out.pop_front()
    }

    /// A datagram arrived on the RTCP socket from `from`: true when it comes from the far end's
    /// IP (its reports are not used yet); anything else is counted as rejected.
    pub fn handle_rtcp_datagram(&mut self, from: SocketAddr) -> bool {
        let ok = self.expected_ip() == Some(from.ip().to_canonical());
        if !ok {
            self.rejected += 1;
        }
        ok
    }

    /// Where RTCP goes.
    pub fn remote_rtcp(&self) -> SocketAddr {
        self.params.remote_rtcp
    }

    /// A compound RTCP packet (RFC 3550 §6.4): SR (we always send) with a report block about the
    /// far end once it has sent, SDES CNAME, and a BYE when `bye`. `wall` is the time since the
    /// Unix epoch (for the NTP timestamp), `now` the session clock.
    pub fn rtcp(&mut self, now: Duration, wall: Duration, bye: bool, out: &mut Vec<u8>) {
        out.clear();
        let info = SenderInfo::from_sender(
            &self.sender,
            NtpTimestamp::from_unix(wall),
            self.sender.last_timestamp(),
        );
        let block = self.stats.report_block(now);
        let blocks: Vec<_> = block.into_iter().collect();
        Compound {
            ssrc: Ssrc(self.params.ssrc),
            sender: Some(info),
            reports: &blocks,
            cname: "sip-assistant",
            bye: bye.then_some(None),
        }
        .write(out);
    }

    /// Health as of `now`.
    pub fn health(&self, now: Duration) -> MediaHealth {
        MediaHealth {
            codec: self.params.codec.name().to_string(),
            packets_sent: self.packets_sent,
            bytes_sent: self.bytes_sent,
            packets_received: self.stats.packets_received(),
            bytes_received: self.bytes_received,
            loss_percent: (self.stats.loss_percent() * 100.0).round() / 100.0,
            jitter_ms: (self.stats.jitter_ms() * 100.0).round() / 100.0,
            no_rtp_received: self.first_rx.is_none() && now.saturating_sub(self.started) >= NO_RTP_AFTER,
            answer_to_audio_ms: self
                .first_audio
                .map(|t| t.saturating_sub(self.started).as_secs_f64() * 1000.0),
            rejected_packets: self.rejected,
            events_dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::packet::{parse, write, RtpHeader};
    use crate::rtp::rtcp::{parse_compound, RtcpPacket};

    fn params() -> SessionParams {
        SessionParams {
            codec: AudioCodec::Pcmu,
            payload_type: 0,
            dtmf_payload_type: Some(101),
            remote: "127.0.0.1:40000".parse().expect("addr"),
            remote_rtcp: "127.0.0.1:40001".parse().expect("addr"),
            ssrc: 0xabcd,
            initial_seq: 65_534,
            initial_timestamp: 1000,
        }
    }

    fn session() -> MediaSession {
        MediaSession::new(params(), vec![0xFF; 160], Duration::ZERO).expect("session")
    }

    #[test]
    fn the_first_packet_carrying_speech_is_timed_from_the_session_start() {
        let mut s =
            MediaSession::new(params(), vec![0xFF; 160], Duration::from_millis(1_000)).expect("session");
        let mut out = Vec::new();
        s.handle_tick(0, Duration::from_millis(1_000), &mut out);
        s.handle_tick(1, Duration::from_millis(1_020), &mut out);
        assert_eq!(s.health(Duration::from_millis(1_020)).answer_to_audio_ms, None);
        s.play(1, Arc::new(vec![vec![1; 160]; 3]));
        for (n, at) in [(2, 1_040), (3, 1_060), (4, 1_080)] {
            s.handle_tick(n, Duration::from_millis(at), &mut out);
        }
        assert_eq!(
            s.health(Duration::from_millis(1_100)).answer_to_audio_ms,
            Some(40.0)
        );
    }

    #[test]
    fn ticks_follow_the_frame_counter_and_mark_talkspurts() {
        let mut s = session();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        s.handle_tick(0, Duration::ZERO, &mut out);
        seen.push(
            parse(&out)
                .map(|(h, p)| (h.seq, h.timestamp, h.marker, p.to_vec()))
                .expect("rtp"),
        );
        s.play(7, Arc::new(vec![vec![1; 160], vec![2; 160]]));
        for n in 1..5 {
            s.handle_tick(n, Duration::ZERO, &mut out);
            seen.push(
                parse(&out)
                    .map(|(h, p)| (h.seq, h.timestamp, h.marker, p.to_vec()))
                    .expect("rtp"),
            );
        }
        let seqs: Vec<u16> = seen.iter().map(|x| x.0).collect();
        assert_eq!(
            seqs,
            vec![65_534, 65_535, 0, 1, 2],
            "continuous across silence and prompt, wrapping"
        );
        let ts: Vec<u32> = seen.iter().map(|x| x.1).collect();
        assert_eq!(ts, vec![1000, 1160, 1320, 1480, 1640]);
        let markers: Vec<bool> = seen.iter().map(|x| x.2).collect();
        assert_eq!(
            markers,
            vec![false, true, false, false, false],
            "marker on the first frame of a talkspurt"
        );
        assert_eq!(seen[1].3, vec![1; 160]);
        assert_eq!(seen[2].3, vec![2; 160]);
        assert_eq!(seen[3].3, vec![0xFF; 160], "silence after the prompt");
        assert_eq!(
            s.poll_event(),
            Some(MediaEvent::PlaybackDone {
                id: 7,
                complete: true
            })
        );
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn barge_in_stops_playback_and_says_so() {
        let mut s = session();
        s.play(1, Arc::new(vec![vec![1; 160]; 50]));
        let mut out = Vec::new();
        s.handle_tick(0, Duration::ZERO, &mut out);
        s.stop_playback();
        assert_eq!(
            s.poll_event(),
            Some(MediaEvent::PlaybackDone {
                id: 1,
                complete: false
            })
        );
        s.handle_tick(1, Duration::ZERO, &mut out);
        assert_eq!(
            parse(&out).map(|(_, p)| p.to_vec()).expect("rtp"),
            vec![0xFF; 160]
        );
    }

    fn inbound(seq: u16, ts: u32, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&RtpHeader::new(pt, seq, ts, 0x5555, marker), payload, &mut out);
        out
    }

    #[test]
    fn latches_to_the_real_source_decodes_and_reports_digits_once() {
        let mut s = session();
        let from: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        for i in 0..10u16 {
            let pkt = inbound(100 + i, u32::from(i) * 160, 0, i == 0, &[0x7F; 160]);
            s.handle_datagram(from, &pkt, Duration::from_millis(20 * u64::from(i)));
        }
        assert_eq!(s.remote(), from, "symmetric RTP");
        let mut audio = 0;
        let mut digits = Vec::new();
        // RFC 4733: digit 5, start (marker), update, three ends with the same timestamp.
        for (k, (end, dur)) in [
            (false, 160u16),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ]
        .iter()
        .enumerate()
        {
            let ev = [
                5u8,
                if *end { 0x80 } else { 0 } | 10,
                (dur >> 8) as u8,
                *dur as u8,
            ];
            let pkt = inbound(110 + k as u16, 1600, 101, k == 0, &ev);
            s.handle_datagram(from, &pkt, Duration::from_millis(200 + 20 * k as u64));
        }
        while let Some(e) = s.poll_event() {
            match e {
                MediaEvent::Audio16k(pcm) => audio += pcm.len(),
                MediaEvent::Digit(d) => digits.push(d),
                MediaEvent::PlaybackDone { .. } => {}
            }
        }
        assert_eq!(digits, vec!['5']);
        assert!(
            audio >= 6 * 320,
            "decoded and resampled to 16 kHz: {audio} samples"
        );
        let h = s.health(Duration::from_secs(10));
        assert_eq!(h.codec, "PCMU");
        assert_eq!(h.packets_received, 15);
        assert!(!h.no_rtp_received);
    }

    #[test]
    fn a_press_without_end_packets_is_reported_by_the_timer_once() {
        let mut s = session();
        let from: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        for (k, dur) in [160u16, 320].iter().enumerate() {
            let ev = [9u8, 10, (dur >> 8) as u8, *dur as u8];
            s.handle_datagram(
                from,
                &inbound(200 + k as u16, 3200, 101, k == 0, &ev),
                Duration::from_millis(20 * k as u64),
            );
        }
        let digits = |s: &mut MediaSession| {
            std::iter::from_fn(|| s.poll_event())
                .filter(|e| matches!(e, MediaEvent::Digit(_)))
                .count()
        };
        assert_eq!(digits(&mut s), 0, "not yet: no end packet");
        s.handle_timeout(Duration::from_secs(5));
        assert_eq!(digits(&mut s), 1);
        s.handle_timeout(Duration::from_secs(10));
        assert_eq!(digits(&mut s), 0, "never twice");
    }

    #[test]
    fn silence_from_the_far_end_is_flagged_after_five_seconds() {
        let s = session();
        assert!(!s.health(Duration::from_millis(4_999)).no_rtp_received);
        assert!(s.health(NO_RTP_AFTER).no_rtp_received);
    }

    #[test]
    fn rtcp_is_a_sender_report_with_cname_and_bye_at_the_end() {
        let mut s = session();
        let mut out = Vec::new();
        for n in 0..10 {
            s.handle_tick(n, Duration::ZERO, &mut out);
        }
        s.rtcp(
            Duration::from_secs(5),
            Duration::from_secs(1_700_000_000),
            true,
            &mut out,
        );
        let packets = parse_compound(&out).expect("our RTCP parses");
        assert!(
            matches!(packets.first(), Some(RtcpPacket::SenderReport(_))),
            "{packets:?}"
        );
        assert!(
            packets.iter().any(|p| matches!(p, RtcpPacket::Sdes(_))),
            "{packets:?}"
        );
        assert!(matches!(packets.last(), Some(RtcpPacket::Bye(_))), "{packets:?}");
    }

    #[test]
    fn digits_are_sent_as_rfc4733_events_in_place_of_audio() {
        let mut s = session();
        let mut out = Vec::new();
        s.handle_tick(0, Duration::ZERO, &mut out);
        s.send_digit('5', 100).expect("queued");
        let mut events = Vec::new();
        for n in 1..12 {
            s.handle_tick(n, Duration::ZERO, &mut out);
            let (h, p) = parse(&out).expect("rtp");
            events.push((h.payload_type, h.timestamp, h.marker, p.to_vec()));
        }
        let dtmf: Vec<_> = events.iter().filter(|e| e.0 == 101).collect();
        // 100 ms at 8 kHz: updates at 160..640, then three end packets.
        assert_eq!(dtmf.len(), 4 + 3, "{dtmf:?}");
        assert!(dtmf[0].2, "the first event packet has the marker");
        assert!(dtmf.iter().skip(1).all(|e| !e.2));
        assert!(
            dtmf.iter().all(|e| e.1 == dtmf[0].1),
            "one timestamp for the press"
        );
        assert_eq!(dtmf[0].1, 1000 + 160, "the press starts at the next frame");
        assert!(dtmf.iter().all(|e| e.3[0] == 5));
        assert!(
            dtmf[4..].iter().all(|e| e.3[1] & 0x80 != 0),
            "end bit on the last three"
        );
        assert_eq!(events[7].0, 0, "audio resumes after the press");
        assert_eq!(
            events[7].1,
            1000 + 8 * 160,
            "audio timestamps kept following the frame counter"
        );
        let mut no_dtmf = MediaSession::new(
            SessionParams {
                dtmf_payload_type: None,
                ..params()
            },
            vec![0xFF; 160],
            Duration::ZERO,
        )
        .expect("session");
        assert!(no_dtmf.send_digit('1', 100).is_err());
        assert!(s.send_digit('x', 100).is_err());
    }

    #[test]
    fn hold_stops_sending_and_a_new_address_is_used_and_relatched() {
        let mut s = session();
        let mut out = Vec::new();
        let phone: SocketAddr = "127.0.0.1:40100".parse().expect("addr");
        let mut pkt = Vec::new();
        write(&RtpHeader::new(0, 1, 0, 77, false), &[0xFF; 160], &mut pkt);
        s.handle_datagram(phone, &pkt, Duration::from_millis(5));
        assert_eq!(s.remote(), phone);
        let moved: SocketAddr = "127.0.0.1:41000".parse().expect("addr");
        let moved_rtcp: SocketAddr = "127.0.0.1:41001".parse().expect("addr");
        s.update_remote(moved, moved_rtcp, false);
        assert_eq!(s.remote(), moved);
        assert_eq!(s.remote_rtcp(), moved_rtcp);
        s.handle_tick(1, Duration::ZERO, &mut out);
        assert!(out.is_empty(), "nothing is sent while held");
        s.update_remote(moved, moved_rtcp, true);
        s.handle_tick(2, Duration::ZERO, &mut out);
        let (h, _) = parse(&out).expect("rtp after resume");
        assert_eq!(h.timestamp, 1000 + 2 * 160);
        let from: SocketAddr = "127.0.0.1:41050".parse().expect("addr");
        s.handle_datagram(from, &pkt, Duration::from_millis(60));
        assert_eq!(s.remote(), from, "latches again after the move");
    }

    #[test]
    fn playback_pauses_while_held_and_completes_only_after_every_frame_was_sent() {
        let mut s = session();
        let mut out = Vec::new();
        let addr: SocketAddr = "127.0.0.1:40100".parse().expect("addr");
        let rtcp: SocketAddr = "127.0.0.1:40101".parse().expect("addr");
        s.play(7, Arc::new(vec![vec![1; 160]; 3]));
        s.handle_tick(0, Duration::ZERO, &mut out);
        assert_eq!(parse(&out).expect("rtp").1, &[1; 160][..]);
        s.update_remote(addr, rtcp, false);
        for n in 1..50 {
            s.handle_tick(n, Duration::from_millis(20 * n), &mut out);
            assert!(out.is_empty(), "nothing is sent while held");
        }
        assert!(s.poll_event().is_none(), "the prompt is not done while held");
        assert!(s.is_playing());
        s.update_remote(addr, rtcp, true);
        s.handle_tick(50, Duration::from_millis(1_000), &mut out);
        let (h, p) = parse(&out).expect("rtp after resume");
        assert!(h.marker, "a new talkspurt after the hold");
        assert_eq!(p, &[1; 160][..]);
        assert!(s.poll_event().is_none());
        s.handle_tick(51, Duration::from_millis(1_020), &mut out);
        assert_eq!(
            s.poll_event(),
            Some(MediaEvent::PlaybackDone {
                id: 7,
                complete: true
            })
        );
    }

    #[test]
    fn a_prompt_without_frames_is_done_at_once_and_incomplete() {
        let mut s = session();
        s.play(3, Arc::new(Vec::new()));
        assert_eq!(
            s.poll_event(),
            Some(MediaEvent::PlaybackDone {
                id: 3,
                complete: false
            })
        );
        assert!(!s.is_playing());
    }

    #[test]
    fn a_key_sent_both_as_info_and_rfc4733_is_one_digit() {
        let mut s = session();
        let t = Duration::from_millis(100);
        let mut pkt = Vec::new();
        let ev = |end: bool, dur: u16| [7u8, if end { 0x80 | 10 } else { 10 }, (dur >> 8) as u8, dur as u8];
        write(
            &RtpHeader::new(101, 10, 5000, 77, true),
            &ev(false, 160),
            &mut pkt,
        );
        s.handle_datagram("127.0.0.1:40000".parse().expect("addr"), &pkt, t);
        for (i, seq) in (11..14).enumerate() {
            pkt.clear();
            write(
                &RtpHeader::new(101, seq, 5000, 77, false),
                &ev(true, 800),
                &mut pkt,
            );
            s.handle_datagram(
                "127.0.0.1:40000".parse().expect("addr"),
                &pkt,
                t + Duration::from_millis(100 + 20 * i as u64),
            );
        }
        s.push_info_digit('7', t + Duration::from_millis(150));
        s.push_info_digit('8', t + Duration::from_millis(400));
        let digits: Vec<char> = std::iter::from_fn(|| s.poll_event())
            .filter_map(|e| match e {
                MediaEvent::Digit(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec!['7', '8']);
    }

    /// Everything the session made of inbound traffic so far: (remote, digits, decoded samples).
    fn heard(s: &mut MediaSession) -> (SocketAddr, Vec<char>, Vec<i16>) {
        let mut digits = Vec::new();
        let mut audio = Vec::new();
        while let Some(e) = s.poll_event() {
            match e {
                MediaEvent::Digit(d) => digits.push(d),
                MediaEvent::Audio16k(pcm) => audio.extend(pcm),
                MediaEvent::PlaybackDone { .. } => {}
            }
        }
        (s.remote(), digits, audio)
    }

    /// Key `digit` as a complete RFC 4733 press (start, update, three ends) from `from`.
    fn press(s: &mut MediaSession, from: SocketAddr, digit: u8, seq: u16, ts: u32, at: Duration) {
        for (k, (end, dur)) in [
            (false, 160u16),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ]
        .iter()
        .enumerate()
        {
            let ev = [
                digit,
                if *end { 0x80 | 10 } else { 10 },
                (dur >> 8) as u8,
                *dur as u8,
            ];
            let pkt = inbound(seq + k as u16, ts, 101, k == 0, &ev);
            s.handle_datagram(from, &pkt, at + Duration::from_millis(20 * k as u64));
        }
    }

    /// The same traffic from the phone, with or without a foreign host's packets mixed in.
    fn phone_call(foreign: Option<SocketAddr>) -> (SocketAddr, Vec<char>, Vec<i16>, u64) {
        let mut s = session();
        let phone: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let spray = |s: &mut MediaSession, seq: u16, at: u64| {
            if let Some(f) = foreign {
                s.handle_datagram(
                    f,
                    &inbound(seq, u32::from(seq) * 160, 0, true, &[0x00; 160]),
                    Duration::from_millis(at),
                );
                press(
                    s,
                    f,
                    1,
                    seq.wrapping_add(7),
                    9_000 + u32::from(seq),
                    Duration::from_millis(at),
                );
            }
        };
        spray(&mut s, 500, 0);
        for i in 0..10u16 {
            let pkt = inbound(100 + i, u32::from(i) * 160, 0, i == 0, &[0x7F; 160]);
            s.handle_datagram(phone, &pkt, Duration::from_millis(20 + 20 * u64::from(i)));
            spray(&mut s, 600 + i * 10, 21 + 20 * u64::from(i));
        }
        press(&mut s, phone, 5, 110, 1_600, Duration::from_millis(300));
        spray(&mut s, 900, 400);
        let (remote, digits, audio) = heard(&mut s);
        (
            remote,
            digits,
            audio,
            s.health(Duration::from_secs(1)).rejected_packets,
        )
    }

    #[test]
    fn another_host_before_and_after_the_phone_changes_nothing() {
        let clean = phone_call(None);
        assert_eq!(clean.0, "127.0.0.1:40000".parse::<SocketAddr>().expect("addr"));
        assert_eq!(clean.1, vec!['5']);
        assert!(!clean.2.is_empty());
        assert_eq!(clean.3, 0);
        let attacked = phone_call(Some("127.0.0.2:40000".parse().expect("addr")));
        assert_eq!(attacked.0, clean.0, "our audio still goes to the phone");
        assert_eq!(attacked.1, clean.1, "the foreign key 1 is never a digit");
        assert_eq!(attacked.2, clean.2, "the foreign audio is never decoded");
        assert_eq!(attacked.3, 12 * 6, "every foreign datagram is counted");
        let h = session().health(Duration::ZERO);
        assert_eq!(h.rejected_packets, 0);
    }

    #[test]
    fn another_port_of_the_answers_host_latches_once() {
        let mut s = session();
        let phone: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        let other: SocketAddr = "127.0.0.1:50002".parse().expect("addr");
        s.handle_datagram(phone, &inbound(1, 0, 0, true, &[0x7F; 160]), Duration::ZERO);
        assert_eq!(s.remote(), phone, "symmetric RTP: same host, other port");
        s.handle_datagram(
            other,
            &inbound(2, 160, 0, false, &[0x7F; 160]),
            Duration::from_millis(20),
        );
        press(&mut s, other, 1, 3, 320, Duration::from_millis(40));
        assert_eq!(s.remote(), phone, "the latch moves only once");
        assert_eq!(heard(&mut s).1, Vec::<char>::new());
        assert_eq!(s.health(Duration::ZERO).rejected_packets, 6);
        // A re-INVITE moves the media: the new host is heard and latches; the old one no more.
        let moved: SocketAddr = "127.0.0.3:41000".parse().expect("addr");
        s.update_remote(moved, "127.0.0.3:41001".parse().expect("addr"), true);
        s.handle_datagram(
            phone,
            &inbound(3, 320, 0, false, &[0x7F; 160]),
            Duration::from_millis(60),
        );
        assert_eq!(s.health(Duration::ZERO).rejected_packets, 7);
        let moved_port: SocketAddr = "127.0.0.3:41010".parse().expect("addr");
        s.handle_datagram(
            moved_port,
            &inbound(9, 0, 0, true, &[0x7F; 160]),
            Duration::from_millis(80),
        );
        assert_eq!(s.remote(), moved_port);
        assert_eq!(s.health(Duration::ZERO).rejected_packets, 7);
    }

    #[test]
    fn an_unspecified_answer_address_hears_nobody() {
        let mut s = MediaSession::new(
            SessionParams {
                remote: "0.0.0.0:40000".parse().expect("addr"),
                ..params()
            },
            vec![0xFF; 160],
            Duration::ZERO,
        )
        .expect("session");
        let from: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        s.handle_datagram(from, &inbound(1, 0, 0, true, &[0x7F; 160]), Duration::ZERO);
        assert!(!s.handle_rtcp_datagram("127.0.0.1:40001".parse().expect("addr")));
        let (remote, digits, audio) = heard(&mut s);
        assert_eq!(
            remote,
            "0.0.0.0:40000".parse::<SocketAddr>().expect("addr"),
            "never latched"
        );
        assert!(digits.is_empty() && audio.is_empty());
        assert_eq!(s.health(Duration::ZERO).rejected_packets, 2);
        assert_eq!(s.health(Duration::ZERO).packets_received, 0);
        // A hold by re-INVITE with 0.0.0.0 stops hearing the phone too.
        let mut s = session();
        s.update_remote(
            "0.0.0.0:40000".parse().expect("addr"),
            "0.0.0.0:40001".parse().expect("addr"),
            false,
        );
        s.handle_datagram(
            "127.0.0.1:40000".parse().expect("addr"),
            &inbound(1, 0, 0, true, &[0x7F; 160]),
            Duration::ZERO,
        );
        assert_eq!(s.health(Duration::ZERO).rejected_packets, 1);
    }

    #[test]
    fn rtcp_is_heard_only_from_the_answers_host() {
        let mut s = session();
        assert!(s.handle_rtcp_datagram("127.0.0.1:40001".parse().expect("addr")));
        assert!(
            s.handle_rtcp_datagram("127.0.0.1:50001".parse().expect("addr")),
            "any port of the host"
        );
        assert!(!s.handle_rtcp_datagram("127.0.0.9:40001".parse().expect("addr")));
        assert_eq!(s.health(Duration::ZERO).rejected_packets, 1);
    }
}
