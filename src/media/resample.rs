//! Fixed-ratio mono sample-rate conversion between the rates the media plane meets:
//! 8000 (telephone), 16000 (flite, recogniser), 22050 (espeak, piper), 24000, 44100 and
//! 48000 Hz (Opus).
//!
//! This module owns the streaming [`Resampler`] and the whole-clip [`resample_all`]; both are
//! sans-IO (no clocks, threads or I/O) and work on 16-bit PCM.
//!
//! # Choice of engine
//!
//! The conversion is done by rubato's synchronous FFT resampler ([`rubato::Fft`], fixed input and
//! output block, `FixedSync::Both`) rather than a sinc-interpolating asynchronous one:
//!
//! * every rate pair here is a fixed rational ratio, so nothing needs the asynchronous
//!   resamplers' adjustable ratio, and a synchronous resampler is exact: `n` blocks in give
//!   exactly `n` blocks out, with no drift;
//! * the FFT resampler's cost per output sample is a pair of small real FFTs per block,
//!   several times cheaper than evaluating a long windowed-sinc kernel per output sample, which
//!   matters with hundreds of streams on a Raspberry Pi;
//! * all supported rates are multiples of 50 Hz, so a 20 ms block is always a whole number of
//!   the resampler's minimum block (`rate / gcd(from, to)`). One block is therefore exactly one
//!   20 ms RTP packet's worth of audio on both sides, which suits streaming 20 ms chunks; whole
//!   prompts are simply many blocks.
//!
//! The anti-aliasing filter is rubato's default windowed sinc (squared Blackman–Harris window)
//! with as many taps as the input block; its cutoff sits a little below the lower Nyquist
//! frequency (about 3.66 kHz for 8 kHz output).
//!
//! # Timing
//!
//! The filter delays the signal by [`Resampler::delay_samples`] output samples (half an output
//! block, i.e. 10 ms). [`Resampler::process`] drops that many leading output samples, so the
//! output is time-aligned with the input; [`Resampler::flush`] pushes silence through to release
//! the tail, so a prompt streamed through `process` + `flush` yields exactly
//! `round(len * to / from)` samples, sample-for-sample identical to [`resample_all`]. Because
//! input is converted in whole blocks, output can lag input by up to
//! [`Resampler::max_latency_samples`] output samples between calls.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{FixedSync, Indexing, Resampler as _, WindowFunction};

/// The sample rates (Hz) this module converts between.
pub const SUPPORTED_RATES: [u32; 6] = [8000, 16000, 22050, 24000, 44100, 48000];

/// Length of one processing block (on both sides), in milliseconds.
const BLOCK_MS: u32 = 20;

/// Errors from building a resampler.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate outside [`SUPPORTED_RATES`].
    #[error("unsupported sample rate {0} Hz (supported: 8000, 16000, 22050, 24000, 44100, 48000)")]
    UnsupportedRate(u32),
    /// rubato refused the configuration.
    #[error("cannot build a {from_hz} Hz -> {to_hz} Hz resampler: {source}")]
    Construction {
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
        /// rubato's reason.
        #[source]
        source: rubato::ResamplerConstructionError,
    },
}

/// A streaming mono resampler for one fixed rate pair.
///
/// Feed any number of samples with [`process`](Self::process) and call
/// [`flush`](Self::flush) at the end of each prompt; after a flush the resampler is ready for the
/// next prompt, as if freshly built.
#[derive(Debug)]
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// `None` when `from_hz == to_hz`: samples are copied through.
    engine: Option<Engine>,
}

#[derive(Debug)]
struct Engine {
    fft: rubato::Fft<f32>,
    /// Input samples per block.
    block_in: usize,
    /// Output samples per block.
    block_out: usize,
    /// Input block being filled; always `block_in` long, the first `filled` samples are valid.
    pending: Vec<f32>,
    filled: usize,
    /// Output of one block; always `block_out` long.
    out_block: Vec<f32>,
    /// Filter delay in output samples.
    delay: usize,
    /// Leading output samples still to drop (the filter delay) before anything is emitted.
    to_trim: usize,
    /// Input samples accepted since construction or the last flush.
    consumed: u64,
    /// Output samples emitted since construction or the last flush.
    emitted: u64,
}

fn check_rate(hz: u32) -> Result<(), ResampleError> {
    if SUPPORTED_RATES.contains(&hz) {
        Ok(())
    } else {
        Err(ResampleError::UnsupportedRate(hz))
    }
}

/// `round(n * to / from)`, rounding halves up, without overflow.
fn scaled_len(n: u64, from_hz: u32, to_hz: u32) -> u64 {
    let (from, to) = (u128::from(from_hz), u128::from(to_hz));
    let v = (u128::from(n) * to + from / 2) / from;
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[inline]
fn to_f32(s: i16) -> f32 {
    f32::from(s) * (1.0 / 32768.0)
}

#[inline]
fn to_i16(v: f32) -> i16 {
    // `as` saturates (and maps NaN to 0); the clamp documents the intent.
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

impl Resampler {
    /// Build a resampler from `from_hz` to `to_hz`; both must be in [`SUPPORTED_RATES`].
    /// Equal rates give a passthrough with no delay.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        check_rate(from_hz)?;
        check_rate(to_hz)?;
        if from_hz == to_hz {
            return Ok(Resampler {
                from_hz,
                to_hz,
                engine: None,
            });
        }
        let block = (from_hz / (1000 / BLOCK_MS)) as usize;
        let fft = rubato::Fft::<f32>::new_custom(
            from_hz as usize,
            to_hz as usize,
            block,
            1,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Both,
        )
        .map_err(|source| ResampleError::Construction {
            from_hz,
            to_hz,
            source,
        })?;
        let block_in = fft.input_frames_next();
        let block_out = fft.output_frames_next();
        let delay = fft.output_delay();
        Ok(Resampler {
            from_hz,
            to_hz,
            engine: Some(Engine {
                fft,
                block_in,
                block_out,
                pending: vec![0.0; block_in],
                filled: 0,
                out_block: vec![0.0; block_out],
                delay,
                to_trim: delay,
                consumed: 0,
                emitted: 0,
            }),
        })
    }

    /// Input rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Resample `input` (any length, including zero), appending every output sample that is
    /// ready to `out`. Output lags input by at most [`max_latency_samples`](Self::max_latency_samples).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let Some(engine) = self.engine.as_mut() else {
            out.extend_from_slice(input);
            return;
        };
        engine.consumed += input.len() as u64;
        let mut rest = input;
        while !rest.is_empty() {
            let take = (engine.block_in - engine.filled).min(rest.len());
            let (now, later) = rest.split_at(take);
            for (dst, &src) in engine.pending[engine.filled..engine.filled + take]
                .iter_mut()
                .zip(now)
            {
                *dst = to_f32(src);
            }
            engine.filled += take;
            rest = later;
            if engine.filled == engine.block_in {
                engine.run_block(None, u64::MAX, out);
            }
        }
    }

    /// End of a prompt: push silence through the filter and append the remaining output, so that
    /// everything emitted since the last flush totals exactly `round(consumed * to / from)`
    /// samples. The resampler is then reset for the next prompt.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let (from_hz, to_hz) = (self.from_hz, self.to_hz);
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let target = scaled_len(engine.consumed, from_hz, to_hz);
        if engine.filled > 0 && engine.emitted < target {
            let filled = engine.filled;
            engine.run_block(Some(filled), target, out);
        }
        while engine.emitted < target {
            // Each block yields `block_out >= 1` samples, so this terminates.
            engine.run_block(Some(0), target, out);
        }
        engine.reset();
    }

    /// The filter's delay in output samples (10 ms of output for every rate pair; 0 for a
    /// passthrough). [`process`](Self::process) trims it, so output stays time-aligned with the
    /// input; it is one part of the streaming latency.
    pub fn delay_samples(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.delay)
    }

    /// Worst-case streaming latency in output samples: after any [`process`](Self::process) call,
    /// the output emitted so far is at least `round(consumed * to / from)` minus this (the
    /// filter delay plus one block of input buffering).
    pub fn max_latency_samples(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.delay + e.block_out)
    }
}

impl Engine {
    /// Resample the pending block (`partial` = number of valid samples, the rest is treated as
    /// silence; `None` = full block) and emit its output, dropping the filter delay and never
    /// letting `emitted` exceed `limit`.
    fn run_block(&mut self, partial: Option<usize>, limit: u64, out: &mut Vec<i16>) {
        let produced = match self.resample_pending(partial) {
            Ok(n) => n.min(self.block_out),
            Err(_err) => {
                // Unreachable: the buffers are sized from the resampler's own block sizes. Keep
                // the stream's timing with a block of silence rather than panicking.
                debug_assert!(false, "invariant: rubato rejected self-sized buffers: {_err}");
                self.out_block.iter_mut().for_each(|v| *v = 0.0);
                self.block_out
            }
        };
        self.filled = 0;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        let room = usize::try_from(limit.saturating_sub(self.emitted)).unwrap_or(usize::MAX);
        let ready = &self.out_block[skip..produced];
        let ready = &ready[..ready.len().min(room)];
        out.extend(ready.iter().map(|&v| to_i16(v)));
        self.emitted += ready.len() as u64;
    }

    fn resample_pending(&mut self, partial: Option<usize>) -> Result<usize, String> {
        let input =
            InterleavedSlice::new(&self.pending[..], 1, self.block_in).map_err(|e| format!("{e:?}"))?;
        let mut output = InterleavedSlice::new_mut(&mut self.out_block[..], 1, self.block_out)
            .map_err(|e| format!("{e:?}"))?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|e| e.to_string())?;
        Ok(produced)
    }

    fn reset(&mut self) {
        self.fft.reset();
        self.filled = 0;
        self.to_trim = self.delay;
        self.consumed = 0;
        self.emitted = 0;
    }
}

/// Resample a whole clip. The output has exactly `round(input.len() * to_hz / from_hz)` samples
/// (halves rounded up), with the filter delay removed and the tail padded by the filter's
/// response to trailing silence.
pub fn resample_all(from_hz: u32, to_hz: u32, input: &[i16]) -> Result<Vec<i16>, ResampleError> {
    let mut resampler = Resampler::new(from_hz, to_hz)?;
    let expected = usize::try_from(scaled_len(input.len() as u64, from_hz, to_hz)).unwrap_or(0);
    let mut out = Vec::with_capacity(expected);
    resampler.process(input, &mut out);
    resampler.flush(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(rate: u32, freq: f64, amp: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Amplitude of the `freq` component (Goertzel), for a window of whole-ish cycles.
    fn goertzel_amp(x: &[i16], rate: u32, freq: f64) -> f64 {
        let w = 2.0 * PI * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * power.sqrt() / x.len() as f64
    }

    fn zero_crossings(x: &[i16]) -> usize {
        x.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    /// The middle of a signal, skipping `edge` samples at both ends.
    fn middle(x: &[i16], edge: usize) -> &[i16] {
        &x[edge..x.len() - edge]
    }

    fn all_pairs() -> impl Iterator<Item = (u32, u32)> {
        SUPPORTED_RATES
            .iter()
            .flat_map(|&a| SUPPORTED_RATES.iter().map(move |&b| (a, b)))
    }

    #[test]
    fn resampler_can_move_to_the_media_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Resampler>();
    }

    #[test]
    fn rejects_unsupported_rates() {
        assert!(matches!(
            Resampler::new(11025, 8000),
            Err(ResampleError::UnsupportedRate(11025))
        ));
        assert!(matches!(
            Resampler::new(8000, 0),
            Err(ResampleError::UnsupportedRate(0))
        ));
        assert!(resample_all(8000, 96000, &[1, 2, 3]).is_err());
    }

    #[test]
    fn block_and_delay_are_20_ms_and_10_ms_for_every_pair() {
        for (from, to) in all_pairs() {
            let r = Resampler::new(from, to).unwrap();
            if from == to {
                assert_eq!(r.delay_samples(), 0);
                assert_eq!(r.max_latency_samples(), 0);
                continue;
            }
            let engine = r.engine.as_ref().unwrap();
            assert_eq!(engine.block_in, (from / 50) as usize, "{from}->{to}");
            assert_eq!(engine.block_out, (to / 50) as usize, "{from}->{to}");
            assert_eq!(r.delay_samples(), (to / 100) as usize, "{from}->{to}");
        }
    }

    #[test]
    fn resample_all_length_is_exact_for_every_pair() {
        let mut rng = crate::testing::TestRng::seeded(0x1234_5678_9ABC_DEF1);
        let mut lens: Vec<usize> = vec![
            0, 1, 2, 3, 5, 79, 80, 159, 160, 161, 441, 882, 959, 960, 961, 4410,
        ];
        lens.extend((0..12).map(|_| rng.below(5000)));
        for (from, to) in all_pairs() {
            for &len in &lens {
                let input: Vec<i16> = (0..len).map(|_| rng.i16() / 4).collect();
                let out = resample_all(from, to, &input).unwrap();
                let expected = (len as u64 * u64::from(to) * 2 + u64::from(from)) / (2 * u64::from(from));
                assert_eq!(out.len() as u64, expected, "{from}->{to} len {len}");
                if from == to {
                    assert_eq!(out, input);
                }
            }
        }
    }

    #[test]
    fn streaming_in_random_chunks_matches_resample_all() {
        let mut rng = crate::testing::TestRng::seeded(0xDEAD_BEEF_CAFE_F00D);
        for (from, to) in all_pairs() {
            let mut r = Resampler::new(from, to).unwrap();
            // Two prompts through the same resampler: flush must leave it as good as new.
            for _prompt in 0..2 {
                let len = 1 + rng.below(6000);
                let input: Vec<i16> = (0..len).map(|_| (rng.next_u64() >> 50) as i16 - 4096).collect();
                let mut out = Vec::new();
                let mut fed = 0usize;
                while fed < len {
                    let n = rng.below(1200).min(len - fed);
                    r.process(&input[fed..fed + n], &mut out);
                    fed += n;
                    let ideal = scaled_len(fed as u64, from, to);
                    assert!(out.len() as u64 <= ideal, "{from}->{to}: ahead of input");
                    assert!(
                        out.len() as u64 + r.max_latency_samples() as u64 + 1 >= ideal,
                        "{from}->{to}: lag {} beyond {}",
                        ideal - out.len() as u64,
                        r.max_latency_samples()
                    );
                }
                r.flush(&mut out);
                let whole = resample_all(from, to, &input).unwrap();
                let exact = len as f64 * f64::from(to) / f64::from(from);
                assert!((out.len() as f64 - exact).abs() <= 1.0, "{from}->{to}");
                assert_eq!(out, whole, "{from}->{to}: streaming differs from whole-clip");
            }
        }
    }

    #[test]
    fn empty_and_tiny_inputs_do_not_panic() {
        for (from, to) in all_pairs() {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            r.flush(&mut out);
            assert!(out.is_empty());
            r.process(&[], &mut out);
            r.process(&[i16::MAX], &mut out);
            r.flush(&mut out);
            assert_eq!(out.len() as u64, scaled_len(1, from, to));
        }
    }

    fn check_tone(from: u32, to: u32, freq: f64) -> (f64, f64) {
        let amp = 10000.0;
        let input = sine(from, freq, amp, from as usize); // one second
        let out = resample_all(from, to, &input).unwrap();
        let mid = middle(&out, (to / 20) as usize); // skip 50 ms each side
        let got_rms = rms(mid);
        let gain_db = 20.0 * (got_rms / (amp / 2f64.sqrt())).log10();
        let goertzel_db = 20.0 * (goertzel_amp(mid, to, freq) / amp).log10();
        let seconds = mid.len() as f64 / f64::from(to);
        let zc = zero_crossings(mid) as f64;
        assert!(
            (zc - 2.0 * freq * seconds).abs() <= 2.0,
            "{from}->{to} {freq} Hz: {zc} zero crossings in {seconds} s"
        );
        assert!(
            gain_db.abs() <= 1.0,
            "{from}->{to} {freq} Hz: level {gain_db:.2} dB"
        );
        assert!(
            goertzel_db.abs() <= 1.0,
            "{from}->{to} {freq} Hz: Goertzel {goertzel_db:.2} dB"
        );
        (gain_db, goertzel_db)
    }

    #[test]
    fn tones_keep_frequency_and_amplitude() {
        for (from, to) in [
            (16000, 8000),
            (8000, 16000),
            (22050, 8000),
            (48000, 8000),
            (8000, 48000),
        ]
        .into_iter()
        .chain([(22050, 48000), (22050, 16000), (44100, 48000), (24000, 8000)])
        {
            for freq in [440.0, 1000.0] {
                let (rms_db, g_db) = check_tone(from, to, freq);
                eprintln!("{from}->{to} {freq} Hz: RMS {rms_db:+.3} dB, Goertzel {g_db:+.3} dB");
            }
        }
    }

    #[test]
    fn tones_also_survive_in_every_pair() {
        for (from, to) in all_pairs() {
            check_tone(from, to, 1000.0);
        }
    }

    #[test]
    fn energy_above_target_nyquist_is_attenuated() {
        for (from, to, freq) in [
            (16000, 8000, 7000.0),
            (16000, 8000, 5000.0),
            (22050, 8000, 7000.0),
            (44100, 8000, 12000.0),
            (48000, 8000, 6000.0),
            (48000, 16000, 10000.0),
            (44100, 16000, 9000.0),
            (48000, 22050, 15000.0),
        ] {
            let amp = 16000.0;
            let input = sine(from, freq, amp, from as usize);
            let out = resample_all(from, to, &input).unwrap();
            let level = rms(middle(&out, (to / 20) as usize)) / (amp / 2f64.sqrt());
            let db = 20.0 * level.log10();
            eprintln!("{from}->{to}: {freq} Hz tone comes out at {db:.1} dB");
            assert!(db <= -30.0, "{from}->{to}: {freq} Hz only {db:.1} dB down");
        }
    }

    #[test]
    fn full_scale_input_saturates_without_panicking() {
        let mut rng = crate::testing::TestRng::seeded(42);
        let square: Vec<i16> = (0..8000)
            .map(|n| if (n / 7) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let noise: Vec<i16> = (0..8000).map(|_| rng.i16()).collect();
        let extremes: Vec<i16> = (0..8000)
            .map(|n| if n % 2 == 0 { i16::MIN } else { i16::MAX })
            .collect();
        for (from, to) in all_pairs() {
            for input in [&square, &noise, &extremes] {
                let out = resample_all(from, to, input).unwrap();
                assert_eq!(out.len() as u64, scaled_len(input.len() as u64, from, to));
            }
        }
    }
}
