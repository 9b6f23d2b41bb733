//! What the unit tests share: one seeded generator (rand's `StdRng`, so a seed gives the same
//! sequence on every machine) and one byte mutator for the "never panics on what a peer sends"
//! properties of the parsers. Integration tests have their own helpers in `tests/support/`.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// A seeded random source for tests.
pub struct TestRng(StdRng);

impl TestRng {
    pub fn seeded(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.0.gen_range(0..n)
        }
    }

    /// One in `n` (never for 0).
    pub fn one_in(&mut self, n: u32) -> bool {
        n > 0 && self.0.gen_ratio(1, n)
    }

    pub fn byte(&mut self) -> u8 {
        self.0.gen()
    }

    /// Any 16-bit sample.
    pub fn i16(&mut self) -> i16 {
        self.0.gen()
    }

    /// Uniform in `[-1, 1)`.
    pub fn signed_unit(&mut self) -> f64 {
        self.0.gen_range(-1.0..1.0)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

/// `input` after one to eight random edits: a bit flipped, a byte overwritten or inserted, a run
/// deleted, a piece of `dictionary` inserted (the tokens that reach a parser's corner cases), a run
/// or a whole line copied elsewhere, or the tail cut off.
pub fn mutate(rng: &mut TestRng, input: &[u8], dictionary: &[&[u8]]) -> Vec<u8> {
    let edits = 1 + rng.below(8);
    mutate_n(rng, input, dictionary, edits)
}

/// As [`mutate`], with exactly `edits` edits.
pub fn mutate_n(rng: &mut TestRng, input: &[u8], dictionary: &[&[u8]], edits: usize) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..edits {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if at < out.len() => out[at] = rng.byte(),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(24)).min(out.len());
                out.drain(at..end);
            }
            3 if !dictionary.is_empty() => {
                let piece = dictionary[rng.below(dictionary.len())];
                out.splice(at..at, piece.iter().copied());
            }
            4 if !out.is_empty() => {
                let from = rng.below(out.len());
                let len = rng.below(64).min(out.len() - from);
                let piece = out[from..from + len].to_vec();
                out.splice(at..at, piece);
            }
            5 if at < out.len() => {
                // The line around `at`, once more right before it.
                let start = out[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let end = out[at..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(out.len(), |p| at + p + 1);
                let line = out[start..end].to_vec();
                out.splice(start..start, line);
            }
            6 => out.truncate(at),
            _ => {
                let byte = rng.byte();
                out.insert(at, byte);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_sequence_and_edits() {
        let (mut a, mut b) = (TestRng::seeded(7), TestRng::seeded(7));
        assert_eq!(
            (0..8).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..8).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
        let input = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        let dict: &[&[u8]] = &[b"\r\n", b"Content-Length: 99"];
        let edits: Vec<_> = (0..50).map(|_| mutate(&mut a, input, dict)).collect();
        let again: Vec<_> = (0..50).map(|_| mutate(&mut b, input, dict)).collect();
        assert_eq!(edits, again);
        assert!(edits.iter().any(|e| e.as_slice() != input.as_slice()));
        assert_eq!(a.below(0), 0);
        assert!((0..1000).all(|_| a.below(3) < 3));
        assert!((0..1000).all(|_| (-1.0..1.0).contains(&a.signed_unit())));
    }
}
