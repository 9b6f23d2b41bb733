//! Fuzz `parse_challenge` (arbitrary bytes, lossy UTF-8) and, for whatever parses, build
//! authorizations with fixed credentials: nothing may panic, and no output may carry a line break.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_assistant::sip::auth::{parse_challenge, Credentials, DigestClient};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(challenge) = parse_challenge(&text) else {
        return;
    };
    let creds = Credentials {
        username: "100".to_string(),
        password: "secret".to_string(),
    };
    let mut client = DigestClient::new();
    // Twice, so the nonce-count path for a known nonce runs too.
    for _ in 0..2 {
        if let Ok(value) =
            client.authorization(&challenge, &creds, "REGISTER", "sip:pbx.lan", data, "0a4f113b")
        {
            assert!(
                !value.contains(['\r', '\n']),
                "line break in authorization value: {value:?}"
            );
        }
    }
});
