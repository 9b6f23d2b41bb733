//! The webhook retry plan, sans-IO: what a delivery is, how an attempt's result is judged, and when
//! the next attempt is due. Time and randomness are arguments; the worker in `delivery.rs` does I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::call::{Timestamp, WebhookAttempt, WebhookState, WebhookView};

/// A webhook waiting in (or leaving) the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `Webhook-Id`: unique per delivery (a call id may be reused once its record is gone), stable
    /// across the attempts of this delivery. Chosen by the caller ([`new_delivery_id`]).
    pub id: String,
    /// The call it reports on, or the notification's id when [`Delivery::notification`] is set.
    pub call_id: String,
    /// The final webhook of a notification (`call_id` holds the notification id). Deliveries
    /// stored before notifications existed read false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notification: bool,
    pub url: String,
    /// The exact body sent on every attempt.
    pub body: String,
    pub created_at: Timestamp,
    pub state: WebhookState,
    pub attempts: Vec<WebhookAttempt>,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl Delivery {
    /// A pending delivery under `id` (see [`new_delivery_id`]), first attempt due `now`.
    pub fn new(id: &str, call_id: &str, url: &str, body: String, now: Timestamp) -> Self {
        Self {
            id: id.into(),
            call_id: call_id.into(),
            notification: false,
            url: url.into(),
            body,
            created_at: now,
            state: WebhookState::Pending,
            attempts: Vec::new(),
            next_attempt_at: Some(now),
            last_error: None,
        }
    }

    pub fn view(&self) -> WebhookView {
        WebhookView {
            id: self.id.clone(),
            url: self.url.clone(),
            state: self.state,
            attempts: self.attempts.clone(),
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
        }
    }

    /// Record an attempt and decide what follows, per `policy`. `jitter` is uniform in [0, 1).
    pub fn record_attempt(
        &mut self,
        policy: &RetryPolicy,
        result: AttemptResult,
        now: Timestamp,
        jitter: f64,
    ) {
        self.attempts.push(WebhookAttempt {
            at: now,
            status_code: result.status,
            error: result.error.clone(),
            duration_ms: result.duration_ms,
        });
        match policy.judge(&result) {
            AttemptVerdict::Delivered => {
                self.state = WebhookState::Delivered;
                self.next_attempt_at = None;
                self.last_error = None;
            }
            AttemptVerdict::GiveUp(why) => {
                self.state = WebhookState::Failed;
                self.next_attempt_at = None;
                self.last_error = Some(why);
            }
            AttemptVerdict::Retry => {
                let why = result.describe();
                match policy.next_attempt(
                    self.created_at,
                    now,
                    self.attempts.len(),
                    result.retry_after,
                    jitter,
                ) {
                    Some(at) => {
                        self.next_attempt_at = Some(at);
                        self.last_error = Some(why);
                    }
                    None => {
                        self.state = WebhookState::Failed;
                        self.next_attempt_at = None;
                        self.last_error = Some(format!(
                            "gave up after {} attempts over {} s: {why}",
                            self.attempts.len(),
                            policy.max_age.as_secs()
                        ));
                    }
                }
            }
        }
    }
}

/// A delivery id from 128 random bits: `wh-` and 32 hex digits. Unlike an id derived from the
/// call id, it differs for two calls that reuse an id (a client-supplied `call_id` after the old
/// record was deleted, or generated ids after the data dir was reset), so receivers that
/// deduplicate on `Webhook-Id` never drop a new call's webhook.
pub fn new_delivery_id(random: u128) -> String {
    format!("wh-{random:032x}")
}

/// What one POST came back with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttemptResult {
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// A transport error (connect refused, timeout, TLS), if no response arrived.
    pub error: Option<String>,
    /// The `Retry-After` of the response, already turned into a delay.
    pub retry_after: Option<Duration>,
    pub duration_ms: u64,
}

impl AttemptResult {
    fn describe(&self) -> String {
        match (self.status, &self.error) {
            (_, Some(e)) => e.clone(),
            (Some(s), None) => format!("HTTP {s}"),
            (None, None) => "no response".into(),
        }
    }
}

/// How an attempt is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptVerdict {
    Delivered,
    Retry,
    GiveUp(String),
}

/// Backoff and give-up rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// No attempt is scheduled later than `created_at + max_age`.
    pub max_age: Duration,
}

impl RetryPolicy {
    /// 2xx delivers; connection errors, timeouts, 408, 429 and 5xx retry; other statuses give up.
    pub fn judge(&self, r: &AttemptResult) -> AttemptVerdict {
        match (r.status, &r.error) {
            (_, Some(_)) | (None, None) => AttemptVerdict::Retry,
            (Some(s), None) if (200..300).contains(&s) => AttemptVerdict::Delivered,
            (Some(s), None) if s == 408 || s == 429 || s >= 500 => AttemptVerdict::Retry,
            (Some(s), None) => AttemptVerdict::GiveUp(format!("HTTP {s}: the receiver rejected the webhook")),
        }
    }

    /// When attempt number `attempts + 1` is due: exponential backoff `initial * 2^(attempts-1)`
    /// capped at `max_backoff`, with "equal jitter" (half fixed, half random), or the server's
    /// `Retry-After` when it asks for longer. `None` once that would pass the give-up time.
    pub fn next_attempt(
        &self,
        created_at: Timestamp,
        now: Timestamp,
        attempts: usize,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Timestamp> {
        let exp = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let half = base / 2;
        let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        let delay = match retry_after {
            Some(ra) if ra > jittered => ra.min(self.max_age),
            _ => jittered,
        };
        let at = now.plus_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        let deadline = created_at.plus_millis(u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX));
        (at <= deadline).then_some(at)
    }
}

/// Parse a `Retry-After` value (delta-seconds or an HTTP date) into a delay from `now`.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = Timestamp::from(httpdate::parse_http_date(v).ok()?);
    Some(Duration::from_millis(when.millis_since(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        }
    }

    fn status(s: u16) -> AttemptResult {
        AttemptResult {
            status: Some(s),
            ..Default::default()
        }
    }

    #[test]
    fn judges_statuses() {
        let p = policy();
        assert_eq!(p.judge(&status(200)), AttemptVerdict::Delivered);
        assert_eq!(p.judge(&status(204)), AttemptVerdict::Delivered);
        for s in [408, 429, 500, 502, 503] {
            assert_eq!(p.judge(&status(s)), AttemptVerdict::Retry, "{s}");
        }
        for s in [400, 401, 404, 410] {
            assert!(matches!(p.judge(&status(s)), AttemptVerdict::GiveUp(_)), "{s}");
        }
        let refused = AttemptResult {
            error: Some("connection refused".into()),
            ..Default::default()
        };
        assert_eq!(p.judge(&refused), AttemptVerdict::Retry);
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let p = policy();
        let t0 = Timestamp(1_000_000);
        for (attempts, base_ms) in [(1u64, 1000u64), (2, 2000), (3, 4000), (7, 60_000), (20, 60_000)] {
            let lo = p.next_attempt(t0, t0, attempts as usize, None, 0.0).expect("due");
            let hi = p
                .next_attempt(t0, t0, attempts as usize, None, 0.999_999)
                .expect("due");
            assert_eq!(lo.0 - t0.0, base_ms / 2, "attempt {attempts}");
            assert!(
                hi.0 - t0.0 <= base_ms && hi.0 - t0.0 >= base_ms - 1,
                "attempt {attempts}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_the_window_ends() {
        let p = policy();
        let t0 = Timestamp(1_000_000);
        let at = p
            .next_attempt(t0, t0, 1, Some(Duration::from_secs(120)), 0.5)
            .expect("due");
        assert_eq!(at.0 - t0.0, 120_000);
        let late = t0.plus_millis(3_599_500);
        assert_eq!(p.next_attempt(t0, late, 1, None, 0.5), None);
    }

    #[test]
    fn retry_after_forms() {
        let now = Timestamp::from(httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").expect("date"));
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn delivery_ids_are_wh_and_32_hex_digits() {
        assert_eq!(new_delivery_id(0xab), format!("wh-{}ab", "0".repeat(30)));
        assert_ne!(new_delivery_id(1), new_delivery_id(2));
    }

    #[test]
    fn a_delivery_walks_to_delivered_or_failed() {
        let p = policy();
        let t0 = Timestamp(5_000_000);
        let mut d = Delivery::new("wh-1", "c1", "http://127.0.0.1/x", "{}".into(), t0);
        assert_eq!(d.id, "wh-1");
        d.record_attempt(&p, status(503), t0, 0.0);
        assert_eq!(d.state, WebhookState::Pending);
        assert_eq!(d.next_attempt_at, Some(t0.plus_millis(500)));
        assert_eq!(d.last_error.as_deref(), Some("HTTP 503"));
        d.record_attempt(&p, status(200), t0.plus_millis(500), 0.0);
        assert_eq!(d.state, WebhookState::Delivered);
        assert_eq!(d.attempts.len(), 2);

        let mut g = Delivery::new("wh-2", "c2", "http://127.0.0.1/x", "{}".into(), t0);
        g.record_attempt(&p, status(404), t0, 0.0);
        assert_eq!(g.state, WebhookState::Failed);
        assert_eq!(g.next_attempt_at, None);
    }
}
