//! Header-value helpers on plain strings: name-addr with parameters, Via parameters, CSeq,
//! comma-separated lists. rsip frames and prints messages; these read the values, tolerating
//! compact header names and odd spacing, and never panic.

/// Split a header value on commas that are outside quotes and angle brackets.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// A name-addr or addr-spec: the URI and the header parameters after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").filter(|t| !t.is_empty())
    }
}

fn parse_params(s: &str) -> Vec<(String, Option<String>)> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), Some(v.trim().trim_matches('"').to_string())),
            None => (p.to_string(), None),
        })
        .collect()
}

/// Parse `"Name" <sip:u@h;lr>;tag=x` or `sip:u@h;tag=x` (then `;` params belong to the header).
pub fn parse_name_addr(value: &str) -> Option<NameAddr> {
    let v = value.trim();
    if let Some(lt) = v.find('<') {
        let gt = lt + v.get(lt..)?.find('>')?;
        let display = v.get(..lt)?.trim().trim_matches('"').trim();
        let uri = v.get(lt + 1..gt)?.trim();
        let rest = v.get(gt + 1..)?;
        if uri.is_empty() {
            return None;
        }
        return Some(NameAddr {
            display: (!display.is_empty()).then(|| display.to_string()),
            uri: uri.to_string(),
            params: parse_params(rest),
        });
    }
    let (uri, rest) = v.split_once(';').unwrap_or((v, ""));
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        return None;
    }
    Some(NameAddr {
        display: None,
        uri: uri.to_string(),
        params: parse_params(rest),
    })
}

/// A Via value: transport, sent-by and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaValue {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl ViaValue {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").filter(|b| !b.is_empty())
    }
}

/// A transport token or a host name / IPv4 address (IPv6 references are checked apart).
fn is_token(s: &str, extra: &[char]) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// Parse `SIP/2.0/UDP host:port;branch=...;rport`. The transport must be a token and the host a
/// name, an IPv4 address or a bracketed IPv6 reference, so that a Via we echo (with `received`
/// and `rport` added) still reads the same.
pub fn parse_via(value: &str) -> Option<ViaValue> {
    let v = value.trim();
    let (proto, rest) = v.split_once(char::is_whitespace)?;
    let mut parts = proto.split('/');
    let (name, version, transport) = (parts.next()?, parts.next()?, parts.next()?);
    if !name.trim().eq_ignore_ascii_case("SIP")
        || version.trim() != "2.0"
        || parts.next().is_some()
        || !is_token(
            transport.trim(),
            &['-', '.', '!', '%', '*', '_', '+', '`', '\'', '~'],
        )
    {
        return None;
    }
    let rest = rest.trim();
    let (sent_by, params) = rest.split_once(';').unwrap_or((rest, ""));
    let sent_by = sent_by.trim();
    let (host, port) = if let Some(after) = sent_by.strip_prefix('[') {
        let (h, tail) = after.split_once(']')?;
        if !is_token(h, &[':', '.', '%']) {
            return None;
        }
        let port = match tail {
            "" => None,
            _ => Some(tail.strip_prefix(':')?.parse().ok()?),
        };
        (h.to_string(), port)
    } else {
        let (h, p) = match sent_by.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (sent_by, None),
        };
        if !is_token(h, &['-', '.', '_']) {
            return None;
        }
        (h.to_string(), p)
    };
    Some(ViaValue {
        transport: transport.trim().to_ascii_uppercase(),
        host,
        port,
        params: parse_params(params),
    })
}

/// Parse a CSeq value `314159 INVITE`.
pub fn parse_cseq(value: &str) -> Option<(u32, String)> {
    let mut it = value.split_whitespace();
    let n = it.next()?.parse().ok()?;
    let m = it.next()?.to_ascii_uppercase();
    it.next().is_none().then_some((n, m))
}

/// Host and port of a SIP URI (`sip:user@host:port;params`), plus its `transport` parameter.
pub fn uri_host_port(uri: &str) -> Option<(String, Option<u16>, Option<String>)> {
    let rest = uri
        .trim()
        .strip_prefix("sips:")
        .or_else(|| uri.trim().strip_prefix("sip:"))?;
    let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
    let addr = addr.split('?').next().unwrap_or(addr);
    let hostport = addr.rsplit_once('@').map_or(addr, |(_, h)| h);
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (h, tail) = after.split_once(']')?;
        (
            format!("[{h}]"),
            tail.strip_prefix(':').and_then(|p| p.parse().ok()),
        )
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let transport = parse_params(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("transport"))
        .and_then(|(_, v)| v);
    Some((host, port, transport))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_respect_quotes_and_brackets() {
        assert_eq!(
            split_list(r#"<sip:a@h;lr>, "x, y" <sip:b@h>, <sip:c@h;a=1,2>"#),
            vec!["<sip:a@h;lr>", r#""x, y" <sip:b@h>"#, "<sip:c@h;a=1,2>"]
        );
        assert!(split_list("").is_empty());
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr(r#""Alice" <sip:alice@h:5070;transport=tcp>;tag=abc"#).expect("parses");
        assert_eq!(n.display.as_deref(), Some("Alice"));
        assert_eq!(n.uri, "sip:alice@h:5070;transport=tcp");
        assert_eq!(n.tag(), Some("abc"));
        let n = parse_name_addr("sip:bob@h;tag=1").expect("parses");
        assert_eq!((n.uri.as_str(), n.tag()), ("sip:bob@h", Some("1")));
        assert_eq!(parse_name_addr("<>"), None);
        assert_eq!(parse_name_addr("<sip:a@h"), None);
    }

    #[test]
    fn via_and_cseq() {
        let v =
            parse_via("SIP/2.0/udp 10.0.0.1:5060;branch=z9hG4bK1;rport=5062;received=1.2.3.4").expect("via");
        assert_eq!(v.transport, "UDP");
        assert_eq!((v.host.as_str(), v.port), ("10.0.0.1", Some(5060)));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.param("rport"), Some("5062"));
        assert_eq!(
            parse_via("SIP/2.0/TCP [::1]:5070;branch=b").map(|v| v.host),
            Some("::1".into())
        );
        assert_eq!(parse_via("SIP/3.0/UDP h"), None);
        // Garbage where the transport and the host belong is not a Via.
        assert_eq!(
            parse_via("SIP/2.0/UDxx;received=a: junk 127.0.0.1:5060;branch=b"),
            None
        );
        assert_eq!(parse_via("SIP/2.0/UDP/X h;branch=b"), None);
        assert_eq!(parse_via("SIP/2.0/UDP a b:5060;branch=b"), None);
        assert_eq!(parse_via("SIP/2.0/UDP h,x;branch=b"), None);
        assert_eq!(parse_via("SIP/2.0/UDP [::1]x;branch=b"), None);
        assert_eq!(
            parse_via("SIP/2.0/UDP pbx-1.lan_x ;branch=b").map(|v| (v.host, v.port)),
            Some(("pbx-1.lan_x".into(), None))
        );
        assert_eq!(parse_cseq("12 invite"), Some((12, "INVITE".into())));
        assert_eq!(parse_cseq("x INVITE"), None);
    }

    #[test]
    fn uri_parts() {
        assert_eq!(
            uri_host_port("sip:1001@127.0.0.1:5070;transport=tcp"),
            Some(("127.0.0.1".into(), Some(5070), Some("tcp".into())))
        );
        assert_eq!(uri_host_port("sip:pbx.lan"), Some(("pbx.lan".into(), None, None)));
        assert_eq!(uri_host_port("tel:+1"), None);
    }
}
