//! The recognition dev set's figures (a program that prints them; not a timed test): answers right
//! and must-reject replies rejected, by voice family, reply kind, set and line condition; end of
//! speech -> decision p50/p95; CPU per reply; RSS after loading the engine. Every item goes through
//! the call's path (`tests/support/recognition_devset.rs`).
//!
//! `cargo bench --bench recognition -- [--engine whisper|pocketsphinx|both] [--half tune|held|both]
//!  [--limit N] [--set NAME] [--threads N] [--verbose] [--spot-threshold N]`
//!
//! Whisper's model: `$SIP_ASSISTANT_WHISPER_MODEL`, else the speech venv's converted tiny.en
//! (`tests/support/whisper_model.sh`). `--threads 1` (the default) runs one reply at a time, so CPU
//! per reply is that reply's; more threads finish sooner but CPU figures then overlap.
//! `--limit N` takes N items spread evenly over the chosen half (every kind and family keeps its
//! share). `--verbose` prints every item the call got wrong, with what the engine heard.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../tests/support/recognition_devset.rs"]
mod devset;
#[path = "../tests/support/speech_servers.rs"]
mod servers;

use std::sync::Arc;
use std::time::Instant;

use devset::{Half, Item};
use sip_assistant::config::Config;
use sip_assistant::speech::{engines, Recognizer};

struct Args {
    engines: Vec<String>,
    halves: Vec<Half>,
    limit: Option<usize>,
    set: Option<String>,
    threads: usize,
    verbose: bool,
    /// Write the whisper scorer's figures per item (JSON lines) for tests/support/tune_scorer.py.
    dump: Option<String>,
    /// `speech.pocketsphinx.spot_threshold` other than the default (for tuning on the tuning half).
    spot: Option<u32>,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: recognition [--engine whisper|pocketsphinx|both] [--half tune|held|both] [--limit N] \
         [--set NAME] [--threads N] [--verbose] [--spot-threshold N]"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        engines: vec!["whisper".into(), "pocketsphinx".into()],
        halves: vec![Half::Tune, Half::Held],
        limit: None,
        set: None,
        threads: 1,
        verbose: false,
        dump: None,
        spot: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--engine" => {
                a.engines = match value("--engine").as_str() {
                    "both" => vec!["whisper".into(), "pocketsphinx".into()],
                    e @ ("whisper" | "pocketsphinx") => vec![e.to_string()],
                    e => usage(&format!("unknown engine {e}")),
                }
            }
            "--half" => {
                let v = value("--half");
                a.halves = match v.as_str() {
                    "both" => vec![Half::Tune, Half::Held],
                    h => vec![Half::parse(h).unwrap_or_else(|| usage(&format!("unknown half {h}")))],
                }
            }
            "--limit" => a.limit = Some(value("--limit").parse().unwrap_or_else(|_| usage("--limit N"))),
            "--set" => a.set = Some(value("--set")),
            "--threads" => {
                a.threads = value("--threads")
                    .parse()
                    .unwrap_or_else(|_| usage("--threads N"))
            }
            "--verbose" | "-v" => a.verbose = true,
            "--dump-scores" => a.dump = Some(value("--dump-scores")),
            "--spot-threshold" => {
                a.spot = Some(
                    value("--spot-threshold")
                        .parse()
                        .unwrap_or_else(|_| usage("--spot-threshold N")),
                )
            }
            // cargo bench passes --bench to harness = false programs.
            "--bench" => {}
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a
}

/// The engine as the service builds it from `[speech]`: the defaults, with `stt` set (and the
/// model, for whisper).
fn engine(name: &str, spot: Option<u32>) -> Arc<dyn Recognizer> {
    let mut config = Config::default();
    config.speech.stt = name.to_string();
    if let Some(t) = spot {
        config.speech.pocketsphinx.spot_threshold = t;
    }
    if name == "whisper" {
        config.speech.whisper.model = Some(servers::whisper_model());
    }
    engines::recognizer(&config.speech).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn spread(items: Vec<Item>, limit: Option<usize>) -> Vec<Item> {
    match limit {
        Some(n) if n > 0 && n < items.len() => {
            let len = items.len();
            (0..n).map(|i| items[i * len / n].clone()).collect()
        }
        _ => items,
    }
}

/// The scorer's figures for every item of `items`, one JSON line each, with what the built-in
/// matcher makes of the free transcript (an option, "stop" for negated or two options, or null).
fn dump_scores(path: &str, items: &[Item]) {
    use sip_assistant::choice::{match_answer, Answer, Decision, MatchSettings, NoMatchReason};
    use sip_assistant::config::WhisperConfig;
    use sip_assistant::speech::WhisperRecognizer;
    use std::io::Write;
    let config = WhisperConfig {
        model: Some(servers::whisper_model()),
        ..WhisperConfig::default()
    };
    let w = WhisperRecognizer::new(&config).unwrap_or_else(|e| panic!("whisper: {e}"));
    let sets = devset::choice_sets();
    let settings = MatchSettings {
        spoken_numbers: true,
        min_confidence: None,
    };
    let mut out = std::fs::File::create(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (n, item) in items.iter().enumerate() {
        let Some(set) = sets.get(&item.set) else { continue };
        let expected = item
            .expect
            .as_ref()
            .and_then(|v| set.options.iter().position(|o| &o.value == v));
        let row = match devset::utterance(&devset::line_audio(item)) {
            None => serde_json::json!({"id": item.id, "half": format!("{:?}", item.half).to_lowercase(),
                "expected": expected, "kind": item.kind, "family": item.family, "free": null}),
            Some(cut) => {
                let (text, scores) = w
                    .scores(&cut, &set.context())
                    .unwrap_or_else(|e| panic!("{}: {e}", item.id));
                let t_match = match match_answer(&Answer::heard(&text), &set.options, &settings) {
                    Decision::Matched { option, .. } => serde_json::json!(option),
                    Decision::NoMatch {
                        why: NoMatchReason::Negated { .. } | NoMatchReason::Ambiguous { .. },
                    } => serde_json::json!("stop"),
                    Decision::NoMatch { .. } => serde_json::Value::Null,
                };
                // The matcher's verdict on each phrase in the transcript's context (what a call
                // judges of a pick: a negation around it still counts).
                let listed = sip_assistant::speech::whisper::phrases_of(&set.context());
                let ctx_match = |i: usize| {
                    let Some((_, phrase)) = listed.get(i) else {
                        return serde_json::Value::Null;
                    };
                    let said = sip_assistant::speech::whisper::said_in_context(&text, phrase);
                    match match_answer(&Answer::heard(&said), &set.options, &settings) {
                        Decision::Matched { option, .. } => serde_json::json!(option),
                        Decision::NoMatch { .. } => serde_json::json!("stop"),
                    }
                };
                let s = scores.as_ref();
                serde_json::json!({
                    "id": item.id, "half": format!("{:?}", item.half).to_lowercase(),
                    "expected": expected, "kind": item.kind, "family": item.family, "text": item.text,
                    "transcript": text, "t_match": t_match,
                    "free": s.map(|s| s.free), "free_prior": s.map(|s| s.free_prior),
                    "no_speech": s.map(|s| s.no_speech),
                    "phrases": s.map(|s| s.phrases.iter().map(|p| (p.option, p.score, p.prior, p.in_context, ctx_match(p.phrase))).collect::<Vec<_>>()),
                })
            }
        };
        writeln!(out, "{row}").unwrap_or_else(|e| panic!("{path}: {e}"));
        if n % 100 == 0 {
            eprintln!("  scores: {n}/{}", items.len());
        }
    }
}

fn main() {
    let a = args();
    let t = Instant::now();
    let all = devset::items();
    if let Some(path) = &a.dump {
        let items: Vec<Item> = all
            .iter()
            .filter(|i| a.halves.contains(&i.half))
            .cloned()
            .collect();
        dump_scores(path, &spread(items, a.limit));
        return;
    }
    println!(
        "dev set: {} items ready in {:.1} s (rendered once into the cache; see tests/devset/README.md)",
        all.len(),
        t.elapsed().as_secs_f64()
    );
    let rss_before = devset::rss_kib();
    for name in &a.engines {
        let t = Instant::now();
        let r = engine(name, a.spot);
        // PocketSphinx loads its model on first use: one empty utterance loads it here.
        let warm = devset::choice_sets();
        if let Some(set) = warm.values().next() {
            let ctx = set.context();
            let _ = smol::block_on(async {
                let mut u = r.start(&ctx).await?;
                u.push(&[0i16; 3200]).await?;
                u.finish().await
            });
        }
        println!(
            "\n#### engine {name}: ready in {:.1} s; RSS {} MiB after loading (process before any engine: {} MiB)",
            t.elapsed().as_secs_f64(),
            devset::rss_kib() / 1024,
            rss_before / 1024
        );
        for half in &a.halves {
            let items: Vec<Item> = all
                .iter()
                .filter(|i| i.half == *half)
                .filter(|i| a.set.as_deref().is_none_or(|s| s == i.set))
                .cloned()
                .collect();
            let items = spread(items, a.limit);
            let t = Instant::now();
            let progress = |done: usize, total: usize| {
                if done.is_multiple_of(100) || done == total {
                    eprintln!("  {name} {half:?}: {done}/{total}");
                }
            };
            let outcomes = devset::run_all(r.as_ref(), &items, a.threads, &progress);
            devset::print_report(
                &format!(
                    "{name}, {} half ({:.0} s, {} thread(s))",
                    match half {
                        Half::Tune => "tuning",
                        Half::Held => "held-out",
                    },
                    t.elapsed().as_secs_f64(),
                    a.threads
                ),
                &outcomes,
            );
            if a.verbose {
                devset::print_failures(&outcomes);
            }
        }
        println!("  RSS at the end: {} MiB", devset::rss_kib() / 1024);
    }
}
