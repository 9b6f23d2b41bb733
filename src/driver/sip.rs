//! The SIP shell: one smol task owns the UDP socket, the TCP connections and the one timer, and
//! drives the sans-IO [`UserAgent`]. [`SipEngine`] is the [`CallEngine`] the scheduler uses.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use smol::net::{TcpListener, UdpSocket};

use super::media::{MediaThread, PortPair};
use super::script::{CallScript, NoSpeechScript, ScriptContext, ScriptResult};
use super::tcp::{Connections, Net, TcpLimits, WarnLimiter, NET_QUEUE};
use crate::call::{ActiveCall, CallEngine, CallOutcome, CallRequest, FinalStatus, MediaHealth};
use crate::config::{Config, Transport as CfgTransport};
use crate::media::session::{AudioCodec, SessionParams};
use crate::sdp;
use crate::sip::ua::{CallEnd, CallKey, Command, Dest, Event, Input, Output, Transport, UaConfig, UserAgent};
use crate::sip_addr::{parse_extension, parse_host_port, Target};

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot bind SIP {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("sip.registrar '{0}' cannot be used: {1}")]
    Registrar(String, String),
    #[error("media.codecs: {0}")]
    Codecs(String),
    #[error(transparent)]
    Media(#[from] super::media::MediaError),
    #[error("cannot seed the SIP id generator from the OS: {0}")]
    Entropy(rand::Error),
}

/// Commands from the engine waiting for the driver.
const CMD_QUEUE: usize = 256;
/// Events for one call waiting for its task; more (a DTMF flood) are dropped, but for the end.
const CALL_EVENTS: usize = 64;
/// How long shutdown waits for the un-REGISTER to be answered.
const UNREGISTER_WAIT: Duration = Duration::from_secs(3);

enum Cmd {
    Ua(Command),
    Watch(CallKey, async_channel::Sender<Event>),
    Unregister(async_channel::Sender<()>),
}

struct Shared {
    cmds: async_channel::Sender<Cmd>,
    registered: AtomicBool,
    next_id: AtomicU64,
    domain: Option<String>,
    registrar: Option<Dest>,
    public_address: Option<String>,
    media: MediaThread,
    script: Arc<dyn CallScript>,
    codecs: Vec<sdp::Codec>,
}

/// Places calls over SIP.
#[derive(Clone)]
pub struct SipEngine {
    shared: Arc<Shared>,
    /// The SIP port actually bound (useful when configured as 0).
    pub local_port: u16,
}

/// The registrar as a destination: `host[:port]` or `sip:host[:port][;transport=tcp]`.
fn registrar_dest(registrar: &str, default: Transport) -> Result<Dest, String> {
    let (host, port) = parse_host_port(registrar)?;
    let transport = match crate::sip::header::uri_host_port(registrar).and_then(|(_, _, t)| t) {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        _ => default,
    };
    Ok(Dest {
        host,
        port: port.unwrap_or(5060),
        transport,
    })
}

async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    smol::net::resolve((host, port)).await.ok()?.into_iter().next()
}

/// Our address as seen from `host`: the source address the kernel would pick (no packet is sent).
async fn local_ip_towards(host: &str, port: u16) -> Option<String> {
    let target = resolve(host, port).await?;
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .ok()?;
    let sock = std::net::UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

impl SipEngine {
    /// Bind the SIP sockets, start the driver and the media thread and, with a registrar, register.
    /// Answered calls run the configured speech script. The binary refuses to start when the
    /// engines cannot (`speech::engines::probe`); should building them still fail here, the
    /// service places calls, logs the error with what to install or set, and every answered call
    /// says in its timeline that nothing could be spoken ([`NoSpeechScript`]).
    pub async fn start(config: &Config) -> Result<Self, DriverError> {
        Self::start_with_decider(config, super::speech_setup::builtin_decider(config)).await
    }

    /// As [`SipEngine::start`], with `decider` taking the caller's answers (the WebAssembly hooks
    /// in the service: [`super::decider::HookDecider`]).
    pub async fn start_with_decider(
        config: &Config,
        decider: Arc<dyn super::speech_script::Decider>,
    ) -> Result<Self, DriverError> {
        let script: Arc<dyn CallScript> = match super::speech_setup::speech_script(config, decider) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(error = %e, "speech engines unavailable: calls will not speak");
                Arc::new(NoSpeechScript)
            }
        };
        Self::start_with_script(config, script).await
    }

    /// As [`SipEngine::start`], with the script answered calls run.
    pub async fn start_with_script(
        config: &Config,
        script: Arc<dyn CallScript>,
    ) -> Result<Self, DriverError> {
        let s = &config.sip;
        let transport = match s.transport {
            CfgTransport::Udp => Transport::Udp,
            CfgTransport::Tcp => Transport::Tcp,
        };
        let registrar = match &s.registrar {
            Some(r) => Some(registrar_dest(r, transport).map_err(|e| DriverError::Registrar(r.clone(), e))?),
            None => None,
        };
        let bind_addr = SocketAddr::from(([0, 0, 0, 0], s.local_port));
        let udp = UdpSocket::bind(bind_addr)
            .await
            .map_err(|source| DriverError::Bind {
                transport: "UDP",
                addr: bind_addr,
                source,
            })?;
        let local_port = udp.local_addr().map(|a| a.port()).unwrap_or(s.local_port);
        let listen = SocketAddr::from(([0, 0, 0, 0], local_port));
        let tcp = match transport {
            Transport::Tcp => Some(
                TcpListener::bind(listen)
                    .await
                    .map_err(|source| DriverError::Bind {
                        transport: "TCP",
                        addr: listen,
                        source,
                    })?,
            ),
            Transport::Udp => None,
        };
        let local_host = match (&s.public_address, &registrar) {
            (Some(p), _) => p.clone(),
            (None, Some(r)) => local_ip_towards(&r.host, r.port)
                .await
                .unwrap_or_else(|| "127.0.0.1".into()),
            (None, None) => "127.0.0.1".into(),
        };
        let domain = s
            .domain
            .clone()
            .or_else(|| registrar.as_ref().map(|r| r.host.clone()));
        let ua_cfg = UaConfig {
            user: s.user.clone().unwrap_or_else(|| "sip-assistant".into()),
            auth_user: s.auth_user.clone(),
            password: s.password.as_ref().map(|p| p.expose().to_string()),
            domain: domain.clone().unwrap_or_else(|| local_host.clone()),
            outbound_proxy: registrar.clone(),
            transport,
            local_host,
            local_port,
            register_expires: s.register_expires,
            register_refresh_max: (s.register_refresh_seconds > 0)
                .then(|| Duration::from_secs(u64::from(s.register_refresh_seconds))),
            user_agent: concat!("sip-assistant/", env!("CARGO_PKG_VERSION")).into(),
            // Credentials only for trusted realms: the listed ones, or else the registrar's own
            // (learned from its challenge to REGISTER) and the configured domain.
            auth_realms: if s.auth_realms.is_empty() {
                s.domain.iter().cloned().collect()
            } else {
                s.auth_realms.clone()
            },
            trust_registrar_realm: s.auth_realms.is_empty(),
        };
        let (cmds, cmd_rx) = async_channel::bounded(CMD_QUEUE);
        let codecs = config.media.codec_list().map_err(DriverError::Codecs)?;
        let (media, _media_thread) =
            MediaThread::start(config.media.rtp_port_min, config.media.rtp_port_max)?;
        let shared = Arc::new(Shared {
            cmds,
            registered: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            domain,
            registrar: registrar.clone(),
            public_address: s.public_address.clone(),
            media,
            script,
            codecs,
        });
        // Branches, tags and Call-IDs must be unpredictable (or responses can be forged): the
        // core's ChaCha generator gets its seed from the OS.
        let mut seed = [0u8; 32];
        rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed).map_err(DriverError::Entropy)?;
        let ua = UserAgent::new(ua_cfg, seed, Instant::now());
        let (net_tx, net_rx) = async_channel::bounded(NET_QUEUE);
        let limits = TcpLimits {
            max_connections: s.tcp_max_connections as usize,
            idle: Duration::from_secs(u64::from(s.tcp_idle_seconds)),
            write_timeout: Duration::from_millis(u64::from(s.tcp_write_timeout_ms)),
        };
        let driver = Driver {
            ua,
            udp,
            shared: shared.clone(),
            tcp: Connections::new(limits, net_tx),
            watchers: HashMap::new(),
            unregister_waiters: Vec::new(),
            dropped: WarnLimiter::default(),
        };
        crate::supervise::global()
            .spawn("sip driver loop", driver.run(cmd_rx, net_rx, tcp))
            .detach();
        tracing::info!(port = local_port, transport = transport.token(), "SIP listening");
        if registrar.is_some() {
            let _ = shared.cmds.send(Cmd::Ua(Command::Register)).await;
        }
        Ok(Self { shared, local_port })
    }
}

impl Shared {
    /// The Request-URI for an `extension`.
    fn target_uri(&self, extension: &str) -> Result<String, String> {
        match parse_extension(extension)? {
            Target::Uri(u) => Ok(u),
            Target::User(u) => match &self.domain {
                Some(d) => Ok(format!("sip:{u}@{d}")),
                None => Err(format!(
                    "cannot dial extension '{u}' without sip.registrar or sip.domain; give a full sip: URI instead"
                )),
            },
        }
    }

    async fn run_call(self: Arc<Self>, call: ActiveCall) -> CallOutcome {
        let uri = match self.target_uri(&call.request.extension) {
            Ok(u) => u,
            Err(e) => return CallOutcome::failed(e),
        };
        let local_host = match (&self.public_address, &self.registrar) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(_)) => None,
            (None, None) => match crate::sip::header::uri_host_port(&uri) {
                Some((h, p, _)) => local_ip_towards(h.trim_matches(['[', ']']), p.unwrap_or(5060)).await,
                None => None,
            },
        };
        let sdp_host = local_host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ports = match self.media.bind_ports() {
            Ok(p) => p,
            Err(e) => return CallOutcome::failed(e.to_string()),
        };
        let offer_params = sdp::OfferParams {
            address: sdp_host,
            rtp_port: ports.port,
            session_id: id,
            session_version: 1,
            codecs: self.codecs.clone(),
            ptime_ms: 20,
        };
        let offer = sdp::build_offer(&offer_params);
        let (tx, rx) = async_channel::bounded(CALL_EVENTS);
        let ring_timeout = Duration::from_secs(u64::from(call.request.ring_timeout));
        let started = self.cmds.send(Cmd::Watch(id, tx)).await.is_ok()
            && self
                .cmds
                .send(Cmd::Ua(Command::Call {
                    id,
                    uri,
                    local_host,
                    ring_timeout,
                    sdp: offer.into_bytes(),
                    offer: Some(offer_params),
                }))
                .await
                .is_ok();
        if !started {
            return CallOutcome::failed("the SIP driver has stopped");
        }
        let audio: Vec<AudioCodec> = self.codecs.iter().map(|c| audio_codec(*c)).collect();
        let mut prepared = Some(self.script.prepare(&call, &audio));
        let mut ports = Some(ports);
        // However the far end behaves, the call ends: ring time + a transaction timeout + margin.
        let give_up = Instant::now() + ring_timeout + Duration::from_secs(32 + 60);
        let mut hangup_sent = false;
        loop {
            match self.next_event(&rx, &call, hangup_sent, give_up).await {
                Next::Cancel => {
                    hangup_sent = true;
                    let _ = self.cmds.send(Cmd::Ua(Command::Hangup { id })).await;
                }
                Next::GiveUp => {
                    let _ = self.cmds.send(Cmd::Ua(Command::Hangup { id })).await;
                    return CallOutcome::failed("the call did not end in time; hung up");
                }
                Next::Event(None) => return CallOutcome::failed("the SIP driver has stopped"),
                Next::Event(Some(e)) => match e {
                    Event::Ringing { .. } => call.events.ringing(),
                    Event::DialogSaved { dialog, .. } => call.events.dialog(*dialog),
                    Event::Answered { sdp, .. } => {
                        call.events.answered();
                        let (Some(ports), Some(prepared)) = (ports.take(), prepared.take()) else {
                            continue;
                        };
                        return self.answered(id, &call, &rx, ports, &sdp, prepared).await;
                    }
                    Event::Ended { end, .. } => return outcome(end, ScriptResult::default(), None),
                    _ => {}
                },
            }
        }
    }

    async fn next_event(
        &self,
        rx: &async_channel::Receiver<Event>,
        call: &ActiveCall,
        hangup_sent: bool,
        give_up: Instant,
    ) -> Next {
        let event = async { Next::Event(rx.recv().await.ok()) };
        let cancel = async {
            if hangup_sent {
                std::future::pending::<()>().await;
            }
            call.cancel.cancelled().await;
            Next::Cancel
        };
        let timer = async {
            smol::Timer::at(give_up).await;
            Next::GiveUp
        };
        event.or(cancel).or(timer).await
    }

    /// The call was answered: start media, run the script while watching SIP, hang up, report.
    async fn answered(
        &self,
        id: CallKey,
        call: &ActiveCall,
        rx: &async_channel::Receiver<Event>,
        ports: PortPair,
        answer: &[u8],
        prepared: super::script::Prepared,
    ) -> CallOutcome {
        // An answered call ends by itself (the script hangs up, the far end does, or the API
        // cancels); this only bounds a far end that never confirms the end.
        let answer_seen = Instant::now();
        let give_up = answer_seen + MAX_ANSWERED;
        let negotiated = match sdp::parse_answer(answer, &self.codecs) {
            Ok(n) => n,
            Err(e) => {
                let why = format!("unusable SDP answer: {e}");
                call.events.event("media_failed", Some(why.clone()));
                let _ = self.cmds.send(Cmd::Ua(Command::Hangup { id })).await;
                self.wait_ended(rx, give_up).await;
                return CallOutcome::failed(why);
            }
        };
        let codec = audio_codec(negotiated.codec);
        let numbers = self.media.rtp_numbers();
        let params = SessionParams {
            codec,
            payload_type: negotiated.payload_type,
            dtmf_payload_type: negotiated.dtmf_payload_type,
            remote: SocketAddr::new(negotiated.remote_ip, negotiated.remote_port),
            remote_rtcp: SocketAddr::new(negotiated.remote_ip, negotiated.remote_rtcp_port),
            ssrc: numbers.ssrc,
            initial_seq: numbers.initial_seq,
            initial_timestamp: numbers.initial_timestamp,
        };
        call.events.event(
            "media_started",
            Some(format!("{} to {}", codec.name(), params.remote)),
        );
        let media_opened = Instant::now();
        let media = match silence_frame(codec)
            .and_then(|s| self.media.open(ports, params, s).map_err(|e| e.to_string()))
        {
            Ok(m) => m,
            Err(e) => {
                call.events.event("media_failed", Some(e.clone()));
                let _ = self.cmds.send(Cmd::Ua(Command::Hangup { id })).await;
                self.wait_ended(rx, give_up).await;
                return CallOutcome::failed(format!("cannot start media: {e}"));
            }
        };
        let progress = Arc::new(std::sync::Mutex::new(ScriptResult::default()));
        let ctx = ScriptContext {
            call,
            media: &media,
            codec,
            prepared,
            progress: progress.clone(),
        };
        // The script runs until done; meanwhile SIP may end the call (remote BYE) or the API may
        // cancel it. Whichever comes first decides.
        enum Race {
            Script(ScriptResult),
            Ended(Option<CallEnd>),
            Cancelled,
        }
        let script = async { Race::Script(self.script.run(ctx).await) };
        let sip = async {
            loop {
                match self.next_event(rx, call, false, give_up).await {
                    Next::Event(Some(Event::Dtmf { digit, .. })) => {
                        call.events.event("dtmf", Some(format!("{digit} (SIP INFO)")));
                        if let Err(e) = media.push_info_digit(digit) {
                            tracing::debug!(error = %e, "INFO digit after media ended");
                        }
                    }
                    Next::Event(Some(Event::MediaChanged { negotiated, .. })) => {
                        let sending =
                            negotiated.direction.receives() && !negotiated.remote_ip.is_unspecified();
                        call.events.event(
                            if sending { "media_resumed" } else { "media_held" },
                            Some(format!(
                                "{}:{} {}",
                                negotiated.remote_ip,
                                negotiated.remote_port,
                                negotiated.direction.attribute()
                            )),
                        );
                        let remote = SocketAddr::new(negotiated.remote_ip, negotiated.remote_port);
                        let rtcp = SocketAddr::new(negotiated.remote_ip, negotiated.remote_rtcp_port);
                        if let Err(e) = media.update_remote(remote, rtcp, sending) {
                            tracing::debug!(error = %e, "media update after media ended");
                        }
                    }
                    Next::Event(Some(Event::DialogSaved { dialog, .. })) => call.events.dialog(*dialog),
                    Next::Event(Some(Event::Ended { end, .. })) => return Race::Ended(Some(end)),
                    Next::Event(Some(_)) => {}
                    Next::Event(None) | Next::GiveUp => return Race::Ended(None),
                    Next::Cancel => return Race::Cancelled,
                }
            }
        };
        let (result, end) = match script.or(sip).await {
            Race::Script(r) => (r, self.finish(id, rx, give_up).await),
            Race::Ended(end) => (snapshot(&progress), end),
            Race::Cancelled => (snapshot(&progress), self.finish(id, rx, give_up).await),
        };
        let end = end.unwrap_or(CallEnd::Failed {
            reason: "the call did not end cleanly".into(),
        });
        match &end {
            CallEnd::HungUpLocal => call.events.event("hangup", Some("by us".into())),
            CallEnd::HungUpRemote => call.events.event("hangup", Some("by the far end".into())),
            _ => {}
        }
        let mut health = media.close().await.ok();
        if let Some(h) = health.as_mut() {
            // The session counts from its own start; add the time from the 200 OK to it.
            let before_media = media_opened.saturating_duration_since(answer_seen);
            h.answer_to_audio_ms = h
                .answer_to_audio_ms
                .map(|ms| ((ms + before_media.as_secs_f64() * 1000.0) * 1000.0).round() / 1000.0);
            if h.no_rtp_received {
                call.events.event(
                    "no_rtp_received",
                    Some("nothing arrived from the far end within 5 s of the answer".into()),
                );
            }
        }
        outcome(end, result, health)
    }

    /// Hang up unless the call already ended, and wait for the end.
    async fn finish(
        &self,
        id: CallKey,
        rx: &async_channel::Receiver<Event>,
        give_up: Instant,
    ) -> Option<CallEnd> {
        while let Ok(e) = rx.try_recv() {
            if let Event::Ended { end, .. } = e {
                return Some(end);
            }
        }
        let _ = self.cmds.send(Cmd::Ua(Command::Hangup { id })).await;
        self.wait_ended(rx, give_up).await
    }

    async fn wait_ended(&self, rx: &async_channel::Receiver<Event>, give_up: Instant) -> Option<CallEnd> {
        let wait = async {
            while let Ok(e) = rx.recv().await {
                if let Event::Ended { end, .. } = e {
                    return Some(end);
                }
            }
            None
        };
        let timer = async {
            smol::Timer::at(give_up).await;
            None
        };
        wait.or(timer).await
    }
}

enum Next {
    Event(Option<Event>),
    Cancel,
    GiveUp,
}

/// The longest an answered call may last (a script asks at most 5 times with 60 s each).
const MAX_ANSWERED: Duration = Duration::from_secs(3600);

fn audio_codec(c: sdp::Codec) -> AudioCodec {
    match c {
        sdp::Codec::Pcmu => AudioCodec::Pcmu,
        sdp::Codec::Pcma => AudioCodec::Pcma,
        sdp::Codec::Opus => AudioCodec::Opus,
    }
}

/// The script's result so far (a poisoned lock still holds the last value written).
fn snapshot(progress: &std::sync::Mutex<ScriptResult>) -> ScriptResult {
    progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// One 20 ms frame of silence in `codec`.
fn silence_frame(codec: AudioCodec) -> Result<Vec<u8>, String> {
    match codec {
        AudioCodec::Pcmu => Ok(vec![0xFF; 160]),
        AudioCodec::Pcma => Ok(vec![0xD5; 160]),
        AudioCodec::Opus => crate::media::opus_codec::encode_prompt(&[0i16; 960])
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .ok_or_else(|| "the Opus encoder produced no frame".into()),
    }
}

fn outcome(end: CallEnd, script: ScriptResult, media: Option<MediaHealth>) -> CallOutcome {
    let (status, error) = match end {
        CallEnd::HungUpLocal | CallEnd::HungUpRemote => (FinalStatus::Completed, script.error),
        CallEnd::Busy { code, reason } => (FinalStatus::Busy, Some(format!("{code} {reason}"))),
        CallEnd::NoAnswer => (FinalStatus::NoAnswer, None),
        CallEnd::Cancelled => (FinalStatus::Failed, Some("cancelled".into())),
        CallEnd::Failed { reason } => (FinalStatus::Failed, Some(reason)),
    };
    CallOutcome {
        status,
        error,
        message_played: script.message_played,
        choice_response: script.choice_response,
        choice_raw_text: script.choice_raw_text,
        media,
    }
}

impl CallEngine for SipEngine {
    fn place_call(&self, call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>> {
        Box::pin(self.shared.clone().run_call(call))
    }

    fn check_request(&self, request: &CallRequest) -> Result<(), String> {
        self.shared.script.check_request(request)
    }

    fn sip_registered(&self) -> bool {
        self.shared.registered.load(Ordering::Relaxed)
    }

    fn hang_up_recovered(&self, dialog: crate::sip::ua::SavedDialog) {
        let call_id = dialog.call_id.clone();
        if self
            .shared
            .cmds
            .try_send(Cmd::Ua(Command::ByeRecovered(Box::new(dialog))))
            .is_err()
        {
            tracing::warn!(%call_id, "the SIP driver has stopped: no BYE for a dialog from before the restart");
        }
    }

    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            if shared.registrar.is_none() {
                return;
            }
            let (tx, rx) = async_channel::bounded(1);
            if shared.cmds.send(Cmd::Unregister(tx)).await.is_ok() {
                let done = async {
                    let _ = rx.recv().await;
                };
                let timeout = async {
                    smol::Timer::after(UNREGISTER_WAIT).await;
                    tracing::warn!("the registrar did not answer the un-REGISTER in time");
                };
                done.or(timeout).await;
            }
        })
    }
}

struct Driver {
    ua: UserAgent,
    udp: UdpSocket,
    shared: Arc<Shared>,
    tcp: Connections,
    watchers: HashMap<CallKey, async_channel::Sender<Event>>,
    unregister_waiters: Vec<async_channel::Sender<()>>,
    /// Malformed or unexpected SIP messages: every one at debug, a warning per 10 s at most.
    dropped: WarnLimiter,
}

fn first_line(bytes: &[u8]) -> String {
    let line = bytes
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or_default();
    String::from_utf8_lossy(line).into_owned()
}

impl Driver {
    async fn run(
        mut self,
        cmds: async_channel::Receiver<Cmd>,
        net_rx: async_channel::Receiver<Net>,
        listener: Option<TcpListener>,
    ) {
        if let Some(listener) = listener {
            self.tcp.listen(listener);
        }
        let mut buf = vec![0u8; 65_536];
        // Beaten on every wake, and the loop wakes at least every BEAT_EVERY: the watchdog stops
        // pinging when this loop hangs.
        let heartbeat = crate::supervise::global().heartbeat("sip driver loop");
        loop {
            heartbeat.beat();
            let deadline = self
                .flush()
                .await
                .min(Instant::now() + crate::supervise::heartbeat::BEAT_EVERY);
            enum Wake {
                Udp(std::io::Result<(usize, SocketAddr)>),
                Net(Option<Net>),
                Cmd(Option<Cmd>),
                Timer,
            }
            let udp = async { Wake::Udp(self.udp.recv_from(&mut buf).await) };
            let net = async { Wake::Net(net_rx.recv().await.ok()) };
            let cmd = async { Wake::Cmd(cmds.recv().await.ok()) };
            let timer = async {
                smol::Timer::at(deadline).await;
                Wake::Timer
            };
            let wake = cmd.or(udp).or(net).or(timer).await;
            let now = Instant::now();
            match wake {
                Wake::Udp(Ok((n, from))) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    tracing::debug!(%from, "SIP << {}", first_line(&bytes));
                    self.ua.handle_input(
                        now,
                        Input::Message {
                            from,
                            transport: Transport::Udp,
                            bytes: &bytes,
                        },
                    );
                }
                Wake::Udp(Err(e)) => {
                    // ICMP errors from earlier sends show up here on Linux; nothing to do but log.
                    tracing::debug!(error = %e, "UDP receive error");
                }
                Wake::Net(Some(Net::Message { from, bytes })) => {
                    tracing::debug!(%from, "SIP << {}", first_line(&bytes));
                    self.ua.handle_input(
                        now,
                        Input::Message {
                            from,
                            transport: Transport::Tcp,
                            bytes: &bytes,
                        },
                    );
                }
                Wake::Net(Some(Net::Accepted(from, stream, slot))) => self.tcp.adopt(from, stream, slot),
                Wake::Net(Some(Net::Closed { from, conn, reason })) => {
                    // Both the peer's address and, for connections we opened, the destination
                    // as the user agent named it (the registrar by host name, say).
                    for dest in self.tcp.closed(from, conn) {
                        let reason = reason.clone();
                        self.ua.handle_input(now, Input::TransportError { dest, reason });
                    }
                }
                Wake::Net(None) => {}
                Wake::Cmd(None) => break,
                Wake::Cmd(Some(Cmd::Ua(c))) => self.ua.handle_command(now, c),
                Wake::Cmd(Some(Cmd::Watch(id, tx))) => {
                    self.watchers.insert(id, tx);
                }
                Wake::Cmd(Some(Cmd::Unregister(done))) => {
                    self.unregister_waiters.push(done);
                    self.ua.handle_command(now, Command::Unregister);
                }
                Wake::Timer => {}
            }
            self.ua.handle_timeout(Instant::now());
        }
    }

    /// Send and dispatch everything the user agent has; returns its next deadline.
    async fn flush(&mut self) -> Instant {
        loop {
            match self.ua.poll_output() {
                Output::Transmit { dest, bytes } => {
                    if let Err(reason) = self.send(&dest, &bytes).await {
                        tracing::warn!(%dest, %reason, "cannot send a SIP message");
                        self.ua
                            .handle_input(Instant::now(), Input::TransportError { dest, reason });
                    }
                }
                Output::Event(e) => self.dispatch(e),
                Output::Timeout(at) => return at.min(Instant::now() + Duration::from_secs(60)),
            }
        }
    }

    /// Send one message. TCP only queues it on its connection (opened when needed): a slow or
    /// silent peer never holds up this loop.
    async fn send(&mut self, dest: &Dest, bytes: &[u8]) -> Result<(), String> {
        let addr = resolve(&dest.host, dest.port)
            .await
            .ok_or_else(|| format!("cannot resolve {}", dest.host))?;
        if dest.host.parse::<IpAddr>().is_err() {
            // The core accepts answers only from where it sent: tell it where the name led.
            let resolved = Input::Resolved {
                host: dest.host.clone(),
                ip: addr.ip(),
            };
            self.ua.handle_input(Instant::now(), resolved);
        }
        tracing::debug!(to = %addr, "SIP >> {}", first_line(bytes));
        match dest.transport {
            Transport::Udp => self
                .udp
                .send_to(bytes, addr)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Transport::Tcp => {
                // The registrar's connection stays up however quiet it is (as REGISTER keeps it).
                let keep_alive = self.shared.registrar.as_ref() == Some(dest);
                self.tcp
                    .send(addr, dest, bytes, keep_alive)
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn dispatch(&mut self, e: Event) {
        match e {
            Event::Registered { expires } => {
                if !self.shared.registered.swap(true, Ordering::Relaxed) {
                    tracing::info!(expires, "registered with the registrar");
                }
            }
            Event::RegistrationFailed { reason } => {
                self.shared.registered.store(false, Ordering::Relaxed);
                tracing::warn!(%reason, "registration failed; retrying");
            }
            Event::Unregistered => {
                self.shared.registered.store(false, Ordering::Relaxed);
                tracing::info!("registration removed");
                for w in self.unregister_waiters.drain(..) {
                    let _ = w.try_send(());
                }
            }
            Event::Dropped { reason } => {
                tracing::debug!(%reason, "dropped a SIP message");
                if let Some(held_back) = self.dropped.allow(Instant::now()) {
                    tracing::warn!(
                        %reason,
                        held_back,
                        "dropped a malformed or unexpected SIP message (one warning per 10 s; held_back: dropped since the last)"
                    );
                }
            }
            Event::ChallengeRefused { method, realms } => tracing::warn!(
                %method,
                ?realms,
                "digest challenge not answered: its realm is not trusted (set sip.auth_realms to trust it)"
            ),
            Event::Ended { id, .. } => {
                if let Some(w) = self.watchers.remove(&id) {
                    // The end must arrive even behind a flood of DTMF: wait for room, elsewhere.
                    if let Err(async_channel::TrySendError::Full(e)) = w.try_send(e) {
                        smol::spawn(async move {
                            let _ = w.send(e).await;
                        })
                        .detach();
                    }
                }
            }
            Event::RecoveredBye { call_id, result } => {
                tracing::info!(%call_id, %result, "BYE for a dialog from before the restart")
            }
            Event::Ringing { id }
            | Event::DialogSaved { id, .. }
            | Event::Answered { id, .. }
            | Event::Dtmf { id, .. }
            | Event::MediaChanged { id, .. } => {
                if let Some(w) = self.watchers.get(&id) {
                    let _ = w.try_send(e);
                }
            }
        }
    }
}
