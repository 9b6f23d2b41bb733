//! Choice-hook figures (a program, not a gate): cold load with precompilation, load from the
//! precompiled cache, bare instantiation, and per-call latency (p50/p99 over 10 000 calls) of
//! `Hooks::decide` for the example hooks and the built-in matcher.
//!
//! `cargo bench --bench hooks` (builds the guests with `wasm-hooks/build.sh` first).

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../tests/support/guests.rs"]
mod guests;

use std::path::Path;
use std::time::{Duration, Instant};

use guests::{install, opt, settings};
use sip_assistant::choice::Alternative;
use sip_assistant::hooks::{HookInput, Hooks, BUILT_IN};

const CALLS: usize = 10_000;

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), String> {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hooks-bench");
    let dir = work.join("hooks");
    let cache = work.join("cache");
    for d in [&dir, &cache] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    for name in ["fuzzy", "ordinals", "yesno-eu"] {
        install(&dir, name, name);
    }

    let cold = Hooks::new(settings(&dir, Some(&cache))).map_err(|e| e.to_string())?;
    let started = Instant::now();
    cold.reload_blocking();
    println!("cold load + precompile, 3 hooks: {}", ms(started.elapsed()));
    for info in cold.infos() {
        println!(
            "  {:<10} {} ms (from cache: {})",
            info.name,
            info.load_ms.unwrap_or(0),
            info.from_cache
        );
    }
    drop(cold);

    let hooks = Hooks::new(settings(&dir, Some(&cache))).map_err(|e| e.to_string())?;
    let started = Instant::now();
    hooks.reload_blocking();
    println!(
        "load from the precompiled cache, 3 hooks: {}",
        ms(started.elapsed())
    );
    for info in hooks.infos() {
        println!(
            "  {:<10} {} ms (from cache: {})",
            info.name,
            info.load_ms.unwrap_or(0),
            info.from_cache
        );
    }

    for name in ["fuzzy", "ordinals", "yesno-eu"] {
        let n = 2000;
        let total = hooks
            .time_instantiation(name, n)
            .ok_or_else(|| format!("{name} did not instantiate"))?;
        println!("instantiate {name} (fresh store): {} each", us(total / n));
    }

    let options = vec![
        opt("confirm", &["yes", "sure", "ok"]),
        opt("cancel", &["no", "never mind"]),
        opt("later", &["call me later", "not now"]),
    ];
    let input = HookInput {
        alternatives: vec![Alternative {
            transcript: "uh council that please".into(),
            confidence: Some(0.7),
        }],
        digits: String::new(),
        options,
        attempt: 1,
        language: Some("en".into()),
        call_id: "bench".into(),
        extension: "1001".into(),
    };
    for name in ["fuzzy", "ordinals", "yesno-eu", BUILT_IN] {
        let mut times = Vec::with_capacity(CALLS);
        let mut fallbacks = 0;
        smol::block_on(async {
            for _ in 0..CALLS {
                let started = Instant::now();
                let d = hooks.decide(Some(name), &input).await;
                times.push(started.elapsed());
                fallbacks += usize::from(d.fallback.is_some());
            }
        });
        times.sort();
        let p50 = times[CALLS / 2];
        let p99 = times[CALLS * 99 / 100];
        println!(
            "decide {name:<10} over {CALLS} calls: p50 {} p99 {} (fallbacks: {fallbacks})",
            us(p50),
            us(p99)
        );
    }
    Ok(())
}
