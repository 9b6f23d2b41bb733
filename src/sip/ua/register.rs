//! Registration: REGISTER with digest auth, refresh before expiry (and at least every
//! `register_refresh_max`, so a restarted PBX sees us again quickly), backoff on failure, 423
//! handling, and `Expires: 0` on the way out.

use std::time::{Duration, Instant};

use super::{
    parse_name_addr, split_list, uri_host_port, Event, Message, Owner, RegState, Spec, UserAgent,
    REG_AUTH_REJECTED_RETRY, REG_BACKOFF_MAX, REG_BACKOFF_MIN,
};

impl UserAgent {
    fn register_spec(&self, expires: u32) -> Option<Spec> {
        let dest = self.cfg.outbound_proxy.clone()?;
        let aor = self.aor();
        Some(Spec {
            local: self.cfg.local_host.clone(),
            method: "REGISTER".into(),
            uri: format!("sip:{}", self.cfg.domain),
            dest,
            from: format!("<{aor}>;tag={}", self.reg.from_tag),
            to: format!("<{aor}>"),
            call_id: self.reg.call_id.clone(),
            routes: Vec::new(),
            extra: vec![("Expires".into(), expires.to_string())],
            body: Vec::new(),
        })
    }

    pub(super) fn send_register(&mut self, now: Instant) {
        let Some(spec) = self.register_spec(self.reg.expires) else {
            return;
        };
        if self.reg.state != RegState::Unregistering {
            self.reg.state = RegState::InFlight;
        }
        self.reg.cseq += 1;
        self.reg.auth_tries = 0;
        let cseq = self.reg.cseq;
        if self.send(now, spec, cseq, Owner::Register, None).is_none() {
            self.register_failed(now, "cannot build the REGISTER request".into());
        }
    }

    pub(super) fn unregister(&mut self, now: Instant) {
        if self.reg.state == RegState::Off || !self.reg.registered {
            self.reg.state = RegState::Off;
            self.reg.next_at = None;
            self.event(Event::Unregistered);
            return;
        }
        let Some(spec) = self.register_spec(0) else { return };
        self.reg.state = RegState::Unregistering;
        self.reg.next_at = None;
        self.reg.cseq += 1;
        self.reg.auth_tries = 0;
        let cseq = self.reg.cseq;
        self.send(now, spec, cseq, Owner::Register, None);
    }

    fn finish_unregister(&mut self) {
        self.reg.state = RegState::Off;
        self.reg.registered = false;
        self.reg.next_at = None;
        self.event(Event::Unregistered);
    }

    /// Whether a Contact URI of a 200 to REGISTER is our binding: same user, host and port.
    fn is_our_contact(&self, uri: &str) -> bool {
        let user = uri
            .trim()
            .split_once(':')
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(user, _)| user.split(';').next().unwrap_or(user));
        let Some((host, port, _)) = uri_host_port(uri) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ours = self.cfg.local_host.trim_start_matches('[').trim_end_matches(']');
        user == Some(self.cfg.user.as_str())
            && host.eq_ignore_ascii_case(ours)
            && port.unwrap_or(5060) == self.cfg.local_port
    }

    /// The lifetime the registrar granted our binding. The 200 lists every binding of the AOR
    /// (RFC 3261 §10.2.4): ours is the one with our user, host and port, or the only one there is
    /// (a registrar may rewrite it); then the Expires header; then what we asked for.
    fn granted_expires(&self, resp: &Message) -> u32 {
        let contacts: Vec<_> = resp
            .values("contact")
            .flat_map(split_list)
            .filter_map(parse_name_addr)
            .collect();
        let ours = contacts
            .iter()
            .find(|c| self.is_our_contact(&c.uri))
            .or(match contacts.as_slice() {
                [only] => Some(only),
                _ => None,
            });
        ours.and_then(|c| c.param("expires").and_then(|e| e.trim().parse().ok()))
            .or_else(|| resp.value("expires").and_then(|e| e.trim().parse().ok()))
            .unwrap_or(self.reg.expires)
    }

    pub(super) fn on_register_response(&mut self, now: Instant, spec: &Spec, resp: Message) {
        if self.reg.state == RegState::Off {
            return; // a late answer after we unregistered (or never registered)
        }
        let code = resp.code().unwrap_or(0);
        let unregistering = self.reg.state == RegState::Unregistering;
        let is_unregister = spec.extra.iter().any(|(n, v)| n == "Expires" && v == "0");
        if unregistering != is_unregister {
            return; // a response to a REGISTER that no longer matters
        }
        match code {
            100..=199 => {}
            200..=299 if unregistering => self.finish_unregister(),
            200..=299 => {
                let granted = self.granted_expires(&resp);
                if granted == 0 {
                    self.register_failed(now, "the registrar did not keep our contact (expires=0)".into());
                    return;
                }
                self.reg.registered = true;
                self.reg.state = RegState::Registered;
                self.reg.backoff = REG_BACKOFF_MIN;
                let mut refresh = Duration::from_secs(u64::from(granted) * 4 / 5).max(Duration::from_secs(1));
                if let Some(max) = self.cfg.register_refresh_max {
                    refresh = refresh.min(max);
                }
                self.reg.next_at = Some(now + refresh);
                self.event(Event::Registered { expires: granted });
            }
            401 | 407 => {
                let mut tries = self.reg.auth_tries;
                let answer = self.answer_challenge(&resp, spec, &mut tries);
                self.reg.auth_tries = tries;
                match answer {
                    Ok(auth) => {
                        self.reg.cseq += 1;
                        let cseq = self.reg.cseq;
                        self.send(now, spec.clone(), cseq, Owner::Register, Some(auth));
                    }
                    Err(reason) if unregistering => {
                        let _ = reason;
                        self.finish_unregister();
                    }
                    Err(reason) => {
                        let rejected = reason == "authentication rejected";
                        self.register_failed(now, reason);
                        if rejected {
                            self.reg.next_at = Some(now + REG_AUTH_REJECTED_RETRY);
                        }
                    }
                }
            }
            // Expires: 0 cannot be too brief; a 423 to it must not turn into a new binding.
            423 if unregistering => self.finish_unregister(),
            423 => {
                let min = resp
                    .value("min-expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > self.reg.expires => {
                        self.reg.expires = m;
                        self.send_register(now);
                    }
                    _ => self
                        .register_failed(now, "423 Interval Too Brief without a usable Min-Expires".into()),
                }
            }
            _ if unregistering => self.finish_unregister(),
            _ => self.register_failed(now, format!("{code} {}", resp.reason())),
        }
    }

    /// A REGISTER failed: unregistered until the retry, which backs off up to 20 s.
    pub(super) fn register_failed(&mut self, now: Instant, reason: String) {
        if self.reg.state == RegState::Unregistering {
            self.finish_unregister();
            return;
        }
        if self.reg.state == RegState::Off {
            return;
        }
        self.reg.registered = false;
        self.reg.state = RegState::Waiting;
        let delay = self.reg.backoff;
        self.reg.backoff = (self.reg.backoff * 2).min(REG_BACKOFF_MAX);
        self.reg.next_at = Some(now + delay);
        self.event(Event::RegistrationFailed { reason });
    }
}
