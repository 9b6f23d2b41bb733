//! Transactions per RFC 3261 §17 (with RFC 6026's Accepted state), as pure state machines.
//!
//! A transaction is fed `now` with every input and answers with [`Action`]s; its next deadline
//! is [`ClientTx::deadline`] / [`ServerTx::deadline`]. Timers are named after the RFC.

use std::time::{Duration, Instant};

use super::message::Message;

/// RTT estimate.
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum time a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);
/// Timers B, F, H, J, L and M: 64·T1.
pub const T1X64: Duration = Duration::from_secs(32);

/// Whether the transport retransmits for us (TCP) or we must (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    Unreliable,
    Reliable,
}

/// What a transaction asks its owner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send these bytes to the transaction's destination.
    Transmit(Vec<u8>),
    /// A response (client) for the transaction user.
    Response(Box<Message>),
    /// Timer B or F fired: no final response.
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent (Calling) or non-INVITE sent (Trying).
    Initial,
    Proceeding,
    /// A final response arrived; absorbing retransmissions.
    Completed,
    /// RFC 6026: a 2xx to INVITE arrived; later 2xx go to the transaction user too.
    Accepted,
    Terminated,
}

/// A client transaction, INVITE or non-INVITE.
#[derive(Debug, Clone)]
pub struct ClientTx {
    pub branch: String,
    pub method: String,
    pub state: ClientState,
    invite: bool,
    reliability: Reliability,
    request: Vec<u8>,
    /// The ACK sent for a non-2xx final response, resent on its retransmissions.
    ack: Option<Vec<u8>>,
    /// Timer A or E: (when, current interval).
    retransmit: Option<(Instant, Duration)>,
    /// Timer B or F.
    timeout: Option<Instant>,
    /// Timer D, K or M.
    linger: Option<Instant>,
}

impl ClientTx {
    /// Start a transaction; the first transmission is in the returned actions.
    pub fn start(
        now: Instant,
        branch: &str,
        method: &str,
        request: Vec<u8>,
        reliability: Reliability,
    ) -> (Self, Vec<Action>) {
        let invite = method == "INVITE";
        let retransmit = (reliability == Reliability::Unreliable).then_some((now + T1, T1));
        let tx = Self {
            branch: branch.to_string(),
            method: method.to_string(),
            state: ClientState::Initial,
            invite,
            reliability,
            request: request.clone(),
            ack: None,
            retransmit,
            timeout: Some(now + T1X64),
            linger: None,
        };
        (tx, vec![Action::Transmit(request)])
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit.map(|(t, _)| t), self.timeout, self.linger]
            .into_iter()
            .flatten()
            .min()
    }

    /// The TU gives up on a pending INVITE at `at` (RFC 3261 §9.1: 64·T1 after its CANCEL,
    /// if no final response came): then the transaction reports [`Action::Timeout`].
    pub fn give_up_at(&mut self, at: Instant) {
        if matches!(self.state, ClientState::Initial | ClientState::Proceeding) {
            self.timeout = Some(self.timeout.map_or(at, |t| t.min(at)));
        }
    }

    /// A response matched to this transaction. `ack_for` builds the ACK of a non-2xx final
    /// response to INVITE (same branch, RFC 3261 §17.1.1.3).
    pub fn handle_response(
        &mut self,
        now: Instant,
        resp: Message,
        ack_for: impl FnOnce(&Message) -> Vec<u8>,
    ) -> Vec<Action> {
        let code = resp.code().unwrap_or(0);
        let linger = |d: Duration, r: Reliability| match r {
            Reliability::Unreliable => now + d,
            Reliability::Reliable => now,
        };
        match (self.invite, self.state, code) {
            (_, ClientState::Terminated, _) => Vec::new(),
            (_, ClientState::Initial | ClientState::Proceeding, 100..=199) => {
                self.state = ClientState::Proceeding;
                if self.invite {
                    // Timer A stops, and timer B only runs in Calling (§17.1.1.2): a phone may
                    // ring for longer than 64·T1; the TU ends that with CANCEL.
                    self.retransmit = None;
                    self.timeout = None;
                } else {
                    // Timer E continues at T2 in Proceeding.
                    self.retransmit = self.retransmit.map(|(t, _)| (t, T2));
                }
                vec![Action::Response(Box::new(resp))]
            }
            (true, ClientState::Initial | ClientState::Proceeding | ClientState::Accepted, 200..=299) => {
                self.state = ClientState::Accepted;
                self.retransmit = None;
                self.timeout = None;
                if self.linger.is_none() {
                    self.linger = Some(now + T1X64); // timer M
                }
                vec![Action::Response(Box::new(resp))]
            }
            (true, ClientState::Initial | ClientState::Proceeding, 300..=699) => {
                let ack = ack_for(&resp);
                self.ack = Some(ack.clone());
                self.state = ClientState::Completed;
                self.retransmit = None;
                self.timeout = None;
                self.linger = Some(linger(Duration::from_secs(32), self.reliability)); // timer D
                vec![Action::Transmit(ack), Action::Response(Box::new(resp))]
            }
            (true, ClientState::Completed, 300..=699) => {
                self.ack.clone().map(Action::Transmit).into_iter().collect()
            }
            (false, ClientState::Initial | ClientState::Proceeding, 200..=699) => {
                self.state = ClientState::Completed;
                self.retransmit = None;
                self.timeout = None;
                self.linger = Some(linger(T4, self.reliability)); // timer K
                vec![Action::Response(Box::new(resp))]
            }
            _ => Vec::new(),
        }
    }

    /// Fire due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.linger.is_some_and(|t| t <= now) {
            self.state = ClientState::Terminated;
            self.linger = None;
            self.retransmit = None;
            self.timeout = None;
            return out;
        }
        if self.timeout.is_some_and(|t| t <= now) {
            self.state = ClientState::Terminated;
            self.retransmit = None;
            self.timeout = None;
            out.push(Action::Timeout);
            return out;
        }
        if let Some((at, interval)) = self.retransmit {
            if at <= now {
                out.push(Action::Transmit(self.request.clone()));
                let next = if self.invite {
                    interval * 2 // timer A doubles without a cap until B
                } else if self.state == ClientState::Proceeding {
                    T2
                } else {
                    (interval * 2).min(T2)
                };
                self.retransmit = Some((at + next, next));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    Completed,
    /// RFC 6026: a 2xx to INVITE was sent; its retransmission is the dialog's job.
    Accepted,
    Confirmed,
    Terminated,
}

/// A server transaction: non-INVITE, or INVITE (re-INVITE in a dialog, or a refused call).
#[derive(Debug, Clone)]
pub struct ServerTx {
    pub branch: String,
    pub method: String,
    pub state: ServerState,
    reliability: Reliability,
    last_response: Option<Vec<u8>>,
    /// Timer G: (when, interval), INVITE non-2xx final retransmissions over UDP.
    retransmit: Option<(Instant, Duration)>,
    /// Timer H, I, J or L.
    end: Option<Instant>,
}

impl ServerTx {
    pub fn new(branch: &str, method: &str, reliability: Reliability) -> Self {
        Self {
            branch: branch.to_string(),
            method: method.to_string(),
            state: if method == "INVITE" {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            reliability,
            last_response: None,
            retransmit: None,
            end: None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit.map(|(t, _)| t), self.end]
            .into_iter()
            .flatten()
            .min()
    }

    fn after(&self, now: Instant, d: Duration) -> Instant {
        match self.reliability {
            Reliability::Unreliable => now + d,
            Reliability::Reliable => now,
        }
    }

    /// The transaction user answers with `code` (the printed response is `bytes`).
    pub fn respond(&mut self, now: Instant, code: u16, bytes: Vec<u8>) -> Vec<Action> {
        if matches!(
            self.state,
            ServerState::Completed | ServerState::Confirmed | ServerState::Terminated | ServerState::Accepted
        ) {
            return Vec::new();
        }
        self.last_response = Some(bytes.clone());
        let invite = self.method == "INVITE";
        match code {
            100..=199 => self.state = ServerState::Proceeding,
            200..=299 if invite => {
                self.state = ServerState::Accepted;
                self.end = Some(now + T1X64); // timer L
            }
            _ if invite => {
                self.state = ServerState::Completed;
                if self.reliability == Reliability::Unreliable {
                    self.retransmit = Some((now + T1, T1)); // timer G
                }
                self.end = Some(now + T1X64); // timer H
            }
            _ => {
                self.state = ServerState::Completed;
                self.end = Some(self.after(now, T1X64)); // timer J
            }
        }
        vec![Action::Transmit(bytes)]
    }

    /// The same request arrived again: resend the last response, if any.
    pub fn handle_retransmission(&mut self) -> Vec<Action> {
        match self.state {
            ServerState::Accepted => Vec::new(),
            _ => self
                .last_response
                .clone()
                .map(Action::Transmit)
                .into_iter()
                .collect(),
        }
    }

    /// An ACK for a non-2xx final response.
    pub fn handle_ack(&mut self, now: Instant) {
        if self.state == ServerState::Completed && self.method == "INVITE" {
            self.state = ServerState::Confirmed;
            self.retransmit = None;
            self.end = Some(self.after(now, T4)); // timer I
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        if self.end.is_some_and(|t| t <= now) {
            self.state = ServerState::Terminated;
            self.end = None;
            self.retransmit = None;
            return Vec::new();
        }
        match self.retransmit {
            Some((at, interval)) if at <= now => {
                let next = (interval * 2).min(T2);
                self.retransmit = Some((at + next, next));
                self.last_response
                    .clone()
                    .map(Action::Transmit)
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse;

    fn response(code: u16) -> Message {
        let text = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP h:5070;branch=z9hG4bKt\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        parse(text.as_bytes()).expect("test response parses")
    }

    #[test]
    fn timer_b_stops_in_proceeding_and_the_tu_can_give_up() {
        let t0 = Instant::now();
        let (mut tx, _) = ClientTx::start(
            t0,
            "z9hG4bKt",
            "INVITE",
            b"INVITE".to_vec(),
            Reliability::Unreliable,
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + T1));
        let out = tx.handle_response(t0 + Duration::from_secs(1), response(180), |_| Vec::new());
        assert_eq!(out.len(), 1);
        assert_eq!(tx.state, ClientState::Proceeding);
        assert_eq!(tx.poll_timeout(), None, "no timer A, no timer B while ringing");
        assert!(tx.handle_timeout(t0 + Duration::from_secs(120)).is_empty());
        assert_eq!(tx.state, ClientState::Proceeding);
        // A CANCEL went out at 120 s: give up 64·T1 later.
        let at = t0 + Duration::from_secs(120) + T1X64;
        tx.give_up_at(at);
        assert_eq!(tx.poll_timeout(), Some(at));
        assert_eq!(tx.handle_timeout(at), vec![Action::Timeout]);
        assert!(tx.is_terminated());
    }

    #[test]
    fn timer_b_still_fires_in_calling() {
        let t0 = Instant::now();
        let (mut tx, _) = ClientTx::start(
            t0,
            "z9hG4bKt",
            "INVITE",
            b"INVITE".to_vec(),
            Reliability::Reliable,
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + T1X64));
        // An earlier give-up does not extend timer B, and a later one does not shorten it.
        tx.give_up_at(t0 + Duration::from_secs(60));
        assert_eq!(tx.poll_timeout(), Some(t0 + T1X64));
        assert_eq!(tx.handle_timeout(t0 + T1X64), vec![Action::Timeout]);
        // A completed transaction ignores give_up_at.
        let (mut tx, _) = ClientTx::start(
            t0,
            "z9hG4bKt",
            "INVITE",
            b"INVITE".to_vec(),
            Reliability::Reliable,
        );
        tx.handle_response(t0, response(486), |_| b"ACK".to_vec());
        tx.give_up_at(t0);
        assert_eq!(tx.state, ClientState::Completed);
        assert!(!tx.handle_timeout(t0).contains(&Action::Timeout));
    }
}
