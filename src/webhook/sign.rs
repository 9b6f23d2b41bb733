//! `Webhook-Signature`: `v1,` + base64(HMAC-SHA256(secret, "<id>.<timestamp>.<body>")).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; the error arm cannot happen.
    let mut mac =
        HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Webhook-Signature` header value.
pub fn sign(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
}

/// Check a header value (which may list several space-separated signatures) in constant time.
pub fn verify(secret: &[u8], id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
    header.split_whitespace().any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|tag| mac(secret, id, timestamp, body).verify_slice(&tag).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?") through our framing: the
    /// message "what.1.do ya want for nothing?" is not the RFC's, so check the MAC primitive on the
    /// RFC vector first, then the framing by recomputing it by hand.
    #[test]
    fn hmac_matches_rfc4231_and_framing_is_id_dot_ts_dot_body() {
        let mut m = HmacSha256::new_from_slice(b"Jefe").expect("key");
        m.update(b"what do ya want for nothing?");
        let hex: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );

        let mut m = HmacSha256::new_from_slice(b"secret").expect("key");
        m.update(b"wh-1.1700000000.{\"a\":1}");
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
        );
        assert_eq!(sign(b"secret", "wh-1", 1_700_000_000, b"{\"a\":1}"), expected);
    }

    #[test]
    fn verify_accepts_own_and_rejects_tampering() {
        let s = sign(b"k", "wh-x", 42, b"body");
        assert!(verify(b"k", "wh-x", 42, b"body", &s));
        assert!(verify(b"k", "wh-x", 42, b"body", &format!("v1,AAAA {s}")));
        assert!(!verify(b"k", "wh-x", 43, b"body", &s));
        assert!(!verify(b"k", "wh-x", 42, b"bodY", &s));
        assert!(!verify(b"other", "wh-x", 42, b"body", &s));
        assert!(!verify(b"k", "wh-x", 42, b"body", "v1,not-base64!"));
    }
}
