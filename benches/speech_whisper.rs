//! The embedded Whisper engine's figures (a program that prints them; not a timed test).
//!
//! `cargo bench --features whisper --bench speech_whisper`
//!
//! The dev set of `tests/speech_roundtrip.rs` (every local voice, G.711 with line noise, cut by
//! the endpointer) recognised by whisper.cpp with tiny.en converted from the speech venv
//! (`tests/support/whisper_model.sh`, or `$SIP_ASSISTANT_WHISPER_MODEL`) and matched by the
//! built-in matcher: answers right, off-topic replies rejected, CPU per reply, end of speech →
//! final result latency (p50/p95), model load time and RSS. One inference thread
//! (`speech.whisper.threads = 1`), one reply at a time.

#[path = "../tests/support/speech_devset.rs"]
mod devset;
#[path = "../tests/support/speech_servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use sip_assistant::call::ChoiceOption;
use sip_assistant::choice::{match_answer, Answer, Decision, MatchSettings};
use sip_assistant::config::WhisperConfig;
use sip_assistant::speech::vad::{Endpointer, VadConfig, VadEvent};
use sip_assistant::speech::{Recognition, Recognizer, Utterance, WhisperRecognizer};

/// CPU time of this process (all threads: the decode runs on smol's blocking pool).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

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

/// One reply through the endpointer and Whisper: (option picked, transcript, latency, CPU), or
/// `None` when the endpointer found no utterance.
fn listen(stt: &WhisperRecognizer, audio: &[i16]) -> Option<(Option<usize>, Option<String>, Duration, f64)> {
    let ctx = devset::context();
    let mut ep = Endpointer::new(VadConfig::default());
    let mut utterance: Option<Box<dyn Utterance>> = None;
    for packet in audio.chunks(320) {
        ep.push(packet);
        while let Some(ev) = ep.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => {
                    let mut u = smol::block_on(stt.start(&ctx)).ok()?;
                    smol::block_on(u.push(&audio)).ok()?;
                    utterance = Some(u);
                }
                VadEvent::Audio(a) => {
                    smol::block_on(utterance.as_mut()?.push(&a)).ok()?;
                }
                VadEvent::SpeechEnd { .. } => {
                    let u = utterance.take()?;
                    let (t0, c0) = (Instant::now(), cpu_seconds());
                    let r = smol::block_on(u.finish());
                    let (latency, cpu) = (t0.elapsed(), cpu_seconds() - c0);
                    let (option, said) = match r {
                        Ok(Recognition::Heard(alternatives)) => {
                            let said = alternatives[0].transcript.clone();
                            let answer = Answer {
                                alternatives,
                                digits: String::new(),
                            };
                            let d = match_answer(&answer, &options(), &MatchSettings::default());
                            (
                                match d {
                                    Decision::Matched { option, .. } => Some(option),
                                    Decision::NoMatch { .. } => None,
                                },
                                Some(said),
                            )
                        }
                        Ok(Recognition::NoMatch { transcript }) => (None, transcript),
                        Ok(Recognition::Rejected { heard }) => (None, heard),
                        Err(e) => {
                            eprintln!("decode failed: {e}");
                            (None, None)
                        }
                    };
                    return Some((option, said, latency, cpu));
                }
                VadEvent::NoSpeechTimeout { .. } => return None,
            }
        }
    }
    None
}

fn main() {
    let verbose = std::env::args().any(|a| a == "--verbose");
    let rss_before = status_mib("VmRSS:");
    let config = WhisperConfig {
        model: Some(servers::whisper_model()),
        ..WhisperConfig::default()
    };
    let t0 = Instant::now();
    let stt = match WhisperRecognizer::new(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("whisper cannot start: {e}");
            std::process::exit(1);
        }
    };
    let load = t0.elapsed();
    let rss_model = status_mib("VmRSS:");
    if let Err(e) = smol::block_on(stt.warm_up()) {
        eprintln!("whisper cannot create a decoder state: {e}");
        std::process::exit(1);
    }
    let rss_loaded = status_mib("VmRSS:");
    match WhisperRecognizer::probe(&config) {
        Ok(p) => println!("{p}; load {:.0} ms", load.as_secs_f64() * 1000.0),
        Err(e) => println!("probe: {e}"),
    }
    println!("STT whisper (tiny.en, 1 thread) + built-in matcher, answers by each TTS voice over G.711:");
    println!(
        "{:<14} {:>14} {:>18} {:>14} {:>16}",
        "voice", "answers right", "off-topic rejected", "CPU/reply ms", "end→result ms"
    );
    let (mut all_right, mut all_answers, mut all_rej, mut all_off) = (0, 0, 0, 0);
    let (mut all_latencies, mut all_cpu) = (Vec::new(), Vec::new());
    for (label, tts) in devset::voices() {
        let (mut right, mut answers, mut rejected, mut off) = (0, 0, 0, 0);
        let (mut cpu, mut lat) = (Vec::new(), Vec::new());
        let mut items: Vec<(Option<usize>, &str)> = Vec::new();
        for (option, list) in [devset::YES, devset::NO].into_iter().enumerate() {
            items.extend(list.iter().map(|t| (Some(option), *t)));
        }
        items.extend(devset::OFF_TOPIC.iter().map(|t| (None, *t)));
        for (i, (expected, text)) in items.into_iter().enumerate() {
            let mut audio = devset::noise(8000, 60, i as u64 + 1);
            audio.extend(devset::telephone(&devset::say(tts.as_ref(), text)));
            audio.extend(devset::noise(24_000, 60, i as u64 + 2));
            let got = listen(&stt, &audio);
            let heard = got.as_ref().and_then(|(o, ..)| *o);
            if let Some((_, said, latency, c)) = &got {
                cpu.push(*c);
                lat.push(*latency);
                if verbose {
                    println!("  {label} {text:?} -> {said:?} {heard:?}");
                }
            }
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
        lat.sort();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or_default();
        println!(
            "{label:<14} {:>14} {:>18} {:>14.0} {:>16.0}",
            format!("{right}/{answers}"),
            format!("{rejected}/{off}"),
            cpu.iter().sum::<f64>() * 1000.0 / cpu.len().max(1) as f64,
            p50.as_secs_f64() * 1000.0
        );
        (all_right, all_answers, all_rej, all_off) = (
            all_right + right,
            all_answers + answers,
            all_rej + rejected,
            all_off + off,
        );
        all_latencies.extend(lat);
        all_cpu.extend(cpu);
    }
    all_latencies.sort();
    all_cpu.sort_by(f64::total_cmp);
    let pct = |p: usize| {
        all_latencies
            .get(all_latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "all voices: answers right {all_right}/{all_answers} ({:.0} %), off-topic rejected {all_rej}/{all_off} ({:.0} %)",
        100.0 * all_right as f64 / all_answers.max(1) as f64,
        100.0 * all_rej as f64 / all_off.max(1) as f64,
    );
    println!(
        "CPU per reply: mean {:.0} ms, max {:.0} ms; end of speech → result p50 {:.0} ms, p95 {:.0} ms",
        all_cpu.iter().sum::<f64>() * 1000.0 / all_cpu.len().max(1) as f64,
        all_cpu.last().copied().unwrap_or_default() * 1000.0,
        pct(50),
        pct(95)
    );
    println!(
        "RSS: {rss_before:.0} MiB before the model, {rss_model:.0} MiB with it loaded, {rss_loaded:.0} MiB with one decoder state (+{:.0} MiB), {:.0} MiB after the dev set, peak {:.0} MiB (with the TTS voices of the dev set)",
        rss_loaded - rss_model,
        status_mib("VmRSS:"),
        status_mib("VmHWM:")
    );
}
