//! Decoding settings sized from one short clip. Whisper is trained on 30 s windows; a caller's
//! answer is 1-3 s, so encoding the whole window wastes most of the CPU, and an unbounded decode
//! of a short clip can loop. The encoder is given `audio_ctx` positions (20 ms each) covering the
//! clip plus a margin, never fewer than [`MIN_AUDIO_CTX`] (shorter contexts were measured to
//! mishear: "no thanks" became "no fangs"), and the decoder at most a few tokens per second.

/// 16 kHz samples per encoder position (two 10 ms mel frames).
const SAMPLES_PER_POSITION: usize = 320;
/// Fewest encoder positions used (5.12 s).
pub const MIN_AUDIO_CTX: usize = 256;
/// Positions added after the clip (silence the model expects after speech), and the granularity.
const MARGIN: usize = 64;
/// Token budget: a base plus this many per second of audio (speech is ~2.5 words/s, ~1.3 tokens
/// a word, plus punctuation).
const BASE_TOKENS: usize = 8;
const TOKENS_PER_SECOND: usize = 5;
/// Never more than this many tokens, whatever the clip.
const MAX_TOKENS: usize = 64;
/// whisper.cpp refuses clips under one second; shorter ones are padded with silence to this.
pub const MIN_SAMPLES: usize = 16_000 * 11 / 10;

/// The settings of one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipSettings {
    /// Encoder positions.
    pub audio_ctx: usize,
    /// Text tokens the decoder may produce.
    pub max_tokens: usize,
}

impl ClipSettings {
    /// Settings for `samples` of 16 kHz audio with a model of `model_audio_ctx` positions.
    pub fn for_clip(samples: usize, model_audio_ctx: usize) -> Self {
        let positions = samples.div_ceil(SAMPLES_PER_POSITION) + MARGIN;
        let audio_ctx = positions
            .div_ceil(MARGIN)
            .saturating_mul(MARGIN)
            .max(MIN_AUDIO_CTX)
            .min(model_audio_ctx.max(1));
        let seconds = samples.div_ceil(16_000);
        let max_tokens = (BASE_TOKENS + TOKENS_PER_SECOND * seconds).min(MAX_TOKENS);
        Self {
            audio_ctx,
            max_tokens,
        }
    }
}

/// 16 kHz PCM as whisper.cpp's float samples, padded with silence to [`MIN_SAMPLES`].
pub fn to_float(pcm: &[i16]) -> Vec<f32> {
    let mut out: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32_768.0).collect();
    if out.len() < MIN_SAMPLES {
        out.resize(MIN_SAMPLES, 0.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_answers_get_the_floor_and_a_small_token_budget() {
        let one_second = ClipSettings::for_clip(16_000, 1500);
        assert_eq!(
            one_second,
            ClipSettings {
                audio_ctx: 256,
                max_tokens: 13
            }
        );
        let three = ClipSettings::for_clip(48_000, 1500);
        assert_eq!(
            three,
            ClipSettings {
                audio_ctx: 256,
                max_tokens: 23
            }
        );
    }

    #[test]
    fn long_clips_grow_in_steps_and_stay_bounded() {
        // 10 s: 500 positions + 64 margin, rounded up to 576.
        assert_eq!(ClipSettings::for_clip(160_000, 1500).audio_ctx, 576);
        assert_eq!(ClipSettings::for_clip(160_000, 1500).max_tokens, 58);
        let huge = ClipSettings::for_clip(16_000 * 120, 1500);
        assert_eq!(
            huge,
            ClipSettings {
                audio_ctx: 1500,
                max_tokens: MAX_TOKENS
            }
        );
        assert_eq!(ClipSettings::for_clip(0, 1500).audio_ctx, MIN_AUDIO_CTX);
        // A model with a smaller window than the floor keeps its own.
        assert_eq!(ClipSettings::for_clip(16_000, 100).audio_ctx, 100);
    }

    #[test]
    fn samples_scale_to_unit_range_and_short_clips_are_padded() {
        let f = to_float(&[i16::MIN, 0, 16_384]);
        assert_eq!(f.len(), MIN_SAMPLES);
        assert_eq!(&f[..3], &[-1.0, 0.0, 0.5]);
        assert!(f[3..].iter().all(|&s| s == 0.0));
        assert_eq!(to_float(&vec![1; 40_000]).len(), 40_000);
    }
}
