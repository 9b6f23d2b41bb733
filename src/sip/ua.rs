//! The user agent: registration, outbound calls and the requests a PBX sends us, on top of the
//! transactions. Sans-IO: the shell feeds messages, commands and timeouts with `now`, and drains
//! [`Output`]s until it gets [`Output::Timeout`].
//!
//! ```no_run
//! # use std::time::Instant;
//! # use sip_assistant::sip::ua::{UserAgent, UaConfig, Output, Command};
//! # fn send(_: &sip_assistant::sip::ua::Dest, _: &[u8]) {}
//! # fn wait_for_input_until(_: Instant) {}
//! # let config: UaConfig = todo!();
//! let mut ua = UserAgent::new(config, [42; 32], Instant::now());
//! ua.handle_command(Instant::now(), Command::Register);
//! loop {
//!     let deadline = loop {
//!         match ua.poll_output() {
//!             Output::Transmit { dest, bytes } => send(&dest, &bytes),
//!             Output::Event(e) => println!("{e:?}"),
//!             Output::Timeout(at) => break at,
//!         }
//!     };
//!     wait_for_input_until(deadline); // then handle_input / handle_command / handle_timeout
//!     ua.handle_timeout(Instant::now());
//! }
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::auth::{parse_challenge, Credentials, DigestClient};
use super::header::{parse_name_addr, split_list, uri_host_port};
use super::ids::{IdGen, IdSeed};
use super::message::{build_request, parse, Headers, Message};
use super::transaction::{Action, ClientTx, Reliability, ServerTx, T1, T1X64, T2};

/// Identifies a call between the shell and the core.
pub type CallKey = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    fn reliability(self) -> Reliability {
        match self {
            Transport::Udp => Reliability::Unreliable,
            Transport::Tcp => Reliability::Reliable,
        }
    }
}

/// Where a message goes: a host (name or IP) and port over a transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dest {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} over {}", self.host, self.port, self.transport.token())
    }
}

#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Our user part (the extension we register as).
    pub user: String,
    /// Digest username when it differs from `user` (3CX's "Authentication ID").
    pub auth_user: Option<String>,
    pub password: Option<String>,
    /// Domain of our AOR and of dialled extensions.
    pub domain: String,
    /// Registrar and outbound proxy; `None` = no registration, requests go where their URI says.
    pub outbound_proxy: Option<Dest>,
    pub transport: Transport,
    /// Host and port written into Via and Contact.
    pub local_host: String,
    pub local_port: u16,
    pub register_expires: u32,
    /// Longest time between two REGISTERs (a PBX restart is noticed within it).
    pub register_refresh_max: Option<Duration>,
    pub user_agent: String,
    /// Digest realms whose challenges get our credentials (`sip.auth_realms`; when that is empty
    /// the shell passes `sip.domain`, if set).
    pub auth_realms: Vec<String>,
    /// Also trust the realm the registrar challenges our REGISTER with (`sip.auth_realms` empty).
    pub trust_registrar_realm: bool,
}

/// Instructions from the shell.
#[derive(Debug, Clone)]
pub enum Command {
    Register,
    /// Remove the registration (`Expires: 0`) and stop refreshing.
    Unregister,
    Call {
        id: CallKey,
        /// The Request-URI (`sip:1001@pbx` or a full URI from the request).
        uri: String,
        /// Our address as the far end should see it (Via, Contact); the configured one if `None`.
        local_host: Option<String>,
        ring_timeout: Duration,
        /// Our SDP offer.
        sdp: Vec<u8>,
        /// What the offer was built from, to answer the far end's re-INVITE offers; without it a
        /// re-INVITE is answered with the original offer.
        offer: Option<crate::sdp::OfferParams>,
    },
    /// Hang up (BYE) or give up ringing (CANCEL).
    Hangup {
        id: CallKey,
    },
    /// Send one BYE (Timer E/F, result in [`Event::RecoveredBye`]) for a dialog saved before a
    /// restart ([`Event::DialogSaved`]).
    ByeRecovered(Box<SavedDialog>),
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// Answered, then we hung up.
    HungUpLocal,
    /// Answered, then the far end hung up.
    HungUpRemote,
    Busy {
        code: u16,
        reason: String,
    },
    NoAnswer,
    /// Hung up on request before it was answered.
    Cancelled,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Registered {
        expires: u32,
    },
    RegistrationFailed {
        reason: String,
    },
    Unregistered,
    Ringing {
        id: CallKey,
    },
    Answered {
        id: CallKey,
        sdp: Vec<u8>,
    },
    Dtmf {
        id: CallKey,
        digit: char,
    },
    /// A re-INVITE changed the media (hold, resume, a new address); we answered it.
    MediaChanged {
        id: CallKey,
        negotiated: crate::sdp::Negotiated,
    },
    Ended {
        id: CallKey,
        end: CallEnd,
    },
    /// A message was dropped (logged by the shell).
    Dropped {
        reason: String,
    },
    /// Call `id` has a dialog, or its dialog changed (the far end's target): keep it with the
    /// call's durable state, to end it with [`Command::ByeRecovered`] after a crash.
    DialogSaved {
        id: CallKey,
        dialog: Box<SavedDialog>,
    },
    /// How the BYE of [`Command::ByeRecovered`] for the dialog `call_id` ended.
    RecoveredBye {
        call_id: String,
        result: String,
    },
    /// A 401/407 to our `method` named only realms we do not trust: no credentials were sent
    /// (logged by the shell as a warning; an INVITE then fails with the same words).
    ChallengeRefused {
        method: String,
        realms: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Transmit {
        dest: Dest,
        bytes: Vec<u8>,
    },
    Event(Event),
    /// Nothing more now; call [`UserAgent::handle_timeout`] at this instant.
    Timeout(Instant),
}

/// What the shell feeds in.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    Message {
        from: SocketAddr,
        transport: Transport,
        bytes: &'a [u8],
    },
    /// Sending to `dest` failed (TCP connect refused or connection lost).
    TransportError { dest: Dest, reason: String },
    /// The shell resolved the host name `host` of a [`Dest`] to `ip` and sent there. Responses
    /// and in-dialog requests are accepted only from where we sent (`peer`): a name we never
    /// resolved matches no source address. IP literals need no such input.
    Resolved { host: String, ip: IpAddr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Register,
    Invite(CallKey),
    Cancel(CallKey),
    Bye(CallKey),
    /// The BYE of a dialog from before a restart; `authed` once it carried credentials.
    RecoveredBye {
        authed: bool,
    },
}

struct ClientEntry {
    tx: ClientTx,
    dest: Dest,
    owner: Owner,
    spec: Spec,
    cseq: u32,
}

struct ServerEntry {
    tx: ServerTx,
    /// Where responses go (RFC 3261 §18.2.2, RFC 3581).
    dest: Dest,
    /// The To tag of our response (a CANCEL of this INVITE is answered with the same tag).
    tag: String,
    /// Insertion order, for evicting the oldest when the table is full.
    order: u64,
}

/// A request that may be sent again (with credentials, or redirected).
#[derive(Debug, Clone)]
pub(super) struct Spec {
    /// Our host for Via and Contact in this request.
    local: String,
    method: String,
    uri: String,
    dest: Dest,
    from: String,
    to: String,
    call_id: String,
    routes: Vec<String>,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegState {
    Off,
    InFlight,
    Registered,
    Waiting,
    Unregistering,
}

struct Registration {
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
    auth_tries: u32,
    backoff: Duration,
    next_at: Option<Instant>,
    registered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dialog {
    remote_tag: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    /// The highest CSeq of the far end's requests (§12.2.2); empty until its first request.
    remote_cseq: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Inviting,
    Confirmed,
    Terminating,
}

struct Call {
    state: CallState,
    spec: Spec,
    cseq: u32,
    invite_branch: String,
    /// A 101–199 arrived (reported as ringing once).
    provisional: bool,
    /// Any 1xx arrived for the current INVITE, so it may be cancelled (§9.1).
    proceeding: bool,
    /// The credentials of the current INVITE; its 2xx ACK carries the same (§13.2.2.4).
    invite_auth: Option<(String, String)>,
    ring_deadline: Instant,
    /// Why we want the INVITE gone (ring timeout, hang-up request); CANCEL once any 1xx arrived.
    cancel: Option<CallEnd>,
    cancel_sent: bool,
    invite_auth_tries: u32,
    bye_auth_tries: u32,
    redirected: bool,
    dialog: Option<Dialog>,
    ack: Option<(Dest, Vec<u8>)>,
    local_sdp: Vec<u8>,
    /// What our SDP says (its version grows with each answer we give).
    offer: Option<crate::sdp::OfferParams>,
    /// How the call ends once the BYE completes.
    end: Option<CallEnd>,
    /// A 2xx to a re-INVITE being retransmitted until its ACK: (dest, bytes, next, interval, give up, cseq).
    reinvite_ok: Option<(Dest, Vec<u8>, Instant, Duration, Instant, u32)>,
}

pub struct UserAgent {
    cfg: UaConfig,
    ids: IdGen,
    out: VecDeque<Output>,
    clients: HashMap<(String, String), ClientEntry>,
    servers: HashMap<(String, String), ServerEntry>,
    /// Counts server transactions ever created (their `order`).
    server_seq: u64,
    reg: Registration,
    calls: HashMap<CallKey, Call>,
    digest: DigestClient,
    /// Host names the shell resolved for us (see [`Input::Resolved`]), bounded.
    resolved: HashMap<String, Vec<IpAddr>>,
    /// The realm of the registrar's latest challenge to our REGISTER (trusted when
    /// [`UaConfig::trust_registrar_realm`]).
    registrar_realm: Option<String>,
    /// The latest `now` handed in.
    now: Instant,
}

/// Most server transactions kept at once. Each lives up to 64·T1 over UDP, so a flood of requests
/// with distinct branches would otherwise grow the table without bound; when it is full the
/// oldest goes (a retransmission of its request is then handled as a new request).
pub const MAX_SERVER_TRANSACTIONS: usize = 1024;

/// Initial and maximum delay between failed registration attempts.
const REG_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REG_BACKOFF_MAX: Duration = Duration::from_secs(20);
/// After "authentication rejected" the password is wrong: retry slowly.
const REG_AUTH_REJECTED_RETRY: Duration = Duration::from_secs(60);

impl UserAgent {
    pub fn new(cfg: UaConfig, seed: IdSeed, now: Instant) -> Self {
        let mut ids = IdGen::new(seed);
        let reg = Registration {
            state: RegState::Off,
            call_id: ids.call_id(&cfg.local_host),
            from_tag: ids.tag(),
            cseq: 0,
            expires: cfg.register_expires,
            auth_tries: 0,
            backoff: REG_BACKOFF_MIN,
            next_at: None,
            registered: false,
        };
        Self {
            cfg,
            ids,
            out: VecDeque::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            server_seq: 0,
            reg,
            calls: HashMap::new(),
            digest: DigestClient::new(),
            resolved: HashMap::new(),
            registrar_realm: None,
            now,
        }
    }

    pub fn is_registered(&self) -> bool {
        self.reg.registered
    }

    /// Calls still known to the core.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Client and server transactions alive (for metrics and tests).
    pub fn transactions(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// Next output; [`Output::Timeout`] when there is nothing more to do now.
    pub fn poll_output(&mut self) -> Output {
        self.out
            .pop_front()
            .unwrap_or_else(|| Output::Timeout(self.next_deadline()))
    }

    fn next_deadline(&self) -> Instant {
        let txs = self.clients.values().filter_map(|c| c.tx.poll_timeout());
        let srv = self.servers.values().filter_map(|s| s.tx.poll_timeout());
        let calls = self.calls.values().flat_map(|c| {
            let ring = (c.state == CallState::Inviting && c.cancel.is_none()).then_some(c.ring_deadline);
            [ring, c.reinvite_ok.as_ref().map(|r| r.2)]
        });
        txs.chain(srv)
            .chain(calls.flatten())
            .chain(self.reg.next_at)
            .min()
            .unwrap_or_else(|| self.far_future())
    }

    /// "Nothing pending": an hour after the last instant we were given.
    fn far_future(&self) -> Instant {
        self.now + Duration::from_secs(3600)
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn transmit(&mut self, dest: Dest, bytes: Vec<u8>) {
        self.out.push_back(Output::Transmit { dest, bytes });
    }

    // ----- requests we send -------------------------------------------------------------------

    fn contact(&self, host: &str) -> String {
        let t = match self.cfg.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("<sip:{}@{host}:{}{t}>", self.cfg.user, self.cfg.local_port)
    }

    fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.user, self.cfg.domain)
    }

    /// The host, port and transport a URI names, ignoring any outbound proxy.
    fn uri_dest(&self, uri: &str) -> Option<Dest> {
        let (host, port, transport) = uri_host_port(uri)?;
        let transport = match transport.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("tcp") => Transport::Tcp,
            Some("udp") => Transport::Udp,
            _ => self.cfg.transport,
        };
        Some(Dest {
            host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: port.unwrap_or(5060),
            transport,
        })
    }

    /// Next hop for a request to `uri` with `routes`.
    fn next_hop(&self, uri: &str, routes: &[String]) -> Option<Dest> {
        let via = routes.first().map_or(uri, String::as_str);
        if routes.is_empty() {
            if let Some(p) = &self.cfg.outbound_proxy {
                return Some(p.clone());
            }
        }
        self.uri_dest(via)
    }

    /// Print `spec` with a fresh branch and `cseq`; returns (branch, bytes).
    fn print(
        &mut self,
        spec: &Spec,
        cseq: u32,
        cseq_method: &str,
        branch: Option<&str>,
        auth: Option<&(String, String)>,
    ) -> Option<(String, Vec<u8>)> {
        let branch = branch.map_or_else(|| self.ids.branch(), str::to_string);
        let mut h = Headers::new();
        h.add(
            "Via",
            format!(
                "SIP/2.0/{} {}:{};branch={branch};rport",
                spec.dest.transport.token(),
                spec.local,
                self.cfg.local_port
            ),
        )
        .add("Max-Forwards", "70")
        .add("From", spec.from.as_str())
        .add("To", spec.to.as_str())
        .add("Call-ID", spec.call_id.as_str())
        .add("CSeq", format!("{cseq} {cseq_method}"));
        for r in &spec.routes {
            h.add("Route", r.as_str());
        }
        if matches!(spec.method.as_str(), "INVITE" | "REGISTER") {
            h.add("Contact", self.contact(&spec.local));
        }
        if let Some((name, value)) = auth {
            h.add(name, value.as_str());
        }
        for (n, v) in &spec.extra {
            h.add(n, v.as_str());
        }
        h.add("User-Agent", self.cfg.user_agent.as_str());
        match build_request(&spec.method, &spec.uri, h, &spec.body) {
            Ok(bytes) => Some((branch, bytes)),
            Err(e) => {
                self.event(Event::Dropped {
                    reason: e.to_string(),
                });
                None
            }
        }
    }

    /// Send `spec` as a new client transaction.
    fn send(
        &mut self,
        now: Instant,
        spec: Spec,
        cseq: u32,
        owner: Owner,
        auth: Option<(String, String)>,
    ) -> Option<String> {
        let (branch, bytes) = self.print(&spec, cseq, &spec.method.clone(), None, auth.as_ref())?;
        let (tx, actions) = ClientTx::start(
            now,
            &branch,
            &spec.method,
            bytes,
            spec.dest.transport.reliability(),
        );
        let dest = spec.dest.clone();
        for a in actions {
            if let Action::Transmit(b) = a {
                self.transmit(dest.clone(), b);
            }
        }
        let key = (branch.clone(), spec.method.clone());
        self.clients.insert(
            key,
            ClientEntry {
                tx,
                dest,
                owner,
                spec,
                cseq,
            },
        );
        Some(branch)
    }

    /// Credentials for a 401/407 to `spec`; `tries` counts our answers to challenges.
    fn answer_challenge(
        &mut self,
        resp: &Message,
        spec: &Spec,
        tries: &mut u32,
    ) -> Result<(String, String), String> {
        let (incoming, outgoing) = if resp.code() == Some(407) {
            ("proxy-authenticate", "Proxy-Authorization")
        } else {
            ("www-authenticate", "Authorization")
        };
        let challenges: Vec<_> = resp
            .values(incoming)
            .filter_map(|v| parse_challenge(v).ok())
            .collect();
        if challenges.is_empty() {
            return Err(format!(
                "{} {} without a usable digest challenge",
                resp.code().unwrap_or(0),
                resp.reason()
            ));
        }
        let Some(challenge) = challenges
            .iter()
            .find(|c| self.realm_trusted(&spec.method, &c.realm))
            .cloned()
        else {
            let realms: Vec<String> = challenges.into_iter().map(|c| c.realm).collect();
            let reason = format!(
                "{} {} to {} challenges for realm {}, which is not trusted (sip.auth_realms): credentials not sent",
                resp.code().unwrap_or(0),
                resp.reason(),
                spec.method,
                realms.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")
            );
            self.event(Event::ChallengeRefused {
                method: spec.method.clone(),
                realms,
            });
            return Err(reason);
        };
        if spec.method == "REGISTER" && self.cfg.trust_registrar_realm {
            self.registrar_realm = Some(challenge.realm.clone());
        }
        if *tries >= 3 || (*tries >= 1 && !challenge.stale) {
            return Err("authentication rejected".into());
        }
        let Some(password) = self.cfg.password.clone() else {
            return Err("authentication required, but sip.password is not set".into());
        };
        *tries += 1;
        let creds = Credentials {
            username: self
                .cfg
                .auth_user
                .clone()
                .unwrap_or_else(|| self.cfg.user.clone()),
            password,
        };
        let cnonce = self.ids.cnonce();
        let value = self
            .digest
            .authorization(&challenge, &creds, &spec.method, &spec.uri, &spec.body, &cnonce)
            .map_err(|e| format!("cannot answer the challenge: {e}"))?;
        Ok((outgoing.to_string(), value))
    }

    /// Whether a challenge to our `method` with `realm` may get our credentials: a listed realm,
    /// or (when trusted) the registrar's, which its challenge to REGISTER teaches us. The
    /// registrar is the configured next hop and its answers must come from its address.
    fn realm_trusted(&self, method: &str, realm: &str) -> bool {
        if self.cfg.auth_realms.iter().any(|r| r == realm) {
            return true;
        }
        if !self.cfg.trust_registrar_realm {
            return false;
        }
        method == "REGISTER" || self.registrar_realm.as_deref() == Some(realm)
    }

    // ----- inputs -----------------------------------------------------------------------------

    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.now = self.now.max(now);
        match cmd {
            Command::Register => {
                if self.cfg.outbound_proxy.is_some() {
                    self.reg.state = RegState::Waiting;
                    self.reg.next_at = None;
                    self.send_register(now);
                }
            }
            Command::Unregister => self.unregister(now),
            Command::Call {
                id,
                uri,
                local_host,
                ring_timeout,
                sdp,
                offer,
            } => {
                let local = local_host.unwrap_or_else(|| self.cfg.local_host.clone());
                self.start_call(now, id, uri, local, ring_timeout, sdp, offer)
            }
            Command::Hangup { id } => self.hangup(now, id, CallEnd::Cancelled),
            Command::ByeRecovered(dialog) => self.bye_recovered(now, *dialog),
        }
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        match input {
            Input::Message {
                from,
                transport,
                bytes,
            } => match parse(bytes) {
                Ok(msg) if msg.code().is_some() => self.handle_response(now, msg, from, transport),
                Ok(msg) => self.on_request(now, msg, from, transport),
                Err(e) => self.event(Event::Dropped {
                    reason: format!("from {from}: {e}"),
                }),
            },
            Input::TransportError { dest, reason } => self.on_transport_error(now, &dest, &reason),
            Input::Resolved { host, ip } => self.note_resolved(host, ip),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let keys: Vec<_> = self.clients.keys().cloned().collect();
        for key in keys {
            let Some(entry) = self.clients.get_mut(&key) else {
                continue;
            };
            if entry.tx.poll_timeout().is_none_or(|d| d > now) {
                continue;
            }
            let actions = entry.tx.handle_timeout(now);
            let (dest, owner, terminated) = (entry.dest.clone(), entry.owner, entry.tx.is_terminated());
            let call_id = entry.spec.call_id.clone();
            for a in actions {
                match a {
                    Action::Transmit(b) => self.transmit(dest.clone(), b),
                    Action::Timeout => {
                        // RFC 3261 timer B (INVITE) or F (other requests) fired.
                        let timer = if matches!(owner, Owner::Invite(_)) {
                            "B"
                        } else {
                            "F"
                        };
                        let why = format!("no response from {dest} (timer {timer})");
                        self.on_client_timeout(now, owner, &call_id, &why)
                    }
                    Action::Response(_) => {}
                }
            }
            if terminated {
                self.clients.remove(&key);
            }
        }
        let keys: Vec<_> = self.servers.keys().cloned().collect();
        for key in keys {
            let Some(entry) = self.servers.get_mut(&key) else {
                continue;
            };
            if entry.tx.poll_timeout().is_none_or(|d| d > now) {
                continue;
            }
            let actions = entry.tx.handle_timeout(now);
            let dest = entry.dest.clone();
            if entry.tx.is_terminated() {
                self.servers.remove(&key);
            }
            for a in actions {
                if let Action::Transmit(b) = a {
                    self.transmit(dest.clone(), b);
                }
            }
        }
        if self.reg.next_at.is_some_and(|t| t <= now) {
            self.reg.next_at = None;
            self.send_register(now);
        }
        let ids: Vec<CallKey> = self.calls.keys().copied().collect();
        for id in ids {
            self.call_timers(now, id);
        }
    }

    fn on_transport_error(&mut self, now: Instant, dest: &Dest, reason: &str) {
        let keys: Vec<_> = self
            .clients
            .iter()
            .filter(|(_, e)| &e.dest == dest)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(entry) = self.clients.remove(&key) {
                let why = format!("transport error to {dest}: {reason}");
                self.on_client_timeout(now, entry.owner, &entry.spec.call_id, &why);
            }
        }
        if self.cfg.outbound_proxy.as_ref() == Some(dest) && self.reg.registered {
            self.reg.registered = false;
            self.event(Event::RegistrationFailed {
                reason: format!("connection to the registrar lost: {reason}"),
            });
            self.reg.backoff = REG_BACKOFF_MIN;
            self.reg.state = RegState::Waiting;
            self.reg.next_at = Some(now);
        }
    }

    fn on_client_timeout(&mut self, now: Instant, owner: Owner, call_id: &str, why: &str) {
        match owner {
            Owner::Register => self.register_failed(now, why.to_string()),
            Owner::Invite(id) => {
                let failed = CallEnd::Failed {
                    reason: format!("{why} to the INVITE"),
                };
                let end = match self.calls.get(&id) {
                    // The ring timeout ran out before anything came back (no provisional, so no
                    // CANCEL could be sent): nobody answered the INVITE at all, which is a
                    // failure with its reason, not "no answer".
                    Some(c) if c.cancel == Some(CallEnd::NoAnswer) && !c.proceeding => failed,
                    Some(c) if c.cancel.is_some() => c.cancel.clone().unwrap_or(CallEnd::NoAnswer),
                    _ => failed,
                };
                self.end_call(id, end);
            }
            Owner::Bye(id) => {
                let end = self
                    .calls
                    .get(&id)
                    .and_then(|c| c.end.clone())
                    .unwrap_or(CallEnd::HungUpLocal);
                self.end_call(id, end);
            }
            Owner::Cancel(_) => {}
            Owner::RecoveredBye { .. } => self.event(Event::RecoveredBye {
                call_id: call_id.to_string(),
                result: why.to_string(),
            }),
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Message, from: SocketAddr, transport: Transport) {
        if resp.vias().len() > 1 {
            // §18.1.2: a response with more than one Via is not for us (a misrouted one).
            self.event(Event::Dropped {
                reason: format!("response {} with more than one Via", resp.code().unwrap_or(0)),
            });
            return;
        }
        let key = (
            resp.top_via.branch().unwrap_or_default().to_string(),
            resp.cseq_method.clone(),
        );
        let Some(entry) = self.clients.get(&key) else {
            // A 2xx retransmission after the INVITE transaction ended: ACK again from the dialog.
            if resp.cseq_method == "INVITE" && (200..300).contains(&resp.code().unwrap_or(0)) {
                self.resend_ack(&resp, from, transport);
            }
            return;
        };
        // Only the address the request went to may answer it: a response with a guessed or
        // sniffed branch from anywhere else changes nothing.
        if !self.is_peer(&entry.dest, from, transport, true) {
            let reason = format!(
                "response {} to {} from {from} over {}, but the request went to {}",
                resp.code().unwrap_or(0),
                resp.cseq_method,
                transport.token(),
                entry.dest
            );
            self.event(Event::Dropped { reason });
            return;
        }
        let Some(entry) = self.clients.get_mut(&key) else {
            return;
        };
        let spec = entry.spec.clone();
        let cseq = entry.cseq;
        let ack_uri = spec.uri.clone();
        let ack_routes = spec.routes.clone();
        let (from_h, call_id) = (spec.from.clone(), spec.call_id.clone());
        let cfg_via = format!(
            "SIP/2.0/{} {}:{};branch={};rport",
            spec.dest.transport.token(),
            spec.local,
            self.cfg.local_port,
            key.0
        );
        let ua_name = self.cfg.user_agent.clone();
        let actions = entry.tx.handle_response(now, resp, |r| {
            // ACK for a non-2xx final: same branch, To with the response's tag (§17.1.1.3).
            let mut h = Headers::new();
            h.add("Via", cfg_via.as_str())
                .add("Max-Forwards", "70")
                .add("From", from_h.as_str())
                .add("To", r.value("to").unwrap_or_default())
                .add("Call-ID", call_id.as_str())
                .add("CSeq", format!("{cseq} ACK"));
            for route in &ack_routes {
                h.add("Route", route.as_str());
            }
            h.add("User-Agent", ua_name.as_str());
            build_request("ACK", &ack_uri, h, b"").unwrap_or_default()
        });
        let (dest, owner, terminated) = (entry.dest.clone(), entry.owner, entry.tx.is_terminated());
        if terminated {
            self.clients.remove(&key);
        }
        for a in actions {
            match a {
                Action::Transmit(b) if !b.is_empty() => self.transmit(dest.clone(), b),
                Action::Response(r) => self.on_tx_response(now, owner, &spec, cseq, *r),
                _ => {}
            }
        }
    }

    fn on_tx_response(&mut self, now: Instant, owner: Owner, spec: &Spec, cseq: u32, resp: Message) {
        match owner {
            Owner::Register => self.on_register_response(now, spec, resp),
            Owner::Invite(id) => self.on_invite_response(now, id, spec, cseq, resp),
            Owner::Bye(id) => self.on_bye_response(now, id, spec, resp),
            Owner::Cancel(_) => {}
            Owner::RecoveredBye { authed } => self.on_recovered_bye_response(now, authed, spec, cseq, resp),
        }
    }
}

mod call;
mod peer;
mod register;
mod saved;
mod server;

pub use saved::SavedDialog;

pub use call::sdp_offer_g711;
pub use server::dtmf_digit;

#[cfg(test)]
mod tests;
