//! The I/O shell around the sans-IO cores: sockets, connections, timers.

pub mod decider;
pub mod framing;
pub mod media;
pub mod media_socket;
pub mod prompt_frames;
pub mod script;
pub mod sip;
pub mod speech_script;
pub mod speech_setup;
pub mod tcp;
pub mod webhook_worker;

pub use decider::HookDecider;
pub use sip::{DriverError, SipEngine};
pub use webhook_worker::{DeliveryWorker, WorkerHandle};
