//! `POST /notifications` validation: JSON in, a typed [`NotificationRequest`] out, or a `detail`
//! that names the field and the rule. The message, choice, callback, language and voice follow
//! `POST /call`'s rules ([`super::validate`]).

use serde_json::{Map, Value};

use super::validate::{
    bounded_int, callback_url, choice, json_object, language, not_before, optional_name, required_text,
    MAX_MESSAGE_CHARS,
};
use crate::call::Timestamp;
use crate::notify::{LocalTime, NotificationRequest, QuietHours, Strategy, Target};
use crate::sip_addr::parse_extension;

pub const MAX_TARGETS: usize = 20;
pub const MAX_NOTIFICATION_ID_CHARS: usize = 100;

type Detail = String;

/// A valid notification and the id the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedNotification {
    pub requested_id: Option<String>,
    pub request: NotificationRequest,
}

fn flag(obj: &Map<String, Value>, key: &str) -> Result<bool, Detail> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{key} must be true or false")),
    }
}

fn target(v: &Value, i: usize) -> Result<Target, Detail> {
    let name = format!("targets[{i}]");
    let (extension, ring_timeout) = match v {
        Value::String(s) => (s.clone(), 30),
        Value::Object(obj) => (
            required_text(obj, "extension", &format!("{name}.extension"))?,
            bounded_int(obj, "ring_timeout", &format!("{name}.ring_timeout"), 5, 120, 30)?,
        ),
        _ => {
            return Err(format!(
                "{name} must be an extension string or an object with extension and ring_timeout"
            ))
        }
    };
    let extension = extension.trim().to_string();
    if extension.is_empty() {
        return Err(format!("{name} must not be empty"));
    }
    parse_extension(&extension).map_err(|rule| format!("{name} {rule}"))?;
    Ok(Target {
        extension,
        ring_timeout,
    })
}

fn targets(obj: &Map<String, Value>) -> Result<Vec<Target>, Detail> {
    let items = match obj.get("targets") {
        None | Some(Value::Null) => return Err("targets is required".into()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("targets must be an array of extensions".into()),
    };
    if items.is_empty() || items.len() > MAX_TARGETS {
        return Err(format!(
            "targets must hold 1 to {MAX_TARGETS} entries (got {})",
            items.len()
        ));
    }
    let list = items
        .iter()
        .enumerate()
        .map(|(i, v)| target(v, i))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in list.iter().enumerate() {
        if let Some(j) = list[..i].iter().position(|o| o.extension == t.extension) {
            return Err(format!("targets[{i}] '{}' repeats targets[{j}]", t.extension));
        }
    }
    Ok(list)
}

fn strategy(obj: &Map<String, Value>) -> Result<Strategy, Detail> {
    match obj.get("strategy") {
        None | Some(Value::Null) => Ok(Strategy::Sequential),
        Some(Value::String(s)) if s == "sequential" => Ok(Strategy::Sequential),
        Some(Value::String(s)) if s == "parallel" => Ok(Strategy::Parallel),
        Some(_) => Err("strategy must be 'sequential' or 'parallel'".into()),
    }
}

/// A list of option values (`acknowledge`, `refuse`); each must be one of `options`.
fn values(
    obj: &Map<String, Value>,
    key: &str,
    options: Option<&[String]>,
) -> Result<Option<Vec<String>>, Detail> {
    let items = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("{key} must be an array of option values")),
    };
    let Some(options) = options else {
        return Err(format!("{key} needs a choice: it lists values of choice.options"));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let Value::String(s) = v else {
            return Err(format!("{key}[{i}] must be a string"));
        };
        if !options.iter().any(|o| o == s) {
            return Err(format!(
                "{key}[{i}] '{s}' is not a value of choice.options ({})",
                options.join(", ")
            ));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(Some(out))
}

fn quiet_hours(obj: &Map<String, Value>) -> Result<Option<QuietHours>, Detail> {
    let q = match obj.get("quiet_hours") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(q)) => q,
        Some(_) => return Err("quiet_hours must be an object with from, to and timezone".into()),
    };
    let time = |key: &str| -> Result<LocalTime, Detail> {
        let name = format!("quiet_hours.{key}");
        let text = required_text(q, key, &name)?;
        LocalTime::parse(&text)
            .ok_or_else(|| format!("{name} must be a time of day HH:MM from 00:00 to 23:59 (got '{text}')"))
    };
    let (from, to) = (time("from")?, time("to")?);
    if from == to {
        return Err("quiet_hours.from and quiet_hours.to must differ".into());
    }
    let timezone = required_text(q, "timezone", "quiet_hours.timezone")?;
    if timezone.len() > 64 || jiff::tz::TimeZone::get(&timezone).is_err() {
        return Err(format!(
            "quiet_hours.timezone must be an IANA time zone name such as Europe/Berlin (got '{timezone}')"
        ));
    }
    Ok(Some(QuietHours { from, to, timezone }))
}

fn notification_id(obj: &Map<String, Value>) -> Result<Option<String>, Detail> {
    let s = match obj.get("notification_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(_) => return Err("notification_id must be a string or null".into()),
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_~:@-".contains(c);
    if s.is_empty() || s.len() > MAX_NOTIFICATION_ID_CHARS || !s.chars().all(ok_char) {
        return Err(format!(
            "notification_id must be 1 to {MAX_NOTIFICATION_ID_CHARS} characters of letters, digits and _ ~ : @ - (got '{s}')"
        ));
    }
    Ok(Some(s.clone()))
}

/// Validate a `POST /notifications` body received at `now`.
pub fn parse_notification_request(body: &[u8], now: Timestamp) -> Result<AcceptedNotification, Detail> {
    let obj = json_object(body)?;
    let message = required_text(&obj, "message", "message")?;
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!("message must be at most {MAX_MESSAGE_CHARS} characters"));
    }
    let targets = targets(&obj)?;
    let callback_url = callback_url(&obj)?;
    let callback_each = flag(&obj, "callback_each")?;
    if callback_each && callback_url.is_none() {
        return Err("callback_each needs a callback_url".into());
    }
    let choice = match obj.get("choice") {
        None | Some(Value::Null) => None,
        Some(v) => Some(choice(v)?),
    };
    let option_values: Option<Vec<String>> = choice
        .as_ref()
        .map(|c| c.options.iter().map(|o| o.value.clone()).collect());
    let refuse = values(&obj, "refuse", option_values.as_deref())?.unwrap_or_default();
    let acknowledge = match values(&obj, "acknowledge", option_values.as_deref())? {
        Some(list) if list.is_empty() => return Err("acknowledge must list at least one option value".into()),
        Some(list) => list,
        None => option_values
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !refuse.contains(v))
            .collect(),
    };
    if let Some(v) = acknowledge.iter().find(|v| refuse.contains(v)) {
        return Err(format!("'{v}' is in both acknowledge and refuse"));
    }
    if choice.is_some() && acknowledge.is_empty() {
        return Err("every option is in refuse: nothing could acknowledge".into());
    }
    let n = i64::try_from(targets.len()).unwrap_or(i64::MAX);
    let quorum = bounded_int(&obj, "quorum", "quorum", 1, n, 1)?;
    Ok(AcceptedNotification {
        requested_id: notification_id(&obj)?,
        request: NotificationRequest {
            message,
            choice,
            callback_url,
            callback_each,
            language: language(&obj)?,
            voice: optional_name(&obj, "voice", "voice", 64)?,
            targets,
            strategy: strategy(&obj)?,
            quorum,
            acknowledge,
            refuse,
            rounds: bounded_int(&obj, "rounds", "rounds", 1, 10, 1)?,
            round_interval_seconds: bounded_int(
                &obj,
                "round_interval_seconds",
                "round_interval_seconds",
                30,
                3600,
                120,
            )?,
            not_before: not_before(&obj, now)?,
            quiet_hours: quiet_hours(&obj)?,
            urgent: flag(&obj, "urgent")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Timestamp = Timestamp(1_780_000_000_000);

    fn ok(v: Value) -> NotificationRequest {
        parse_notification_request(v.to_string().as_bytes(), NOW)
            .expect("valid")
            .request
    }

    fn detail(v: Value) -> String {
        parse_notification_request(v.to_string().as_bytes(), NOW).expect_err("should be rejected")
    }

    #[test]
    fn defaults_are_filled() {
        let r = ok(json!({"message": "m", "targets": ["1001", {"extension": "1002", "ring_timeout": 15}]}));
        assert_eq!(r.strategy, Strategy::Sequential);
        assert_eq!((r.quorum, r.rounds, r.round_interval_seconds), (1, 1, 120));
        assert_eq!(r.targets[0].ring_timeout, 30);
        assert_eq!(r.targets[1].ring_timeout, 15);
        assert!(r.acknowledge.is_empty() && r.refuse.is_empty());
        assert!(!r.urgent && !r.callback_each);
        let r = ok(json!({"message": "m", "targets": ["1001"],
            "choice": {"prompt": "p", "options": [{"value": "yes"}, {"value": "no"}, {"value": "never"}]},
            "refuse": ["never"]}));
        assert_eq!(r.acknowledge, ["yes", "no"], "every option but the refusing ones");
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let base = || json!({"message": "m", "targets": ["1001", "1002"]});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            detail(b)
        };
        assert_eq!(detail(json!({"message": "m"})), "targets is required");
        assert_eq!(
            with("targets", json!([])),
            "targets must hold 1 to 20 entries (got 0)"
        );
        assert_eq!(
            with("targets", json!(vec!["1001"; 21])),
            "targets must hold 1 to 20 entries (got 21)"
        );
        assert_eq!(
            with("targets", json!(["1001", "1001"])),
            "targets[1] '1001' repeats targets[0]"
        );
        assert_eq!(
            with("targets", json!([{"extension": "1001", "ring_timeout": 500}])),
            "targets[0].ring_timeout must be between 5 and 120 (got 500)"
        );
        assert!(with("targets", json!(["<1001>"])).starts_with("targets[0] "));
        assert_eq!(
            with("targets", json!([5])),
            "targets[0] must be an extension string or an object with extension and ring_timeout"
        );
        assert_eq!(
            with("strategy", json!("random")),
            "strategy must be 'sequential' or 'parallel'"
        );
        assert_eq!(with("quorum", json!(3)), "quorum must be between 1 and 2 (got 3)");
        assert_eq!(
            with("rounds", json!(11)),
            "rounds must be between 1 and 10 (got 11)"
        );
        assert_eq!(
            with("round_interval_seconds", json!(10)),
            "round_interval_seconds must be between 30 and 3600 (got 10)"
        );
        assert_eq!(with("urgent", json!("yes")), "urgent must be true or false");
        assert_eq!(
            with("acknowledge", json!(["yes"])),
            "acknowledge needs a choice: it lists values of choice.options"
        );
        assert_eq!(
            with("callback_each", json!(true)),
            "callback_each needs a callback_url"
        );
        assert_eq!(
            with(
                "quiet_hours",
                json!({"from": "22:00", "to": "7:00", "timezone": "Europe/Berlin"})
            ),
            "quiet_hours.to must be a time of day HH:MM from 00:00 to 23:59 (got '7:00')"
        );
        assert_eq!(
            with(
                "quiet_hours",
                json!({"from": "22:00", "to": "07:00", "timezone": "Mars/Olympus"})
            ),
            "quiet_hours.timezone must be an IANA time zone name such as Europe/Berlin (got 'Mars/Olympus')"
        );
        assert_eq!(
            with(
                "quiet_hours",
                json!({"from": "07:00", "to": "07:00", "timezone": "UTC"})
            ),
            "quiet_hours.from and quiet_hours.to must differ"
        );
        assert!(with("notification_id", json!("a b")).starts_with("notification_id must be 1 to 100"));
        assert!(with("not_before", json!("soon")).starts_with("not_before must be an RFC 3339"));
        let mut b = base();
        b["choice"] = json!({"prompt": "p", "options": [{"value": "yes"}, {"value": "no"}]});
        b["acknowledge"] = json!(["maybe"]);
        assert_eq!(
            detail(b.clone()),
            "acknowledge[0] 'maybe' is not a value of choice.options (yes, no)"
        );
        b["acknowledge"] = json!(["yes"]);
        b["refuse"] = json!(["yes"]);
        assert_eq!(detail(b.clone()), "'yes' is in both acknowledge and refuse");
        b["acknowledge"] = Value::Null;
        b["refuse"] = json!(["yes", "no"]);
        assert_eq!(detail(b), "every option is in refuse: nothing could acknowledge");
    }

    #[test]
    fn quiet_hours_and_not_before_are_kept() {
        let r = ok(json!({"message": "m", "targets": ["1001"], "urgent": true,
            "not_before": "2026-05-29T07:00:00+02:00",
            "quiet_hours": {"from": "22:00", "to": "07:00", "timezone": "Europe/Berlin"}}));
        let q = r.quiet_hours.expect("quiet hours");
        assert_eq!(
            (q.from.to_string(), q.to.to_string()),
            ("22:00".into(), "07:00".into())
        );
        assert_eq!(r.not_before, Some(Timestamp(1_780_030_800_000)));
        assert!(r.urgent);
    }
}
