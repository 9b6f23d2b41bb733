//! The load bench's RTP receiver: one UDP socket on 127.0.0.1 (a large kernel buffer), one thread
//! that stamps every datagram on arrival and files it under its stream (source address + SSRC), and
//! the figures over the streams: lateness against each stream's ideal grid, loss, drift.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One packet as received: extended sequence number, RTP timestamp, arrival (since the receiver's
/// mark).
#[derive(Clone, Copy)]
pub struct Arrival {
    pub seq: u16,
    pub ts: u32,
    pub at: Duration,
}

/// Everything one stream delivered.
#[derive(Default)]
pub struct Stream {
    pub packets: Vec<Arrival>,
    /// The payloads in arrival order (kept for the first streams only: the floor's pcap).
    pub payloads: Vec<Vec<u8>>,
    pub payload_type: u8,
}

impl Stream {
    /// From the first packet to the last.
    pub fn duration(&self) -> Duration {
        match (self.packets.first(), self.packets.last()) {
            (Some(a), Some(b)) => b.at.saturating_sub(a.at),
            _ => Duration::ZERO,
        }
    }
}

/// Streams whose payloads are kept.
const KEEP_PAYLOADS: usize = 4;

type Streams = HashMap<(SocketAddr, u32), Stream>;

pub struct Receiver {
    pub port: u16,
    streams: Arc<Mutex<Streams>>,
    mark: Arc<Mutex<Instant>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Listen on 127.0.0.1:0 with room for about `streams` streams' packets in the kernel buffer.
    pub fn start(streams: usize) -> Receiver {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("receiver socket");
        let bytes = i32::try_from((streams * 64 * 1024).min(256 << 20)).unwrap_or(i32::MAX);
        // SO_RCVBUFFORCE (root) past net.core.rmem_max, else SO_RCVBUF up to it.
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: a valid socket and a pointer to an int of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    std::ptr::from_ref(&bytes).cast(),
                    std::mem::size_of::<i32>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let all: Arc<Mutex<Streams>> = Arc::default();
        let mark = Arc::new(Mutex::new(Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, m, st) = (all.clone(), mark.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut local: Streams = HashMap::new();
            let mut since_flush = 0usize;
            let mut keep: Vec<(SocketAddr, u32)> = Vec::new();
            while !st.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    flush(&mut local, &s);
                    continue;
                };
                let now = Instant::now();
                let Some(pkt) = buf.get(..len) else { continue };
                if pkt.len() < 12 || pkt[0] >> 6 != 2 {
                    continue;
                }
                let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
                let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
                let at = now.saturating_duration_since(*m.lock().expect("mark"));
                if keep.len() < KEEP_PAYLOADS && !keep.contains(&(from, ssrc)) {
                    keep.push((from, ssrc));
                }
                let stream = local.entry((from, ssrc)).or_default();
                stream.payload_type = pkt[1] & 0x7f;
                stream.packets.push(Arrival { seq, ts, at });
                if keep.contains(&(from, ssrc)) {
                    stream.payloads.push(pkt[12..].to_vec());
                }
                since_flush += 1;
                if since_flush >= 4096 {
                    flush(&mut local, &s);
                    since_flush = 0;
                }
            }
            flush(&mut local, &s);
        });
        Receiver {
            port,
            streams: all,
            mark,
            stop,
            thread: Some(thread),
        }
    }

    /// Arrival times count from now.
    pub fn mark_start(&self) {
        *self.mark.lock().expect("mark") = Instant::now();
    }

    /// Stop receiving; every stream.
    pub fn take_streams(mut self) -> Vec<Stream> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut all = self.streams.lock().expect("streams");
        std::mem::take(&mut *all).into_values().collect()
    }
}

/// Move the thread's packets into the shared map.
fn flush(local: &mut Streams, shared: &Mutex<Streams>) {
    let mut all = shared.lock().expect("streams");
    for (key, mut s) in local.drain() {
        let into = all.entry(key).or_default();
        into.payload_type = s.payload_type;
        into.packets.append(&mut s.packets);
        into.payloads.append(&mut s.payloads);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Lateness figures (ms) over a set of packets.
#[derive(Default)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Lateness {
    fn of(mut v: Vec<f64>) -> Lateness {
        v.sort_by(f64::total_cmp);
        Lateness {
            p50: quantile(&v, 0.5),
            p99: quantile(&v, 0.99),
            p999: quantile(&v, 0.999),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Figures over all streams of a run.
pub struct Stats {
    pub streams: usize,
    pub received: usize,
    pub lost: usize,
    pub all: Lateness,
    pub steady: Lateness,
    /// Per-stream drift (ms): p50 and max.
    pub drift_p50: f64,
    pub drift_max: f64,
}

impl Stats {
    /// `clock`: the RTP clock rate; packets that arrived `steady_after` or later are the steady
    /// state.
    pub fn of(streams: &[Stream], clock: u32, steady_after: Duration) -> Stats {
        let mut all = Vec::new();
        let mut steady = Vec::new();
        let mut drifts = Vec::new();
        let (mut received, mut lost) = (0, 0);
        for s in streams.iter().filter(|s| s.packets.len() > 10) {
            let first = s.packets[0];
            // Extended sequence numbers and timestamps (wrap-around).
            let (mut seq, mut ts) = (0i64, 0i64);
            let (mut last_seq, mut last_ts) = (first.seq, first.ts);
            let (mut lo, mut hi) = (0i64, 0i64);
            let mut offsets = Vec::with_capacity(s.packets.len());
            for p in &s.packets {
                seq += i64::from(p.seq.wrapping_sub(last_seq) as i16);
                ts += i64::from(p.ts.wrapping_sub(last_ts) as i32);
                last_seq = p.seq;
                last_ts = p.ts;
                lo = lo.min(seq);
                hi = hi.max(seq);
                let ideal = ts as f64 * 1000.0 / f64::from(clock);
                offsets.push((p.at, p.at.as_secs_f64() * 1000.0 - ideal));
            }
            let base = offsets.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
            for (at, off) in &offsets {
                all.push(off - base);
                if *at >= steady_after {
                    steady.push(off - base);
                }
            }
            let span = |from: Duration, to: Duration| {
                offsets
                    .iter()
                    .filter(|(at, _)| *at >= from && *at < to)
                    .map(|o| o.1)
                    .fold(f64::INFINITY, f64::min)
            };
            let (start, end) = (first.at, s.packets[s.packets.len() - 1].at);
            let two = Duration::from_secs(2);
            drifts.push((span(end.saturating_sub(two), end + two) - span(start, start + two)).abs());
            received += s.packets.len();
            lost += usize::try_from(hi - lo + 1)
                .unwrap_or(0)
                .saturating_sub(s.packets.len());
        }
        drifts.sort_by(f64::total_cmp);
        Stats {
            streams: drifts.len(),
            received,
            lost,
            all: Lateness::of(all),
            steady: Lateness::of(steady),
            drift_p50: quantile(&drifts, 0.5),
            drift_max: drifts.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// One line of figures.
    pub fn line(&self) -> String {
        let loss = self.lost as f64 * 100.0 / (self.received + self.lost).max(1) as f64;
        format!(
            "{} streams, {} packets, loss {:.3} %; lateness ms all p50/p99/p99.9/max {:.2}/{:.2}/{:.2}/{:.2}, \
             steady {:.2}/{:.2}/{:.2}/{:.2}; drift p50 {:.2} ms, max {:.2} ms",
            self.streams,
            self.received,
            loss,
            self.all.p50,
            self.all.p99,
            self.all.p999,
            self.all.max,
            self.steady.p50,
            self.steady.p99,
            self.steady.p999,
            self.steady.max,
            self.drift_p50,
            self.drift_max
        )
    }
}

/// `q` quantile (0..1) of sorted `v`, nearest rank; NaN when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}
