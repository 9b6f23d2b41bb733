//! The real `sip-assistant run` binary, end to end: it starts with settings from the environment,
//! answers `/health`, places a call to a SIPp peer that answers busy, delivers the signed webhook
//! over HTTPS (native TLS, a real Python receiver with a certificate we made) and stops cleanly on
//! SIGTERM.

use crate::binary;
use crate::harness;
use crate::peers;

use std::process::{Command, Stdio};
use std::time::Duration;

use binary::{http, Service};
use harness::{wait_for, Receiver};
use peers::{Sipp, SippScenario};

const SECRET: &str = "e2e-webhook-secret-0123456789";

#[test]
fn the_binary_calls_delivers_over_https_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (apt-get install openssl)");
    assert!(made.success());
    let receiver = Receiver::start_with(
        dir.path(),
        0,
        503,
        None,
        Some(SECRET),
        &[
            "--tls-cert",
            cert.to_str().expect("utf8"),
            "--tls-key",
            key.to_str().expect("utf8"),
        ],
    );
    let mut busy = Sipp::uas(SippScenario::Busy);

    let mut service = Service::start(
        dir.path(),
        &[
            ("SSL_CERT_FILE", cert.display().to_string()),
            ("SIP_ASSISTANT__WEBHOOK__SECRET", SECRET.to_string()),
        ],
    );
    let api = service.api;

    let (status, body) = http(api, "GET", "/health", "");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"sip_registered":false,"status":"healthy"}"#)
    );

    let call = format!(
        r#"{{"message":"Hello","extension":"{}","callback_url":"https://127.0.0.1:{}/hook","call_id":"e2e-1"}}"#,
        busy.uri("uas"),
        receiver.port
    );
    let (status, body) = http(api, "POST", "/call", &call);
    assert_eq!(status, 200, "{body}");
    let hooks = receiver.wait_entries(1, Duration::from_secs(20));
    assert_eq!(hooks.len(), 1, "no webhook over HTTPS; log: {}", service.lines());
    assert_eq!(hooks[0]["signature_valid"], true);
    let payload: serde_json::Value =
        serde_json::from_str(hooks[0]["body"].as_str().expect("body")).expect("json");
    assert_eq!(payload["call_id"], "e2e-1");
    assert_eq!(payload["status"], "busy", "{payload}");
    assert_eq!(payload["error"], "486 Busy Here");
    assert_eq!(
        busy.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        busy.messages()
    );
    let (_, record) = http(api, "GET", "/calls/e2e-1", "");
    let record: serde_json::Value = serde_json::from_str(&record).expect("record");
    assert!(
        wait_for(Duration::from_secs(5), || {
            let (_, r) = http(api, "GET", "/calls/e2e-1", "");
            r.contains(r#""state":"delivered""#)
        }),
        "{record}"
    );

    // SIGTERM: a clean exit with status 0.
    service.signal("TERM");
    let (exited, status, lines) = service.wait_exit(Duration::from_secs(15));
    assert!(exited && status.success(), "exit {status:?}\n{lines}");
    assert!(
        lines.contains("shutting down") && lines.contains("stopped"),
        "{lines}"
    );
}
