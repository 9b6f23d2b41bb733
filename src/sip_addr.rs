//! SIP addressing rules shared by config validation and request validation: host[:port] strings,
//! user-part characters, and what a call's `extension` may be (digits/name, phone number, or a full
//! `sip:`/`sips:` URI).

/// The rule an address broke; each names the text it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("'{0}' has an unclosed IPv6 bracket")]
    UnclosedBracket(String),
    #[error("'{0}' is not host[:port]")]
    NotHostPort(String),
    #[error("'{0}' names no host")]
    NoHost(String),
    #[error("'{0}' has a host with characters a host name cannot hold")]
    BadHost(String),
    #[error("'{0}' has an invalid port (must be 1-65535)")]
    BadPort(String),
    #[error("must be a non-empty string")]
    Empty,
    #[error("'{0}' is not a valid SIP URI (expected sip:user@host[:port])")]
    BadUri(String),
    #[error("must be at most 64 characters unless it is a SIP URI")]
    TooLong,
    #[error("'{0}' has '+' inside a phone number")]
    PlusInside(String),
    #[error("'{0}' holds no digits")]
    NoDigits(String),
    #[error(
        "'{0}' must be an extension (letters, digits and . _ - + * #), a phone number, or a sip:/sips: URI"
    )]
    NotAnExtension(String),
}

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user part dialled as `sip:<user>@<sip.domain>` through the outbound proxy.
    User(String),
    /// A full SIP URI dialled as given.
    Uri(String),
}

/// Characters RFC 3261 allows unescaped in a user part (unreserved and user-unreserved), plus `#`,
/// which PBX feature codes use and which is escaped when the URI is printed.
pub fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/#".contains(c)
}

/// Parse `host`, `host:port`, `[v6]:port` or a `sip:`/`sips:` URI naming a host; returns the host
/// and port or the rule broken.
pub fn parse_host_port(s: &str) -> Result<(String, Option<u16>), AddrError> {
    let rest = s
        .strip_prefix("sips:")
        .or_else(|| s.strip_prefix("sip:"))
        .unwrap_or(s);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let host_port = rest.split(';').next().unwrap_or(rest);
    let (host, port) = if let Some(after) = host_port.strip_prefix('[') {
        let (host, tail) = after
            .split_once(']')
            .ok_or_else(|| AddrError::UnclosedBracket(s.into()))?;
        match tail {
            "" => (host.to_string(), None),
            t => match t.strip_prefix(':') {
                Some(p) => (host.to_string(), Some(p)),
                None => return Err(AddrError::NotHostPort(s.into())),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (host_port.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(AddrError::NoHost(s.into()));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c))
    {
        return Err(AddrError::BadHost(s.into()));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(AddrError::BadPort(s.into())),
        },
    };
    Ok((host, port))
}

/// Validate and classify a call's `extension`. Phone-number formatting (spaces, parentheses, dots,
/// dashes between digits) is removed; the rule broken is returned otherwise.
pub fn parse_extension(s: &str) -> Result<Target, AddrError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(AddrError::Empty);
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        return match rsip::Uri::try_from(s) {
            Ok(uri) if !uri.host_with_port.host.to_string().is_empty() => Ok(Target::Uri(s.to_string())),
            _ => Err(AddrError::BadUri(s.into())),
        };
    }
    if s.len() > 64 {
        return Err(AddrError::TooLong);
    }
    let is_phone =
        s.starts_with('+') || s.starts_with('(') || s.chars().next().is_some_and(|c| c.is_ascii_digit());
    if is_phone && s.chars().all(|c| c.is_ascii_digit() || " +()-.".contains(c)) {
        let mut out = String::with_capacity(s.len());
        for (i, c) in s.chars().enumerate() {
            match c {
                '+' if i == 0 => out.push('+'),
                '+' => return Err(AddrError::PlusInside(s.into())),
                c if c.is_ascii_digit() => out.push(c),
                _ => {}
            }
        }
        if out.trim_start_matches('+').is_empty() {
            return Err(AddrError::NoDigits(s.into()));
        }
        return Ok(Target::User(out));
    }
    if s.chars().all(is_user_char) {
        return Ok(Target::User(s.to_string()));
    }
    Err(AddrError::NotAnExtension(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_broken_rule_says_which_in_the_words_the_api_returns() {
        assert_eq!(
            parse_extension("").unwrap_err().to_string(),
            "must be a non-empty string"
        );
        assert_eq!(
            parse_extension("12+34").unwrap_err(),
            AddrError::PlusInside("12+34".into())
        );
        assert_eq!(
            parse_extension("a b").unwrap_err().to_string(),
            "'a b' must be an extension (letters, digits and . _ - + * #), a phone number, or a sip:/sips: URI"
        );
        assert_eq!(
            parse_host_port("pbx:0").unwrap_err().to_string(),
            "'pbx:0' has an invalid port (must be 1-65535)"
        );
        assert_eq!(
            parse_host_port("[::1").unwrap_err(),
            AddrError::UnclosedBracket("[::1".into())
        );
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(parse_host_port("pbx.lan"), Ok(("pbx.lan".into(), None)));
        assert_eq!(
            parse_host_port("10.0.0.1:5070"),
            Ok(("10.0.0.1".into(), Some(5070)))
        );
        assert_eq!(
            parse_host_port("sip:pbx.lan:5080;transport=tcp"),
            Ok(("pbx.lan".into(), Some(5080)))
        );
        assert_eq!(parse_host_port("[::1]:5060"), Ok(("::1".into(), Some(5060))));
        assert!(parse_host_port("pbx:0").is_err());
        assert!(parse_host_port(":5060").is_err());
        assert!(parse_host_port("pbx lan").is_err());
    }

    #[test]
    fn extensions() {
        assert_eq!(parse_extension("1001"), Ok(Target::User("1001".into())));
        assert_eq!(parse_extension("*97"), Ok(Target::User("*97".into())));
        assert_eq!(
            parse_extension("alice.smith"),
            Ok(Target::User("alice.smith".into()))
        );
        assert_eq!(
            parse_extension("+1 (555) 123-4567"),
            Ok(Target::User("+15551234567".into()))
        );
        assert_eq!(
            parse_extension("sip:1001@127.0.0.1:5070"),
            Ok(Target::Uri("sip:1001@127.0.0.1:5070".into()))
        );
        assert!(parse_extension("sips:bob@pbx.example.com").is_ok());
        assert!(parse_extension("").is_err());
        assert!(parse_extension("   ").is_err());
        assert!(parse_extension("10 01x").is_err());
        assert!(parse_extension("sip:").is_err());
        assert!(parse_extension("1001@pbx").is_err());
        assert!(parse_extension("12+34").is_err());
    }
}
