//! The speech dev set shared by `tests/interop/speech_roundtrip.rs` and `benches/speech.rs`: a two-option
//! question's answer vocabulary, off-topic replies, every local TTS voice, and the telephone
//! channel (8 kHz, G.711 µ-law, back to 16 kHz) the answers travel through.

#![allow(dead_code)]

use sip_assistant::media::{g711, resample};
use sip_assistant::speech::espeak::Espeak;
use sip_assistant::speech::flite::FliteSynthesizer;
use sip_assistant::speech::{Pcm, Phrase, RecognitionContext, SynthRequest, Synthesizer};

/// Option 0 means yes, option 1 means no. `YES`, `NO` and `OFF_TOPIC` are the tuning half of the
/// dev set (thresholds were chosen on them); the `*_HELD` lists are the held-out half, never used to
/// choose anything, so their figures say how the rejection generalises to replies it was not tuned
/// on. Every answer of both halves is in the grammar.
pub const YES: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "confirm",
    "yes I confirm",
    "okay",
    "sure",
    "correct",
    "yes please",
    "that's right",
];
pub const NO: &[&str] = &[
    "no",
    "nope",
    "cancel",
    "never mind",
    "stop",
    "no thanks",
    "no way",
];
/// Replies that must not be taken for an option: questions, small talk, hesitations, and
/// replies that share sounds or words with an answer ("yesterday", "no idea", "cancel what").
pub const OFF_TOPIC: &[&str] = &[
    "maybe later",
    "what time is it",
    "who is this",
    "call me tomorrow",
    "the weather is nice",
    "send me an email",
    "my car is red",
    "wrong number",
    "what",
    "hello",
    "hmm",
    "yesterday",
    "no idea",
    "cancel what",
    "I'm busy right now",
    "can you repeat that",
];
/// Held-out answers (option 0, option 1) and off-topic replies.
pub const YES_HELD: &[&str] = &[
    "of course",
    "absolutely",
    "go ahead",
    "alright",
    "certainly",
    "yes indeed",
    "agreed",
];
pub const NO_HELD: &[&str] = &[
    "not now",
    "please cancel",
    "decline",
    "no no",
    "no thank you",
    "negative",
    "absolutely not",
];
pub const OFF_TOPIC_HELD: &[&str] = &[
    "who",
    "sorry?",
    "noted",
    "I don't know",
    "not sure",
    "hang on a second",
    "excuse me",
    "what is this about",
    "I will call you back",
    "good morning",
    "huh",
    "pardon",
    "speak up please",
    "is this a robot",
    "I'm driving",
    "the meeting is at noon",
    "hold on",
    "whatever",
    "nobody is home",
    "one moment please",
    "thanks for calling",
    "who are you",
];

/// Which half of the dev set a reply belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Tune,
    Held,
}

/// One reply of the dev set: its text, the option it means (`None`: off-topic) and its half.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub text: &'static str,
    pub option: Option<usize>,
    pub half: Half,
}

/// Every reply of both halves, tuning half first.
pub fn replies() -> Vec<Reply> {
    let mut out = Vec::new();
    for (half, yes, no, off) in [
        (Half::Tune, YES, NO, OFF_TOPIC),
        (Half::Held, YES_HELD, NO_HELD, OFF_TOPIC_HELD),
    ] {
        for (option, list) in [yes, no].into_iter().enumerate() {
            out.extend(list.iter().map(|&text| Reply {
                text,
                option: Some(option),
                half,
            }));
        }
        out.extend(off.iter().map(|&text| Reply {
            text,
            option: None,
            half,
        }));
    }
    out
}

/// The answer lists of each option, both halves.
pub fn options() -> [Vec<&'static str>; 2] {
    [
        YES.iter().chain(YES_HELD).copied().collect(),
        NO.iter().chain(NO_HELD).copied().collect(),
    ]
}

/// The dev set's question as a call's options (both halves): the first answer is the value,
/// the rest synonyms.
#[allow(dead_code)]
pub fn choice_options() -> Vec<sip_assistant::call::ChoiceOption> {
    options()
        .iter()
        .map(|list| sip_assistant::call::ChoiceOption {
            value: list[0].into(),
            synonyms: list[1..].iter().map(|s| (*s).into()).collect(),
            dtmf: None,
        })
        .collect()
}

/// The option a call would pick from `recognition`: any transcript, in or out of the grammar,
/// goes to the built-in matcher (spoken option numbers on, the default); a rejection picks none.
#[allow(dead_code)]
pub fn option_picked(recognition: &sip_assistant::speech::Recognition) -> Option<usize> {
    use sip_assistant::choice::{match_answer, Answer, Decision, MatchSettings};
    let alternatives = recognition.alternatives();
    if alternatives.is_empty() {
        return None;
    }
    let settings = MatchSettings {
        spoken_numbers: true,
        min_confidence: None,
    };
    let answer = Answer {
        alternatives,
        digits: String::new(),
        attempt: 0,
    };
    match match_answer(&answer, &choice_options(), &settings) {
        Decision::Matched { option, .. } => Some(option),
        Decision::NoMatch { .. } => None,
    }
}

/// The recognition context of the dev set's question, as a call builds it with the default
/// `script.spoken_numbers = true`: every answer of both halves, plus the option numbers
/// ("one", "option two", "the second one", ...).
pub fn context() -> RecognitionContext {
    let mut phrases = Vec::new();
    for (option, list) in options().iter().enumerate() {
        for text in list {
            phrases.push(Phrase::answer(*text, option));
        }
    }
    for (option, said) in sip_assistant::choice::number_phrases(2) {
        phrases.extend(said.into_iter().map(|text| Phrase {
            text,
            option,
            spoken_number: true,
        }));
    }
    RecognitionContext {
        language: None,
        phrases,
    }
}

/// Every local voice: (label, engine, voice).
pub fn voices() -> Vec<(String, Box<dyn Synthesizer>)> {
    let mut out: Vec<(String, Box<dyn Synthesizer>)> = Vec::new();
    for v in sip_assistant::speech::flite::known_voices() {
        out.push((format!("flite/{v}"), Box::new(FliteSynthesizer::new(v))));
    }
    for v in ["en-us", "en-gb"] {
        out.push((format!("espeak/{v}"), Box::new(Espeak::new("espeak-ng", v))));
    }
    out
}

pub fn say(tts: &dyn Synthesizer, text: &str) -> Pcm {
    let req = SynthRequest {
        text: text.into(),
        voice: None,
        language: None,
    };
    smol::block_on(tts.synthesize(&req)).unwrap_or_else(|e| panic!("{} cannot say {text:?}: {e}", tts.name()))
}

/// The telephone path: to 8 kHz, µ-law encode and decode, up to the recogniser's 16 kHz.
pub fn telephone(pcm: &Pcm) -> Vec<i16> {
    let narrow = resample::resample_all(pcm.rate, 8000, &pcm.samples).expect("supported rate");
    let mut bytes = Vec::new();
    g711::encode(g711::Law::Ulaw, &narrow, &mut bytes);
    let mut decoded = Vec::new();
    g711::decode(g711::Law::Ulaw, &bytes, &mut decoded);
    resample::resample_all(8000, 16_000, &decoded).expect("supported rate")
}

/// Deterministic low-level noise (xorshift), `amplitude` peak.
pub fn noise(len: usize, amplitude: i16, seed: u64) -> Vec<i16> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            ((unit * 2.0 - 1.0) * f64::from(amplitude)) as i16
        })
        .collect()
}

/// A reply as the recogniser's endpointer receives it: half a second of quiet line noise, the
/// reply through the telephone channel, then 1.5 s of noise.
pub fn on_the_line(speech: &[i16], seed: u64) -> Vec<i16> {
    let mut audio = noise(8000, 60, seed);
    audio.extend_from_slice(speech);
    audio.extend(noise(24_000, 60, seed + 1));
    audio
}

/// `pcm` through `sox` with `effect` (e.g. `["tempo", "1.15"]`); `None` when sox is missing or
/// fails. For the benchmark's robustness figures: other speaking rates, pitches and levels.
pub fn sox(pcm: &Pcm, effect: &[&str]) -> Option<Pcm> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let rate = pcm.rate.to_string();
    let mut child = Command::new("sox")
        .args([
            "-q", "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", &rate, "-",
        ])
        .args(["-t", "raw", "-"])
        .args(effect)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let bytes: Vec<u8> = pcm.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut stdin = child.stdin.take()?;
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    Some(Pcm {
        rate: pcm.rate,
        samples: out
            .stdout
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
    })
}
