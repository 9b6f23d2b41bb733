//! The seam between scheduling and telephony: a [`CallEngine`] places one call and reports how it
//! ended. The SIP, media and speech layers implement it; until they exist the service runs
//! [`UnavailableEngine`], which fails every call with an honest error instead of pretending.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::model::{CallRequest, CallStatus, TimelineEvent};
use crate::sip::ua::SavedDialog;

/// How a placed call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    Completed,
    NoAnswer,
    Busy,
    Failed,
}

impl From<FinalStatus> for CallStatus {
    fn from(s: FinalStatus) -> Self {
        match s {
            FinalStatus::Completed => CallStatus::Completed,
            FinalStatus::NoAnswer => CallStatus::NoAnswer,
            FinalStatus::Busy => CallStatus::Busy,
            FinalStatus::Failed => CallStatus::Failed,
        }
    }
}

/// The result an engine hands back when a call is over.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    pub status: FinalStatus,
    pub error: Option<String>,
    pub message_played: bool,
    pub choice_response: Option<String>,
    pub choice_raw_text: Option<String>,
    /// How `choice_response` was settled.
    pub confirmed_by: Option<super::model::ConfirmedBy>,
    /// Media health, when the call had media.
    pub media: Option<super::model::MediaHealth>,
}

impl CallOutcome {
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            status: FinalStatus::Failed,
            error: Some(error.into()),
            message_played: false,
            choice_response: None,
            choice_raw_text: None,
            confirmed_by: None,
            media: None,
        }
    }
}

/// What a call script reports back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptResult {
    pub message_played: bool,
    pub choice_response: Option<String>,
    pub choice_raw_text: Option<String>,
    /// How `choice_response` was settled.
    pub confirmed_by: Option<super::model::ConfirmedBy>,
    /// Set when the script failed (e.g. a speech engine error); the call still ends `completed`.
    pub error: Option<String>,
}

/// Progress an engine reports while a call runs; the shell timestamps and stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Ringing,
    Answered,
    /// Any other timeline step (message_started, heard, matched, ...).
    Event {
        name: TimelineEvent,
        detail: Option<String>,
    },
    /// The call's SIP dialog (at the answer, and when it changes): kept durably with the call,
    /// so a BYE can end it after a crash.
    Dialog(SavedDialog),
}

/// Where an engine reports progress.
#[derive(Clone)]
pub struct CallEvents(Arc<dyn Fn(Progress) + Send + Sync>);

impl CallEvents {
    pub fn new(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Record `p`.
    pub fn report(&self, p: Progress) {
        (self.0)(p);
    }

    pub fn ringing(&self) {
        (self.0)(Progress::Ringing);
    }

    pub fn event(&self, name: TimelineEvent, detail: Option<String>) {
        (self.0)(Progress::Event { name, detail });
    }
}

/// Fires when the call should end early (API cancel, shutdown deadline).
#[derive(Clone)]
pub struct CancelSignal(async_channel::Receiver<()>);

/// The owner's side of a [`CancelSignal`]; dropping it does not cancel.
pub struct CancelHandle(async_channel::Sender<()>);

impl CancelSignal {
    pub fn pair() -> (CancelHandle, CancelSignal) {
        let (tx, rx) = async_channel::bounded(1);
        (CancelHandle(tx), CancelSignal(rx))
    }

    /// Resolves once cancellation was requested.
    pub async fn cancelled(&self) {
        // A message or a closed channel both mean "cancel".
        let _ = self.0.recv().await;
    }

    pub fn is_cancelled(&self) -> bool {
        !self.0.is_empty() || self.0.is_closed()
    }
}

impl CancelHandle {
    pub fn cancel(&self) {
        let _ = self.0.try_send(());
    }
}

/// One call handed to an engine.
pub struct ActiveCall {
    pub call_id: String,
    pub request: CallRequest,
    pub events: CallEvents,
    pub cancel: CancelSignal,
}

/// Places calls. Implementations must end every call they are given with an outcome, also when
/// cancelled (the scheduler then records "cancelled by API request" or the shutdown reason).
pub trait CallEngine: Send + Sync + 'static {
    fn place_call(&self, call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>>;

    /// Whether the engine can carry out `request` (a language or voice its speech engines lack),
    /// asked before the call is accepted; the error is the 400's detail.
    fn check_request(&self, _request: &CallRequest) -> Result<(), String> {
        Ok(())
    }

    /// Whether the engine holds an active registration (for `GET /health`).
    fn sip_registered(&self) -> bool {
        false
    }

    /// End a dialog of a call that was answered when the process died (one BYE, result logged).
    fn hang_up_recovered(&self, _dialog: SavedDialog) {}

    /// Release what the engine holds (the registration) before the process exits.
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
}

/// The engine of a build without a SIP user agent: every call fails, saying why.
pub struct UnavailableEngine;

/// The error text of [`UnavailableEngine`].
pub const UNAVAILABLE: &str = "outbound calling is unavailable: this build has no SIP user agent";

impl CallEngine for UnavailableEngine {
    fn place_call(&self, _call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>> {
        Box::pin(async { CallOutcome::failed(UNAVAILABLE) })
    }
}
