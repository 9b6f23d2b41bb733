//! Test harness shared by the integration tests (included with `#[path]`): a call engine the test
//! controls, an app on a temporary data dir, in-process HTTP against the tide router, and a real
//! webhook receiver process (`webhook_receiver.py`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use sip_assistant::api::{self, ApiState};
use sip_assistant::app::App;
use sip_assistant::call::{ActiveCall, CallEngine, CallOutcome, ConfirmedBy, FinalStatus};
use sip_assistant::config::{Config, StringList};

/// An engine whose calls ring and then wait until the test releases them (or they are cancelled).
#[derive(Default)]
pub struct HoldEngine {
    waiting: Mutex<HashMap<String, async_channel::Sender<CallOutcome>>>,
    started: Mutex<Vec<String>>,
}

impl HoldEngine {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Ids of calls placed so far, in order.
    pub fn started(&self) -> Vec<String> {
        self.started.lock().expect("lock").clone()
    }

    /// End a held call with `outcome`; false if that call is not held.
    pub fn release(&self, id: &str, outcome: CallOutcome) -> bool {
        let tx = self.waiting.lock().expect("lock").remove(id);
        tx.is_some_and(|tx| tx.try_send(outcome).is_ok())
    }

    pub fn wait_started(&self, id: &str) {
        assert!(
            wait_for(Duration::from_secs(15), || self.started().iter().any(|s| s == id)),
            "call {id} never started; started: {:?}",
            self.started()
        );
    }
}

impl CallEngine for HoldEngine {
    fn place_call(&self, call: ActiveCall) -> Pin<Box<dyn std::future::Future<Output = CallOutcome> + Send>> {
        let (tx, rx) = async_channel::bounded(1);
        self.waiting
            .lock()
            .expect("lock")
            .insert(call.call_id.clone(), tx);
        self.started.lock().expect("lock").push(call.call_id.clone());
        call.events.ringing();
        Box::pin(async move {
            let released = async {
                rx.recv()
                    .await
                    .unwrap_or_else(|_| CallOutcome::failed("engine dropped"))
            };
            let cancelled = async {
                call.cancel.cancelled().await;
                tracing::debug!(call_id = %call.call_id, "hold engine saw the cancel");
                CallOutcome::failed("hung up on request")
            };
            released.or(cancelled).await
        })
    }
}

/// A completed call outcome with a played message.
pub fn completed() -> CallOutcome {
    CallOutcome {
        status: FinalStatus::Completed,
        error: None,
        message_played: true,
        choice_response: Some("confirmed".into()),
        choice_raw_text: Some("yes I confirm".into()),
        confirmed_by: Some(ConfirmedBy::Speech),
        media: None,
    }
}

pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// A config for tests: data in `dir`, fast webhook retries, loopback only.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.api.listen = "127.0.0.1:0".into();
    c.store.data_dir = dir.to_path_buf();
    c.webhook.initial_backoff_ms = 50;
    c.webhook.max_backoff_seconds = 1;
    c.webhook.connect_timeout_ms = 1000;
    c.webhook.request_timeout_ms = 3000;
    c.calls.shutdown_grace_seconds = 1;
    // Tests dial SIPp and phones by URI on loopback and receive webhooks on loopback.
    c.calls.dial_allow = Some(StringList(vec!["sip:*@127.0.0.1:*".into(), "1???".into()]));
    c.webhook.allow_hosts = StringList(vec!["127.0.0.1".into()]);
    c
}

/// Start an app, retrying while a previous instance still holds the store's lock.
pub fn start_app(config: Config, engine: Arc<dyn CallEngine>) -> App {
    if std::env::var_os("TEST_LOG").is_some() {
        sip_assistant::logging::init("debug");
    }
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match App::start(config.clone(), engine.clone()) {
            Ok(app) => return app,
            Err(e) if Instant::now() < end => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("app did not start: {e}"),
        }
    }
}

/// One in-process HTTP exchange with the router.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {}", self.text))
            .to_string()
    }
}

pub fn request(
    server: &tide::Server<ApiState>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Reply {
    request_from(server, None, method, path, body, headers)
}

/// As [`request`], as if it came from the client address `peer` (rate limits apply per client).
pub fn request_from(
    server: &tide::Server<ApiState>,
    peer: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Reply {
    use tide::http::{Method, Request, Response, Url};
    let method: Method = method.parse().expect("method");
    let mut req = Request::new(
        method,
        Url::parse(&format!("http://localhost{path}")).expect("url"),
    );
    req.set_peer_addr(peer);
    for (k, v) in headers {
        req.insert_header(*k, *v);
    }
    if let Some(b) = body {
        req.set_body(b.to_vec());
        req.set_content_type(tide::http::mime::JSON);
    }
    let mut res: Response = smol::block_on(server.respond(req)).expect("respond");
    let text = smol::block_on(res.body_string()).expect("body");
    Reply {
        status: u16::from(res.status()),
        content_type: res
            .content_type()
            .map(|m| m.essence().to_string())
            .unwrap_or_default(),
        headers: res
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.last().as_str().to_string()))
            .collect(),
        text,
    }
}

pub fn router(app: &App) -> tide::Server<ApiState> {
    api::router(app.api_state())
}

/// The real webhook receiver, a Python process we start and stop by PID.
pub struct Receiver {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Receiver {
    /// `fail` first requests get `fail_status` (with `Retry-After: retry_after` if given).
    pub fn start(
        dir: &Path,
        fail: u32,
        fail_status: u16,
        retry_after: Option<&str>,
        secret: Option<&str>,
    ) -> Self {
        Self::start_with(dir, fail, fail_status, retry_after, secret, &[])
    }

    /// As [`Receiver::start`], with extra command-line arguments for the receiver script.
    pub fn start_with(
        dir: &Path,
        fail: u32,
        fail_status: u16,
        retry_after: Option<&str>,
        secret: Option<&str>,
        extra: &[&str],
    ) -> Self {
        let log = dir.join(format!("receiver-{}.jsonl", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--log")
            .arg(&log)
            .arg("--fail")
            .arg(fail.to_string())
            .arg("--fail-status")
            .arg(fail_status.to_string())
            .arg("--max-seconds")
            .arg("120");
        if let Some(ra) = retry_after {
            cmd.arg("--retry-after").arg(ra);
        }
        if let Some(s) = secret {
            cmd.arg("--secret").arg(s);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the webhook receiver");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("receiver prints its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("receiver said {line:?}"));
        Self { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request received so far.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("receiver log line"))
            .collect()
    }

    pub fn wait_entries(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_for(timeout, || self.entries().len() >= n);
        self.entries()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The call record `GET /calls/{call_id}` returns.
pub fn record(app: &App, call_id: &str) -> serde_json::Value {
    request(&router(app), "GET", &format!("/calls/{call_id}"), None, &[]).json()
}

/// A record's timeline as (event, detail) pairs, oldest first.
pub fn timeline(rec: &serde_json::Value) -> Vec<(String, String)> {
    rec["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| {
                    (
                        e["event"].as_str().unwrap_or_default().to_string(),
                        e["detail"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
