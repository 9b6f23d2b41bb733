//! Notifications, sans-IO: call a list of people until enough of them acknowledge. The request
//! and the record ([`model`]), the state machine over the record ([`machine`]) and when a call may
//! start ([`quiet`]: `not_before`, quiet hours in an IANA time zone). The shell that stores the
//! record, places the attempts through the scheduler and sends the final webhook is
//! `crate::notifier`.

pub mod machine;
pub mod model;
pub mod quiet;
#[cfg(test)]
pub(crate) mod tests;

pub use machine::{advance, attempt_ended, cancel, Action, CallResult};
pub use model::{
    webhook_body, Acknowledgement, Attempt, LocalTime, NotificationRecord, NotificationRequest,
    NotificationStatus, QuietHours, Strategy, Target, Waiting,
};
