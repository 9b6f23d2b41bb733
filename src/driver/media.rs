//! The media thread: one dedicated OS thread runs every call's 20 ms ticks. Each session has an
//! absolute-deadline [`Pacer`] whose start is rounded up to a 1 ms slot of the thread's grid, so all
//! sessions share 20 phases: the thread wakes at most 20 times per 20 ms, and each wake touches only
//! the sessions that are due (receive what arrived, send what is due, forward events). Work is
//! O(sessions) per frame period, the first packet leaves within 1 ms of the answer, and pacing does
//! not depend on how busy the async executor is.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    Session(String),
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
        reply: async_channel::Sender<Result<(), String>>,
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
}

fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

impl Live {
    fn send_rtcp(&mut self, now: Duration, bye: bool, buf: &mut Vec<u8>) {
        self.session.rtcp(now, wall_clock(), bye, buf);
        if let Err(e) = self.rtcp.send_to(buf, self.session.remote_rtcp()) {
            tracing::debug!(error = %e, "RTCP send failed");
        }
    }
}

/// Handle to the media thread; cheap to clone.
#[derive(Clone)]
pub struct MediaThread {
    cmds: mpsc::Sender<Cmd>,
    waker: Arc<Mutex<Option<std::thread::Thread>>>,
    next_id: Arc<AtomicU64>,
    ports: Arc<Mutex<(u16, u16, u16)>>,
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
        let first = if min.is_multiple_of(2) { min } else { min + 1 };
        Ok((
            Self {
                cmds: tx,
                waker,
                next_id: Arc::new(AtomicU64::new(1)),
                ports: Arc::new(Mutex::new((first, first, max))),
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

    /// Bind the next free even RTP port and the RTCP port above it on all interfaces.
    pub fn bind_ports(&self) -> Result<PortPair, MediaError> {
        let mut guard = self.ports.lock().unwrap_or_else(|p| p.into_inner());
        let (min, cursor, max) = *guard;
        let span = u32::from(max.saturating_sub(min)) / 2 + 1;
        let mut port = cursor;
        for _ in 0..span {
            if port.saturating_add(1) > max {
                port = min;
            }
            let rtp = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)));
            let rtcp = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port + 1)));
            let next = if port.saturating_add(3) > max {
                min
            } else {
                port + 2
            };
            if let (Ok(rtp), Ok(rtcp)) = (rtp, rtcp) {
                if rtp.set_nonblocking(true).is_ok() && rtcp.set_nonblocking(true).is_ok() {
                    guard.1 = next;
                    return Ok(PortPair { rtp, rtcp, port });
                }
            }
            port = next;
        }
        Err(MediaError::NoPorts(min, max))
    }

    /// Start sending and receiving on `ports` as `params` say.
    pub fn open(
        &self,
        ports: PortPair,
        params: SessionParams,
        silence: Vec<u8>,
    ) -> Result<MediaHandle, MediaError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events_tx, events) = async_channel::unbounded();
        let now = Instant::now().saturating_duration_since(self.epoch);
        let session = MediaSession::new(params, silence, now).map_err(MediaError::Session)?;
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
        rx.recv()
            .await
            .map_err(|_| MediaError::Stopped)?
            .map_err(MediaError::Session)
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

fn run(rx: mpsc::Receiver<Cmd>, epoch: Instant) {
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut packet = Vec::with_capacity(1500);
    // Beaten on every wake (at least every MAX_SLEEP) for the watchdog.
    let heartbeat = crate::supervise::global().heartbeat("media thread");
    loop {
        heartbeat.beat();
        loop {
            match rx.try_recv() {
                Ok(cmd) => handle(cmd, &mut live, epoch),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        let since = now.saturating_duration_since(epoch);
        for s in live.values_mut() {
            if s.pacer.deadline() > now {
                continue;
            }
            while let Ok((n, from)) = s.rtp.recv_from(&mut buf) {
                s.session
                    .on_datagram(from, buf.get(..n).unwrap_or_default(), since);
            }
            let due = s.pacer.due(now);
            for i in 0..u64::from(due.count) {
                s.session.on_tick(due.first + i, since, &mut packet);
                if packet.is_empty() {
                    continue;
                }
                if let Err(e) = s.rtp.send_to(&packet, s.session.remote()) {
                    tracing::debug!(error = %e, "RTP send failed");
                }
            }
            s.session.on_timer(since);
            while let Some(ev) = s.session.poll_event() {
                let _ = s.events.try_send(ev);
            }
            if now >= s.next_rtcp {
                s.next_rtcp = now + RTCP_EVERY;
                // Incoming RTCP is drained here; its reports are not used yet.
                while s.rtcp.recv_from(&mut buf).is_ok() {}
                s.send_rtcp(since, false, &mut packet);
            }
        }
        let next = live
            .values()
            .map(|s| s.pacer.deadline())
            .min()
            .unwrap_or(now + MAX_SLEEP);
        let wait = next.saturating_duration_since(Instant::now()).min(MAX_SLEEP);
        if !wait.is_zero() {
            std::thread::park_timeout(wait);
        }
    }
}

fn handle(cmd: Cmd, live: &mut HashMap<u64, Live>, epoch: Instant) {
    let now = Instant::now();
    match cmd {
        Cmd::Start {
            id,
            ports,
            session,
            events,
        } => {
            live.insert(
                id,
                Live {
                    session: *session,
                    pacer: Pacer::new(slot_start(epoch, now), FRAME, MAX_BURST),
                    rtp: ports.rtp,
                    rtcp: ports.rtcp,
                    next_rtcp: now + RTCP_EVERY,
                    events,
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
                Some(s) => s.session.send_digit(digit, duration_ms),
                None => Err("the call's media has ended".into()),
            };
            let _ = reply.try_send(r);
        }
        Cmd::InfoDigit { id, digit } => {
            if let Some(s) = live.get_mut(&id) {
                s.session
                    .push_info_digit(digit, now.saturating_duration_since(epoch));
                while let Some(ev) = s.session.poll_event() {
                    let _ = s.events.try_send(ev);
                }
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
                while let Some(ev) = s.session.poll_event() {
                    let _ = s.events.try_send(ev);
                }
            }
        }
        Cmd::Health { id, reply } => {
            if let Some(s) = live.get(&id) {
                let _ = reply.try_send(s.session.health(now.saturating_duration_since(epoch)));
            }
        }
        Cmd::Stop { id, reply } => {
            if let Some(mut s) = live.remove(&id) {
                let since = now.saturating_duration_since(epoch);
                s.send_rtcp(since, true, &mut Vec::with_capacity(256));
                let _ = reply.try_send(s.session.health(since));
            }
        }
    }
}
