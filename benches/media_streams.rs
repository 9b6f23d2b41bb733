//! Media plane benchmark (a program that prints figures; not a timed test).
//!
//! `cargo bench --bench media_streams -- [STREAMS] [SECONDS] [g711|opus] [flood]` (defaults: 500 20
//! g711)
//!
//! Starts STREAMS sessions on the real media thread, each sending 20 ms frames (G.711 silence and
//! prompt frames, or pre-encoded Opus prompt frames) to one loopback sink socket. The sink stamps
//! every arrival. Per stream, `arrival − seq · 20 ms` would be constant for perfect pacing; a
//! packet's send-time error (lateness) is its value minus the stream's smallest one. Prints
//! p50/p99/max of that lateness, the drift (mean lateness of the last 50 packets minus the first
//! 50), CPU % per stream and RSS.
//!
//! `flood` (issue #14, finding 4): the first half of the run is quiet; in the second half another
//! loopback host (127.0.0.2) floods the first stream's RTP port at about 25,000 packets/s (key 1
//! among them) and a third (127.0.0.3) sprays every port of the range every 20 ms. Prints the other
//! streams' lateness and loss in each half, the flooded stream's counters and RSS before, during
//! and after the flood.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_assistant::driver::media::{MediaHandle, MediaThread};
use sip_assistant::media::session::{AudioCodec, SessionParams};

/// Per stream (by SSRC): first arrival, first sequence number, (time, error µs) per packet.
type Arrivals = HashMap<u32, (Instant, u16, Vec<(Duration, f64)>)>;

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (USER_HZ = 100 on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let streams: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(500);
    let seconds: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(20);
    let opus = args.get(2).is_some_and(|c| c == "opus");
    let flood = args.get(3).is_some_and(|c| c == "flood");
    let codec = if opus { AudioCodec::Opus } else { AudioCodec::Pcmu };

    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    let sink_addr = sink.local_addr().expect("addr");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let t0 = Instant::now();
    let collector = std::thread::spawn(move || {
        // ssrc -> (first arrival, first seq, errors in µs)
        let mut per: Arrivals = HashMap::new();
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            let Ok((n, _)) = sink.recv_from(&mut buf) else {
                continue;
            };
            let now = Instant::now();
            // Skip RTCP (payload types 200-204 in the second byte).
            if n < 12 || (200..=204).contains(&buf[1]) {
                continue;
            }
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
            let e = per.entry(ssrc).or_insert((now, seq, Vec::new()));
            let k = seq.wrapping_sub(e.1) as u32;
            let ideal = e.0 + Duration::from_millis(20) * k;
            let err_us = if now >= ideal {
                (now - ideal).as_secs_f64() * 1e6
            } else {
                -((ideal - now).as_secs_f64() * 1e6)
            };
            e.2.push((now - t0, err_us));
        }
        per
    });

    let (min_port, max_port) = (40_000, 40_000 + (streams as u16) * 2 + 10);
    let (media, _thread) = MediaThread::start(min_port, max_port).expect("media thread");
    // A 10 s prompt, pre-encoded once and shared by every stream.
    let tone: Vec<i16> = (0..(codec.clock_rate() * 10) as usize)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / codec.clock_rate() as f64).sin() * 8000.0)
                as i16
        })
        .collect();
    let (frames, silence): (Vec<Vec<u8>>, Vec<u8>) = if opus {
        let frames = sip_assistant::media::opus_codec::encode_prompt(&tone).expect("opus encode");
        let silence =
            sip_assistant::media::opus_codec::encode_prompt(&vec![0i16; 960]).expect("opus silence");
        (frames, silence.into_iter().next().unwrap_or_default())
    } else {
        let mut enc = Vec::new();
        sip_assistant::media::g711::encode(sip_assistant::media::g711::Law::Ulaw, &tone, &mut enc);
        (enc.chunks(160).map(<[u8]>::to_vec).collect(), vec![0xFF; 160])
    };
    let frames = Arc::new(frames);

    let cpu0 = cpu_seconds();
    let rss0 = rss_mib();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(streams);
    let mut flooded_port = 0;
    for i in 0..streams {
        let ports = media.bind_ports().expect("ports");
        if i == 0 {
            flooded_port = ports.port;
        }
        let params = SessionParams {
            codec,
            payload_type: if opus { 111 } else { 0 },
            dtmf_payload_type: Some(101),
            remote: sink_addr,
            remote_rtcp: sink_addr,
            ssrc: 0x1000_0000 + i as u32,
            initial_seq: 0,
            initial_timestamp: 0,
        };
        let h = media.open(ports, params, silence.clone()).expect("session");
        h.play(frames.clone()).expect("play");
        handles.push(h);
    }
    if flood {
        flood_run(FloodRun {
            handles,
            seconds,
            t0,
            flooded_port,
            range: (min_port, max_port),
            rss_idle: rss0,
            stop,
            collector,
        });
        return;
    }
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rss = rss_mib();
    for h in handles {
        let _ = smol::block_on(h.close());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let per = collector.join().expect("collector");

    let mut all: Vec<f64> = Vec::new();
    let mut drifts: Vec<f64> = Vec::new();
    let mut packets = 0usize;
    for (_, (_, _, errs)) in per.iter() {
        packets += errs.len();
        let base = errs.iter().map(|(_, e)| *e).fold(f64::INFINITY, f64::min);
        let errs: Vec<(Duration, f64)> = errs.iter().map(|(t, e)| (*t, e - base)).collect();
        all.extend(errs.iter().map(|(_, e)| *e));
        if errs.len() > 100 {
            let first: f64 = errs[..50].iter().map(|(_, e)| e).sum::<f64>() / 50.0;
            let last: f64 = errs[errs.len() - 50..].iter().map(|(_, e)| e).sum::<f64>() / 50.0;
            drifts.push(last - first);
        }
    }
    all.sort_by(|a, b| a.total_cmp(b));
    drifts.sort_by(|a, b| a.total_cmp(b));
    let expected = streams as f64 * wall * 50.0;
    println!(
        "media_streams: {streams} {} streams for {wall:.1} s to a loopback sink",
        codec.name()
    );
    println!(
        "  packets received   {packets} ({:.1} % of {expected:.0} expected)",
        packets as f64 * 100.0 / expected
    );
    println!(
        "  send-time lateness p50 {:.0} µs   p99 {:.0} µs   max {:.0} µs",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0.0)
    );
    println!(
        "  drift over the run median {:.0} µs   worst {:.0} µs",
        percentile(&drifts, 0.5),
        drifts.iter().map(|d| d.abs()).fold(0.0, f64::max)
    );
    println!(
        "  CPU                {:.1} % of one core in all, {:.3} % per stream",
        cpu * 100.0 / wall,
        cpu * 100.0 / wall / streams as f64
    );
    println!("  RSS                {rss:.1} MiB (idle before streams {rss0:.1} MiB)");
}

struct FloodRun {
    handles: Vec<MediaHandle>,
    seconds: u64,
    t0: Instant,
    flooded_port: u16,
    range: (u16, u16),
    rss_idle: f64,
    stop: Arc<AtomicBool>,
    collector: std::thread::JoinHandle<Arrivals>,
}

fn rtp_packet(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0xad];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Send `per_ms` packets per millisecond from `from` until `on` turns false; how many were sent.
fn attacker(
    from: &str,
    per_ms: u64,
    on: Arc<AtomicBool>,
    mut next: impl FnMut(u64) -> (Vec<u8>, std::net::SocketAddr) + Send + 'static,
) -> std::thread::JoinHandle<u64> {
    let socket = UdpSocket::bind(from).expect("attacker socket on loopback");
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while on.load(Ordering::Relaxed) {
            for _ in 0..per_ms {
                let (p, to) = next(sent);
                if socket.send_to(&p, to).is_ok() {
                    sent += 1;
                }
            }
            let due = start + Duration::from_micros(sent * 1000 / per_ms.max(1));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        sent
    })
}

/// Lateness p50/p99/max (µs) and packets of the streams other than `skip` in `[from, to)`.
fn window(per: &Arrivals, skip: u32, from: Duration, to: Duration) -> (f64, f64, f64, usize) {
    let mut all = Vec::new();
    for (ssrc, (_, _, errs)) in per {
        if *ssrc == skip {
            continue;
        }
        let base = errs.iter().map(|(_, e)| *e).fold(f64::INFINITY, f64::min);
        all.extend(
            errs.iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|(_, e)| e - base),
        );
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let n = all.len();
    (
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0.0),
        n,
    )
}

fn flood_run(run: FloodRun) {
    let half = Duration::from_secs(run.seconds.max(2) / 2);
    // Leave the first second out: streams start during it.
    std::thread::sleep(Duration::from_secs(1) + half);
    let quiet = (Duration::from_secs(1), run.t0.elapsed());
    let rss_before = rss_mib();
    let on = Arc::new(AtomicBool::new(true));
    let target: std::net::SocketAddr = ([127, 0, 0, 1], run.flooded_port).into();
    let silence = vec![0xFFu8; 160];
    let flooder = attacker("127.0.0.2:0", 25, on.clone(), move |n| {
        let p = if n % 50 == 0 {
            rtp_packet(101, n as u16, &[1, 0x8a, 0x01, 0xe0])
        } else {
            rtp_packet(0, n as u16, &silence)
        };
        (p, target)
    });
    let (lo, hi) = run.range;
    let span = u64::from(hi - lo) + 1;
    // Every port of the range once per 20 ms.
    let per_ms = span.div_ceil(20);
    let sprayer = attacker("127.0.0.3:0", per_ms, on.clone(), move |n| {
        let port = lo + (n % span) as u16;
        (
            rtp_packet(101, n as u16, &[1, 0x8a, 0x01, 0xe0]),
            ([127, 0, 0, 1], port).into(),
        )
    });
    let flood_from = run.t0.elapsed();
    std::thread::sleep(half);
    let flood_to = run.t0.elapsed();
    let rss_during = rss_mib();
    on.store(false, Ordering::Relaxed);
    let flood_sent = flooder.join().unwrap_or(0);
    let spray_sent = sprayer.join().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = rss_mib();
    let mut healths = Vec::new();
    for h in run.handles {
        healths.push(smol::block_on(h.close()).ok());
    }
    std::thread::sleep(Duration::from_millis(300));
    run.stop.store(true, Ordering::Relaxed);
    let per = run.collector.join().expect("collector");
    let flooded_ssrc = 0x1000_0000;
    let others = healths.len().saturating_sub(1);
    let flood_secs = (flood_to - flood_from).as_secs_f64();
    println!(
        "media_streams flood: {} streams; stream 1 flooded from 127.0.0.2, the range sprayed from 127.0.0.3",
        healths.len()
    );
    println!(
        "  attack             {flood_sent} packets to one port ({:.0}/s), {spray_sent} sprayed over {span} ports",
        flood_sent as f64 / flood_secs
    );
    for (name, (from, to)) in [("quiet ", quiet), ("flood ", (flood_from, flood_to))] {
        let (p50, p99, max, n) = window(&per, flooded_ssrc, from, to);
        let expected = others as f64 * (to - from).as_secs_f64() * 50.0;
        println!(
            "  {name} other {others} streams: lateness p50 {p50:.0} µs  p99 {p99:.0} µs  max {max:.0} µs; \
             received {n} of {expected:.0} expected ({:.2} % loss)",
            (1.0 - n as f64 / expected).max(0.0) * 100.0
        );
    }
    let flooded_sent_during = per.get(&flooded_ssrc).map_or(0, |(_, _, e)| {
        e.iter()
            .filter(|(t, _)| *t >= flood_from && *t < flood_to)
            .count()
    });
    if let Some(Some(h)) = healths.first() {
        println!(
            "  flooded stream     {flooded_sent_during} packets reached its own far end during the flood; \
             rejected {} datagrams, decoded none ({} received), {} events dropped",
            h.rejected_packets, h.packets_received, h.events_dropped
        );
    }
    let rejected: u64 = healths.iter().flatten().skip(1).map(|h| h.rejected_packets).sum();
    let received: u64 = healths.iter().flatten().skip(1).map(|h| h.packets_received).sum();
    println!("  other streams      rejected {rejected} sprayed datagrams, accepted {received}");
    println!(
        "  RSS                idle {:.1} MiB, before the flood {rss_before:.1} MiB, at its end {rss_during:.1} MiB, 1 s after {rss_after:.1} MiB",
        run.rss_idle
    );
}
