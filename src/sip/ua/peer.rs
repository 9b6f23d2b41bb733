//! Who may speak for a transaction or a dialog. A response is accepted only from the address its
//! request was sent to (UDP: that socket address; TCP: the connection to it), and a request in a
//! dialog only from the dialog's route: the next hop our in-dialog requests go to (registrar or
//! outbound proxy, first Record-Route, or the far end's Contact), the one the INVITE went to, or
//! the far end's Contact itself (a proxy that does not record-route lets it send us its BYE).
//! Host names match the addresses the shell reported resolving them to ([`Input::Resolved`]).
//!
//! [`Input::Resolved`]: super::Input::Resolved

use std::net::{IpAddr, SocketAddr};

use super::{CallKey, Dest, Transport, UserAgent};

/// Most host names remembered, and addresses per name (round-robin DNS).
const MAX_RESOLVED_HOSTS: usize = 64;
const MAX_ADDRESSES_PER_HOST: usize = 4;

impl UserAgent {
    pub(super) fn note_resolved(&mut self, host: String, ip: IpAddr) {
        if host.parse::<IpAddr>().is_ok() {
            return;
        }
        if !self.resolved.contains_key(&host) && self.resolved.len() >= MAX_RESOLVED_HOSTS {
            if let Some(any) = self.resolved.keys().next().cloned() {
                self.resolved.remove(&any);
            }
        }
        let ips = self.resolved.entry(host).or_default();
        let ip = ip.to_canonical();
        if !ips.contains(&ip) {
            if ips.len() >= MAX_ADDRESSES_PER_HOST {
                ips.remove(0);
            }
            ips.push(ip);
        }
    }

    /// Whether `ip` is (one of the addresses of) `host`.
    fn host_is(&self, host: &str, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(literal) => literal.to_canonical() == ip,
            Err(_) => self.resolved.get(host).is_some_and(|ips| ips.contains(&ip)),
        }
    }

    /// Whether a message that arrived from `from` over `transport` comes from `dest`. With
    /// `exact` (responses) the transport and port must match too; otherwise (requests) the port
    /// is checked only for datagrams, since a peer opens its own TCP connections from any port.
    pub(super) fn is_peer(&self, dest: &Dest, from: SocketAddr, transport: Transport, exact: bool) -> bool {
        if !self.host_is(&dest.host, from.ip()) {
            return false;
        }
        if exact {
            dest.transport == transport && dest.port == from.port()
        } else {
            transport == Transport::Tcp || dest.port == from.port()
        }
    }

    /// Whether an in-dialog request of call `id` from `from` comes from the dialog's route.
    pub(super) fn is_dialog_peer(&self, id: CallKey, from: SocketAddr, transport: Transport) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let dialog = call.dialog.as_ref();
        let next_hop = dialog
            .and_then(|d| self.in_dialog_spec(&call.spec, d, "BYE"))
            .map(|s| s.dest);
        // The far end itself, when a proxy that does not record-route let it talk to us directly:
        // its Contact came in a 2xx that passed the source check above.
        let target = dialog.and_then(|d| self.uri_dest(&d.remote_target));
        let ok = [Some(&call.spec.dest), next_hop.as_ref(), target.as_ref()]
            .into_iter()
            .flatten()
            .any(|dest| self.is_peer(dest, from, transport, false));
        ok
    }
}
