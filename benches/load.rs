//! Load figures for issue #15, measured on the release binary with SIPp on 127.0.0.1. Prints figures;
//! asserts nothing about speed.
//!
//! ```sh
//! cargo bench --bench load -- media 1000 cached   # N calls at once, every one speaking the same ~40 s message
//! cargo bench --bench load -- media 500 unique    # a text of its own per call (TTS counted)
//! cargo bench --bench load -- media 300 opus      # Opus instead of G.711
//! cargo bench --bench load -- rate 50 60          # 50 calls/s for 60 s, short message
//! cargo bench --bench load -- api 10              # POST /call and GET /call/{id} with wrk, 64 connections
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
//!
//! **api SECONDS**: `wrk` (Debian package `wrk`; the bench installs nothing itself) with 64 connections
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
        [] => {
            media(100, "cached");
            rate(20, 20);
        }
        _ => panic!("usage: load media N [cached|unique|opus] | rate R SECONDS | api SECONDS"),
    }
}

/// The service for `calls` concurrent calls with its default codec list (PCMU, PCMA, opus: every
/// prompt is encoded for each while the phone rings), on loopback ports of its own.
fn service(dir: &Path, calls: usize) -> Service {
    let ports = u16::try_from(calls * 2 + 8).expect("ports");
    let base = peers::free_port_block(ports + 1).next_multiple_of(2);
    Service::start(
        dir,
        &[
            ("SIP_ASSISTANT__CALLS__MAX_CONCURRENT", calls.to_string()),
            ("SIP_ASSISTANT__MEDIA__RTP_PORT_MIN", base.to_string()),
            (
                "SIP_ASSISTANT__MEDIA__RTP_PORT_MAX",
                (base + ports - 1).to_string(),
            ),
            ("SIP_ASSISTANT__API__RATE_LIMIT_PER_SECOND", "0".into()),
        ],
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

/// POST `bodies` from 16 threads at once; the call ids and every POST's duration in ms.
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
                    out.push((v["call_id"].as_str().expect("call_id").to_string(), ms));
                }
                out
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut times = Vec::new();
    for t in threads {
        for (id, ms) in t.join().expect("poster") {
            ids.push(id);
            times.push(ms);
        }
    }
    (ids, times)
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
    rx.mark_start();
    let (ids, post_ms) = post_all(svc.api, bodies);
    let post_all_s = posted.elapsed().as_secs_f64();
    // Wait for every call to end (the message is about 40 s).
    let deadline = Instant::now() + Duration::from_secs(600);
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
    // The floor: SIPp replaying the service's first stream for N calls, to the same receiver.
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
