//! Speech benchmark (a program that prints figures; not a timed test).
//!
//! `cargo bench --bench speech`
//!
//! For every local TTS voice: answers recognised right and off-topic replies rejected by
//! PocketSphinx on the dev set of `tests/interop/speech_roundtrip.rs` (G.711 channel, VAD-cut; tuning and
//! held-out halves), CPU per recognised reply and how many replies needed the decoy check, end of
//! speech → final result latency, the endpointer's CPU per audio second; per TTS engine, the time
//! to the first audio of a 15-word message (engines render whole messages, so that is the whole
//! rendering) cold and from the prompt cache; the RSS; then the same dev set with the previous
//! rejection (a path-score threshold only) for comparison, and, when `sox` is installed, both on
//! other speaking rates, pitches, levels and noise (`--no-variations` skips them).
//!
//! When the speech test venv exists (`tests/support/speech_venv.sh`, as `.ci/dev test` builds it),
//! also the Wyoming engines on real servers: wyoming-piper's voice joins the voices, and
//! wyoming-faster-whisper (tiny.en) transcribes the same dev set, its free text matched by the
//! built-in matcher; its CPU is the server's (another process), so wall time is given.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../tests/support/speech_devset.rs"]
mod devset;
#[path = "../tests/support/speech_servers.rs"]
mod servers;
#[path = "../tests/support/speech_tally.rs"]
mod tally;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_assistant::config::WyomingConfig;
use sip_assistant::speech::cache::CachedSynthesizer;
use sip_assistant::speech::pocketsphinx::{PocketSphinx, PocketSphinxSettings};
use sip_assistant::speech::vad::{Endpointer, VadEvent, VadSettings};
use sip_assistant::speech::{Pcm, Recognizer, SynthRequest, Synthesizer};
use sip_assistant::speech::{WyomingRecognizer, WyomingSynthesizer};
use tally::{utterance, Halves, Outcome};

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

/// What became of one reply: the option (None for no match), end of speech → result latency,
/// decode CPU seconds, and whether the decoy check ran; `None` when the endpointer found no
/// utterance.
struct Heard {
    option: Option<usize>,
    latency: Duration,
    cpu: f64,
    decoy_check: bool,
}

fn listen(ps: &PocketSphinx, audio: &[i16], vad_cpu: &mut f64) -> Option<Heard> {
    let ctx = devset::context();
    let mut ep = Endpointer::new(VadSettings::default());
    let mut utterance: Option<Vec<i16>> = None;
    for packet in audio.chunks(320) {
        let c0 = cpu_seconds();
        ep.push(packet);
        *vad_cpu += cpu_seconds() - c0;
        while let Some(ev) = ep.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => utterance = Some(audio.to_vec()),
                VadEvent::Audio(audio) => utterance.as_mut()?.extend_from_slice(&audio),
                VadEvent::SpeechEnd { .. } => {
                    let cut = utterance.take()?;
                    let (t0, c0) = (Instant::now(), cpu_seconds());
                    let (r, detail) = ps.decode_blocking(&ctx, &cut).ok()?;
                    let (latency, cpu) = (t0.elapsed(), cpu_seconds() - c0);
                    let option = devset::option_picked(&r);
                    let decoy_check = detail.is_some_and(|d| d.decoy.is_some());
                    return Some(Heard {
                        option,
                        latency,
                        cpu,
                        decoy_check,
                    });
                }
                VadEvent::NoSpeechTimeout { .. } => return None,
            }
        }
    }
    None
}

/// Answers right and off-topic replies rejected, per half (tuning, held-out).
#[derive(Default, Clone, Copy)]
struct Score {
    right: [usize; 2],
    answers: [usize; 2],
    rejected: [usize; 2],
    off: [usize; 2],
}

impl Score {
    /// `heard`: `None` when the endpointer found no utterance (neither right nor rejected, as in
    /// `tests/interop/speech_roundtrip.rs`), else the option or `None` for no match.
    fn add(&mut self, reply: &devset::Reply, heard: Option<Option<usize>>) {
        let h = usize::from(reply.half == devset::Half::Held);
        match reply.option {
            Some(o) => {
                self.answers[h] += 1;
                self.right[h] += usize::from(heard == Some(Some(o)));
            }
            None => {
                self.off[h] += 1;
                self.rejected[h] += usize::from(heard == Some(None));
            }
        }
    }

    fn merge(&mut self, o: &Score) {
        for h in 0..2 {
            self.right[h] += o.right[h];
            self.answers[h] += o.answers[h];
            self.rejected[h] += o.rejected[h];
            self.off[h] += o.off[h];
        }
    }

    fn cell(n: usize, d: usize) -> String {
        format!("{n}/{d} ({:.0} %)", 100.0 * n as f64 / d.max(1) as f64)
    }

    /// Answers right (tuning, held-out), off-topic rejected (tuning, held-out).
    fn columns(&self) -> String {
        format!(
            "{:>15} {:>15} {:>15} {:>16}",
            Self::cell(self.right[0], self.answers[0]),
            Self::cell(self.right[1], self.answers[1]),
            Self::cell(self.rejected[0], self.off[0]),
            Self::cell(self.rejected[1], self.off[1]),
        )
    }
}

const SCORE_HEADER: &str = "  answers: tuning    held-out   off-topic: tuning    held-out";

/// The rejection before the decoy check: a path-score-per-second threshold only, no noise floor.
fn previous_settings() -> PocketSphinxSettings {
    PocketSphinxSettings {
        reject_threshold: -4_400,
        silence_threshold: -100_000,
        decoys: false,
        noise_floor_db: 0,
        ..PocketSphinxSettings::default()
    }
}

/// The whole dev set with `ps`, each voice's speech passed through `vary` first and, with
/// `under_noise`, line noise of that peak added under it.
fn dev_set_score(ps: &PocketSphinx, vary: &dyn Fn(&Pcm) -> Option<Pcm>, under_noise: i16) -> Option<Score> {
    let mut score = Score::default();
    let mut vad_cpu = 0.0;
    for (seed, (_, tts)) in devset::voices().into_iter().enumerate() {
        for reply in devset::replies() {
            let pcm = vary(&devset::say(tts.as_ref(), reply.text))?;
            let mut speech = devset::telephone(&pcm);
            if under_noise > 0 {
                let n = devset::noise(speech.len(), under_noise, seed as u64 + 7);
                speech
                    .iter_mut()
                    .zip(n)
                    .for_each(|(s, n)| *s = s.saturating_add(n));
            }
            let audio = devset::on_the_line(&speech, seed as u64);
            score.add(&reply, listen(ps, &audio, &mut vad_cpu).map(|h| h.option));
        }
    }
    Some(score)
}

/// The dev set under other speaking rates, pitches, levels and noise, with the current and the
/// previous rejection.
fn variations() {
    let probe = Pcm {
        rate: 16_000,
        samples: vec![0; 160],
    };
    if devset::sox(&probe, &["gain", "0"]).is_none() {
        println!("\n(no sox: no figures for other speaking rates, pitches and levels)");
        return;
    }
    let now = PocketSphinx::new(PocketSphinxSettings::default());
    let before = PocketSphinx::new(previous_settings());
    println!("\nThe dev set varied (sox before the telephone channel), current rejection and previous:");
    println!("{:<36} {SCORE_HEADER}", "variation");
    let cases: [(&str, &[&str], i16); 6] = [
        ("slower (tempo 0.85)", &["tempo", "0.85"], 0),
        ("faster (tempo 1.15)", &["tempo", "1.15"], 0),
        ("higher (pitch +300 cents)", &["pitch", "300"], 0),
        ("lower (pitch -300 cents)", &["pitch", "-300"], 0),
        ("quieter (-15 dB)", &["gain", "-15"], 0),
        ("line noise under speech (±700)", &["gain", "0"], 700),
    ];
    for (label, effect, noise) in cases {
        let vary = |p: &Pcm| devset::sox(p, effect);
        for (which, ps) in [("current", &now), ("previous", &before)] {
            match dev_set_score(ps, &vary, noise) {
                Some(s) => println!("{:<36} {}", format!("{label}, {which}"), s.columns()),
                None => println!("{label}: sox failed"),
            }
        }
    }
}

/// The dev set through the endpointer and `stt`, counted as a call counts it (a free-text
/// transcript goes to the built-in matcher): the tally of each half and the end of speech →
/// result latencies.
fn free_text_round(
    voices: &[(String, Arc<dyn Synthesizer>)],
    stt: &dyn Recognizer,
) -> (Halves, Vec<Duration>) {
    let ctx = devset::context();
    let mut all = Halves::default();
    let mut latencies = Vec::new();
    for (seed, (label, tts)) in voices.iter().enumerate() {
        let mut halves = Halves::default();
        for reply in devset::replies() {
            let speech = devset::telephone(&devset::say(tts.as_ref(), reply.text));
            let outcome = match utterance(&devset::on_the_line(&speech, seed as u64)) {
                None => Outcome::NoSpeech,
                Some(cut) => {
                    let decoded = smol::block_on(async {
                        let mut u = stt.start(&ctx).await?;
                        u.push(&cut).await?;
                        let t0 = Instant::now();
                        let r = u.finish().await?;
                        latencies.push(t0.elapsed());
                        Ok::<_, sip_assistant::speech::SpeechError>(r)
                    });
                    match decoded {
                        Ok(r) => devset::option_picked(&r).map_or(Outcome::NoMatch, Outcome::Option),
                        Err(e) => {
                            eprintln!("{label} {:?}: {e}", reply.text);
                            Outcome::NoMatch
                        }
                    }
                }
            };
            halves.count(label, &reply, &outcome);
            all.count(label, &reply, &outcome);
        }
        let (t, h) = (&halves.tune, &halves.held);
        println!(
            "{label:<22} {:>20} {:>20}",
            format!("{}/{}, {}/{}", t.right, t.answers, h.right, h.answers),
            format!("{}/{}, {}/{}", t.rejected, t.off, h.rejected, h.off),
        );
    }
    (all, latencies)
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
        "{:<22} {:>20} {:>20}",
        "voice", "answers tune/held", "rejected tune/held"
    );
    let (halves, mut lat) = free_text_round(&voices, &stt);
    lat.sort();
    let pct = |p: usize| {
        lat.get(lat.len() * p / 100)
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "all voices: {}; end of speech → result p50 {:.0} ms, p95 {:.0} ms (server CPU, 2 cores)",
        halves.all().line(),
        pct(50),
        pct(95)
    );
    // pocketsphinx on the Piper voice too, so every TTS engine's audio meets the embedded STT.
    let ps = PocketSphinx::new(PocketSphinxSettings::default());
    println!("\nSTT pocketsphinx on the wyoming-piper voice:");
    let (halves, _) = free_text_round(&voices[voices.len() - 1..], &ps);
    println!("wyoming-piper/joe: {}", halves.all().line());
}

fn main() {
    let ps = PocketSphinx::new(PocketSphinxSettings::default());
    if let Err(e) = smol::block_on(ps.warm_up()) {
        eprintln!("pocketsphinx cannot start: {e}");
        std::process::exit(1);
    }
    let d = PocketSphinxSettings::default();
    println!(
        "STT pocketsphinx (answer grammar; rejected below {} per second or with a silence below {}, kept from {}, decoy check in between; noise floor {} dB down), each TTS voice over G.711:",
        d.reject_threshold, d.silence_threshold, d.accept_threshold, d.noise_floor_db
    );
    println!(
        "{:<14} {SCORE_HEADER} {:>13} {:>12} {:>14}",
        "voice", "CPU/reply ms", "decoy check", "end→result ms"
    );
    let mut total = Score::default();
    let (mut vad_cpu, mut audio_secs) = (0.0f64, 0.0f64);
    let (mut plain_cpu, mut plain_n, mut check_cpu, mut check_n) = (0.0, 0usize, 0.0, 0usize);
    let mut latencies = Vec::new();
    for (seed, (label, tts)) in devset::voices().into_iter().enumerate() {
        let mut score = Score::default();
        let (mut cpu, mut replies, mut checked) = (0.0, 0, 0);
        let mut lat = Vec::new();
        for reply in devset::replies() {
            let speech = devset::telephone(&devset::say(tts.as_ref(), reply.text));
            let audio = devset::on_the_line(&speech, seed as u64);
            audio_secs += audio.len() as f64 / 16_000.0;
            let got = listen(&ps, &audio, &mut vad_cpu);
            if let Some(h) = &got {
                cpu += h.cpu;
                replies += 1;
                lat.push(h.latency);
                if h.decoy_check {
                    checked += 1;
                    (check_cpu, check_n) = (check_cpu + h.cpu, check_n + 1);
                } else {
                    (plain_cpu, plain_n) = (plain_cpu + h.cpu, plain_n + 1);
                }
            }
            score.add(&reply, got.map(|h| h.option));
        }
        lat.sort();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or_default();
        latencies.extend(lat);
        println!(
            "{label:<14} {} {:>13.1} {:>12} {:>14.1}",
            score.columns(),
            cpu * 1000.0 / replies.max(1) as f64,
            format!("{checked}/{replies}"),
            p50.as_secs_f64() * 1000.0
        );
        total.merge(&score);
    }
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!("{:<14} {}", "all voices", total.columns());
    let both = |v: [usize; 2]| v[0] + v[1];
    println!(
        "whole dev set: answers right {}, off-topic rejected {}",
        Score::cell(both(total.right), both(total.answers)),
        Score::cell(both(total.rejected), both(total.off))
    );
    println!(
        "CPU per reply: {:.1} ms without the decoy check ({plain_n} replies), {:.1} ms with it ({check_n}), {:.1} ms on average; end of speech → result p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        plain_cpu * 1000.0 / plain_n.max(1) as f64,
        check_cpu * 1000.0 / check_n.max(1) as f64,
        (plain_cpu + check_cpu) * 1000.0 / (plain_n + check_n).max(1) as f64,
        pct(50),
        pct(95),
        pct(100)
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
    let before = PocketSphinx::new(previous_settings());
    if let Some(s) = dev_set_score(&before, &|p: &Pcm| Some(p.clone()), 0) {
        println!("\nThe previous rejection on the same dev set (the path-score threshold -4400 alone, no noise floor, no decoy check):");
        println!("{:<14} {SCORE_HEADER}", "");
        println!("{:<14} {}", "all voices", s.columns());
    }
    if !std::env::args().any(|a| a == "--no-variations") {
        variations();
    }
    if std::env::args().any(|a| a == "--no-remote") {
        return;
    }
    remote_engines();
}
