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

/// Samples at or below this magnitude (about -50 dBFS) count as silence at a prompt's edges.
const EDGE_SILENCE: i16 = 100;
/// Silence kept before the first and after the last sound of a prompt.
const EDGE_KEEP_MS: u32 = 60;

/// `samples` without the silence engines put before and after speech, keeping
/// [`EDGE_KEEP_MS`] on each side: the caller hears the message sooner after answering and the
/// call hangs up sooner after the acknowledgement. All-silent input stays as it is.
pub fn trim_edges(samples: &[i16], rate: u32) -> &[i16] {
    let loud = |s: &i16| s.unsigned_abs() > EDGE_SILENCE.unsigned_abs();
    let (Some(first), Some(last)) = (samples.iter().position(loud), samples.iter().rposition(loud)) else {
        return samples;
    };
    let keep = (rate * EDGE_KEEP_MS / 1000) as usize;
    let start = first.saturating_sub(keep);
    let end = last.saturating_add(1).saturating_add(keep).min(samples.len());
    &samples[start..end]
}

/// The encoded 20 ms frames of `samples` (mono, `rate` Hz) for `codec`, edge silence trimmed
/// ([`trim_edges`]).
pub fn encode_frames(samples: &[i16], rate: u32, codec: AudioCodec) -> Result<Vec<Vec<u8>>, PromptError> {
    let samples = trim_edges(samples, rate);
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

    #[test]
    fn edge_silence_is_trimmed_to_a_short_margin() {
        let rate = 8_000;
        let mut s = vec![0i16; 4_000];
        s.extend(vec![30i16; 800]); // -60 dBFS hiss counts as silence
        s.extend(tone(rate, 500));
        s.extend(vec![0i16; 8_000]);
        let t = trim_edges(&s, rate);
        // 480 (first, 60 ms before the tone's first loud sample) .. 60 ms after its last.
        let tone_len = tone(rate, 500).len();
        assert!(
            t.len() <= tone_len + 2 * 480 && t.len() >= tone_len,
            "{}",
            t.len()
        );
        assert_eq!(trim_edges(&[0; 100], rate).len(), 100);
        assert!(trim_edges(&[], rate).is_empty());
        let frames = encode_frames(&s, rate, AudioCodec::Pcmu).expect("frames");
        assert_eq!(frames.len(), t.len().div_ceil(160));
    }

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
