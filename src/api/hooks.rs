//! `GET /hooks` (the loaded choice hooks and their counters) and `POST /hooks/{name}/test` (what
//! a hook decides about an answer, without a call).

use serde_json::{json, Map, Value};
use tide::{Request, StatusCode};

use super::validate::{bounded_int, language, options};
use super::{detail, json, ApiState};
use crate::choice::Alternative;
use crate::hooks::{HookInput, HookVerdict, BUILT_IN};

/// Most alternatives a test request may carry.
const MAX_ALTERNATIVES: usize = 10;
/// Longest transcript or digit string a test request may carry.
const MAX_TEXT_CHARS: usize = 2000;

pub(super) fn mount(app: &mut tide::Server<ApiState>) {
    app.at("/hooks").get(list);
    app.at("/hooks/:name/test").post(test);
}

async fn list(req: Request<ApiState>) -> tide::Result {
    let hooks = &req.state().hooks;
    Ok(json(
        StatusCode::Ok,
        &json!({
            "dir": hooks.settings().dir.display().to_string(),
            "default": hooks.settings().default,
            "hooks": hooks.infos(),
            "missing": hooks.missing(),
        }),
    ))
}

fn text(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT_CHARS => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("{key} must be at most {MAX_TEXT_CHARS} characters")),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn alternatives(obj: &Map<String, Value>) -> Result<Vec<Alternative>, String> {
    let transcript = text(obj, "transcript")?;
    let listed = match obj.get("alternatives") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_ALTERNATIVES => items.clone(),
        Some(Value::Array(_)) => {
            return Err(format!(
                "alternatives must hold at most {MAX_ALTERNATIVES} entries"
            ))
        }
        Some(_) => return Err("alternatives must be an array".into()),
    };
    let mut out = Vec::new();
    if !transcript.is_empty() {
        out.push(Alternative {
            transcript,
            confidence: None,
        });
    }
    for (i, item) in listed.iter().enumerate() {
        let Value::Object(alt) = item else {
            return Err(format!("alternatives[{i}] must be an object with a transcript"));
        };
        let transcript = text(alt, "transcript").map_err(|e| format!("alternatives[{i}].{e}"))?;
        let confidence = match alt.get("confidence") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(c) if (0.0..=1.0).contains(&c) => Some(c as f32),
                _ => return Err(format!("alternatives[{i}].confidence must be between 0 and 1")),
            },
            Some(_) => return Err(format!("alternatives[{i}].confidence must be a number")),
        };
        out.push(Alternative {
            transcript,
            confidence,
        });
    }
    Ok(out)
}

/// The test request as a hook input.
fn parse(body: &[u8]) -> Result<HookInput, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("request body must be a JSON object".into());
    };
    let options = options(obj.get("options"), "options")?;
    let digits = text(&obj, "digits")?;
    if let Some(bad) = digits
        .chars()
        .find(|c| !(c.is_ascii_digit() || "*#ABCDabcd".contains(*c)))
    {
        return Err(format!("digits may hold only 0-9, *, #, A-D (got '{bad}')"));
    }
    Ok(HookInput {
        alternatives: alternatives(&obj)?,
        digits,
        options,
        attempt: bounded_int(&obj, "attempt", "attempt", 1, 10, 1)?,
        language: language(&obj)?,
        call_id: "test".into(),
        extension: "test".into(),
    })
}

async fn test(mut req: Request<ApiState>) -> tide::Result {
    let name = req.param("name").unwrap_or_default().to_string();
    let body = match super::routes::read_body(&mut req).await {
        Ok(b) => b,
        Err(res) => return Ok(res),
    };
    let hooks = req.state().hooks.clone();
    if !hooks.knows(&name) {
        let loaded = hooks.loaded_names();
        return Ok(detail(
            StatusCode::NotFound,
            format!(
                "no hook named '{name}' (loaded: {}; '{BUILT_IN}' is the built-in matcher)",
                if loaded.is_empty() {
                    "none".to_string()
                } else {
                    loaded.join(", ")
                }
            ),
        ));
    }
    let input = match parse(&body) {
        Ok(i) => i,
        Err(d) => return Ok(detail(StatusCode::BadRequest, d)),
    };
    let decided = hooks.decide(Some(&name), &input).await;
    let (decision, option, reprompt) = match &decided.verdict {
        HookVerdict::Matched(i) => ("matched", Some(*i), None),
        HookVerdict::NoMatch => ("no_match", None, None),
        HookVerdict::Reprompt(t) => ("reprompt", None, Some(t.clone())),
    };
    Ok(json(
        StatusCode::Ok,
        &json!({
            "hook": name,
            "decision": decision,
            "option": option,
            "value": option.and_then(|i| input.options.get(i)).map(|o| o.value.clone()),
            "reprompt": reprompt,
            "by": decided.by,
            "fallback": decided.fallback,
            "detail": decided.detail,
        }),
    ))
}
