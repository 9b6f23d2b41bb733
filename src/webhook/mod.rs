//! Webhooks: the payload, the signature, the sans-IO retry plan ([`outbox`]), the HTTP client
//! (the only module that names surf) and the delivery worker.

pub mod outbox;
mod payload;
mod sign;

pub use crate::http_client::{HttpClient, HttpError, HttpResponse, StreamingResponse, WebhookClient};
pub use outbox::{new_delivery_id, parse_retry_after, AttemptResult, Delivery, RetryPolicy};
pub use payload::WebhookPayload;
pub use sign::{sign, verify};
