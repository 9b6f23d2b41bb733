//! The real `sip-assistant run` binary, end to end: it starts with settings from the environment,
//! answers `/health`, places a call to a SIPp peer that answers busy, delivers the signed webhook
//! over HTTPS (native TLS, a real Python receiver with a certificate we made) and stops cleanly on
//! SIGTERM.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/peers.rs"]
mod peers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{wait_for, Receiver};
use peers::{Sipp, SippScenario};

const SECRET: &str = "e2e-webhook-secret-0123456789";

/// Kills the binary we started (by its own handle) if the test ends early.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

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

    let child = Command::new(env!("CARGO_BIN_EXE_sip-assistant"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SSL_CERT_FILE", &cert)
        .env("RUST_LOG", "info")
        .env("SIP_ASSISTANT__API__LISTEN", "127.0.0.1:0")
        .env("SIP_ASSISTANT__SIP__LOCAL_PORT", "0")
        .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.path().join("data"))
        .env("SIP_ASSISTANT__WEBHOOK__SECRET", SECRET)
        .env("SIP_ASSISTANT__CALLS__SHUTDOWN_GRACE_SECONDS", "2")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut child = Running(child);
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.0.stderr.take().expect("stderr");
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    let port = || {
        log.lock().expect("lock").iter().find_map(|l| {
            let rest = l.split("listening on http://").nth(1)?;
            rest.split_whitespace()
                .next()?
                .rsplit(':')
                .next()?
                .parse::<u16>()
                .ok()
        })
    };
    assert!(
        wait_for(Duration::from_secs(15), || port().is_some()),
        "no API: {:?}",
        log.lock()
    );
    let api = port().expect("port");

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
    assert_eq!(hooks.len(), 1, "no webhook over HTTPS; log: {:#?}", log.lock());
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
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    let exited = wait_for(Duration::from_secs(15), || {
        matches!(child.0.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.0.kill();
    }
    let status = child.0.wait().expect("wait");
    reader.join().expect("reader");
    let lines = log.lock().expect("lock").join("\n");
    assert!(exited && status.success(), "exit {status:?}\n{lines}");
    assert!(
        lines.contains("shutting down") && lines.contains("stopped"),
        "{lines}"
    );
}
