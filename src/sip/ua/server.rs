//! Requests the PBX or the far end send us: OPTIONS (qualify) → 200; in a dialog BYE → 200 and the
//! call ends, re-INVITE → 200 with our SDP (retransmitted until the ACK), INFO DTMF → digits,
//! NOTIFY/UPDATE → 200; everything else gets a clear refusal. Each goes through a server
//! transaction so retransmitted requests get the same response. Responses go where RFC 3261
//! §18.2.2 and RFC 3581 say (the source port when the top Via asks with `rport`), and the top Via
//! they echo records `received` and `rport`.

use std::net::SocketAddr;
use std::time::Instant;

use super::call::ALLOW;
use super::{
    split_list, CallEnd, CallKey, CallState, Dest, Event, Headers, Message, ServerEntry, ServerTx, Transport,
    UserAgent, MAX_SERVER_TRANSACTIONS, T1, T1X64,
};
use crate::sip::header::{parse_via, ViaValue};
use crate::sip::message::build_response;
use crate::sip::transaction::Action;

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
    /// The call whose dialog this in-dialog request belongs to: Call-ID, our tag (To) and the
    /// far end's tag (From) all match (§12.2.2).
    fn dialog_call(&self, req: &Message) -> Option<CallKey> {
        let to_tag = req.to.tag()?;
        let from_tag = req.from.tag().unwrap_or_default();
        self.calls
            .iter()
            .find(|(_, c)| {
                c.spec.call_id == req.call_id
                    && c.dialog.as_ref().is_some_and(|d| d.remote_tag == from_tag)
                    && parse_tag(&c.spec.from).as_deref() == Some(to_tag)
            })
            .map(|(id, _)| *id)
    }

    /// A request of one of our dialogs from outside the dialog's route: no effect and no answer.
    /// A 403 would confirm to a guesser that its Call-ID and tags are right, and answering a
    /// spoofed source reflects traffic at a third party; a genuine peer that moved retransmits
    /// and then gives up, and the call still ends by our BYE.
    fn drop_foreign(&mut self, req: &Message, from: SocketAddr, transport: Transport) {
        let reason = format!(
            "{} in a dialog from {from} over {}, which is not the dialog's route",
            req.method().unwrap_or_default(),
            transport.token()
        );
        self.event(Event::Dropped { reason });
    }

    /// Answer `req` in a new server transaction; outside a dialog the To gets a fresh tag.
    fn respond(&mut self, now: Instant, req: &Message, dest: &Dest, code: u16, extra: Headers, body: &[u8]) {
        let tag = self.ids.tag();
        self.respond_tagged(now, req, dest, code, extra, body, tag);
    }

    #[allow(clippy::too_many_arguments)]
    fn respond_tagged(
        &mut self,
        now: Instant,
        req: &Message,
        dest: &Dest,
        code: u16,
        extra: Headers,
        body: &[u8],
        tag: String,
    ) {
        let method = req.method().unwrap_or_default().to_string();
        let branch = req.top_via.branch().unwrap_or_default().to_string();
        let bytes = build_response(req, code, "", Some(&tag), extra, body);
        let tag = req.to.tag().map_or(tag, str::to_string);
        let mut tx = ServerTx::new(&branch, &method, dest.transport.reliability());
        for a in tx.respond(now, code, bytes) {
            if let Action::Transmit(b) = a {
                self.transmit(dest.clone(), b);
            }
        }
        if !branch.is_empty() {
            self.insert_server((branch, method), tx, dest, tag);
        }
    }

    /// Keep a server transaction, evicting the oldest when [`MAX_SERVER_TRANSACTIONS`] are alive.
    fn insert_server(&mut self, key: (String, String), tx: ServerTx, dest: &Dest, tag: String) {
        if !self.servers.contains_key(&key) && self.servers.len() >= MAX_SERVER_TRANSACTIONS {
            let oldest = self
                .servers
                .iter()
                .min_by_key(|(_, e)| e.order)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.servers.remove(&oldest);
            }
        }
        self.server_seq += 1;
        let entry = ServerEntry {
            tx,
            dest: dest.clone(),
            tag,
            order: self.server_seq,
        };
        self.servers.insert(key, entry);
    }

    pub(super) fn on_request(&mut self, now: Instant, req: Message, from: SocketAddr, transport: Transport) {
        let dest = response_dest(&req, from, transport);
        let mut req = req;
        stamp_via(&mut req, from);
        let method = req.method().unwrap_or_default().to_string();
        let branch = req.top_via.branch().unwrap_or_default().to_string();
        if method == "ACK" {
            if let Some(s) = self.servers.get_mut(&(branch, "INVITE".to_string())) {
                s.tx.handle_ack(now);
                return;
            }
            // The ACK of a 200 to a re-INVITE: only the dialog's route may stop its retransmission.
            if let Some(id) = self.dialog_call(&req) {
                if !self.is_dialog_peer(id, from, transport) {
                    self.drop_foreign(&req, from, transport);
                    return;
                }
                if let Some(call) = self.calls.get_mut(&id) {
                    if call.reinvite_ok.as_ref().is_some_and(|r| r.5 == req.cseq) {
                        call.reinvite_ok = None;
                    }
                }
            }
            return;
        }
        if let Some(s) = self.servers.get_mut(&(branch.clone(), method.clone())) {
            // A retransmission is answered where the original was; one with the same branch from
            // elsewhere must not turn us into a reflector.
            if s.dest != dest {
                return;
            }
            let actions = s.tx.handle_retransmission();
            for a in actions {
                if let Action::Transmit(b) = a {
                    self.transmit(dest.clone(), b);
                }
            }
            return;
        }
        if method == "CANCEL" {
            // §9.2: a CANCEL that matches an INVITE we answered gets 200 (with that answer's tag)
            // and changes nothing; one that matches nothing gets 481.
            match self.servers.get(&(branch, "INVITE".to_string())) {
                Some(invite) => {
                    let tag = invite.tag.clone();
                    self.respond_tagged(now, &req, &dest, 200, Headers::new(), b"", tag);
                }
                None => self.respond(now, &req, &dest, 481, Headers::new(), b""),
            }
            return;
        }
        let call = self.dialog_call(&req);
        if let Some(id) = call {
            if !self.is_dialog_peer(id, from, transport) {
                self.drop_foreign(&req, from, transport);
                return;
            }
        }
        let required: Vec<&str> = req.values("require").flat_map(split_list).collect();
        if !required.is_empty() {
            // §8.2.2.3: we support no extensions, so a request that requires one is refused.
            let mut h = Headers::new();
            h.add("Unsupported", required.join(", "));
            self.respond(now, &req, &dest, 420, h, b"");
            return;
        }
        if let Some(d) = call
            .and_then(|id| self.calls.get_mut(&id))
            .and_then(|c| c.dialog.as_mut())
        {
            // §12.2.2: a request with a lower CSeq than the last one is out of order.
            if d.remote_cseq.is_some_and(|last| req.cseq < last) {
                self.respond(now, &req, &dest, 500, Headers::new(), b"");
                return;
            }
            d.remote_cseq = Some(req.cseq);
        }
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
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let host = call.spec.local.clone();
        let has_offer = req.content_type().as_deref() == Some("application/sdp") && !req.body.is_empty();
        let mut changed = None;
        if let (true, Some(offer)) = (has_offer, call.offer.as_mut()) {
            let mut next = offer.clone();
            next.session_version += 1;
            match crate::sdp::build_answer(&next, &req.body) {
                Ok((negotiated, answer)) => {
                    *offer = next;
                    call.local_sdp = answer.into_bytes();
                    changed = Some(negotiated);
                }
                Err(e) => {
                    tracing::info!(error = %e, "re-INVITE offer refused");
                    let mut h = Headers::new();
                    h.add("Warning", format!("399 sip-assistant \"{e}\""));
                    self.respond(now, req, dest, 488, h, b"");
                    return;
                }
            }
        }
        let sdp = call.local_sdp.clone();
        let mut h = Headers::new();
        h.add("Contact", self.contact(&host))
            .add("Allow", ALLOW)
            .add("Content-Type", "application/sdp");
        let branch = req.top_via.branch().unwrap_or_default().to_string();
        let bytes = build_response(req, 200, "", None, h, &sdp);
        let mut tx = ServerTx::new(&branch, "INVITE", dest.transport.reliability());
        for a in tx.respond(now, 200, bytes.clone()) {
            if let Action::Transmit(b) = a {
                self.transmit(dest.clone(), b);
            }
        }
        let tag = req.to.tag().unwrap_or_default().to_string();
        self.insert_server((branch, "INVITE".into()), tx, dest, tag);
        if let Some(call) = self.calls.get_mut(&id) {
            if dest.transport == Transport::Udp {
                call.reinvite_ok = Some((dest.clone(), bytes, now + T1, T1, now + T1X64, req.cseq));
            }
            let moved = match (call.dialog.as_mut(), req.contact_uri()) {
                (Some(d), Some(target)) if d.remote_target != target => {
                    d.remote_target = target;
                    true
                }
                _ => false,
            };
            if moved {
                self.report_dialog(id);
            }
        }
        if let Some(negotiated) = changed {
            self.event(Event::MediaChanged { id, negotiated });
        }
    }
}

/// Where responses to `req` go (RFC 3261 §18.2.2): over a stream, back on its connection; over
/// UDP to the source address, at the source port if the top Via has `rport` (RFC 3581), else at
/// the Via's port (5060 if none). `maddr` is not followed: a datagram must not steer our answers
/// to a third host.
fn response_dest(req: &Message, from: SocketAddr, transport: Transport) -> Dest {
    let port = match transport {
        Transport::Udp if req.top_via.param("rport").is_none() => req.top_via.port.unwrap_or(5060),
        _ => from.port(),
    };
    Dest {
        host: from.ip().to_string(),
        port,
        transport,
    }
}

/// Record in the top Via where the request came from (RFC 3261 §18.2.1, RFC 3581 §4): `received`
/// when the sent-by host is not the source address or `rport` was asked for, and `rport` with the
/// source port.
fn stamp_via(req: &mut Message, from: SocketAddr) {
    let ip = from.ip().to_string();
    let wants_rport = req.top_via.param("rport").is_some();
    let host = req.top_via.host.trim_start_matches('[').trim_end_matches(']');
    if !wants_rport && host == ip {
        return;
    }
    let Some((_, value)) = req.headers.iter_mut().find(|(n, _)| n == "via") else {
        return;
    };
    let values = split_list(value);
    let Some((top, rest)) = values.split_first() else {
        return;
    };
    let mut parts = top.split(';');
    let mut stamped = parts.next().unwrap_or_default().trim_end().to_string();
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            stamped.push_str(&format!(";rport={}", from.port()));
        } else {
            stamped.push(';');
            stamped.push_str(p.trim());
        }
    }
    stamped.push_str(&format!(";received={ip}"));
    // Only a Via that still reads the same (but for received and rport) is replaced.
    let same = |a: &ViaValue, b: &ViaValue| {
        (&a.transport, &a.host, a.port, a.branch()) == (&b.transport, &b.host, b.port, b.branch())
    };
    if !parse_via(&stamped).is_some_and(|v| same(&v, &req.top_via)) {
        return;
    }
    let mut all = vec![stamped];
    all.extend(rest.iter().map(|v| v.to_string()));
    *value = all.join(", ");
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
