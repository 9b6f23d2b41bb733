//! The real `sip-assistant run` binary as the binary tests start it: settings from the environment
//! (API and SIP on loopback port 0, data under the test's folder), stderr collected, the API port
//! read from the log; signals go to its PID only, and it is killed if a test ends early.
//!
//! Needs `#[path = "support/harness.rs"] mod harness;` beside it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::wait_for;

/// Kills the binary we started (by its own handle) if the test ends early.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One request to the API on 127.0.0.1:`port`: (status, body), or (0, "") when it cannot be
/// reached.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
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
pub struct Service {
    pub child: Running,
    pub log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub api: u16,
}

impl Service {
    /// Start it in `dir` (data in `dir/data`, `calls.shutdown_grace_seconds` 2) with `env` on top,
    /// and wait until its API listens.
    pub fn start(dir: &Path, env: &[(&str, String)]) -> Service {
        // A copy of the binary may be named instead (a target directory shared by several
        // builds can replace the one cargo built for this test before it runs).
        let exe = std::env::var_os("SIP_ASSISTANT_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sip-assistant").into());
        let mut cmd = Command::new(exe);
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("SIP_ASSISTANT__API__LISTEN", "127.0.0.1:0")
            .env("SIP_ASSISTANT__SIP__LOCAL_PORT", "0")
            .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.join("data"))
            .env("SIP_ASSISTANT__CALLS__SHUTDOWN_GRACE_SECONDS", "2")
            // Tests dial SIPp by URI on loopback and receive webhooks on loopback.
            .env("SIP_ASSISTANT__CALLS__DIAL_ALLOW", "sip:*@127.0.0.1:*,1???")
            .env("SIP_ASSISTANT__WEBHOOK__ALLOW_HOSTS", "127.0.0.1");
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

    /// Its stderr so far.
    pub fn lines(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    /// Send signal `name` (`TERM`, `HUP`, ...) to it, by its PID.
    pub fn signal(&self, name: &str) {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(&pid)
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{name} {pid}: {sent}");
    }

    /// Wait up to `timeout` for it to exit (it is killed if it does not): whether it exited by
    /// itself, its status, and its whole stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> (bool, ExitStatus, String) {
        let exited = wait_for(timeout, || matches!(self.child.0.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = self.child.0.kill();
        }
        let status = self.child.0.wait().expect("wait");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader");
        }
        (exited, status, self.lines())
    }
}
