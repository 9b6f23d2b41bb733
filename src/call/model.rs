//! The typed call request, the stored call record, statuses and the timeline.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Lifecycle of a call: `queued → ringing → answered → completed | no_answer | busy | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Queued,
    Ringing,
    Answered,
    Completed,
    NoAnswer,
    Failed,
    Busy,
}

impl CallStatus {
    pub const ALL: [CallStatus; 7] = [
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::Answered,
        CallStatus::Completed,
        CallStatus::NoAnswer,
        CallStatus::Failed,
        CallStatus::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Completed => "completed",
            CallStatus::NoAnswer => "no_answer",
            CallStatus::Failed => "failed",
            CallStatus::Busy => "busy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed | CallStatus::NoAnswer | CallStatus::Failed | CallStatus::Busy
        )
    }
}

/// How the caller's choice was settled: said and understood (`speech`), keyed (`dtmf`), or said,
/// found unsure, and then confirmed by the caller when asked back (`confirmation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmedBy {
    Speech,
    Dtmf,
    Confirmation,
}

impl ConfirmedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmedBy::Speech => "speech",
            ConfirmedBy::Dtmf => "dtmf",
            ConfirmedBy::Confirmation => "confirmation",
        }
    }
}

/// One answer a caller may give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub value: String,
    #[serde(default)]
    pub synonyms: Vec<String>,
    /// The key that picks this option (`0`-`9`, `*`, `#`); without one, key N picks option N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtmf: Option<char>,
}

/// The question asked after the message, with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub prompt: String,
    pub options: Vec<ChoiceOption>,
    pub timeout_seconds: u32,
    pub repeat_count: u32,
    /// The WebAssembly hook that matches answers; `None` = the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
}

/// A validated `POST /call` body (see `api::validate`), stored as the caller sent it, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRequest {
    pub message: String,
    pub extension: String,
    pub callback_url: Option<String>,
    pub ring_timeout: u32,
    pub choice: Option<Choice>,
    /// The id the caller asked for, if any.
    pub call_id: Option<String>,
    /// BCP 47 language of message, prompt and answers; `None` = the engines' defaults.
    #[serde(default)]
    pub language: Option<String>,
    /// Synthesizer voice; `None` = the engine's default.
    #[serde(default)]
    pub voice: Option<String>,
    /// The call is not dialled before this instant. Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// The notification this call is an attempt of. Absent for plain calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
}

/// What happened, as a call's timeline names it (`event` in the API, in snake_case; listed in
/// `openapi.yaml`). Entries keep the name as text, so records stored by older versions read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineEvent {
    /// The call was accepted and waits for a slot.
    Queued,
    /// The call has a slot; the INVITE goes out.
    Started,
    /// The far end rings (180/183).
    Ringing,
    /// The far end answered (200 OK).
    Answered,
    /// Media runs: codec and where it goes.
    MediaStarted,
    /// Media could not start (an unusable SDP answer, no port).
    MediaFailed,
    /// The far end put the call on hold (re-INVITE).
    MediaHeld,
    /// The far end took the call off hold or moved its media.
    MediaResumed,
    /// Nothing arrived from the far end within 5 s of the answer.
    NoRtpReceived,
    /// The message began to play.
    MessageStarted,
    /// The message ended: played in full, or how it was cut.
    MessageEnded,
    /// The question was asked (attempt n of m).
    Prompt,
    /// The caller spoke or pressed a key during a prompt.
    BargeIn,
    /// What was heard: words, a key, or that nothing matched.
    Heard,
    /// The answer the matcher or a hook settled on.
    Matched,
    /// An answer matched no option, and why.
    NoMatch,
    /// No answer matched after every attempt.
    NoChoice,
    /// A hook asked the question again in its own words.
    Reprompt,
    /// An unsure answer is asked back.
    Confirm,
    /// The caller confirmed the answer.
    Confirmed,
    /// The caller said no to the answer asked back.
    NotConfirmed,
    /// The recogniser failed on an utterance.
    RecognizerError,
    /// A speech engine failed (the call still ends).
    SpeechFailed,
    /// This build or machine has no speech engine.
    SpeechUnavailable,
    /// A key press that came as SIP INFO or during the script.
    Dtmf,
    /// Who hung up.
    Hangup,
    /// DELETE /call/{id} asked to end the call.
    CancelRequested,
    /// Final: the call ended normally.
    Completed,
    /// Final: the call failed, with the error.
    Failed,
    /// Final: the far end was busy.
    Busy,
    /// Final: the far end did not answer in time; during the script: nothing was heard within
    /// the listen time.
    NoAnswer,
    /// The completion webhook was delivered.
    WebhookDelivered,
    /// The completion webhook gave up, with the last error.
    WebhookFailed,
}

impl TimelineEvent {
    pub const ALL: [TimelineEvent; 33] = [
        TimelineEvent::Queued,
        TimelineEvent::Started,
        TimelineEvent::Ringing,
        TimelineEvent::Answered,
        TimelineEvent::MediaStarted,
        TimelineEvent::MediaFailed,
        TimelineEvent::MediaHeld,
        TimelineEvent::MediaResumed,
        TimelineEvent::NoRtpReceived,
        TimelineEvent::MessageStarted,
        TimelineEvent::MessageEnded,
        TimelineEvent::Prompt,
        TimelineEvent::BargeIn,
        TimelineEvent::Heard,
        TimelineEvent::Matched,
        TimelineEvent::NoMatch,
        TimelineEvent::NoChoice,
        TimelineEvent::Reprompt,
        TimelineEvent::Confirm,
        TimelineEvent::Confirmed,
        TimelineEvent::NotConfirmed,
        TimelineEvent::RecognizerError,
        TimelineEvent::SpeechFailed,
        TimelineEvent::SpeechUnavailable,
        TimelineEvent::Dtmf,
        TimelineEvent::Hangup,
        TimelineEvent::CancelRequested,
        TimelineEvent::Completed,
        TimelineEvent::Failed,
        TimelineEvent::Busy,
        TimelineEvent::NoAnswer,
        TimelineEvent::WebhookDelivered,
        TimelineEvent::WebhookFailed,
    ];

    /// The name in the timeline (`event`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineEvent::Queued => "queued",
            TimelineEvent::Started => "started",
            TimelineEvent::Ringing => "ringing",
            TimelineEvent::Answered => "answered",
            TimelineEvent::MediaStarted => "media_started",
            TimelineEvent::MediaFailed => "media_failed",
            TimelineEvent::MediaHeld => "media_held",
            TimelineEvent::MediaResumed => "media_resumed",
            TimelineEvent::NoRtpReceived => "no_rtp_received",
            TimelineEvent::MessageStarted => "message_started",
            TimelineEvent::MessageEnded => "message_ended",
            TimelineEvent::Prompt => "prompt",
            TimelineEvent::BargeIn => "barge_in",
            TimelineEvent::Heard => "heard",
            TimelineEvent::Matched => "matched",
            TimelineEvent::NoMatch => "no_match",
            TimelineEvent::NoChoice => "no_choice",
            TimelineEvent::Reprompt => "reprompt",
            TimelineEvent::Confirm => "confirm",
            TimelineEvent::Confirmed => "confirmed",
            TimelineEvent::NotConfirmed => "not_confirmed",
            TimelineEvent::RecognizerError => "recognizer_error",
            TimelineEvent::SpeechFailed => "speech_failed",
            TimelineEvent::SpeechUnavailable => "speech_unavailable",
            TimelineEvent::Dtmf => "dtmf",
            TimelineEvent::Hangup => "hangup",
            TimelineEvent::CancelRequested => "cancel_requested",
            TimelineEvent::Completed => "completed",
            TimelineEvent::Failed => "failed",
            TimelineEvent::Busy => "busy",
            TimelineEvent::NoAnswer => "no_answer",
            TimelineEvent::WebhookDelivered => "webhook_delivered",
            TimelineEvent::WebhookFailed => "webhook_failed",
        }
    }
}

impl From<CallStatus> for TimelineEvent {
    /// The final event of a call that ended with `status` (and the event of reaching it).
    fn from(status: CallStatus) -> Self {
        match status {
            CallStatus::Queued => TimelineEvent::Queued,
            CallStatus::Ringing => TimelineEvent::Ringing,
            CallStatus::Answered => TimelineEvent::Answered,
            CallStatus::Completed => TimelineEvent::Completed,
            CallStatus::NoAnswer => TimelineEvent::NoAnswer,
            CallStatus::Failed => TimelineEvent::Failed,
            CallStatus::Busy => TimelineEvent::Busy,
        }
    }
}

/// One step in a call's life: when, what ([`TimelineEvent::as_str`]), and its detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Timestamp,
    pub event: String,
    pub detail: Option<String>,
}

/// State of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    Pending,
    Delivered,
    Failed,
}

/// One POST of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// What `GET /calls/{id}` shows of a call's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub state: WebhookState,
    pub attempts: Vec<WebhookAttempt>,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// Media health of a call: stored with it and sent in the webhook's `media` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaHealth {
    /// Negotiated codec: PCMU, PCMA or opus.
    pub codec: String,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub loss_percent: f64,
    pub jitter_ms: f64,
    /// No RTP arrived within 5 s of the answer: one-way audio.
    pub no_rtp_received: bool,
    /// Milliseconds from the answer (200 OK received) to the first RTP packet carrying speech;
    /// `None` when nothing was spoken. Records stored before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_to_audio_ms: Option<f64>,
    /// RTP/RTCP datagrams dropped because they did not come from the far end's SDP address (a
    /// spoofer or a stray sender on the LAN). Records stored before this field existed read 0.
    #[serde(default)]
    pub rejected_packets: u64,
    /// Media events (decoded audio, digits) dropped because the call script fell behind by more
    /// than the bounded queue holds. Records stored before this field existed read 0.
    #[serde(default)]
    pub events_dropped: u64,
}

/// Timeline events kept per call (the last one is the final event).
pub const MAX_TIMELINE_EVENTS: usize = 64;
/// Characters kept of a timeline event's name or detail.
pub const MAX_EVENT_TEXT_CHARS: usize = 512;

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_EVENT_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Everything stored about one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    /// Order of acceptance, from a persistent counter: FIFO order across restarts.
    pub seq: u64,
    pub status: CallStatus,
    pub extension: String,
    pub request: CallRequest,
    /// The notification this call is an attempt of; absent for plain calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: f64,
    pub message_played: bool,
    pub choice_response: Option<String>,
    pub choice_raw_text: Option<String>,
    /// How `choice_response` was settled; null without one. Records stored before this field
    /// existed read null.
    #[serde(default)]
    pub confirmed_by: Option<ConfirmedBy>,
    pub error: Option<String>,
    pub timeline: Vec<TimelineEntry>,
    /// Timeline events left out because the timeline was full ([`MAX_TIMELINE_EVENTS`]).
    #[serde(default)]
    pub timeline_dropped: u32,
    pub webhook: Option<WebhookView>,
    /// Media health once the call had media (absent in records written before it existed).
    #[serde(default)]
    pub media: Option<MediaHealth>,
    /// The SIP dialog while the call is answered (what a BYE needs after a crash); cleared when
    /// the call ends. Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialog: Option<crate::sip::ua::SavedDialog>,
}

impl CallRecord {
    /// A new queued record for `request` under `call_id`.
    pub fn new_queued(call_id: String, seq: u64, request: CallRequest, now: Timestamp) -> Self {
        Self {
            call_id,
            seq,
            status: CallStatus::Queued,
            extension: request.extension.clone(),
            notification_id: request.notification_id.clone(),
            request,
            created_at: now,
            updated_at: now,
            started_at: None,
            answered_at: None,
            ended_at: None,
            duration_seconds: 0.0,
            message_played: false,
            choice_response: None,
            choice_raw_text: None,
            confirmed_by: None,
            error: None,
            timeline: vec![TimelineEntry {
                at: now,
                event: TimelineEvent::Queued.as_str().into(),
                detail: None,
            }],
            timeline_dropped: 0,
            webhook: None,
            media: None,
            dialog: None,
        }
    }

    /// Append a timeline event and touch `updated_at`. A far end can make events happen (INFO,
    /// re-INVITE), so the timeline is bounded: past [`MAX_TIMELINE_EVENTS`] - 1 events the rest are
    /// counted in `timeline_dropped`; the last slot is kept for the call's final event.
    pub fn push_event(&mut self, now: Timestamp, event: TimelineEvent, detail: Option<String>) {
        self.updated_at = now;
        if self.timeline.len() + 1 >= MAX_TIMELINE_EVENTS {
            self.timeline_dropped = self.timeline_dropped.saturating_add(1);
            return;
        }
        self.append(now, event, detail);
    }

    /// Append the call's final event (always kept, once the call ends).
    pub fn push_final_event(&mut self, now: Timestamp, event: TimelineEvent, detail: Option<String>) {
        self.updated_at = now;
        self.append(now, event, detail);
    }

    fn append(&mut self, now: Timestamp, event: TimelineEvent, detail: Option<String>) {
        self.timeline.push(TimelineEntry {
            at: now,
            event: event.as_str().into(),
            detail: detail.map(|d| bounded(&d)),
        });
    }

    /// Whether the call is waiting for a slot (never started).
    pub fn is_waiting(&self) -> bool {
        self.status == CallStatus::Queued && self.started_at.is_none()
    }

    /// Queued, ringing or answered: the seed's `in_progress`.
    pub fn is_in_progress(&self) -> bool {
        !self.status.is_final()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_is_bounded_and_keeps_the_final_event() {
        let req: CallRequest = serde_json::from_value(serde_json::json!({
            "message": "m", "extension": "1001", "callback_url": null, "ring_timeout": 30,
            "choice": null, "call_id": null
        }))
        .expect("request");
        let t = Timestamp::now();
        let mut r = CallRecord::new_queued("c".into(), 1, req, t);
        for _ in 0..10_000 {
            r.push_event(t, TimelineEvent::Dtmf, Some("x".repeat(1_000)));
        }
        assert_eq!(r.timeline.len(), MAX_TIMELINE_EVENTS - 1);
        assert_eq!(r.timeline_dropped as usize, 10_000 - (MAX_TIMELINE_EVENTS - 2));
        assert!(r.timeline[1]
            .detail
            .as_ref()
            .is_some_and(|d| d.chars().count() == MAX_EVENT_TEXT_CHARS + 1));
        r.push_final_event(t, TimelineEvent::Completed, None);
        assert_eq!(r.timeline.len(), MAX_TIMELINE_EVENTS);
        assert_eq!(r.timeline.last().map(|e| e.event.as_str()), Some("completed"));
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["timeline_dropped"], 9_938);
        assert!(
            serde_json::to_string(&r).expect("json").len() < 64 * 1024,
            "the record stays small"
        );
    }

    #[test]
    fn status_names_round_trip() {
        for st in CallStatus::ALL {
            let json = serde_json::to_string(&st).expect("serialise");
            assert_eq!(json, format!("\"{}\"", st.as_str()));
            assert_eq!(CallStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(CallStatus::parse("done"), None);
        assert!(CallStatus::NoAnswer.is_final());
        assert!(!CallStatus::Answered.is_final());
    }
}
