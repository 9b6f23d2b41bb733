//! A notification as data: the validated request, the stored record, its attempts and statuses.
//! The record is also the state of the machine in [`super::machine`]: storing it stores the state.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::call::{CallStatus, Choice, Timestamp, WebhookView};

/// One target at a time, in order (`sequential`), or every target at once (`parallel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Sequential,
    Parallel,
}

/// Someone to call: an extension or SIP URI and how long to let it ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub extension: String,
    pub ring_timeout: u32,
}

/// A wall-clock time of day (`HH:MM`, 24 hours) in the notification's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime {
    pub hour: u8,
    pub minute: u8,
}

impl LocalTime {
    /// `HH:MM` with `HH` 00-23 and `MM` 00-59.
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let hour: u8 = h.parse().ok()?;
        let minute: u8 = m.parse().ok()?;
        (hour < 24 && minute < 60).then_some(Self { hour, minute })
    }

    pub fn minutes(self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}

impl std::fmt::Display for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not HH:MM: {text}")))
    }
}

/// No call starts from `from` to `to` (local time in `timezone`, an IANA name); `from` later
/// than `to` spans midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub from: LocalTime,
    pub to: LocalTime,
    pub timezone: String,
}

/// A validated `POST /notifications` body, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRequest {
    pub message: String,
    pub choice: Option<Choice>,
    pub callback_url: Option<String>,
    /// Each attempt posts its own call webhook too (to `callback_url`).
    pub callback_each: bool,
    pub language: Option<String>,
    pub voice: Option<String>,
    pub targets: Vec<Target>,
    pub strategy: Strategy,
    pub quorum: u32,
    /// Option values that acknowledge; empty without a `choice` (then a message played in full
    /// acknowledges).
    pub acknowledge: Vec<String>,
    /// Option values that refuse: the target is not called again.
    pub refuse: Vec<String>,
    pub rounds: u32,
    pub round_interval_seconds: u32,
    pub not_before: Option<Timestamp>,
    pub quiet_hours: Option<QuietHours>,
    /// Calls start inside quiet hours too.
    pub urgent: bool,
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// No call has started yet (waiting for `not_before`, quiet hours or a free slot).
    Scheduled,
    /// Calls are being placed.
    Running,
    /// The quorum acknowledged.
    Acknowledged,
    /// Every round ended (or too many targets refused) without the quorum.
    Exhausted,
    /// `DELETE /notifications/{id}`.
    Cancelled,
}

impl NotificationStatus {
    pub const ALL: [NotificationStatus; 5] = [
        NotificationStatus::Scheduled,
        NotificationStatus::Running,
        NotificationStatus::Acknowledged,
        NotificationStatus::Exhausted,
        NotificationStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Scheduled => "scheduled",
            NotificationStatus::Running => "running",
            NotificationStatus::Acknowledged => "acknowledged",
            NotificationStatus::Exhausted => "exhausted",
            NotificationStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            NotificationStatus::Acknowledged | NotificationStatus::Exhausted | NotificationStatus::Cancelled
        )
    }
}

/// Why no call is being placed right now although the notification goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    NotBefore,
    QuietHours,
    RoundInterval,
}

/// One call of a notification: an ordinary call record under `call_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based.
    pub round: u32,
    /// Index into the request's `targets`.
    pub target: usize,
    pub extension: String,
    pub call_id: String,
    /// The call's status: `queued` until it ends.
    pub status: CallStatus,
    pub choice_response: Option<String>,
    pub error: Option<String>,
    pub acknowledged: bool,
    pub refused: bool,
    pub created_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

impl Attempt {
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }
}

/// A target that acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub target: usize,
    pub extension: String,
    pub call_id: String,
    pub at: Timestamp,
    pub choice_response: Option<String>,
}

/// Everything stored about one notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub notification_id: String,
    /// Order of acceptance.
    pub seq: u64,
    pub status: NotificationStatus,
    pub request: NotificationRequest,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set once the status is final and no attempt is still running: the final webhook is queued
    /// in the same write.
    pub ended_at: Option<Timestamp>,
    /// The round being placed (0 before the first call).
    pub round: u32,
    /// When the next call may start, while waiting.
    pub next_attempt_at: Option<Timestamp>,
    pub waiting: Option<Waiting>,
    pub attempts: Vec<Attempt>,
    pub acknowledged_by: Vec<Acknowledgement>,
    /// Why it ended, in words.
    pub reason: Option<String>,
    pub webhook: Option<WebhookView>,
}

impl NotificationRecord {
    pub fn new(notification_id: String, seq: u64, request: NotificationRequest, now: Timestamp) -> Self {
        Self {
            notification_id,
            seq,
            status: NotificationStatus::Scheduled,
            request,
            created_at: now,
            updated_at: now,
            ended_at: None,
            round: 0,
            next_attempt_at: None,
            waiting: None,
            attempts: Vec::new(),
            acknowledged_by: Vec::new(),
            reason: None,
            webhook: None,
        }
    }

    /// The call id of the attempt on `target` in `round`: the same step always gets the same id,
    /// so placing it twice (after a restart) is refused by the store instead of dialling twice.
    pub fn attempt_call_id(&self, round: u32, target: usize) -> String {
        format!("{}.r{round}.t{target}", self.notification_id)
    }

    /// Whether the record is done: final status, every attempt ended, webhook queued.
    pub fn is_settled(&self) -> bool {
        self.ended_at.is_some()
    }

    pub fn in_flight(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| !a.is_final())
    }
}

/// The body of the final webhook: the record without its webhook state.
pub fn webhook_body(r: &NotificationRecord) -> String {
    let mut view = r.clone();
    view.webhook = None;
    let mut value = serde_json::to_value(&view).unwrap_or_else(|_| serde_json::json!({}));
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("event".into(), "notification.ended".into());
        map.remove("webhook");
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_parse_and_print() {
        assert_eq!(LocalTime::parse("07:05").map(|t| t.minutes()), Some(425));
        assert_eq!(
            LocalTime::parse("23:59").map(|t| t.to_string()).as_deref(),
            Some("23:59")
        );
        for bad in ["24:00", "7:00", "07:60", "0700", "ab:cd", "07:00:00", ""] {
            assert_eq!(LocalTime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_names_round_trip() {
        for st in NotificationStatus::ALL {
            assert_eq!(
                serde_json::to_string(&st).expect("json"),
                format!("\"{}\"", st.as_str())
            );
            assert_eq!(NotificationStatus::parse(st.as_str()), Some(st));
        }
        assert!(NotificationStatus::Cancelled.is_final());
        assert!(!NotificationStatus::Running.is_final());
    }
}
