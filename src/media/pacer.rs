//! The 20 ms pacer: tick `n` is due at `start + n · period`, an absolute grid that never drifts
//! however late the thread wakes. A late wake-up runs the missed ticks, but never more than
//! `max_burst` at once; older ones are skipped (their frames are not sent, and the RTP timestamps,
//! which follow the tick number, show the gap as a receiver expects from loss).
//! Sans-IO: `now` is always an argument.

use std::time::{Duration, Instant};

/// Ticks to run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index of the first tick to run.
    pub first: u64,
    /// How many ticks to run (0 when woken early).
    pub count: u32,
    /// Ticks given up because the wake-up was too late.
    pub skipped: u64,
}

#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    period: Duration,
    next: u64,
    max_burst: u32,
    skipped_total: u64,
}

impl Pacer {
    pub fn new(start: Instant, period: Duration, max_burst: u32) -> Self {
        Self {
            start,
            period,
            next: 0,
            max_burst: max_burst.max(1),
            skipped_total: 0,
        }
    }

    /// When tick `n` is due.
    pub fn at(&self, n: u64) -> Instant {
        let nanos = self.period.as_nanos().saturating_mul(u128::from(n));
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When the next tick is due: sleep until then.
    pub fn deadline(&self) -> Instant {
        self.at(self.next)
    }

    /// The index of the next tick.
    pub fn next_tick(&self) -> u64 {
        self.next
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped_total
    }

    /// The ticks due at `now`, consuming them.
    pub fn due(&mut self, now: Instant) -> Due {
        if now < self.deadline() {
            return Due {
                first: self.next,
                count: 0,
                skipped: 0,
            };
        }
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        let period = self.period.as_nanos().max(1);
        // Ticks 0..=last are due.
        let last = u64::try_from(elapsed / period).unwrap_or(u64::MAX);
        let pending = last.saturating_sub(self.next).saturating_add(1);
        let count = pending.min(u64::from(self.max_burst));
        let skipped = pending - count;
        let first = self.next + skipped;
        self.next = first + count;
        self.skipped_total += skipped;
        Due {
            first,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(20);

    #[test]
    fn on_time_wakeups_run_one_tick_each() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, P, 3);
        for n in 0..100u64 {
            let at = p.deadline();
            assert_eq!(at, t0 + P * n as u32);
            assert_eq!(
                p.due(at),
                Due {
                    first: n,
                    count: 1,
                    skipped: 0
                }
            );
        }
        assert_eq!(
            p.due(p.deadline() - Duration::from_micros(1)).count,
            0,
            "early wake-up runs nothing"
        );
    }

    #[test]
    fn late_wakeups_burst_at_most_max_then_skip_and_never_drift() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, P, 3);
        // 45 ms late: ticks 0, 1, 2 are due, run all three.
        assert_eq!(
            p.due(t0 + Duration::from_millis(45)),
            Due {
                first: 0,
                count: 3,
                skipped: 0
            }
        );
        // A 500 ms stall: ticks 3..=27 due; 22 skipped, 25, 26, 27 run.
        assert_eq!(
            p.due(t0 + Duration::from_millis(545)),
            Due {
                first: 25,
                count: 3,
                skipped: 22
            }
        );
        // Back on the grid: the next deadline is exactly start + 28 · 20 ms.
        assert_eq!(p.deadline(), t0 + Duration::from_millis(560));
        assert_eq!(p.skipped_total(), 22);
    }

    #[test]
    fn an_hour_of_jittery_wakeups_stays_on_the_grid() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, P, 3);
        let mut rng = crate::testing::TestRng::seeded(7);
        let mut ran = 0u64;
        let mut burst_max = 0;
        while p.next_tick() < 180_000 {
            // Wake 0-3 ms late, and now and then 70 ms late.
            let late = if rng.one_in(500) {
                70_000
            } else {
                rng.below(3_000) as u64
            };
            let due = p.due(p.deadline() + Duration::from_micros(late));
            ran += u64::from(due.count);
            burst_max = burst_max.max(due.count);
            assert_eq!(p.deadline(), t0 + P * u32::try_from(p.next_tick()).expect("fits"));
        }
        assert_eq!(
            ran + p.skipped_total(),
            p.next_tick(),
            "every tick ran or was skipped, once"
        );
        assert!(burst_max <= 3);
    }
}
