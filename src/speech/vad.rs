//! End of speech: a sans-IO endpointer around the `earshot` voice-activity detector.
//!
//! Feed it the caller's 16 kHz audio with [`Endpointer::push`] and drain [`Endpointer::poll_event`]
//! until it returns `None`. Its clock is the audio itself (16 samples = 1 ms since the endpointer
//! was created or reset): the media plane feeds silence for lost packets, so audio time and wall
//! time agree. One endpointer finds one utterance; [`Endpointer::reset`] re-arms it.
//!
//! ```no_run
//! use sip_assistant::speech::vad::{Endpointer, VadSettings, VadEvent};
//! let mut ep = Endpointer::new(VadSettings::default());
//! # let frame = vec![0i16; 320];
//! ep.push(&frame);
//! while let Some(ev) = ep.poll_event() {
//!     match ev {
//!         VadEvent::SpeechStart { audio, .. } | VadEvent::Audio(audio) => { /* utterance.push(&audio) */ }
//!         VadEvent::SpeechEnd { .. } => { /* utterance.finish() */ }
//!         VadEvent::NoSpeechTimeout { .. } => { /* re-prompt or give up */ }
//!     }
//! }
//! ```
//!
//! Silence never reaches a recognizer: audio is only emitted after `min_speech_ms` of voice
//! (shorter blips are dropped), preceded by `pre_roll_ms` so the first syllable is kept; pauses
//! are held back and emitted only if speech resumes, and at the end only `tail_ms` of the
//! trailing silence is sent.

use std::collections::VecDeque;
use std::time::Duration;

/// Samples per detector frame (16 ms at 16 kHz), fixed by earshot.
const FRAME: usize = 256;
const RATE: u64 = 16_000;

/// Endpointer tuning; `[speech.vad]` in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VadSettings {
    /// Silence after speech that ends the utterance.
    pub hangover_ms: u32,
    /// Voice shorter than this is a blip, not speech.
    pub min_speech_ms: u32,
    /// An utterance is cut here.
    pub max_utterance_ms: u32,
    /// Without speech for this long, [`VadEvent::NoSpeechTimeout`]; `None` = never (the call
    /// script's `timeout_seconds` usually governs).
    pub no_speech_timeout_ms: Option<u32>,
    /// Audio kept from before speech was detected.
    pub pre_roll_ms: u32,
    /// Trailing silence passed on at the end.
    pub tail_ms: u32,
    /// earshot score at or above which a frame is voice.
    pub threshold: f32,
    /// RMS below which a frame is silence whatever its score (100 ≈ -50 dBFS).
    pub energy_floor: f64,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            hangover_ms: 500,
            // 200 ms lost quick one-word answers (Piper's "sure" has ~240 ms of voice, of which
            // earshot scores ~180 ms as voice); 150 ms keeps them and, on the dev set, rejects
            // no more noise.
            min_speech_ms: 150,
            max_utterance_ms: 10_000,
            no_speech_timeout_ms: None,
            pre_roll_ms: 300,
            tail_ms: 200,
            threshold: 0.5,
            energy_floor: 100.0,
        }
    }
}

/// Why an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `hangover_ms` of silence.
    Silence,
    /// `max_utterance_ms` reached.
    MaxLength,
}

/// What the endpointer found. `at` is audio time since the start.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Speech began (`at` = its first voiced frame); `audio` is the pre-roll and the speech so far.
    SpeechStart { at: Duration, audio: Vec<i16> },
    /// More of the utterance.
    Audio(Vec<i16>),
    /// The utterance is over (`at` = when that was decided).
    SpeechEnd { at: Duration, reason: EndReason },
    /// No speech within `no_speech_timeout_ms`.
    NoSpeechTimeout { at: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for voice.
    Idle,
    /// Voice seen since `start` (sample index), not yet `min_speech_ms` of it.
    Candidate {
        start: u64,
        voiced: u64,
        silent_run: u64,
    },
    /// In an utterance that began at `start`; `silent_run` samples of trailing silence held back.
    Speech { start: u64, silent_run: u64 },
    /// Utterance over or timed out; nothing more until reset.
    Done,
}

/// The endpointer; see the module docs.
pub struct Endpointer {
    cfg: VadSettings,
    detector: Box<earshot::Detector>,
    /// Partial frame not yet scored.
    partial: Vec<i16>,
    /// Audio of the last `pre_roll_ms` before a candidate (Idle), or the candidate's audio.
    history: VecDeque<i16>,
    /// Silence held back during a pause in speech.
    held: Vec<i16>,
    /// Samples scored so far.
    clock: u64,
    state: State,
    events: VecDeque<VadEvent>,
}

fn ms_to_samples(ms: u32) -> u64 {
    u64::from(ms) * RATE / 1000
}

fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / frame.len() as f64).sqrt()
}

fn at(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / RATE)
}

impl Endpointer {
    pub fn new(cfg: VadSettings) -> Self {
        Self {
            cfg,
            detector: earshot::Detector::default_boxed(),
            partial: Vec::with_capacity(FRAME),
            history: VecDeque::new(),
            held: Vec::new(),
            clock: 0,
            state: State::Idle,
            events: VecDeque::new(),
        }
    }

    /// Forget everything and listen for a new utterance; the clock restarts at zero.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.partial.clear();
        self.history.clear();
        self.held.clear();
        self.clock = 0;
        self.state = State::Idle;
        self.events.clear();
    }

    /// Audio time consumed so far.
    pub fn now(&self) -> Duration {
        at(self.clock)
    }

    /// Whether the utterance has ended (or timed out).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feed 16 kHz mono audio of any length.
    pub fn push(&mut self, pcm16k: &[i16]) {
        let mut rest = pcm16k;
        while !rest.is_empty() && self.state != State::Done {
            let take = (FRAME - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME {
                let frame = std::mem::take(&mut self.partial);
                self.frame(&frame);
                self.partial = frame;
                self.partial.clear();
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<VadEvent> {
        self.events.pop_front()
    }

    fn frame(&mut self, frame: &[i16]) {
        // earshot's score decays over ~200 ms after a sound stops; a frame without energy is
        // silence whatever the score says (so a click is not stretched into speech).
        let score = self.detector.predict_i16(frame);
        let voiced = score >= self.cfg.threshold && rms(frame) >= self.cfg.energy_floor;
        let n = FRAME as u64;
        let frame_start = self.clock;
        self.clock += n;
        match self.state {
            State::Done => {}
            State::Idle => {
                if voiced {
                    self.state = State::Candidate {
                        start: frame_start,
                        voiced: n,
                        silent_run: 0,
                    };
                    // Keep pre-roll plus this frame.
                    self.history.extend(frame);
                    self.maybe_confirm();
                } else {
                    self.history.extend(frame);
                    let keep = ms_to_samples(self.cfg.pre_roll_ms) as usize;
                    while self.history.len() > keep {
                        self.history.pop_front();
                    }
                    if let Some(limit) = self.cfg.no_speech_timeout_ms {
                        if self.clock >= ms_to_samples(limit) {
                            self.events
                                .push_back(VadEvent::NoSpeechTimeout { at: at(self.clock) });
                            self.state = State::Done;
                        }
                    }
                }
            }
            State::Candidate {
                start,
                voiced: v,
                silent_run,
            } => {
                self.history.extend(frame);
                if voiced {
                    self.state = State::Candidate {
                        start,
                        voiced: v + n,
                        silent_run: 0,
                    };
                    self.maybe_confirm();
                } else if silent_run + n >= ms_to_samples(self.cfg.min_speech_ms.max(100)) {
                    // A blip: back to waiting, keeping only the pre-roll window.
                    self.state = State::Idle;
                    let keep = ms_to_samples(self.cfg.pre_roll_ms) as usize;
                    while self.history.len() > keep {
                        self.history.pop_front();
                    }
                } else {
                    self.state = State::Candidate {
                        start,
                        voiced: v,
                        silent_run: silent_run + n,
                    };
                }
            }
            State::Speech { start, silent_run } => {
                if voiced {
                    if !self.held.is_empty() {
                        let mut audio = std::mem::take(&mut self.held);
                        audio.extend_from_slice(frame);
                        self.events.push_back(VadEvent::Audio(audio));
                    } else {
                        self.events.push_back(VadEvent::Audio(frame.to_vec()));
                    }
                    self.state = State::Speech { start, silent_run: 0 };
                } else {
                    self.held.extend_from_slice(frame);
                    let silent_run = silent_run + n;
                    self.state = State::Speech { start, silent_run };
                    if silent_run >= ms_to_samples(self.cfg.hangover_ms) {
                        self.end(EndReason::Silence);
                        return;
                    }
                }
                if self.clock - start >= ms_to_samples(self.cfg.max_utterance_ms) {
                    self.end(EndReason::MaxLength);
                }
            }
        }
    }

    fn maybe_confirm(&mut self) {
        if let State::Candidate { start, voiced, .. } = self.state {
            if voiced >= ms_to_samples(self.cfg.min_speech_ms) {
                let audio: Vec<i16> = self.history.drain(..).collect();
                self.events
                    .push_back(VadEvent::SpeechStart { at: at(start), audio });
                self.state = State::Speech { start, silent_run: 0 };
            }
        }
    }

    fn end(&mut self, reason: EndReason) {
        let tail = (ms_to_samples(self.cfg.tail_ms) as usize).min(self.held.len());
        if tail > 0 {
            self.events.push_back(VadEvent::Audio(self.held[..tail].to_vec()));
        }
        self.held.clear();
        self.events.push_back(VadEvent::SpeechEnd {
            at: at(self.clock),
            reason,
        });
        self.state = State::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::{SynthRequest, Synthesizer};

    fn silence(ms: u64) -> Vec<i16> {
        vec![0; (ms * 16) as usize]
    }

    /// Feed in 20 ms packets; collect events.
    fn run(ep: &mut Endpointer, audio: &[i16]) -> Vec<VadEvent> {
        let mut out = Vec::new();
        for chunk in audio.chunks(320) {
            ep.push(chunk);
            while let Some(e) = ep.poll_event() {
                out.push(e);
            }
        }
        out
    }

    fn speech(text: &str) -> Vec<i16> {
        let tts = crate::speech::espeak::Espeak::new("espeak-ng", "en-us");
        let req = SynthRequest {
            text: text.into(),
            voice: None,
            language: None,
        };
        let pcm = smol::block_on(tts.synthesize(&req)).expect("espeak-ng installed");
        crate::media::resample::resample_all(pcm.rate, 16_000, &pcm.samples).expect("rate")
    }

    /// Voiced extent of a clip by energy (the reference for timing asserts).
    fn voiced_extent(clip: &[i16]) -> (usize, usize) {
        let loud = |s: &i16| s.unsigned_abs() > 1000;
        let first = clip.iter().position(loud).unwrap_or(0);
        let last = clip.iter().rposition(loud).unwrap_or(0);
        (first, last)
    }

    fn noise(len: usize, amplitude: f64, seed: u64) -> Vec<i16> {
        let mut rng = crate::testing::TestRng::seeded(seed);
        (0..len).map(|_| (rng.signed_unit() * amplitude) as i16).collect()
    }

    #[test]
    fn silence_and_noise_never_start_speech() {
        let mut ep = Endpointer::new(VadSettings::default());
        let mut audio = silence(2000);
        audio.extend(noise(16_000 * 2, 300.0, 7));
        let events = run(&mut ep, &audio);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn no_speech_timeout_fires_once_at_its_time() {
        let mut ep = Endpointer::new(VadSettings {
            no_speech_timeout_ms: Some(1000),
            ..VadSettings::default()
        });
        let events = run(&mut ep, &silence(3000));
        assert_eq!(events.len(), 1, "{events:?}");
        let VadEvent::NoSpeechTimeout { at } = events[0] else {
            panic!("{events:?}")
        };
        assert!((1000..1020).contains(&(at.as_millis() as u64)), "{at:?}");
        assert!(ep.is_done());
    }

    #[test]
    #[ignore = "interop tier: needs flite (speech to cut) (cargo test -- --include-ignored; .ci/dev test)"]
    fn real_speech_in_noise_is_cut_with_pre_roll_and_hangover() {
        let words = speech("yes I confirm");
        let (v0, v1) = voiced_extent(&words);
        let lead = 16_000; // 1 s before
        let mut audio = noise(lead, 200.0, 1);
        audio.extend(
            words
                .iter()
                .zip(noise(words.len(), 200.0, 2))
                .map(|(a, b)| a.saturating_add(b)),
        );
        audio.extend(noise(16_000 * 2, 200.0, 3));
        let mut ep = Endpointer::new(VadSettings::default());
        let events = run(&mut ep, &audio);
        let VadEvent::SpeechStart {
            at: start,
            audio: first,
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        let true_start_ms = ((lead + v0) / 16) as i64;
        let true_end_ms = ((lead + v1) / 16) as i64;
        assert!(
            (start.as_millis() as i64 - true_start_ms).abs() < 150,
            "start {start:?} vs {true_start_ms} ms"
        );
        // pre-roll: the audio handed over begins ~300 ms before the detected start
        assert!(first.len() >= 300 * 16, "{}", first.len());
        let (end, reason) = events
            .iter()
            .find_map(|e| match e {
                VadEvent::SpeechEnd { at, reason } => Some((*at, *reason)),
                _ => None,
            })
            .expect("speech end");
        assert_eq!(reason, EndReason::Silence);
        let lag = end.as_millis() as i64 - true_end_ms;
        assert!(
            (400..800).contains(&lag),
            "end {end:?}, true end {true_end_ms} ms, lag {lag}"
        );
        let total: usize = events
            .iter()
            .map(|e| match e {
                VadEvent::SpeechStart { audio, .. } | VadEvent::Audio(audio) => audio.len(),
                _ => 0,
            })
            .sum();
        // speech + pre-roll + at most the tail, far less than the whole 4 s
        let spoken = v1 - v0;
        assert!(
            total >= spoken && total <= spoken + 16 * (300 + 200 + 200),
            "{total} vs {spoken}"
        );
        assert!(matches!(events.last(), Some(VadEvent::SpeechEnd { .. })));
        assert!(ep.is_done());
    }

    #[test]
    #[ignore = "interop tier: needs flite (speech to cut) (cargo test -- --include-ignored; .ci/dev test)"]
    fn short_blip_is_ignored_and_long_speech_is_cut() {
        let words = speech("yes");
        // a 64 ms click of speech is shorter than min_speech_ms
        let (v0, _) = voiced_extent(&words);
        let mut audio = silence(500);
        audio.extend_from_slice(&words[v0..v0 + 64 * 16]);
        audio.extend(silence(1000));
        let mut ep = Endpointer::new(VadSettings::default());
        assert!(run(&mut ep, &audio).is_empty());

        let long = speech("one two three four five six seven eight nine ten eleven twelve thirteen fourteen");
        let mut ep = Endpointer::new(VadSettings {
            max_utterance_ms: 1500,
            ..VadSettings::default()
        });
        let events = run(&mut ep, &long);
        let end = events.iter().find_map(|e| match e {
            VadEvent::SpeechEnd { at, reason } => Some((*at, *reason)),
            _ => None,
        });
        let (at, reason) = end.expect("cut");
        assert_eq!(reason, EndReason::MaxLength);
        let VadEvent::SpeechStart { at: start, .. } = events[0] else {
            panic!()
        };
        let len = at.saturating_sub(start).as_millis();
        assert!((1500..1520).contains(&len), "{len}");
    }

    #[test]
    #[ignore = "interop tier: needs flite (speech to cut) (cargo test -- --include-ignored; .ci/dev test)"]
    fn reset_rearms_and_partial_frames_accumulate() {
        let words = speech("no");
        let mut audio = silence(300);
        audio.extend(&words);
        audio.extend(silence(1000));
        let mut ep = Endpointer::new(VadSettings::default());
        // odd-sized pushes
        let mut events = Vec::new();
        for chunk in audio.chunks(97) {
            ep.push(chunk);
            events.extend(std::iter::from_fn(|| ep.poll_event()));
        }
        assert!(
            matches!(events.first(), Some(VadEvent::SpeechStart { .. })),
            "{events:?}"
        );
        assert!(ep.is_done());
        ep.reset();
        assert_eq!(ep.now(), Duration::ZERO);
        let again = run(&mut ep, &audio);
        assert_eq!(
            again
                .iter()
                .filter(|e| matches!(e, VadEvent::SpeechEnd { .. }))
                .count(),
            1
        );
    }
}
