//! Receiver statistics for one incoming RTP stream (RFC 3550 Appendix A.1, A.3 and A.8).
//!
//! * **Sequence validation (A.1).** A new source is on probation until `MIN_SEQUENTIAL` (2)
//!   packets arrive in sequence; packets during probation are not counted. Afterwards the highest
//!   sequence number is extended with a wrap (cycle) count. A jump ahead of at least
//!   `MAX_DROPOUT` (3000) or behind by more than `MAX_MISORDER` (100) is not counted; if the very
//!   next packet follows it in sequence, the sender is taken to have restarted its numbering and
//!   the statistics restart from there ("two sequential packets after a jump").
//! * **Loss (A.3).** `expected = extended_max - base_seq + 1`; cumulative lost is
//!   `expected - received`, which duplicates can make negative (it is sent as a 24-bit signed
//!   value). [`ReceiverStats::report_block`] computes the fraction lost over the interval since
//!   the previous report, as an RR needs. [`ReceiverStats::loss_percent`] is the health figure:
//!   duplicates recognised in a 64-packet window are *not* counted as received there, so
//!   duplication cannot hide loss, and it never goes below zero.
//! * **Jitter (A.8).** `J += (|D| - J) / 16`, where `D` is the change in transit time
//!   (arrival converted to the RTP clock, minus the RTP timestamp) between consecutive packets.
//!   The arrival time is an argument (a [`Duration`] since any fixed epoch — sans-IO) and the
//!   clock rate is given at construction. Packets carrying the same timestamp as the previous one
//!   (the packets of an RFC 4733 event, or a frame split over packets) do not update the
//!   estimate: they were all sampled at one instant and would otherwise read as jitter.
//! * **SSRC change.** A packet from another SSRC resets the per-source state (a new probation)
//!   and is counted in [`ReceiverStats::source_changes`]. Lifetime counters (packets, bytes,
//!   loss percentage) carry over.

use std::time::Duration;

use super::packet::{RtpHeader, Ssrc};
use super::rtcp::{duration_to_units_65536, NtpTimestamp, ReportBlock};

/// RFC 3550 A.1 constants.
pub const MIN_SEQUENTIAL: u8 = 2;
pub const MAX_DROPOUT: u16 = 3000;
pub const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What [`ReceiverStats::handle_packet`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketStatus {
    /// The first packet of a source (the first ever, or after an SSRC change): probation starts.
    NewSource,
    /// Still on probation; not counted.
    Probation,
    /// Counted.
    Valid,
    /// Counted as RFC 3550 says, but recognised as a copy of a packet already received.
    Duplicate,
    /// A large jump; not counted unless the next packet confirms it.
    Jump,
    /// The packet after a jump confirmed a restart of the numbering; counted from here.
    Restarted,
}

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    /// Number of times the sequence number wrapped.
    cycles: u32,
    base_seq: u32,
    /// `RTP_SEQ_MOD + 1` means "none".
    bad_seq: u32,
    probation: u8,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    duplicates: u64,
    /// Bit `i` set: extended sequence `max - i` was received.
    recent: u64,
    last_transit: Option<u32>,
    last_timestamp: Option<u32>,
    jitter: f64,
    last_sr: Option<(u32, Duration)>,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Self {
        let mut s = Source {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            duplicates: 0,
            recent: 0,
            last_transit: None,
            last_timestamp: None,
            jitter: 0.0,
            last_sr: None,
        };
        s.init_seq(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.duplicates = 0;
        self.recent = 1;
    }

    fn validated(&self) -> bool {
        self.probation == 0
    }

    fn extended_max(&self) -> u64 {
        (u64::from(self.cycles) << 16) | u64::from(self.max_seq)
    }

    fn expected(&self) -> u64 {
        if !self.validated() {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Packets missing from the unique ones received, never negative.
    fn loss(&self) -> u64 {
        self.expected()
            .saturating_sub(self.received.saturating_sub(self.duplicates))
    }

    /// RFC 3550 A.1 `update_seq`, plus duplicate recognition.
    fn update_seq(&mut self, seq: u16) -> PacketStatus {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return PacketStatus::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return PacketStatus::Probation;
        }
        let mut status = PacketStatus::Valid;
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap (or a copy of the highest).
            if udelta == 0 {
                if self.recent & 1 != 0 {
                    status = PacketStatus::Duplicate;
                }
                self.recent |= 1;
            } else {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1);
                }
                self.max_seq = seq;
                self.recent = if udelta >= 64 { 0 } else { self.recent << udelta };
                self.recent |= 1;
            }
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted without telling us.
                self.init_seq(seq);
                status = PacketStatus::Restarted;
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return PacketStatus::Jump;
            }
        } else {
            // Duplicate or reordered packet, at most MAX_MISORDER behind.
            let back = u32::from(self.max_seq.wrapping_sub(seq));
            if back < 64 {
                let bit = 1u64 << back;
                if self.recent & bit != 0 {
                    status = PacketStatus::Duplicate;
                }
                self.recent |= bit;
            }
        }
        self.received += 1;
        if status == PacketStatus::Duplicate {
            self.duplicates += 1;
        }
        status
    }

    /// RFC 3550 A.8.
    fn update_jitter(&mut self, timestamp: u32, arrival_rtp: u32) {
        if self.last_timestamp == Some(timestamp) {
            return;
        }
        self.last_timestamp = Some(timestamp);
        let transit = arrival_rtp.wrapping_sub(timestamp);
        if let Some(prev) = self.last_transit {
            let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

/// Statistics for the one stream a call receives.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    source: Option<Source>,
    packets: u64,
    bytes: u64,
    source_changes: u64,
    restarts: u64,
    /// Expected and lost of sources (or numbering epochs) already left behind.
    prior_expected: u64,
    prior_lost: u64,
    prior_duplicates: u64,
}

impl ReceiverStats {
    /// Statistics for a stream whose RTP clock runs at `clock_rate` Hz (8000 for G.711, 48000 for
    /// Opus).
    pub fn new(clock_rate: u32) -> Self {
        ReceiverStats {
            clock_rate,
            source: None,
            packets: 0,
            bytes: 0,
            source_changes: 0,
            restarts: 0,
            prior_expected: 0,
            prior_lost: 0,
            prior_duplicates: 0,
        }
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Changes the RTP clock rate used for jitter (after a re-negotiation).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate;
    }

    fn arrival_rtp(&self, arrival: Duration) -> u32 {
        (arrival.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32
    }

    fn fold(&mut self) {
        if let Some(s) = &self.source {
            self.prior_expected += s.expected();
            self.prior_lost += s.loss();
            self.prior_duplicates += s.duplicates;
        }
    }

    /// Records one RTP packet (header fields and arrival time).
    pub fn handle_packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: Duration) -> PacketStatus {
        self.packets += 1;
        let arrival_rtp = self.arrival_rtp(arrival);
        let new_source = match &self.source {
            None => true,
            Some(s) if s.ssrc != ssrc => {
                self.source_changes += 1;
                true
            }
            Some(_) => false,
        };
        if new_source {
            self.fold();
            let mut s = Source::new(ssrc, seq);
            // A.1: the first packet itself goes through update_seq and starts the probation count.
            s.update_seq(seq);
            s.update_jitter(timestamp, arrival_rtp);
            self.source = Some(s);
            return PacketStatus::NewSource;
        }
        let Some(s) = self.source.as_mut() else {
            return PacketStatus::NewSource;
        };
        // A restart folds the epoch that ends; compute what to fold before update_seq resets it.
        let before = (s.expected(), s.loss(), s.duplicates);
        let status = s.update_seq(seq);
        match status {
            PacketStatus::Jump => return status,
            PacketStatus::Restarted => {
                self.restarts += 1;
                self.prior_expected += before.0;
                self.prior_lost += before.1;
                self.prior_duplicates += before.2;
                // Timestamps probably jumped too: start the transit chain afresh.
                s.last_transit = None;
                s.last_timestamp = None;
            }
            _ => {}
        }
        s.update_jitter(timestamp, arrival_rtp);
        status
    }

    /// Records one parsed RTP packet and its payload size.
    pub fn handle_rtp(&mut self, header: &RtpHeader, payload_len: usize, arrival: Duration) -> PacketStatus {
        self.bytes += payload_len as u64;
        self.handle_packet(header.ssrc, header.seq, header.timestamp, arrival)
    }

    /// Records an SR from `ssrc` that arrived at `arrival` (for LSR/DLSR in our next report).
    pub fn handle_sender_report(&mut self, ssrc: Ssrc, ntp: NtpTimestamp, arrival: Duration) {
        if let Some(s) = self.source.as_mut().filter(|s| s.ssrc == ssrc.0) {
            s.last_sr = Some((ntp.middle32(), arrival));
        }
    }

    /// The report block for our next SR/RR, as of `now` (same epoch as arrivals). Advances the
    /// interval for the fraction lost. `None` until a source has passed probation.
    pub fn report_block(&mut self, now: Duration) -> Option<ReportBlock> {
        let s = self.source.as_mut().filter(|s| s.validated())?;
        let expected = s.expected();
        let lost = (expected as i64 - s.received as i64).clamp(
            i64::from(ReportBlock::MIN_CUMULATIVE_LOST),
            i64::from(ReportBlock::MAX_CUMULATIVE_LOST),
        );
        let expected_interval = expected.saturating_sub(s.expected_prior);
        s.expected_prior = expected;
        let received_interval = s.received.saturating_sub(s.received_prior);
        s.received_prior = s.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (lsr, dlsr) = match s.last_sr {
            Some((lsr, at)) => (lsr, duration_to_units_65536(now.saturating_sub(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: Ssrc(s.ssrc),
            fraction_lost,
            cumulative_lost: lost as i32,
            extended_highest_seq: s.extended_max() as u32,
            jitter: s.jitter.round() as u32,
            lsr,
            dlsr,
        })
    }

    /// The SSRC of the current source.
    pub fn ssrc(&self) -> Option<Ssrc> {
        self.source.as_ref().map(|s| Ssrc(s.ssrc))
    }

    /// Whether the current source has passed probation.
    pub fn is_validated(&self) -> bool {
        self.source.as_ref().is_some_and(Source::validated)
    }

    /// Extended highest sequence number of the current source (cycles in the high 16 bits).
    pub fn extended_highest_seq(&self) -> Option<u32> {
        self.source
            .as_ref()
            .filter(|s| s.validated())
            .map(|s| s.extended_max() as u32)
    }

    /// Packets expected from the current source since probation ended (or the last restart).
    pub fn expected(&self) -> u64 {
        self.source.as_ref().map_or(0, Source::expected)
    }

    /// Packets counted for the current source, as RFC 3550 counts them (duplicates included).
    pub fn received(&self) -> u64 {
        self.source.as_ref().map_or(0, |s| s.received)
    }

    /// RFC 3550 cumulative number lost for the current source (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.source
            .as_ref()
            .map_or(0, |s| s.expected() as i64 - s.received as i64)
    }

    /// Every packet handed to [`Self::handle_packet`], over the whole call.
    pub fn packets_received(&self) -> u64 {
        self.packets
    }

    /// Payload bytes handed to [`Self::handle_rtp`], over the whole call.
    pub fn bytes_received(&self) -> u64 {
        self.bytes
    }

    /// Recognised duplicates over the whole call.
    pub fn duplicates(&self) -> u64 {
        self.prior_duplicates + self.source.as_ref().map_or(0, |s| s.duplicates)
    }

    /// How many times the SSRC changed.
    pub fn source_changes(&self) -> u64 {
        self.source_changes
    }

    /// How many times a source restarted its sequence numbering (a confirmed jump).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Packets lost over the whole call (duplicates do not offset losses).
    pub fn packets_lost(&self) -> u64 {
        self.prior_lost + self.source.as_ref().map_or(0, Source::loss)
    }

    /// Lost / expected × 100 over the whole call, in `0.0..=100.0`.
    pub fn loss_percent(&self) -> f64 {
        let expected = self.prior_expected + self.source.as_ref().map_or(0, Source::expected);
        if expected == 0 {
            return 0.0;
        }
        (self.packets_lost() as f64 * 100.0 / expected as f64).min(100.0)
    }

    /// Interarrival jitter of the current source in RTP timestamp units.
    pub fn jitter(&self) -> f64 {
        self.source.as_ref().map_or(0.0, |s| s.jitter)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        if self.clock_rate == 0 {
            return 0.0;
        }
        self.jitter() * 1000.0 / f64::from(self.clock_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `seqs` from one source at 20 ms spacing with timestamps that follow the sequence.
    fn feed(stats: &mut ReceiverStats, ssrc: u32, seqs: impl IntoIterator<Item = u16>, t0: Duration) {
        for (i, seq) in seqs.into_iter().enumerate() {
            stats.handle_packet(ssrc, seq, u32::from(seq) * 160, t0 + MS * 20 * i as u32);
        }
    }

    #[test]
    fn probation_then_in_order_stream_has_no_loss_and_no_jitter() {
        let mut s = ReceiverStats::new(8000);
        assert_eq!(
            s.handle_packet(1, 100, 0, Duration::ZERO),
            PacketStatus::NewSource
        );
        assert!(!s.is_validated());
        assert_eq!(s.handle_packet(1, 101, 160, MS * 20), PacketStatus::Valid);
        assert!(s.is_validated());
        for i in 2..500u32 {
            assert_eq!(
                s.handle_packet(1, 100 + i as u16, 160 * i, MS * 20 * i),
                PacketStatus::Valid
            );
        }
        assert_eq!(s.expected(), 499);
        assert_eq!(s.received(), 499);
        assert_eq!(s.loss_percent(), 0.0);
        assert_eq!(s.jitter(), 0.0);
        assert_eq!(s.jitter_ms(), 0.0);
        assert_eq!(s.packets_received(), 500);
    }

    #[test]
    fn probation_restarts_on_out_of_sequence() {
        let mut s = ReceiverStats::new(8000);
        s.handle_packet(1, 10, 0, Duration::ZERO);
        assert_eq!(s.handle_packet(1, 20, 0, MS), PacketStatus::Probation);
        assert!(!s.is_validated());
        assert_eq!(s.handle_packet(1, 21, 0, MS * 2), PacketStatus::Valid);
        assert_eq!(s.extended_highest_seq(), Some(21));
        assert_eq!(s.expected(), 1);
    }

    #[test]
    fn sequence_wrap_counts_cycles() {
        let mut s = ReceiverStats::new(8000);
        feed(
            &mut s,
            7,
            (0..20u16).map(|i| 65530u16.wrapping_add(i)),
            Duration::ZERO,
        );
        // 65530 is probation; base 65531; highest 65530+19 = 13 after one wrap
        assert_eq!(s.extended_highest_seq(), Some((1 << 16) | 13));
        assert_eq!(s.expected(), 19);
        assert_eq!(s.received(), 19);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn large_jump_needs_two_sequential_packets() {
        let mut s = ReceiverStats::new(8000);
        feed(&mut s, 1, 0..10, Duration::ZERO);
        assert_eq!(s.handle_packet(1, 5000, 0, MS * 300), PacketStatus::Jump);
        assert_eq!(s.received(), 9);
        // not followed: another stray jump, still not counted
        assert_eq!(s.handle_packet(1, 9000, 0, MS * 320), PacketStatus::Jump);
        assert_eq!(s.handle_packet(1, 10, 1600, MS * 340), PacketStatus::Valid);
        // a jump confirmed by its successor restarts the numbering
        assert_eq!(s.handle_packet(1, 40_000, 0, MS * 360), PacketStatus::Jump);
        assert_eq!(s.handle_packet(1, 40_001, 160, MS * 380), PacketStatus::Restarted);
        assert_eq!(s.restarts(), 1);
        assert_eq!(s.extended_highest_seq(), Some(40_001));
        assert_eq!(s.expected(), 1);
        assert_eq!(s.handle_packet(1, 40_002, 320, MS * 400), PacketStatus::Valid);
        assert_eq!(s.loss_percent(), 0.0);
        // a packet far behind (more than MAX_MISORDER) is a jump, a little behind is misorder
        assert_eq!(s.handle_packet(1, 40_002 - 200, 0, MS * 420), PacketStatus::Jump);
        assert_eq!(s.handle_packet(1, 40_002 - 50, 0, MS * 440), PacketStatus::Valid);
    }

    #[test]
    fn fraction_lost_is_per_interval_and_cumulative_is_signed() {
        let mut s = ReceiverStats::new(8000);
        // probation packet 0, then 1..=100 with every 10th missing -> expected 100, lost 10
        feed(
            &mut s,
            3,
            (0..=100u16).filter(|q| *q == 0 || q % 10 != 0 || *q == 100),
            Duration::ZERO,
        );
        let rb = s.report_block(Duration::from_secs(3)).unwrap();
        assert_eq!(rb.ssrc, Ssrc(3));
        assert_eq!(rb.cumulative_lost, 9);
        assert_eq!(rb.fraction_lost, (9 * 256 / 100) as u8);
        assert_eq!(rb.extended_highest_seq, 100);
        assert_eq!((rb.lsr, rb.dlsr), (0, 0));
        // next interval: no loss
        feed(&mut s, 3, 101..=150, Duration::from_secs(3));
        let rb = s.report_block(Duration::from_secs(6)).unwrap();
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 9);
        // duplicates: RFC count makes the cumulative loss shrink, negative eventually
        for _ in 0..20 {
            assert_eq!(
                s.handle_packet(3, 150, 150 * 160, Duration::from_secs(7)),
                PacketStatus::Duplicate
            );
        }
        let rb = s.report_block(Duration::from_secs(8)).unwrap();
        assert_eq!(rb.cumulative_lost, -11);
        assert_eq!(rb.fraction_lost, 0);
        // ...but not the health figure
        assert!(
            (s.loss_percent() - 9.0 * 100.0 / 150.0).abs() < 1e-9,
            "{}",
            s.loss_percent()
        );
        assert_eq!(s.duplicates(), 20);
    }

    #[test]
    fn lsr_and_dlsr_from_the_last_sender_report() {
        let mut s = ReceiverStats::new(8000);
        feed(&mut s, 9, 0..5, Duration::ZERO);
        let ntp = NtpTimestamp(0x1122_3344_5566_7788);
        s.handle_sender_report(Ssrc(8), ntp, Duration::from_secs(1)); // another source: ignored
        assert_eq!(s.report_block(Duration::from_secs(2)).unwrap().lsr, 0);
        s.handle_sender_report(Ssrc(9), ntp, Duration::from_secs(1));
        let rb = s.report_block(Duration::from_millis(1500)).unwrap();
        assert_eq!(rb.lsr, 0x3344_5566);
        assert_eq!(rb.dlsr, 32768);
    }

    #[test]
    fn jitter_alternating_plus_minus_5ms_converges_to_analytic_value() {
        // Arrival offsets alternate +5/-5 ms around a 20 ms grid, so each transit difference is
        // ±10 ms = 80 units at 8 kHz and J_k = 80 (1 - (15/16)^k) after k updates.
        let mut s = ReceiverStats::new(8000);
        for i in 0..400u32 {
            let nominal = Duration::from_millis(20 * u64::from(i) + 100);
            let arrival = if i % 2 == 0 {
                nominal + MS * 5
            } else {
                nominal - MS * 5
            };
            s.handle_packet(5, i as u16, 1000 + 160 * i, arrival);
            if i >= 1 {
                let k = i32::try_from(i).unwrap();
                let analytic = 80.0 * (1.0 - (15.0f64 / 16.0).powi(k));
                assert!(
                    (s.jitter() - analytic).abs() < 1e-9,
                    "k={k} {} vs {analytic}",
                    s.jitter()
                );
            }
        }
        assert!((s.jitter_ms() - 10.0).abs() < 1e-6);
        assert_eq!(s.report_block(Duration::from_secs(9)).unwrap().jitter, 80);
    }

    #[test]
    fn jitter_at_48khz_and_same_timestamp_packets_are_ignored() {
        let mut s = ReceiverStats::new(48_000);
        // constant 20 ms = 960 units spacing: no jitter, even with a DTMF event in the middle
        // whose packets all carry one timestamp while arriving every 20 ms
        let mut t = Duration::ZERO;
        for i in 0..50u32 {
            s.handle_packet(1, i as u16, 960 * i, t);
            t += MS * 20;
        }
        for i in 50..60u32 {
            s.handle_packet(1, i as u16, 960 * 50, t);
            t += MS * 20;
        }
        for i in 60..100u32 {
            s.handle_packet(1, i as u16, 960 * i, t);
            t += MS * 20;
        }
        assert_eq!(s.jitter(), 0.0);
    }

    #[test]
    fn ssrc_change_resets_and_counts() {
        let mut s = ReceiverStats::new(8000);
        feed(&mut s, 1, 0..50, Duration::ZERO);
        assert_eq!(
            s.handle_packet(2, 7000, 0, Duration::from_secs(2)),
            PacketStatus::NewSource
        );
        assert_eq!(s.source_changes(), 1);
        assert_eq!(s.ssrc(), Some(Ssrc(2)));
        assert!(!s.is_validated());
        assert_eq!(s.report_block(Duration::from_secs(2)), None);
        feed(&mut s, 2, 7001..7051, Duration::from_secs(2));
        assert_eq!(s.expected(), 50);
        assert_eq!(s.packets_received(), 101);
        assert_eq!(s.loss_percent(), 0.0);
    }

    #[test]
    fn bytes_via_on_rtp() {
        let mut s = ReceiverStats::new(8000);
        let h = RtpHeader::new(0, 1, 160, 4, false);
        s.handle_rtp(&h, 160, Duration::ZERO);
        s.handle_rtp(&RtpHeader { seq: 2, ..h }, 160, MS * 20);
        assert_eq!(s.bytes_received(), 320);
        assert_eq!(s.packets_received(), 2);
    }

    /// xorshift64*: a deterministic generator for the virtual network.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    #[test]
    fn virtual_stream_with_seeded_loss_duplication_and_reordering() {
        for seed in [1u64, 42, 0xdead_beef] {
            let mut rng = Rng(seed);
            let n = 3000u32;
            let first = 65_000u16; // wraps during the stream
                                   // Sender side: packet i has seq first+i and timestamp 160 i; the network drops 5 %,
                                   // duplicates 2 % and swaps neighbours 3 % (never touching the first three packets or the
                                   // last, so probation and the final highest sequence are undisturbed).
            let mut wire: Vec<u32> = Vec::new();
            let mut dropped = 0u64;
            let mut dups = 0u64;
            for i in 0..n {
                let protected = i < 3 || i == n - 1;
                if !protected && rng.chance(5) {
                    dropped += 1;
                    continue;
                }
                wire.push(i);
                if !protected && rng.chance(2) {
                    wire.push(i);
                    dups += 1;
                }
            }
            let mut swaps = 0;
            for k in 4..wire.len().saturating_sub(2) {
                if rng.chance(3) {
                    wire.swap(k, k + 1);
                    swaps += 1;
                }
            }
            assert!(dropped > 100 && dups > 20 && swaps > 50);
            let mut s = ReceiverStats::new(8000);
            // Arrival: 20 ms per slot plus up to 3 ms of random delay.
            for (slot, &i) in wire.iter().enumerate() {
                let arrival = MS * 20 * slot as u32 + Duration::from_micros(rng.next() % 3000);
                s.handle_packet(0x55, first.wrapping_add(i as u16), 160 * i, arrival);
            }
            // Packet 0 is probation; expected covers packets 1..n-1.
            let expected = u64::from(n) - 1;
            assert_eq!(s.expected(), expected);
            assert_eq!(s.packets_lost(), dropped);
            let want = dropped as f64 * 100.0 / expected as f64;
            assert!(
                (s.loss_percent() - want).abs() < 1e-9,
                "{} vs {want}",
                s.loss_percent()
            );
            assert!((4.0..6.5).contains(&s.loss_percent()), "{}", s.loss_percent());
            assert_eq!(s.duplicates(), dups);
            // RFC view: duplicates are counted as received
            assert_eq!(s.cumulative_lost(), dropped as i64 - dups as i64);
            // Jitter: lost packets make the grid shift by 20 ms per drop before the next packet,
            // reordering by ±20 ms, the random delay up to 3 ms: a few ms, well under 20.
            assert!(
                s.jitter_ms() > 0.5 && s.jitter_ms() < 20.0,
                "jitter {} ms",
                s.jitter_ms()
            );
        }
    }
}
