//! A small reorder buffer for incoming RTP packets, keyed by sequence number.
//!
//! Packets go in with [`Reorder::insert`] (or [`Reorder::push`], which also returns whatever is
//! ready) and come out in sequence order:
//!
//! * the next packet in sequence comes out at once, so an in-order stream adds no delay (the very
//!   first packet of a stream is taken as in sequence);
//! * when a packet is missing, later packets wait until `depth` packets are held (default 4, about
//!   80 ms of 20 ms frames); then the oldest comes out anyway and the gap is reported
//!   ([`Popped::lost_before`], [`Reorder::lost`]); a caller whose playout clock cannot wait that
//!   long forces one out with [`Reorder::pop_oldest`];
//! * a packet at or before the last one released is dropped, counted as a duplicate when that
//!   number was released (the last 64 are remembered) and as late otherwise; a copy of a packet
//!   still held is dropped as a duplicate;
//! * sequence numbers are extended to 64 bits relative to the highest seen, so wrap-around at
//!   65535 → 0 is seamless;
//! * a jump of more than 3000 ahead or more than 100 behind (RFC 3550's `MAX_DROPOUT` /
//!   `MAX_MISORDER`) is held aside; if the next packet follows it in sequence the sender restarted
//!   its numbering, and both are queued after everything already held (no loss is reported across
//!   the restart); otherwise the stray packet is dropped ([`Reorder::stray`]).
//!
//! Memory is bounded: at most `depth` packets plus one held-aside packet.

use std::collections::VecDeque;

use super::stats::{MAX_DROPOUT, MAX_MISORDER};

/// The default depth: 4 packets, about 80 ms of 20 ms frames.
pub const DEFAULT_DEPTH: usize = 4;

/// What [`Reorder::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for release in order.
    Buffered,
    /// Older than the last released packet and never released: dropped.
    Late,
    /// A copy of a packet held or already released: dropped.
    Duplicate,
    /// A large jump, held aside until the next packet confirms or refutes it.
    Jump,
    /// The packet confirmed a jump: numbering restarted, both packets queued.
    Restarted,
}

/// A packet leaving the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popped<T> {
    pub seq: u16,
    pub item: T,
    /// Packets missing between the previous released packet and this one.
    pub lost_before: u64,
}

/// The reorder buffer; `T` is the packet (payload) type.
#[derive(Debug, Clone)]
pub struct Reorder<T = Vec<u8>> {
    depth: usize,
    /// Held packets sorted by extended sequence number: (extended, seq, item).
    held: VecDeque<(u64, u16, T)>,
    /// Highest extended sequence number seen and its 16-bit value.
    highest: Option<(u64, u16)>,
    last_popped: Option<u64>,
    /// Bit `i`: `last_popped - i` was released.
    popped_mask: u64,
    aside: Option<(u16, T)>,
    late: u64,
    duplicates: u64,
    lost: u64,
    restarts: u64,
    stray: u64,
}

/// Extended numbers start here so that stepping back from the first packet never underflows.
const EXT_ORIGIN: u64 = 1 << 32;

impl<T> Reorder<T> {
    /// A buffer holding up to `depth` packets while waiting for a missing one (0 is taken as 1:
    /// release at once, only report gaps and drop late packets and duplicates).
    pub fn new(depth: usize) -> Self {
        Reorder {
            depth: depth.max(1),
            held: VecDeque::with_capacity(depth.max(1)),
            highest: None,
            last_popped: None,
            popped_mask: 0,
            aside: None,
            late: 0,
            duplicates: 0,
            lost: 0,
            restarts: 0,
            stray: 0,
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Packets held (not counting a held-aside jump).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Late packets dropped.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Duplicates dropped.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets never released: the sum of all reported gaps.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Confirmed restarts of the sender's numbering.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Jumps that the next packet did not confirm: dropped.
    pub fn stray(&self) -> u64 {
        self.stray
    }

    /// Forgets all packets and history (counters are kept), e.g. after an SSRC change.
    pub fn reset(&mut self) {
        self.held.clear();
        self.highest = None;
        self.last_popped = None;
        self.popped_mask = 0;
        self.aside = None;
    }

    /// Queues `item` with sequence number `seq`.
    pub fn insert(&mut self, seq: u16, item: T) -> PushOutcome {
        let Some((hext, hseq)) = self.highest else {
            self.highest = Some((EXT_ORIGIN, seq));
            self.held.push_back((EXT_ORIGIN, seq, item));
            return PushOutcome::Buffered;
        };
        let delta = i64::from(seq.wrapping_sub(hseq) as i16);
        if delta > i64::from(MAX_DROPOUT) || delta < -i64::from(MAX_MISORDER) {
            if let Some((aseq, aitem)) = self.aside.take() {
                if seq == aseq.wrapping_add(1) {
                    // Restart: continue the extended numbering right after the highest seen.
                    let base = hext + 1;
                    self.held.push_back((base, aseq, aitem));
                    self.held.push_back((base + 1, seq, item));
                    self.highest = Some((base + 1, seq));
                    self.restarts += 1;
                    return PushOutcome::Restarted;
                }
                self.stray += 1;
            }
            self.aside = Some((seq, item));
            return PushOutcome::Jump;
        }
        if self.aside.take().is_some() {
            self.stray += 1;
        }
        // |delta| is bounded above, and hext >= EXT_ORIGIN > MAX_MISORDER: no wrap.
        let ext = hext.wrapping_add_signed(delta);
        if let Some(lp) = self.last_popped {
            if ext <= lp {
                let back = lp - ext;
                if back < 64 && self.popped_mask & (1 << back) != 0 {
                    self.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
                self.late += 1;
                return PushOutcome::Late;
            }
        }
        match self.held.binary_search_by_key(&ext, |(e, _, _)| *e) {
            Ok(_) => {
                self.duplicates += 1;
                PushOutcome::Duplicate
            }
            Err(pos) => {
                self.held.insert(pos, (ext, seq, item));
                if delta > 0 {
                    self.highest = Some((ext, seq));
                }
                PushOutcome::Buffered
            }
        }
    }

    fn release_front(&mut self) -> Option<Popped<T>> {
        let (ext, seq, item) = self.held.pop_front()?;
        let lost_before = match self.last_popped {
            Some(lp) => {
                let shift = ext.saturating_sub(lp);
                self.popped_mask = if shift >= 64 { 0 } else { self.popped_mask << shift };
                shift.saturating_sub(1)
            }
            None => 0,
        };
        self.popped_mask |= 1;
        self.last_popped = Some(ext);
        self.lost += lost_before;
        Some(Popped {
            seq,
            item,
            lost_before,
        })
    }

    /// The next packet if it is next in sequence, or the oldest if `depth` packets are held.
    pub fn pop_ready(&mut self) -> Option<Popped<T>> {
        let &(ext, _, _) = self.held.front()?;
        let in_order = self.last_popped.is_none_or(|lp| ext == lp + 1);
        if in_order || self.held.len() >= self.depth {
            self.release_front()
        } else {
            None
        }
    }

    /// The oldest held packet regardless of gaps (when the playout clock cannot wait longer).
    pub fn pop_oldest(&mut self) -> Option<Popped<T>> {
        self.release_front()
    }

    /// Inserts a packet and returns everything that became ready, in order, as
    /// `(sequence number, item)`. Allocates only when something is released.
    pub fn push(&mut self, seq: u16, item: T) -> Vec<(u16, T)> {
        self.insert(seq, item);
        let mut out = Vec::new();
        while let Some(p) = self.pop_ready() {
            out.push((p.seq, p.item));
        }
        out
    }
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder::new(DEFAULT_DEPTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(v: Vec<(u16, u16)>) -> Vec<u16> {
        v.into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn in_order_stream_passes_straight_through() {
        let mut r: Reorder<u16> = Reorder::default();
        for s in 0..10u16 {
            assert_eq!(r.push(s, s), vec![(s, s)]);
        }
        assert!(r.is_empty());
        assert_eq!((r.lost(), r.late(), r.duplicates()), (0, 0, 0));
    }

    #[test]
    fn swapped_packets_come_out_in_order() {
        let mut r: Reorder<u16> = Reorder::new(4);
        assert_eq!(seqs(r.push(1, 1)), vec![1]);
        assert!(r.push(3, 3).is_empty());
        assert_eq!(seqs(r.push(2, 2)), vec![2, 3]);
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn full_buffer_releases_oldest_and_reports_gap() {
        let mut r: Reorder<u16> = Reorder::new(4);
        r.push(1, 1);
        assert!(r.push(3, 3).is_empty());
        assert!(r.push(4, 4).is_empty());
        assert!(r.push(5, 5).is_empty());
        assert_eq!(r.len(), 3);
        assert_eq!(r.insert(6, 6), PushOutcome::Buffered);
        let p = r.pop_ready().unwrap();
        assert_eq!((p.seq, p.lost_before), (3, 1));
        assert_eq!(r.lost(), 1);
        let rest: Vec<u16> = std::iter::from_fn(|| r.pop_ready().map(|p| p.seq)).collect();
        assert_eq!(rest, vec![4, 5, 6]);
        // the missing one finally arrives: late
        assert_eq!(r.insert(2, 2), PushOutcome::Late);
        assert_eq!(r.late(), 1);
    }

    #[test]
    fn duplicates_dropped_whether_held_or_released() {
        let mut r: Reorder<u16> = Reorder::new(4);
        r.push(10, 0);
        assert_eq!(r.insert(10, 0), PushOutcome::Duplicate);
        assert_eq!(r.insert(12, 0), PushOutcome::Buffered);
        assert_eq!(r.insert(12, 0), PushOutcome::Duplicate);
        assert_eq!(r.duplicates(), 2);
        assert_eq!(r.pop_oldest().map(|p| (p.seq, p.lost_before)), Some((12, 1)));
        assert_eq!(r.insert(12, 0), PushOutcome::Duplicate);
        assert_eq!(r.insert(11, 0), PushOutcome::Late);
        assert_eq!(r.insert(10, 0), PushOutcome::Duplicate);
    }

    #[test]
    fn wraps_around_65535() {
        let mut r: Reorder<u16> = Reorder::new(4);
        let mut out = Vec::new();
        for s in [65533u16, 65534, 0, 65535, 2, 1, 3] {
            out.extend(seqs(r.push(s, s)));
        }
        assert_eq!(out, vec![65533, 65534, 65535, 0, 1, 2, 3]);
        assert_eq!(r.lost(), 0);
        // late across the wrap
        assert_eq!(r.insert(65535, 0), PushOutcome::Duplicate);
        assert_eq!(r.insert(65500, 0), PushOutcome::Late);
    }

    #[test]
    fn confirmed_jump_restarts_numbering() {
        let mut r: Reorder<u16> = Reorder::new(4);
        for s in 100..110u16 {
            r.push(s, s);
        }
        assert!(r.push(40_000, 0).is_empty());
        assert_eq!(r.insert(40_001, 0), PushOutcome::Restarted);
        let out: Vec<(u16, u64)> =
            std::iter::from_fn(|| r.pop_ready().map(|p| (p.seq, p.lost_before))).collect();
        assert_eq!(out, vec![(40_000, 0), (40_001, 0)]);
        assert_eq!(seqs(r.push(40_002, 0)), vec![40_002]);
        assert_eq!(r.restarts(), 1);
        // backwards restart (seq reset to a low number)
        assert!(r.push(5, 0).is_empty());
        assert_eq!(seqs(r.push(6, 0)), vec![5, 6]);
        assert_eq!(r.restarts(), 2);
    }

    #[test]
    fn unconfirmed_jump_is_dropped() {
        let mut r: Reorder<u16> = Reorder::new(4);
        r.push(1, 1);
        assert_eq!(r.insert(30_000, 0), PushOutcome::Jump);
        assert_eq!(seqs(r.push(2, 2)), vec![2]);
        assert_eq!(r.stray(), 1);
        assert_eq!(r.insert(30_000, 0), PushOutcome::Jump);
        assert_eq!(r.insert(50_000, 0), PushOutcome::Jump);
        assert_eq!(r.stray(), 2);
        assert_eq!(seqs(r.push(3, 3)), vec![3]);
        assert_eq!(r.stray(), 3);
    }

    #[test]
    fn depth_one_and_zero_release_at_once() {
        for depth in [0, 1] {
            let mut r: Reorder<u16> = Reorder::new(depth);
            assert_eq!(r.depth(), 1);
            assert_eq!(seqs(r.push(1, 1)), vec![1]);
            assert_eq!(seqs(r.push(3, 3)), vec![3]);
            assert_eq!(r.lost(), 1);
            assert!(r.push(2, 2).is_empty());
            assert_eq!(r.late(), 1);
        }
    }

    #[test]
    fn reset_forgets_history() {
        let mut r: Reorder<Vec<u8>> = Reorder::new(4);
        r.push(9, vec![1]);
        r.push(11, vec![2]);
        r.reset();
        assert!(r.is_empty());
        assert_eq!(r.push(3, vec![3]), vec![(3, vec![3])]);
    }

    #[test]
    fn shuffled_stream_releases_every_packet_once_in_order() {
        // Deterministic local shuffles within a window of 3 on a stream that wraps.
        let mut order: Vec<u16> = (0..2000u16).map(|i| i.wrapping_add(64_000)).collect();
        let mut x = 7u32;
        for k in 0..order.len() - 2 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            match (x >> 16) % 4 {
                0 => order.swap(k, k + 1),
                1 => order.swap(k, k + 2),
                _ => {}
            }
        }
        let mut r: Reorder<u16> = Reorder::new(4);
        let mut out = Vec::new();
        for s in order {
            out.extend(seqs(r.push(s, s)));
        }
        while let Some(p) = r.pop_oldest() {
            out.push(p.seq);
        }
        // all released, strictly increasing (mod 2^16), losses only where a packet came too late
        assert_eq!(out.len() as u64 + r.late(), 2000);
        // every late packet left a reported gap, except those numbered before the first released
        let before_first = u64::from(out[0].wrapping_sub(64_000));
        assert_eq!(r.lost() + before_first, r.late());
        assert!(r.late() > 0 && r.late() < 200, "{}", r.late());
        for w in out.windows(2) {
            assert!((w[1].wrapping_sub(w[0]) as i16) > 0, "{w:?}");
        }
    }
}
