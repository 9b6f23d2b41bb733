//! The REST API in process (tide `Server::respond`): the seed's examples with the seed's response
//! shapes, every validation rule with its detail text, auth, the additions, and every response
//! checked against our `openapi.yaml`.

use crate::harness;
use crate::openapi;

use std::sync::Arc;
use std::time::Duration;

use harness::{
    completed, request, request_from, router, start_app, test_config, wait_for, HoldEngine, Reply,
};
use openapi::Spec;
use serde_json::{json, Value};
use sip_assistant::config::StringList;

/// Check a reply against our spec for `template` and against the seed where the seed has it.
fn conforms(spec: &Spec, template: &str, method: &str, reply: &Reply) {
    let value = reply.json();
    assert_eq!(
        reply.content_type, "application/json",
        "{template}: {}",
        reply.text
    );
    if let Err(problems) = spec.check_response(template, method, reply.status, &value) {
        panic!(
            "{method} {template} -> {} does not match openapi.yaml: {problems:?}\n{value}",
            reply.status
        );
    }
}

fn post(server: &tide::Server<sip_assistant::api::ApiState>, body: &Value) -> Reply {
    request(server, "POST", "/call", Some(body.to_string().as_bytes()), &[])
}

fn seed_examples(seed: &Spec) -> Vec<(String, Value)> {
    let examples =
        &seed.root()["paths"]["/call"]["post"]["requestBody"]["content"]["application/json"]["examples"];
    examples
        .as_object()
        .expect("seed has request examples")
        .iter()
        .map(|(name, ex)| (name.clone(), ex["value"].clone()))
        .collect()
}

#[test]
fn seed_examples_get_the_seed_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    // The seed's examples dial a phone number and call back example.com: allowed here explicitly.
    let mut config = test_config(dir.path());
    config.calls.dial_allow = Some(StringList(vec!["1???".into(), "+1 (555) 123-4567".into()]));
    config.webhook.allow_hosts = StringList::default();
    let app = start_app(config, engine.clone());
    let server = router(&app);
    let (ours, seed) = (Spec::ours(), Spec::seed());

    let health = request(&server, "GET", "/health", None, &[]);
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json(),
        json!({"status": "healthy", "sip_registered": false})
    );
    seed.check_response("/health", "get", 200, &health.json())
        .expect("seed health shape");
    conforms(&ours, "/health", "get", &health);

    let examples = seed_examples(&seed);
    assert_eq!(examples.len(), 3, "the seed has three request examples");
    for (name, body) in examples {
        let reply = post(&server, &body);
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let v = reply.json();
        seed.check_response("/call", "post", 200, &v)
            .expect("seed response shape");
        conforms(&ours, "/call", "post", &reply);
        assert_eq!(v["status"], "queued", "{name}");
        assert_eq!(v["message"], "Call initiated", "{name}");
        let id = v["call_id"].as_str().expect("id").to_string();
        let parts: Vec<&str> = id.split('-').collect();
        assert!(
            parts.len() == 3
                && parts[0] == "out"
                && parts[1].parse::<u64>().is_ok()
                && parts[2].parse::<u64>().is_ok(),
            "{name}: id {id} is not out-<unix seconds>-<n>"
        );
        engine.wait_started(&id);

        let status = request(&server, "GET", &format!("/call/{id}"), None, &[]);
        assert_eq!(
            status.json(),
            json!({"call_id": id, "status": "in_progress", "extension": "1001"})
        );
        seed.check_response("/call/{call_id}", "get", 200, &status.json())
            .expect("seed status shape");
        conforms(&ours, "/call/{call_id}", "get", &status);

        assert!(engine.release(&id, completed()));
        assert!(wait_for(Duration::from_secs(15), || {
            request(&server, "GET", &format!("/call/{id}"), None, &[]).json()["status"] == "not_found"
        }));
        let gone = request(&server, "GET", &format!("/call/{id}"), None, &[]);
        assert_eq!(gone.json(), json!({"call_id": id, "status": "not_found"}));
        seed.check_response("/call/{call_id}", "get", 200, &gone.json())
            .expect("seed not_found shape");

        let record = request(&server, "GET", &format!("/calls/{id}"), None, &[]);
        assert_eq!(record.status, 200);
        conforms(&ours, "/calls/{call_id}", "get", &record);
        let r = record.json();
        assert_eq!(r["status"], "completed");
        assert_eq!(r["request"]["message"], body["message"]);
        assert_eq!(
            r["request"]["ring_timeout"],
            body.get("ring_timeout").cloned().unwrap_or(json!(30))
        );
        let events: Vec<&str> = r["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .map(|e| e["event"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            events[..4],
            ["queued", "started", "ringing", "completed"],
            "{events:?}"
        );
        if body.get("callback_url").is_some() {
            assert_eq!(r["webhook"]["url"], body["callback_url"]);
            let wh = r["webhook"]["id"].as_str().unwrap_or("");
            assert!(
                wh.starts_with("wh-") && wh.len() == 35,
                "a random delivery id: {wh}"
            );
        } else {
            assert_eq!(r["webhook"], Value::Null);
        }
    }
    let unknown = request(&server, "GET", "/call/nope-1", None, &[]);
    assert_eq!(
        unknown.json(),
        json!({"call_id": "nope-1", "status": "not_found"})
    );
    smol::block_on(app.shutdown());
}

/// (body, detail) pairs: every rule of the contract and the text it answers with.
fn rule_cases() -> Vec<(Value, &'static str)> {
    let ok_choice = json!({"prompt": "Confirm?", "options": [{"value": "yes"}]});
    let cb = "http://127.0.0.1:9/hook";
    let with_choice =
        |choice: Value| json!({"message": "m", "extension": "1001", "callback_url": cb, "choice": choice});
    vec![
        (json!({"extension": "1001"}), "message is required"),
        (json!({"message": null, "extension": "1001"}), "message is required"),
        (json!({"message": 5, "extension": "1001"}), "message must be a string"),
        (json!({"message": "  ", "extension": "1001"}), "message must not be empty"),
        (json!({"message": "x".repeat(5001), "extension": "1001"}), "message must be at most 5000 characters"),
        (json!({"message": "m"}), "extension is required"),
        (json!({"message": "m", "extension": 1001}), "extension must be a string"),
        (json!({"message": "m", "extension": ""}), "extension must not be empty"),
        (
            json!({"message": "m", "extension": "10 01x"}),
            "extension '10 01x' must be an extension (letters, digits and . _ - + * #), a phone number, or a sip:/sips: URI",
        ),
        (json!({"message": "m", "extension": "sip:"}), "extension 'sip:' is not a valid SIP URI (expected sip:user@host[:port])"),
        (json!({"message": "m", "extension": "1001", "callback_url": 7}), "callback_url must be a string or null"),
        (
            json!({"message": "m", "extension": "1001", "callback_url": "ftp://h/x"}),
            "callback_url must be an absolute http or https URL (got 'ftp://h/x')",
        ),
        (
            json!({"message": "m", "extension": "1001", "callback_url": "/relative"}),
            "callback_url must be an absolute http or https URL (got '/relative')",
        ),
        (json!({"message": "m", "extension": "1001", "ring_timeout": 4}), "ring_timeout must be between 5 and 120 (got 4)"),
        (json!({"message": "m", "extension": "1001", "ring_timeout": 121}), "ring_timeout must be between 5 and 120 (got 121)"),
        (json!({"message": "m", "extension": "1001", "ring_timeout": "30"}), "ring_timeout must be an integer between 5 and 120"),
        (json!({"message": "m", "extension": "1001", "ring_timeout": null}), "ring_timeout must be an integer between 5 and 120"),
        (json!({"message": "m", "extension": "1001", "ring_timeout": 7.5}), "ring_timeout must be an integer between 5 and 120"),
        (json!({"message": "m", "extension": "1001", "call_id": 3}), "call_id must be a string or null"),
        (
            json!({"message": "m", "extension": "1001", "call_id": "a b"}),
            "call_id must be 1 to 128 characters of letters, digits and . _ ~ : @ - (got 'a b')",
        ),
        (json!({"message": "m", "extension": "1001", "choice": ok_choice.clone()}), "callback_url is required when choice is specified"),
        (
            json!({"message": "m", "extension": "1001", "callback_url": null, "choice": ok_choice}),
            "callback_url is required when choice is specified",
        ),
        (with_choice(json!("yes or no")), "choice must be an object with prompt and options"),
        (with_choice(json!({"options": [{"value": "a"}]})), "choice.prompt is required"),
        (with_choice(json!({"prompt": "", "options": [{"value": "a"}]})), "choice.prompt must not be empty"),
        (with_choice(json!({"prompt": "p"})), "choice.options is required"),
        (with_choice(json!({"prompt": "p", "options": []})), "choice.options must contain at least 1 option"),
        (with_choice(json!({"prompt": "p", "options": {"value": "a"}})), "choice.options must be an array of options"),
        (with_choice(json!({"prompt": "p", "options": ["a"]})), "choice.options[0] must be an object with a value"),
        (with_choice(json!({"prompt": "p", "options": [{"synonyms": ["x"]}]})), "choice.options[0].value is required"),
        (with_choice(json!({"prompt": "p", "options": [{"value": ""}]})), "choice.options[0].value must not be empty"),
        (
            with_choice(json!({"prompt": "p", "options": [{"value": "a", "synonyms": "x"}]})),
            "choice.options[0].synonyms must be an array of strings",
        ),
        (
            with_choice(json!({"prompt": "p", "options": [{"value": "a", "synonyms": ["x", 2]}]})),
            "choice.options[0].synonyms[1] must be a string",
        ),
        (
            with_choice(json!({"prompt": "p", "options": [{"value": "a"}], "timeout_seconds": 4})),
            "choice.timeout_seconds must be between 5 and 60 (got 4)",
        ),
        (
            with_choice(json!({"prompt": "p", "options": [{"value": "a"}], "timeout_seconds": 61})),
            "choice.timeout_seconds must be between 5 and 60 (got 61)",
        ),
        (
            with_choice(json!({"prompt": "p", "options": [{"value": "a"}], "repeat_count": 0})),
            "choice.repeat_count must be between 1 and 5 (got 0)",
        ),
        (
            with_choice(json!({"prompt": "p", "options": [{"value": "a"}], "repeat_count": 6})),
            "choice.repeat_count must be between 1 and 5 (got 6)",
        ),
        (json!(["message", "extension"]), "request body must be a JSON object"),
    ]
}

#[test]
fn every_rule_answers_400_with_its_detail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_app(test_config(dir.path()), HoldEngine::new());
    let server = router(&app);
    let spec = Spec::ours();
    for (body, want) in rule_cases() {
        let reply = post(&server, &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.detail(), want, "{body}");
        conforms(&spec, "/call", "post", &reply);
    }
    // Bodies that are not JSON at all.
    for (raw, starts) in [
        (&b""[..], "request body is empty; expected a JSON object"),
        (b"{\"message\": ", "request body is not valid JSON: "),
        (b"not json", "request body is not valid JSON: "),
    ] {
        let reply = request(&server, "POST", "/call", Some(raw), &[]);
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(reply.detail().starts_with(starts), "{}", reply.text);
    }
    // 64 KiB is the limit; one byte more is 413.
    let big = json!({"message": "m", "extension": "1001", "pad": "x".repeat(64 * 1024)}).to_string();
    let reply = request(&server, "POST", "/call", Some(big.as_bytes()), &[]);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.detail(), "request body exceeds 65536 bytes");
    conforms(&spec, "/call", "post", &reply);
    // Nothing was stored by any of these.
    let list = request(&server, "GET", "/calls", None, &[]);
    assert_eq!(list.json()["count"], 0, "{}", list.text);
    smol::block_on(app.shutdown());
}

#[test]
fn accepted_forms_of_extension_and_caller_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let mut config = test_config(dir.path());
    config.calls.dial_allow = Some(StringList(
        [
            "1???",
            "*97",
            "+1 (555) 123-4567",
            "sip:*@127.0.0.1:*",
            "sips:*@pbx.example.com",
        ]
        .map(String::from)
        .to_vec(),
    ));
    let app = start_app(config, engine.clone());
    let server = router(&app);
    for ext in [
        "1001",
        "*97",
        "+1 (555) 123-4567",
        "sip:alice@127.0.0.1:5070",
        "sips:bob@pbx.example.com",
    ] {
        let reply = post(&server, &json!({"message": "m", "extension": ext}));
        assert_eq!(reply.status, 200, "{ext}: {}", reply.text);
    }
    let reply = post(
        &server,
        &json!({"message": "m", "extension": "1001", "call_id": "my-custom-id-123"}),
    );
    assert_eq!(reply.json()["call_id"], "my-custom-id-123");
    let again = post(
        &server,
        &json!({"message": "m", "extension": "1001", "call_id": "my-custom-id-123"}),
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.detail(), "call_id 'my-custom-id-123' is already in use");
    conforms(&Spec::ours(), "/call", "post", &again);
    smol::block_on(app.shutdown());
}

#[test]
fn token_guards_everything_but_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.api.token = Some(sip_assistant::config::Secret::new("s3cret-token-value"));
    let app = start_app(config, HoldEngine::new());
    let server = router(&app);
    let spec = Spec::ours();
    assert_eq!(request(&server, "GET", "/health", None, &[]).status, 200);
    for (method, path) in [
        ("GET", "/calls"),
        ("GET", "/call/x"),
        ("POST", "/call"),
        ("GET", "/openapi.yaml"),
        ("GET", "/nope"),
    ] {
        let reply = request(&server, method, path, Some(b"{}"), &[]);
        assert_eq!(reply.status, 401, "{method} {path}");
        assert_eq!(reply.detail(), "missing or invalid bearer token");
        assert!(reply
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v == "Bearer"));
        let wrong = request(
            &server,
            method,
            path,
            Some(b"{}"),
            &[("Authorization", "Bearer nope")],
        );
        assert_eq!(wrong.status, 401, "{method} {path}");
    }
    let reply = request(&server, "GET", "/calls", None, &[]);
    conforms(&spec, "/calls", "get", &reply);
    let ok = request(
        &server,
        "GET",
        "/calls",
        None,
        &[("Authorization", "Bearer s3cret-token-value")],
    );
    assert_eq!(ok.status, 200);
    smol::block_on(app.shutdown());
}

#[test]
fn list_cancel_queue_full_and_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.calls.max_concurrent = 1;
    config.calls.queue_limit = 1;
    let engine = HoldEngine::new();
    let app = start_app(config, engine.clone());
    let server = router(&app);
    let spec = Spec::ours();
    let cb = "http://127.0.0.1:9/hook";

    let a = post(
        &server,
        &json!({"message": "a", "extension": "1001", "call_id": "call-a", "callback_url": cb}),
    );
    assert_eq!(a.status, 200);
    engine.wait_started("call-a");
    let b = post(
        &server,
        &json!({"message": "b", "extension": "1002", "call_id": "call-b"}),
    );
    assert_eq!(b.status, 200);
    let c = post(&server, &json!({"message": "c", "extension": "1003"}));
    assert_eq!(c.status, 503, "{}", c.text);
    assert_eq!(
        c.detail(),
        "call queue is full (1 calls waiting); try again later"
    );
    conforms(&spec, "/call", "post", &c);

    // The waiting call is in progress for the seed's endpoint.
    assert_eq!(
        request(&server, "GET", "/call/call-b", None, &[]).json()["status"],
        "in_progress"
    );

    // Cancel the waiting call: final at once.
    let del = request(&server, "DELETE", "/call/call-b", None, &[]);
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(
        del.json(),
        json!({"call_id": "call-b", "status": "failed", "message": "Call cancelled"})
    );
    conforms(&spec, "/call/{call_id}", "delete", &del);
    let rb = request(&server, "GET", "/calls/call-b", None, &[]).json();
    assert_eq!(rb["error"], "cancelled by API request");
    assert_eq!(rb["started_at"], Value::Null);
    assert!(!engine.started().contains(&"call-b".to_string()));

    // Hang up the active call: 202, then final failed with the same error.
    let del = request(&server, "DELETE", "/call/call-a", None, &[]);
    assert_eq!(del.status, 202, "{}", del.text);
    assert_eq!(del.json()["message"], "Hang-up requested");
    conforms(&spec, "/call/{call_id}", "delete", &del);
    assert!(wait_for(Duration::from_secs(15), || {
        request(&server, "GET", "/calls/call-a", None, &[]).json()["status"] == "failed"
    }));
    let ra = request(&server, "GET", "/calls/call-a", None, &[]).json();
    assert_eq!(ra["error"], "cancelled by API request");
    assert!(ra["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|e| e["event"] == "cancel_requested"));
    assert_eq!(ra["webhook"]["state"], "pending", "{ra}");

    let again = request(&server, "DELETE", "/call/call-a", None, &[]);
    assert_eq!(again.status, 409);
    assert_eq!(
        again.detail(),
        "call 'call-a' already finished with status failed"
    );
    let missing = request(&server, "DELETE", "/call/none", None, &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.detail(), "call 'none' not found");
    conforms(&spec, "/call/{call_id}", "delete", &missing);

    // A slot is free again.
    let d = post(
        &server,
        &json!({"message": "d", "extension": "1004", "call_id": "call-d"}),
    );
    assert_eq!(d.status, 200);
    engine.wait_started("call-d");
    assert!(engine.release("call-d", completed()));
    assert!(wait_for(Duration::from_secs(15), || {
        request(&server, "GET", "/calls/call-d", None, &[]).json()["status"] == "completed"
    }));

    // Listing: newest first, filters, limits, and bad parameters.
    let all = request(&server, "GET", "/calls", None, &[]);
    conforms(&spec, "/calls", "get", &all);
    let ids: Vec<String> = all.json()["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["call_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ids, ["call-d", "call-b", "call-a"]);
    let failed = request(&server, "GET", "/calls?status=failed&limit=1", None, &[]).json();
    assert_eq!(failed["count"], 1);
    assert_eq!(failed["calls"][0]["call_id"], "call-b");
    for (q, want) in [
        (
            "status=done",
            "status must be one of queued, ringing, answered, completed, no_answer, failed, busy",
        ),
        ("limit=0", "limit must be an integer between 1 and 500"),
        ("limit=501", "limit must be an integer between 1 and 500"),
        ("limit=ten", "limit must be an integer between 1 and 500"),
    ] {
        let reply = request(&server, "GET", &format!("/calls?{q}"), None, &[]);
        assert_eq!(reply.status, 400, "{q}");
        assert_eq!(reply.detail(), want, "{q}");
        conforms(&spec, "/calls", "get", &reply);
    }
    let missing = request(&server, "GET", "/calls/none", None, &[]);
    assert_eq!(missing.status, 404);
    conforms(&spec, "/calls/{call_id}", "get", &missing);

    // Unknown routes and methods answer JSON.
    let nf = request(&server, "GET", "/nope", None, &[]);
    assert_eq!(
        (nf.status, nf.detail()),
        (404, "no route for GET /nope".to_string())
    );
    let na = request(&server, "PUT", "/call", Some(b"{}"), &[]);
    assert_eq!(
        (na.status, na.detail()),
        (405, "method PUT is not allowed on /call".to_string())
    );
    let doc = request(&server, "GET", "/openapi.yaml", None, &[]);
    assert_eq!(doc.status, 200);
    assert_eq!(doc.content_type, "application/yaml");
    assert_eq!(doc.text, sip_assistant::api::OPENAPI_YAML);
    smol::block_on(app.shutdown());
}

#[test]
fn health_turns_unhealthy_without_registration_when_a_registrar_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.sip.registrar = Some("127.0.0.1:5999".into());
    config.sip.user = Some("1001".into());
    let app = start_app(config, Arc::new(sip_assistant::call::UnavailableEngine));
    let server = router(&app);
    let reply = request(&server, "GET", "/health", None, &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"status": "unhealthy", "sip_registered": false})
    );
    conforms(&Spec::ours(), "/health", "get", &reply);
    smol::block_on(app.shutdown());
}

#[test]
fn without_a_sip_agent_calls_fail_honestly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_app(
        test_config(dir.path()),
        Arc::new(sip_assistant::call::UnavailableEngine),
    );
    let server = router(&app);
    let id = post(&server, &json!({"message": "m", "extension": "1001"})).json()["call_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(wait_for(Duration::from_secs(15), || {
        request(&server, "GET", &format!("/calls/{id}"), None, &[]).json()["status"] == "failed"
    }));
    let r = request(&server, "GET", &format!("/calls/{id}"), None, &[]).json();
    assert_eq!(r["error"], sip_assistant::call::UNAVAILABLE);
    assert_eq!(r["message_played"], false);
    assert_eq!(r["duration_seconds"], 0.0);
    smol::block_on(app.shutdown());
}

/// Malformed and random bodies get a 4xx with a JSON `detail`, never a 5xx, and store nothing.
#[test]
fn hostile_bodies_never_cause_a_server_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.calls.queue_limit = 10_000;
    let app = start_app(config, HoldEngine::new());
    let server = router(&app);
    let mut bodies: Vec<Vec<u8>> = vec![
        "[".repeat(10_000).into_bytes(),
        b"{\"message\": \"m\", \"extension\": \"1001\", \"ring_timeout\": 1e400}".to_vec(),
        b"{\"message\": \"m\", \"extension\": \"1001\", \"ring_timeout\": -9223372036854775809}".to_vec(),
        b"{\"message\": \"m\", \"extension\": \"\\ud800\"}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"message\": \"m\", \"extension\": \"1001\", \"choice\": {\"prompt\": \"p\", \"options\": [null]}, \"callback_url\": \"http://x/y\"}".to_vec(),
        b"{\"message\": \"m\", \"extension\": \"sip:\\u0000@host\"}".to_vec(),
        b"{\"message\": \"m\", \"extension\": \"sip:a@[::1\"}".to_vec(),
        b"{\"message\": \"m\", \"extension\": \"1001\", \"callback_url\": \"http://[::1\"}".to_vec(),
        b"null".to_vec(),
        b"\"just a string\"".to_vec(),
    ];
    // Deterministic pseudo-random bodies: mutations of a valid one and raw noise.
    let valid = br#"{"message":"hello","extension":"1001","ring_timeout":30,"callback_url":"http://127.0.0.1:9/x","choice":{"prompt":"p","options":[{"value":"a","synonyms":["b"]}]}}"#;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut b = valid.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let i = usize::try_from(next() % b.len() as u64).unwrap_or(0);
            b[i] = (next() & 0xff) as u8;
        }
        bodies.push(b);
        let len = usize::try_from(next() % 64).unwrap_or(0);
        bodies.push((0..len).map(|_| (next() & 0xff) as u8).collect());
    }
    let mut accepted = 0;
    for body in &bodies {
        let reply = request(&server, "POST", "/call", Some(body), &[]);
        assert!(
            reply.status < 500,
            "{} for {:?}: {}",
            reply.status,
            String::from_utf8_lossy(body),
            reply.text
        );
        if reply.status == 200 {
            accepted += 1;
        } else {
            assert_eq!(reply.content_type, "application/json", "{}", reply.text);
            assert!(!reply.detail().is_empty());
        }
    }
    let stored = request(&server, "GET", "/calls?limit=500", None, &[]).json()["count"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(stored, accepted, "only accepted calls are stored");
    smol::block_on(app.shutdown());
}

#[test]
fn policy_refuses_before_anything_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    // The built-in policies: 2-6 digit extensions, no loopback or link-local callbacks.
    let mut config = test_config(dir.path());
    config.calls.dial_allow = None;
    config.webhook.allow_hosts = StringList::default();
    let app = start_app(config, engine.clone());
    let server = router(&app);
    let spec = Spec::ours();
    for ext in [
        "+15551234567",
        "0044207123456",
        "sip:1001@127.0.0.1:5060",
        "9",
        "1234567",
    ] {
        let reply = post(&server, &json!({"message": "m", "extension": ext}));
        assert_eq!(reply.status, 403, "{ext}: {}", reply.text);
        assert!(reply.detail().contains("calls.dial_allow"), "{}", reply.text);
        conforms(&spec, "/call", "post", &reply);
    }
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:80/x",
        "http://[fe80::1]/x",
        "http://0.0.0.0:8080/x",
    ] {
        let reply = post(
            &server,
            &json!({"message": "m", "extension": "1001", "callback_url": url}),
        );
        assert_eq!(reply.status, 403, "{url}: {}", reply.text);
        assert!(reply.detail().contains("webhook.allow_hosts"), "{}", reply.text);
    }
    let list = request(&server, "GET", "/calls", None, &[]);
    assert_eq!(list.json()["count"], 0, "nothing stored: {}", list.text);
    let ok = post(
        &server,
        &json!({"message": "m", "extension": "1001", "callback_url": "http://192.168.1.20:8123/hook"}),
    );
    assert_eq!(
        ok.status, 200,
        "a LAN callback and a short extension: {}",
        ok.text
    );
    smol::block_on(app.shutdown());
}

#[test]
fn an_empty_extension_is_refused_as_the_contract_says() {
    let spec = Spec::ours();
    assert_eq!(
        spec.schema("OutboundCallRequest")["properties"]["extension"]["minLength"],
        json!(1),
        "openapi.yaml documents minLength 1"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_app(test_config(dir.path()), HoldEngine::new());
    let server = router(&app);
    for ext in ["", "   "] {
        let reply = post(&server, &json!({"message": "m", "extension": ext}));
        assert_eq!(reply.status, 400, "{ext:?}: {}", reply.text);
        assert_eq!(reply.detail(), "extension must not be empty");
        conforms(&spec, "/call", "post", &reply);
    }
    smol::block_on(app.shutdown());
}

#[test]
fn each_client_is_rate_limited_and_health_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = HoldEngine::new();
    let mut config = test_config(dir.path());
    config.api.rate_limit_per_second = 1;
    config.api.rate_limit_burst = 3;
    let app = start_app(config, engine.clone());
    let server = router(&app);
    let from = |peer: &str| request_from(&server, Some(peer), "GET", "/calls", None, &[]);
    for _ in 0..3 {
        assert_eq!(from("192.0.2.7:4000").status, 200);
    }
    let refused = from("192.0.2.7:4001");
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.detail().contains("api.rate_limit_per_second"));
    let retry_after = refused
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.as_str());
    assert_eq!(retry_after, Some("1"));
    conforms(&Spec::ours(), "/call", "post", &refused);
    assert_eq!(
        from("192.0.2.8:4000").status,
        200,
        "another client has its own budget"
    );
    let health = request_from(&server, Some("192.0.2.7:4002"), "GET", "/health", None, &[]);
    assert_eq!(health.status, 200, "health is never limited");
    smol::block_on(app.shutdown());
}

#[test]
fn a_hook_test_with_a_huge_body_gets_the_documented_413() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start_app(test_config(dir.path()), HoldEngine::new());
    let server = router(&app);
    let big = vec![b' '; 70 * 1024];
    let reply = request(&server, "POST", "/hooks/built-in/test", Some(&big), &[]);
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_eq!(reply.detail(), "request body exceeds 65536 bytes");
    conforms(&Spec::ours(), "/hooks/{name}/test", "post", &reply);
    smol::block_on(app.shutdown());
}
