//! Tests of the OpenAPI schema validator in `tests/support/openapi.rs`, and of
//! `openapi.yaml` itself: it must stay a superset of the seed contract and its
//! examples must match its schemas.

use crate::openapi;

use openapi::Spec;
use serde_json::{json, Value};

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A tiny document exercising every keyword the validator supports.
fn toy() -> Spec {
    Spec::from_yaml_str(
        r##"
openapi: 3.0.3
info: {title: toy, version: "1"}
paths:
  /things/{id}:
    get:
      responses:
        200:
          description: numeric key on purpose
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Thing'
        '404':
          $ref: '#/components/responses/NotFound'
        default:
          description: fallback
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
components:
  responses:
    NotFound:
      description: not found
      content:
        application/json:
          schema:
            $ref: '#/components/schemas/Error'
  schemas:
    Error:
      type: object
      required: [detail]
      properties:
        detail: {type: string}
    Colour:
      type: string
      enum: [red, green]
    Thing:
      type: object
      required: [name, size, colour, tags, when, note]
      properties:
        name: {type: string, minLength: 1, maxLength: 5}
        size: {type: integer, minimum: 1, maximum: 10}
        ratio: {type: number, minimum: 0, maximum: 1}
        colour: {$ref: '#/components/schemas/Colour'}
        tags:
          type: array
          minItems: 1
          items: {type: string}
        when: {type: string, format: date-time}
        note: {type: string, nullable: true}
        flag: {type: boolean}
        parent:
          allOf:
            - $ref: '#/components/schemas/Error'
          nullable: true
        either:
          oneOf:
            - {type: string}
            - {type: integer}
"##,
    )
    .expect("toy spec parses")
}

fn good_thing() -> Value {
    json!({
        "name": "bolt",
        "size": 3,
        "ratio": 0.5,
        "colour": "red",
        "tags": ["a"],
        "when": "2024-05-01T12:00:00.250+02:00",
        "note": null,
        "flag": true,
        "parent": {"detail": "x"},
        "either": 7,
        "extra": {"anything": "goes"}
    })
}

fn with(mut value: Value, key: &str, member: Value) -> Value {
    value[key] = member;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

fn problems(spec: &Spec, value: &Value) -> Vec<String> {
    match spec.check_schema("Thing", value) {
        Ok(()) => Vec::new(),
        Err(p) => p,
    }
}

fn assert_rejected(spec: &Spec, value: Value, pointer: &str, needle: &str) {
    let found = problems(spec, &value);
    assert!(
        found.iter().any(|p| p.starts_with(pointer) && p.contains(needle)),
        "expected a problem at {pointer} mentioning {needle:?} for {value}, got {found:?}"
    );
}

#[test]
fn accepts_valid_values() {
    let spec = toy();
    assert_eq!(spec.check_schema("Thing", &good_thing()), Ok(()));
    // integer written with a zero fraction, number written as an integer
    let v = with(with(good_thing(), "size", json!(4.0)), "ratio", json!(1));
    assert_eq!(spec.check_schema("Thing", &v), Ok(()));
    // nullable allOf wrapper accepts null; optional properties may be absent
    let v = without(with(good_thing(), "parent", Value::Null), "flag");
    assert_eq!(spec.check_schema("Thing", &v), Ok(()));
    for when in [
        "2024-02-29T00:00:00Z",
        "1999-12-31t23:59:60z",
        "2024-05-01T12:00:00.123456-05:30",
    ] {
        let v = with(good_thing(), "when", json!(when));
        assert_eq!(spec.check_schema("Thing", &v), Ok(()), "{when}");
    }
}

#[test]
fn rejects_missing_required() {
    assert_rejected(&toy(), without(good_thing(), "name"), "(root)", "\"name\"");
    assert_rejected(&toy(), without(good_thing(), "note"), "(root)", "\"note\"");
}

#[test]
fn rejects_wrong_type() {
    let spec = toy();
    assert_rejected(
        &spec,
        with(good_thing(), "name", json!(5)),
        "/name",
        "expected string",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "size", json!(2.5)),
        "/size",
        "expected integer",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "size", json!("3")),
        "/size",
        "expected integer",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "ratio", json!(true)),
        "/ratio",
        "expected number",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "flag", json!(1)),
        "/flag",
        "expected boolean",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "tags", json!("a")),
        "/tags",
        "expected array",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "tags", json!(["a", 2])),
        "/tags/1",
        "expected string",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "parent", json!({"detail": 1})),
        "/parent/detail",
        "expected string",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "either", json!(false)),
        "/either",
        "oneOf",
    );
    assert!(spec.check_schema("Thing", &json!([])).is_err());
}

#[test]
fn rejects_null_where_not_nullable() {
    let spec = toy();
    assert_rejected(
        &spec,
        with(good_thing(), "name", Value::Null),
        "/name",
        "null is not allowed",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "colour", Value::Null),
        "/colour",
        "null",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "tags", json!([null])),
        "/tags/0",
        "null is not allowed",
    );
}

#[test]
fn rejects_enum_miss() {
    assert_rejected(
        &toy(),
        with(good_thing(), "colour", json!("blue")),
        "/colour",
        "is not one of",
    );
}

#[test]
fn rejects_out_of_range() {
    let spec = toy();
    assert_rejected(&spec, with(good_thing(), "size", json!(0)), "/size", "minimum");
    assert_rejected(&spec, with(good_thing(), "size", json!(11)), "/size", "maximum");
    assert_rejected(
        &spec,
        with(good_thing(), "ratio", json!(1.5)),
        "/ratio",
        "maximum",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "tags", json!([])),
        "/tags",
        "at least 1",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "name", json!("")),
        "/name",
        "at least 1",
    );
    assert_rejected(
        &spec,
        with(good_thing(), "name", json!("toolong")),
        "/name",
        "at most 5",
    );
}

#[test]
fn rejects_bad_date_times() {
    let spec = toy();
    for bad in [
        "2024-05-01",
        "2024-05-01 12:00:00Z",
        "2024-05-01T12:00:00",
        "2024-13-01T12:00:00Z",
        "2023-02-29T12:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00+0200",
        "yesterday",
    ] {
        assert_rejected(
            &spec,
            with(good_thing(), "when", json!(bad)),
            "/when",
            "date-time",
        );
    }
}

#[test]
fn check_response_resolves_operations_and_response_refs() {
    let spec = toy();
    assert_eq!(
        spec.check_response("/things/{id}", "GET", 200, &good_thing()),
        Ok(())
    );
    assert_eq!(
        spec.check_response("/things/{id}", "get", 404, &json!({"detail": "gone"})),
        Ok(())
    );
    assert!(spec
        .check_response("/things/{id}", "get", 404, &json!({}))
        .is_err());
    // undocumented status falls back to `default`
    assert_eq!(
        spec.check_response("/things/{id}", "get", 500, &json!({"detail": "x"})),
        Ok(())
    );
    let missing = spec.check_response("/nope", "get", 200, &json!({})).unwrap_err();
    assert!(missing[0].contains("/nope"), "{missing:?}");
    let missing = spec
        .check_response("/things/{id}", "post", 200, &json!({}))
        .unwrap_err();
    assert!(missing[0].contains("POST"), "{missing:?}");
}

// ---------------------------------------------------------------------------
// openapi.yaml against the seed contract

/// Keywords of a seed schema (or property) that ours must repeat verbatim.
const KEPT_KEYWORDS: [&str; 11] = [
    "type", "default", "minimum", "maximum", "minItems", "enum", "nullable", "format", "$ref", "items",
    "example",
];

/// `ours` equals `seed`, except that objects may carry extra members.
fn extends(ours: &Value, seed: &Value) -> bool {
    match (ours, seed) {
        (Value::Object(ours), Value::Object(seed)) => seed
            .iter()
            .all(|(k, v)| ours.get(k).is_some_and(|o| extends(o, v))),
        _ => ours == seed,
    }
}

fn compare_schema(what: &str, seed: &Value, ours: &Value, problems: &mut Vec<String>) {
    for keyword in KEPT_KEYWORDS {
        if let Some(expected) = seed.get(keyword) {
            // an example object may gain members for properties we added
            let kept = |actual: &Value| match keyword {
                "example" => extends(actual, expected),
                _ => actual == expected,
            };
            match ours.get(keyword) {
                Some(actual) if kept(actual) => {}
                actual => problems.push(format!(
                    "{what}: {keyword} is {actual:?} in ours, {expected} in the seed"
                )),
            }
        }
    }
    if let Some(required) = seed.get("required").and_then(Value::as_array) {
        let ours_required = ours
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for name in required {
            if !ours_required.contains(name) {
                problems.push(format!("{what}: {name} is required in the seed but not in ours"));
            }
        }
    }
    if let Some(properties) = seed.get("properties").and_then(Value::as_object) {
        for (name, seed_property) in properties {
            match ours.get("properties").and_then(|p| p.get(name)) {
                Some(our_property) => {
                    compare_schema(&format!("{what}.{name}"), seed_property, our_property, problems)
                }
                None => problems.push(format!("{what}: property {name} is missing in ours")),
            }
        }
    }
}

#[test]
fn ours_is_superset_of_seed() {
    let seed = Spec::seed();
    let ours = Spec::ours();
    let mut problems = Vec::new();

    assert_eq!(ours.root()["openapi"], seed.root()["openapi"]);

    // every path and operation, with the same operationId and response codes
    let seed_paths = seed.root()["paths"].as_object().expect("seed paths");
    for (path, seed_item) in seed_paths {
        let Some(our_item) = ours.root()["paths"].get(path) else {
            problems.push(format!("path {path} is missing"));
            continue;
        };
        for method in HTTP_METHODS {
            let Some(seed_op) = seed_item.get(method) else {
                continue;
            };
            let Some(our_op) = our_item.get(method) else {
                problems.push(format!("operation {} {path} is missing", method.to_uppercase()));
                continue;
            };
            if our_op.get("operationId") != seed_op.get("operationId") {
                problems.push(format!("{} {path}: operationId differs", method.to_uppercase()));
            }
            for status in seed_op["responses"].as_object().expect("seed responses").keys() {
                if our_op["responses"].get(status).is_none() {
                    problems.push(format!(
                        "{} {path}: response {status} is missing",
                        method.to_uppercase()
                    ));
                }
            }
            if let Some(examples) = seed_op
                .pointer("/requestBody/content/application~1json/examples")
                .and_then(Value::as_object)
            {
                for (name, example) in examples {
                    let ours_example =
                        our_op.pointer(&format!("/requestBody/content/application~1json/examples/{name}"));
                    if ours_example != Some(example) {
                        problems.push(format!(
                            "{} {path}: request example {name} differs or is missing",
                            method.to_uppercase()
                        ));
                    }
                }
            }
        }
    }

    // every component schema, property by property
    let seed_schemas = seed.root()["components"]["schemas"]
        .as_object()
        .expect("seed schemas");
    for (name, seed_schema) in seed_schemas {
        match ours.root()["components"]["schemas"].get(name) {
            Some(our_schema) => compare_schema(name, seed_schema, our_schema, &mut problems),
            None => problems.push(format!("schema {name} is missing")),
        }
    }

    // the seed's example error text, in the same place and in the schema
    let pointer = "/paths/~1call/post/responses/400/content/application~1json/example/detail";
    let detail = seed
        .root()
        .pointer(pointer)
        .and_then(Value::as_str)
        .expect("seed error example");
    assert_eq!(detail, "callback_url is required when choice is specified");
    if ours.root().pointer(pointer).and_then(Value::as_str) != Some(detail) {
        problems.push(format!("POST /call 400 example no longer says {detail:?}"));
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("read openapi.yaml");
    assert!(text.contains(detail));

    // the seed's callback is still there
    if ours
        .root()
        .pointer("/components/callbacks/callComplete")
        .is_none()
    {
        problems.push("components.callbacks.callComplete is missing".to_string());
    }

    assert!(
        problems.is_empty(),
        "openapi.yaml drifted from the seed:\n{}",
        problems.join("\n")
    );
}

/// Every operation of a spec: (path, method, operation object).
fn operations(spec: &Spec) -> Vec<(String, &'static str, &Value)> {
    let mut out = Vec::new();
    for (path, item) in spec.root()["paths"].as_object().expect("paths") {
        for method in HTTP_METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method, op));
            }
        }
    }
    out
}

#[test]
fn response_examples_match_their_schemas() {
    let spec = Spec::ours();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, method, op) in operations(&spec) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let response = spec.deref(response).expect("response $ref resolves");
            let Some(content) = response.get("content").and_then(Value::as_object) else {
                continue;
            };
            for (media, body) in content {
                let Some(schema) = body.get("schema") else {
                    continue;
                };
                let mut examples = Vec::new();
                if let Some(example) = body.get("example") {
                    examples.push(("example".to_string(), example));
                }
                if let Some(named) = body.get("examples").and_then(Value::as_object) {
                    for (name, example) in named {
                        let example = spec.deref(example).expect("example $ref resolves");
                        let value = example.get("value").expect("named example has a value");
                        examples.push((name.clone(), value));
                    }
                }
                for (name, value) in examples {
                    checked += 1;
                    if let Err(p) = spec.check_value(schema, value) {
                        problems.push(format!(
                            "{} {path} {status} {media} {name}: {}",
                            method.to_uppercase(),
                            p.join("; ")
                        ));
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} response examples found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn request_and_schema_examples_match_their_schemas() {
    let spec = Spec::ours();
    let mut problems = Vec::new();
    for (path, method, op) in operations(&spec) {
        let Some(body) = op.pointer("/requestBody/content/application~1json") else {
            continue;
        };
        let schema = &body["schema"];
        for (name, example) in body["examples"].as_object().into_iter().flatten() {
            if let Err(p) = spec.check_value(schema, &example["value"]) {
                problems.push(format!(
                    "{} {path} request {name}: {}",
                    method.to_uppercase(),
                    p.join("; ")
                ));
            }
        }
    }
    // `example` on any schema (or property schema) must satisfy that schema
    fn walk(spec: &Spec, at: &str, schema: &Value, problems: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            return;
        };
        if let Some(example) = object.get("example") {
            if let Err(p) = spec.check_value(schema, example) {
                problems.push(format!("{at}: {}", p.join("; ")));
            }
        }
        for (name, property) in object
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            walk(spec, &format!("{at}.{name}"), property, problems);
        }
        if let Some(items) = object.get("items") {
            walk(spec, &format!("{at}[]"), items, problems);
        }
    }
    for (name, schema) in spec.root()["components"]["schemas"].as_object().expect("schemas") {
        walk(&spec, name, schema, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn json_responses_use_named_schemas_and_refs_resolve() {
    let spec = Spec::ours();
    let mut problems = Vec::new();
    for (path, method, op) in operations(&spec) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let response = spec.deref(response).expect("response $ref resolves");
            if let Some(schema) = response.pointer("/content/application~1json/schema") {
                match schema.get("$ref").and_then(Value::as_str) {
                    Some(r) if r.starts_with("#/components/schemas/") => {}
                    _ => problems.push(format!(
                        "{} {path} {status}: JSON response schema is not a named component",
                        method.to_uppercase()
                    )),
                }
            }
        }
    }
    // every $ref anywhere in the document points at something
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(spec.root(), &mut all);
    for r in all {
        if spec.resolve_ref(&r).is_none() {
            problems.push(format!("unresolvable $ref {r}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn real_payloads_validate_against_ours() {
    let spec = Spec::ours();
    let in_progress = json!({"call_id": "out-1-1", "status": "in_progress", "extension": "1001"});
    assert_eq!(
        spec.check_response("/call/{call_id}", "get", 200, &in_progress),
        Ok(())
    );
    let bad = json!({"call_id": "out-1-1", "status": "ringing"});
    assert!(spec.check_response("/call/{call_id}", "get", 200, &bad).is_err());
    let webhook = json!({
        "call_id": "out-1-1", "status": "no_answer", "extension": "1001",
        "duration_seconds": 0, "message_played": false, "choice_response": null,
        "choice_raw_text": null, "confirmed_by": null, "error": null,
        "ended_at": "2024-05-01T12:00:30Z"
    });
    assert_eq!(spec.check_schema("WebhookPayload", &webhook), Ok(()));
    let mut settled = webhook.clone();
    settled["choice_response"] = json!("support");
    settled["confirmed_by"] = json!("confirmation");
    assert_eq!(spec.check_schema("WebhookPayload", &settled), Ok(()));
    settled["confirmed_by"] = json!("guess");
    assert!(spec.check_schema("WebhookPayload", &settled).is_err());
    let unauthorized = json!({"detail": "missing or invalid bearer token"});
    for (path, method) in [
        ("/call", "post"),
        ("/call/{call_id}", "get"),
        ("/call/{call_id}", "delete"),
        ("/calls", "get"),
        ("/calls/{call_id}", "get"),
        ("/openapi.yaml", "get"),
        ("/notifications", "post"),
        ("/notifications", "get"),
        ("/notifications/{notification_id}", "get"),
        ("/notifications/{notification_id}", "delete"),
    ] {
        assert_eq!(
            spec.check_response(path, method, 401, &unauthorized),
            Ok(()),
            "{method} {path}"
        );
    }
    assert_eq!(ours_health_security(&spec), Some(&json!([])));
}

fn ours_health_security(spec: &Spec) -> Option<&Value> {
    spec.root().pointer("/paths/~1health/get/security")
}

#[test]
fn always_present_fields_are_required() {
    let spec = Spec::ours();
    let mut problems = Vec::new();
    for name in [
        "HealthResponse",
        "ErrorResponse",
        "WebhookPayload",
        "CancelResponse",
        "CallRecord",
        "CallRequestEcho",
        "CallList",
        "TimelineEvent",
        "WebhookDelivery",
        "WebhookAttempt",
        "NotificationCore",
        "NotificationAttempt",
        "NotificationAcknowledgement",
        "NotificationList",
        "NotificationCancelResponse",
        "NotificationCreated",
    ] {
        let schema = spec.schema(name);
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        // Sent only once the call had media, so the seed's payload stays as it was without it;
        // the notification fields of a call and its `not_before` only when set, so a plain call's
        // record keeps the seed's shape.
        let optional = [
            ("WebhookPayload", "media"),
            ("CallRecord", "notification_id"),
            ("CallRequestEcho", "not_before"),
            ("CallRequestEcho", "notification_id"),
        ];
        for property in schema["properties"].as_object().expect("properties").keys() {
            if optional.contains(&(name, property.as_str())) {
                continue;
            }
            if !required.contains(&Value::String(property.clone())) {
                problems.push(format!("{name}.{property} is not required"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_timeline_event_names_are_the_ones_openapi_lists() {
    use sip_assistant::call::TimelineEvent;
    let spec = Spec::ours();
    let listed: Vec<String> = spec.schema("TimelineEvent")["properties"]["event"]["enum"]
        .as_array()
        .expect("TimelineEvent.event lists its names")
        .iter()
        .map(|v| v.as_str().expect("a name").to_string())
        .collect();
    let ours: Vec<String> = TimelineEvent::ALL
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
    assert_eq!(listed, ours);
    for e in TimelineEvent::ALL {
        assert_eq!(
            serde_json::to_value(e).expect("serialises"),
            Value::String(e.as_str().into())
        );
    }
    // The seed's examples are all still written.
    for name in [
        "queued",
        "started",
        "message_ended",
        "no_match",
        "cancel_requested",
        "webhook_failed",
    ] {
        assert!(ours.iter().any(|n| n == name), "{name}");
    }
}
