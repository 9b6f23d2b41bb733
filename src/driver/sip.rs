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

use super::media::{MediaHandle, MediaThread, PortPair};
use super::script::{CallScript, NoSpeechScript, ScriptContext, ScriptFuture, ScriptResult, ScriptRun};
use super::tcp::{Connections, Net, TcpLimits, WarnLimiter, NET_QUEUE};
use crate::call::{ActiveCall, CallEngine, CallOutcome, CallRequest};
use crate::config::Config;
use crate::flow::{audio_codec, CallFlow, CallPlan, Input as FlowInput, Output};
use crate::media::session::AudioCodec;
use crate::sdp;
use crate::sip::ua::{
    CallKey, Command, Dest, Event, Input, Output as UaOutput, Transport, UaConfig, UserAgent,
};
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
    let (host, port) = parse_host_port(registrar).map_err(|e| e.to_string())?;
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
        let transport = s.transport;
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
        match parse_extension(extension).map_err(|e| e.to_string())? {
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
        let plan = CallPlan {
            id,
            uri,
            local_host,
            ring_timeout: Duration::from_secs(u64::from(call.request.ring_timeout)),
            offer: sdp::OfferParams {
                address: sdp_host,
                rtp_port: ports.port,
                session_id: id,
                session_version: 1,
                codecs: self.codecs.clone(),
                ptime_ms: 20,
            },
            rtp: self.media.rtp_numbers(),
        };
        let (tx, rx) = async_channel::bounded(CALL_EVENTS);
        if self.cmds.send(Cmd::Watch(id, tx)).await.is_err() {
            return CallOutcome::failed("the SIP driver has stopped");
        }
        let audio: Vec<AudioCodec> = self.codecs.iter().map(|c| audio_codec(*c)).collect();
        let run = CallRun {
            shared: &self,
            call: &call,
            rx,
            ports: Some(ports),
            prepared: Some(self.script.clone().prepare(&call, &audio)),
            media: None,
            script: None,
        };
        run.drive(CallFlow::new(plan, Instant::now())).await
    }
}

/// What the shell holds for one call while [`CallFlow`] decides: the event stream, the media
/// ports and session, the running script. It carries out the flow's outputs and feeds it what
/// happens; it never looks at the call's state.
struct CallRun<'a> {
    shared: &'a Shared,
    call: &'a ActiveCall,
    rx: async_channel::Receiver<Event>,
    ports: Option<PortPair>,
    prepared: Option<Box<dyn ScriptRun>>,
    media: Option<MediaHandle>,
    script: Option<(ScriptFuture<'a>, Arc<std::sync::Mutex<ScriptResult>>)>,
}

impl<'a> CallRun<'a> {
    async fn drive(mut self, mut flow: CallFlow) -> CallOutcome {
        let mut cancel_heard = false;
        loop {
            while let Some(out) = flow.poll_output() {
                if let Some(outcome) = self.carry_out(&mut flow, out).await {
                    return outcome;
                }
            }
            let deadline = flow.poll_timeout();
            enum Wake {
                Script(ScriptResult),
                Sip(Option<Event>),
                Cancel,
                Timer,
            }
            let script = async {
                match self.script.as_mut() {
                    Some((run, _)) => Wake::Script(run.await),
                    None => std::future::pending().await,
                }
            };
            let sip = async { Wake::Sip(self.rx.recv().await.ok()) };
            let cancel = async {
                if cancel_heard {
                    std::future::pending::<()>().await;
                }
                self.call.cancel.cancelled().await;
                Wake::Cancel
            };
            let timer = async {
                match deadline {
                    Some(at) => smol::Timer::at(at).await,
                    None => std::future::pending().await,
                };
                Wake::Timer
            };
            let wake = script.or(sip).or(cancel).or(timer).await;
            let now = Instant::now();
            match wake {
                Wake::Script(result) => {
                    self.script = None;
                    flow.handle_input(now, FlowInput::ScriptDone(result));
                }
                Wake::Sip(Some(e)) => flow.handle_input(now, FlowInput::Sip(e)),
                Wake::Sip(None) => flow.handle_input(now, FlowInput::SipStopped),
                Wake::Cancel => {
                    cancel_heard = true;
                    flow.handle_input(now, FlowInput::Cancel);
                }
                Wake::Timer => flow.handle_timeout(now),
            }
        }
    }

    /// Carry out one output of the flow; the outcome once it is done.
    async fn carry_out(&mut self, flow: &mut CallFlow, out: Output) -> Option<CallOutcome> {
        match out {
            Output::Ua(c) => {
                if self.shared.cmds.send(Cmd::Ua(c)).await.is_err() {
                    flow.handle_input(Instant::now(), FlowInput::SipStopped);
                }
            }
            Output::Progress(p) => self.call.events.report(p),
            Output::OpenMedia(params) => {
                let opened = match self.ports.take() {
                    Some(ports) => silence_frame(params.codec).and_then(|s| {
                        self.shared
                            .media
                            .open(ports, params, s)
                            .map_err(|e| e.to_string())
                    }),
                    None => Err("the media ports were already used".into()),
                };
                let input = match opened {
                    Ok(m) => {
                        self.media = Some(m);
                        FlowInput::MediaOpened
                    }
                    Err(e) => FlowInput::MediaFailed(e),
                };
                flow.handle_input(Instant::now(), input);
            }
            Output::UpdateMedia {
                remote,
                remote_rtcp,
                sending,
            } => {
                if let Some(Err(e)) = self
                    .media
                    .as_ref()
                    .map(|m| m.update_remote(remote, remote_rtcp, sending))
                {
                    tracing::debug!(error = %e, "media update after media ended");
                }
            }
            Output::InfoDigit(digit) => {
                if let Some(Err(e)) = self.media.as_ref().map(|m| m.push_info_digit(digit)) {
                    tracing::debug!(error = %e, "INFO digit after media ended");
                }
            }
            Output::StartScript { codec } => match (self.media.clone(), self.prepared.take()) {
                (Some(media), Some(prepared)) => {
                    let progress = Arc::new(std::sync::Mutex::new(ScriptResult::default()));
                    let ctx = ScriptContext {
                        call: self.call,
                        media,
                        codec,
                        progress: progress.clone(),
                    };
                    self.script = Some((prepared.run(ctx), progress));
                }
                _ => {
                    let result = ScriptResult {
                        error: Some("the script could not start: no media".into()),
                        ..ScriptResult::default()
                    };
                    flow.handle_input(Instant::now(), FlowInput::ScriptDone(result));
                }
            },
            Output::StopScript => {
                // Dropping the script's future stops it where it waits.
                let result = match self.script.take() {
                    Some((_, progress)) => snapshot(&progress),
                    None => ScriptResult::default(),
                };
                flow.handle_input(Instant::now(), FlowInput::ScriptStopped(result));
            }
            Output::CloseMedia => {
                let health = match self.media.take() {
                    Some(m) => m.close().await.ok(),
                    None => None,
                };
                flow.handle_input(Instant::now(), FlowInput::MediaClosed(health));
            }
            Output::Done(outcome) => return Some(outcome),
        }
        None
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
                UaOutput::Transmit { dest, bytes } => {
                    if let Err(reason) = self.send(&dest, &bytes).await {
                        tracing::warn!(%dest, %reason, "cannot send a SIP message");
                        self.ua
                            .handle_input(Instant::now(), Input::TransportError { dest, reason });
                    }
                }
                UaOutput::Event(e) => self.dispatch(e),
                UaOutput::Timeout(at) => return at.min(Instant::now() + Duration::from_secs(60)),
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
