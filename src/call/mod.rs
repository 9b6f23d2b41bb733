//! A call as data: the validated request, the stored record with its timeline, and the engine seam
//! through which the SIP, media and speech layers place calls. What happens during a call (the
//! call flow, the script, confirmation) is in [`crate::flow`].

mod engine;
mod model;
mod time;

pub use engine::{
    ActiveCall, CallEngine, CallEvents, CallOutcome, CancelHandle, CancelSignal, FinalStatus, Progress,
    ScriptResult, UnavailableEngine, UNAVAILABLE,
};
pub use model::{
    CallRecord, CallRequest, CallStatus, Choice, ChoiceOption, ConfirmedBy, MediaHealth, TimelineEntry,
    TimelineEvent, WebhookAttempt, WebhookState, WebhookView,
};
pub use time::Timestamp;
