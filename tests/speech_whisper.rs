//! The embedded whisper.cpp engine (`--features whisper`) with tiny.en converted from the speech
//! venv's CTranslate2 model (`tests/support/whisper_model.sh`, which `.ci/dev test` runs): the dev
//! set of `tests/speech_roundtrip.rs` (every local voice, G.711, cut by the endpointer) decoded by
//! Whisper and matched by the built-in matcher; silence; and the errors of a wrong configuration.
//!
//! `cargo test --features whisper --test speech_whisper -- --nocapture` prints the figures.

#![cfg(feature = "whisper")]

#[path = "support/speech_devset.rs"]
mod devset;
#[path = "support/speech_servers.rs"]
mod speech_servers;

use std::sync::OnceLock;

use sip_assistant::call::ChoiceOption;
use sip_assistant::choice::{match_answer, Answer, Decision, MatchSettings};
use sip_assistant::config::WhisperConfig;
use sip_assistant::speech::vad::{Endpointer, VadConfig, VadEvent};
use sip_assistant::speech::{Recognition, RecognitionContext, Recognizer, SpeechError, WhisperRecognizer};

/// One recognizer for the whole file: the model loads once, as in the service.
fn whisper() -> &'static WhisperRecognizer {
    static R: OnceLock<WhisperRecognizer> = OnceLock::new();
    R.get_or_init(|| {
        let config = WhisperConfig {
            model: Some(speech_servers::whisper_model()),
            ..WhisperConfig::default()
        };
        WhisperRecognizer::new(&config).expect("load the ggml model")
    })
}

/// What became of one reply.
#[derive(Debug, PartialEq)]
enum Outcome {
    Option(usize),
    /// Heard, and the matcher found no answer in it (or the engine heard nothing).
    NoMatch(Option<String>),
    /// The endpointer found no complete utterance.
    NoSpeech,
}

/// The dev set's question as options for the built-in matcher.
fn options() -> Vec<ChoiceOption> {
    [devset::YES, devset::NO]
        .iter()
        .map(|list| ChoiceOption {
            value: list[0].into(),
            synonyms: list[1..].iter().map(|s| (*s).into()).collect(),
            dtmf: None,
        })
        .collect()
}

fn decide(r: Recognition) -> Outcome {
    match r {
        Recognition::Heard(alternatives) => {
            let said = alternatives[0].transcript.clone();
            let answer = Answer {
                alternatives,
                digits: String::new(),
            };
            match match_answer(&answer, &options(), &MatchSettings::default()) {
                Decision::Matched { option, .. } => Outcome::Option(option),
                Decision::NoMatch { .. } => Outcome::NoMatch(Some(said)),
            }
        }
        Recognition::NoMatch { transcript } => Outcome::NoMatch(transcript),
        Recognition::Rejected { heard } => Outcome::NoMatch(heard),
    }
}

/// Feed `audio` in 20 ms packets through the endpointer into Whisper, as the call script does.
fn listen(r: &dyn Recognizer, ctx: &RecognitionContext, audio: &[i16]) -> Outcome {
    let mut ep = Endpointer::new(VadConfig::default());
    let mut utterance = None;
    for packet in audio.chunks(320) {
        ep.push(packet);
        while let Some(ev) = ep.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => {
                    let mut u = smol::block_on(r.start(ctx)).expect("start");
                    smol::block_on(u.push(&audio)).expect("push");
                    utterance = Some(u);
                }
                VadEvent::Audio(audio) => {
                    let u = utterance.as_mut().expect("audio only inside an utterance");
                    smol::block_on(u.push(&audio)).expect("push");
                }
                VadEvent::SpeechEnd { .. } => {
                    let u = utterance.take().expect("end only after start");
                    return decide(smol::block_on(u.finish()).expect("finish"));
                }
                VadEvent::NoSpeechTimeout { .. } => return Outcome::NoSpeech,
            }
        }
    }
    Outcome::NoSpeech
}

/// Half a second of quiet line noise, the reply, then 1.5 s of noise.
fn on_the_line(speech: &[i16], seed: u64) -> Vec<i16> {
    let mut audio = devset::noise(8000, 60, seed);
    audio.extend_from_slice(speech);
    audio.extend(devset::noise(24_000, 60, seed + 1));
    audio
}

#[test]
fn dev_set_answers_are_recognised_and_off_topic_replies_rejected_over_g711() {
    let r = whisper();
    let ctx = devset::context();
    let (mut answers, mut right, mut off, mut rejected, mut no_speech) = (0, 0, 0, 0, 0);
    let (mut wrong, mut accepted) = (Vec::new(), Vec::new());
    for (seed, (label, tts)) in devset::voices().into_iter().enumerate() {
        for (option, list) in [devset::YES, devset::NO].into_iter().enumerate() {
            for text in list {
                let audio = on_the_line(&devset::telephone(&devset::say(tts.as_ref(), text)), seed as u64);
                answers += 1;
                match listen(r, &ctx, &audio) {
                    Outcome::Option(o) if o == option => right += 1,
                    Outcome::NoSpeech => {
                        no_speech += 1;
                        wrong.push(format!("{label} {text:?}: no speech"));
                    }
                    other => wrong.push(format!("{label} {text:?}: {other:?}")),
                }
            }
        }
        for text in devset::OFF_TOPIC {
            let audio = on_the_line(&devset::telephone(&devset::say(tts.as_ref(), text)), seed as u64);
            off += 1;
            match listen(r, &ctx, &audio) {
                Outcome::NoMatch(_) => rejected += 1,
                Outcome::NoSpeech => {
                    no_speech += 1;
                    wrong.push(format!("{label} {text:?}: no speech"));
                }
                Outcome::Option(o) => accepted.push(format!("{label} {text:?} as option {o}")),
            }
        }
    }
    println!("FIGURE whisper answers right: {right}/{answers}; off-topic rejected: {rejected}/{off}; no speech found: {no_speech}");
    println!("missed answers: {wrong:?}");
    println!("accepted off-topic: {accepted:?}");
    // Measured here: 76/84 right (90 %; the misses are flite voices misheard: "yep" as "yet",
    // "correct" as "direct", ...), 47/48 rejected (98 %), flite kal's "no" too short for the
    // endpointer. Asserted a few replies below (85 %, 90 %): whisper.cpp's arithmetic differs
    // slightly between CPUs (SIMD paths), which can flip a borderline reply.
    assert!(no_speech <= 1, "the endpointer lost replies: {wrong:?}");
    assert!(
        right * 100 >= answers * 85,
        "only {right}/{answers} answers right: {wrong:?}"
    );
    assert!(
        rejected * 100 >= off * 90,
        "only {rejected}/{off} off-topic replies rejected: {accepted:?}"
    );
}

#[test]
fn silence_is_nothing_heard() {
    let r = whisper();
    let ctx = devset::context();
    // Through the endpointer, line noise never reaches Whisper.
    assert_eq!(
        listen(r, &ctx, &devset::noise(16_000 * 3, 60, 9)),
        Outcome::NoSpeech
    );
    // Handed to Whisper directly (a click that opened an utterance, then nothing), the guards
    // still report nothing heard rather than invented words.
    for audio in [vec![0i16; 16_000], devset::noise(16_000 * 2, 60, 3), Vec::new()] {
        let got = smol::block_on(async {
            let mut u = r.start(&ctx).await?;
            u.push(&audio).await?;
            u.finish().await
        })
        .expect("decode");
        assert!(
            matches!(decide(got.clone()), Outcome::NoMatch(_)),
            "{} samples of quiet gave {got:?}",
            audio.len()
        );
    }
}

#[test]
fn a_wrong_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = WhisperConfig {
        model: Some(dir.path().join("ggml-tiny.en.bin")),
        ..WhisperConfig::default()
    };
    let e = WhisperRecognizer::probe(&missing).expect_err("no file");
    assert!(matches!(e, SpeechError::Unavailable { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("speech.whisper.model = ") && text.contains("ct2_whisper_to_ggml.py"),
        "{text}"
    );

    let not_ggml = dir.path().join("model.bin");
    std::fs::write(&not_ggml, b"\x06\x00\x00\x00WhisperSpec").expect("write");
    let e = WhisperRecognizer::new(&WhisperConfig {
        model: Some(not_ggml),
        ..WhisperConfig::default()
    })
    .expect_err("CTranslate2 file");
    assert!(e.to_string().contains("not a ggml Whisper model"), "{e}");

    let e = WhisperRecognizer::probe(&WhisperConfig::default()).expect_err("unset");
    assert!(e.to_string().contains("speech.whisper.model is not set"), "{e}");

    // tiny.en is English only: German is refused at start-up and per request, saying why.
    let model = speech_servers::whisper_model();
    let german = WhisperConfig {
        model: Some(model.clone()),
        language: Some("de".into()),
        ..WhisperConfig::default()
    };
    let e = WhisperRecognizer::new(&german).expect_err("English-only model");
    assert!(
        matches!(e, SpeechError::Invalid(_)) && e.to_string().contains("English-only"),
        "{e}"
    );
    let ctx = RecognitionContext {
        language: Some("de-DE".into()),
        ..devset::context()
    };
    let e = smol::block_on(whisper().start(&ctx))
        .map(|_| ())
        .expect_err("German request");
    assert!(e.to_string().contains("English-only"), "{e}");

    let ok = WhisperRecognizer::probe(&WhisperConfig {
        model: Some(model),
        ..WhisperConfig::default()
    })
    .expect("probe the real model");
    println!("probe: {ok}");
    assert!(ok.contains("tiny.en (English only)"), "{ok}");
}
