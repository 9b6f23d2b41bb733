//! Turning synthesized speech into the 20 ms frames the media thread plays: resample to the
//! codec's rate with rubato, then G.711-encode 160-sample frames or Opus-encode 960-sample frames.
//! The last frame is padded with silence, so a prompt's length is whole frames.

use super::g711::{self, Law};
use super::opus_codec;
use super::resample::resample_all;
use super::session::AudioCodec;

/// Why a prompt could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("cannot resample the prompt from {0} Hz: {1}")]
    Resample(u32, String),
    #[error("cannot encode the prompt as Opus: {0}")]
    Opus(String),
}

/// The encoded 20 ms frames of `samples` (mono, `rate` Hz) for `codec`.
pub fn encode_frames(samples: &[i16], rate: u32, codec: AudioCodec) -> Result<Vec<Vec<u8>>, PromptError> {
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let target = codec.clock_rate();
    let pcm = if rate == target {
        samples.to_vec()
    } else {
        resample_all(rate, target, samples).map_err(|e| PromptError::Resample(rate, e.to_string()))?
    };
    match codec {
        AudioCodec::Pcmu => Ok(g711_frames(Law::Ulaw, &pcm)),
        AudioCodec::Pcma => Ok(g711_frames(Law::Alaw, &pcm)),
        AudioCodec::Opus => opus_codec::encode_prompt(&pcm).map_err(|e| PromptError::Opus(e.to_string())),
    }
}

fn g711_frames(law: Law, pcm: &[i16]) -> Vec<Vec<u8>> {
    const FRAME: usize = 160;
    pcm.chunks(FRAME)
        .map(|chunk| {
            let mut frame = Vec::with_capacity(FRAME);
            g711::encode(law, chunk, &mut frame);
            let pad = [0i16; FRAME];
            g711::encode(law, &pad[..FRAME - chunk.len()], &mut frame);
            frame
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, ms: u32) -> Vec<i16> {
        let n = rate * ms / 1000;
        (0..n)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / f64::from(rate)).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn g711_frames_cover_the_prompt_in_whole_frames() {
        // 16 kHz, 1010 ms → 8 kHz 8080 samples → 51 frames (last one padded).
        let frames = encode_frames(&tone(16_000, 1010), 16_000, AudioCodec::Pcmu).expect("frames");
        assert_eq!(frames.len(), 51);
        assert!(frames.iter().all(|f| f.len() == 160));
        let mut back = Vec::new();
        g711::decode(Law::Ulaw, &frames[10], &mut back);
        let rms = (back.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0).sqrt();
        assert!(
            (5000.0..6000.0).contains(&rms),
            "a 8000-peak sine has RMS ~5657, got {rms}"
        );
        // The padding is silence.
        back.clear();
        g711::decode(Law::Ulaw, &frames[50][80..], &mut back);
        assert!(back.iter().all(|s| s.abs() < 400), "{back:?}");
    }

    #[test]
    fn alaw_at_the_native_rate_needs_no_resampling() {
        let pcm = tone(8_000, 200);
        let frames = encode_frames(&pcm, 8_000, AudioCodec::Pcma).expect("frames");
        assert_eq!(frames.len(), 10);
        let mut back = Vec::new();
        g711::decode(Law::Alaw, &frames[3], &mut back);
        let err: f64 = back
            .iter()
            .zip(&pcm[480..640])
            .map(|(a, b)| f64::from(a - b).abs())
            .sum::<f64>()
            / 160.0;
        assert!(err < 200.0, "mean error {err}");
    }

    #[test]
    fn opus_frames_from_22050_hz_speech_rate() {
        let frames = encode_frames(&tone(22_050, 500), 22_050, AudioCodec::Opus).expect("frames");
        // 500 ms plus the encoder's lookahead: 26 frames.
        assert!((25..=27).contains(&frames.len()), "{}", frames.len());
        assert!(frames.iter().all(|f| !f.is_empty() && f.len() < 400));
    }

    #[test]
    fn empty_speech_is_no_frames() {
        assert!(encode_frames(&[], 16_000, AudioCodec::Pcmu)
            .expect("ok")
            .is_empty());
    }
}
