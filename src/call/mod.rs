//! A call as data: the validated request, the stored record with its timeline, and the engine seam
//! through which the SIP, media and speech layers place calls.

mod engine;
mod model;
pub mod script;
mod time;

pub use engine::{
    ActiveCall, CallEngine, CallEvents, CallOutcome, CancelHandle, CancelSignal, FinalStatus, Progress,
    UnavailableEngine, UNAVAILABLE,
};
pub use model::{
    CallRecord, CallRequest, CallStatus, Choice, ChoiceOption, MediaHealth, TimelineEvent, WebhookAttempt,
    WebhookState, WebhookView,
};
pub use time::Timestamp;
