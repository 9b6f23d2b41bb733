//! Outbound calls (UAC): INVITE with digest auth and one redirect, provisional → ringing, 2xx →
//! dialog + ACK (through the route set), ring timeout → CANCEL once a provisional arrived, the
//! 200/CANCEL race (ACK then BYE), BYE with auth, and how each final response ends the call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{
    parse_name_addr, split_list, Call, CallEnd, CallKey, CallState, ClientEntry, ClientTx, Dialog, Event,
    Message, Owner, Spec, Transport, UserAgent, T1X64,
};

/// Methods we accept in a dialog.
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE";

/// A G.711 (PCMU, PCMA) + telephone-event offer, 20 ms packets.
pub fn sdp_offer_g711(host: &str, rtp_port: u16, session_id: u64) -> Vec<u8> {
    format!(
        "v=0\r\no=- {session_id} 1 IN IP4 {host}\r\ns=sip-assistant\r\nc=IN IP4 {host}\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
    .into_bytes()
}

impl UserAgent {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_call(
        &mut self,
        now: Instant,
        id: CallKey,
        uri: String,
        local: String,
        ring_timeout: Duration,
        sdp: Vec<u8>,
        offer: Option<crate::sdp::OfferParams>,
    ) {
        let Some(dest) = self.next_hop(&uri, &[]) else {
            self.event(Event::Ended {
                id,
                end: CallEnd::Failed {
                    reason: format!("cannot route to {uri}"),
                },
            });
            return;
        };
        let call_id = self.ids.call_id(&local);
        let tag = self.ids.tag();
        let spec = Spec {
            local,
            method: "INVITE".into(),
            uri: uri.clone(),
            dest,
            from: format!("<{}>;tag={tag}", self.aor()),
            to: format!("<{uri}>"),
            call_id,
            routes: Vec::new(),
            extra: vec![
                ("Allow".into(), ALLOW.into()),
                ("Content-Type".into(), "application/sdp".into()),
            ],
            body: sdp.clone(),
        };
        let Some(branch) = self.send(now, spec.clone(), 1, Owner::Invite(id), None) else {
            self.event(Event::Ended {
                id,
                end: CallEnd::Failed {
                    reason: format!("cannot build an INVITE for {uri}"),
                },
            });
            return;
        };
        self.calls.insert(
            id,
            Call {
                state: CallState::Inviting,
                spec,
                cseq: 1,
                invite_branch: branch,
                provisional: false,
                proceeding: false,
                invite_auth: None,
                ring_deadline: now + ring_timeout,
                cancel: None,
                cancel_sent: false,
                invite_auth_tries: 0,
                bye_auth_tries: 0,
                redirected: false,
                dialog: None,
                ack: None,
                local_sdp: sdp,
                offer,
                end: None,
                reinvite_ok: None,
            },
        );
    }

    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        id: CallKey,
        spec: &Spec,
        cseq: u32,
        resp: Message,
    ) {
        let code = resp.code().unwrap_or(0);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if cseq != call.cseq && !(200..300).contains(&code) {
            return; // a late answer to an INVITE we already replaced
        }
        match code {
            100..=199 => {
                // Any provisional, 100 Trying included, lets a wanted CANCEL go (§9.1).
                call.proceeding = true;
                let first_ring = code > 100 && !call.provisional;
                call.provisional |= code > 100;
                let cancel_now = call.cancel.is_some() && !call.cancel_sent;
                if first_ring {
                    self.event(Event::Ringing { id });
                }
                if cancel_now {
                    self.send_cancel(now, id);
                }
            }
            200..=299 => self.on_invite_ok(now, id, resp),
            401 | 407 => {
                let mut tries = call.invite_auth_tries;
                let answer = self.answer_challenge(&resp, spec, &mut tries);
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.invite_auth_tries = tries;
                match answer {
                    Ok(auth) if call.cancel.is_none() => {
                        call.cseq += 1;
                        call.proceeding = false;
                        call.invite_auth = Some(auth.clone());
                        let (spec, cseq) = (call.spec.clone(), call.cseq);
                        if let Some(branch) = self.send(now, spec, cseq, Owner::Invite(id), Some(auth)) {
                            if let Some(call) = self.calls.get_mut(&id) {
                                call.invite_branch = branch;
                            }
                        }
                    }
                    Ok(_) => {
                        let end = call.cancel.clone().unwrap_or(CallEnd::NoAnswer);
                        self.end_call(id, end);
                    }
                    Err(reason) => self.end_call(id, CallEnd::Failed { reason }),
                }
            }
            300..=399 => {
                let target = resp.contact_uri();
                match (target, call.redirected, call.cancel.is_some()) {
                    (Some(uri), false, false) => {
                        call.redirected = true;
                        call.cseq += 1;
                        call.proceeding = false;
                        call.invite_auth = None;
                        call.spec.uri = uri.clone();
                        call.spec.to = format!("<{uri}>");
                        match self.next_hop(&uri, &[]) {
                            Some(dest) => {
                                let Some(call) = self.calls.get_mut(&id) else {
                                    return;
                                };
                                call.spec.dest = dest;
                                let (spec, cseq) = (call.spec.clone(), call.cseq);
                                if let Some(branch) = self.send(now, spec, cseq, Owner::Invite(id), None) {
                                    if let Some(call) = self.calls.get_mut(&id) {
                                        call.invite_branch = branch;
                                        call.provisional = false;
                                    }
                                }
                            }
                            None => self.end_call(
                                id,
                                CallEnd::Failed {
                                    reason: format!("redirected to {uri}, which cannot be routed"),
                                },
                            ),
                        }
                    }
                    (_, true, _) => self.end_call(
                        id,
                        CallEnd::Failed {
                            reason: format!("{code} {}: redirected more than once", resp.reason()),
                        },
                    ),
                    _ => self.end_call(
                        id,
                        CallEnd::Failed {
                            reason: format!("{code} {}", resp.reason()),
                        },
                    ),
                }
            }
            486 | 600 | 603 => self.end_call(
                id,
                CallEnd::Busy {
                    code,
                    reason: resp.reason().to_string(),
                },
            ),
            _ => {
                let end = match (&call.cancel, code) {
                    (Some(why), _) => why.clone(),
                    // The PBX's own ring timer fired first: the phone rang out.
                    (None, 408) if call.provisional => CallEnd::NoAnswer,
                    (None, _) => CallEnd::Failed {
                        reason: format!("{code} {}", resp.reason()),
                    },
                };
                self.end_call(id, end);
            }
        }
    }

    fn on_invite_ok(&mut self, now: Instant, id: CallKey, resp: Message) {
        let Some(call) = self.calls.get(&id) else { return };
        if call.dialog.is_some() {
            if let Some((dest, ack)) = call.ack.clone() {
                self.transmit(dest, ack); // retransmitted 2xx: ACK again
            }
            return;
        }
        let remote_tag = resp.to.tag().unwrap_or_default().to_string();
        let remote_target = resp.contact_uri().unwrap_or_else(|| call.spec.uri.clone());
        let mut route_set: Vec<String> = resp
            .values("record-route")
            .flat_map(split_list)
            .map(str::to_string)
            .collect();
        route_set.reverse();
        let dialog = Dialog {
            remote_tag,
            remote_target,
            route_set,
            local_cseq: call.cseq,
            remote_cseq: None,
        };
        let cseq = call.cseq;
        let auth = call.invite_auth.clone();
        let mut call_spec = call.spec.clone();
        let cancel = call.cancel.clone();
        let Some(ack_spec) = self.in_dialog_spec(&call_spec, &dialog, "ACK") else {
            self.end_call(
                id,
                CallEnd::Failed {
                    reason: "cannot route the ACK".into(),
                },
            );
            return;
        };
        call_spec.to = ack_spec.to.clone();
        let Some((_, ack)) = self.print(&ack_spec, cseq, "ACK", None, auth.as_ref()) else {
            return;
        };
        self.transmit(ack_spec.dest.clone(), ack.clone());
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.ack = Some((ack_spec.dest, ack));
        call.dialog = Some(dialog);
        match cancel {
            Some(why) => self.send_bye(now, id, why),
            None => {
                call.state = CallState::Confirmed;
                self.report_dialog(id);
                self.event(Event::Answered { id, sdp: resp.body });
            }
        }
    }

    /// A request in the dialog: To with the remote tag, the route set, loose or strict routing.
    pub(super) fn in_dialog_spec(&self, spec: &Spec, d: &Dialog, method: &str) -> Option<Spec> {
        let to = match parse_name_addr(&spec.to) {
            Some(n) if n.tag().is_none() && !d.remote_tag.is_empty() => {
                format!("<{}>;tag={}", n.uri, d.remote_tag)
            }
            _ => spec.to.clone(),
        };
        let strict = d
            .route_set
            .first()
            .is_some_and(|r| !r.to_ascii_lowercase().contains(";lr"));
        let (uri, routes) = if strict {
            let first = d
                .route_set
                .first()
                .and_then(|r| parse_name_addr(r))
                .map(|n| n.uri)?;
            let mut rest: Vec<String> = d.route_set.iter().skip(1).cloned().collect();
            rest.push(format!("<{}>", d.remote_target));
            (first, rest)
        } else {
            (d.remote_target.clone(), d.route_set.clone())
        };
        let route_uris: Vec<String> = routes
            .iter()
            .filter_map(|r| parse_name_addr(r))
            .map(|n| n.uri)
            .collect();
        let dest = if strict {
            self.next_hop(&uri, &[])
        } else {
            self.next_hop(&uri, &route_uris)
        }?;
        Some(Spec {
            local: spec.local.clone(),
            method: method.into(),
            uri,
            dest,
            from: spec.from.clone(),
            to,
            call_id: spec.call_id.clone(),
            routes,
            extra: Vec::new(),
            body: Vec::new(),
        })
    }

    pub(super) fn send_bye(&mut self, now: Instant, id: CallKey, end: CallEnd) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.state = CallState::Terminating;
        call.end = Some(end.clone());
        let Some(dialog) = call.dialog.as_mut() else {
            self.end_call(id, end);
            return;
        };
        dialog.local_cseq += 1;
        let (cseq, dialog, spec) = (dialog.local_cseq, dialog.clone(), call.spec.clone());
        match self.in_dialog_spec(&spec, &dialog, "BYE") {
            Some(bye) => {
                if self.send(now, bye, cseq, Owner::Bye(id), None).is_none() {
                    self.end_call(id, end);
                }
            }
            None => self.end_call(id, end),
        }
    }

    pub(super) fn on_bye_response(&mut self, now: Instant, id: CallKey, spec: &Spec, resp: Message) {
        let code = resp.code().unwrap_or(0);
        let Some(call) = self.calls.get(&id) else { return };
        let end = call.end.clone().unwrap_or(CallEnd::HungUpLocal);
        match code {
            100..=199 => {}
            401 | 407 => {
                let mut tries = call.bye_auth_tries;
                let answer = self.answer_challenge(&resp, spec, &mut tries);
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                call.bye_auth_tries = tries;
                match (answer, call.dialog.as_mut()) {
                    (Ok(auth), Some(d)) => {
                        d.local_cseq += 1;
                        let cseq = d.local_cseq;
                        self.send(now, spec.clone(), cseq, Owner::Bye(id), Some(auth));
                    }
                    _ => self.end_call(id, end),
                }
            }
            _ => self.end_call(id, end),
        }
    }

    /// CANCEL the pending INVITE: same branch, same CSeq number, same Request-URI and Route; the
    /// INVITE gets 64·T1 more for its final response.
    pub(super) fn send_cancel(&mut self, now: Instant, id: CallKey) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.cancel_sent {
            return;
        }
        call.cancel_sent = true;
        let (branch, cseq) = (call.invite_branch.clone(), call.cseq);
        // If no final response follows the CANCEL within 64·T1, the INVITE is over (§9.1).
        if let Some(invite) = self.clients.get_mut(&(branch.clone(), "INVITE".to_string())) {
            invite.tx.give_up_at(now + T1X64);
        }
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let mut spec = call.spec.clone();
        spec.method = "CANCEL".into();
        spec.extra.clear();
        spec.body.clear();
        let Some((_, bytes)) = self.print(&spec, cseq, "CANCEL", Some(&branch), None) else {
            return;
        };
        let (tx, actions) = ClientTx::start(now, &branch, "CANCEL", bytes, spec.dest.transport.reliability());
        for a in actions {
            if let crate::sip::transaction::Action::Transmit(b) = a {
                self.transmit(spec.dest.clone(), b);
            }
        }
        let dest = spec.dest.clone();
        self.clients.insert(
            (branch, "CANCEL".into()),
            ClientEntry {
                tx,
                dest,
                owner: Owner::Cancel(id),
                spec,
                cseq,
            },
        );
    }

    /// End the call on request: CANCEL while ringing (once a provisional arrived), BYE once answered.
    pub(super) fn hangup(&mut self, now: Instant, id: CallKey, why: CallEnd) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match call.state {
            CallState::Inviting => {
                if call.cancel.is_none() {
                    call.cancel = Some(why);
                    if call.proceeding {
                        self.send_cancel(now, id);
                    }
                }
            }
            CallState::Confirmed => self.send_bye(now, id, CallEnd::HungUpLocal),
            CallState::Terminating => {}
        }
    }

    pub(super) fn call_timers(&mut self, now: Instant, id: CallKey) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state == CallState::Inviting && call.cancel.is_none() && call.ring_deadline <= now {
            call.cancel = Some(CallEnd::NoAnswer);
            if call.proceeding {
                self.send_cancel(now, id);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some((dest, bytes, next, interval, give_up, cseq)) = call.reinvite_ok.clone() {
            if now >= give_up {
                call.reinvite_ok = None;
            } else if next <= now {
                let interval = (interval * 2).min(super::T2);
                call.reinvite_ok = Some((
                    dest.clone(),
                    bytes.clone(),
                    next + interval,
                    interval,
                    give_up,
                    cseq,
                ));
                self.transmit(dest, bytes);
            }
        }
    }

    pub(super) fn end_call(&mut self, id: CallKey, end: CallEnd) {
        if self.calls.remove(&id).is_some() {
            self.event(Event::Ended { id, end });
        }
    }

    /// A 2xx to INVITE with no transaction left: ACK it again if it belongs to a call and comes
    /// from where the INVITE went.
    pub(super) fn resend_ack(&mut self, resp: &Message, from: SocketAddr, transport: Transport) {
        let ack = self
            .calls
            .values()
            .find(|c| c.spec.call_id == resp.call_id && self.is_peer(&c.spec.dest, from, transport, true))
            .and_then(|c| c.ack.clone());
        if let Some((dest, bytes)) = ack {
            self.transmit(dest, bytes);
        }
    }
}
