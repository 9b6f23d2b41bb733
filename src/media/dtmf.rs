//! DTMF: RFC 4733 telephone-events in RTP, SIP INFO digits, and one merged digit stream.
//!
//! # Payload (RFC 4733 §2.3)
//!
//! ```text
//! |     event     |E|R| volume    |          duration             |
//! ```
//!
//! Events 0–9 are the digits, 10 is `*`, 11 is `#`, 12–15 are `A`–`D`. All packets of one event
//! carry the RTP timestamp of the event's start; the duration grows with each update; the final
//! packet has E set and is sent three times (§2.5.1.4). The first packet has the RTP marker bit.
//!
//! # Receiving: [`DtmfReceiver`]
//!
//! Events are keyed by their RTP timestamp (same timestamp = same key press). A digit is reported
//! **exactly once** per event:
//!
//! * on the first packet with E set (the two retransmissions are then ignored);
//! * or, when every end packet was lost, as soon as a packet of a *newer* event (another
//!   timestamp) arrives, or when [`DtmfReceiver::poll`] finds no packet of the event for the end
//!   timeout (default 400 ms; senders update at least every 50 ms or so);
//! * the marker bit is not needed to recognise a new event, so a lost first packet changes nothing.
//!
//! Packets of older events (timestamp behind the current one, e.g. reordered retransmissions) are
//! ignored. A long press split into segments (§2.5.1.3: same event, no marker, next timestamp =
//! previous + its duration, normally 0xFFFF) stays one press. Events above 15 (flash, tones) end a
//! pending digit but are not reported. After an SSRC change call [`DtmfReceiver::reset`].
//!
//! # Merging with SIP INFO: [`DigitStream`]
//!
//! Some PBXes send a key both as RFC 4733 and as SIP INFO. [`DigitStream`] emits digits from both
//! sources in arrival order and suppresses the copy by this rule:
//!
//! > A digit from one source is a duplicate, and dropped, when the *other* source delivered the
//! > same digit that has not yet been matched, and the two moments are within the window
//! > (default 300 ms) of each other. The moment of an INFO digit is its arrival; the moment of an
//! > RFC 4733 digit is the span from its first to its last packet, so an INFO sent at key-down
//! > still matches a long press that is reported at key-up. Each delivered digit can absorb at
//! > most one copy from the other source; digits from the same source are never merged (pressing
//! > `5` twice quickly gives two `5`s).
//!
//! # Sending: [`events_for_digit`]
//!
//! The payloads for one key press per RFC 4733 §2.5.1: the first with the marker, one update per
//! 20 ms with the growing duration, then three end packets, all for one RTP timestamp chosen by
//! the caller.

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;

/// How long without packets before an event whose end packets were all lost is reported.
pub const DEFAULT_END_TIMEOUT: Duration = Duration::from_millis(400);
/// Window within which the same digit by RFC 4733 and by SIP INFO counts as one key press.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_millis(300);
/// Volume written into events we send (−10 dBm0).
pub const SEND_VOLUME: u8 = 10;
/// Packets of an event whose timestamp is this far behind the current one are taken as stale;
/// farther behind is taken as a timestamp discontinuity (a new stream) and a new event.
const STALE_WINDOW: u32 = 1 << 20;
/// How long a delivered digit waits for its copy from the other source, beyond the window
/// (covers the longest press between key-down and key-up reports).
const MAX_PRESS: Duration = Duration::from_secs(10);
/// Bound on remembered unmatched digits.
const MAX_CREDITS: usize = 32;

/// Why a digit or an event payload is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DtmfError {
    #[error("telephone-event payload of {0} bytes, need 4")]
    Truncated(usize),
    #[error("{0:?} is not a DTMF digit (0-9, *, #, A-D)")]
    InvalidDigit(char),
    #[error("RTP clock rate must not be zero")]
    InvalidClockRate,
}

/// One RFC 4733 event report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in −dBm0, 0..=63.
    pub volume: u8,
    /// In RTP timestamp units since the event's start.
    pub duration: u16,
}

impl DtmfEvent {
    /// The 4 payload bytes (R bit zero).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The digit this event stands for, if it is a DTMF event.
    pub fn digit(&self) -> Option<char> {
        event_to_char(self.event)
    }
}

/// Parses the first event report of a telephone-event payload (bytes after the first four, e.g.
/// further reports of a multi-event packet, are ignored). The reserved R bit is ignored.
pub fn parse_event(payload: &[u8]) -> Result<DtmfEvent, DtmfError> {
    let Some(&[event, flags, d0, d1]) = payload.first_chunk::<4>() else {
        return Err(DtmfError::Truncated(payload.len()));
    };
    Ok(DtmfEvent {
        event,
        end: flags & 0x80 != 0,
        volume: flags & 0x3f,
        duration: u16::from_be_bytes([d0, d1]),
    })
}

/// Event code → digit: 0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`.
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Digit → event code; lower-case `a`–`d` are accepted.
pub fn char_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// A key press recognised by [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedDigit {
    pub digit: char,
    pub event: u8,
    /// The RTP timestamp of the event's start (the key of the event).
    pub timestamp: u32,
    /// Longest duration seen, in RTP timestamp units (summed over segments of a long press).
    pub duration: u32,
    /// Whether an end packet arrived (false: inferred from a following event or the timeout).
    pub end_seen: bool,
    /// Arrival of the first and last packet seen for the event.
    pub first_seen: Duration,
    pub last_seen: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    /// Timestamp of the segment being received.
    ts: u32,
    /// Timestamp of the first segment.
    first_ts: u32,
    event: u8,
    /// Duration of completed segments before this one.
    earlier_segments: u32,
    max_duration: u16,
    ended: bool,
    reported: bool,
    first_seen: Duration,
    last_seen: Duration,
}

impl Current {
    fn detected(&self) -> Option<DetectedDigit> {
        Some(DetectedDigit {
            digit: event_to_char(self.event)?,
            event: self.event,
            timestamp: self.first_ts,
            duration: self.earlier_segments + u32::from(self.max_duration),
            end_seen: self.ended,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        })
    }

    /// Marks reported; the digit if this is the first time and it is a DTMF event.
    fn report(&mut self) -> Option<DetectedDigit> {
        if self.reported {
            return None;
        }
        self.reported = true;
        self.detected()
    }
}

/// Turns the RFC 4733 packets of one stream into key presses, each reported once.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    current: Option<Current>,
    end_timeout: Duration,
    malformed: u64,
}

impl Default for DtmfReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::with_end_timeout(DEFAULT_END_TIMEOUT)
    }

    pub fn with_end_timeout(end_timeout: Duration) -> Self {
        DtmfReceiver {
            current: None,
            end_timeout,
            malformed: 0,
        }
    }

    /// Forgets the current event (after an SSRC change).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Payloads too short to be an event, ignored by [`Self::handle_packet`].
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// One telephone-event packet (RTP timestamp, marker bit, payload) that arrived at `now`;
    /// returns a digit when a key press is complete. Malformed payloads are counted and ignored.
    pub fn handle_packet(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Duration,
    ) -> Option<char> {
        match self.handle_event(timestamp, marker, payload, now) {
            Ok(d) => d.map(|d| d.digit),
            Err(_) => {
                self.malformed += 1;
                None
            }
        }
    }

    /// Like [`Self::handle_packet`], with the details of the press and the parse error.
    pub fn handle_event(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Duration,
    ) -> Result<Option<DetectedDigit>, DtmfError> {
        let ev = parse_event(payload)?;
        let Some(cur) = self.current.as_mut() else {
            self.current = Some(Self::start(timestamp, &ev, now));
            return Ok(self.finish_if_ended());
        };
        if timestamp == cur.ts {
            cur.max_duration = cur.max_duration.max(ev.duration);
            cur.last_seen = now;
            cur.ended |= ev.end;
            return Ok(self.finish_if_ended());
        }
        let ahead = timestamp.wrapping_sub(cur.ts);
        if ahead > u32::MAX - STALE_WINDOW {
            // Behind the current event: a late packet of an earlier press.
            return Ok(None);
        }
        let continues = !marker
            && !cur.ended
            && ev.event == cur.event
            && (ahead == u32::from(u16::MAX) || ahead == u32::from(cur.max_duration));
        if continues {
            // The next segment of a long press (RFC 4733 §2.5.1.3).
            cur.earlier_segments = cur.earlier_segments.saturating_add(ahead);
            cur.ts = timestamp;
            cur.max_duration = ev.duration;
            cur.last_seen = now;
            cur.ended = ev.end;
            return Ok(self.finish_if_ended());
        }
        // A new press: the previous one is over even if its end packets were lost.
        let previous = cur.report();
        self.current = Some(Self::start(timestamp, &ev, now));
        match previous {
            // The new event, if already ended, is reported by its next packet or by poll().
            Some(d) => Ok(Some(d)),
            None => Ok(self.finish_if_ended()),
        }
    }

    fn start(timestamp: u32, ev: &DtmfEvent, now: Duration) -> Current {
        Current {
            ts: timestamp,
            first_ts: timestamp,
            event: ev.event,
            earlier_segments: 0,
            max_duration: ev.duration,
            ended: ev.end,
            reported: false,
            first_seen: now,
            last_seen: now,
        }
    }

    fn finish_if_ended(&mut self) -> Option<DetectedDigit> {
        self.current
            .as_mut()
            .filter(|c| c.ended)
            .and_then(Current::report)
    }

    /// Reports a press whose end was seen but not yet reported, or whose packets stopped for
    /// the end timeout. Call it from the media tick.
    pub fn poll(&mut self, now: Duration) -> Option<DetectedDigit> {
        let cur = self.current.as_mut()?;
        if cur.ended || now.saturating_sub(cur.last_seen) >= self.end_timeout {
            cur.report()
        } else {
            None
        }
    }
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigitSource {
    /// RFC 4733 telephone-event in RTP.
    Rtp,
    /// SIP INFO (application/dtmf-relay or application/dtmf).
    Info,
}

/// A digit of the merged stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub digit: char,
    pub source: DigitSource,
    /// When it was delivered to the stream.
    pub at: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Credit {
    digit: char,
    source: DigitSource,
    start: Duration,
    end: Duration,
}

/// Digits from RFC 4733 and SIP INFO merged into one ordered, de-duplicated stream (see the
/// module documentation for the rule).
#[derive(Debug, Clone)]
pub struct DigitStream {
    receiver: DtmfReceiver,
    window: Duration,
    credits: VecDeque<Credit>,
    out: VecDeque<Digit>,
    suppressed: u64,
}

impl Default for DigitStream {
    fn default() -> Self {
        Self::new()
    }
}

impl DigitStream {
    pub fn new() -> Self {
        Self::with_window(DEFAULT_DEDUP_WINDOW)
    }

    pub fn with_window(window: Duration) -> Self {
        DigitStream {
            receiver: DtmfReceiver::new(),
            window,
            credits: VecDeque::new(),
            out: VecDeque::new(),
            suppressed: 0,
        }
    }

    /// The embedded RFC 4733 receiver (e.g. to reset it after an SSRC change).
    pub fn receiver_mut(&mut self) -> &mut DtmfReceiver {
        &mut self.receiver
    }

    /// One telephone-event RTP packet.
    pub fn handle_rtp_event(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Duration,
    ) -> Result<(), DtmfError> {
        if let Some(d) = self.receiver.handle_event(timestamp, marker, payload, now)? {
            self.push_rtp_digit(&d, now);
        }
        Ok(())
    }

    /// A press detected by a [`DtmfReceiver`] kept elsewhere; true if it was emitted.
    pub fn push_rtp_digit(&mut self, d: &DetectedDigit, now: Duration) -> bool {
        self.accept(d.digit, DigitSource::Rtp, d.first_seen, d.last_seen, now)
    }

    /// A digit from SIP INFO; `Ok(true)` if emitted, `Ok(false)` if it duplicated an RTP digit.
    pub fn push_info(&mut self, digit: char, now: Duration) -> Result<bool, DtmfError> {
        let event = char_to_event(digit).ok_or(DtmfError::InvalidDigit(digit))?;
        let digit = event_to_char(event).ok_or(DtmfError::InvalidDigit(digit))?;
        Ok(self.accept(digit, DigitSource::Info, now, now, now))
    }

    /// Timeouts of the RFC 4733 receiver; call from the media tick.
    pub fn poll(&mut self, now: Duration) {
        if let Some(d) = self.receiver.poll(now) {
            self.push_rtp_digit(&d, now);
        }
    }

    /// The next digit of the merged stream.
    pub fn next_digit(&mut self) -> Option<Digit> {
        self.out.pop_front()
    }

    /// Copies dropped by the de-duplication rule.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn accept(
        &mut self,
        digit: char,
        source: DigitSource,
        start: Duration,
        end: Duration,
        now: Duration,
    ) -> bool {
        let keep = self.window + MAX_PRESS;
        self.credits.retain(|c| c.end + keep >= now);
        let w = self.window;
        let matched = self.credits.iter().position(|c| {
            c.source != source && c.digit == digit && c.start.saturating_sub(w) <= end && start <= c.end + w
        });
        if let Some(i) = matched {
            self.credits.remove(i);
            self.suppressed += 1;
            return false;
        }
        if self.credits.len() >= MAX_CREDITS {
            self.credits.pop_front();
        }
        self.credits.push_back(Credit {
            digit,
            source,
            start,
            end,
        });
        self.out.push_back(Digit {
            digit,
            source,
            at: now,
        });
        true
    }
}

/// The payloads to send one key press (RFC 4733 §2.5.1), one per 20 ms packet, as
/// `(payload, marker, end)`: the first with the marker and a duration of one packet, updates with
/// growing durations, then three end packets with the total duration. All go out with the same
/// RTP timestamp (the press's start) and consecutive sequence numbers. The duration is clamped to
/// 1..=0xFFFF timestamp units (8.19 s at 8 kHz, 1.36 s at 48 kHz), so no segmenting is needed.
pub fn events_for_digit(
    digit: char,
    duration_ms: u32,
    clock_rate: u32,
) -> Result<Vec<([u8; 4], bool, bool)>, DtmfError> {
    let event = char_to_event(digit).ok_or(DtmfError::InvalidDigit(digit))?;
    if clock_rate == 0 {
        return Err(DtmfError::InvalidClockRate);
    }
    let per_packet = (clock_rate / 50).max(1);
    let total = (u64::from(duration_ms) * u64::from(clock_rate) / 1000).clamp(1, u64::from(u16::MAX)) as u32;
    let mut out = Vec::with_capacity((total / per_packet) as usize + 4);
    let mut elapsed = per_packet;
    while elapsed < total {
        let ev = DtmfEvent {
            event,
            end: false,
            volume: SEND_VOLUME,
            duration: elapsed as u16,
        };
        out.push((ev.to_bytes(), out.is_empty(), false));
        elapsed += per_packet;
    }
    let end = DtmfEvent {
        event,
        end: true,
        volume: SEND_VOLUME,
        duration: total as u16,
    };
    for _ in 0..3 {
        out.push((end.to_bytes(), out.is_empty(), true));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ev(event: u8, end: bool, duration: u16) -> [u8; 4] {
        DtmfEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    /// The packets of one press: marker first, updates every 20 ms (160 units), three ends.
    fn press(event: u8, updates: u16) -> Vec<(bool, [u8; 4])> {
        let mut v: Vec<(bool, [u8; 4])> = (1..=updates)
            .map(|k| (k == 1, ev(event, false, 160 * k)))
            .collect();
        for _ in 0..3 {
            v.push((false, ev(event, true, 160 * (updates + 1))));
        }
        v
    }

    #[test]
    fn parse_event_fields_and_truncation() {
        let e = parse_event(&[11, 0x80 | 0x40 | 0x0a, 0x03, 0x20, 0xff]).unwrap();
        assert_eq!(
            e,
            DtmfEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(e.digit(), Some('#'));
        assert_eq!(e.to_bytes(), [11, 0x8a, 0x03, 0x20]);
        for n in 0..4 {
            assert_eq!(parse_event(&[1, 2, 3, 4][..n]), Err(DtmfError::Truncated(n)));
        }
    }

    #[test]
    fn digit_mapping_both_ways() {
        let all: String = (0..16).filter_map(event_to_char).collect();
        assert_eq!(all, "0123456789*#ABCD");
        assert_eq!(event_to_char(16), None);
        for (i, c) in all.chars().enumerate() {
            assert_eq!(char_to_event(c), Some(i as u8));
        }
        assert_eq!(char_to_event('d'), Some(15));
        assert_eq!(char_to_event('E'), None);
    }

    #[test]
    fn one_report_despite_three_end_packets() {
        let mut r = DtmfReceiver::new();
        let mut got = Vec::new();
        for (i, (m, p)) in press(5, 6).into_iter().enumerate() {
            got.extend(r.handle_packet(1000, m, &p, MS * 20 * i as u32));
        }
        assert_eq!(got, vec!['5']);
        assert_eq!(r.poll(Duration::from_secs(10)), None);
    }

    #[test]
    fn details_of_the_press() {
        let mut r = DtmfReceiver::new();
        let mut detected = None;
        for (i, (m, p)) in press(1, 4).into_iter().enumerate() {
            if let Some(d) = r.handle_event(7, m, &p, MS * (100 + 20 * i as u32)).unwrap() {
                detected = Some(d);
            }
        }
        let d = detected.unwrap();
        assert_eq!(
            (d.digit, d.event, d.timestamp, d.duration, d.end_seen),
            ('1', 1, 7, 800, true)
        );
        assert_eq!((d.first_seen, d.last_seen), (MS * 100, MS * 180));
    }

    #[test]
    fn lost_first_packet_does_not_matter() {
        let mut r = DtmfReceiver::new();
        let got: Vec<char> = press(9, 5)
            .into_iter()
            .skip(1)
            .filter_map(|(m, p)| r.handle_packet(50, m, &p, Duration::ZERO))
            .collect();
        assert_eq!(got, vec!['9']);
    }

    #[test]
    fn all_end_packets_lost_then_next_press_reports_previous_once() {
        let mut r = DtmfReceiver::new();
        let mut got = Vec::new();
        for (m, p) in press(1, 5).into_iter().take(5) {
            got.extend(r.handle_packet(1000, m, &p, MS * 10));
        }
        assert!(got.is_empty());
        for (m, p) in press(2, 5) {
            got.extend(r.handle_packet(5000, m, &p, MS * 500));
        }
        assert_eq!(got, vec!['1', '2']);
        // a late end packet of the first press changes nothing
        assert_eq!(r.handle_packet(1000, false, &ev(1, true, 960), MS * 600), None);
        assert_eq!(r.poll(Duration::from_secs(5)), None);
    }

    #[test]
    fn all_end_packets_lost_reported_on_timeout_once() {
        let mut r = DtmfReceiver::with_end_timeout(MS * 300);
        for (i, (m, p)) in press(3, 5).into_iter().take(5).enumerate() {
            assert_eq!(r.handle_packet(1000, m, &p, MS * 20 * i as u32), None);
        }
        // last packet at 80 ms
        assert_eq!(r.poll(MS * 300), None);
        let d = r.poll(MS * 380).unwrap();
        assert_eq!((d.digit, d.end_seen, d.duration), ('3', false, 800));
        assert_eq!(r.poll(MS * 1000), None);
        // a straggler end packet, and a new press, report nothing twice
        assert_eq!(r.handle_packet(1000, false, &ev(3, true, 960), MS * 1100), None);
        let got: Vec<char> = press(3, 2)
            .into_iter()
            .filter_map(|(m, p)| r.handle_packet(9000, m, &p, MS * 1200))
            .collect();
        assert_eq!(got, vec!['3']);
    }

    #[test]
    fn same_key_twice_is_two_presses() {
        let mut r = DtmfReceiver::new();
        let mut got = Vec::new();
        for ts in [100u32, 2000] {
            for (m, p) in press(0, 3) {
                got.extend(r.handle_packet(ts, m, &p, Duration::ZERO));
            }
        }
        assert_eq!(got, vec!['0', '0']);
    }

    #[test]
    fn new_press_seen_only_by_its_end_packets() {
        let mut r = DtmfReceiver::new();
        for (m, p) in press(4, 3).into_iter().take(3) {
            r.handle_packet(100, m, &p, Duration::ZERO);
        }
        // the first press lost its ends; of the second only the ends arrive
        assert_eq!(
            r.handle_packet(3000, false, &ev(6, true, 640), MS * 300),
            Some('4')
        );
        assert_eq!(
            r.handle_packet(3000, false, &ev(6, true, 640), MS * 320),
            Some('6')
        );
        assert_eq!(r.handle_packet(3000, false, &ev(6, true, 640), MS * 340), None);
        // ... or only one end packet arrives: poll reports it at once
        for (m, p) in press(7, 3).into_iter().take(3) {
            r.handle_packet(6000, m, &p, MS * 400);
        }
        assert_eq!(
            r.handle_packet(9000, false, &ev(8, true, 640), MS * 700),
            Some('7')
        );
        assert_eq!(r.poll(MS * 701).map(|d| d.digit), Some('8'));
        assert_eq!(r.poll(MS * 2000), None);
    }

    #[test]
    fn reordered_packets_of_an_older_press_are_ignored() {
        let mut r = DtmfReceiver::new();
        for (m, p) in press(1, 2) {
            r.handle_packet(1000, m, &p, Duration::ZERO);
        }
        assert_eq!(r.handle_packet(2000, true, &ev(2, false, 160), MS * 200), None);
        assert_eq!(r.handle_packet(1000, false, &ev(1, false, 160), MS * 210), None);
        assert_eq!(r.handle_packet(1000, false, &ev(1, true, 480), MS * 220), None);
        assert_eq!(
            r.handle_packet(2000, false, &ev(2, true, 480), MS * 240),
            Some('2')
        );
    }

    #[test]
    fn long_press_in_segments_is_one_press() {
        let mut r = DtmfReceiver::new();
        let ts = u32::MAX - 1000; // the second segment's timestamp wraps
        assert_eq!(
            r.handle_packet(ts, true, &ev(5, false, 30_000), Duration::ZERO),
            None
        );
        assert_eq!(r.handle_packet(ts, false, &ev(5, false, 0xffff), MS * 8000), None);
        let ts2 = ts.wrapping_add(0xffff);
        assert_eq!(r.handle_packet(ts2, false, &ev(5, false, 800), MS * 8100), None);
        let d = r
            .handle_event(ts2, false, &ev(5, true, 1600), MS * 8200)
            .unwrap()
            .unwrap();
        assert_eq!((d.digit, d.timestamp, d.duration), ('5', ts, 0xffff + 1600));
        assert_eq!(r.handle_packet(ts2, false, &ev(5, true, 1600), MS * 8220), None);
    }

    #[test]
    fn non_digit_events_end_a_pending_digit_but_are_not_reported() {
        let mut r = DtmfReceiver::new();
        r.handle_packet(10, true, &ev(2, false, 160), Duration::ZERO);
        assert_eq!(
            r.handle_packet(5000, true, &ev(16, false, 160), MS * 500),
            Some('2')
        );
        assert_eq!(r.handle_packet(5000, false, &ev(16, true, 320), MS * 520), None);
        assert_eq!(r.poll(Duration::from_secs(9)), None);
    }

    #[test]
    fn malformed_payloads_are_counted() {
        let mut r = DtmfReceiver::new();
        assert_eq!(r.handle_packet(1, true, &[1, 2], Duration::ZERO), None);
        assert_eq!(r.malformed(), 1);
        assert_eq!(
            r.handle_event(1, true, &[], Duration::ZERO),
            Err(DtmfError::Truncated(0))
        );
    }

    #[test]
    fn timestamp_discontinuity_is_a_new_press() {
        let mut r = DtmfReceiver::new();
        for (m, p) in press(1, 2) {
            r.handle_packet(3_000_000_000, m, &p, Duration::ZERO);
        }
        // far "behind": a new stream, not a stale packet
        let got: Vec<char> = press(2, 2)
            .into_iter()
            .filter_map(|(m, p)| r.handle_packet(5, m, &p, MS * 900))
            .collect();
        assert_eq!(got, vec!['2']);
        r.reset();
        let got: Vec<char> = press(3, 2)
            .into_iter()
            .filter_map(|(m, p)| r.handle_packet(4, m, &p, MS * 990))
            .collect();
        assert_eq!(got, vec!['3']);
    }

    #[test]
    fn events_for_digit_follow_rfc4733() {
        let pk = events_for_digit('5', 100, 8000).unwrap();
        let parsed: Vec<(u8, bool, u16, bool)> = pk
            .iter()
            .map(|(p, m, e)| {
                let ev = parse_event(p).unwrap();
                assert_eq!(ev.end, *e);
                assert_eq!(ev.volume, SEND_VOLUME);
                (ev.event, ev.end, ev.duration, *m)
            })
            .collect();
        assert_eq!(
            parsed,
            vec![
                (5, false, 160, true),
                (5, false, 320, false),
                (5, false, 480, false),
                (5, false, 640, false),
                (5, true, 800, false),
                (5, true, 800, false),
                (5, true, 800, false),
            ]
        );
        // 48 kHz: 960 units per packet, 250 ms = 12000
        let pk = events_for_digit('#', 250, 48_000).unwrap();
        assert_eq!(pk.len(), 12 + 3);
        assert_eq!(parse_event(&pk[0].0).unwrap().duration, 960);
        assert_eq!(parse_event(&pk[14].0).unwrap().duration, 12_000);
        // tiny and huge durations
        let pk = events_for_digit('a', 0, 8000).unwrap();
        assert_eq!(pk.len(), 3);
        assert!(pk[0].1 && pk.iter().all(|p| p.2));
        let pk = events_for_digit('1', 60_000, 8000).unwrap();
        assert_eq!(parse_event(&pk.last().unwrap().0).unwrap().duration, 0xffff);
        assert_eq!(
            events_for_digit('x', 100, 8000),
            Err(DtmfError::InvalidDigit('x'))
        );
        assert_eq!(events_for_digit('1', 100, 0), Err(DtmfError::InvalidClockRate));
    }

    #[test]
    fn what_we_send_is_received_once() {
        let mut r = DtmfReceiver::new();
        let mut got = Vec::new();
        for d in ['1', '#', 'D'] {
            let ts = 160 * got.len() as u32 * 100;
            for (i, (p, m, _)) in events_for_digit(d, 120, 8000).unwrap().into_iter().enumerate() {
                got.extend(r.handle_packet(ts, m, &p, MS * 20 * i as u32));
            }
        }
        assert_eq!(got, vec!['1', '#', 'D']);
    }

    fn rtp_press(s: &mut DigitStream, event: u8, ts: u32, from: Duration, to: Duration) {
        let steps = ((to - from).as_millis() / 20) as u32;
        for k in 0..=steps {
            let p = ev(event, false, 160 * (k as u16 + 1));
            s.handle_rtp_event(ts, k == 0, &p, from + MS * 20 * k).unwrap();
        }
        for _ in 0..3 {
            s.handle_rtp_event(ts, false, &ev(event, true, 160 * (steps as u16 + 2)), to)
                .unwrap();
        }
    }

    fn drain(s: &mut DigitStream) -> Vec<(char, DigitSource)> {
        std::iter::from_fn(|| s.next_digit().map(|d| (d.digit, d.source))).collect()
    }

    #[test]
    fn digit_stream_dedups_info_copy_of_rtp_press() {
        use DigitSource::*;
        let mut s = DigitStream::new();
        // RTP first, INFO 100 ms after key-up
        rtp_press(&mut s, 5, 1000, MS * 1000, MS * 1100);
        assert_eq!(s.push_info('5', MS * 1200), Ok(false));
        // INFO first (at key-down), a long press reported 1 s later
        assert_eq!(s.push_info('7', MS * 2000), Ok(true));
        rtp_press(&mut s, 7, 9000, MS * 2000, MS * 3000);
        // only INFO for '8'
        assert_eq!(s.push_info('8', MS * 4000), Ok(true));
        assert_eq!(drain(&mut s), vec![('5', Rtp), ('7', Info), ('8', Info)]);
        assert_eq!(s.suppressed(), 2);
    }

    #[test]
    fn digit_stream_keeps_quick_repeats_of_one_key() {
        use DigitSource::*;
        let mut s = DigitStream::new();
        // '1' pressed twice 250 ms apart, PBX sends both ways, INFO delayed 200 ms after key-up
        rtp_press(&mut s, 1, 1000, Duration::ZERO, MS * 100);
        assert_eq!(s.push_info('1', MS * 300), Ok(false));
        rtp_press(&mut s, 1, 4000, MS * 250, MS * 350);
        assert_eq!(s.push_info('1', MS * 550), Ok(false));
        assert_eq!(drain(&mut s), vec![('1', Rtp), ('1', Rtp)]);
        // INFO-only repeats are never merged with each other
        assert_eq!(s.push_info('2', MS * 1000), Ok(true));
        assert_eq!(s.push_info('2', MS * 1050), Ok(true));
        assert_eq!(drain(&mut s), vec![('2', Info), ('2', Info)]);
    }

    #[test]
    fn digit_stream_window_and_validation() {
        let mut s = DigitStream::new();
        assert_eq!(s.push_info('9', Duration::ZERO), Ok(true));
        // the RTP copy starts 2 s later: outside the window, a separate press
        rtp_press(
            &mut s,
            9,
            1000,
            Duration::from_secs(2),
            Duration::from_secs(2) + MS * 100,
        );
        assert_eq!(drain(&mut s).len(), 2);
        assert_eq!(
            s.push_info('x', Duration::ZERO),
            Err(DtmfError::InvalidDigit('x'))
        );
        assert_eq!(s.push_info('b', Duration::ZERO), Ok(true));
        assert_eq!(s.next_digit().map(|d| d.digit), Some('B'));
        assert!(s.handle_rtp_event(1, true, &[0], Duration::ZERO).is_err());
    }

    #[test]
    fn digit_stream_poll_reports_timed_out_press() {
        let mut s = DigitStream::new();
        s.handle_rtp_event(77, true, &ev(12, false, 160), Duration::ZERO)
            .unwrap();
        s.poll(MS * 100);
        assert_eq!(s.next_digit(), None);
        s.poll(Duration::from_secs(1));
        assert_eq!(s.next_digit().map(|d| d.digit), Some('A'));
        s.receiver_mut().reset();
    }
}
