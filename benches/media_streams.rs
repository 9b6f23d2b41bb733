//! Media plane benchmark (a program that prints figures; not a timed test).
//!
//! `cargo bench --bench media_streams -- [STREAMS] [SECONDS] [g711|opus]` (defaults: 500 20 g711)
//!
//! Starts STREAMS sessions on the real media thread, each sending 20 ms frames (G.711 silence and
//! prompt frames, or pre-encoded Opus prompt frames) to one loopback sink socket. The sink stamps
//! every arrival. Per stream, `arrival − seq · 20 ms` would be constant for perfect pacing; a
//! packet's send-time error (lateness) is its value minus the stream's smallest one. Prints
//! p50/p99/max of that lateness, the drift (mean lateness of the last 50 packets minus the first
//! 50), CPU % per stream and RSS.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_assistant::driver::media::MediaThread;
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
    let codec = if opus { AudioCodec::Opus } else { AudioCodec::Pcmu };

    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    let sink_addr = sink.local_addr().expect("addr");
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let collector = std::thread::spawn(move || {
        // ssrc -> (first arrival, first seq, errors in µs)
        let mut per: Arrivals = HashMap::new();
        let mut buf = [0u8; 2048];
        let t0 = Instant::now();
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

    let (media, _thread) =
        MediaThread::start(40_000, 40_000 + (streams as u16) * 2 + 10).expect("media thread");
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
    for i in 0..streams {
        let ports = media.bind_ports().expect("ports");
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
