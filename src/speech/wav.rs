//! A tolerant reader of RIFF/WAVE PCM, as engines write it to a pipe: streaming writers such as
//! `espeak-ng --stdout` cannot seek back to fill in sizes, so the RIFF and `data` sizes may be
//! placeholders (`0xFFFFFFFF`, `0x7FFFF000`) larger than what follows; the data then runs to the end.

use super::Pcm;

/// Why bytes are not a usable WAV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("no fmt chunk before the data")]
    NoFormat,
    #[error("no data chunk")]
    NoData,
    #[error("unsupported WAV encoding: format {format}, {bits} bits (need 16-bit PCM)")]
    Unsupported { format: u16, bits: u16 },
    #[error("invalid WAV format chunk: {0}")]
    BadFormat(&'static str),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse 16-bit PCM WAV bytes; several channels are mixed down to the first.
pub fn parse(bytes: &[u8]) -> Result<Pcm, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut at = 12usize;
    let mut format: Option<(u16, u32, u16)> = None;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
        let body = at + 8;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let end = body.saturating_add(size).min(bytes.len());
        if id == b"fmt " {
            let f = bytes.get(body..end).ok_or(WavError::BadFormat("truncated"))?;
            let tag = u16_at(f, 0).ok_or(WavError::BadFormat("truncated"))?;
            let channels = u16_at(f, 2).ok_or(WavError::BadFormat("truncated"))?;
            let rate = u32_at(f, 4).ok_or(WavError::BadFormat("truncated"))?;
            let bits = u16_at(f, 14).ok_or(WavError::BadFormat("truncated"))?;
            // 1 = PCM, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (PCM sub-format assumed at 16 bits).
            if !(tag == 1 || tag == 0xFFFE) || bits != 16 {
                return Err(WavError::Unsupported { format: tag, bits });
            }
            if channels == 0 {
                return Err(WavError::BadFormat("zero channels"));
            }
            if rate == 0 {
                return Err(WavError::BadFormat("zero sample rate"));
            }
            format = Some((channels, rate, bits));
        } else if id == b"data" {
            let (channels, rate, _) = format.ok_or(WavError::NoFormat)?;
            let data = &bytes[body.min(bytes.len())..end];
            let frame = 2 * usize::from(channels);
            let samples = data
                .chunks_exact(frame)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Pcm { rate, samples });
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::NoData)
}

/// 16-bit mono PCM as WAV bytes (tests and debugging dumps).
pub fn write(pcm: &Pcm) -> Vec<u8> {
    let data_len = u32::try_from(pcm.samples.len() * 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + pcm.samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&pcm.rate.to_le_bytes());
    out.extend_from_slice(&(pcm.rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &pcm.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm() -> Pcm {
        Pcm {
            rate: 22_050,
            samples: vec![0, 1, -1, i16::MAX, i16::MIN, 1234],
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(parse(&write(&pcm())), Ok(pcm()));
    }

    #[test]
    fn streaming_placeholder_sizes_run_to_the_end() {
        for placeholder in [0xFFFF_FFFFu32, 0x7FFF_F000] {
            let mut b = write(&pcm());
            b[4..8].copy_from_slice(&placeholder.to_le_bytes());
            b[40..44].copy_from_slice(&placeholder.to_le_bytes());
            b.push(0x7F); // a dangling half sample is dropped
            assert_eq!(parse(&b), Ok(pcm()));
        }
    }

    #[test]
    fn extra_chunks_odd_padding_and_stereo() {
        let mut b = write(&pcm());
        // Insert an odd-sized LIST chunk (padded) between fmt and data.
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc\0"].concat();
        b.splice(36..36, list);
        assert_eq!(parse(&b), Ok(pcm()));

        let mut st = write(&Pcm {
            rate: 8000,
            samples: vec![5, 6, 7, 8],
        });
        st[22..24].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(parse(&st).map(|p| p.samples), Ok(vec![5, 7]));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(parse(b""), Err(WavError::NotWave));
        assert_eq!(parse(b"RIFF\0\0\0\0WAVE"), Err(WavError::NoData));
        let w = write(&pcm());
        for cut in 0..w.len() {
            let _ = parse(&w[..cut]);
        }
        let mut eight_bit = w.clone();
        eight_bit[34..36].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(
            parse(&eight_bit),
            Err(WavError::Unsupported { format: 1, bits: 8 })
        );
        let mut no_fmt = w;
        no_fmt[12..16].copy_from_slice(b"junk");
        assert_eq!(parse(&no_fmt), Err(WavError::NoFormat));
    }
}
