//! A small validator for the subset of OpenAPI 3.0 schemas used by `openapi.yaml`.
//!
//! Included by integration tests with
//! `#[path = "support/openapi.rs"] mod openapi;`.
//!
//! Supported keywords: local `$ref` (any `#/...` JSON pointer), `type` (object,
//! array, string, integer, number, boolean), `nullable`, `enum`, `required`,
//! `properties`, `additionalProperties`, `items`, `minItems`, `maxItems`,
//! `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//! `maxLength`, `format: date-time` and `format: date`, `allOf`, `anyOf`,
//! `oneOf`. Everything else (for example `pattern`, `format: uri`) is ignored.
#![allow(dead_code)]

use serde_json::{Map, Number, Value};
use std::path::Path;

/// Nesting limit for `$ref` / combinator chains, to stop on reference cycles.
const MAX_DEPTH: usize = 64;

/// A parsed OpenAPI document.
pub struct Spec {
    root: Value,
}

impl Spec {
    /// Parse the YAML file at `path`. Panics with a message on failure.
    pub fn load(path: &Path) -> Spec {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read OpenAPI file {}: {e}", path.display()));
        Spec::from_yaml_str(&text)
            .unwrap_or_else(|e| panic!("cannot parse OpenAPI file {}: {e}", path.display()))
    }

    /// Parse an OpenAPI document from YAML (or JSON) text.
    pub fn from_yaml_str(text: &str) -> Result<Spec, String> {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Spec {
            root: yaml_to_json(yaml)?,
        })
    }

    /// Wrap an already parsed document.
    pub fn from_value(root: Value) -> Spec {
        Spec { root }
    }

    /// The service's own contract, `openapi.yaml` at the crate root.
    pub fn ours() -> Spec {
        Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml"))
    }

    /// The seed contract, `../shared/seed/openapi.yaml` next to the crate.
    pub fn seed() -> Spec {
        Spec::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("shared")
                .join("seed")
                .join("openapi.yaml"),
        )
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    /// `components.schemas.NAME`. Panics when there is no such schema.
    pub fn schema(&self, name: &str) -> &Value {
        self.root
            .get("components")
            .and_then(|c| c.get("schemas"))
            .and_then(|s| s.get(name))
            .unwrap_or_else(|| panic!("no schema components.schemas.{name} in the OpenAPI document"))
    }

    /// Resolve a local reference such as `#/components/schemas/CallRecord`.
    pub fn resolve_ref(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(&self.root);
        }
        self.root.pointer(pointer)
    }

    /// Follow `$ref` chains (of response objects, examples, schemas) to the target.
    pub fn deref<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..MAX_DEPTH {
            match value.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    value = self
                        .resolve_ref(r)
                        .ok_or_else(|| format!("unresolvable $ref {r:?}"))?;
                }
                None => return Ok(value),
            }
        }
        Err("$ref chain too deep (cycle?)".to_string())
    }

    /// The JSON schema of the response (path template, method, status), e.g.
    /// `("/call/{call_id}", "get", 200)`. Falls back to `2XX`-style ranges and
    /// `default` like OpenAPI does.
    pub fn response_schema(&self, path: &str, method: &str, status: u16) -> Result<&Value, String> {
        let method = method.to_ascii_lowercase();
        let operation = self
            .root
            .get("paths")
            .and_then(|p| p.get(path))
            .ok_or_else(|| format!("no path {path:?} in the OpenAPI document"))?
            .get(&method)
            .ok_or_else(|| format!("no operation {} {path}", method.to_uppercase()))?;
        let responses = operation
            .get("responses")
            .ok_or_else(|| format!("{} {path} has no responses", method.to_uppercase()))?;
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let response = responses
            .get(&exact)
            .or_else(|| responses.get(&range))
            .or_else(|| responses.get(range.to_lowercase()))
            .or_else(|| responses.get("default"))
            .ok_or_else(|| format!("{} {path} documents no response {status}", method.to_uppercase()))?;
        let response = self.deref(response)?;
        let content = response.get("content").ok_or_else(|| {
            format!(
                "{} {path} response {status} has no content",
                method.to_uppercase()
            )
        })?;
        content
            .get("application/json")
            .and_then(|media| media.get("schema"))
            .ok_or_else(|| {
                format!(
                    "{} {path} response {status} has no application/json schema",
                    method.to_uppercase()
                )
            })
    }

    /// Validate `value` against the response schema of (path template, method,
    /// status). Returns the list of problems, each starting with a JSON pointer.
    pub fn check_response(
        &self,
        path: &str,
        method: &str,
        status: u16,
        value: &Value,
    ) -> Result<(), Vec<String>> {
        let schema = self.response_schema(path, method, status).map_err(|e| vec![e])?;
        self.check_value(schema, value)
    }

    /// Validate `value` against `components.schemas.NAME`.
    pub fn check_schema(&self, name: &str, value: &Value) -> Result<(), Vec<String>> {
        let schema = self
            .root
            .get("components")
            .and_then(|c| c.get("schemas"))
            .and_then(|s| s.get(name))
            .ok_or_else(|| vec![format!("no schema components.schemas.{name}")])?;
        self.check_value(schema, value)
    }

    /// Validate `value` against an arbitrary schema object of this document.
    pub fn check_value(&self, schema: &Value, value: &Value) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.validate(schema, value, "", 0, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn validate(
        &self,
        schema: &Value,
        value: &Value,
        pointer: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let at = display_pointer(pointer);
        if depth > MAX_DEPTH {
            problems.push(format!("{at}: schema nesting too deep (reference cycle?)"));
            return;
        }
        let schema = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                problems.push(format!("{at}: no value is allowed here"));
                return;
            }
            Value::Object(map) => map,
            other => {
                problems.push(format!("{at}: invalid schema {other}"));
                return;
            }
        };
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        if value.is_null() && nullable {
            return;
        }

        if let Some(reference) = schema.get("$ref") {
            // OpenAPI 3.0: siblings of $ref are ignored (except the nullable
            // leniency above).
            match reference.as_str().and_then(|r| self.resolve_ref(r)) {
                Some(target) => self.validate(target, value, pointer, depth + 1, problems),
                None => problems.push(format!("{at}: unresolvable $ref {reference}")),
            }
            return;
        }

        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.validate(sub, value, pointer, depth + 1, problems);
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let matched = any
                .iter()
                .any(|sub| self.sub_problems(sub, value, pointer, depth).is_empty());
            if !matched {
                problems.push(format!("{at}: value matches none of the anyOf schemas"));
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let mut failures = Vec::new();
            let mut matches = 0;
            for (i, sub) in one.iter().enumerate() {
                let sub_problems = self.sub_problems(sub, value, pointer, depth);
                if sub_problems.is_empty() {
                    matches += 1;
                } else {
                    failures.push(format!("[{i}] {}", sub_problems.join("; ")));
                }
            }
            if matches == 0 {
                problems.push(format!(
                    "{at}: value matches none of the oneOf schemas ({})",
                    failures.join(" | ")
                ));
            } else if matches > 1 {
                problems.push(format!(
                    "{at}: value matches {matches} of the oneOf schemas, expected exactly one"
                ));
            }
        }

        if let Some(ty) = schema.get("type").and_then(Value::as_str) {
            if !type_matches(ty, value) {
                if value.is_null() {
                    problems.push(format!(
                        "{at}: null is not allowed (expected {ty}, schema is not nullable)"
                    ));
                } else {
                    problems.push(format!(
                        "{at}: expected {ty}, found {} {}",
                        kind_of(value),
                        short(value)
                    ));
                }
                return;
            }
        }

        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.iter().any(|a| json_equal(a, value)) {
                let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                problems.push(format!(
                    "{at}: {} is not one of [{}]",
                    short(value),
                    list.join(", ")
                ));
            }
        }

        match value {
            Value::Object(object) => self.validate_object(schema, object, pointer, depth, problems),
            Value::Array(items) => self.validate_array(schema, items, pointer, depth, problems),
            Value::Number(n) => validate_number(schema, n, &at, problems),
            Value::String(s) => validate_string(schema, s, &at, problems),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn sub_problems(&self, schema: &Value, value: &Value, pointer: &str, depth: usize) -> Vec<String> {
        let mut problems = Vec::new();
        self.validate(schema, value, pointer, depth + 1, &mut problems);
        problems
    }

    fn validate_object(
        &self,
        schema: &Map<String, Value>,
        object: &Map<String, Value>,
        pointer: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let at = display_pointer(pointer);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    problems.push(format!("{at}: missing required property {name:?}"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, member) in object {
            let child = format!("{pointer}/{}", escape_pointer(key));
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => self.validate(sub, member, &child, depth + 1, problems),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => problems.push(format!(
                        "{}: property {key:?} is not allowed",
                        display_pointer(&child)
                    )),
                    Some(extra @ Value::Object(_)) => {
                        self.validate(extra, member, &child, depth + 1, problems)
                    }
                    _ => {}
                },
            }
        }
    }

    fn validate_array(
        &self,
        schema: &Map<String, Value>,
        items: &[Value],
        pointer: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let at = display_pointer(pointer);
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                problems.push(format!(
                    "{at}: array has {} items, at least {min} required",
                    items.len()
                ));
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if (items.len() as u64) > max {
                problems.push(format!(
                    "{at}: array has {} items, at most {max} allowed",
                    items.len()
                ));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                let child = format!("{pointer}/{i}");
                self.validate(item_schema, item, &child, depth + 1, problems);
            }
        }
    }
}

fn validate_number(schema: &Map<String, Value>, n: &Number, at: &str, problems: &mut Vec<String>) {
    let Some(x) = n.as_f64() else { return };
    let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if exclusive("exclusiveMinimum") {
            if x <= min {
                problems.push(format!("{at}: {n} must be greater than {min}"));
            }
        } else if x < min {
            problems.push(format!("{at}: {n} is less than the minimum {min}"));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if exclusive("exclusiveMaximum") {
            if x >= max {
                problems.push(format!("{at}: {n} must be less than {max}"));
            }
        } else if x > max {
            problems.push(format!("{at}: {n} is greater than the maximum {max}"));
        }
    }
}

fn validate_string(schema: &Map<String, Value>, s: &str, at: &str, problems: &mut Vec<String>) {
    let length = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if length < min {
            problems.push(format!(
                "{at}: string has {length} characters, at least {min} required"
            ));
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if length > max {
            problems.push(format!(
                "{at}: string has {length} characters, at most {max} allowed"
            ));
        }
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") if !is_rfc3339_date_time(s) => {
            problems.push(format!("{at}: {s:?} is not an RFC 3339 date-time"))
        }
        Some("date") if !is_full_date(s) => {
            problems.push(format!("{at}: {s:?} is not an RFC 3339 full-date"))
        }
        _ => {}
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
            }
            _ => false,
        },
        // Unknown type names are not ours to judge.
        _ => true,
    }
}

/// Equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value rendered for a message, cut to a readable length.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn display_pointer(pointer: &str) -> String {
    if pointer.is_empty() {
        "(root)".to_string()
    } else {
        pointer.to_string()
    }
}

fn digits(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DD` with a valid day for the month (leap years included).
fn is_full_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (digits(&s[0..4]), digits(&s[5..7]), digits(&s[8..10])) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// `HH:MM:SS[.frac]`.
fn is_partial_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (digits(&s[0..2]), digits(&s[3..5]), digits(&s[6..8]))
    else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    match &s[8..] {
        "" => true,
        frac => frac
            .strip_prefix('.')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
    }
}

/// `Z` or `+HH:MM` / `-HH:MM`.
fn is_offset(s: &str) -> bool {
    if s == "Z" || s == "z" {
        return true;
    }
    let b = s.as_bytes();
    if b.len() != 6 || !(b[0] == b'+' || b[0] == b'-') || b[3] != b':' {
        return false;
    }
    matches!((digits(&s[1..3]), digits(&s[4..6])), (Some(h), Some(m)) if h <= 23 && m <= 59)
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`.
fn is_rfc3339_date_time(s: &str) -> bool {
    if !s.is_ascii() || s.len() < 20 {
        return false;
    }
    let (date, rest) = s.split_at(10);
    if !is_full_date(date) {
        return false;
    }
    let Some(time) = rest.strip_prefix('T').or_else(|| rest.strip_prefix('t')) else {
        return false;
    };
    let offset_start = match time.rfind(['Z', 'z', '+', '-']) {
        Some(i) => i,
        None => return false,
    };
    let (partial, offset) = time.split_at(offset_start);
    is_partial_time(partial) && is_offset(offset)
}

/// Convert a YAML value into JSON; non-string mapping keys are turned into
/// strings (YAML `200:` becomes `"200"`).
fn yaml_to_json(value: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(Number::from_f64(f).ok_or_else(|| format!("number {f} has no JSON form"))?)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (k, v) in mapping {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                object.insert(key, yaml_to_json(v)?);
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}
