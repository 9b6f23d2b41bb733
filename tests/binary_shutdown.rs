//! Graceful shutdown of the real `sip-assistant run` binary with a call ringing at a SIPp peer that
//! never answers, then SIGTERM. During the grace period (2 s) a new `POST /call` gets 503; when the
//! grace runs out the call is CANCELled and ends `failed` with "service shutting down", and its
//! webhook is delivered before the process exits with code 0; the store counted its flushes.
//! With a registrar (a real Kamailio) the registration is removed too (REGISTER Expires: 0, seen in
//! Kamailio's location table).
//!
//! Until the speech engines land an answered call is hung up at once, so "a call that stays up" is
//! a call that keeps ringing (SIPp `RingForever`, ring_timeout 60 s).

#[path = "support/harness.rs"]
mod harness;
#[path = "support/peers.rs"]
mod peers;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{wait_for, Receiver};
use peers::{Kamailio, Sipp, SippScenario};

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
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let sent = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if sent.is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
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

/// The binary we started, its stderr lines and its API port.
struct Service {
    child: Running,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    api: u16,
}

impl Service {
    fn start(dir: &Path, env: &[(&str, String)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-assistant"));
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("SIP_ASSISTANT__API__LISTEN", "127.0.0.1:0")
            .env("SIP_ASSISTANT__SIP__LOCAL_PORT", "0")
            .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.join("data"))
            .env("SIP_ASSISTANT__CALLS__SHUTDOWN_GRACE_SECONDS", "2");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .current_dir(dir)
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
        Service {
            child,
            log,
            reader: Some(reader),
            api,
        }
    }

    fn lines(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    /// Place a call to `uri` that will still ring at SIGTERM, and wait until it rings.
    fn place_ringing_call(&self, uri: &str, hook: &str, peer: &Sipp) {
        let call = format!(
            r#"{{"message":"Hold on","extension":"{uri}","callback_url":"{hook}","call_id":"held-1","ring_timeout":60}}"#
        );
        let (status, body) = http(self.api, "POST", "/call", &call);
        assert_eq!(status, 200, "{body}");
        assert!(
            wait_for(Duration::from_secs(15), || {
                http(self.api, "GET", "/calls/held-1", "")
                    .1
                    .contains(r#""status":"ringing""#)
            }),
            "the call never rang: {}\n{}\n{}",
            http(self.api, "GET", "/calls/held-1", "").1,
            self.lines(),
            peer.messages()
        );
    }

    /// SIGTERM; assert 503 for a new call during the grace, exit code 0 after at least the grace;
    /// returns the log.
    fn sigterm_and_expect_clean_exit(&mut self) -> String {
        let pid = self.child.0.id().to_string();
        let sigterm_at = Instant::now();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(killed.success());
        let late = r#"{"message":"too late","extension":"1001","call_id":"late-1"}"#;
        let mut refused = (0, String::new());
        assert!(
            wait_for(Duration::from_secs(2), || {
                refused = http(self.api, "POST", "/call", late);
                refused.0 == 503
            }),
            "no 503 during the grace period: {refused:?}"
        );
        assert!(refused.1.contains("shutting down"), "503 body: {}", refused.1);
        let exited = wait_for(Duration::from_secs(25), || {
            matches!(self.child.0.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.0.kill();
        }
        let status = self.child.0.wait().expect("wait");
        let took = sigterm_at.elapsed();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader");
        }
        let lines = self.lines();
        assert!(exited && status.success(), "exit {status:?}\n{lines}");
        assert!(
            took >= Duration::from_millis(1900),
            "the grace period was not given ({took:?})\n{lines}"
        );
        assert!(
            lines.contains("stopped") && lines.contains("store_flushes="),
            "{lines}"
        );
        lines
    }
}

fn assert_shutdown_webhook(receiver: &Receiver, context: &str) {
    let hooks = receiver.entries();
    assert_eq!(hooks.len(), 1, "webhooks: {hooks:?}\n{context}");
    let payload: serde_json::Value =
        serde_json::from_str(hooks[0]["body"].as_str().expect("body")).expect("json");
    assert_eq!(payload["call_id"], "held-1");
    assert_eq!(payload["status"], "failed", "{payload}");
    assert_eq!(payload["error"], "service shutting down", "{payload}");
}

#[test]
fn sigterm_refuses_new_calls_cancels_the_ringing_call_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let mut ringing = Sipp::uas(SippScenario::RingForever);
    let mut service = Service::start(dir.path(), &[]);
    service.place_ringing_call(&ringing.uri("uas"), &receiver.url("/hook"), &ringing);
    let lines = service.sigterm_and_expect_clean_exit();
    assert_shutdown_webhook(&receiver, &lines);
    // The peer saw the whole RingForever scenario: CANCEL -> 200, 487 -> ACK.
    assert_eq!(
        ringing.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        ringing.messages()
    );
    assert!(
        !lines.contains("did not stop in time"),
        "the CANCEL path was not taken:\n{lines}"
    );
}

/// Through Kamailio the SIPp 487 loses its Via (SIPp builds it from the proxy's hop-by-hop CANCEL,
/// so the proxy strips the only Via): the call never hears its 487, which is exactly the case of a
/// PBX that never confirms a CANCEL. The drain then makes the call final itself.
#[test]
fn sigterm_with_a_registrar_unregisters_and_ends_a_call_the_pbx_never_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(dir.path(), 0, 503, None, None);
    let pbx = Kamailio::start(&[("1050", "shutdown-pass")], 60_000);
    let ringing = Sipp::uas(SippScenario::RingForever);
    let mut service = Service::start(
        dir.path(),
        &[
            ("SIP_ASSISTANT__SIP__USER", "1050".into()),
            ("SIP_ASSISTANT__SIP__PASSWORD", "shutdown-pass".into()),
            ("SIP_ASSISTANT__SIP__REGISTRAR", format!("127.0.0.1:{}", pbx.port)),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(15), || {
            http(service.api, "GET", "/health", "")
                .1
                .contains(r#""sip_registered":true"#)
        }),
        "not registered; kamailio:\n{}",
        pbx.ladder()
    );
    assert!(pbx.lookup("1050").is_some(), "{}", pbx.ladder());
    service.place_ringing_call(&ringing.uri("uas"), &receiver.url("/hook"), &ringing);
    let lines = service.sigterm_and_expect_clean_exit();
    assert_shutdown_webhook(&receiver, &format!("{lines}\n--- kamailio ---\n{}", pbx.ladder()));
    // De-registration: Kamailio no longer has a contact for the extension, and saw the REGISTER
    // after the CANCEL.
    assert!(
        wait_for(Duration::from_secs(5), || pbx.lookup("1050").is_none()),
        "still registered after exit:\n{}",
        pbx.ladder()
    );
    let ladder = pbx.ladder();
    let cancel = ladder.find("IN  CANCEL").expect("CANCEL seen by the proxy");
    assert!(
        ladder[cancel..].contains("IN  REGISTER"),
        "no REGISTER after the CANCEL:\n{ladder}"
    );
}
