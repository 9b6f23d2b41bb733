//! A tiny xorshift64 generator for non-secret randomness in the shell (RTP SSRC and initial
//! numbers, webhook retry jitter). Seeded once; not for anything an attacker must not guess.

use std::sync::Mutex;

/// Thread-safe xorshift64 (Marsaglia); the state is never zero.
#[derive(Debug)]
pub struct XorShift64(Mutex<u64>);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seed | 1))
    }

    /// A seed from the process's hash randomness, the clock and the PID.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        Self::new(h.finish())
    }

    pub fn next_u64(&self) -> u64 {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut x = *s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        x
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_stuck_and_in_range() {
        let r = XorShift64::new(0);
        let a = r.next_u64();
        let b = r.next_u64();
        assert!(a != 0 && a != b);
        for _ in 0..1000 {
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
