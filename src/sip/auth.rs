//! SIP digest authentication, client side (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760).
//!
//! This module owns three things: parsing a `WWW-Authenticate` / `Proxy-Authenticate` header value
//! into a [`Challenge`], computing digest responses for every algorithm SIP uses (MD5, SHA-256,
//! SHA-512-256 and their `-sess` variants, with qop `auth`, `auth-int` or the RFC 2069 form), and
//! tracking nonce counts per (realm, nonce) in [`DigestClient`] so repeated requests on one nonce
//! send `nc=00000001`, `00000002`, ...
//!
//! It is sans-IO: no sockets, clocks or randomness. The caller supplies the challenge text, the
//! request's method, Request-URI and body, and the client nonce (`cnonce`), and gets back the
//! `Authorization` / `Proxy-Authorization` header value as a string.
//!
//! [`parse_challenge`] never panics, whatever the input; values it returns never contain control
//! characters (folded whitespace inside quoted strings is unfolded), so echoing them back in a
//! header cannot inject header lines.

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// How many (realm, nonce) pairs a [`DigestClient`] remembers before forgetting the least recently
/// used one. A server that hands out a fresh nonce per challenge cannot grow the client's memory.
const MAX_TRACKED_NONCES: usize = 32;

/// How much of a server-supplied value an error message quotes.
const ERROR_ECHO_CHARS: usize = 64;

/// Errors from parsing a challenge or building an authorization.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The header value names another scheme (Basic, Bearer, ...).
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A parameter the challenge must carry is absent (`realm`, `nonce`), or a `-sess` algorithm
    /// came without the `qop` it needs.
    #[error("digest challenge is missing the `{0}` parameter")]
    MissingParam(&'static str),
    /// The `algorithm` parameter names an algorithm this client does not implement.
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The `qop` parameter lists only protection levels this client does not implement.
    #[error("digest challenge offers no supported qop (got `{0}`)")]
    UnsupportedQop(String),
    /// The header value does not follow the challenge grammar.
    #[error("malformed digest challenge: {0}")]
    Malformed(String),
    /// An argument to [`DigestClient::authorization`] cannot be put in a header.
    #[error("invalid digest authorization input: {0}")]
    InvalidInput(&'static str),
    /// The nonce count for this nonce reached its 32-bit limit; a fresh challenge is needed.
    #[error("nonce count exhausted for this nonce; a fresh challenge is needed")]
    NonceCountExhausted,
}

/// A digest hash algorithm (the `algorithm` parameter). Names are the IANA ones, matched
/// case-insensitively; a challenge without `algorithm` means [`Algorithm::Md5`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the SIP default).
    #[default]
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`: SHA-512/256 as defined in FIPS 180-4 §6.7 (RFC 7616, RFC 8760).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// The IANA name, as sent in the `algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` variant, whose HA1 folds in the nonce and cnonce.
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const ALL: [Algorithm; 6] = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        ALL.into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AuthError::UnsupportedAlgorithm(echo(s)))
    }
}

/// A quality of protection (the `qop` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication of method and Request-URI.
    Auth,
    /// `auth-int`: `auth` plus the message body.
    AuthInt,
}

impl Qop {
    /// The token as sent in the `qop` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space name, echoed back and part of HA1.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque server data, echoed back unchanged when present.
    pub opaque: Option<String>,
    /// Hash algorithm; [`Algorithm::Md5`] when the challenge names none.
    pub algorithm: Algorithm,
    /// Offered protection levels that this client supports, in the server's order, without
    /// duplicates. Empty means the RFC 2069-compatible form (no qop, cnonce or nc).
    pub qop: Vec<Qop>,
    /// `stale=true`: the previous nonce expired but the credentials were right, so retry with the
    /// new nonce without asking anyone for a password.
    pub stale: bool,
    /// The `domain` parameter as sent (space-separated URIs), if any.
    pub domain: Option<String>,
    /// `userhash=true` (RFC 7616 §3.4.4): send H(username:realm) instead of the username.
    pub userhash: bool,
}

/// The account's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authentication user name (often the extension number).
    pub username: String,
    /// Password; never printed by `Debug`.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parse a `WWW-Authenticate` or `Proxy-Authenticate` header value (`Digest realm="..", ...`).
///
/// The scheme is matched case-insensitively; parameter names too. Values are tokens or quoted
/// strings with `\` escapes; linear whitespace, including folded `CRLF SP`, is allowed around every
/// separator. Unknown parameters are ignored, and for a repeated parameter the first one wins.
/// Never panics.
pub fn parse_challenge(header_value: &str) -> Result<Challenge, AuthError> {
    let params = parse_digest_params(header_value)?;
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());

    let realm = get("realm").ok_or(AuthError::MissingParam("realm"))?.to_string();
    let nonce = get("nonce").ok_or(AuthError::MissingParam("nonce"))?.to_string();
    let algorithm = match get("algorithm") {
        Some(name) => name.trim().parse()?,
        None => Algorithm::Md5,
    };
    let qop = match get("qop") {
        Some(list) => parse_qop_list(list)?,
        None => Vec::new(),
    };
    let is_true = |name: &str| get(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Ok(Challenge {
        realm,
        nonce,
        opaque: get("opaque").map(str::to_string),
        algorithm,
        qop,
        stale: is_true("stale"),
        domain: get("domain").map(str::to_string),
        userhash: is_true("userhash"),
    })
}

/// `qop="auth,auth-int"`: the supported entries in order, unknown ones skipped. A list naming
/// only unknown entries is an error (answering without qop would be refused); an empty list is
/// treated as no qop.
fn parse_qop_list(list: &str) -> Result<Vec<Qop>, AuthError> {
    let mut out = Vec::new();
    let mut saw_unknown = false;
    for item in list.split(',').map(|s| s.trim_matches(|c| c == ' ' || c == '\t')) {
        let qop = if item.eq_ignore_ascii_case("auth") {
            Qop::Auth
        } else if item.eq_ignore_ascii_case("auth-int") {
            Qop::AuthInt
        } else {
            saw_unknown |= !item.is_empty();
            continue;
        };
        if !out.contains(&qop) {
            out.push(qop);
        }
    }
    if out.is_empty() && saw_unknown {
        return Err(AuthError::UnsupportedQop(echo(list)));
    }
    Ok(out)
}

/// Hex digest of `data` under `algorithm`'s hash function (the RFC's `H(data)`); `-sess` variants
/// use the same hash as their base algorithm.
pub fn hash_hex(algorithm: Algorithm, data: &[u8]) -> String {
    match algorithm {
        Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
        Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
        Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => hex(&Sha512_256::digest(data)),
    }
}

/// `H(A1)`: `H(username:realm:password)`, and for `-sess` algorithms
/// `H(H(username:realm:password):nonce:cnonce)` (RFC 7616 §3.4.2). `username` is the plain user
/// name even when `userhash` is in use.
pub fn ha1_hex(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
) -> String {
    let base = hash_hex(algorithm, join(&[username, realm, password]).as_bytes());
    if algorithm.is_session() {
        hash_hex(algorithm, join(&[&base, nonce, cnonce]).as_bytes())
    } else {
        base
    }
}

/// `H(A2)`: `H(method:uri)`, or for `auth-int` `H(method:uri:H(body))` (RFC 7616 §3.4.3).
pub fn ha2_hex(algorithm: Algorithm, qop: Option<Qop>, method: &str, uri: &str, body: &[u8]) -> String {
    let a2 = match qop {
        Some(Qop::AuthInt) => join(&[method, uri, &hash_hex(algorithm, body)]),
        Some(Qop::Auth) | None => join(&[method, uri]),
    };
    hash_hex(algorithm, a2.as_bytes())
}

/// The `response` value: `KD(HA1, nonce:nc:cnonce:qop:HA2)` when `qop` is given as
/// `(qop, nc, cnonce)`, else the RFC 2069 form `KD(HA1, nonce:HA2)` (RFC 7616 §3.4.1).
pub fn response_hex(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(Qop, u32, &str)>,
    ha2: &str,
) -> String {
    let data = match qop {
        Some((qop, nc, cnonce)) => join(&[ha1, nonce, &format!("{nc:08x}"), cnonce, qop.as_str(), ha2]),
        None => join(&[ha1, nonce, ha2]),
    };
    hash_hex(algorithm, data.as_bytes())
}

/// Builds `Authorization` / `Proxy-Authorization` values and remembers, per (realm, nonce), how
/// many requests used that nonce, so each answer carries the next `nc`.
#[derive(Debug, Clone, Default)]
pub struct DigestClient {
    /// Known nonces; at most [`MAX_TRACKED_NONCES`], the least recently used evicted first.
    nonces: Vec<NonceState>,
    /// Use counter for least-recently-used eviction.
    tick: u64,
}

#[derive(Debug, Clone)]
struct NonceState {
    realm: String,
    nonce: String,
    count: u32,
    last_used: u64,
}

impl DigestClient {
    /// A client that has used no nonce yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The header value answering `challenge` for a request `method uri` with `body`, e.g.
    /// `Digest username="100", realm="asterisk", nonce="..", uri="sip:pbx.lan", response="..",
    /// algorithm=MD5, cnonce="..", qop=auth, nc=00000001`.
    ///
    /// Chooses qop `auth` when offered, else `auth-int` (hashing `body`), else the RFC 2069 form
    /// without `cnonce`/`nc` (and without counting the nonce). `cnonce` is the caller's fresh
    /// random string; it must be non-empty whenever a qop is used. With `userhash` the username is
    /// sent as `H(username:realm)` plus `userhash=true`.
    pub fn authorization(
        &mut self,
        challenge: &Challenge,
        creds: &Credentials,
        method: &str,
        uri: &str,
        body: &[u8],
        cnonce: &str,
    ) -> Result<String, AuthError> {
        if method.is_empty() || !method.chars().all(is_token_char) {
            return Err(AuthError::InvalidInput("method must be a non-empty SIP token"));
        }
        if uri.is_empty() {
            return Err(AuthError::InvalidInput("uri must not be empty"));
        }
        for (value, what) in [
            (creds.username.as_str(), "username contains control characters"),
            (uri, "uri contains control characters"),
            (cnonce, "cnonce contains control characters"),
            (challenge.realm.as_str(), "realm contains control characters"),
            (challenge.nonce.as_str(), "nonce contains control characters"),
            (
                challenge.opaque.as_deref().unwrap_or(""),
                "opaque contains control characters",
            ),
        ] {
            if value.chars().any(is_forbidden_control) {
                return Err(AuthError::InvalidInput(what));
            }
        }

        let qop = if challenge.qop.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if challenge.qop.contains(&Qop::AuthInt) {
            Some(Qop::AuthInt)
        } else {
            None
        };
        let algorithm = challenge.algorithm;
        if qop.is_none() && algorithm.is_session() {
            return Err(AuthError::MissingParam("qop"));
        }
        if qop.is_some() && cnonce.is_empty() {
            return Err(AuthError::InvalidInput(
                "cnonce must not be empty when qop is used",
            ));
        }
        let nc = match qop {
            Some(_) => Some(self.next_nonce_count(&challenge.realm, &challenge.nonce)?),
            None => None,
        };

        let ha1 = ha1_hex(
            algorithm,
            &creds.username,
            &challenge.realm,
            &creds.password,
            &challenge.nonce,
            cnonce,
        );
        let ha2 = ha2_hex(algorithm, qop, method, uri, body);
        let qop_args = match (qop, nc) {
            (Some(q), Some(n)) => Some((q, n, cnonce)),
            _ => None,
        };
        let response = response_hex(algorithm, &ha1, &challenge.nonce, qop_args, &ha2);

        let username = if challenge.userhash {
            hash_hex(algorithm, join(&[&creds.username, &challenge.realm]).as_bytes())
        } else {
            creds.username.clone()
        };

        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        push_quoted(&mut out, &username);
        out.push_str(", realm=");
        push_quoted(&mut out, &challenge.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &challenge.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, uri);
        out.push_str(", response=");
        push_quoted(&mut out, &response);
        out.push_str(", algorithm=");
        out.push_str(algorithm.as_str());
        if qop_args.is_some() {
            out.push_str(", cnonce=");
            push_quoted(&mut out, cnonce);
        }
        if let Some(opaque) = &challenge.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        if let Some((q, n, _)) = qop_args {
            out.push_str(", qop=");
            out.push_str(q.as_str());
            out.push_str(&format!(", nc={n:08x}"));
        }
        if challenge.userhash {
            out.push_str(", userhash=true");
        }
        Ok(out)
    }

    /// How many answers have used this (realm, nonce) so far; 0 for one never used (or
    /// forgotten). RFC 2069-form answers (no qop) are not counted.
    pub fn nonce_count(&self, realm: &str, nonce: &str) -> u32 {
        self.nonces
            .iter()
            .find(|s| s.realm == realm && s.nonce == nonce)
            .map_or(0, |s| s.count)
    }

    /// Count one more use of (realm, nonce) and return the new count.
    fn next_nonce_count(&mut self, realm: &str, nonce: &str) -> Result<u32, AuthError> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        if let Some(state) = self
            .nonces
            .iter_mut()
            .find(|s| s.realm == realm && s.nonce == nonce)
        {
            let count = state.count.checked_add(1).ok_or(AuthError::NonceCountExhausted)?;
            state.count = count;
            state.last_used = tick;
            return Ok(count);
        }
        if self.nonces.len() >= MAX_TRACKED_NONCES {
            let oldest = self
                .nonces
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.nonces.swap_remove(i);
            }
        }
        self.nonces.push(NonceState {
            realm: realm.to_string(),
            nonce: nonce.to_string(),
            count: 1,
            last_used: tick,
        });
        Ok(1)
    }
}

/// Parse `Digest name=value, ...` into lower-cased names and unescaped values, first occurrence of
/// each name kept.
fn parse_digest_params(header_value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let trimmed = header_value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if trimmed.is_empty() {
        return Err(AuthError::Malformed("empty header value".to_string()));
    }
    let mut cur = Cursor::new(trimmed);
    let scheme = cur.take_while(is_token_char);
    if scheme.is_empty() {
        return Err(cur.error("expected an authentication scheme"));
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(AuthError::NotDigest);
    }
    if !cur.at_end() && !cur.skip_lws() {
        return Err(cur.error("expected whitespace after `Digest`"));
    }

    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        cur.skip_lws();
        if cur.at_end() {
            break;
        }
        // Empty list elements (`a=1,,b=2`, a trailing comma) are allowed, as in HTTP's #rule.
        if cur.eat(',') {
            continue;
        }
        let name = cur.take_while(is_token_char);
        if name.is_empty() {
            return Err(cur.error("expected a parameter name"));
        }
        cur.skip_lws();
        if !cur.eat('=') {
            return Err(cur.error("expected `=` after a parameter name"));
        }
        cur.skip_lws();
        let value = if cur.eat('"') {
            cur.quoted_string_rest()?
        } else {
            cur.token_value()?
        };
        cur.skip_lws();
        if !cur.at_end() && !cur.eat(',') {
            return Err(cur.error("expected `,` between parameters"));
        }
        let name = name.to_ascii_lowercase();
        if !params.iter().any(|(n, _)| *n == name) {
            params.push((name, value));
        }
    }
    Ok(params)
}

/// A read position in a string; every step goes through `Chars`, so no byte index can be out of
/// bounds or off a char boundary.
struct Cursor<'a> {
    full_len: usize,
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            full_len: s.len(),
            rest: s,
        }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        self.rest = chars.as_str();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        if self.peek() == Some(want) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// The longest prefix whose chars satisfy `pred`, consumed.
    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let rest: &'a str = self.rest;
        let mut tail = rest.chars();
        loop {
            let before = tail.as_str();
            match tail.next() {
                Some(c) if pred(c) => {}
                _ => {
                    self.rest = before;
                    return rest.strip_suffix(before).unwrap_or("");
                }
            }
        }
    }

    /// If the rest starts with a line fold (`CRLF` or bare `LF`, then SP/HTAB), consume the line
    /// break (the whitespace after it stays) and return true.
    fn eat_fold(&mut self) -> bool {
        let after_break = self
            .rest
            .strip_prefix("\r\n")
            .or_else(|| self.rest.strip_prefix('\n'));
        match after_break {
            Some(after) if after.starts_with([' ', '\t']) => {
                self.rest = after;
                true
            }
            _ => false,
        }
    }

    /// Skip linear whitespace (SP, HTAB, folded line breaks); true if any was skipped.
    fn skip_lws(&mut self) -> bool {
        let start = self.rest.len();
        loop {
            if matches!(self.peek(), Some(' ' | '\t')) {
                self.bump();
            } else if !self.eat_fold() {
                break;
            }
        }
        self.rest.len() != start
    }

    /// The rest of a quoted string whose opening `"` was consumed, unescaped, closing `"`
    /// consumed. Folds become their whitespace; other control characters are refused.
    fn quoted_string_rest(&mut self) -> Result<String, AuthError> {
        let mut out = String::new();
        loop {
            if self.eat_fold() {
                continue;
            }
            match self.bump() {
                None => return Err(self.error("unterminated quoted string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    None => return Err(self.error("unterminated quoted string")),
                    Some(c) if is_forbidden_control(c) => {
                        return Err(self.error("control character in quoted string"))
                    }
                    Some(c) => out.push(c),
                },
                Some(c) if is_forbidden_control(c) => {
                    return Err(self.error("control character in quoted string"))
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// An unquoted value: everything up to whitespace, a comma or the end. Liberal on purpose
    /// (base64 nonces with `/`, `+`, `=` appear unquoted in the wild); quotes and control
    /// characters are refused.
    fn token_value(&mut self) -> Result<String, AuthError> {
        let value =
            self.take_while(|c| !matches!(c, ',' | ' ' | '\t' | '\r' | '\n' | '"') && !c.is_control());
        if value.is_empty() {
            return Err(self.error("expected a parameter value"));
        }
        match self.peek() {
            Some('"') => Err(self.error("stray `\"` in unquoted value")),
            Some(c) if is_forbidden_control(c) => Err(self.error("control character in value")),
            _ => Ok(value.to_string()),
        }
    }

    fn error(&self, what: &str) -> AuthError {
        let at = self.full_len.saturating_sub(self.rest.len());
        AuthError::Malformed(format!("{what} at byte {at}"))
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~')
}

/// Control characters other than HTAB (which is ordinary whitespace).
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Append `value` as a quoted string, escaping `"` and `\`.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn join(parts: &[&str]) -> String {
    parts.join(":")
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A server-supplied value shortened for an error message.
fn echo(s: &str) -> String {
    s.chars().take(ERROR_ECHO_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    /// Parameters of an Authorization value, read back with the challenge parser's own grammar.
    fn fields(header: &str) -> Vec<(String, String)> {
        parse_digest_params(header).expect("authorization output follows the digest grammar")
    }

    fn field(header: &str, name: &str) -> Option<String> {
        fields(header)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        let challenge = parse_challenge(
            "Digest\r\n realm=\"testrealm@host.com\",\r\n qop=\"auth,auth-int\",\r\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("RFC 2617 challenge parses");
        assert_eq!(challenge.realm, "testrealm@host.com");
        assert_eq!(challenge.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        assert_eq!(
            challenge.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );

        let mut client = DigestClient::new();
        let header = client
            .authorization(
                &challenge,
                &creds("Mufasa", "Circle Of Life"),
                "GET",
                "/dir/index.html",
                b"",
                "0a4f113b",
            )
            .expect("authorization");
        assert_eq!(
            header,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001"
        );
    }

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616_response(algorithm: &str) -> String {
        let challenge = parse_challenge(&format!(
            "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    \
             algorithm={algorithm},\r\n    nonce=\"{RFC7616_NONCE}\",\r\n    \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        ))
        .expect("RFC 7616 challenge parses");
        // RFC 7616's password is "Circle of Life" with a lower-case "of" (erratum 4495).
        let header = DigestClient::new()
            .authorization(
                &challenge,
                &creds("Mufasa", "Circle of Life"),
                "GET",
                "/dir/index.html",
                b"",
                RFC7616_CNONCE,
            )
            .expect("authorization");
        assert_eq!(field(&header, "algorithm").as_deref(), Some(algorithm));
        assert_eq!(field(&header, "nc").as_deref(), Some("00000001"));
        assert_eq!(field(&header, "qop").as_deref(), Some("auth"));
        field(&header, "response").expect("response present")
    }

    #[test]
    fn rfc7616_section_3_9_1_md5() {
        assert_eq!(rfc7616_response("MD5"), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256() {
        assert_eq!(
            rfc7616_response("SHA-256"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// RFC 7616 §3.9.2 as corrected by erratum 4897: the RFC's printed values were computed with
    /// SHA-512 truncated to 256 bits; with SHA-512/256 per FIPS 180-4 (what `sha2` and this
    /// module implement) the username hash and response are the erratum's.
    #[test]
    fn rfc7616_section_3_9_2_userhash_sha512_256_erratum_4897() {
        let challenge = parse_challenge(
            "Digest\r\n realm=\"api@example.org\",\r\n qop=\"auth\",\r\n algorithm=SHA-512-256,\r\n \
             nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\",\r\n \
             opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\",\r\n charset=UTF-8,\r\n userhash=true",
        )
        .expect("RFC 7616 §3.9.2 challenge parses");
        assert!(challenge.userhash);
        assert_eq!(challenge.algorithm, Algorithm::Sha512_256);
        let header = DigestClient::new()
            .authorization(
                &challenge,
                &creds("J\u{e4}s\u{f8}n Doe", "Secret, or not?"),
                "GET",
                "/doe.json",
                b"",
                "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
            )
            .expect("authorization");
        assert_eq!(
            field(&header, "username").as_deref(),
            Some("793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b")
        );
        assert_eq!(
            field(&header, "response").as_deref(),
            Some("3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5")
        );
        assert_eq!(field(&header, "userhash").as_deref(), Some("true"));
        assert_eq!(field(&header, "algorithm").as_deref(), Some("SHA-512-256"));
    }

    /// Cross-check of the erratum's explanation: the RFC's printed §3.9.2 username hash is
    /// SHA-512 truncated to 32 bytes, which is not SHA-512/256 (different initial values).
    #[test]
    fn rfc7616_printed_userhash_is_truncated_sha512() {
        let input = "J\u{e4}s\u{f8}n Doe:api@example.org";
        let truncated = sha2::Sha512::digest(input.as_bytes());
        assert_eq!(
            hex(truncated.get(..32).expect("SHA-512 output is 64 bytes")),
            "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec"
        );
        assert_ne!(
            hash_hex(Algorithm::Sha512_256, input.as_bytes()),
            "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec"
        );
    }

    #[test]
    fn sha512_256_is_fips_180_4() {
        // FIPS 180-4 / NIST example: SHA-512/256("abc").
        assert_eq!(
            hash_hex(Algorithm::Sha512_256, b"abc"),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }

    #[test]
    fn rfc2069_form_without_qop() {
        // RFC 2069 §2.4 inputs (realm/nonce/opaque of RFC 2617 §3.5, password "Circle Of Life").
        let challenge = parse_challenge(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("parses");
        assert!(challenge.qop.is_empty());
        let mut client = DigestClient::new();
        let header = client
            .authorization(
                &challenge,
                &creds("Mufasa", "Circle Of Life"),
                "GET",
                "/dir/index.html",
                b"",
                "",
            )
            .expect("authorization");
        let ha1 = hash_hex(Algorithm::Md5, b"Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = hash_hex(Algorithm::Md5, b"GET:/dir/index.html");
        let expected = hash_hex(
            Algorithm::Md5,
            format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}").as_bytes(),
        );
        assert_eq!(field(&header, "response"), Some(expected));
        assert_eq!(field(&header, "cnonce"), None);
        assert_eq!(field(&header, "nc"), None);
        assert_eq!(field(&header, "qop"), None);
        assert_eq!(
            field(&header, "opaque").as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(
            client.nonce_count("testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093"),
            0
        );
    }

    #[test]
    fn auth_int_hashes_the_body_when_only_auth_int_is_offered() {
        let challenge = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").expect("parses");
        let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
        let header = DigestClient::new()
            .authorization(
                &challenge,
                &creds("u", "p"),
                "INVITE",
                "sip:100@pbx.lan",
                body,
                "c1",
            )
            .expect("authorization");
        let ha1 = hash_hex(Algorithm::Md5, b"u:r:p");
        let body_hash = hash_hex(Algorithm::Md5, body);
        let ha2 = hash_hex(
            Algorithm::Md5,
            format!("INVITE:sip:100@pbx.lan:{body_hash}").as_bytes(),
        );
        let expected = hash_hex(
            Algorithm::Md5,
            format!("{ha1}:n:00000001:c1:auth-int:{ha2}").as_bytes(),
        );
        assert_eq!(field(&header, "qop").as_deref(), Some("auth-int"));
        assert_eq!(field(&header, "response"), Some(expected));
    }

    #[test]
    fn auth_is_preferred_over_auth_int() {
        let challenge =
            parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int, auth\"").expect("parses");
        let header = DigestClient::new()
            .authorization(&challenge, &creds("u", "p"), "INVITE", "sip:1@h", b"body", "c")
            .expect("authorization");
        assert_eq!(field(&header, "qop").as_deref(), Some("auth"));
    }

    #[test]
    fn session_algorithms_fold_nonce_and_cnonce_into_ha1() {
        for (name, algorithm) in [
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("SHA-512-256-sess", Algorithm::Sha512_256Sess),
        ] {
            let challenge = parse_challenge(&format!(
                "Digest realm=\"r\", nonce=\"N\", qop=auth, algorithm={name}"
            ))
            .expect("parses");
            assert_eq!(challenge.algorithm, algorithm);
            let header = DigestClient::new()
                .authorization(&challenge, &creds("u", "p"), "REGISTER", "sip:pbx", b"", "C")
                .expect("authorization");
            let inner = hash_hex(algorithm, b"u:r:p");
            let ha1 = hash_hex(algorithm, format!("{inner}:N:C").as_bytes());
            let ha2 = hash_hex(algorithm, b"REGISTER:sip:pbx");
            let expected = hash_hex(algorithm, format!("{ha1}:N:00000001:C:auth:{ha2}").as_bytes());
            assert_eq!(field(&header, "response"), Some(expected), "{name}");
            assert_eq!(field(&header, "algorithm").as_deref(), Some(name));
        }
    }

    #[test]
    fn session_algorithm_without_qop_is_refused() {
        let challenge =
            parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess").expect("parses");
        let err = DigestClient::new()
            .authorization(&challenge, &creds("u", "p"), "REGISTER", "sip:pbx", b"", "c")
            .expect_err("-sess needs qop");
        assert_eq!(err, AuthError::MissingParam("qop"));
    }

    #[test]
    fn nonce_count_increments_and_resets_on_a_new_nonce() {
        let first =
            parse_challenge("Digest realm=\"asterisk\", nonce=\"aaa\", qop=\"auth\"").expect("parses");
        let mut client = DigestClient::new();
        let user = creds("100", "secret");
        for expected in ["00000001", "00000002", "00000003"] {
            let header = client
                .authorization(&first, &user, "REGISTER", "sip:pbx.lan", b"", "cn")
                .expect("authorization");
            assert_eq!(field(&header, "nc").as_deref(), Some(expected));
        }
        assert_eq!(client.nonce_count("asterisk", "aaa"), 3);

        let stale = parse_challenge("Digest realm=\"asterisk\", nonce=\"bbb\", qop=\"auth\", stale=true")
            .expect("parses");
        assert!(stale.stale);
        let header = client
            .authorization(&stale, &user, "REGISTER", "sip:pbx.lan", b"", "cn")
            .expect("authorization");
        assert_eq!(field(&header, "nc").as_deref(), Some("00000001"));
        assert_eq!(client.nonce_count("asterisk", "bbb"), 1);
        assert_eq!(client.nonce_count("asterisk", "unknown"), 0);
        assert_eq!(client.nonce_count("other", "aaa"), 0);
    }

    #[test]
    fn nonce_counts_are_per_realm_and_bounded() {
        let mut client = DigestClient::new();
        let user = creds("u", "p");
        let a = parse_challenge("Digest realm=\"a\", nonce=\"same\", qop=auth").expect("parses");
        let b = parse_challenge("Digest realm=\"b\", nonce=\"same\", qop=auth").expect("parses");
        client
            .authorization(&a, &user, "REGISTER", "sip:x", b"", "c")
            .expect("auth");
        client
            .authorization(&a, &user, "REGISTER", "sip:x", b"", "c")
            .expect("auth");
        client
            .authorization(&b, &user, "REGISTER", "sip:x", b"", "c")
            .expect("auth");
        assert_eq!(client.nonce_count("a", "same"), 2);
        assert_eq!(client.nonce_count("b", "same"), 1);
        for i in 0..(MAX_TRACKED_NONCES * 3) {
            let ch =
                parse_challenge(&format!("Digest realm=\"r\", nonce=\"n{i}\", qop=auth")).expect("parses");
            client
                .authorization(&ch, &user, "REGISTER", "sip:x", b"", "c")
                .expect("auth");
            // Keep realm "a" recently used so eviction takes the churned nonces first.
            client
                .authorization(&a, &user, "REGISTER", "sip:x", b"", "c")
                .expect("auth");
        }
        assert!(client.nonces.len() <= MAX_TRACKED_NONCES);
        assert_eq!(
            client.nonce_count("a", "same"),
            2 + (MAX_TRACKED_NONCES as u32) * 3
        );
    }

    #[test]
    fn nonce_count_exhaustion_is_an_error() {
        let mut client = DigestClient::new();
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=auth").expect("parses");
        let user = creds("u", "p");
        client
            .authorization(&ch, &user, "REGISTER", "sip:x", b"", "c")
            .expect("auth");
        if let Some(state) = client.nonces.first_mut() {
            state.count = u32::MAX - 1;
        }
        let header = client
            .authorization(&ch, &user, "REGISTER", "sip:x", b"", "c")
            .expect("auth");
        assert_eq!(field(&header, "nc").as_deref(), Some("ffffffff"));
        assert_eq!(
            client.authorization(&ch, &user, "REGISTER", "sip:x", b"", "c"),
            Err(AuthError::NonceCountExhausted)
        );
    }

    #[test]
    fn userhash_username_is_hash_of_username_and_realm() {
        let ch =
            parse_challenge("Digest realm=\"pbx.lan\", nonce=\"n\", qop=auth, userhash=TRUE").expect("ok");
        let header = DigestClient::new()
            .authorization(&ch, &creds("100", "pw"), "REGISTER", "sip:pbx.lan", b"", "c")
            .expect("auth");
        assert_eq!(
            field(&header, "username"),
            Some(hash_hex(Algorithm::Md5, b"100:pbx.lan"))
        );
        assert!(header.ends_with(", userhash=true"));
    }

    #[test]
    fn values_are_quoted_and_escaped() {
        let ch =
            parse_challenge(r#"Digest realm="say \"hi\" \\ bye", nonce="n\"1", opaque="o\\p", qop=auth"#)
                .expect("parses");
        assert_eq!(ch.realm, r#"say "hi" \ bye"#);
        assert_eq!(ch.nonce, "n\"1");
        assert_eq!(ch.opaque.as_deref(), Some("o\\p"));
        let header = DigestClient::new()
            .authorization(&ch, &creds("a\"b\\c", "p"), "REGISTER", "sip:x", b"", "c\"n")
            .expect("auth");
        assert!(header.contains(r#"username="a\"b\\c""#), "{header}");
        assert!(header.contains(r#"realm="say \"hi\" \\ bye""#), "{header}");
        assert!(header.contains(r#"nonce="n\"1""#), "{header}");
        assert_eq!(field(&header, "username").as_deref(), Some("a\"b\\c"));
        assert_eq!(field(&header, "realm").as_deref(), Some(ch.realm.as_str()));
        assert_eq!(field(&header, "opaque").as_deref(), Some("o\\p"));
        assert_eq!(field(&header, "cnonce").as_deref(), Some("c\"n"));
    }

    #[test]
    fn authorization_refuses_header_injection_and_bad_inputs() {
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=auth").expect("parses");
        let mut client = DigestClient::new();
        let user = creds("u", "p");
        let bad = [
            client.authorization(&ch, &creds("u\r\nX: y", "p"), "REGISTER", "sip:x", b"", "c"),
            client.authorization(&ch, &user, "REGISTER", "sip:x\r\nX: y", b"", "c"),
            client.authorization(&ch, &user, "REG ISTER", "sip:x", b"", "c"),
            client.authorization(&ch, &user, "", "sip:x", b"", "c"),
            client.authorization(&ch, &user, "REGISTER", "", b"", "c"),
            client.authorization(&ch, &user, "REGISTER", "sip:x", b"", ""),
            client.authorization(&ch, &user, "REGISTER", "sip:x", b"", "c\n"),
        ];
        for result in bad {
            assert!(matches!(result, Err(AuthError::InvalidInput(_))), "{result:?}");
        }
        let mut hand_made = ch.clone();
        hand_made.opaque = Some("x\r\nVia: evil".to_string());
        assert!(matches!(
            client.authorization(&hand_made, &user, "REGISTER", "sip:x", b"", "c"),
            Err(AuthError::InvalidInput(_))
        ));
        // Failed calls did not consume nonce counts.
        assert_eq!(client.nonce_count("r", "n"), 0);
    }

    #[test]
    fn parses_asterisk_challenge() {
        let ch =
            parse_challenge("Digest algorithm=MD5, realm=\"asterisk\", nonce=\"1a2b3c4d\"").expect("parses");
        assert_eq!(
            ch,
            Challenge {
                realm: "asterisk".to_string(),
                nonce: "1a2b3c4d".to_string(),
                opaque: None,
                algorithm: Algorithm::Md5,
                qop: vec![],
                stale: false,
                domain: None,
                userhash: false,
            }
        );
        // chan_pjsip style, with opaque and qop.
        let ch = parse_challenge(
            "Digest realm=\"asterisk\",nonce=\"1712345678/0123456789abcdef0123456789abcdef\",\
             opaque=\"5f1e2d3c4b5a6978\",algorithm=md5,qop=\"auth\"",
        )
        .expect("parses");
        assert_eq!(ch.nonce, "1712345678/0123456789abcdef0123456789abcdef");
        assert_eq!(ch.opaque.as_deref(), Some("5f1e2d3c4b5a6978"));
        assert_eq!(ch.qop, vec![Qop::Auth]);
    }

    #[test]
    fn parses_kamailio_challenge() {
        let ch = parse_challenge(
            "Digest realm=\"127.0.0.1\", nonce=\"Z4xQ1mVoW7Ld2b9p8v1Kc0nE3aTfHs6g\", qop=\"auth\"",
        )
        .expect("parses");
        assert_eq!(ch.realm, "127.0.0.1");
        assert_eq!(ch.nonce, "Z4xQ1mVoW7Ld2b9p8v1Kc0nE3aTfHs6g");
        assert_eq!(ch.qop, vec![Qop::Auth]);
        assert_eq!(ch.algorithm, Algorithm::Md5);
    }

    #[test]
    fn parses_freeswitch_challenge() {
        let ch = parse_challenge(
            "Digest realm=\"pbx.lan\", nonce=\"0b7e0c2a-6f5d-4b8e-9a1c-3d2e4f5a6b7c\", algorithm=MD5, qop=\"auth\"",
        )
        .expect("parses");
        assert_eq!(ch.realm, "pbx.lan");
        assert_eq!(ch.nonce, "0b7e0c2a-6f5d-4b8e-9a1c-3d2e4f5a6b7c");
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.qop, vec![Qop::Auth]);
    }

    #[test]
    fn parses_stale_and_flags() {
        for (text, stale) in [
            ("true", true),
            ("TRUE", true),
            ("\"true\"", true),
            ("false", false),
            ("maybe", false),
        ] {
            let ch =
                parse_challenge(&format!("Digest realm=\"r\", nonce=\"n\", stale={text}")).expect("parses");
            assert_eq!(ch.stale, stale, "{text}");
        }
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\"").expect("parses");
        assert!(!ch.stale && !ch.userhash);
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", domain=\"sip:pbx.lan sip:alt.lan\"")
            .expect("ok");
        assert_eq!(ch.domain.as_deref(), Some("sip:pbx.lan sip:alt.lan"));
    }

    #[test]
    fn parses_algorithm_names_case_insensitively() {
        for (text, algorithm) in [
            ("MD5", Algorithm::Md5),
            ("md5", Algorithm::Md5),
            ("md5-sess", Algorithm::Md5Sess),
            ("MD5-SESS", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("\"SHA-256\"", Algorithm::Sha256),
            ("sha-256-sess", Algorithm::Sha256Sess),
            ("SHA-512-256", Algorithm::Sha512_256),
            ("sha-512-256-SESS", Algorithm::Sha512_256Sess),
        ] {
            let ch = parse_challenge(&format!("Digest realm=\"r\", nonce=\"n\", algorithm={text}"))
                .expect("parses");
            assert_eq!(ch.algorithm, algorithm, "{text}");
            assert_eq!(algorithm.as_str().parse::<Algorithm>(), Ok(algorithm));
        }
    }

    #[test]
    fn sha256_challenge_round_trip() {
        let ch =
            parse_challenge("Digest realm=\"sip.example\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"")
                .expect("parses");
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        let header = DigestClient::new()
            .authorization(
                &ch,
                &creds("bob", "zanzibar"),
                "REGISTER",
                "sip:sip.example",
                b"",
                "xyz",
            )
            .expect("auth");
        let response = field(&header, "response").expect("response");
        assert_eq!(response.len(), 64);
        assert!(header.contains(", algorithm=SHA-256,"));
    }

    #[test]
    fn rejects_unknown_algorithm_and_qop() {
        assert_eq!(
            parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=AKAv1-MD5"),
            Err(AuthError::UnsupportedAlgorithm("AKAv1-MD5".to_string()))
        );
        assert_eq!(
            parse_challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1"),
            Err(AuthError::UnsupportedAlgorithm("SHA-1".to_string()))
        );
        assert_eq!(
            parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\""),
            Err(AuthError::UnsupportedQop("auth-conf".to_string()))
        );
        // Unknown entries next to known ones are skipped; an empty list means no qop.
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf, auth-int,auth-int\"")
            .expect("ok");
        assert_eq!(ch.qop, vec![Qop::AuthInt]);
        let ch = parse_challenge("Digest realm=\"r\", nonce=\"n\", qop=\"\"").expect("ok");
        assert!(ch.qop.is_empty());
    }

    #[test]
    fn tolerates_odd_whitespace_and_case() {
        let ch = parse_challenge(
            "  digest   realm = \"r\"\t,\r\n\tnonce=\r\n  \"n\" ,qop =\"auth\",\r\n opaque=\"o\"  \r\n",
        )
        .expect("parses");
        assert_eq!((ch.realm.as_str(), ch.nonce.as_str()), ("r", "n"));
        assert_eq!(ch.qop, vec![Qop::Auth]);
        assert_eq!(ch.opaque.as_deref(), Some("o"));
        let ch = parse_challenge("DIGEST REALM=\"r\", NoNcE=\"n\", ,, QOP=AUTH,").expect("parses");
        assert_eq!((ch.realm.as_str(), ch.nonce.as_str()), ("r", "n"));
        assert_eq!(ch.qop, vec![Qop::Auth]);
        // A fold inside a quoted string becomes its whitespace.
        let ch = parse_challenge("Digest realm=\"a\r\n b\", nonce=\"n\"").expect("parses");
        assert_eq!(ch.realm, "a b");
        // Unquoted base64 nonce.
        let ch = parse_challenge("Digest realm=r, nonce=ab+c/d==").expect("parses");
        assert_eq!(ch.nonce, "ab+c/d==");
    }

    #[test]
    fn unknown_params_ignored_and_first_duplicate_wins() {
        let ch = parse_challenge(
            "Digest realm=\"first\", charset=UTF-8, nonce=\"n1\", realm=\"second\", nonce=\"n2\", x-custom=\"v\"",
        )
        .expect("parses");
        assert_eq!(ch.realm, "first");
        assert_eq!(ch.nonce, "n1");
    }

    #[test]
    fn missing_required_params_are_errors() {
        assert_eq!(
            parse_challenge("Digest realm=\"r\""),
            Err(AuthError::MissingParam("nonce"))
        );
        assert_eq!(
            parse_challenge("Digest nonce=\"n\""),
            Err(AuthError::MissingParam("realm"))
        );
        assert_eq!(parse_challenge("Digest"), Err(AuthError::MissingParam("realm")));
        assert_eq!(
            parse_challenge("Digest   "),
            Err(AuthError::MissingParam("realm"))
        );
    }

    #[test]
    fn other_schemes_and_garbage_are_errors() {
        assert_eq!(
            parse_challenge("Basic realm=\"WallyWorld\""),
            Err(AuthError::NotDigest)
        );
        assert_eq!(parse_challenge("Bearer abc"), Err(AuthError::NotDigest));
        assert_eq!(
            parse_challenge("Digestive realm=\"r\", nonce=\"n\""),
            Err(AuthError::NotDigest)
        );
        for input in [
            "",
            "   ",
            "\r\n",
            ",",
            "\"Digest\"",
            "Digest,realm=\"r\",nonce=\"n\"",
            "Digest realm",
            "Digest realm=",
            "Digest realm=\"r\" nonce=\"n\"",
            "Digest realm=\"unterminated, nonce=\"n",
            "Digest realm=\"r\\",
            "Digest realm=\"r\", nonce=\"a\rb\"",
            "Digest realm=\"r\", nonce=\"a\nb\"",
            "Digest realm=\"r\", nonce=\"a\u{0}b\"",
            "Digest realm=\"r\"\r\nnonce=\"n\"",
            "Digest realm=r\"x\", nonce=n",
            "Digest realm=\"r\", =\"n\"",
            "Digest \u{1F600}=\"r\"",
            "Digest realm=\"\u{e9}t\u{e9}\", nonce=\u{fffd}\u{0}",
            "\u{0}\u{1}\u{2}\u{ff}",
            "Dig\u{e9}st realm=\"r\"",
        ] {
            assert!(parse_challenge(input).is_err(), "{input:?} should not parse");
        }
        // Non-ASCII inside quoted strings is fine (UTF8-NONASCII in RFC 3261 qdtext).
        let ch = parse_challenge("Digest realm=\"\u{e9}t\u{e9} \u{65e5}\", nonce=\"n\"").expect("parses");
        assert_eq!(ch.realm, "\u{e9}t\u{e9} \u{65e5}");
    }

    #[test]
    fn error_messages_are_human_and_bounded() {
        assert_eq!(
            AuthError::NotDigest.to_string(),
            "authentication scheme is not Digest"
        );
        assert_eq!(
            AuthError::MissingParam("nonce").to_string(),
            "digest challenge is missing the `nonce` parameter"
        );
        let long = "X".repeat(10_000);
        let err =
            parse_challenge(&format!("Digest realm=r, nonce=n, algorithm={long}")).expect_err("unknown");
        assert!(err.to_string().len() < 200, "{err}");
        let err = parse_challenge("Digest realm=\"r\" nonce=\"n\"").expect_err("malformed");
        assert_eq!(
            err,
            AuthError::Malformed("expected `,` between parameters at byte 17".to_string())
        );
        let debug = format!("{:?}", creds("alice", "hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    /// Checks every property the fuzz target checks, on one input.
    fn exercise(input: &str) {
        if let Ok(ch) = parse_challenge(input) {
            for value in [&ch.realm, &ch.nonce] {
                assert!(!value.chars().any(is_forbidden_control), "{input:?}");
            }
            let mut client = DigestClient::new();
            for _ in 0..2 {
                match client.authorization(&ch, &creds("100", "pw"), "REGISTER", "sip:pbx.lan", b"x", "abc") {
                    Ok(header) => {
                        assert!(!header.contains(['\r', '\n']), "{input:?} -> {header:?}");
                        assert!(parse_digest_params(&header).is_ok(), "{input:?} -> {header:?}");
                    }
                    Err(err) => assert_eq!(err, AuthError::MissingParam("qop"), "{input:?}"),
                }
            }
        }
    }

    #[test]
    fn parse_challenge_never_panics_on_pseudo_random_input() {
        const ALPHABET: &[&str] = &[
            "Digest ",
            "digest",
            "Basic ",
            "realm",
            "nonce",
            "qop",
            "algorithm",
            "opaque",
            "stale",
            "userhash",
            "domain",
            "=",
            "=",
            "\"",
            "\"",
            "\\",
            ",",
            ",",
            " ",
            " ",
            "\t",
            "\r\n ",
            "\r\n",
            "\r",
            "\n",
            "auth",
            "auth-int",
            "MD5",
            "SHA-256",
            "SHA-512-256-sess",
            "true",
            "a",
            "Z",
            "0",
            "/",
            "+",
            "\u{0}",
            "\u{7f}",
            "\u{e9}",
            "\u{65e5}",
            "\u{1F600}",
            "\u{fffd}",
            "\u{200b}",
        ];
        const SEEDS: &[&str] = &[
            "Digest realm=\"asterisk\", nonce=\"1a2b3c4d\", algorithm=MD5, qop=\"auth,auth-int\"",
            "Digest realm=\"a\\\"b\", nonce=\"n\", opaque=\"o\", stale=TRUE, userhash=true, algorithm=SHA-256-sess",
            "digest\r\n realm=\"r\",\r\n\tnonce=\"n\", qop=auth",
        ];
        let mut rng = crate::testing::TestRng::seeded(0x9E37_79B9_7F4A_7C15);
        for _ in 0..4000 {
            let mut s = String::new();
            for _ in 0..rng.below(40) {
                s.push_str(ALPHABET.get(rng.below(ALPHABET.len())).copied().unwrap_or(""));
            }
            exercise(&s);
        }
        // Mutations of realistic headers: random char deletions, insertions and replacements.
        for _ in 0..4000 {
            let seed = SEEDS.get(rng.below(SEEDS.len())).copied().unwrap_or("");
            let mut chars: Vec<char> = seed.chars().collect();
            for _ in 0..=rng.below(4) {
                let at = rng.below(chars.len() + 1);
                let piece: Vec<char> = ALPHABET
                    .get(rng.below(ALPHABET.len()))
                    .copied()
                    .unwrap_or("")
                    .chars()
                    .collect();
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => {
                        chars.splice(at..=at, piece);
                    }
                    _ => {
                        chars.splice(at..at, piece);
                    }
                }
            }
            exercise(&chars.into_iter().collect::<String>());
        }
        // Arbitrary bytes through lossy UTF-8, as the fuzz target does.
        for _ in 0..2000 {
            let len = rng.below(64);
            let bytes: Vec<u8> = rng.bytes(len);
            exercise(&String::from_utf8_lossy(&bytes));
            let mut prefixed = b"Digest ".to_vec();
            prefixed.extend_from_slice(&bytes);
            exercise(&String::from_utf8_lossy(&prefixed));
        }
    }
}
