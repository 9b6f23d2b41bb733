//! Where the service may send HTTP requests that a request named (`callback_url`):
//! `webhook.allow_hosts`. Without entries every host is allowed except loopback, link-local,
//! unspecified, multicast and broadcast addresses (a callback there reaches this box's own services
//! or the cloud metadata address, and its results would be a port-scan oracle). Entries widen or
//! narrow that: a host name glob (`hooks.lan`, `*.example.com`), an IP address or a CIDR range
//! (`127.0.0.1`, `10.0.0.0/8`). With entries, a host is allowed when its name matches a name entry
//! or its address lies in an address entry; an address in the default-denied ranges still needs an
//! address entry that covers it, so a name that resolves to 127.0.0.1 is refused unless `127.0.0.1`
//! (or a range holding it) is listed. Names are checked before resolution; every resolved address
//! after it, and the connection goes to the address that was checked (no DNS rebinding).

use std::net::IpAddr;

use ipnet::IpNet;

use super::dial::Glob;

/// The key named in refusals.
pub const ALLOW_HOSTS_KEY: &str = "webhook.allow_hosts";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Net(IpNet),
    Name(Glob),
}

/// The callback host policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPolicy {
    entries: Vec<Entry>,
}

/// Why an entry of `webhook.allow_hosts` is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither a host name pattern, an IP address nor a CIDR range")]
pub struct BadEntry(pub String);

/// Loopback, link-local, unspecified, multicast and broadcast: never a callback target by default.
pub fn is_denied_by_default(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            if let Some(mapped) = v6.to_ipv4_mapped() {
                return is_denied_by_default(IpAddr::V4(mapped));
            }
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || link_local
        }
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl HostPolicy {
    pub fn new(entries: &[String]) -> Result<Self, BadEntry> {
        let mut out = Vec::with_capacity(entries.len());
        for raw in entries {
            let e = raw.trim();
            let bare = e.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                out.push(Entry::Net(IpNet::from(ip)));
            } else if let Ok(net) = e.parse::<IpNet>() {
                out.push(Entry::Net(net.trunc()));
            } else if !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || "-.*?".contains(c)) {
                out.push(Entry::Name(Glob::new(e)));
            } else {
                return Err(BadEntry(raw.clone()));
            }
        }
        Ok(Self { entries: out })
    }

    fn in_listed_net(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Net(n) if n.contains(&ip)))
    }

    /// Whether `host` (a name or an IP literal, without brackets) may be asked for at all.
    pub fn allows_host(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.allows_addr(host, ip);
        }
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            // Resolves to loopback by definition (RFC 6761): only an address entry can allow it.
            return self.in_listed_net(IpAddr::from([127, 0, 0, 1]));
        }
        self.entries.is_empty() || self.name_listed(host)
    }

    fn name_listed(&self, host: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Name(g) if g.matches(host)))
    }

    /// Whether a connection to `ip`, which `host` resolved to (or is), is allowed.
    pub fn allows_addr(&self, host: &str, ip: IpAddr) -> bool {
        if self.in_listed_net(ip) {
            return true;
        }
        if is_denied_by_default(unmapped(ip)) {
            return false;
        }
        self.entries.is_empty() || self.name_listed(host)
    }

    /// The refusal text for `host` (and the address it resolved to, if any).
    pub fn refusal(&self, host: &str, ip: Option<IpAddr>) -> String {
        let to = ip.map(|a| format!(" ({a})")).unwrap_or_default();
        if self.entries.is_empty() {
            format!(
                "callback host '{host}'{to} is loopback, link-local or otherwise not routable; list it in {ALLOW_HOSTS_KEY} to allow it"
            )
        } else {
            format!("callback host '{host}'{to} is not allowed by {ALLOW_HOSTS_KEY}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(e: &[&str]) -> HostPolicy {
        HostPolicy::new(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid entries")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn by_default_loopback_and_link_local_are_refused_and_the_lan_is_not() {
        let p = HostPolicy::default();
        for no in [
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.allows_host(no), "{no}");
            assert!(!p.allows_addr("h.example", ip(no)), "{no}");
        }
        for ok in ["192.168.1.20", "10.0.0.5", "172.16.3.4", "203.0.113.9", "fd00::5"] {
            assert!(p.allows_host(ok), "{ok}");
        }
        assert!(p.allows_host("hooks.example.com"));
        assert!(!p.allows_host("localhost"));
        assert!(!p.allows_host("LOCALHOST"));
        assert!(!p.allows_host("a.localhost"));
        assert!(
            !p.allows_addr("rebind.example.com", ip("127.0.0.1")),
            "a public name resolving to loopback"
        );
        assert!(p.refusal("127.0.0.1", None).contains("webhook.allow_hosts"));
    }

    #[test]
    fn entries_list_names_addresses_and_ranges() {
        let p = policy(&["127.0.0.1", "10.1.0.0/16", "*.hooks.lan", "[::1]"]);
        assert!(p.allows_host("127.0.0.1"));
        assert!(p.allows_host("::1"));
        assert!(p.allows_host("localhost"));
        assert!(p.allows_host("10.1.200.3"));
        assert!(!p.allows_host("10.2.0.1"), "the list narrows the LAN too");
        assert!(!p.allows_host("127.0.0.2"));
        assert!(p.allows_host("ha.hooks.lan"));
        assert!(!p.allows_host("hooks.lan.evil.example"));
        assert!(p.allows_addr("ha.hooks.lan", ip("192.168.1.9")));
        assert!(
            !p.allows_addr("ha.hooks.lan", ip("169.254.169.254")),
            "a listed name still cannot reach a default-denied address"
        );
        assert!(
            p.allows_addr("ha.hooks.lan", ip("127.0.0.1")),
            "unless the address is listed"
        );
        assert!(p
            .refusal("x", Some(ip("10.2.0.1")))
            .contains("not allowed by webhook.allow_hosts"));
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            HostPolicy::new(&["http://x/".to_string()]),
            Err(BadEntry("http://x/".into()))
        );
        assert!(HostPolicy::new(&["10.0.0.0/33".to_string()]).is_err());
    }
}
