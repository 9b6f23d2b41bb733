//! Load figures for issue #15, measured on the release binary with SIPp on 127.0.0.1. Prints figures;
//! asserts nothing about speed.
//!
//! ```sh
//! cargo bench --bench load -- media 1000 cached   # N calls at once, every one speaking the same ~40 s message
//! cargo bench --bench load -- media 500 unique    # a text of its own per call (TTS counted)
//! cargo bench --bench load -- media 300 opus      # Opus instead of G.711
//! cargo bench --bench load -- rate 50 60          # 50 calls/s for 60 s, short message
//! cargo bench --bench load -- api 10              # POST /call and GET /call/{id} with wrk, 64 connections
//! cargo bench --bench load -- listen 1 8 32 64     # N calls asking a question, answered by voice
//! ```
//!
//! **media N CASE**: a SIPp UAS started here answers every INVITE at once with an SDP that points the
//! media at a receiver this program owns (one UDP socket on 127.0.0.1); the service (its default
//! codec list, PCMU, PCMA and Opus, so every prompt is prepared for all three while the phone rings)
//! is told to place N calls to it at once (N `POST /call` from 16 client threads). The UAS answers
//! PCMU (cases cached, unique) or Opus. The receiver stamps every RTP packet on arrival. Per stream
//! (source address + SSRC): lateness = arrival minus the stream's ideal 20 ms grid (its RTP
//! timestamp over the clock rate, anchored at the stream's earliest packet), loss from the sequence
//! numbers, drift = how far the grid slid between the stream's first and last 2 s. The figures are
//! given for the whole run (the start included) and for the steady state (from 15 s after the first
//! POST). The service's CPU (utime + stime from /proc) and RSS are sampled every 0.5 s: at idle,
//! while the calls start (first 10 s), in the steady state, and the peak.
//! Then, in the same run once the service's calls have ended, the floor: a second SIPp UAS (same
//! answer, a fresh receiver) takes N calls from a SIPp UAC that replays, in each call, a pcap of the
//! service's own stream (written here as RTP/UDP/IPv4/Ethernet frames; `[auto_media_port]` gives each
//! call its own source port). The ratio service/SIPp of steady lateness p99 and p99.9 is printed.
//! The two run one after the other so that neither loads the box while the other is measured.
//! Every case also prints when each call's first audio left, from its record (`answered_at` plus
//! the media's `answer_to_audio_ms`): counted from the first POST, and from the call's answer.
//! With a text of its own per call (`unique`) that is what rendering them all costs.
//!
//! **listen N...**: for each N in turn, a fresh service places N calls at once that speak a short
//! message and ask a question (`choice`, two options, 10 s to answer, asked up to 3 times). A SIPp
//! UAS answers each INVITE at once with an SDP naming the port in the call's Request-URI: a phone
//! of the bench's own per call (`load/listen.rs`), which streams 20 ms PCMU back like a phone and,
//! once the service has been quiet for a second after speaking, says "yes" (espeak-ng, sox). The
//! bench knows when each answer started and where its voiced part ends, so end of speech is
//! stamped with the wall clock; the call's timeline (`GET /calls/{id}`, the same clock, ms) gives
//! `heard` (the recogniser's result) and `matched` (the decision). Printed: end of speech ->
//! heard and -> matched, p50/p95/max, and end of speech -> the first audio of the service's reply
//! as the phone received it; how each call ended (decided, asked again after a recogniser failure
//! such as a full decode queue, no choice, failed); the recogniser the service chose (`speech.stt
//! = "auto"`: whisper.cpp if a model is installed, else PocketSphinx). With
//! `SIP_ASSISTANT_WHISPER_MODEL` naming a ggml file (`tests/support/whisper_model.sh`) the bench
//! first installs it with `sip-assistant models import`, as a user would.
//!
//! **api SECONDS**: `wrk` (Debian package `wrk`, installed with apt-get when missing) with 64 connections
//! on 2 threads, SECONDS each: `POST /call` (each durable before its 200; the calls wait in the
//! queue, `calls.queue_limit` 100000) and `GET /call/{id}` of one of them. Requests per second and
//! latency p50/p99 as wrk prints them.
//!
//! **rate R SECONDS**: R calls per second for SECONDS (a short message, SIPp answering at once):
//! how many complete, how many fail, answer -> first audio p50/p99 from the records.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../tests/support/binary.rs"]
mod binary;
#[path = "../tests/support/harness.rs"]
mod harness;
#[path = "load/listen.rs"]
mod listen;
#[path = "../tests/support/peers.rs"]
mod peers;
#[path = "load/receiver.rs"]
mod receiver;
#[path = "load/sipp.rs"]
mod sipp;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary::{http, Service};
use receiver::{Receiver, Stats};

/// About 40 s of flite speech at its default rate.
const MESSAGE: &str = "This is a test of the building announcement system. All staff are asked to \
    gather in the main hall at three o'clock this afternoon for a short meeting about the new safety \
    rules. Please bring your badge and a pen. The meeting will last about twenty minutes, and coffee \
    will be served afterwards in the room next to the kitchen. If you cannot attend, please tell your \
    team leader before noon, so that the notes can be sent to you by mail. Thank you for your help, \
    and have a pleasant day. This message will now end. Goodbye.";
/// From this long after the first POST on, the streams are in their steady state.
const STEADY_AFTER: Duration = Duration::from_secs(15);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["media", n, case] => media(n.parse().expect("N"), case),
        ["media", n] => media(n.parse().expect("N"), "cached"),
        ["rate", r, s] => rate(r.parse().expect("rate"), s.parse().expect("seconds")),
        ["api", s] => api(s.parse().expect("seconds")),
        ["listen"] => listen_rounds(&[1, 8, 32, 64]),
        ["listen", ns @ ..] => listen_rounds(&ns.iter().map(|n| n.parse().expect("N")).collect::<Vec<_>>()),
        [] => {
            media(100, "cached");
            rate(20, 20);
        }
        _ => panic!("usage: load media N [cached|unique|opus] | rate R SECONDS | api SECONDS | listen N..."),
    }
}

/// The service for `calls` concurrent calls with its default codec list (PCMU, PCMA, opus: every
/// prompt is encoded for each while the phone rings), on loopback ports of its own.
fn service(dir: &Path, calls: usize) -> Service {
    service_with(dir, calls, &[])
}

/// As [`service`], with more settings.
fn service_with(dir: &Path, calls: usize, extra: &[(&str, String)]) -> Service {
    let ports = u16::try_from(calls * 2 + 8).expect("ports");
    let base = peers::free_port_block(ports + 1).next_multiple_of(2);
    let mut env = vec![
        ("SIP_ASSISTANT__CALLS__MAX_CONCURRENT", calls.to_string()),
        ("SIP_ASSISTANT__MEDIA__RTP_PORT_MIN", base.to_string()),
        (
            "SIP_ASSISTANT__MEDIA__RTP_PORT_MAX",
            (base + ports - 1).to_string(),
        ),
        ("SIP_ASSISTANT__API__RATE_LIMIT_PER_SECOND", "0".into()),
    ];
    env.extend(extra.iter().cloned());
    Service::start(dir, &env)
}

/// A call's record (`GET /calls/{id}`), or null.
fn record(api: u16, id: &str) -> serde_json::Value {
    let (_, text) = http(api, "GET", &format!("/calls/{id}"), "");
    serde_json::from_str(&text).unwrap_or_default()
}

/// An RFC 3339 time of a record as ms since the Unix epoch.
fn epoch_ms(v: &serde_json::Value) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(v.as_str()?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64() * 1000.0)
}

/// When each call's first audio left (its answer plus the media's answer -> audio), in ms: counted
/// from `posted` (wall-clock ms) and from the call's answer. Calls without audio are left out.
fn first_audio(api: u16, ids: &[String], posted: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut from_post, mut from_answer) = (Vec::new(), Vec::new());
    for id in ids {
        let r = record(api, id);
        let (Some(answered), Some(ms)) = (
            epoch_ms(&r["answered_at"]),
            r["media"]["answer_to_audio_ms"].as_f64(),
        ) else {
            continue;
        };
        from_post.push(answered + ms - posted);
        from_answer.push(ms);
    }
    from_post.sort_by(f64::total_cmp);
    from_answer.sort_by(f64::total_cmp);
    (from_post, from_answer)
}

/// "p50 / p99 / max" of sorted `v`, in seconds.
fn secs(v: &[f64]) -> String {
    format!(
        "p50 {:.1} s, p99 {:.1} s, max {:.1} s",
        receiver::quantile(v, 0.5) / 1000.0,
        receiver::quantile(v, 0.99) / 1000.0,
        v.last().copied().unwrap_or(f64::NAN) / 1000.0
    )
}

/// /proc figures of `pid`: (CPU seconds used so far, RSS in KiB).
fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

/// CPU and RSS samples of one process, every 0.5 s from `start`.
struct Sampler {
    samples: Arc<std::sync::Mutex<Vec<(f64, f64, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Sampler {
    fn start(pid: u32, start: Instant) -> Sampler {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let (cpu, rss) = proc_usage(pid);
                s.lock()
                    .expect("lock")
                    .push((start.elapsed().as_secs_f64(), cpu, rss));
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        Sampler { samples, stop }
    }

    /// Cores used between `from` and `to` seconds (NaN without two samples in it).
    fn cores(&self, from: f64, to: f64) -> f64 {
        let s = self.samples.lock().expect("lock");
        let inside: Vec<_> = s.iter().filter(|(t, _, _)| *t >= from && *t <= to).collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
            _ => f64::NAN,
        }
    }

    /// Highest RSS sampled between `from` and `to` seconds, KiB.
    fn rss_max(&self, from: f64, to: f64) -> u64 {
        let s = self.samples.lock().expect("lock");
        s.iter()
            .filter(|(t, _, _)| *t >= from && *t <= to)
            .map(|x| x.2)
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// POST `bodies` from 16 threads at once; the call ids (in the order of `bodies`) and every POST's
/// duration in ms.
fn post_all(api: u16, bodies: Vec<String>) -> (Vec<String>, Vec<f64>) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (bodies, next) = (bodies.clone(), next.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let (status, text) = http(api, "POST", "/call", body);
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    assert_eq!(status, 200, "POST /call: {text}");
                    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
                    out.push((i, v["call_id"].as_str().expect("call_id").to_string(), ms));
                }
                out
            })
        })
        .collect();
    let mut posted: Vec<(usize, String, f64)> = Vec::new();
    for t in threads {
        posted.extend(t.join().expect("poster"));
    }
    posted.sort_by_key(|p| p.0);
    posted.into_iter().map(|(_, id, ms)| (id, ms)).unzip()
}

fn call_body(text: &str, uri: &str) -> String {
    serde_json::json!({ "message": text, "extension": uri, "ring_timeout": 30 }).to_string()
}

/// How many of `ids` have a final status; (final, completed).
fn finished(api: u16, ids: &[String]) -> (usize, usize) {
    let mut done = 0;
    let mut completed = 0;
    for id in ids {
        let (_, text) = http(api, "GET", &format!("/calls/{id}"), "");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        match v["status"].as_str() {
            Some("completed") => {
                done += 1;
                completed += 1;
            }
            Some("failed" | "busy" | "no_answer" | "cancelled") => done += 1,
            _ => {}
        }
    }
    (done, completed)
}

fn media(n: usize, case: &str) {
    let (codecs, clock) = match case {
        "cached" | "unique" => ("PCMU", 8000),
        "opus" => ("opus", 48000),
        other => panic!("case {other}: cached, unique or opus"),
    };
    println!("== media: {n} calls at once, case {case} ({codecs})");
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Receiver::start(n * 2 + 64);
    let uas = sipp::Uas::start(dir.path(), "service-uas", rx.port, codecs, n);
    let mut svc = service(dir.path(), n);
    let pid = svc.child.0.id();
    // Idle, with the default engines loaded.
    std::thread::sleep(Duration::from_secs(2));
    let (_, idle_rss) = proc_usage(pid);
    let t0 = Instant::now();
    let sampler = Sampler::start(pid, t0);
    let uri = uas.uri();
    let bodies: Vec<String> = (0..n)
        .map(|i| match case {
            "unique" => call_body(&format!("{MESSAGE} Your reference is {i}."), &uri),
            _ => call_body(MESSAGE, &uri),
        })
        .collect();
    let posted = Instant::now();
    let posted_wall = listen::wall_ms();
    rx.mark_start();
    let (ids, post_ms) = post_all(svc.api, bodies);
    let post_all_s = posted.elapsed().as_secs_f64();
    // Wait for every call to end (the message is about 40 s; with a text per call, every one is
    // rendered first).
    let wait = if case == "unique" { 3600 } else { 600 };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut last = (0, 0);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        last = finished(svc.api, &ids);
        if last.0 == ids.len() {
            break;
        }
    }
    let end = t0.elapsed().as_secs_f64();
    if last.0 < ids.len() {
        let (_, text) = http(svc.api, "GET", &format!("/calls/{}", ids[0]), "");
        println!("not every call ended; the first: {text}");
    }
    let (from_post, from_answer) = first_audio(svc.api, &ids, posted_wall);
    sampler.stop.store(true, Ordering::Relaxed);
    let streams = rx.take_streams();
    let stats = Stats::of(&streams, clock, STEADY_AFTER);
    let start_cores = sampler.cores(0.0, 10.0);
    let steady_cores = sampler.cores(STEADY_AFTER.as_secs_f64(), (end - 8.0).max(16.0));
    let peak = sampler.rss_max(0.0, end);
    let steady_rss = sampler.rss_max(STEADY_AFTER.as_secs_f64(), STEADY_AFTER.as_secs_f64() + 10.0);
    let mut sorted = post_ms.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "FIGURE load.media.{case}.n{n}: calls {} ended {} completed {}; {} POSTs in {:.2} s (p50 {:.1} ms, p99 {:.1} ms)",
        ids.len(),
        last.0,
        last.1,
        ids.len(),
        post_all_s,
        receiver::quantile(&sorted, 0.5),
        receiver::quantile(&sorted, 0.99),
    );
    println!("FIGURE load.media.{case}.n{n}.service: {}", stats.line());
    println!(
        "FIGURE load.media.{case}.n{n}.first_audio: {} calls spoke; first audio after the first POST {}; after the answer {}",
        from_post.len(),
        secs(&from_post),
        secs(&from_answer)
    );
    println!(
        "FIGURE load.media.{case}.n{n}.service_cpu: start (0-10 s) {:.1} % of a core, steady {:.1} % ({:.3} % per call)",
        start_cores * 100.0,
        steady_cores * 100.0,
        steady_cores * 100.0 / n as f64
    );
    println!(
        "FIGURE load.media.{case}.n{n}.service_rss: idle {:.1} MiB, steady {:.1} MiB ({:.0} KiB per call), peak {:.1} MiB",
        idle_rss as f64 / 1024.0,
        steady_rss as f64 / 1024.0,
        (steady_rss.saturating_sub(idle_rss)) as f64 / n as f64,
        peak as f64 / 1024.0
    );
    drop(uas);
    svc.signal("TERM");
    let _ = svc.wait_exit(Duration::from_secs(10));
    // The floor: SIPp replaying the service's first stream for N calls, to the same receiver. Not
    // with a text per call: a stream then begins with the minutes its call waited for its
    // rendering (the floor of N such streams is the cached case's).
    if case == "unique" {
        return;
    }
    if let Some(first) = streams.iter().max_by_key(|s| s.payloads.len()) {
        let pcap = dir.path().join("message.pcap");
        sipp::write_pcap(&pcap, &first.payloads, first.payload_type, clock);
        let rx2 = Receiver::start(n * 2 + 64);
        let uas2 = sipp::Uas::start(dir.path(), "floor-uas", rx2.port, codecs, n);
        let t1 = Instant::now();
        let uac = sipp::Uac::start(dir.path(), &uas2, &pcap, codecs, n, first.duration());
        rx2.mark_start();
        let usage = uac.wait(Duration::from_secs(240));
        let floor = Stats::of(&rx2.take_streams(), clock, STEADY_AFTER);
        println!(
            "FIGURE load.media.{case}.n{n}.sipp: {} (SIPp {:.1} % of a core over {:.0} s)",
            floor.line(),
            usage * 100.0 / t1.elapsed().as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
        println!(
            "FIGURE load.media.{case}.n{n}.ratio: steady lateness p99 {:.2}x, p99.9 {:.2}x SIPp's",
            stats.steady.p99 / floor.steady.p99,
            stats.steady.p999 / floor.steady.p999
        );
    }
}

fn rate(per_second: usize, seconds: usize) {
    println!("== rate: {per_second} calls/s for {seconds} s");
    let dir = tempfile::tempdir().expect("tempdir");
    let total = per_second * seconds;
    let concurrent = (per_second * 6).min(1024);
    let rx = Receiver::start(concurrent * 2 + 64);
    let uas = sipp::Uas::start(dir.path(), "rate-uas", rx.port, "PCMU", total);
    let svc = service(dir.path(), concurrent);
    let uri = uas.uri();
    let body = call_body("Short test message.", &uri);
    let start = Instant::now();
    let mut ids = Vec::new();
    let mut refused = 0;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / per_second as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (status, text) = http(svc.api, "POST", "/call", &body);
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&text).expect("json");
            ids.push(v["call_id"].as_str().expect("call_id").to_string());
        } else {
            refused += 1;
        }
    }
    let achieved = ids.len() as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && finished(svc.api, &ids).0 < ids.len() {
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut to_audio = Vec::new();
    let mut failed = 0;
    for id in &ids {
        let (_, text) = http(svc.api, "GET", &format!("/calls/{id}"), "");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if v["status"] != "completed" {
            failed += 1;
        }
        if let Some(ms) = v["media"]["answer_to_audio_ms"].as_f64() {
            to_audio.push(ms);
        }
    }
    to_audio.sort_by(f64::total_cmp);
    println!(
        "FIGURE load.rate.r{per_second}: {} calls posted at {achieved:.1}/s, {refused} refused, {failed} not completed; answer -> first audio p50 {:.1} ms p99 {:.1} ms",
        ids.len(),
        receiver::quantile(&to_audio, 0.5),
        receiver::quantile(&to_audio, 0.99)
    );
}

/// Install Debian's `wrk` when it is not on the PATH (apt-get, with sudo when not root).
fn ensure_wrk() {
    let have = |c: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {c} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("wrk") {
        return;
    }
    println!("wrk is missing: installing it (apt-get install wrk)");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let sudo = if root { "" } else { "sudo " };
    let script = format!(
        "{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq --no-install-recommends wrk"
    );
    let ok = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && have("wrk"), "cannot install wrk (apt-get install wrk)");
}

/// One wrk run: (requests per second, p50 ms, p99 ms).
fn wrk(dir: &Path, url: &str, script: Option<&str>, seconds: usize) -> (f64, f64, f64) {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency"]);
    if let Some(lua) = script {
        let path = dir.join("wrk.lua");
        std::fs::write(&path, lua).expect("wrk script");
        cmd.arg("-s").arg(path);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms = |v: &str| -> f64 {
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
            .unwrap_or_default()
    };
    let non_2xx = field("Non-2xx or 3xx responses:");
    if !non_2xx.is_empty() {
        println!("wrk {url}: {non_2xx} answers were not 2xx");
    }
    (
        field("Requests/sec:").parse().unwrap_or(f64::NAN),
        ms(&field("50%")),
        ms(&field("99%")),
    )
}

fn api(seconds: usize) {
    ensure_wrk();
    println!("== api: wrk, 64 connections, {seconds} s each");
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = Service::start(
        dir.path(),
        &[
            ("SIP_ASSISTANT__CALLS__QUEUE_LIMIT", "100000".into()),
            ("SIP_ASSISTANT__CALLS__MAX_CONCURRENT", "4".into()),
            ("SIP_ASSISTANT__API__RATE_LIMIT_PER_SECOND", "0".into()),
        ],
    );
    let base = format!("http://127.0.0.1:{}", svc.api);
    let post = r#"wrk.method = "POST"
wrk.body = '{"message": "Load test.", "extension": "sip:nobody@127.0.0.1:9", "ring_timeout": 5}'
wrk.headers["Content-Type"] = "application/json"
"#;
    let (rps, p50, p99) = wrk(dir.path(), &format!("{base}/call"), Some(post), seconds);
    println!("FIGURE load.api.post_call: {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms (each durable before its 200)");
    let (status, text) = http(
        svc.api,
        "POST",
        "/call",
        &call_body("One.", "sip:nobody@127.0.0.1:9"),
    );
    assert_eq!(status, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let id = v["call_id"].as_str().expect("call_id").to_string();
    let (rps, p50, p99) = wrk(dir.path(), &format!("{base}/call/{id}"), None, seconds);
    println!("FIGURE load.api.get_call: {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms");
    let (status, text) = http(svc.api, "GET", "/health", "");
    println!("after: /health {status} {text}");
}

fn listen_rounds(counts: &[usize]) {
    for &n in counts {
        listen_round(n);
    }
}

/// The service's choice of recogniser, as it logged it at start-up.
fn recognizer_line(svc: &Service) -> String {
    svc.lines()
        .lines()
        .find(|l| l.contains("speech recognizer"))
        .map(|l| {
            l.split("speech recognizer")
                .last()
                .unwrap_or(l)
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "(not logged)".into())
}

/// Install the Whisper model named by `SIP_ASSISTANT_WHISPER_MODEL` into the data dir under
/// `dir`, as `sip-assistant models import` does for a user; false when none is named.
fn import_whisper_model(dir: &Path) -> bool {
    let Some(model) = std::env::var_os("SIP_ASSISTANT_WHISPER_MODEL") else {
        return false;
    };
    let exe = std::env::var_os("SIP_ASSISTANT_TEST_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sip-assistant").into());
    let out = std::process::Command::new(exe)
        .args(["models", "import"])
        .arg(&model)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.join("data"))
        .output()
        .expect("sip-assistant models import");
    assert!(
        out.status.success(),
        "models import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// One row of the listen figures: quantiles of sorted `v` (ms).
fn ms_line(v: &[f64]) -> String {
    format!(
        "p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (n {})",
        receiver::quantile(v, 0.5),
        receiver::quantile(v, 0.95),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

fn listen_round(n: usize) {
    println!("== listen: {n} calls at once, each asking a question answered by voice");
    let dir = tempfile::tempdir().expect("tempdir");
    let answer = Arc::new(listen::Answer::spoken(dir.path(), "yes"));
    let imported = import_whisper_model(dir.path());
    let hooks = harness::Receiver::start(dir.path(), 0, 503, None, None);
    let uas = sipp::Uas::start_per_call_media(dir.path(), "listen-uas", n);
    let svc = service_with(dir.path(), n, &[]);
    println!(
        "recogniser (speech.stt = \"auto\"{}): {}",
        if imported {
            ", tiny.en imported"
        } else {
            ", no model installed"
        },
        recognizer_line(&svc)
    );
    let phones: Vec<listen::Phone> = (0..n)
        .map(|i| listen::Phone::start(answer.clone(), 0x5157_0000 + u32::try_from(i).expect("n")))
        .collect();
    let choice = serde_json::json!({
        "prompt": "Do you confirm the appointment? Say yes or no.",
        "options": [
            {"value": "confirmed", "synonyms": ["yes", "yeah", "confirm"]},
            {"value": "cancelled", "synonyms": ["no", "cancel"]}
        ],
        "timeout_seconds": 10,
        "repeat_count": 3
    });
    let bodies: Vec<String> = phones
        .iter()
        .map(|p| {
            serde_json::json!({
                "message": "This is a test of the answer line.",
                "extension": uas.uri_for(p.port),
                "ring_timeout": 30,
                "callback_url": hooks.url("/hook"),
                "choice": choice,
            })
            .to_string()
        })
        .collect();
    let t0 = Instant::now();
    let (ids, _) = post_all(svc.api, bodies);
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = (0, 0);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        done = finished(svc.api, &ids);
        if done.0 == ids.len() {
            break;
        }
    }
    let took = t0.elapsed().as_secs_f64();
    let logs: Vec<listen::PhoneLog> = phones.into_iter().map(listen::Phone::finish).collect();
    let speech_end = answer.speech_end.as_secs_f64() * 1000.0;
    let (mut to_heard, mut to_matched, mut to_reply) = (Vec::new(), Vec::new(), Vec::new());
    let (mut decided, mut confirmed, mut asked_back, mut rec_errors, mut no_choice, mut other) =
        (0, 0, 0, 0, 0, 0);
    let mut errors: Vec<String> = Vec::new();
    for (id, log) in ids.iter().zip(&logs) {
        let r = record(svc.api, id);
        let timeline = r["timeline"].as_array().cloned().unwrap_or_default();
        let at = |name: &str| {
            timeline
                .iter()
                .find(|e| e["event"] == name)
                .and_then(|e| epoch_ms(&e["at"]))
        };
        for e in timeline.iter().filter(|e| e["event"] == "recognizer_error") {
            rec_errors += 1;
            if errors.len() < 3 {
                errors.push(e["detail"].as_str().unwrap_or("").to_string());
            }
        }
        if timeline.iter().any(|e| e["event"] == "confirm") {
            asked_back += 1;
        }
        if timeline.iter().any(|e| e["event"] == "no_choice") {
            no_choice += 1;
        }
        match (r["status"].as_str(), r["choice_response"].as_str()) {
            (Some("completed"), Some(choice)) => {
                decided += 1;
                if choice == "confirmed" {
                    confirmed += 1;
                }
            }
            (Some("completed"), None) => {}
            _ => other += 1,
        }
        let (Some(heard), Some(matched)) = (at("heard"), at("matched")) else {
            continue;
        };
        // The answer that was decided on: the last one that began before the recogniser's result.
        let Some((k, start)) = log
            .answers
            .iter()
            .enumerate()
            .rfind(|(_, &a)| a < heard)
            .map(|(k, &a)| (k, a))
        else {
            continue;
        };
        let eos = start + speech_end;
        to_heard.push(heard - eos);
        to_matched.push(matched - eos);
        if let Some(Some(reply)) = log.replies.get(k) {
            to_reply.push(reply - eos);
        }
    }
    for v in [&mut to_heard, &mut to_matched, &mut to_reply] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "FIGURE load.listen.n{n}: {} calls, {} ended ({} completed) in {took:.1} s; {decided} with a choice ({confirmed} confirmed), {no_choice} no choice, {other} not completed; {asked_back} asked back; {rec_errors} recogniser failures{}",
        ids.len(),
        done.0,
        done.1,
        if errors.is_empty() { String::new() } else { format!(" (e.g. {:?})", errors) }
    );
    println!("FIGURE load.listen.n{n}.eos_to_heard: {}", ms_line(&to_heard));
    println!("FIGURE load.listen.n{n}.eos_to_matched: {}", ms_line(&to_matched));
    println!(
        "FIGURE load.listen.n{n}.eos_to_reply_audio: {}",
        ms_line(&to_reply)
    );
    let answers: usize = logs.iter().map(|l| l.answers.len()).sum();
    println!(
        "listen n{n}: answer {:.0} ms of audio, voiced to {speech_end:.0} ms; {answers} answers spoken in all",
        answer.frames.len() as f64 * 20.0
    );
    drop(uas);
    drop(hooks);
}
