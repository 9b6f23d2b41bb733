//! Opus (RFC 6716) for RTP per RFC 7587: the encoder and decoder wrappers used by the media
//! thread, and [`encode_prompt`] for pre-encoding whole prompts.
//!
//! This module owns the Opus configuration of the service: 48 kHz (the RTP clock of
//! `opus/48000/2` is always 48 kHz whatever the audio bandwidth), 20 ms frames (960 samples),
//! application VoIP, voice signal hint, 24 kbit/s by default, in-band FEC on. We always send
//! mono content; the SDP name still says `/2` (RFC 7587 §7), and an encoder may be configured
//! for two channels when the peer asks for it, in which case the mono input is duplicated to
//! both channels. Decoding always yields mono 48 kHz: libopus downmixes stereo packets.
//!
//! Sans-IO: no clocks, threads or I/O; every call works on caller-provided buffers.

/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// The Opus RTP clock rate (RFC 7587): always 48 kHz.
pub const SAMPLE_RATE: u32 = 48_000;
/// Default encoder bitrate, bits per second.
pub const DEFAULT_BITRATE: u32 = 24_000;
/// Largest possible Opus packet for one frame (RFC 6716 §3.2.1: 1275 bytes per frame).
const MAX_PACKET: usize = 1275;
/// Longest duration a single Opus packet can hold: 120 ms at 48 kHz.
const MAX_PACKET_SAMPLES: usize = 5760;
/// Longest payload accepted by the decoder: nothing larger fits in a UDP datagram.
const MAX_PAYLOAD: usize = 65_535;

/// Errors from the Opus wrappers.
#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    /// `encode_20ms` was given something other than 960 samples.
    #[error("an Opus frame needs exactly {expected} samples at 48 kHz, got {got}")]
    FrameSize {
        /// Required samples per frame.
        expected: usize,
        /// Samples supplied.
        got: usize,
    },
    /// The bitrate is outside what Opus accepts (6..=510 kbit/s).
    #[error("Opus bitrate {0} bit/s is outside 6000..=510000")]
    Bitrate(u32),
    /// An empty payload was given to `decode`; a lost packet goes through `decode_lost`.
    #[error("empty Opus payload (use decode_lost for a missing packet)")]
    EmptyPacket,
    /// A payload longer than any UDP datagram can carry.
    #[error("Opus payload of {0} bytes is larger than any RTP packet")]
    PacketTooLarge(usize),
    /// libopus reported an error (including corrupt packets on decode).
    #[error("libopus: {0}")]
    Codec(#[from] opus::Error),
}

/// Channel count of the encoder, from the peer's `stereo` fmtp parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChannels {
    /// Mono packets: the cheapest, and decodable by every Opus decoder.
    #[default]
    Mono,
    /// Stereo packets carrying the mono content on both channels.
    Stereo,
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Channels of the encoded packets (content is always mono).
    pub channels: EncoderChannels,
    /// Target bitrate in bit/s (6000..=510000).
    pub bitrate: u32,
    /// Packet loss percentage the encoder plans for; in-band FEC only carries redundancy when
    /// this is non-zero.
    pub expected_loss_percent: u8,
    /// Encoder complexity 0..=10 (values above 10 are treated as 10). Lower is cheaper; 5 keeps
    /// live encoding affordable for many streams on a Raspberry Pi.
    pub complexity: u8,
}

impl Default for OpusConfig {
    fn default() -> Self {
        OpusConfig {
            channels: EncoderChannels::Mono,
            bitrate: DEFAULT_BITRATE,
            expected_loss_percent: 5,
            complexity: 5,
        }
    }
}

/// A 48 kHz Opus encoder taking 20 ms frames of mono PCM.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: opus::Encoder,
    channels: EncoderChannels,
    /// Interleaved stereo scratch for the stereo case.
    stereo: Vec<i16>,
    /// Packet scratch.
    packet: Vec<u8>,
    lookahead: usize,
}

impl OpusEncoder {
    /// An encoder with the default configuration (mono, 24 kbit/s, FEC on).
    pub fn new() -> Result<Self, OpusError> {
        Self::with_config(OpusConfig::default())
    }

    /// An encoder with explicit settings.
    pub fn with_config(config: OpusConfig) -> Result<Self, OpusError> {
        if !(6_000..=510_000).contains(&config.bitrate) {
            return Err(OpusError::Bitrate(config.bitrate));
        }
        let channels = match config.channels {
            EncoderChannels::Mono => opus::Channels::Mono,
            EncoderChannels::Stereo => opus::Channels::Stereo,
        };
        let mut inner = opus::Encoder::new(SAMPLE_RATE, channels, opus::Application::Voip)?;
        // The range check above makes the cast lossless.
        inner.set_bitrate(opus::Bitrate::Bits(config.bitrate as i32))?;
        inner.set_signal(opus::Signal::Voice)?;
        inner.set_inband_fec(true)?;
        inner.set_packet_loss_perc(i32::from(config.expected_loss_percent.min(100)))?;
        inner.set_complexity(i32::from(config.complexity.min(10)))?;
        let lookahead = usize::try_from(inner.get_lookahead()?).unwrap_or(0);
        Ok(OpusEncoder {
            inner,
            channels: config.channels,
            stereo: Vec::new(),
            packet: vec![0; MAX_PACKET],
            lookahead,
        })
    }

    /// The encoder's algorithmic delay in samples at 48 kHz (its lookahead).
    pub fn lookahead_samples(&self) -> usize {
        self.lookahead
    }

    /// Encode one 20 ms frame of exactly [`FRAME_SAMPLES`] mono samples into one RTP payload.
    pub fn encode_20ms(&mut self, pcm_48k_mono: &[i16]) -> Result<Vec<u8>, OpusError> {
        if pcm_48k_mono.len() != FRAME_SAMPLES {
            return Err(OpusError::FrameSize {
                expected: FRAME_SAMPLES,
                got: pcm_48k_mono.len(),
            });
        }
        let len = match self.channels {
            EncoderChannels::Mono => self.inner.encode(pcm_48k_mono, &mut self.packet)?,
            EncoderChannels::Stereo => {
                self.stereo.clear();
                self.stereo.extend(pcm_48k_mono.iter().flat_map(|&s| [s, s]));
                self.inner.encode(&self.stereo, &mut self.packet)?
            }
        };
        Ok(self.packet[..len.min(self.packet.len())].to_vec())
    }
}

/// A 48 kHz Opus decoder with mono output.
#[derive(Debug)]
pub struct OpusDecoder {
    inner: opus::Decoder,
    scratch: Vec<i16>,
}

impl OpusDecoder {
    /// A mono 48 kHz decoder (stereo packets are downmixed).
    pub fn new() -> Result<Self, OpusError> {
        Ok(OpusDecoder {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
            scratch: vec![0; MAX_PACKET_SAMPLES],
        })
    }

    /// Decode one RTP payload, appending its samples (mono, 48 kHz) to `out`; returns how many
    /// were appended. A corrupt packet is an error and leaves `out` untouched.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<usize, OpusError> {
        if packet.is_empty() {
            return Err(OpusError::EmptyPacket);
        }
        if packet.len() > MAX_PAYLOAD {
            return Err(OpusError::PacketTooLarge(packet.len()));
        }
        let n = self.inner.decode(packet, &mut self.scratch, false)?;
        Ok(self.append(n, out))
    }

    /// Conceal one lost 20 ms packet: append [`FRAME_SAMPLES`] samples of packet-loss
    /// concealment to `out`, returning how many were appended.
    pub fn decode_lost(&mut self, out: &mut Vec<i16>) -> Result<usize, OpusError> {
        let n = self
            .inner
            .decode(&[], &mut self.scratch[..FRAME_SAMPLES], false)?;
        Ok(self.append(n, out))
    }

    /// Recover one lost 20 ms packet from the in-band FEC data in the packet that followed it;
    /// `next_packet` must then also be decoded normally with [`decode`](Self::decode).
    /// Falls back to concealment when `next_packet` carries no FEC.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut Vec<i16>) -> Result<usize, OpusError> {
        if next_packet.is_empty() {
            return self.decode_lost(out);
        }
        if next_packet.len() > MAX_PAYLOAD {
            return Err(OpusError::PacketTooLarge(next_packet.len()));
        }
        let n = self
            .inner
            .decode(next_packet, &mut self.scratch[..FRAME_SAMPLES], true)?;
        Ok(self.append(n, out))
    }

    fn append(&self, n: usize, out: &mut Vec<i16>) -> usize {
        let n = n.min(self.scratch.len());
        out.extend_from_slice(&self.scratch[..n]);
        n
    }
}

/// Pre-encode a whole mono 48 kHz prompt with the default configuration into 20 ms packets.
///
/// The prompt is followed by the encoder's lookahead worth of silence, so its last samples are
/// not left behind inside the encoder, and the last frame is padded with silence. An empty
/// prompt yields no packets.
pub fn encode_prompt(pcm_48k_mono: &[i16]) -> Result<Vec<Vec<u8>>, OpusError> {
    encode_prompt_with(OpusConfig::default(), pcm_48k_mono)
}

/// [`encode_prompt`] with explicit encoder settings.
pub fn encode_prompt_with(config: OpusConfig, pcm_48k_mono: &[i16]) -> Result<Vec<Vec<u8>>, OpusError> {
    if pcm_48k_mono.is_empty() {
        return Ok(Vec::new());
    }
    let mut encoder = OpusEncoder::with_config(config)?;
    let total = pcm_48k_mono.len() + encoder.lookahead_samples();
    let frames = total.div_ceil(FRAME_SAMPLES);
    let mut packets = Vec::with_capacity(frames);
    let mut frame = [0i16; FRAME_SAMPLES];
    for i in 0..frames {
        let start = (i * FRAME_SAMPLES).min(pcm_48k_mono.len());
        let end = (start + FRAME_SAMPLES).min(pcm_48k_mono.len());
        let chunk = &pcm_48k_mono[start..end];
        frame[..chunk.len()].copy_from_slice(chunk);
        frame[chunk.len()..].fill(0);
        packets.push(encoder.encode_20ms(&frame)?);
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(freq: f64, amp: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (amp * (2.0 * PI * freq * n as f64 / 48000.0).sin()).round() as i16)
            .collect()
    }

    /// Lag in `lags` maximising the cross-correlation of `decoded[lag..]` with `reference`.
    fn best_lag(
        reference: &[i16],
        decoded: &[i16],
        lags: std::ops::Range<usize>,
        window: std::ops::Range<usize>,
    ) -> usize {
        lags.max_by(|&a, &b| {
            let corr = |lag: usize| -> f64 {
                window
                    .clone()
                    .map(|i| f64::from(reference[i]) * f64::from(decoded[i + lag]))
                    .sum::<f64>()
            };
            corr(a).total_cmp(&corr(b))
        })
        .unwrap_or(0)
    }

    fn snr_db(reference: &[i16], decoded: &[i16], lag: usize, range: std::ops::Range<usize>) -> f64 {
        let (mut sig, mut noise) = (0f64, 0f64);
        for i in range {
            let x = f64::from(reference[i]);
            sig += x * x;
            noise += (x - f64::from(decoded[i + lag])).powi(2);
        }
        10.0 * (sig / noise).log10()
    }

    fn round_trip(config: OpusConfig) -> (f64, usize, usize) {
        let input = sine(1000.0, 10000.0, 48000);
        let mut enc = OpusEncoder::with_config(config).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut decoded = Vec::new();
        let mut max_len = 0;
        for frame in input.chunks(FRAME_SAMPLES) {
            let packet = enc.encode_20ms(frame).unwrap();
            max_len = max_len.max(packet.len());
            assert_eq!(dec.decode(&packet, &mut decoded).unwrap(), FRAME_SAMPLES);
        }
        assert_eq!(decoded.len(), input.len());
        // Skip the first 200 ms (encoder start-up) and search one period of the tone around the
        // encoder lookahead: a pure tone only fixes the lag modulo its 48-sample period, so a
        // wider search would just pick an arbitrary period.
        let lookahead = enc.lookahead_samples();
        let lag = best_lag(&input, &decoded, lookahead - 24..lookahead + 24, 9600..12000);
        let snr = snr_db(&input, &decoded, lag, 9600..input.len() - 1200);
        (snr, lag, max_len)
    }

    #[test]
    fn round_trip_sine_snr_and_packet_size() {
        let (snr, lag, max_len) = round_trip(OpusConfig::default());
        eprintln!("Opus mono 24 kbit/s: 1 kHz sine SNR {snr:.1} dB at lag {lag}, largest packet {max_len} B");
        assert!(snr > 10.0, "SNR {snr:.1} dB");
        assert!(max_len < 200, "packet {max_len} bytes");
        assert!(max_len > 0);
    }

    #[test]
    fn round_trip_with_stereo_encoder() {
        let config = OpusConfig {
            channels: EncoderChannels::Stereo,
            ..OpusConfig::default()
        };
        let (snr, lag, max_len) = round_trip(config);
        eprintln!(
            "Opus stereo 24 kbit/s: 1 kHz sine SNR {snr:.1} dB at lag {lag}, largest packet {max_len} B"
        );
        assert!(snr > 10.0, "SNR {snr:.1} dB");
        assert!(max_len < 200, "packet {max_len} bytes");
    }

    #[test]
    fn codec_state_can_move_to_the_media_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<OpusEncoder>();
        assert_send::<OpusDecoder>();
    }

    #[test]
    fn wrong_frame_size_is_an_error() {
        let mut enc = OpusEncoder::new().unwrap();
        for len in [0, 1, 480, 959, 961, 1920, 100_000] {
            let pcm = vec![0i16; len];
            assert!(matches!(
                enc.encode_20ms(&pcm),
                Err(OpusError::FrameSize { expected: 960, got }) if got == len
            ));
        }
        // The encoder still works afterwards.
        assert!(enc.encode_20ms(&[0; FRAME_SAMPLES]).is_ok());
    }

    #[test]
    fn bad_bitrate_is_an_error() {
        for bitrate in [0, 5999, 510_001] {
            let config = OpusConfig {
                bitrate,
                ..OpusConfig::default()
            };
            assert!(matches!(OpusEncoder::with_config(config), Err(OpusError::Bitrate(b)) if b == bitrate));
        }
    }

    #[test]
    fn corrupt_packets_are_errors_and_garbage_never_panics() {
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        assert!(matches!(dec.decode(&[], &mut out), Err(OpusError::EmptyPacket)));
        // Code 3 packet with a frame count of zero; code 1 (two equal frames) with an odd
        // payload; code 3 claiming 48 frames of 20 ms (960 ms > 120 ms limit).
        for bad in [
            &[0x03u8, 0x00][..],
            &[0x01, 0xAA, 0xBB, 0xCC],
            &[0x03, 0x30, 1, 2, 3],
        ] {
            assert!(
                matches!(dec.decode(bad, &mut out), Err(OpusError::Codec(_))),
                "{bad:02x?}"
            );
        }
        assert!(matches!(
            dec.decode(&vec![0xFC; MAX_PAYLOAD + 1], &mut out),
            Err(OpusError::PacketTooLarge(_))
        ));
        assert!(out.is_empty());
        // Random garbage: may decode (Opus is very permissive) or fail, but never panics and
        // never yields more than one packet's worth of samples.
        let mut rng = crate::testing::TestRng::seeded(0x2545_F491_4F6C_DD1D);
        for _ in 0..2000 {
            let len = 1 + rng.below(300);
            let garbage = rng.bytes(len);
            let before = out.len();
            if let Ok(n) = dec.decode(&garbage, &mut out) {
                assert_eq!(out.len() - before, n);
                assert!(n <= MAX_PACKET_SAMPLES);
            } else {
                assert_eq!(out.len(), before);
            }
            out.clear();
        }
    }

    #[test]
    fn plc_and_fec_produce_one_frame() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let input = sine(440.0, 8000.0, FRAME_SAMPLES * 10);
        let packets: Vec<Vec<u8>> = input
            .chunks(FRAME_SAMPLES)
            .map(|f| enc.encode_20ms(f).unwrap())
            .collect();
        let mut out = Vec::new();
        // Loss before anything was received.
        assert_eq!(dec.decode_lost(&mut out).unwrap(), FRAME_SAMPLES);
        for p in &packets[..5] {
            dec.decode(p, &mut out).unwrap();
        }
        assert_eq!(dec.decode_lost(&mut out).unwrap(), FRAME_SAMPLES);
        // Packet 6 lost, recovered from packet 7's FEC, then packet 7 decoded normally.
        assert_eq!(dec.decode_fec(&packets[7], &mut out).unwrap(), FRAME_SAMPLES);
        assert_eq!(dec.decode(&packets[7], &mut out).unwrap(), FRAME_SAMPLES);
        assert_eq!(out.len(), 9 * FRAME_SAMPLES);
    }

    #[test]
    fn encode_prompt_pads_and_flushes() {
        assert!(encode_prompt(&[]).unwrap().is_empty());
        let lookahead = OpusEncoder::new().unwrap().lookahead_samples();
        assert!(lookahead > 0 && lookahead < FRAME_SAMPLES);
        for len in [1, 959, 960, 961, FRAME_SAMPLES * 3, 48000 + 17] {
            let pcm = sine(1000.0, 8000.0, len);
            let packets = encode_prompt(&pcm).unwrap();
            assert_eq!(
                packets.len(),
                (len + lookahead).div_ceil(FRAME_SAMPLES),
                "len {len}"
            );
            let mut dec = OpusDecoder::new().unwrap();
            let mut out = Vec::new();
            for p in &packets {
                assert!(!p.is_empty() && p.len() < 200);
                assert_eq!(dec.decode(p, &mut out).unwrap(), FRAME_SAMPLES);
            }
        }
    }
}
