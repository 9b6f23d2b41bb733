//! The notification driver: one task that owns every notification still running, feeds the
//! sans-IO machine ([`crate::notify`]) with call ends, cancels and the clock, and carries out what
//! it asks: place an attempt through the [`Scheduler`] (an ordinary call with a fixed id, so a
//! step is never placed twice), hang one up, settle with the final webhook. Every change of a
//! record is stored before its calls are placed; a restart reloads the unsettled notifications,
//! reads the end of each attempt from its call record and goes on from there.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use jiff::tz::TimeZone;

use crate::call::{CallRecord, CallRequest, Timestamp};
use crate::driver::WorkerHandle;
use crate::notify::{self, Action, CallResult, NotificationRecord, NotificationRequest};
use crate::scheduler::{CancelError, Scheduler, SubmitError};
use crate::store::{Store, StoreError};
use crate::webhook::{new_delivery_id, Delivery};

/// How long an attempt the scheduler could not take (queue full) waits before it is tried again.
const PLACE_RETRY: Duration = Duration::from_secs(5);
/// At most this many notifications run (or wait) at once; more get 503.
pub const MAX_ACTIVE: usize = 1_000;
/// The longest sleep: the wall clock is read again at least this often (a Pi without a real-time
/// clock may set its clock after boot).
const MAX_SLEEP: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum NotifySubmitError {
    #[error("notification_id '{0}' is already in use")]
    IdInUse(String),
    #[error("service is shutting down")]
    ShuttingDown,
    #[error("too many notifications are running ({0}); try again later")]
    TooMany(usize),
    #[error(transparent)]
    Store(StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyCancelError {
    #[error("notification '{0}' not found")]
    NotFound(String),
    #[error("notification '{0}' already finished with status {1}")]
    AlreadyFinished(String, &'static str),
    #[error("service is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Command {
    Accepted(Box<NotificationRecord>),
    Cancel {
        id: String,
        reply: async_channel::Sender<Result<NotificationRecord, NotifyCancelError>>,
    },
    CallEnded(Box<CallRecord>),
}

/// The handle the API holds.
#[derive(Clone)]
pub struct Notifier {
    tx: async_channel::Sender<Command>,
    store: Arc<Store>,
    /// Notifications accepted and not yet settled (the task counts down).
    running: Arc<AtomicUsize>,
    max_active: usize,
}

/// The task behind a [`Notifier`]; [`NotifierTask::run`] it once the scheduler has recovered.
pub struct NotifierTask {
    rx: async_channel::Receiver<Command>,
    store: Arc<Store>,
    scheduler: Scheduler,
    webhooks: WorkerHandle,
    running: Arc<AtomicUsize>,
    /// Unsettled notifications found in the store at start, resumed by [`NotifierTask::run`].
    recovered: Vec<NotificationRecord>,
    active: HashMap<String, NotificationRecord>,
    /// (when, notification id): the machine asked to run again then.
    wakes: BTreeSet<(Timestamp, String)>,
    /// Each notification's entry in `wakes`, so it is replaced without a scan.
    wake_of: HashMap<String, Timestamp>,
    /// (when, notification id, attempt index): attempts to place (again) then.
    unplaced: BTreeSet<(Timestamp, String, usize)>,
}

impl Notifier {
    /// Build the notifier and tell `scheduler` to report call ends to it. Call before
    /// [`Scheduler::recover`], so no end of an attempt is missed.
    pub fn new(store: Arc<Store>, scheduler: Scheduler, webhooks: WorkerHandle) -> (Self, NotifierTask) {
        Self::with_limit(store, scheduler, webhooks, MAX_ACTIVE)
    }

    /// As [`Notifier::new`], with at most `max_active` notifications at once.
    pub fn with_limit(
        store: Arc<Store>,
        scheduler: Scheduler,
        webhooks: WorkerHandle,
        max_active: usize,
    ) -> (Self, NotifierTask) {
        // Read here, before any new notification can be accepted, so that none is counted twice.
        let recovered = store.unsettled_notifications().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read notifications from the store: they resume after the next start");
            Vec::new()
        });
        let running = Arc::new(AtomicUsize::new(recovered.len()));
        let (tx, rx) = async_channel::unbounded();
        let ended = tx.clone();
        // The scheduler holds queued attempts back until the task has acted on every end it was
        // sent (`final_taken_in`), so that an end which settles a notification stops its queued
        // attempts before a freed slot starts one of them.
        scheduler.observe_final(Box::new(move |r: &CallRecord| {
            r.notification_id.is_some() && ended.try_send(Command::CallEnded(Box::new(r.clone()))).is_ok()
        }));
        let task = NotifierTask {
            rx,
            store: store.clone(),
            scheduler,
            webhooks,
            running: running.clone(),
            recovered,
            active: HashMap::new(),
            wakes: BTreeSet::new(),
            wake_of: HashMap::new(),
            unplaced: BTreeSet::new(),
        };
        (
            Self {
                tx,
                store,
                running,
                max_active,
            },
            task,
        )
    }

    /// Store a new notification durably and start it.
    pub async fn submit(
        &self,
        requested_id: Option<String>,
        request: NotificationRequest,
    ) -> Result<NotificationRecord, NotifySubmitError> {
        if self.tx.is_closed() {
            return Err(NotifySubmitError::ShuttingDown);
        }
        let claimed = self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_active).then_some(n + 1)
            });
        if let Err(n) = claimed {
            return Err(NotifySubmitError::TooMany(n));
        }
        let store = self.store.clone();
        let record = smol::unblock(move || {
            store.insert_notification(requested_id.as_deref(), request, Timestamp::now())
        })
        .await
        .map_err(|e| {
            self.running.fetch_sub(1, Ordering::SeqCst);
            match e {
                StoreError::NotificationIdInUse(id) => NotifySubmitError::IdInUse(id),
                e => NotifySubmitError::Store(e),
            }
        })?;
        tracing::info!(notification_id = %record.notification_id, targets = record.request.targets.len(), "notification accepted");
        // Stored: if the task is gone (shutdown), the next start picks it up.
        let _ = self.tx.send(Command::Accepted(Box::new(record.clone()))).await;
        Ok(record)
    }

    /// Cancel: no new calls, running ones are hung up.
    pub async fn cancel(&self, id: &str) -> Result<NotificationRecord, NotifyCancelError> {
        let (reply, answer) = async_channel::bounded(1);
        self.tx
            .send(Command::Cancel {
                id: id.to_string(),
                reply,
            })
            .await
            .map_err(|_| NotifyCancelError::ShuttingDown)?;
        answer.recv().await.map_err(|_| NotifyCancelError::ShuttingDown)?
    }

    /// Stop the task (at shutdown); what it had not done yet is resumed after the next start.
    pub fn stop(&self) {
        self.tx.close();
    }
}

/// The quiet hours' zone of `r`, UTC without one (or if the zone is unknown to this build).
fn zone_of(r: &NotificationRecord) -> TimeZone {
    let Some(q) = &r.request.quiet_hours else {
        return TimeZone::UTC;
    };
    TimeZone::get(&q.timezone).unwrap_or_else(|e| {
        tracing::warn!(notification_id = %r.notification_id, zone = %q.timezone, error = %e, "unknown time zone: quiet hours in UTC");
        TimeZone::UTC
    })
}

fn result_of(c: &CallRecord) -> CallResult {
    CallResult {
        status: c.status,
        error: c.error.clone(),
        message_played: c.message_played,
        choice_response: c.choice_response.clone(),
    }
}

/// The call of attempt `index` of `r`.
fn attempt_request(r: &NotificationRecord, index: usize) -> Option<CallRequest> {
    let a = r.attempts.get(index)?;
    let target = r.request.targets.get(a.target)?;
    let req = &r.request;
    Some(CallRequest {
        message: req.message.clone(),
        extension: target.extension.clone(),
        callback_url: req.callback_url.clone().filter(|_| req.callback_each),
        ring_timeout: target.ring_timeout,
        choice: req.choice.clone(),
        call_id: Some(a.call_id.clone()),
        language: req.language.clone(),
        voice: req.voice.clone(),
        not_before: None,
        notification_id: Some(r.notification_id.clone()),
    })
}

impl NotifierTask {
    /// Resume what the store holds, then serve until [`Notifier::stop`].
    pub async fn run(mut self) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %e, "cannot read notifications from the store: they resume after the next start");
        }
        loop {
            let next = [
                self.wakes.first().map(|w| w.0),
                self.unplaced.first().map(|u| u.0),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = next.map_or(MAX_SLEEP, |at| {
                Duration::from_millis(at.millis_since(Timestamp::now())).min(MAX_SLEEP)
            });
            let command = future::or(async { self.rx.recv().await.ok().map(Some) }, async {
                smol::Timer::after(sleep).await;
                Some(None)
            })
            .await;
            match command {
                None => break,
                Some(Some(c)) => self.handle(c).await,
                Some(None) => self.due(Timestamp::now()).await,
            }
        }
        tracing::debug!("notifier stopped");
    }

    async fn recover(&mut self) -> Result<(), StoreError> {
        let records = std::mem::take(&mut self.recovered);
        let now = Timestamp::now();
        for mut r in records {
            for index in 0..r.attempts.len() {
                if r.attempts[index].is_final() {
                    continue;
                }
                let call_id = r.attempts[index].call_id.clone();
                match self.store.get_call(&call_id)? {
                    Some(c) if c.status.is_final() => {
                        notify::attempt_ended(&mut r, &call_id, &result_of(&c), c.ended_at.unwrap_or(now));
                    }
                    // Queued again or ended by the scheduler's recovery: its end is reported.
                    Some(_) => {}
                    None => {
                        self.unplaced.insert((now, r.notification_id.clone(), index));
                    }
                }
            }
            tracing::info!(notification_id = %r.notification_id, status = r.status.as_str(), "notification resumed after a restart");
            let id = r.notification_id.clone();
            self.active.insert(id.clone(), r);
            self.drive(&id, now).await;
        }
        Ok(())
    }

    async fn handle(&mut self, command: Command) {
        let now = Timestamp::now();
        match command {
            Command::Accepted(r) => {
                let id = r.notification_id.clone();
                self.active.insert(id.clone(), *r);
                self.drive(&id, now).await;
            }
            Command::CallEnded(c) => {
                self.call_ended(&c, now).await;
                self.scheduler.final_taken_in();
            }
            Command::Cancel { id, reply } => {
                let answer = self.cancel(&id, now).await;
                let _ = reply.send(answer).await;
            }
        }
    }

    async fn call_ended(&mut self, c: &CallRecord, now: Timestamp) {
        let Some(id) = c.notification_id.as_deref() else {
            return;
        };
        let Some(r) = self.active.get_mut(id) else {
            return;
        };
        let at = c.ended_at.unwrap_or(now);
        if notify::attempt_ended(r, &c.call_id, &result_of(c), at) {
            tracing::info!(notification_id = %id, call_id = %c.call_id, status = c.status.as_str(), "notification attempt ended");
            let id = id.to_string();
            self.drive(&id, now).await;
        }
    }

    async fn cancel(&mut self, id: &str, now: Timestamp) -> Result<NotificationRecord, NotifyCancelError> {
        let Some(r) = self.active.get_mut(id) else {
            return match self.store.get_notification(id)? {
                None => Err(NotifyCancelError::NotFound(id.to_string())),
                Some(r) => Err(NotifyCancelError::AlreadyFinished(
                    id.to_string(),
                    r.status.as_str(),
                )),
            };
        };
        let (cancelled, actions) = notify::cancel(r, now);
        if !cancelled {
            return Err(NotifyCancelError::AlreadyFinished(
                id.to_string(),
                r.status.as_str(),
            ));
        }
        tracing::info!(notification_id = %id, "notification cancelled");
        let snapshot = r.clone();
        self.carry_out(id, actions, now).await;
        Ok(self.active.get(id).cloned().unwrap_or(snapshot))
    }

    /// Wake-ups and placements that are due at `now`.
    async fn due(&mut self, now: Timestamp) {
        while let Some((at, id, index)) = self.unplaced.first().cloned() {
            if at > now {
                break;
            }
            self.unplaced.remove(&(at, id.clone(), index));
            self.place(&id, index, now).await;
        }
        while let Some((at, id)) = self.wakes.first().cloned() {
            if at > now {
                break;
            }
            self.wakes.remove(&(at, id.clone()));
            self.wake_of.remove(&id);
            self.drive(&id, now).await;
        }
    }

    /// Wake for `id` at `at` (and no longer at its earlier time); `None`: not at all.
    fn set_wake(&mut self, id: &str, at: Option<Timestamp>) {
        if let Some(old) = self.wake_of.remove(id) {
            self.wakes.remove(&(old, id.to_string()));
        }
        if let Some(at) = at {
            self.wakes.insert((at, id.to_string()));
            self.wake_of.insert(id.to_string(), at);
        }
    }

    /// Run the machine of `id` and carry out what it says.
    async fn drive(&mut self, id: &str, now: Timestamp) {
        let Some(r) = self.active.get_mut(id) else {
            return;
        };
        let tz = zone_of(r);
        let actions = notify::advance(r, now, &tz);
        self.carry_out(id, actions, now).await;
    }

    async fn carry_out(&mut self, id: &str, actions: Vec<Action>, now: Timestamp) {
        let Some(record) = self.active.get(id).cloned() else {
            return;
        };
        self.set_wake(id, record.next_attempt_at);
        if actions.contains(&Action::Settle) {
            self.settle(id, now).await;
            return;
        }
        // Stored before any call is placed (the placement's insert flushes it along); with no
        // call to place, stored durably here.
        let placing = actions.iter().any(|a| matches!(a, Action::Dial { .. }));
        let store = self.store.clone();
        let stored = smol::unblock(move || {
            if placing {
                store.put_notification(&record)
            } else {
                store.put_notification_durably(&record)
            }
        })
        .await;
        if let Err(e) = stored {
            tracing::error!(notification_id = %id, error = %e, "cannot store a notification's progress");
        }
        for action in actions {
            match action {
                Action::Dial { index, .. } => self.place(id, index, now).await,
                Action::HangUp { call_id } => self.hang_up(id, &call_id, now).await,
                Action::Settle => {}
            }
        }
    }

    /// Place attempt `index` of `id` through the scheduler.
    async fn place(&mut self, id: &str, index: usize, now: Timestamp) {
        let Some(r) = self.active.get(id) else {
            return;
        };
        if r.attempts.get(index).is_none_or(|a| a.is_final()) {
            return;
        }
        let Some(request) = attempt_request(r, index) else {
            return;
        };
        let call_id = request.call_id.clone().unwrap_or_default();
        match self.scheduler.submit(Some(&call_id), request).await {
            Ok(_) => tracing::info!(notification_id = %id, call_id = %call_id, "notification attempt placed"),
            Err(SubmitError::IdInUse(_)) => {
                // Placed before a restart: its end is in its record or still to come.
                if let Ok(Some(c)) = self.store.get_call(&call_id) {
                    if c.status.is_final() {
                        Box::pin(self.call_ended(&c, now)).await;
                    }
                }
            }
            Err(SubmitError::ShuttingDown) => {
                tracing::info!(notification_id = %id, call_id = %call_id, "shutting down: the attempt is placed after the next start");
            }
            Err(e) => {
                tracing::warn!(notification_id = %id, call_id = %call_id, error = %e, "cannot place a notification attempt yet: trying again shortly");
                let retry = now.plus_millis(u64::try_from(PLACE_RETRY.as_millis()).unwrap_or(5_000));
                self.unplaced.insert((retry, id.to_string(), index));
            }
        }
    }

    async fn hang_up(&mut self, id: &str, call_id: &str, now: Timestamp) {
        let waiting_to_place = self.unplaced.iter().find(|(_, n, i)| {
            n == id
                && self
                    .active
                    .get(id)
                    .and_then(|r| r.attempts.get(*i))
                    .is_some_and(|a| a.call_id == call_id)
        });
        if let Some(entry) = waiting_to_place.cloned() {
            self.unplaced.remove(&entry);
        }
        match self.scheduler.cancel(call_id).await {
            Ok(_) => {
                tracing::info!(notification_id = %id, call_id = %call_id, "notification attempt hung up")
            }
            Err(CancelError::AlreadyFinished(..)) => {}
            Err(CancelError::NotFound(_)) => {
                // Never placed: it ends here.
                let never = CallResult {
                    status: crate::call::CallStatus::Failed,
                    error: Some("not placed: the notification ended first".into()),
                    message_played: false,
                    choice_response: None,
                };
                if let Some(r) = self.active.get_mut(id) {
                    if notify::attempt_ended(r, call_id, &never, now) {
                        Box::pin(self.drive(id, now)).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(notification_id = %id, call_id = %call_id, error = %e, "cannot hang up a notification attempt")
            }
        }
    }

    /// Store the settled record with its final webhook (one write, flushed) and forget it.
    async fn settle(&mut self, id: &str, now: Timestamp) {
        let Some(r) = self.active.remove(id) else {
            return;
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.set_wake(id, None);
        self.unplaced.retain(|(_, n, _)| n != id);
        let delivery = r.request.callback_url.as_deref().map(|url| {
            let mut d = Delivery::new(
                &new_delivery_id(rand::random()),
                &r.notification_id,
                url,
                notify::webhook_body(&r),
                now,
            );
            d.notification = true;
            d
        });
        let store = self.store.clone();
        let record = r.clone();
        let settled = smol::unblock(move || store.settle_notification(&record, delivery.as_ref())).await;
        match settled {
            Ok(s) => {
                tracing::info!(notification_id = %id, status = s.status.as_str(), reason = s.reason.as_deref().unwrap_or(""), "notification ended");
                if s.webhook.is_some() {
                    self.webhooks.notify();
                }
            }
            Err(e) => {
                // Kept unsettled in the store: the next start settles it again.
                tracing::error!(notification_id = %id, error = %e, "cannot store the end of a notification");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{ActiveCall, CallEngine, CallOutcome};
    use crate::driver::DeliveryWorker;
    use crate::notify::NotificationStatus;
    use crate::webhook::{RetryPolicy, WebhookClient};
    use std::future::Future;
    use std::pin::Pin;

    /// Calls that ring until they are cancelled.
    struct Ringing;

    impl CallEngine for Ringing {
        fn place_call(&self, call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>> {
            Box::pin(async move {
                call.cancel.cancelled().await;
                CallOutcome::failed("cancelled")
            })
        }
    }

    fn request() -> NotificationRequest {
        crate::notify::tests::request(&["1001"])
    }

    #[test]
    fn notifications_beyond_the_limit_are_refused_until_one_settles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let client = WebhookClient::new(
            Duration::from_millis(100),
            Duration::from_millis(100),
            Arc::new(crate::policy::HostPolicy::default()),
        );
        let policy = RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            max_age: Duration::from_secs(1),
        };
        let (_worker, handle) = DeliveryWorker::new(store.clone(), client, policy, None);
        let scheduler = Scheduler::new(store.clone(), Arc::new(Ringing), handle.clone(), 4, 10, None);
        let (notifier, task) = Notifier::with_limit(store.clone(), scheduler, handle, 1);
        let running = smol::spawn(task.run());
        smol::block_on(async {
            let first = notifier.submit(Some("a".into()), request()).await.expect("first");
            assert_eq!(first.notification_id, "a");
            let refused = notifier.submit(Some("b".into()), request()).await;
            assert!(
                matches!(refused, Err(NotifySubmitError::TooMany(1))),
                "{refused:?}"
            );
            assert!(
                store.get_notification("b").expect("store").is_none(),
                "not stored"
            );
            let started = crate::scheduler::wait_until(
                || {
                    store
                        .get_call("a.r1.t0")
                        .ok()
                        .flatten()
                        .is_some_and(|c| c.started_at.is_some())
                },
                Duration::from_secs(10),
            )
            .await;
            assert!(started, "the first attempt is placed");
            let cancelled = notifier.cancel("a").await.expect("cancel");
            assert_eq!(cancelled.status, NotificationStatus::Cancelled);
            let settled = crate::scheduler::wait_until(
                || {
                    store
                        .get_notification("a")
                        .ok()
                        .flatten()
                        .is_some_and(|r| r.is_settled())
                },
                Duration::from_secs(10),
            )
            .await;
            assert!(settled, "{:?}", store.get_notification("a"));
            let again = notifier.submit(Some("b".into()), request()).await;
            assert!(again.is_ok(), "a slot is free again: {again:?}");
            notifier.stop();
        });
        smol::block_on(running);
    }
}
