//! Route answers when the store cannot make a change durable (fault injected in the store).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tide::http::{Method, Request, Response, Url};

use crate::app::App;
use crate::call::{ActiveCall, CallEngine, CallOutcome};
use crate::config::Config;
use crate::scheduler::wait_until;

/// Holds every call until it is cancelled; remembers which calls it placed.
#[derive(Default)]
struct Recorder {
    placed: Mutex<Vec<String>>,
}

impl Recorder {
    fn placed(&self) -> Vec<String> {
        self.placed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl CallEngine for Recorder {
    fn place_call(&self, call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>> {
        self.placed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call.call_id.clone());
        Box::pin(async move {
            call.cancel.cancelled().await;
            CallOutcome::failed("cancelled")
        })
    }
}

fn start(dir: &std::path::Path, engine: Arc<Recorder>) -> App {
    let mut config = Config::default();
    config.store.data_dir = dir.to_path_buf();
    config.calls.max_concurrent = 1;
    config.calls.shutdown_grace_seconds = 0;
    App::start(config, engine).expect("app")
}

fn call(app: &App, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let server = crate::api::router(app.api_state());
    let mut req = Request::new(
        method,
        Url::parse(&format!("http://localhost{path}")).expect("url"),
    );
    if let Some(b) = body {
        req.set_body(b.to_string());
        req.set_content_type(tide::http::mime::JSON);
    }
    let mut res: Response = smol::block_on(server.respond(req)).expect("respond");
    let text = smol::block_on(res.body_string()).expect("body");
    (
        u16::from(res.status()),
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn post(app: &App, id: &str) -> (u16, Value) {
    let body = serde_json::json!({"message": "m", "extension": "1001", "call_id": id});
    call(app, Method::Post, "/call", Some(body))
}

#[test]
fn a_cancellation_that_was_not_stored_answers_503_with_a_detail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(Recorder::default());
    let app = start(dir.path(), engine.clone());
    assert_eq!(post(&app, "busy").0, 200);
    let started = || {
        app.store
            .get_call("busy")
            .ok()
            .flatten()
            .is_some_and(|r| r.started_at.is_some())
    };
    assert!(smol::block_on(wait_until(started, Duration::from_secs(5))));
    assert_eq!(post(&app, "waits").0, 200);
    app.store.fail_next_flushes(1);
    let (status, body) = call(&app, Method::Delete, "/call/waits", None);
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("cancellation could not be stored"), "{detail}");
    smol::block_on(app.shutdown());
}

#[test]
fn a_call_that_was_not_stored_answers_503_and_is_not_dialled_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let engine = Arc::new(Recorder::default());
        let app = start(dir.path(), engine.clone());
        app.store.fail_next_flushes(1);
        let (status, body) = post(&app, "unsaved");
        assert_eq!(status, 503, "{body}");
        assert!(body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cannot store the call")));
        assert_eq!(call(&app, Method::Get, "/calls/unsaved", None).0, 404);
        smol::block_on(app.shutdown());
        assert!(engine.placed().is_empty());
    }
    let engine = Arc::new(Recorder::default());
    let app = start(dir.path(), engine.clone());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        engine.placed().is_empty(),
        "dialled after restart: {:?}",
        engine.placed()
    );
    assert!(app.store.get_call("unsaved").expect("get").is_none());
    smol::block_on(app.shutdown());
}
