//! The speech dev set shared by `tests/speech_roundtrip.rs` and `benches/speech.rs`: a two-option
//! question's answer vocabulary, off-topic replies, every local TTS voice, and the telephone
//! channel (8 kHz, G.711 µ-law, back to 16 kHz) the answers travel through.

#![allow(dead_code)]

use sip_assistant::media::{g711, resample};
use sip_assistant::speech::espeak::Espeak;
use sip_assistant::speech::flite::FliteSynthesizer;
use sip_assistant::speech::{Pcm, Phrase, RecognitionContext, SynthRequest, Synthesizer};

/// Option 0 means yes, option 1 means no.
pub const YES: &[&str] = &[
    "yes",
    "yeah",
    "yep",
    "confirm",
    "yes I confirm",
    "okay",
    "sure",
    "correct",
];
pub const NO: &[&str] = &["no", "nope", "cancel", "never mind", "stop", "no thanks"];
/// Replies that must not be taken for an option. The first four use only words of the grammar's
/// filler loop; the others use words outside it, so the score threshold has to catch them.
pub const OFF_TOPIC: &[&str] = &[
    "maybe later",
    "what time is it",
    "who is this",
    "call me tomorrow",
    "the weather is nice",
    "send me an email",
    "my car is red",
    "wrong number",
];

pub fn context() -> RecognitionContext {
    let mut phrases = Vec::new();
    for (option, list) in [YES, NO].iter().enumerate() {
        for text in *list {
            phrases.push(Phrase {
                text: (*text).into(),
                option,
            });
        }
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
