//! A dialog kept with the call's durable state, so that after a crash (kill -9, power cut) the
//! far end still gets a BYE: everything an in-dialog request needs (Call-ID, both URIs and tags,
//! route set, remote target, the last CSeq we used, where it went and over what), and the UA
//! command that sends one BYE for it as an ordinary client transaction (Timer E/F), whose result
//! is only reported ([`Event::RecoveredBye`]).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{parse_name_addr, CallKey, Dest, Dialog, Event, Message, Owner, Spec, Transport, UserAgent};

/// What a BYE needs to end a dialog this process no longer remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDialog {
    pub call_id: String,
    /// Our URI and tag (the From of our requests).
    pub local_uri: String,
    pub local_tag: String,
    /// The far end's URI and tag (the To of our requests).
    pub remote_uri: String,
    pub remote_tag: String,
    /// The far end's Contact: the Request-URI of in-dialog requests.
    pub remote_target: String,
    /// Record-Route reversed (§12.1.2), as name-addr values.
    pub route_set: Vec<String>,
    /// The highest CSeq we used in the dialog; the BYE takes a higher one.
    pub local_cseq: u32,
    /// Our host in Via and Contact for this call.
    pub local_host: String,
    /// Where in-dialog requests went, and over what.
    pub dest_host: String,
    pub dest_port: u16,
    pub transport: Transport,
}

impl UserAgent {
    /// The durable picture of call `id`'s dialog, once it has one.
    pub(super) fn saved_dialog(&self, id: CallKey) -> Option<SavedDialog> {
        let call = self.calls.get(&id)?;
        let d = call.dialog.as_ref()?;
        let from = parse_name_addr(&call.spec.from)?;
        let to = parse_name_addr(&call.spec.to)?;
        let dest = self.in_dialog_spec(&call.spec, d, "BYE")?.dest;
        Some(SavedDialog {
            call_id: call.spec.call_id.clone(),
            local_uri: from.uri.clone(),
            local_tag: from.tag()?.to_string(),
            remote_uri: to.uri.clone(),
            remote_tag: d.remote_tag.clone(),
            remote_target: d.remote_target.clone(),
            route_set: d.route_set.clone(),
            local_cseq: d.local_cseq,
            local_host: call.spec.local.clone(),
            dest_host: dest.host,
            dest_port: dest.port,
            transport: dest.transport,
        })
    }

    /// Report call `id`'s dialog to the shell for its durable record.
    pub(super) fn report_dialog(&mut self, id: CallKey) {
        if let Some(dialog) = self.saved_dialog(id) {
            self.event(Event::DialogSaved {
                id,
                dialog: Box::new(dialog),
            });
        }
    }

    /// Send one BYE for a dialog from before a restart.
    pub(super) fn bye_recovered(&mut self, now: Instant, saved: SavedDialog) {
        let call_id = saved.call_id.clone();
        let fail = |ua: &mut Self, why: &str| {
            ua.event(Event::RecoveredBye {
                call_id: call_id.clone(),
                result: why.to_string(),
            })
        };
        let Some(cseq) = saved.local_cseq.checked_add(1) else {
            return fail(self, "the dialog's CSeq is exhausted");
        };
        let dest = Dest {
            host: saved.dest_host.clone(),
            port: saved.dest_port,
            transport: saved.transport,
        };
        let base = Spec {
            local: saved.local_host.clone(),
            method: "BYE".into(),
            uri: saved.remote_target.clone(),
            dest: dest.clone(),
            from: format!("<{}>;tag={}", saved.local_uri, saved.local_tag),
            to: format!("<{}>", saved.remote_uri),
            call_id: saved.call_id.clone(),
            routes: Vec::new(),
            extra: Vec::new(),
            body: Vec::new(),
        };
        let dialog = Dialog {
            remote_tag: saved.remote_tag.clone(),
            remote_target: saved.remote_target.clone(),
            route_set: saved.route_set.clone(),
            local_cseq: cseq,
            remote_cseq: None,
        };
        let Some(mut bye) = self.in_dialog_spec(&base, &dialog, "BYE") else {
            return fail(self, "the saved route set or target cannot be routed");
        };
        // Where the dialog's requests went before the restart, whatever the config says now.
        bye.dest = dest;
        if self
            .send(now, bye, cseq, Owner::RecoveredBye { authed: false }, None)
            .is_none()
        {
            fail(self, "cannot build the BYE");
        }
    }

    pub(super) fn on_recovered_bye_response(
        &mut self,
        now: Instant,
        authed: bool,
        spec: &Spec,
        cseq: u32,
        resp: Message,
    ) {
        let code = resp.code().unwrap_or(0);
        if code < 200 {
            return;
        }
        if matches!(code, 401 | 407) && !authed {
            let mut tries = 0;
            if let Ok(auth) = self.answer_challenge(&resp, spec, &mut tries) {
                self.send(
                    now,
                    spec.clone(),
                    cseq.saturating_add(1),
                    Owner::RecoveredBye { authed: true },
                    Some(auth),
                );
                return;
            }
        }
        self.event(Event::RecoveredBye {
            call_id: spec.call_id.clone(),
            result: format!("{code} {}", resp.reason()),
        });
    }
}
