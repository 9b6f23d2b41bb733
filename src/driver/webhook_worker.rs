//! The delivery worker: takes due entries from the outbox, POSTs them, records each attempt and
//! reschedules per the [`RetryPolicy`]. Wakes on a notification (a call ended) or when the
//! earliest pending delivery is due; survives restarts because the outbox lives in the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::call::{Timestamp, WebhookState};
use crate::config::Secret;
use crate::http_client::WebhookClient;
use crate::rng::XorShift64;
use crate::store::Store;
use crate::webhook::outbox::{parse_retry_after, AttemptResult, Delivery, RetryPolicy};
use crate::webhook::sign;

/// The longest the worker sleeps without looking at the outbox.
const IDLE_RECHECK: Duration = Duration::from_secs(60);
/// Deliveries attempted at once.
const MAX_IN_FLIGHT: usize = 16;

/// Wakes the worker (a new delivery entered the outbox) or stops it.
#[derive(Clone)]
pub struct WorkerHandle {
    wake: async_channel::Sender<()>,
    stop: async_channel::Sender<()>,
}

impl WorkerHandle {
    pub fn notify(&self) {
        let _ = self.wake.try_send(());
    }

    pub fn stop(&self) {
        self.stop.close();
    }
}

pub struct DeliveryWorker {
    store: Arc<Store>,
    client: WebhookClient,
    policy: RetryPolicy,
    secret: Option<Secret>,
    wake: async_channel::Receiver<()>,
    stop: async_channel::Receiver<()>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    rng: XorShift64,
}

impl DeliveryWorker {
    pub fn new(
        store: Arc<Store>,
        client: WebhookClient,
        policy: RetryPolicy,
        secret: Option<Secret>,
    ) -> (Self, WorkerHandle) {
        let (wake_tx, wake) = async_channel::bounded(1);
        let (stop_tx, stop) = async_channel::bounded(1);
        let worker = Self {
            store,
            client,
            policy,
            secret,
            wake,
            stop,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            rng: XorShift64::from_entropy(),
        };
        (
            worker,
            WorkerHandle {
                wake: wake_tx,
                stop: stop_tx,
            },
        )
    }

    /// Run until [`WorkerHandle::stop`]; attempts in flight at that moment are finished first.
    pub async fn run(self) {
        while !self.stop.is_closed() {
            let next = self.run_due().await;
            let wait = next.map_or(IDLE_RECHECK, |at| {
                Duration::from_millis(at.millis_since(Timestamp::now())).min(IDLE_RECHECK)
            });
            // Stop is checked first; a closed wake channel (every handle gone) also means stop,
            // never "woken", or this loop would spin.
            let stopped = async {
                let _ = self.stop.recv().await;
                false
            };
            let woken = async { self.wake.recv().await.is_ok() };
            let timer = async {
                smol::Timer::after(wait).await;
                true
            };
            if !stopped.or(woken).or(timer).await {
                break;
            }
        }
    }

    /// Attempt the due deliveries (at most [`MAX_IN_FLIGHT`]) once; returns when the earliest
    /// remaining one is due. Reads only the due ones (the outbox's due-time index), so a wake
    /// costs the same however many deliveries wait for a later attempt.
    pub async fn run_due(&self) -> Option<Timestamp> {
        let now = Timestamp::now();
        let (due, mut next) = match self.store.due_deliveries(now, MAX_IN_FLIGHT) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook outbox");
                return Some(now.plus_millis(5_000));
            }
        };
        let mut tasks = Vec::new();
        for d in due {
            let claimed = self
                .in_flight
                .lock()
                .map(|mut set| set.insert(d.id.clone()))
                .unwrap_or(false);
            if claimed {
                tasks.push(smol::spawn(self.attempt(d)));
            }
        }
        for task in tasks {
            if let Some(d) = task.await {
                if let Some(at) = d.next_attempt_at {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        next
    }

    fn attempt(
        &self,
        mut d: Delivery,
    ) -> impl std::future::Future<Output = Option<Delivery>> + Send + 'static {
        let store = self.store.clone();
        let client = self.client.clone();
        let policy = self.policy.clone();
        let secret = self.secret.clone();
        let in_flight = self.in_flight.clone();
        let jitter = self.next_jitter();
        async move {
            let ts = Timestamp::now().unix_seconds();
            let mut headers = vec![
                ("Webhook-Id", d.id.clone()),
                ("Webhook-Timestamp", ts.to_string()),
            ];
            if let Some(secret) = &secret {
                headers.push((
                    "Webhook-Signature",
                    sign(secret.expose().as_bytes(), &d.id, ts, d.body.as_bytes()),
                ));
            }
            let started = Instant::now();
            let outcome = client.post_json(&d.url, &headers, &d.body).await;
            let now = Timestamp::now();
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let result = match outcome {
                Ok(resp) => AttemptResult {
                    status: Some(resp.status),
                    error: None,
                    retry_after: resp
                        .retry_after
                        .as_deref()
                        .and_then(|v| parse_retry_after(v, now)),
                    duration_ms,
                },
                Err(e) => AttemptResult {
                    status: None,
                    error: Some(e.to_string()),
                    retry_after: None,
                    duration_ms,
                },
            };
            d.record_attempt(&policy, result, now, jitter);
            match d.state {
                WebhookState::Delivered => {
                    tracing::info!(call_id = %d.call_id, attempts = d.attempts.len(), "webhook delivered")
                }
                WebhookState::Failed => tracing::warn!(
                    call_id = %d.call_id,
                    attempts = d.attempts.len(),
                    error = d.last_error.as_deref().unwrap_or(""),
                    "webhook delivery failed for good"
                ),
                WebhookState::Pending => tracing::info!(
                    call_id = %d.call_id,
                    attempt = d.attempts.len(),
                    error = d.last_error.as_deref().unwrap_or(""),
                    next_attempt_at = %d.next_attempt_at.map(Timestamp::to_rfc3339).unwrap_or_default(),
                    "webhook attempt failed; will retry"
                ),
            }
            let saved = store.save_delivery(&d);
            if let Ok(mut set) = in_flight.lock() {
                set.remove(&d.id);
            }
            match saved {
                Ok(()) => Some(d),
                Err(e) => {
                    tracing::error!(call_id = %d.call_id, error = %e, "cannot record a webhook attempt");
                    None
                }
            }
        }
    }

    /// Uniform in [0, 1).
    fn next_jitter(&self) -> f64 {
        self.rng.next_f64()
    }
}
