//! `POST /call` validation: JSON in, a typed [`CallRequest`] out, or a `detail` that names the field
//! and the rule. Every rule of the seed contract, plus limits that keep one request small.

use serde_json::{Map, Value};

use crate::call::{CallRequest, Choice, ChoiceOption, Timestamp};
use crate::sip_addr::parse_extension;

/// The exact detail of the seed for `choice` without `callback_url`.
pub const CHOICE_NEEDS_CALLBACK: &str = "callback_url is required when choice is specified";

pub const MAX_MESSAGE_CHARS: usize = 5000;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_OPTIONS: usize = 20;
pub const MAX_SYNONYMS: usize = 50;
pub const MAX_CALL_ID_CHARS: usize = 128;
/// How far ahead `not_before` may lie.
pub const MAX_NOT_BEFORE_DAYS: u64 = 30;

/// A valid request and the id the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub requested_id: Option<String>,
    pub request: CallRequest,
}

type Detail = String;

fn is_absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

pub(super) fn required_text(obj: &Map<String, Value>, key: &str, name: &str) -> Result<String, Detail> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(format!("{name} is required")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(format!("{name} must not be empty")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// An integer in `min..=max`, `default` when absent. JSON numbers with a zero fraction count.
pub(super) fn bounded_int(
    obj: &Map<String, Value>,
    key: &str,
    name: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<u32, Detail> {
    let rule = || format!("{name} must be an integer between {min} and {max}");
    let n = match obj.get(key) {
        None => default,
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
            _ => return Err(rule()),
        },
        Some(_) => return Err(rule()),
    };
    if n < min || n > max {
        return Err(format!("{name} must be between {min} and {max} (got {n})"));
    }
    u32::try_from(n).map_err(|_| rule())
}

pub(super) fn callback_url(obj: &Map<String, Value>) -> Result<Option<String>, Detail> {
    let s = match obj.get("callback_url") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err("callback_url must be a string or null".into()),
    };
    if s.chars().count() > MAX_URL_CHARS {
        return Err(format!("callback_url must be at most {MAX_URL_CHARS} characters"));
    }
    match url::Url::parse(s) {
        Ok(u)
            if (u.scheme() == "http" || u.scheme() == "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(Some(s.to_string()))
        }
        _ => Err(format!(
            "callback_url must be an absolute http or https URL (got '{s}')"
        )),
    }
}

fn call_id(obj: &Map<String, Value>) -> Result<Option<String>, Detail> {
    let s = match obj.get("call_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err("call_id must be a string or null".into()),
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._~:@-".contains(c);
    if s.is_empty() || s.len() > MAX_CALL_ID_CHARS || !s.chars().all(ok_char) {
        return Err(format!(
            "call_id must be 1 to {MAX_CALL_ID_CHARS} characters of letters, digits and . _ ~ : @ - (got '{s}')"
        ));
    }
    Ok(Some(s.clone()))
}

/// `not_before`: an RFC 3339 instant with its offset (`2026-12-08T07:00:00+01:00`), at most
/// [`MAX_NOT_BEFORE_DAYS`] after `now`; absent or null = at once.
pub(super) fn not_before(obj: &Map<String, Value>, now: Timestamp) -> Result<Option<Timestamp>, Detail> {
    let text = match obj.get("not_before") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err("not_before must be an RFC 3339 date-time string".into()),
    };
    let parsed: jiff::Timestamp = text.parse().map_err(|_| {
        format!("not_before must be an RFC 3339 date-time with an offset, such as 2026-12-08T07:00:00+01:00 (got '{text}')")
    })?;
    let ms = u64::try_from(parsed.as_millisecond())
        .map_err(|_| format!("not_before must be after 1970 (got '{text}')"))?;
    let at = Timestamp(ms);
    if at.millis_since(now) > MAX_NOT_BEFORE_DAYS * 86_400_000 {
        return Err(format!(
            "not_before must be at most {MAX_NOT_BEFORE_DAYS} days ahead (got '{text}')"
        ));
    }
    Ok(Some(at))
}

/// Option `i` of the array named `list`.
fn option(v: &Value, list: &str, i: usize) -> Result<ChoiceOption, Detail> {
    let name = format!("{list}[{i}]");
    let Value::Object(obj) = v else {
        return Err(format!("{name} must be an object with a value"));
    };
    let value = required_text(obj, "value", &format!("{name}.value"))?;
    let synonyms = match obj.get("synonyms") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_SYNONYMS {
                return Err(format!(
                    "{name}.synonyms must hold at most {MAX_SYNONYMS} entries"
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (j, s) in items.iter().enumerate() {
                match s {
                    Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                    Value::String(_) => return Err(format!("{name}.synonyms[{j}] must not be empty")),
                    _ => return Err(format!("{name}.synonyms[{j}] must be a string")),
                }
            }
            out
        }
        Some(_) => return Err(format!("{name}.synonyms must be an array of strings")),
    };
    let dtmf = match obj.get("dtmf") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
                _ => return Err(format!("{name}.dtmf must be one key of 0-9, * or # (got '{k}')")),
            }
        }
        Some(_) => {
            return Err(format!(
                "{name}.dtmf must be a string holding one key of 0-9, * or #"
            ))
        }
    };
    Ok(ChoiceOption {
        value,
        synonyms,
        dtmf,
    })
}

/// The options array named `list` (`choice.options` in `POST /call`): 1 to [`MAX_OPTIONS`]
/// options, no value and no `dtmf` key twice.
pub(super) fn options(v: Option<&Value>, list: &str) -> Result<Vec<ChoiceOption>, Detail> {
    let options = match v {
        None | Some(Value::Null) => return Err(format!("{list} is required")),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(format!("{list} must contain at least 1 option"))
        }
        Some(Value::Array(items)) if items.len() > MAX_OPTIONS => {
            return Err(format!("{list} must contain at most {MAX_OPTIONS} options"))
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| option(v, list, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(format!("{list} must be an array of options")),
    };
    for (i, o) in options.iter().enumerate() {
        if let Some(j) = options[..i].iter().position(|p| p.value == o.value) {
            return Err(format!(
                "{list}[{i}].value '{}' repeats {list}[{j}].value",
                o.value
            ));
        }
        if let Some(k) = o.dtmf {
            if let Some(j) = options[..i].iter().position(|p| p.dtmf == Some(k)) {
                return Err(format!("{list}[{i}].dtmf '{k}' repeats {list}[{j}].dtmf"));
            }
        }
    }
    Ok(options)
}

/// A name of letters, digits, `_`, `-` and `.` of 1 to `max` characters, or absent.
pub(super) fn optional_name(
    obj: &Map<String, Value>,
    key: &str,
    name: &str,
    max: usize,
) -> Result<Option<String>, Detail> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.chars().count() <= max
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
        {
            Ok(Some(s.clone()))
        }
        Some(Value::String(s)) => Err(format!(
            "{name} must be 1 to {max} characters of letters, digits and _ - . (got '{s}')"
        )),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// A BCP 47 tag such as `en`, `en-US` or `de-CH`, or absent.
pub(super) fn language(obj: &Map<String, Value>) -> Result<Option<String>, Detail> {
    match obj.get("language") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let mut parts = s.split('-');
            let primary = parts.next().unwrap_or_default();
            let ok = (2..=3).contains(&primary.len())
                && primary.chars().all(|c| c.is_ascii_alphabetic())
                && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
                && s.len() <= 35;
            if ok {
                Ok(Some(s.clone()))
            } else {
                Err(format!(
                    "language must be a BCP 47 tag such as 'en' or 'en-US' (got '{s}')"
                ))
            }
        }
        Some(_) => Err("language must be a string such as 'en-US'".into()),
    }
}

pub(super) fn choice(v: &Value) -> Result<Choice, Detail> {
    let Value::Object(obj) = v else {
        return Err("choice must be an object with prompt and options".into());
    };
    let prompt = required_text(obj, "prompt", "choice.prompt")?;
    if prompt.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!(
            "choice.prompt must be at most {MAX_MESSAGE_CHARS} characters"
        ));
    }
    let options = options(obj.get("options"), "choice.options")?;
    Ok(Choice {
        prompt,
        options,
        timeout_seconds: bounded_int(obj, "timeout_seconds", "choice.timeout_seconds", 5, 60, 30)?,
        repeat_count: bounded_int(obj, "repeat_count", "choice.repeat_count", 1, 5, 2)?,
        matcher: optional_name(obj, "matcher", "choice.matcher", 64)?,
    })
}

/// Validate a `POST /call` body.
pub fn parse_call_request(body: &[u8]) -> Result<Accepted, Detail> {
    parse_call_request_at(body, Timestamp::now())
}

/// The JSON object of a request body, or the detail of why it is not one.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, Detail> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("request body is empty; expected a JSON object".into());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err("request body must be a JSON object".into()),
    }
}

/// Validate a `POST /call` body received at `now`.
pub fn parse_call_request_at(body: &[u8], now: Timestamp) -> Result<Accepted, Detail> {
    let obj = json_object(body)?;
    let message = required_text(&obj, "message", "message")?;
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!("message must be at most {MAX_MESSAGE_CHARS} characters"));
    }
    let extension = required_text(&obj, "extension", "extension")?;
    parse_extension(&extension).map_err(|rule| format!("extension {rule}"))?;
    let callback_url = callback_url(&obj)?;
    let ring_timeout = bounded_int(&obj, "ring_timeout", "ring_timeout", 5, 120, 30)?;
    let requested_id = call_id(&obj)?;
    let choice = if is_absent(obj.get("choice")) {
        None
    } else {
        if callback_url.is_none() {
            return Err(CHOICE_NEEDS_CALLBACK.into());
        }
        obj.get("choice").map(choice).transpose()?
    };
    Ok(Accepted {
        requested_id: requested_id.clone(),
        request: CallRequest {
            message,
            extension: extension.trim().to_string(),
            callback_url,
            ring_timeout,
            choice,
            call_id: requested_id,
            language: language(&obj)?,
            voice: optional_name(&obj, "voice", "voice", 64)?,
            not_before: not_before(&obj, now)?,
            notification_id: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(v: Value) -> String {
        parse_call_request(v.to_string().as_bytes()).expect_err("should be rejected")
    }

    #[test]
    fn defaults_are_filled() {
        let a = parse_call_request(br#"{"message":"hi","extension":"1001"}"#).expect("valid");
        assert_eq!(a.request.ring_timeout, 30);
        assert_eq!(a.request.callback_url, None);
        assert_eq!(a.requested_id, None);
        let a = parse_call_request(
            json!({"message":"m","extension":"1001","callback_url":"http://127.0.0.1:9/x",
                   "choice":{"prompt":"p","options":[{"value":"a"}]}})
            .to_string()
            .as_bytes(),
        )
        .expect("valid");
        let c = a.request.choice.expect("choice");
        assert_eq!((c.timeout_seconds, c.repeat_count), (30, 2));
        assert!(c.options[0].synonyms.is_empty());
    }

    #[test]
    fn not_before_takes_an_offset_and_at_most_thirty_days() {
        let now = Timestamp(1_780_000_000_000); // 2026-05-28T20:26:40Z
        let parse = |v: Value| parse_call_request_at(v.to_string().as_bytes(), now);
        let a = parse(json!({"message":"m","extension":"1","not_before":"2026-05-29T07:00:00+02:00"}))
            .expect("valid");
        assert_eq!(a.request.not_before, Some(Timestamp(1_780_030_800_000)));
        let a = parse(json!({"message":"m","extension":"1","not_before":"2020-01-01T00:00:00Z"}))
            .expect("past is fine");
        assert!(a.request.not_before.is_some());
        assert_eq!(
            parse(json!({"message":"m","extension":"1","not_before":"tomorrow"})).expect_err("bad"),
            "not_before must be an RFC 3339 date-time with an offset, such as 2026-12-08T07:00:00+01:00 (got 'tomorrow')"
        );
        assert!(
            parse(json!({"message":"m","extension":"1","not_before":"2026-07-28T20:26:40Z"}))
                .expect_err("too far")
                .starts_with("not_before must be at most 30 days ahead")
        );
        assert_eq!(
            parse(json!({"message":"m","extension":"1","not_before":5})).expect_err("type"),
            "not_before must be an RFC 3339 date-time string"
        );
    }

    #[test]
    fn whole_number_floats_count_as_integers() {
        let a =
            parse_call_request(br#"{"message":"hi","extension":"1001","ring_timeout":45.0}"#).expect("valid");
        assert_eq!(a.request.ring_timeout, 45);
        assert!(
            detail(json!({"message":"hi","extension":"1001","ring_timeout":45.5})).contains("ring_timeout")
        );
    }

    #[test]
    fn choice_without_callback_has_the_seed_text() {
        assert_eq!(
            detail(json!({"message":"m","extension":"1","choice":{"prompt":"p","options":[{"value":"a"}]}})),
            CHOICE_NEEDS_CALLBACK
        );
        assert_eq!(
            detail(
                json!({"message":"m","extension":"1","callback_url":null,"choice":{"prompt":"p","options":[]}})
            ),
            CHOICE_NEEDS_CALLBACK
        );
    }

    #[test]
    fn duplicate_option_values_are_refused() {
        let d = detail(json!({"message":"m","extension":"1","callback_url":"http://h/x",
            "choice":{"prompt":"p","options":[{"value":"a"},{"value":"a"}]}}));
        assert_eq!(d, "choice.options[1].value 'a' repeats choice.options[0].value");
    }

    #[test]
    fn language_voice_matcher_and_dtmf_are_checked() {
        let ok = parse_call_request(
            json!({"message":"m","extension":"1","callback_url":"http://h/x","language":"de-CH","voice":"slt",
                "choice":{"prompt":"p","matcher":"fuzzy","options":[{"value":"a","dtmf":"#"},{"value":"b"}]}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(ok.request.language.as_deref(), Some("de-CH"));
        assert_eq!(ok.request.voice.as_deref(), Some("slt"));
        let c = ok.request.choice.unwrap();
        assert_eq!(c.matcher.as_deref(), Some("fuzzy"));
        assert_eq!(c.options[0].dtmf, Some('#'));
        assert_eq!(c.options[1].dtmf, None);
        assert_eq!(
            detail(json!({"message":"m","extension":"1","language":"english!"})),
            "language must be a BCP 47 tag such as 'en' or 'en-US' (got 'english!')"
        );
        assert_eq!(
            detail(json!({"message":"m","extension":"1","voice":"a b"})),
            "voice must be 1 to 64 characters of letters, digits and _ - . (got 'a b')"
        );
        assert_eq!(
            detail(json!({"message":"m","extension":"1","callback_url":"http://h/x",
                "choice":{"prompt":"p","options":[{"value":"a","dtmf":"12"}]}})),
            "choice.options[0].dtmf must be one key of 0-9, * or # (got '12')"
        );
        assert_eq!(
            detail(json!({"message":"m","extension":"1","callback_url":"http://h/x",
                "choice":{"prompt":"p","options":[{"value":"a","dtmf":"1"},{"value":"b","dtmf":"1"}]}})),
            "choice.options[1].dtmf '1' repeats choice.options[0].dtmf"
        );
    }
}
