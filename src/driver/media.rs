//! The media thread: one dedicated OS thread runs every call's 20 ms ticks. Each session has an
//! absolute-deadline [`Pacer`] whose start is rounded up to a 1 ms slot of the thread's grid, so all
//! sessions share 20 phases: the thread wakes at most 20 times per 20 ms, and each wake touches only
//! the sessions that are due (receive what arrived, send what is due, forward events), which it
//! takes from a queue ordered by deadline ([`Deadlines`]) rather than by looking at every session.
//! Work is O(sessions) per frame period (not per wake), the first packet leaves within 1 ms of the
//! answer, and pacing does not depend on how busy the async executor is.
//!
//! Hostile LAN: RTP ports are drawn uniformly at random among the free even ports of the range
//! (an OS-seeded ChaCha generator, which also gives SSRCs and initial numbers), whatever queued
//! on a session's sockets before it starts (while the phone rang) is discarded unread, and every
//! per-wake and per-session quantity is bounded. Once a session has latched to the far end's
//! exact address its RTP socket is connected to it, so the kernel drops everyone else's datagrams
//! (a flood from another host then costs nothing and does not crowd out the call's own audio);
//! a re-INVITE that moves the media undoes that until the next latch. At most [`MAX_RX_PER_WAKE`] RTP datagrams and
//! [`MAX_RTCP_PER_WAKE`] RTCP datagrams are read per session per wake (a flood stays in, and
//! overflows, its own socket's kernel buffer), due frames of every session go out before any
//! receive work, and the events channel to the call script is bounded ([`EVENTS_CAPACITY`]):
//! when it is full, audio is dropped and counted, digits and playback ends wait in a small queue.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::media_socket::{discard_queued, disconnect};
use crate::media::pacer::Pacer;
use crate::media::session::{MediaEvent, MediaHealth, MediaSession, SessionParams};

/// Frames a session may send at once after a late wake-up.
const MAX_BURST: u32 = 3;
/// The thread never sleeps longer than this (to receive and to take commands).
const MAX_SLEEP: Duration = Duration::from_millis(10);
const FRAME: Duration = Duration::from_millis(20);
/// RTCP report interval (RFC 3550's minimum of 5 s).
const RTCP_EVERY: Duration = Duration::from_secs(5);
/// Session starts are rounded up to this grid: 20 phases per frame, so each wake serves about a
/// twentieth of the sessions (short bursts, low lateness) and a first packet waits at most 1 ms.
const SLOT: Duration = Duration::from_millis(1);
/// RTP datagrams read per session per wake (one wake per 20 ms frame): three times a 10 ms-ptime
/// stream plus a key press's events, with room to spare. The rest wait in the socket's kernel
/// buffer (and a flood overflows it there), so one call's flood costs the thread a fixed amount
/// of work per frame.
pub const MAX_RX_PER_WAKE: usize = 16;
/// RTCP datagrams read per session per report interval (their reports are not used yet).
pub const MAX_RTCP_PER_WAKE: usize = 16;
/// Datagrams discarded from each socket when a session starts (what arrived before the answer).
const MAX_STALE: usize = 4096;
/// Events queued toward the call script per session: 10 s of 20 ms audio frames.
pub const EVENTS_CAPACITY: usize = 512;
/// Digits and playback ends waiting for room in a full events channel; beyond this they are
/// dropped and counted (a script that stopped reading for that long no longer needs them).
const MAX_PENDING_CONTROL: usize = 64;

/// The first slot boundary at or after `now`.
fn slot_start(epoch: Instant, now: Instant) -> Instant {
    let since = now.saturating_duration_since(epoch).as_nanos();
    let slot = SLOT.as_nanos();
    let slots = since.div_ceil(slot);
    epoch + Duration::from_nanos(u64::try_from(slots * slot).unwrap_or(u64::MAX))
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no free RTP port pair in {0}-{1}")]
    NoPorts(u16, u16),
    #[error("the media thread has stopped")]
    Stopped,
    #[error("cannot start the media session: {0}")]
    Session(#[from] crate::media::session::SessionError),
    #[error("{0}")]
    Digit(crate::media::session::SessionError),
    #[error("the call's media has ended")]
    Ended,
    #[error("cannot start the media thread: {0}")]
    Thread(std::io::Error),
}

/// An RTP/RTCP socket pair bound before the offer, so the SDP names a port we own.
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub port: u16,
}

enum Cmd {
    /// A session built by the caller (codec set-up stays off this thread).
    Start {
        id: u64,
        ports: PortPair,
        session: Box<MediaSession>,
        events: async_channel::Sender<MediaEvent>,
    },
    SendDigit {
        id: u64,
        digit: char,
        duration_ms: u32,
        reply: async_channel::Sender<Result<(), MediaError>>,
    },
    InfoDigit {
        id: u64,
        digit: char,
    },
    UpdateRemote {
        id: u64,
        remote: SocketAddr,
        remote_rtcp: SocketAddr,
        sending: bool,
    },
    Play {
        id: u64,
        play_id: u64,
        frames: Arc<Vec<Vec<u8>>>,
    },
    StopPlayback {
        id: u64,
    },
    Stop {
        id: u64,
        reply: async_channel::Sender<MediaHealth>,
    },
    Health {
        id: u64,
        reply: async_channel::Sender<MediaHealth>,
    },
}

struct Live {
    session: MediaSession,
    pacer: Pacer,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    next_rtcp: Instant,
    events: async_channel::Sender<MediaEvent>,
    /// Digits and playback ends that found the events channel full, oldest first.
    pending: VecDeque<MediaEvent>,
    events_dropped: u64,
    /// The address the RTP socket is connected to (the session's latched source).
    connected: Option<SocketAddr>,
}

/// The sessions by their next frame deadline, so that a wake takes the sessions that are due
/// without looking at the others: with 1,000 calls spread over the 20 phases, a wake serves about
/// 50 of them, and looking at all 1,000 (three times) on each of the up to 1,000 wakes per second
/// was most of the thread's work. Each live session has one entry, its pacer's deadline, put back
/// after the session is served; the entry of a session that stopped is dropped when it comes up.
#[derive(Default)]
struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Deadlines {
    fn insert(&mut self, id: u64, at: Instant) {
        self.heap.push(Reverse((at, id)));
    }

    /// Move the sessions due at `now` into `out`, earliest first. `current(id, at)` tells whether
    /// an entry still stands (the session lives and `at` is its deadline); others are dropped.
    fn take_due(&mut self, now: Instant, current: impl Fn(u64, Instant) -> bool, out: &mut Vec<u64>) {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if current(id, at) {
                out.push(id);
            }
        }
    }

    /// The earliest deadline that still stands (entries on top that do not are dropped).
    fn next(&mut self, current: impl Fn(u64, Instant) -> bool) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if current(id, at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }
}

fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

impl Live {
    /// Forward what the session has for the call script without ever blocking or growing: the
    /// channel is bounded, audio that finds it full is dropped, control events queue (bounded)
    /// behind it and keep their order.
    fn forward_events(&mut self) {
        while let Some(ev) = self.pending.pop_front() {
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(async_channel::TrySendError::Full(ev)) => {
                    self.pending.push_front(ev);
                    break;
                }
                Err(async_channel::TrySendError::Closed(_)) => {}
            }
        }
        while let Some(ev) = self.session.poll_event() {
            let ev = if self.pending.is_empty() {
                match self.events.try_send(ev) {
                    Ok(()) | Err(async_channel::TrySendError::Closed(_)) => continue,
                    Err(async_channel::TrySendError::Full(ev)) => ev,
                }
            } else {
                ev
            };
            if matches!(ev, MediaEvent::Audio16k(_)) || self.pending.len() >= MAX_PENDING_CONTROL {
                self.events_dropped += 1;
            } else {
                self.pending.push_back(ev);
            }
        }
    }

    fn health(&self, now: Duration) -> MediaHealth {
        MediaHealth {
            events_dropped: self.events_dropped,
            ..self.session.health(now)
        }
    }

    /// Read what arrived on both sockets, at most a wake's budget of each.
    fn receive(&mut self, since: Duration, rtcp_due: bool, buf: &mut [u8]) {
        for _ in 0..MAX_RX_PER_WAKE {
            let Ok((n, from)) = self.rtp.recv_from(buf) else {
                break;
            };
            self.session
                .handle_datagram(from, buf.get(..n).unwrap_or_default(), since);
        }
        if rtcp_due {
            for _ in 0..MAX_RTCP_PER_WAKE {
                let Ok((_, from)) = self.rtcp.recv_from(buf) else {
                    break;
                };
                self.session.handle_rtcp_datagram(from);
            }
        }
    }

    /// Keep the kernel's filter in step with the session's latch.
    fn filter_sources(&mut self) {
        let source = self.session.source();
        if source == self.connected {
            return;
        }
        let done = match source {
            Some(addr) => self.rtp.connect(addr),
            None => disconnect(&self.rtp),
        };
        match done {
            Ok(()) => self.connected = source,
            Err(e) => tracing::debug!(error = %e, "RTP socket filter not changed"),
        }
    }

    fn send_rtcp(&mut self, now: Duration, bye: bool, buf: &mut Vec<u8>) {
        self.session.rtcp(now, wall_clock(), bye, buf);
        if let Err(e) = self.rtcp.send_to(buf, self.session.remote_rtcp()) {
            tracing::debug!(error = %e, "RTCP send failed");
        }
    }
}

/// The even ports `first, first + 2, ..` whose odd neighbour is also in `min..=max`: (first, count).
fn even_ports(min: u16, max: u16) -> (u16, u16) {
    let first = min.saturating_add(min % 2);
    if first == u16::MAX || first + 1 > max {
        return (first, 0);
    }
    (first, (max - first - 1) / 2 + 1)
}

pub use crate::media::session::RtpNumbers;

/// Handle to the media thread; cheap to clone.
#[derive(Clone)]
pub struct MediaThread {
    cmds: mpsc::Sender<Cmd>,
    waker: Arc<Mutex<Option<std::thread::Thread>>>,
    next_id: Arc<AtomicU64>,
    /// The RTP port range, `min..=max`.
    range: (u16, u16),
    /// OS-seeded: RTP ports, SSRCs and initial numbers must not be guessable.
    rng: Arc<Mutex<ChaCha20Rng>>,
    /// The thread's clock origin: sessions count time from it.
    epoch: Instant,
}

impl MediaThread {
    /// Start the thread; RTP ports come from `min..=max` (even ports, RTCP on the next one).
    pub fn start(min: u16, max: u16) -> Result<(Self, JoinHandle<()>), MediaError> {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Mutex::new(None));
        let w = waker.clone();
        let epoch = Instant::now();
        let handle = std::thread::Builder::new()
            .name("media".into())
            .spawn(move || {
                if let Ok(mut slot) = w.lock() {
                    *slot = Some(std::thread::current());
                }
                crate::supervise::global().run_guarded("media thread", || run(rx, epoch));
            })
            .map_err(MediaError::Thread)?;
        Ok((
            Self {
                cmds: tx,
                waker,
                next_id: Arc::new(AtomicU64::new(1)),
                range: (min, max),
                rng: Arc::new(Mutex::new(ChaCha20Rng::from_entropy())),
                epoch,
            },
            handle,
        ))
    }

    fn send(&self, cmd: Cmd) -> Result<(), MediaError> {
        self.cmds.send(cmd).map_err(|_| MediaError::Stopped)?;
        if let Ok(slot) = self.waker.lock() {
            if let Some(t) = slot.as_ref() {
                t.unpark();
            }
        }
        Ok(())
    }

    /// A fresh SSRC and initial sequence number and timestamp for a session's stream.
    pub fn rtp_numbers(&self) -> RtpNumbers {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        RtpNumbers {
            ssrc: rng.gen(),
            initial_seq: rng.gen(),
            initial_timestamp: rng.gen(),
        }
    }

    /// Bind a free even RTP port, drawn uniformly at random from the range, and the RTCP port
    /// above it, on all interfaces. Ports are tried in a random order (a lazy Fisher-Yates
    /// shuffle), so the first free one is uniform among the free ones and every port is tried at
    /// most once before the range counts as exhausted. The shuffle has a generator of its own,
    /// seeded from the shared one: the shared lock is not held across the `bind` calls (with a
    /// nearly full range, tens of them), which every other call setting up waits on.
    pub fn bind_ports(&self) -> Result<PortPair, MediaError> {
        let (min, max) = self.range;
        let (first, count) = even_ports(min, max);
        let mut order: Vec<u16> = (0..count).collect();
        let seed = self.rng.lock().unwrap_or_else(|p| p.into_inner()).gen();
        let mut rng = ChaCha20Rng::from_seed(seed);
        for i in 0..order.len() {
            let j = rng.gen_range(i..order.len());
            order.swap(i, j);
            let Some(port) = order.get(i).map(|k| first + 2 * k) else {
                break;
            };
            let rtp = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)));
            let rtcp = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port + 1)));
            if let (Ok(rtp), Ok(rtcp)) = (rtp, rtcp) {
                if rtp.set_nonblocking(true).is_ok() && rtcp.set_nonblocking(true).is_ok() {
                    return Ok(PortPair { rtp, rtcp, port });
                }
            }
        }
        Err(MediaError::NoPorts(min, max))
    }

    /// Start sending and receiving on `ports` as `params` say. Call it once the answer is in:
    /// whatever reached the sockets before (early spray while the phone rang) is discarded
    /// unread first.
    pub fn open(
        &self,
        ports: PortPair,
        params: SessionParams,
        silence: Vec<u8>,
    ) -> Result<MediaHandle, MediaError> {
        let stale = discard_queued(&ports.rtp, MAX_STALE) + discard_queued(&ports.rtcp, MAX_STALE);
        if stale > 0 {
            tracing::info!(
                port = ports.port,
                datagrams = stale,
                "discarded media that arrived before the answer"
            );
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = async_channel::bounded(EVENTS_CAPACITY);
        let now = Instant::now().saturating_duration_since(self.epoch);
        let session = MediaSession::new(params, silence, now)?;
        self.send(Cmd::Start {
            id,
            ports,
            session: Box::new(session),
            events: events_tx,
        })?;
        Ok(MediaHandle {
            thread: self.clone(),
            id,
            events,
            next_play: Arc::new(AtomicU64::new(1)),
        })
    }
}

/// One call's media, as the call script sees it.
#[derive(Clone)]
pub struct MediaHandle {
    thread: MediaThread,
    id: u64,
    /// Playback completions, digits and 16 kHz caller audio, in order.
    pub events: async_channel::Receiver<MediaEvent>,
    next_play: Arc<AtomicU64>,
}

impl MediaHandle {
    /// Queue encoded frames; returns the id its `PlaybackDone` will carry.
    pub fn play(&self, frames: Arc<Vec<Vec<u8>>>) -> Result<u64, MediaError> {
        let play_id = self.next_play.fetch_add(1, Ordering::Relaxed);
        self.thread.send(Cmd::Play {
            id: self.id,
            play_id,
            frames,
        })?;
        Ok(play_id)
    }

    pub fn stop_playback(&self) -> Result<(), MediaError> {
        self.thread.send(Cmd::StopPlayback { id: self.id })
    }

    /// Send a key press as RFC 4733 events; resolves once it is queued (or refused).
    pub async fn send_digit(&self, digit: char, duration_ms: u32) -> Result<(), MediaError> {
        let (tx, rx) = async_channel::bounded(1);
        self.thread.send(Cmd::SendDigit {
            id: self.id,
            digit,
            duration_ms,
            reply: tx,
        })?;
        rx.recv().await.map_err(|_| MediaError::Stopped)?
    }

    /// A digit the SIP layer received as INFO: it joins the RTP digits in `events`.
    pub fn push_info_digit(&self, digit: char) -> Result<(), MediaError> {
        self.thread.send(Cmd::InfoDigit { id: self.id, digit })
    }

    /// The far end's media moved or it put the call on hold (`sending` false) or resumed it.
    pub fn update_remote(
        &self,
        remote: SocketAddr,
        remote_rtcp: SocketAddr,
        sending: bool,
    ) -> Result<(), MediaError> {
        self.thread.send(Cmd::UpdateRemote {
            id: self.id,
            remote,
            remote_rtcp,
            sending,
        })
    }

    pub async fn health(&self) -> Result<MediaHealth, MediaError> {
        let (tx, rx) = async_channel::bounded(1);
        self.thread.send(Cmd::Health {
            id: self.id,
            reply: tx,
        })?;
        rx.recv().await.map_err(|_| MediaError::Stopped)
    }

    /// Stop the session; its final health.
    pub async fn close(self) -> Result<MediaHealth, MediaError> {
        let (tx, rx) = async_channel::bounded(1);
        self.thread.send(Cmd::Stop {
            id: self.id,
            reply: tx,
        })?;
        rx.recv().await.map_err(|_| MediaError::Stopped)
    }
}

/// Whether `at` is the deadline of the live session `id` (a [`Deadlines`] entry that stands).
fn stands(live: &HashMap<u64, Live>, id: u64, at: Instant) -> bool {
    live.get(&id).is_some_and(|s| s.pacer.deadline() == at)
}

fn run(rx: mpsc::Receiver<Cmd>, epoch: Instant) {
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut deadlines = Deadlines::default();
    let mut served: Vec<u64> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut packet = Vec::with_capacity(1500);
    // Beaten on every wake (at least every MAX_SLEEP) for the watchdog.
    let heartbeat = crate::supervise::global().heartbeat("media thread");
    loop {
        heartbeat.beat();
        loop {
            match rx.try_recv() {
                Ok(cmd) => handle(cmd, &mut live, &mut deadlines, epoch),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        let since = now.saturating_duration_since(epoch);
        served.clear();
        deadlines.take_due(now, |id, at| stands(&live, id, at), &mut served);
        // First pass: every due frame goes out, so no call's receive work delays another's audio.
        for id in &served {
            let Some(s) = live.get_mut(id) else { continue };
            let due = s.pacer.due(now);
            for i in 0..u64::from(due.count) {
                s.session.handle_tick(due.first + i, since, &mut packet);
                if packet.is_empty() {
                    continue;
                }
                if let Err(e) = s.rtp.send_to(&packet, s.session.remote()) {
                    tracing::debug!(error = %e, "RTP send failed");
                }
            }
        }
        // Second pass: bounded receive, timers, events and RTCP of the sessions just served; each
        // goes back in the queue at its next deadline.
        for &id in &served {
            let Some(s) = live.get_mut(&id) else { continue };
            let rtcp_due = now >= s.next_rtcp;
            s.receive(since, rtcp_due, &mut buf);
            s.filter_sources();
            s.session.handle_timeout(since);
            s.forward_events();
            if rtcp_due {
                s.next_rtcp = now + RTCP_EVERY;
                s.send_rtcp(since, false, &mut packet);
            }
            deadlines.insert(id, s.pacer.deadline());
        }
        let next = deadlines
            .next(|id, at| stands(&live, id, at))
            .unwrap_or(now + MAX_SLEEP);
        let wait = next.saturating_duration_since(Instant::now()).min(MAX_SLEEP);
        if !wait.is_zero() {
            std::thread::park_timeout(wait);
        }
    }
}

fn handle(cmd: Cmd, live: &mut HashMap<u64, Live>, deadlines: &mut Deadlines, epoch: Instant) {
    let now = Instant::now();
    match cmd {
        Cmd::Start {
            id,
            ports,
            session,
            events,
        } => {
            let pacer = Pacer::new(slot_start(epoch, now), FRAME, MAX_BURST);
            deadlines.insert(id, pacer.deadline());
            live.insert(
                id,
                Live {
                    session: *session,
                    pacer,
                    rtp: ports.rtp,
                    rtcp: ports.rtcp,
                    next_rtcp: now + RTCP_EVERY,
                    events,
                    pending: VecDeque::new(),
                    events_dropped: 0,
                    connected: None,
                },
            );
        }
        Cmd::SendDigit {
            id,
            digit,
            duration_ms,
            reply,
        } => {
            let r = match live.get_mut(&id) {
                Some(s) => s
                    .session
                    .send_digit(digit, duration_ms)
                    .map_err(MediaError::Digit),
                None => Err(MediaError::Ended),
            };
            let _ = reply.try_send(r);
        }
        Cmd::InfoDigit { id, digit } => {
            if let Some(s) = live.get_mut(&id) {
                s.session
                    .push_info_digit(digit, now.saturating_duration_since(epoch));
                s.forward_events();
            }
        }
        Cmd::UpdateRemote {
            id,
            remote,
            remote_rtcp,
            sending,
        } => {
            if let Some(s) = live.get_mut(&id) {
                s.session.update_remote(remote, remote_rtcp, sending);
                s.filter_sources();
            }
        }
        Cmd::Play { id, play_id, frames } => {
            if let Some(s) = live.get_mut(&id) {
                s.session.play(play_id, frames);
            }
        }
        Cmd::StopPlayback { id } => {
            if let Some(s) = live.get_mut(&id) {
                s.session.stop_playback();
                s.forward_events();
            }
        }
        Cmd::Health { id, reply } => {
            if let Some(s) = live.get(&id) {
                let _ = reply.try_send(s.health(now.saturating_duration_since(epoch)));
            }
        }
        Cmd::Stop { id, reply } => {
            if let Some(mut s) = live.remove(&id) {
                let since = now.saturating_duration_since(epoch);
                s.send_rtcp(since, true, &mut Vec::with_capacity(256));
                let _ = reply.try_send(s.health(since));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::AudioCodec;

    #[test]
    fn even_ports_need_their_rtcp_neighbour_in_range() {
        assert_eq!(even_ports(40_000, 40_009), (40_000, 5));
        assert_eq!(even_ports(40_001, 40_010), (40_002, 4));
        assert_eq!(even_ports(40_000, 40_000), (40_000, 0));
        assert_eq!(even_ports(65_534, 65_535), (65_534, 1));
        assert_eq!(even_ports(65_535, 65_535).1, 0);
    }

    #[test]
    fn ports_are_random_even_pairs_until_the_range_is_exhausted() {
        let (media, _thread) = MediaThread::start(47_701, 47_710).expect("media thread");
        let pairs: Vec<PortPair> = (0..4).map_while(|_| media.bind_ports().ok()).collect();
        let mut ports: Vec<u16> = pairs.iter().map(|p| p.port).collect();
        assert!(
            ports.iter().all(|p| p % 2 == 0 && (47_702..=47_708).contains(p)),
            "{ports:?}"
        );
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4, "every free pair is found");
        assert!(
            matches!(media.bind_ports(), Err(MediaError::NoPorts(47_701, 47_710))),
            "the range is exhausted"
        );
        drop(pairs);
        // Draws from a wider range: not a sequence (a cursor gives 0, 2, 4, ...).
        let (media, _thread) = MediaThread::start(47_720, 47_919).expect("media thread");
        let draws: Vec<u16> = (0..30)
            .filter_map(|_| media.bind_ports().ok().map(|p| p.port))
            .collect();
        let steps = draws.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(steps < 10, "sequential ports: {draws:?}");
        let n = media.rtp_numbers();
        assert_ne!(n, media.rtp_numbers(), "fresh numbers per session");
    }

    fn live(capacity: usize) -> (Live, async_channel::Receiver<MediaEvent>) {
        let socket = || UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
        let params = SessionParams {
            codec: AudioCodec::Pcmu,
            payload_type: 0,
            dtmf_payload_type: Some(101),
            remote: "127.0.0.1:9".parse().expect("addr"),
            remote_rtcp: "127.0.0.1:9".parse().expect("addr"),
            ssrc: 1,
            initial_seq: 0,
            initial_timestamp: 0,
        };
        let (tx, rx) = async_channel::bounded(capacity);
        let session = MediaSession::new(params, vec![0xFF; 160], Duration::ZERO).expect("session");
        let now = Instant::now();
        (
            Live {
                session,
                pacer: Pacer::new(now, FRAME, MAX_BURST),
                rtp: socket(),
                rtcp: socket(),
                next_rtcp: now,
                events: tx,
                pending: VecDeque::new(),
                events_dropped: 0,
                connected: None,
            },
            rx,
        )
    }

    #[test]
    fn a_wake_takes_only_the_sessions_due_and_drops_those_that_stopped() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 1,000 sessions over the 20 phases of a frame; the current deadline of each live one.
        let mut live: HashMap<u64, Instant> = (0..1000).map(|id| (id, ms(id % 20))).collect();
        let mut d = Deadlines::default();
        for (&id, &at) in &live {
            d.insert(id, at);
        }
        live.remove(&40); // stopped: its entry is still queued
        let stands = |live: &HashMap<u64, Instant>, id: u64, at: Instant| live.get(&id) == Some(&at);
        let mut due = Vec::new();
        d.take_due(t0, |id, at| stands(&live, id, at), &mut due);
        due.sort_unstable();
        let phase0: Vec<u64> = (0..1000).step_by(20).filter(|&id| id != 40).collect();
        assert_eq!(due, phase0, "only the sessions of the phase that is due");
        assert_eq!(d.heap.len(), 950, "the others were not taken");
        assert_eq!(d.next(|id, at| stands(&live, id, at)), Some(ms(1)));
        // Served, they come back at their next frame; the next wake takes the next phase.
        for &id in &due {
            live.insert(id, ms(20));
            d.insert(id, ms(20));
        }
        due.clear();
        d.take_due(ms(1), |id, at| stands(&live, id, at), &mut due);
        assert_eq!(due.len(), 50);
        assert!(due.iter().all(|id| id % 20 == 1));
        // A session whose deadline moved on is taken at its new deadline only, not twice.
        live.insert(7, ms(27));
        d.insert(7, ms(27));
        due.clear();
        d.take_due(ms(19), |id, at| stands(&live, id, at), &mut due);
        assert_eq!(due.len(), 18 * 50 - 1, "phases 2..=19 but session 7");
        due.clear();
        d.take_due(ms(27), |id, at| stands(&live, id, at), &mut due);
        due.sort_unstable();
        assert_eq!(due.len(), 50);
        assert!(due.contains(&7));
    }

    fn audio(s: &mut Live, seq: u16) {
        let mut pkt = Vec::new();
        crate::rtp::packet::write(
            &crate::rtp::packet::RtpHeader::new(0, seq, u32::from(seq) * 160, 7, false),
            &[0x7F; 160],
            &mut pkt,
        );
        let from = "127.0.0.1:9".parse().expect("addr");
        s.session
            .handle_datagram(from, &pkt, Duration::from_millis(20 * u64::from(seq)));
    }

    #[test]
    fn a_full_events_channel_drops_audio_and_keeps_control_events_in_order() {
        let (mut s, rx) = live(4);
        for seq in 0..10 {
            audio(&mut s, seq);
        }
        s.session.push_info_digit('7', Duration::from_secs(1));
        s.session.play(9, Arc::new(Vec::new()));
        for seq in 10..20 {
            audio(&mut s, seq);
        }
        s.forward_events();
        assert_eq!(rx.len(), 4, "the channel never holds more than its capacity");
        assert_eq!(s.pending.len(), 2, "the digit and the playback end wait");
        assert!(s.events_dropped >= 15, "audio dropped: {}", s.events_dropped);
        assert_eq!(s.health(Duration::ZERO).events_dropped, s.events_dropped);
        let drain = |rx: &async_channel::Receiver<MediaEvent>| {
            std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
        };
        drain(&rx);
        audio(&mut s, 20);
        s.forward_events();
        let got = drain(&rx);
        assert_eq!(got.first(), Some(&MediaEvent::Digit('7')), "{got:?}");
        assert_eq!(
            got.get(1),
            Some(&MediaEvent::PlaybackDone {
                id: 9,
                complete: false
            })
        );
        assert!(
            matches!(got.get(2), Some(MediaEvent::Audio16k(_))),
            "then audio again"
        );
        // Control events beyond their bound are dropped and counted, never queued without limit.
        let (mut s, _rx) = live(1);
        for k in 0..(MAX_PENDING_CONTROL as u64 + 10) {
            s.session.play(k, Arc::new(Vec::new()));
        }
        s.forward_events();
        assert_eq!(s.pending.len(), MAX_PENDING_CONTROL);
        assert_eq!(s.events_dropped, 9);
    }

    #[test]
    fn a_wake_reads_a_bounded_number_of_datagrams() {
        let (mut s, _rx) = live(EVENTS_CAPACITY);
        s.rtp.set_nonblocking(true).expect("non-blocking");
        let to = s.rtp.local_addr().expect("addr");
        let attacker = UdpSocket::bind("127.0.0.2:0").expect("another loopback host");
        for _ in 0..(MAX_RX_PER_WAKE * 3) {
            attacker
                .send_to(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], to)
                .expect("send");
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = vec![0u8; 2048];
        s.receive(Duration::ZERO, false, &mut buf);
        assert_eq!(
            s.session.health(Duration::ZERO).rejected_packets,
            MAX_RX_PER_WAKE as u64
        );
        s.receive(Duration::ZERO, false, &mut buf);
        assert_eq!(
            s.session.health(Duration::ZERO).rejected_packets,
            2 * MAX_RX_PER_WAKE as u64
        );
    }
}
