//! The embedded Whisper engine's figures (a program that prints them; not a timed test).
//!
//! `cargo bench --features whisper --bench speech_whisper`
//!
//! The dev set of `tests/interop/speech_roundtrip.rs` (every local voice, G.711 with line noise, cut by
//! the endpointer) recognised by whisper.cpp with tiny.en converted from the speech venv
//! (`tests/support/whisper_model.sh`, or `$SIP_ASSISTANT_WHISPER_MODEL`) and matched by the
//! built-in matcher: answers right, off-topic replies rejected, CPU per reply, end of speech →
//! final result latency (p50/p95), model load time and RSS. One inference thread
//! (`speech.whisper.threads = 1`), one reply at a time. `--verbose` prints every reply's
//! recognition; `--prompts` then runs the dev set again with other phrase lists behind Whisper's
//! initial prompt (the option numbers in it, the tuning answers only, the option values only,
//! none).

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../tests/support/speech_devset.rs"]
mod devset;
#[path = "../tests/support/speech_servers.rs"]
mod servers;
#[path = "../tests/support/speech_tally.rs"]
mod tally;

use std::time::{Duration, Instant};

use sip_assistant::config::WhisperConfig;
use sip_assistant::speech::{Recognition, RecognitionContext, Recognizer, WhisperRecognizer};
use tally::{utterance, Halves, Outcome};

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

/// One reply through the endpointer and Whisper: what a call makes of it, the recognition, the
/// end of speech → result latency and the CPU of the decode (`None`: no utterance found).
fn listen(
    stt: &WhisperRecognizer,
    ctx: &RecognitionContext,
    audio: &[i16],
) -> (Outcome, Option<(Recognition, Duration, f64)>) {
    let Some(cut) = utterance(audio) else {
        return (Outcome::NoSpeech, None);
    };
    let decoded = smol::block_on(async {
        let mut u = stt.start(ctx).await?;
        u.push(&cut).await?;
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let r = u.finish().await?;
        Ok::<_, sip_assistant::speech::SpeechError>((r, t0.elapsed(), cpu_seconds() - c0))
    });
    match decoded {
        Ok((r, latency, cpu)) => {
            let outcome = devset::option_picked(&r).map_or(Outcome::NoMatch, Outcome::Option);
            (outcome, Some((r, latency, cpu)))
        }
        Err(e) => {
            eprintln!("decode failed: {e}");
            (Outcome::NoMatch, None)
        }
    }
}

fn main() {
    let verbose = std::env::args().any(|a| a == "--verbose");
    let prompts = std::env::args().any(|a| a == "--prompts");
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
    println!("STT whisper (tiny.en, 1 thread) + built-in matcher, the dev set by each TTS voice over G.711:");
    println!(
        "{:<14} {:>20} {:>20} {:>12} {:>14}",
        "voice", "answers tune/held", "rejected tune/held", "CPU/reply ms", "end→result ms"
    );
    let ctx = devset::context();
    let mut all = Halves::default();
    let (mut all_latencies, mut all_cpu) = (Vec::new(), Vec::new());
    for (seed, (label, tts)) in devset::voices().into_iter().enumerate() {
        let mut halves = Halves::default();
        let (mut cpu, mut lat) = (Vec::new(), Vec::new());
        for reply in devset::replies() {
            let speech = devset::telephone(&devset::say(tts.as_ref(), reply.text));
            let (outcome, got) = listen(&stt, &ctx, &devset::on_the_line(&speech, seed as u64));
            if let Some((r, latency, c)) = &got {
                cpu.push(*c);
                lat.push(*latency);
                if verbose {
                    println!("  {label} {:?} -> {r:?} {outcome:?}", reply.text);
                }
            }
            halves.count(&label, &reply, &outcome);
            all.count(&label, &reply, &outcome);
        }
        lat.sort();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or_default();
        let (t, h) = (&halves.tune, &halves.held);
        println!(
            "{label:<14} {:>20} {:>20} {:>12.0} {:>14.0}",
            format!("{}/{}, {}/{}", t.right, t.answers, h.right, h.answers),
            format!("{}/{}, {}/{}", t.rejected, t.off, h.rejected, h.off),
            cpu.iter().sum::<f64>() * 1000.0 / cpu.len().max(1) as f64,
            p50.as_secs_f64() * 1000.0
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
    println!("tuning half: {}", all.tune.line());
    println!("held-out half: {}", all.held.line());
    println!("whole dev set: {}", all.all().line());
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
    if prompts {
        compare_prompts(&stt);
    }
}

/// The whole dev set (all voices) through `stt` with `ctx`.
fn whole_set(stt: &WhisperRecognizer, ctx: &RecognitionContext) -> Halves {
    let mut all = Halves::default();
    for (seed, (label, tts)) in devset::voices().into_iter().enumerate() {
        for reply in devset::replies() {
            let speech = devset::telephone(&devset::say(tts.as_ref(), reply.text));
            let (outcome, _) = listen(stt, ctx, &devset::on_the_line(&speech, seed as u64));
            all.count(&label, &reply, &outcome);
        }
    }
    all
}

/// `--prompts`: the dev set with other phrase lists behind Whisper's initial prompt, to compare
/// with the call's (its options' words, without the spoken option numbers).
fn compare_prompts(stt: &WhisperRecognizer) {
    use sip_assistant::speech::Phrase;
    let phrases = |lists: &[Vec<&str>]| RecognitionContext {
        language: None,
        phrases: lists
            .iter()
            .enumerate()
            .flat_map(|(option, list)| list.iter().map(move |t| Phrase::answer(*t, option)))
            .collect(),
    };
    let mut numbered = devset::context();
    for p in &mut numbered.phrases {
        p.spoken_number = false;
    }
    let variants = [
        ("the call's (no option numbers)", devset::context()),
        ("with the option numbers", numbered),
        (
            "tuning answers only",
            phrases(&[devset::YES.to_vec(), devset::NO.to_vec()]),
        ),
        ("option values only", phrases(&[vec!["yes"], vec!["no"]])),
        ("no prompt", RecognitionContext::default()),
    ];
    println!("\nWhisper's initial prompt, whole dev set (answers right, off-topic rejected):");
    for (name, ctx) in variants {
        let all = whole_set(stt, &ctx).all();
        println!("  {name:<30} {}", all.line());
    }
}
