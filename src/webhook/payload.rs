//! The JSON body POSTed to `callback_url`: the seed's `WebhookPayload` fields, plus `ended_at`.

use serde::Serialize;

use crate::call::{CallRecord, CallStatus, ConfirmedBy, MediaHealth, Timestamp};

#[derive(Debug, Clone, Serialize)]
pub struct WebhookPayload<'a> {
    pub call_id: &'a str,
    pub status: CallStatus,
    pub extension: &'a str,
    pub duration_seconds: f64,
    pub message_played: bool,
    pub choice_response: Option<&'a str>,
    pub choice_raw_text: Option<&'a str>,
    /// How `choice_response` was settled (`speech`, `dtmf`, `confirmation`); null without one.
    pub confirmed_by: Option<ConfirmedBy>,
    pub error: Option<&'a str>,
    pub ended_at: Option<Timestamp>,
    /// Present once the call had media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<&'a MediaHealth>,
}

impl<'a> WebhookPayload<'a> {
    pub fn of(r: &'a CallRecord) -> Self {
        Self {
            call_id: &r.call_id,
            status: r.status,
            extension: &r.extension,
            duration_seconds: r.duration_seconds,
            message_played: r.message_played,
            choice_response: r.choice_response.as_deref(),
            choice_raw_text: r.choice_raw_text.as_deref(),
            confirmed_by: r.confirmed_by,
            error: r.error.as_deref(),
            ended_at: r.ended_at,
            media: r.media.as_ref(),
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("payload serialises: {e}"))
    }
}
