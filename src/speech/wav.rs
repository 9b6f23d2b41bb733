//! A small, defensive RIFF/WAVE reader and a 16-bit mono writer.
//!
//! Reads integer PCM of 8, 16, 24 or 32 bits and 32-bit float (plain `fmt ` tags 1 and 3, or
//! `WAVE_FORMAT_EXTENSIBLE` with those sub-formats), any number of channels (mixed down to mono),
//! any rate. Streaming writers leave the RIFF and `data` sizes at 0 or `0xFFFF_FFFF`; the reader
//! then takes the bytes that are there. Never panics on hostile input.

use super::Pcm;

/// Why bytes are not a usable WAV file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("WAV has no fmt chunk before its data")]
    NoFormat,
    #[error("WAV has no data chunk")]
    NoData,
    #[error("WAV fmt chunk is malformed")]
    BadFormat,
    #[error("unsupported WAV encoding: format tag {tag}, {bits} bits")]
    Unsupported { tag: u16, bits: u16 },
    #[error("WAV declares {0} channels or a zero rate")]
    BadShape(u16),
}

const TAG_PCM: u16 = 1;
const TAG_FLOAT: u16 = 3;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

#[derive(Debug, Clone, Copy)]
struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn parse_format(body: &[u8]) -> Result<Format, WavError> {
    let mut f = Format {
        tag: u16_at(body, 0).ok_or(WavError::BadFormat)?,
        channels: u16_at(body, 2).ok_or(WavError::BadFormat)?,
        rate: u32_at(body, 4).ok_or(WavError::BadFormat)?,
        bits: u16_at(body, 14).ok_or(WavError::BadFormat)?,
    };
    if f.tag == TAG_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) then the sub-format GUID, whose first two bytes
        // are the plain format tag.
        f.tag = u16_at(body, 24).ok_or(WavError::BadFormat)?;
    }
    if f.channels == 0 || f.rate == 0 {
        return Err(WavError::BadShape(f.channels));
    }
    match (f.tag, f.bits) {
        (TAG_PCM, 8 | 16 | 24 | 32) | (TAG_FLOAT, 32) => Ok(f),
        (tag, bits) => Err(WavError::Unsupported { tag, bits }),
    }
}

/// One sample frame's value as -1..1 for float, or scaled to i16 for integers.
fn sample(f: &Format, b: &[u8]) -> i32 {
    match (f.tag, f.bits) {
        (TAG_PCM, 8) => (i32::from(b[0]) - 128) << 8,
        (TAG_PCM, 16) => i32::from(i16::from_le_bytes([b[0], b[1]])),
        (TAG_PCM, 24) => i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 16,
        (TAG_PCM, 32) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 16,
        _ => {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if v.is_finite() {
                (v.clamp(-1.0, 1.0) * 32767.0) as i32
            } else {
                0
            }
        }
    }
}

/// Parse a WAV file into mono 16-bit PCM at its own rate.
pub fn read(bytes: &[u8]) -> Result<Pcm, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let mut at = 12usize;
    let mut format = None;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
        let start = at + 8;
        let declared = usize::try_from(size).unwrap_or(usize::MAX);
        let end = start.saturating_add(declared).min(bytes.len());
        let body = &bytes[start.min(bytes.len())..end];
        if id == b"fmt " {
            format = Some(parse_format(body)?);
        } else if id == b"data" {
            let f = format.ok_or(WavError::NoFormat)?;
            // Size 0 or past the end: a streamed file whose header was never patched.
            let body = if size == 0 {
                &bytes[start.min(bytes.len())..]
            } else {
                body
            };
            return Ok(decode(&f, body));
        }
        // Chunks are padded to an even length.
        at = start.saturating_add(declared).saturating_add(declared & 1);
    }
    Err(WavError::NoData)
}

fn decode(f: &Format, body: &[u8]) -> Pcm {
    let width = usize::from(f.bits / 8);
    let channels = usize::from(f.channels);
    let frame = width * channels;
    let mut samples = Vec::with_capacity(body.len() / frame);
    for chunk in body.chunks_exact(frame) {
        let sum: i64 = chunk.chunks_exact(width).map(|s| i64::from(sample(f, s))).sum();
        let mono = sum / channels as i64;
        samples.push(mono.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16);
    }
    Pcm {
        rate: f.rate,
        samples,
    }
}

/// Write mono 16-bit PCM as a canonical 44-byte-header WAV file.
pub fn write(pcm: &Pcm) -> Vec<u8> {
    let data_len = u32::try_from(pcm.samples.len() * 2).unwrap_or(u32::MAX - 36) & !1;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&TAG_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&pcm.rate.to_le_bytes());
    out.extend_from_slice(&pcm.rate.saturating_mul(2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm.samples.iter().take(data_len as usize / 2) {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVE".to_vec();
        v.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // odd chunk, padded
        v.extend_from_slice(b"fmt \x10\0\0\0");
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(channels * bits / 8).to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip() {
        let pcm = Pcm {
            rate: 16000,
            samples: vec![0, 1, -1, i16::MAX, i16::MIN, 1234],
        };
        assert_eq!(read(&write(&pcm)).unwrap(), pcm);
    }

    #[test]
    fn stereo_mixes_to_mono_and_skips_other_chunks() {
        let data: Vec<u8> = [100i16, 300, -50, -150]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let pcm = read(&header(1, 2, 22050, 16, &data)).unwrap();
        assert_eq!(pcm.rate, 22050);
        assert_eq!(pcm.samples, vec![200, -100]);
    }

    #[test]
    fn float_and_8_bit() {
        let data: Vec<u8> = [0.5f32, -1.0].iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(
            read(&header(3, 1, 8000, 32, &data)).unwrap().samples,
            vec![16383, -32767]
        );
        assert_eq!(
            read(&header(1, 1, 8000, 8, &[128, 255])).unwrap().samples,
            vec![0, 127 << 8]
        );
    }

    #[test]
    fn streamed_sizes_take_what_is_there() {
        let mut v = header(1, 1, 16000, 16, &[1, 0, 2, 0]);
        let n = v.len();
        v[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&v).unwrap().samples, vec![1, 2]);
        v[n - 8..n - 4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(read(&v).unwrap().samples, vec![1, 2]);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert_eq!(read(b""), Err(WavError::NotWav));
        assert_eq!(read(b"RIFF\0\0\0\0WAVE"), Err(WavError::NoData));
        assert_eq!(read(&header(1, 0, 8000, 16, &[])), Err(WavError::BadShape(0)));
        assert!(matches!(
            read(&header(2, 1, 8000, 4, &[])),
            Err(WavError::Unsupported { tag: 2, bits: 4 })
        ));
        let full = header(1, 2, 16000, 16, &[1, 2, 3, 4, 5]);
        for cut in 0..full.len() {
            let _ = read(&full[..cut]);
        }
        let mut rng = crate::testing::TestRng::seeded(0x1234_5678);
        for _ in 0..2000 {
            let mut v = full.clone();
            for _ in 0..4 {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            let _ = read(&v);
        }
    }
}
