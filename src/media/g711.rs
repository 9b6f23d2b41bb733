//! ITU-T G.711 companding: μ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8),
//! 8 kHz, one byte per sample.
//!
//! This module owns the sample-level conversion between 16-bit linear PCM and the two G.711 laws,
//! plus slice helpers used by the media thread for every 20 ms packet of every call.
//!
//! # Encoding
//!
//! Encoding works directly on the 16-bit input (G.711 itself is specified on 14-bit μ-law and
//! 13-bit A-law linear values; the extra low bits only move a sample inside its quantization
//! interval). The segment (exponent) search is done with one count-leading-zeros instruction
//! instead of a loop over the segment end points, so an encode is a handful of branch-free
//! integer operations. No 64 KiB lookup table is used: on a Raspberry Pi that would evict far
//! more useful data from the L1 cache than it saves.
//!
//! * μ-law: the magnitude is clipped to 32635, biased by 132 (0x84) and split into a 3-bit
//!   segment `e` and a 4-bit mantissa; the code is the one's complement of
//!   `sign | e << 4 | mantissa`.
//! * A-law: negative values use the one's complement magnitude `-x - 1` (as in the ITU reference
//!   code), so `i16::MIN` needs no special case; the code is `sign | seg << 4 | mantissa` with the
//!   even bits inverted (XOR 0x55).
//!
//! # Decoding
//!
//! Decoding is a lookup in a 256-entry table per law, computed at compile time by a `const fn`.
//! Decoded values are the midpoints of the quantization intervals, as in the ITU reference
//! decoder (μ-law range ±32124, A-law range ±32256).
//!
//! # Error bound
//!
//! Writing `seg(x)` for the segment in which `x` is encoded, the quantization step is
//! `2^(seg + 3)` for μ-law and `2^(max(seg, 1) + 3)` for A-law (A-law segments 0 and 1 share
//! the step 16). Because the decoder returns interval midpoints,
//! `|x - decode(encode(x))| <= step / 2`, i.e. `2^(seg + 2)` for μ-law and
//! `2^(max(seg, 1) + 2)` for A-law. The only exception is μ-law clipping: for
//! `|x| > 32635` the error is `|x| - 32124`, at most 644 (for `i16::MIN`).

/// Which G.711 companding law a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law, RTP/AVP payload type 0 (`PCMU/8000`).
    Ulaw,
    /// A-law, RTP/AVP payload type 8 (`PCMA/8000`).
    Alaw,
}

impl Law {
    /// The static RTP/AVP payload type (RFC 3551): 0 for PCMU, 8 for PCMA.
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The SDP encoding name (`a=rtpmap:<pt> <name>/8000`).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Law::Ulaw => "PCMU",
            Law::Alaw => "PCMA",
        }
    }

    /// The law for a static payload type, if it is one of the two G.711 ones.
    pub const fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }
}

/// The μ-law bias added to the magnitude before the segment search (0x84).
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude μ-law can represent before clipping (`0x7FFF - ULAW_BIAS`).
const ULAW_CLIP: i32 = 32635;

/// Segment (0..=7) of a value whose highest set bit is at position 7..=14.
///
/// `v | 0x80` makes the highest bit at least bit 7, so values below 256 land in segment 0.
#[inline(always)]
const fn segment(v: u32) -> u32 {
    24 - (v | 0x80).leading_zeros()
}

/// Encode one 16-bit linear sample as μ-law.
#[inline]
pub fn ulaw_encode(s: i16) -> u8 {
    let x = i32::from(s);
    // Sign bit of the code (before the final inversion): 0x80 for negative samples.
    let sign = ((x >> 8) & 0x80) as u8;
    let mag = x.abs().min(ULAW_CLIP) + ULAW_BIAS; // 132..=32767
    let exp = segment(mag as u32); // highest bit of mag is at 7..=14
    let mantissa = ((mag >> (exp + 3)) & 0x0F) as u8;
    !(sign | ((exp as u8) << 4) | mantissa)
}

/// Decode one μ-law byte to 16-bit linear PCM.
#[inline]
pub fn ulaw_decode(b: u8) -> i16 {
    ULAW_TABLE[usize::from(b)]
}

/// Encode one 16-bit linear sample as A-law.
#[inline]
pub fn alaw_encode(s: i16) -> u8 {
    let x = i32::from(s);
    // A-law sets the sign bit for positive values; negatives use the one's complement magnitude.
    let (sign, mag) = if x >= 0 { (0x80u8, x) } else { (0u8, !x) }; // mag in 0..=32767
    let seg = segment(mag as u32);
    // Segments 0 and 1 share the same step (16); above that the step doubles per segment.
    let shift = if seg == 0 { 4 } else { seg + 3 };
    let mantissa = ((mag >> shift) & 0x0F) as u8;
    (sign | ((seg as u8) << 4) | mantissa) ^ 0x55
}

/// Decode one A-law byte to 16-bit linear PCM.
#[inline]
pub fn alaw_decode(b: u8) -> i16 {
    ALAW_TABLE[usize::from(b)]
}

/// Encode `pcm` with `law`, appending exactly `pcm.len()` bytes to `out`.
pub fn encode(law: Law, pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len());
    match law {
        Law::Ulaw => out.extend(pcm.iter().map(|&s| ulaw_encode(s))),
        Law::Alaw => out.extend(pcm.iter().map(|&s| alaw_encode(s))),
    }
}

/// Decode `bytes` with `law`, appending exactly `bytes.len()` samples to `out`.
pub fn decode(law: Law, bytes: &[u8], out: &mut Vec<i16>) {
    let table = match law {
        Law::Ulaw => &ULAW_TABLE,
        Law::Alaw => &ALAW_TABLE,
    };
    out.reserve(bytes.len());
    out.extend(bytes.iter().map(|&b| table[usize::from(b)]));
}

/// μ-law decode of one code, as in the ITU reference decoder.
const fn ulaw_decode_const(b: u8) -> i16 {
    let u = !b;
    let exp = ((u >> 4) & 0x07) as u32;
    let mantissa = (u & 0x0F) as i32;
    // Midpoint of the biased interval, minus the bias.
    let mag = (((mantissa << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// A-law decode of one code, as in the ITU reference decoder.
const fn alaw_decode_const(b: u8) -> i16 {
    let a = b ^ 0x55;
    let seg = ((a >> 4) & 0x07) as u32;
    let mantissa = (a & 0x0F) as i32;
    let mag = if seg == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (seg - 1)
    };
    if a & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn build_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match law {
            Law::Ulaw => ulaw_decode_const(i as u8),
            Law::Alaw => alaw_decode_const(i as u8),
        };
        i += 1;
    }
    table
}

static ULAW_TABLE: [i16; 256] = build_table(Law::Ulaw);
static ALAW_TABLE: [i16; 256] = build_table(Law::Alaw);

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(law: Law, s: i16) -> u8 {
        match law {
            Law::Ulaw => ulaw_encode(s),
            Law::Alaw => alaw_encode(s),
        }
    }

    fn dec(law: Law, b: u8) -> i16 {
        match law {
            Law::Ulaw => ulaw_decode(b),
            Law::Alaw => alaw_decode(b),
        }
    }

    /// Segment number stored in a code.
    fn code_segment(law: Law, b: u8) -> u32 {
        let raw = match law {
            Law::Ulaw => !b,
            Law::Alaw => b ^ 0x55,
        };
        u32::from((raw >> 4) & 0x07)
    }

    /// The bound documented in the module docs: half the quantization step of the segment.
    fn half_step(law: Law, seg: u32) -> i32 {
        match law {
            Law::Ulaw => 1 << (seg + 2),
            Law::Alaw => 1 << (seg.max(1) + 2),
        }
    }

    const LAWS: [Law; 2] = [Law::Ulaw, Law::Alaw];

    fn check_error_bound(law: Law, x: i16) {
        let code = enc(law, x);
        let y = dec(law, code);
        let err = (i32::from(x) - i32::from(y)).abs();
        if law == Law::Ulaw && i32::from(x).abs() > ULAW_CLIP {
            assert_eq!(err, i32::from(x).abs() - 32124, "μ-law clip error at {x}");
            assert!(err <= 644);
        } else {
            let bound = half_step(law, code_segment(law, code));
            assert!(
                err <= bound,
                "{law:?}: x={x} code={code:#04x} y={y} err={err} > {bound}"
            );
        }
        // The sign is preserved (zero may come back as zero from either side).
        assert!(
            i32::from(x).signum() * i32::from(y).signum() >= 0,
            "{law:?}: sign flip at {x}"
        );
    }

    #[test]
    fn error_bound_over_full_i16_range() {
        for law in LAWS {
            for x in i16::MIN..=i16::MAX {
                check_error_bound(law, x);
            }
        }
    }

    #[test]
    fn error_bound_random_slices() {
        let mut rng = crate::testing::TestRng::seeded(0x9E37_79B9_7F4A_7C15);
        for law in LAWS {
            for _ in 0..200 {
                let len = rng.below(400);
                let pcm: Vec<i16> = (0..len).map(|_| rng.i16()).collect();
                let mut bytes = Vec::new();
                encode(law, &pcm, &mut bytes);
                assert_eq!(bytes.len(), pcm.len());
                let mut back = Vec::new();
                decode(law, &bytes, &mut back);
                assert_eq!(back.len(), pcm.len());
                for (&x, &b) in pcm.iter().zip(&bytes) {
                    assert_eq!(b, enc(law, x));
                    check_error_bound(law, x);
                }
            }
        }
    }

    #[test]
    fn slice_helpers_append_and_preserve_length() {
        for law in LAWS {
            let mut bytes = vec![0xAA];
            encode(law, &[], &mut bytes);
            assert_eq!(bytes, [0xAA]);
            encode(law, &[0, 1000, -1000], &mut bytes);
            assert_eq!(bytes.len(), 4);
            let mut pcm = vec![7];
            decode(law, &bytes[1..], &mut pcm);
            assert_eq!(pcm.len(), 4);
            assert_eq!(pcm[0], 7);
            decode(law, &[], &mut pcm);
            assert_eq!(pcm.len(), 4);
        }
    }

    #[test]
    fn decode_encode_is_idempotent_for_all_codes() {
        for law in LAWS {
            for b in 0..=255u8 {
                let y = dec(law, b);
                assert_eq!(dec(law, enc(law, y)), y, "{law:?} code {b:#04x}");
                // Codes re-encode to themselves, except μ-law "negative zero" 0x7F, which decodes
                // to 0 and encodes as positive zero 0xFF.
                if !(law == Law::Ulaw && b == 0x7F) {
                    assert_eq!(enc(law, y), b, "{law:?} code {b:#04x}");
                }
            }
        }
    }

    #[test]
    fn decode_is_monotonic_in_sign_magnitude_order() {
        for law in LAWS {
            // Code for (positive?, 7-bit magnitude index).
            let code = |positive: bool, k: u8| -> u8 {
                match law {
                    Law::Ulaw => !((if positive { 0 } else { 0x80 }) | k),
                    Law::Alaw => ((if positive { 0x80 } else { 0 }) | k) ^ 0x55,
                }
            };
            for k in 0..127u8 {
                let (a, b) = (dec(law, code(true, k)), dec(law, code(true, k + 1)));
                assert!(a < b, "{law:?}: not increasing at {k}: {a} >= {b}");
                assert_eq!(dec(law, code(false, k)), -a, "{law:?}: not symmetric at {k}");
            }
            assert_eq!(dec(law, code(false, 127)), -dec(law, code(true, 127)));
            // And the whole encode→decode chain is non-decreasing over the full input range.
            let mut prev = i16::MIN;
            for x in i16::MIN..=i16::MAX {
                let y = dec(law, enc(law, x));
                assert!(y >= prev, "{law:?}: decode(encode) decreases at {x}");
                prev = y;
            }
        }
    }

    #[test]
    fn known_values() {
        // μ-law
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(1), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(8), 0xFE);
        assert_eq!(ulaw_decode(0xFE), 8);
        // A-law
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        // Payload types.
        assert_eq!(Law::Ulaw.payload_type(), 0);
        assert_eq!(Law::Alaw.payload_type(), 8);
        assert_eq!(Law::from_payload_type(8), Some(Law::Alaw));
        assert_eq!(Law::from_payload_type(9), None);
        assert_eq!(Law::Ulaw.encoding_name(), "PCMU");
    }

    /// Bit-exact comparison with the classic ITU/Sun reference implementation
    /// (`linear2ulaw`/`linear2alaw` on 14/13-bit input) wherever the 16-bit input is a multiple of
    /// the reference resolution, where both must agree exactly.
    #[test]
    fn matches_reference_codec_on_reference_grid() {
        fn ref_ulaw(pcm16: i16) -> u8 {
            let seg_end = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
            let mut v = i32::from(pcm16) >> 2;
            let mask = if v < 0 {
                v = -v;
                0x7F
            } else {
                0xFF
            };
            v = v.min(8159) + (0x84 >> 2);
            let seg = seg_end.iter().position(|&e| v <= e).unwrap_or(8);
            if seg >= 8 {
                return 0x7F ^ mask;
            }
            ((((seg as i32) << 4) | ((v >> (seg + 1)) & 0xF)) as u8) ^ mask
        }
        fn ref_alaw(pcm16: i16) -> u8 {
            let seg_end = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
            let mut v = i32::from(pcm16) >> 3;
            let mask = if v >= 0 {
                0xD5
            } else {
                v = -v - 1;
                0x55
            };
            let seg = seg_end.iter().position(|&e| v <= e).unwrap_or(8);
            if seg >= 8 {
                return 0x7F ^ mask;
            }
            let m = if seg < 2 { (v >> 1) & 0xF } else { (v >> seg) & 0xF };
            ((((seg as i32) << 4) | m) as u8) ^ mask
        }
        // μ-law reference works on 14 bits; positive multiples of 4 agree exactly (the reference
        // truncates negatives towards -∞ before taking the magnitude, we take it exactly).
        for x in (0..=i16::MAX).step_by(4) {
            assert_eq!(ulaw_encode(x), ref_ulaw(x), "μ-law {x}");
            assert_eq!(ulaw_encode(-x), ref_ulaw(-x), "μ-law {}", -x);
        }
        // A-law reference works on 13 bits with one's complement negatives, exactly as we do.
        for x in i16::MIN..=i16::MAX {
            assert_eq!(alaw_encode(x), ref_alaw(x), "A-law {x}");
        }
    }

    /// A 1 kHz tone sampled at 8 kHz repeats every 8 samples, so its quantization error is not
    /// noise-like: the SNR of a single tone swings between about 32 and 51 dB with the starting
    /// phase. The assertion therefore pools signal and error energy over 256 starting phases
    /// spread by the golden ratio (an evenly spaced grid such as multiples of π/32 lines up with
    /// the 8-sample lattice and is biased), which measures the codec rather than one phase.
    #[test]
    fn sine_1khz_at_minus_10_dbfs_snr() {
        let amp = 32767.0 * 10f64.powf(-10.0 / 20.0);
        for law in LAWS {
            let (mut sig, mut noise) = (0f64, 0f64);
            let mut worst = f64::INFINITY;
            for k in 0..256 {
                let phase = (f64::from(k) * 0.618_033_988_749_895).fract() * std::f64::consts::TAU;
                let pcm: Vec<i16> = (0..800)
                    .map(|n| amp * (std::f64::consts::TAU * 1000.0 * f64::from(n) / 8000.0 + phase).sin())
                    .map(|v| v.round() as i16)
                    .collect();
                let mut bytes = Vec::new();
                encode(law, &pcm, &mut bytes);
                let mut back = Vec::new();
                decode(law, &bytes, &mut back);
                let (mut s, mut n) = (0f64, 0f64);
                for (&x, &y) in pcm.iter().zip(&back) {
                    s += f64::from(x).powi(2);
                    n += (f64::from(x) - f64::from(y)).powi(2);
                }
                worst = worst.min(10.0 * (s / n).log10());
                sig += s;
                noise += n;
            }
            let snr = 10.0 * (sig / noise).log10();
            eprintln!(
                "G.711 {law:?}: 1 kHz sine at -10 dBFS, SNR {snr:.2} dB pooled, worst phase {worst:.2} dB"
            );
            assert!(snr >= 35.0, "{law:?} SNR {snr:.2} dB");
        }
    }
}
