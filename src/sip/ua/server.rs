//! Requests the PBX or the far end send us: OPTIONS (qualify) → 200; in a dialog BYE → 200 and the
//! call ends, re-INVITE → 200 with our SDP (retransmitted until the ACK), INFO DTMF → digits,
//! NOTIFY/UPDATE → 200; everything else gets a clear refusal. Each goes through a server
//! transaction so retransmitted requests get the same response.

use std::net::SocketAddr;
use std::time::Instant;

use super::call::ALLOW;
use super::{
    CallEnd, CallKey, CallState, Dest, Event, Headers, Message, ServerEntry, ServerTx, Transport, UserAgent,
    T1, T1X64,
};
use crate::sip::message::build_response;

/// The DTMF digit of an INFO body, if it carries one.
pub fn dtmf_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let text = String::from_utf8_lossy(body);
    let value = match content_type {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_string())
        })?,
        "application/dtmf" => match text.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("signal") => v.trim().to_string(),
            _ => text.trim().to_string(),
        },
        _ => return None,
    };
    match value.as_str() {
        "10" => Some('*'),
        "11" => Some('#'),
        v => {
            let mut chars = v.chars();
            let c = chars.next()?.to_ascii_uppercase();
            (chars.next().is_none() && "0123456789*#ABCD".contains(c)).then_some(c)
        }
    }
}

impl UserAgent {
    /// The call whose dialog this in-dialog request belongs to.
    fn dialog_call(&self, req: &Message) -> Option<CallKey> {
        let to_tag = req.to.tag()?;
        self.calls
            .iter()
            .find(|(_, c)| {
                c.spec.call_id == req.call_id
                    && c.dialog.is_some()
                    && parse_tag(&c.spec.from).as_deref() == Some(to_tag)
            })
            .map(|(id, _)| *id)
    }

    fn respond(&mut self, now: Instant, req: &Message, dest: &Dest, code: u16, extra: Headers, body: &[u8]) {
        let method = req.method().unwrap_or_default().to_string();
        let branch = req.top_via.branch().unwrap_or_default().to_string();
        let tag = self.ids.tag();
        let bytes = build_response(req, code, "", Some(&tag), extra, body);
        let mut tx = ServerTx::new(&branch, &method, dest.transport.reliability());
        for a in tx.respond(now, code, bytes) {
            if let crate::sip::transaction::Action::Transmit(b) = a {
                self.transmit(dest.clone(), b);
            }
        }
        if !branch.is_empty() {
            self.servers.insert(
                (branch, method),
                ServerEntry {
                    tx,
                    dest: dest.clone(),
                },
            );
        }
    }

    pub(super) fn on_request(&mut self, now: Instant, req: Message, from: SocketAddr, transport: Transport) {
        let dest = Dest {
            host: from.ip().to_string(),
            port: from.port(),
            transport,
        };
        let method = req.method().unwrap_or_default().to_string();
        let branch = req.top_via.branch().unwrap_or_default().to_string();
        if method == "ACK" {
            if let Some(s) = self.servers.get_mut(&(branch, "INVITE".to_string())) {
                s.tx.on_ack(now);
                return;
            }
            for call in self.calls.values_mut() {
                if call.spec.call_id == req.call_id
                    && call.reinvite_ok.as_ref().is_some_and(|r| r.5 == req.cseq)
                {
                    call.reinvite_ok = None;
                }
            }
            return;
        }
        if let Some(s) = self.servers.get_mut(&(branch.clone(), method.clone())) {
            let actions = s.tx.on_retransmission();
            for a in actions {
                if let crate::sip::transaction::Action::Transmit(b) = a {
                    self.transmit(dest.clone(), b);
                }
            }
            return;
        }
        let call = self.dialog_call(&req);
        let mut allow = Headers::new();
        allow.add("Allow", ALLOW);
        match (method.as_str(), call) {
            ("OPTIONS", _) => {
                let mut h = Headers::new();
                h.add("Allow", ALLOW)
                    .add("Accept", "application/sdp")
                    .add("Supported", "");
                self.respond(now, &req, &dest, 200, h, b"");
            }
            ("BYE", Some(id)) => {
                self.respond(now, &req, &dest, 200, Headers::new(), b"");
                let end = match self.calls.get(&id) {
                    Some(c) if c.state == CallState::Terminating => {
                        c.end.clone().unwrap_or(CallEnd::HungUpLocal)
                    }
                    _ => CallEnd::HungUpRemote,
                };
                self.end_call(id, end);
            }
            ("INVITE", Some(id)) => self.on_reinvite(now, &req, &dest, id),
            ("INFO", Some(id)) => {
                let digit = req.content_type().and_then(|ct| dtmf_digit(&ct, &req.body));
                self.respond(now, &req, &dest, 200, Headers::new(), b"");
                if let Some(digit) = digit {
                    self.event(Event::Dtmf { id, digit });
                }
            }
            ("UPDATE", Some(id)) => {
                let (sdp, host) = self
                    .calls
                    .get(&id)
                    .map(|c| (c.local_sdp.clone(), c.spec.local.clone()))
                    .unwrap_or_default();
                if req.content_type().as_deref() == Some("application/sdp") && !req.body.is_empty() {
                    let mut h = Headers::new();
                    h.add("Contact", self.contact(&host))
                        .add("Content-Type", "application/sdp");
                    self.respond(now, &req, &dest, 200, h, &sdp);
                } else {
                    self.respond(now, &req, &dest, 200, Headers::new(), b"");
                }
            }
            ("NOTIFY", _) => self.respond(now, &req, &dest, 200, Headers::new(), b""),
            ("CANCEL", _) => self.respond(now, &req, &dest, 481, Headers::new(), b""),
            (_, Some(_)) => self.respond(now, &req, &dest, 501, allow, b""),
            (_, None) if req.to.tag().is_some() => self.respond(now, &req, &dest, 481, Headers::new(), b""),
            // This extension only places calls.
            ("INVITE", None) => self.respond(now, &req, &dest, 480, Headers::new(), b""),
            (_, None) => self.respond(now, &req, &dest, 405, allow, b""),
        }
    }

    /// A re-INVITE (hold, resume, session refresh): 200 with our current SDP, retransmitted with
    /// T1 doubling up to T2 until the ACK arrives or 64·T1 pass.
    fn on_reinvite(&mut self, now: Instant, req: &Message, dest: &Dest, id: CallKey) {
        let Some((sdp, host)) = self
            .calls
            .get(&id)
            .map(|c| (c.local_sdp.clone(), c.spec.local.clone()))
        else {
            return;
        };
        let mut h = Headers::new();
        h.add("Contact", self.contact(&host))
            .add("Allow", ALLOW)
            .add("Content-Type", "application/sdp");
        let branch = req.top_via.branch().unwrap_or_default().to_string();
        let bytes = build_response(req, 200, "", None, h, &sdp);
        let mut tx = ServerTx::new(&branch, "INVITE", dest.transport.reliability());
        for a in tx.respond(now, 200, bytes.clone()) {
            if let crate::sip::transaction::Action::Transmit(b) = a {
                self.transmit(dest.clone(), b);
            }
        }
        self.servers.insert(
            (branch, "INVITE".into()),
            ServerEntry {
                tx,
                dest: dest.clone(),
            },
        );
        if let Some(call) = self.calls.get_mut(&id) {
            if dest.transport == Transport::Udp {
                call.reinvite_ok = Some((dest.clone(), bytes, now + T1, T1, now + T1X64, req.cseq));
            }
            if let Some(d) = call.dialog.as_mut() {
                if let Some(target) = req.contact_uri() {
                    d.remote_target = target;
                }
            }
        }
    }
}

fn parse_tag(from: &str) -> Option<String> {
    crate::sip::header::parse_name_addr(from).and_then(|n| n.tag().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::dtmf_digit;

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            dtmf_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(dtmf_digit("application/dtmf-relay", b"signal= #\r\n"), Some('#'));
        assert_eq!(dtmf_digit("application/dtmf-relay", b"Signal=10\r\n"), Some('*'));
        assert_eq!(dtmf_digit("application/dtmf", b"7"), Some('7'));
        assert_eq!(dtmf_digit("application/dtmf", b"d"), Some('D'));
        assert_eq!(dtmf_digit("application/dtmf", b"x"), None);
        assert_eq!(dtmf_digit("application/dtmf-relay", b"Duration=1"), None);
        assert_eq!(dtmf_digit("text/plain", b"5"), None);
    }
}
