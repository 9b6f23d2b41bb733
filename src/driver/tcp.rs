//! SIP's TCP connections: the accept loop, one task per connection (reader, writer and idle
//! watch), and the table the SIP driver sends through.
//!
//! Nothing here can stall the driver or another peer: the driver hands each message to the
//! connection's bounded queue without waiting ([`Connections::send`]); a full queue or a write that
//! takes longer than `sip.tcp_write_timeout_ms` closes that connection only. Accepted connections
//! are capped at `sip.tcp_max_connections` (more are closed at once), connections quiet for
//! `sip.tcp_idle_seconds` are closed (but the registrar's own), every channel is bounded, and the
//! accept loop backs off and keeps going when the process runs out of file descriptors.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use smol::net::{TcpListener, TcpStream};
use smol::Timer;

use super::framing::Framer;
use crate::sip::ua::{Dest, Transport};

/// Messages waiting for one connection's writer; one more closes the connection.
pub const SEND_QUEUE: usize = 32;
/// Events from all connections to the driver; a full queue holds the readers back.
pub const NET_QUEUE: usize = 256;
/// Longest an outbound TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// First and longest pause of the accept loop when the process is out of descriptors or memory.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning of a kind per this period; the rest are counted.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The TCP limits from `[sip]`.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Accepted connections open at once (`sip.tcp_max_connections`); as many outbound ones.
    pub max_connections: usize,
    /// A connection with no traffic this long is closed (`sip.tcp_idle_seconds`).
    pub idle: Duration,
    /// Longest one message may take to write (`sip.tcp_write_timeout_ms`).
    pub write_timeout: Duration,
}

/// What the connections tell the driver.
pub enum Net {
    Message {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Accepted(SocketAddr, TcpStream, Slot),
    Closed {
        from: SocketAddr,
        conn: u64,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the send queue to {0} is full (the peer does not read); connection closed")]
    QueueFull(SocketAddr),
    #[error("{0} outbound TCP connections are open already")]
    TooMany(usize),
}

/// One place among at most `max` live connections (and, for accepted ones, among the peer host's
/// share of them); given back when dropped.
pub struct Slot(Vec<Arc<AtomicUsize>>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(vec![count.clone()]))
    }

    /// This slot and a place among `max` in `count` too, or `None` (and this one given back).
    fn and(mut self, count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        let mut other = Slot::take(count, max)?;
        self.0.append(&mut other.0);
        Some(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        for c in &self.0 {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Accepted connections one peer host may hold: a share of `sip.tcp_max_connections`, so one host
/// that opens connections and leaves them idle cannot lock the others (the PBX) out.
pub fn per_host_limit(max: usize) -> usize {
    (max / 8).max(4).min(max)
}

/// The connections each peer host holds (entries with none are dropped once the table grows).
#[derive(Default)]
struct PerHost(HashMap<IpAddr, Arc<AtomicUsize>>);

impl PerHost {
    fn slot(&mut self, host: IpAddr, max: usize, global: Slot) -> Option<Slot> {
        if self.0.len() >= 4096 {
            self.0.retain(|_, c| c.load(Ordering::SeqCst) > 0);
        }
        let count = self.0.entry(host).or_default().clone();
        global.and(&count, max)
    }
}

/// Lets one warning through per [`WARN_EVERY`] and counts the ones held back.
#[derive(Debug, Default)]
pub struct WarnLimiter {
    last: Option<Instant>,
    held: u64,
}

impl WarnLimiter {
    /// `Some(held back since the last one)` when a warning may be logged at `now`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < WARN_EVERY => {
                self.held = self.held.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A live connection as the driver sees it.
struct Conn {
    id: u64,
    queue: Sender<Vec<u8>>,
    /// The destination the user agent named when we opened it (its host may be a name).
    dest: Option<Dest>,
}

/// The driver's TCP connections by peer address.
pub struct Connections {
    conns: HashMap<SocketAddr, Conn>,
    limits: TcpLimits,
    net: Sender<Net>,
    outbound: Arc<AtomicUsize>,
}

impl Connections {
    /// An empty table; connections report to `net`.
    pub fn new(limits: TcpLimits, net: Sender<Net>) -> Self {
        Self {
            conns: HashMap::new(),
            limits,
            net,
            outbound: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Accept on `listener` for as long as the driver runs.
    pub fn listen(&self, listener: TcpListener) {
        crate::supervise::global()
            .spawn(
                "sip tcp accept loop",
                accept_loop(listener, self.net.clone(), self.limits.max_connections),
            )
            .detach();
    }

    /// Take on a connection the accept loop let in. A connection from an address we already have
    /// replaces it (the old one's queue closes).
    pub fn adopt(&mut self, from: SocketAddr, stream: TcpStream, slot: Slot) {
        self.start(from, Ok(stream), slot, false, None);
    }

    /// Spawn the task of one connection (on `stream`, or connecting to `addr` first) and keep its
    /// queue; returns the queue for a first message.
    fn start(
        &mut self,
        addr: SocketAddr,
        stream: Result<TcpStream, SocketAddr>,
        slot: Slot,
        keep_alive: bool,
        dest: Option<Dest>,
    ) -> Sender<Vec<u8>> {
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = async_channel::bounded(SEND_QUEUE);
        let link = Link {
            from: addr,
            id,
            limits: self.limits,
            keep_alive,
            net: self.net.clone(),
            _slot: slot,
        };
        crate::supervise::global()
            .spawn("sip tcp connection", link.run(stream, rx))
            .detach();
        self.conns.insert(
            addr,
            Conn {
                id,
                queue: queue.clone(),
                dest,
            },
        );
        queue
    }

    /// Queue `bytes` for `addr` (`dest` as the user agent named it), connecting first when there
    /// is no connection. Never waits. `keep_alive` exempts a new connection from the idle timeout.
    pub fn send(
        &mut self,
        addr: SocketAddr,
        dest: &Dest,
        bytes: &[u8],
        keep_alive: bool,
    ) -> Result<(), SendError> {
        if let Some(conn) = self.conns.get(&addr) {
            match conn.queue.try_send(bytes.to_vec()) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => {
                    // Dropping the queue makes its writer close the connection.
                    self.conns.remove(&addr);
                    tracing::warn!(peer = %addr, queued = SEND_QUEUE, "closing SIP TCP connection: the peer does not read");
                    return Err(SendError::QueueFull(addr));
                }
                // The connection ended and its report is on the way: open a new one.
                Err(TrySendError::Closed(_)) => {
                    self.conns.remove(&addr);
                }
            }
        }
        let slot = Slot::take(&self.outbound, self.limits.max_connections)
            .ok_or(SendError::TooMany(self.limits.max_connections))?;
        let queue = self.start(addr, Err(addr), slot, keep_alive, Some(dest.clone()));
        // A new queue has room for its first message.
        let _ = queue.try_send(bytes.to_vec());
        Ok(())
    }

    /// Connection `conn` to `from` ended: forget it and return the destinations the user agent
    /// should hear about, or nothing when the driver had dropped it already (and said so).
    pub fn closed(&mut self, from: SocketAddr, conn: u64) -> Vec<Dest> {
        if self.conns.get(&from).map(|c| c.id) != Some(conn) {
            return Vec::new();
        }
        let named = self.conns.remove(&from).and_then(|c| c.dest);
        let by_address = Dest {
            host: from.ip().to_string(),
            port: from.port(),
            transport: Transport::Tcp,
        };
        let mut dests = vec![by_address];
        dests.extend(named.filter(|d| !dests.contains(d)));
        dests
    }

    /// Connections open now (both directions).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

/// Whether an accept error means the process or system is out of a resource (descriptors,
/// buffers, memory): worth a pause before the next try.
fn out_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn accept_loop(listener: TcpListener, net: Sender<Net>, max: usize) {
    let inbound = Arc::new(AtomicUsize::new(0));
    let mut per_host = PerHost::default();
    let host_max = per_host_limit(max);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let (mut full_warn, mut error_warn) = (WarnLimiter::default(), WarnLimiter::default());
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let slot = Slot::take(&inbound, max).and_then(|g| per_host.slot(from.ip(), host_max, g));
                match slot {
                    Some(slot) => {
                        if net.send(Net::Accepted(from, stream, slot)).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let _ = stream.shutdown(Shutdown::Both);
                        drop(stream);
                        if let Some(held) = full_warn.allow(Instant::now()) {
                            tracing::warn!(peer = %from, max, per_host = host_max, held_back = held, "SIP TCP connection limit reached (sip.tcp_max_connections, or this host's share of it): closing new connections");
                        }
                    }
                }
            }
            Err(e) if out_of_resources(&e) => {
                if let Some(held) = error_warn.allow(Instant::now()) {
                    tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, held_back = held, "cannot accept SIP TCP connections (out of descriptors or memory); pausing");
                }
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
            Err(e) => {
                // A connection reset before we took it, an interrupted call: the next one is fine.
                if let Some(held) = error_warn.allow(Instant::now()) {
                    tracing::warn!(error = %e, held_back = held, "SIP TCP accept failed; going on");
                }
                // A pause for errors that persist, so they cannot spin the executor.
                Timer::after(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One connection's task: reads messages to the driver, writes its queue, watches for idleness;
/// the first of the three to stop closes the connection and reports why.
struct Link {
    from: SocketAddr,
    id: u64,
    limits: TcpLimits,
    keep_alive: bool,
    net: Sender<Net>,
    _slot: Slot,
}

impl Link {
    /// Run on `stream`, or connect to the address first.
    async fn run(self, stream: Result<TcpStream, SocketAddr>, queue: Receiver<Vec<u8>>) {
        let stream = match stream {
            Ok(s) => s,
            Err(addr) => {
                let connect = async { TcpStream::connect(addr).await.map_err(|e| e.to_string()) };
                let timeout = async {
                    Timer::after(CONNECT_TIMEOUT).await;
                    Err(format!("TCP connect to {addr} timed out"))
                };
                match connect.or(timeout).await {
                    Ok(s) => s,
                    Err(reason) => return self.report(reason).await,
                }
            }
        };
        let born = Instant::now();
        let last = AtomicU64::new(0);
        let reason = {
            let read = self.read(stream.clone(), born, &last);
            let write = self.write(stream.clone(), queue, born, &last);
            let idle = self.idle(born, &last);
            read.or(write).or(idle).await
        };
        let _ = stream.shutdown(Shutdown::Both);
        drop(stream);
        tracing::debug!(peer = %self.from, %reason, "SIP TCP connection closed");
        self.report(reason).await;
    }

    async fn report(self, reason: String) {
        let _ = self
            .net
            .send(Net::Closed {
                from: self.from,
                conn: self.id,
                reason,
            })
            .await;
    }

    async fn read(&self, mut stream: TcpStream, born: Instant, last: &AtomicU64) -> String {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) => return "closed by the peer".into(),
                Ok(n) => n,
                Err(e) => return e.to_string(),
            };
            touch(last, born);
            let framed = framer.push(buf.get(..n).unwrap_or_default());
            let mut next = framed.and_then(|()| framer.next_message());
            loop {
                match next {
                    Ok(Some(bytes)) => {
                        let from = self.from;
                        if self.net.send(Net::Message { from, bytes }).await.is_err() {
                            return "the SIP driver stopped".into();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(peer = %self.from, error = %e, "closing SIP TCP connection: unusable stream");
                        return e.to_string();
                    }
                }
                next = framer.next_message();
            }
        }
    }

    async fn write(
        &self,
        mut stream: TcpStream,
        queue: Receiver<Vec<u8>>,
        born: Instant,
        last: &AtomicU64,
    ) -> String {
        let limit = self.limits.write_timeout;
        while let Ok(bytes) = queue.recv().await {
            let write = async { stream.write_all(&bytes).await.map_err(|e| e.to_string()) };
            let timeout = async {
                Timer::after(limit).await;
                Err(format!(
                    "a write took longer than {} ms (sip.tcp_write_timeout_ms)",
                    limit.as_millis()
                ))
            };
            if let Err(reason) = write.or(timeout).await {
                tracing::warn!(peer = %self.from, %reason, "closing SIP TCP connection");
                return reason;
            }
            touch(last, born);
        }
        "closed by us".into()
    }

    async fn idle(&self, born: Instant, last: &AtomicU64) -> String {
        if self.keep_alive {
            return std::future::pending().await;
        }
        loop {
            let due = born + Duration::from_millis(last.load(Ordering::Relaxed)) + self.limits.idle;
            if Instant::now() >= due {
                tracing::debug!(peer = %self.from, "closing idle SIP TCP connection");
                return format!("idle for {} s (sip.tcp_idle_seconds)", self.limits.idle.as_secs());
            }
            Timer::at(due).await;
        }
    }
}

/// Record traffic now (milliseconds since the connection began).
fn touch(last: &AtomicU64, born: Instant) {
    let ms = u64::try_from(born.elapsed().as_millis()).unwrap_or(u64::MAX);
    last.store(ms, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_hold_back() {
        let t0 = Instant::now();
        let mut w = WarnLimiter::default();
        assert_eq!(w.allow(t0), Some(0));
        assert_eq!(w.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(w.allow(t0 + WARN_EVERY), Some(2));
        assert_eq!(w.allow(t0 + WARN_EVERY), None);
    }

    #[test]
    fn one_host_gets_only_its_share_of_the_connections() {
        assert_eq!(per_host_limit(256), 32);
        assert_eq!(per_host_limit(10), 4);
        assert_eq!(per_host_limit(2), 2);
        let global = Arc::new(AtomicUsize::new(0));
        let mut hosts = PerHost::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [10, 213, 0, 1].into();
        let mut held = Vec::new();
        for _ in 0..4 {
            let g = Slot::take(&global, 100).expect("global slot");
            held.push(hosts.slot(a, 4, g).expect("a's share"));
        }
        let g = Slot::take(&global, 100).expect("global slot");
        assert!(hosts.slot(a, 4, g).is_none(), "a's fifth is refused");
        assert_eq!(global.load(Ordering::SeqCst), 4, "and its global slot given back");
        let g = Slot::take(&global, 100).expect("global slot");
        let other = hosts.slot(b, 4, g).expect("another host still gets in");
        drop(held);
        assert_eq!(global.load(Ordering::SeqCst), 1);
        drop(other);
        assert_eq!(global.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn slots_are_capped_and_given_back() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&count, 2).expect("first of two");
        let _b = Slot::take(&count, 2).expect("second of two");
        assert!(Slot::take(&count, 2).is_none());
        drop(a);
        assert!(Slot::take(&count, 2).is_some());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn descriptor_exhaustion_is_a_pause_not_an_end() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(out_of_resources(&std::io::Error::from_raw_os_error(code)));
        }
        assert!(!out_of_resources(&std::io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    fn limits() -> TcpLimits {
        TcpLimits {
            max_connections: 4,
            idle: Duration::from_millis(500),
            write_timeout: Duration::from_millis(200),
        }
    }

    /// A peer that never reads fills its queue: that connection is closed and the driver told,
    /// while another peer's messages still go out.
    #[test]
    fn a_peer_that_never_reads_loses_only_its_own_connection() {
        smol::block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (net_tx, net_rx) = async_channel::bounded(NET_QUEUE);
            let mut conns = Connections::new(limits(), net_tx);
            let dest = Dest {
                host: "127.0.0.1".into(),
                port: addr.port(),
                transport: Transport::Tcp,
            };
            // Two outbound connections to the same listener: one the test never reads.
            let stuck_peer = SocketAddr::from(([127, 0, 0, 2], addr.port()));
            let listener2 = std::net::TcpListener::bind(stuck_peer).expect("bind 127.0.0.2");
            let big = vec![b'x'; 60 * 1024];
            let mut refused = None;
            for _ in 0..2000 {
                if let Err(e) = conns.send(stuck_peer, &dest, &big, false) {
                    refused = Some(e);
                    break;
                }
                // Let the writer run between sends.
                Timer::after(Duration::from_millis(2)).await;
            }
            assert!(
                matches!(refused, Some(SendError::QueueFull(a)) if a == stuck_peer),
                "{refused:?}"
            );
            conns.send(addr, &dest, b"hello", false).expect("the other peer");
            let (mut other, _) = listener.accept().expect("accept");
            let mut got = [0u8; 5];
            std::io::Read::read_exact(&mut other, &mut got).expect("read");
            assert_eq!(&got, b"hello");
            // The stuck connection's task ends and reports; the driver had dropped it already.
            let report = async {
                loop {
                    if let Ok(Net::Closed { from, conn, .. }) = net_rx.recv().await {
                        if from == stuck_peer {
                            return conn;
                        }
                    }
                }
            };
            let conn = report
                .or(async {
                    Timer::after(Duration::from_secs(5)).await;
                    0
                })
                .await;
            assert_ne!(conn, 0, "no close report");
            assert!(conns.closed(stuck_peer, conn).is_empty());
            drop(listener2);
        });
    }

    /// A quiet connection is closed after the idle time, a keep-alive one is not; a write that
    /// cannot finish in time closes its connection.
    #[test]
    fn idle_and_slow_connections_are_closed() {
        smol::block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let keep = SocketAddr::from(([127, 0, 0, 3], addr.port()));
            let keep_listener = std::net::TcpListener::bind(keep).expect("bind 127.0.0.3");
            let (net_tx, net_rx) = async_channel::bounded(NET_QUEUE);
            let mut conns = Connections::new(limits(), net_tx);
            let dest = Dest {
                host: "127.0.0.1".into(),
                port: addr.port(),
                transport: Transport::Tcp,
            };
            conns.send(addr, &dest, b"x", false).expect("send");
            conns.send(keep, &dest, b"y", true).expect("send");
            let (_a, _) = listener.accept().expect("accept");
            let (_b, _) = keep_listener.accept().expect("accept");
            let started = Instant::now();
            let closed = || async {
                loop {
                    if let Ok(Net::Closed { from, conn, reason }) = net_rx.recv().await {
                        return (from, conn, reason);
                    }
                }
            };
            let (from, conn, reason) = closed().await;
            assert_eq!(from, addr);
            assert!(reason.contains("idle"), "{reason}");
            assert!(started.elapsed() >= Duration::from_millis(450));
            assert_eq!(conns.closed(from, conn), vec![dest.clone()]);
            // The keep-alive one is still there a while later.
            Timer::after(Duration::from_millis(700)).await;
            assert!(net_rx.try_recv().is_err());
            assert_eq!(conns.len(), 1);
            // A message the peer does not take in time: the write times out.
            let slow = SocketAddr::from(([127, 0, 0, 4], addr.port()));
            let slow_listener = std::net::TcpListener::bind(slow).expect("bind 127.0.0.4");
            conns
                .send(slow, &dest, &vec![b'z'; 64 << 20], false)
                .expect("send");
            let (from, _, reason) = closed().await;
            assert_eq!(from, slow);
            assert!(reason.contains("sip.tcp_write_timeout_ms"), "{reason}");
            drop(slow_listener);
        });
    }
}
