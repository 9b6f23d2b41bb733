//! Speech benchmark (a program that prints figures; not a timed test).
//!
//! `cargo bench --bench speech`
//!
//! For every local TTS voice: answers recognised right and off-topic replies rejected by
//! PocketSphinx on the dev set of `tests/speech_roundtrip.rs` (G.711 channel, VAD-cut), CPU per
//! recognised reply, end of speech → final result latency, the endpointer's CPU per audio
//! second; per TTS engine, the time to the first audio of a 15-word message (engines render whole
//! messages, so that is the whole rendering) cold and from the prompt cache; and the RSS.
//!
//! When the speech test venv exists (`tests/support/speech_venv.sh`, as `.ci/dev test` builds it),
//! also the Wyoming engines on real servers: wyoming-piper's voice joins the voices, and
//! wyoming-faster-whisper (tiny.en) transcribes the same dev set, its free text matched by the
//! built-in matcher; its CPU is the server's (another process), so wall time is given.

#[path = "../tests/support/speech_devset.rs"]
mod devset;
#[path = "../tests/support/speech_servers.rs"]
mod servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_assistant::call::ChoiceOption;
use sip_assistant::choice::{match_answer, Answer, Decision, MatchSettings};
use sip_assistant::config::WyomingConfig;
use sip_assistant::speech::cache::CachedSynthesizer;
use sip_assistant::speech::pocketsphinx::{PocketSphinx, PocketSphinxSettings};
use sip_assistant::speech::vad::{Endpointer, VadConfig, VadEvent};
use sip_assistant::speech::{Recognition, Recognizer, SynthRequest, Synthesizer, Utterance};
use sip_assistant::speech::{WyomingRecognizer, WyomingSynthesizer};

const MESSAGE: &str =
    "Hello, this is the building system: the boiler in house four reports low water pressure.";

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (USER_HZ = 100 on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (option or None for no match; end of speech → result latency; decode CPU seconds); `None` when
/// the endpointer found no utterance.
fn listen(ps: &PocketSphinx, audio: &[i16], vad_cpu: &mut f64) -> Option<(Option<usize>, Duration, f64)> {
    let ctx = devset::context();
    let mut ep = Endpointer::new(VadConfig::default());
    let mut utterance = None;
    for packet in audio.chunks(320) {
        let c0 = cpu_seconds();
        ep.push(packet);
        *vad_cpu += cpu_seconds() - c0;
        while let Some(ev) = ep.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => {
                    let mut u = smol::block_on(ps.start(&ctx)).ok()?;
                    smol::block_on(u.push(&audio)).ok()?;
                    utterance = Some(u);
                }
                VadEvent::Audio(audio) => {
                    smol::block_on(utterance.as_mut()?.push(&audio)).ok()?;
                }
                VadEvent::SpeechEnd { .. } => {
                    let u = utterance.take()?;
                    let (t0, c0) = (Instant::now(), cpu_seconds());
                    let r = smol::block_on(u.finish()).ok()?;
                    let (latency, cpu) = (t0.elapsed(), cpu_seconds() - c0);
                    let option = match r {
                        Recognition::Heard(alts) => ctx
                            .phrases
                            .iter()
                            .find(|p| p.text.to_lowercase() == alts[0].transcript)
                            .map(|p| p.option),
                        Recognition::NoMatch { .. } => None,
                    };
                    return Some((option, latency, cpu));
                }
                VadEvent::NoSpeechTimeout { .. } => return None,
            }
        }
    }
    None
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

/// The dev set through the endpointer and `stt`, answers matched by the built-in matcher:
/// (right, answers, rejected, off-topic, end of speech → result latencies).
fn free_text_round(
    voices: &[(String, Arc<dyn Synthesizer>)],
    stt: &dyn Recognizer,
) -> (usize, usize, usize, usize, Vec<Duration>) {
    let ctx = devset::context();
    let opts = options();
    let (mut right, mut answers, mut rejected, mut off) = (0, 0, 0, 0);
    let mut latencies = Vec::new();
    for (label, tts) in voices {
        let mut items: Vec<(Option<usize>, &str)> = Vec::new();
        for (option, list) in [devset::YES, devset::NO].into_iter().enumerate() {
            items.extend(list.iter().map(|t| (Some(option), *t)));
        }
        items.extend(devset::OFF_TOPIC.iter().map(|t| (None, *t)));
        let (mut r, mut a, mut rej, mut o) = (0, 0, 0, 0);
        for (i, (expected, text)) in items.into_iter().enumerate() {
            let mut audio = devset::noise(8000, 60, i as u64 + 1);
            audio.extend(devset::telephone(&devset::say(tts.as_ref(), text)));
            audio.extend(devset::noise(24_000, 60, i as u64 + 2));
            let mut ep = Endpointer::new(VadConfig::default());
            let mut utterance: Option<Box<dyn Utterance>> = None;
            let mut got = None;
            'feed: for packet in audio.chunks(320) {
                ep.push(packet);
                while let Some(ev) = ep.poll_event() {
                    match ev {
                        VadEvent::SpeechStart { audio, .. } => {
                            let mut u = match smol::block_on(stt.start(&ctx)) {
                                Ok(u) => u,
                                Err(e) => {
                                    eprintln!("{label} {text:?}: {e}");
                                    break 'feed;
                                }
                            };
                            let _ = smol::block_on(u.push(&audio));
                            utterance = Some(u);
                        }
                        VadEvent::Audio(a) => {
                            if let Some(u) = utterance.as_mut() {
                                let _ = smol::block_on(u.push(&a));
                            }
                        }
                        VadEvent::SpeechEnd { .. } => {
                            if let Some(u) = utterance.take() {
                                let t0 = Instant::now();
                                got = Some(smol::block_on(u.finish()));
                                latencies.push(t0.elapsed());
                            }
                            break 'feed;
                        }
                        VadEvent::NoSpeechTimeout { .. } => break 'feed,
                    }
                }
            }
            let heard = match got {
                Some(Ok(Recognition::Heard(alternatives))) => {
                    let answer = Answer {
                        alternatives,
                        digits: String::new(),
                    };
                    match match_answer(&answer, &opts, &MatchSettings::default()) {
                        Decision::Matched { option, .. } => Some(option),
                        Decision::NoMatch { .. } => None,
                    }
                }
                Some(Err(e)) => {
                    eprintln!("{label} {text:?}: {e}");
                    None
                }
                _ => None,
            };
            match expected {
                Some(x) => {
                    a += 1;
                    r += usize::from(heard == Some(x));
                }
                None => {
                    o += 1;
                    rej += usize::from(heard.is_none());
                }
            }
        }
        println!(
            "{label:<22} {:>14} {:>18}",
            format!("{r}/{a}"),
            format!("{rej}/{o}")
        );
        (right, answers, rejected, off) = (right + r, answers + a, rejected + rej, off + o);
    }
    (right, answers, rejected, off, latencies)
}

/// The Wyoming engines on real servers from the speech venv, when it exists.
fn remote_engines() {
    let Some(venv) = servers::venv_if_present() else {
        println!("\n(no speech venv: run tests/support/speech_venv.sh for the Wyoming figures)");
        return;
    };
    let mut piper = servers::wyoming_piper(&venv);
    let mut whisper = servers::wyoming_faster_whisper(&venv);
    let quick = Duration::from_millis(500);
    for server in [&mut piper, &mut whisper] {
        let addr = server.addr.clone();
        server.wait_ready(Duration::from_secs(120), || {
            smol::block_on(sip_assistant::speech::wyoming::describe(&addr, quick, quick)).is_ok()
        });
    }
    let config = WyomingConfig {
        tts_address: piper.addr.clone(),
        stt_address: whisper.addr.clone(),
        voice: Some("en_US-joe-medium".into()),
        language: Some("en".into()),
        connect_timeout_ms: 2_000,
        request_timeout_ms: 60_000,
    };
    let (Ok(tts), Ok(stt)) = (WyomingSynthesizer::new(&config), WyomingRecognizer::new(&config)) else {
        println!("wyoming engines cannot be configured");
        return;
    };
    let tts: Arc<dyn Synthesizer> = Arc::new(tts);
    let req = SynthRequest {
        text: MESSAGE.into(),
        voice: None,
        language: None,
    };
    let t0 = Instant::now();
    match smol::block_on(tts.synthesize(&req)) {
        Ok(pcm) => println!(
            "\nTTS wyoming-piper (en_US-joe-medium), 15-word message: first audio {:.0} ms (whole rendering, server side), {:.2} s of audio",
            t0.elapsed().as_secs_f64() * 1000.0,
            pcm.duration().as_secs_f64()
        ),
        Err(e) => println!("\nTTS wyoming-piper: {e}"),
    }
    let mut voices: Vec<(String, Arc<dyn Synthesizer>)> = devset::voices()
        .into_iter()
        .map(|(l, t)| (l, Arc::from(t)))
        .collect();
    voices.push(("wyoming-piper/joe".into(), tts.clone()));
    println!(
        "\nSTT wyoming-faster-whisper (tiny.en), free text matched by the built-in matcher, over G.711:"
    );
    println!(
        "{:<22} {:>14} {:>18}",
        "voice", "answers right", "off-topic rejected"
    );
    let (right, answers, rejected, off, mut lat) = free_text_round(&voices, &stt);
    lat.sort();
    let pct = |p: usize| {
        lat.get(lat.len() * p / 100)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "all voices: answers right {right}/{answers} ({:.0} %), off-topic rejected {rejected}/{off} ({:.0} %); end of speech → result p50 {:.0} ms, p95 {:.0} ms (server CPU, 2 cores)",
        100.0 * right as f64 / answers.max(1) as f64,
        100.0 * rejected as f64 / off.max(1) as f64,
        pct(50),
        pct(95)
    );
    // pocketsphinx on the Piper voice too, so every TTS engine's audio meets the embedded STT.
    let ps = PocketSphinx::new(PocketSphinxSettings::default());
    println!("\nSTT pocketsphinx on the wyoming-piper voice:");
    let (right, answers, rejected, off, _) = free_text_round(&voices[voices.len() - 1..], &ps);
    println!("wyoming-piper/joe: answers right {right}/{answers}, off-topic rejected {rejected}/{off}");
}

fn main() {
    let ps = PocketSphinx::new(PocketSphinxSettings::default());
    if let Err(e) = smol::block_on(ps.warm_up()) {
        eprintln!("pocketsphinx cannot start: {e}");
        std::process::exit(1);
    }
    println!(
        "STT pocketsphinx (grammar, reject_threshold {}), answers by each TTS voice over G.711:",
        PocketSphinxSettings::default().reject_threshold
    );
    println!(
        "{:<14} {:>14} {:>18} {:>14} {:>16}",
        "voice", "answers right", "off-topic rejected", "CPU/reply ms", "end→result ms"
    );
    let (mut all_right, mut all_answers, mut all_rej, mut all_off) = (0, 0, 0, 0);
    let (mut vad_cpu, mut audio_secs) = (0.0f64, 0.0f64);
    let mut latencies = Vec::new();
    for (label, tts) in devset::voices() {
        let (mut right, mut answers, mut rejected, mut off) = (0, 0, 0, 0);
        let (mut cpu, mut replies) = (0.0, 0);
        let mut items: Vec<(Option<usize>, &str)> = Vec::new();
        for (option, list) in [devset::YES, devset::NO].into_iter().enumerate() {
            items.extend(list.iter().map(|t| (Some(option), *t)));
        }
        items.extend(devset::OFF_TOPIC.iter().map(|t| (None, *t)));
        for (i, (expected, text)) in items.into_iter().enumerate() {
            let mut audio = devset::noise(8000, 60, i as u64 + 1);
            audio.extend(devset::telephone(&devset::say(tts.as_ref(), text)));
            audio.extend(devset::noise(24_000, 60, i as u64 + 2));
            audio_secs += audio.len() as f64 / 16_000.0;
            let got = listen(&ps, &audio, &mut vad_cpu);
            if let Some((_, latency, c)) = &got {
                cpu += c;
                replies += 1;
                latencies.push(*latency);
            }
            let heard = got.and_then(|(o, _, _)| o);
            match expected {
                Some(o) => {
                    answers += 1;
                    right += usize::from(heard == Some(o));
                }
                None => {
                    off += 1;
                    rejected += usize::from(heard.is_none());
                }
            }
        }
        let mut lat: Vec<_> = latencies.iter().rev().take(replies).copied().collect();
        lat.sort();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or_default();
        println!(
            "{label:<14} {:>14} {:>18} {:>14.1} {:>16.1}",
            format!("{right}/{answers}"),
            format!("{rejected}/{off}"),
            cpu * 1000.0 / replies.max(1) as f64,
            p50.as_secs_f64() * 1000.0
        );
        (all_right, all_answers, all_rej, all_off) = (
            all_right + right,
            all_answers + answers,
            all_rej + rejected,
            all_off + off,
        );
    }
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "all voices: answers right {all_right}/{all_answers} ({:.0} %), off-topic rejected {all_rej}/{all_off} ({:.0} %); end of speech → result p50 {:.1} ms, p95 {:.1} ms",
        100.0 * all_right as f64 / all_answers.max(1) as f64,
        100.0 * all_rej as f64 / all_off.max(1) as f64,
        pct(50),
        pct(95)
    );
    println!(
        "VAD (earshot endpointer): {:.2} ms CPU per audio second (USER_HZ resolution)",
        vad_cpu * 1000.0 / audio_secs.max(1e-9)
    );

    println!(
        "\nTTS, 15-word message ({} words):",
        MESSAGE.split_whitespace().count()
    );
    println!(
        "{:<14} {:>16} {:>14} {:>16} {:>10}",
        "engine", "first audio ms", "audio s", "cached again ms", "CPU ms"
    );
    for (label, tts) in devset::voices() {
        let inner: Arc<dyn Synthesizer> = Arc::from(tts);
        let cache = CachedSynthesizer::new(inner, 8 << 20, None);
        let req = SynthRequest {
            text: MESSAGE.into(),
            voice: None,
            language: None,
        };
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let pcm = match smol::block_on(cache.get(&req)) {
            Ok(p) => p,
            Err(e) => {
                println!("{label:<14} {e}");
                continue;
            }
        };
        let (cold, cpu) = (t0.elapsed(), cpu_seconds() - c0);
        let t1 = Instant::now();
        let _ = smol::block_on(cache.get(&req));
        let warm = t1.elapsed();
        println!(
            "{label:<14} {:>16.1} {:>14.2} {:>16.3} {:>10.0}",
            cold.as_secs_f64() * 1000.0,
            pcm.duration().as_secs_f64(),
            warm.as_secs_f64() * 1000.0,
            cpu * 1000.0
        );
    }
    println!(
        "* this process only: the espeak-ng subprocess is not counted\nRSS {} MiB now, peak {} MiB (all flite voices and one pocketsphinx decoder loaded)",
        status_kib("VmRSS:") / 1024,
        status_kib("VmHWM:") / 1024
    );
    if std::env::args().any(|a| a == "--no-remote") {
        return;
    }
    remote_engines();
}
