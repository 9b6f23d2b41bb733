//! Call scheduling: at most `calls.max_concurrent` calls run at once, the rest wait in a bounded
//! FIFO queue. The scheduler owns every status change a call goes through outside the engine:
//! accepted (durable), started (durable, so a crash never redials), final with its webhook in one
//! transaction (durable). It also recovers after a restart, ends calls that waited longer than
//! `calls.queue_max_age_seconds` ([`Scheduler::expire_queued`]) and drains on shutdown.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_lite::FutureExt;

use crate::call::{
    ActiveCall, CallEngine, CallEvents, CallOutcome, CallRecord, CallRequest, CallStatus, CancelHandle,
    CancelSignal, Progress, TimelineEvent, Timestamp,
};
use crate::driver::WorkerHandle;
use crate::store::{Store, StoreError};
use crate::webhook::{new_delivery_id, Delivery, WebhookPayload};

mod queue;

use queue::{Queue, Waiting};

/// The error of a call cancelled through the API.
pub const CANCELLED: &str = "cancelled by API request";
/// The error of a call that was running when the process died.
pub const RESTARTED: &str = "service restarted during call";
/// The error of a call still running when the shutdown deadline passed.
pub const SHUTTING_DOWN: &str = "service shutting down";
/// The error of a call that waited for a slot longer than `calls.queue_max_age_seconds`.
pub const QUEUED_TOO_LONG: &str = "queued longer than calls.queue_max_age_seconds";
/// After the grace period, how long stopped calls get to end (CANCEL/BYE answered) before the
/// drain makes them final itself.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// At most this many calls wait for their `not_before` at once.
pub const MAX_SCHEDULED: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("call queue is full ({0} calls waiting); try again later")]
    QueueFull(usize),
    #[error("too many calls scheduled for later ({0}); try again later")]
    TooManyScheduled(usize),
    #[error("service is shutting down")]
    ShuttingDown,
    #[error("call_id '{0}' is already in use")]
    IdInUse(String),
    #[error(transparent)]
    Store(StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("call '{0}' not found")]
    NotFound(String),
    #[error("call '{0}' already finished with status {1}")]
    AlreadyFinished(String, &'static str),
    #[error("the cancellation could not be stored ({0}); the call may still be dialled after a restart: retry the DELETE")]
    NotPersisted(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a cancel did.
#[derive(Debug)]
pub enum Cancelled {
    /// The call was waiting and is now final.
    Queued(CallRecord),
    /// The call is running; its engine was asked to hang up.
    HangupRequested(CallRecord),
}

/// Whether a call accepted at `created_at` has waited too long at `now` (`max_age` `None`: never).
pub fn queue_expired(created_at: Timestamp, now: Timestamp, max_age: Option<Duration>) -> bool {
    max_age.is_some_and(|max| u128::from(now.millis_since(created_at)) >= max.as_millis())
}

/// What the scheduler tells about every call that became final (the notifier listens). It returns
/// true when it took in a notification's attempt and will say so with
/// [`Scheduler::final_taken_in`] once it has acted on it: until then no queued notification
/// attempt starts (the end may make it unneeded).
pub type FinalObserver = Box<dyn Fn(&CallRecord) -> bool + Send + Sync>;

#[derive(Default)]
struct State {
    queue: Queue,
    /// Calls accepted with a `not_before` still ahead: they join `queue` when it comes.
    scheduled: HashMap<String, Waiting>,
    active: HashMap<String, CancelHandle>,
    /// Why an active call was told to stop, if it was.
    stop_reasons: HashMap<String, &'static str>,
    /// Active calls whose final state is being written: by their own task once the engine
    /// returned (false), or by the drain because the engine did not return in time (true).
    finishing: HashMap<String, bool>,
    /// Submissions between the capacity check and the queue push.
    reserved: usize,
    /// Ends of notification attempts the observer has not acted on yet.
    finals_pending: usize,
    closed: bool,
}

struct Inner {
    store: Arc<Store>,
    engine: Arc<dyn CallEngine>,
    webhooks: WorkerHandle,
    max_concurrent: usize,
    queue_limit: usize,
    /// `calls.queue_max_age_seconds`; `None` = waiting calls never expire.
    queue_max_age: Option<Duration>,
    state: Mutex<State>,
    /// Told of every call that became final ([`Scheduler::observe_final`]).
    on_final: std::sync::OnceLock<FinalObserver>,
}

#[derive(Clone)]
pub struct Scheduler(Arc<Inner>);

impl Scheduler {
    pub fn new(
        store: Arc<Store>,
        engine: Arc<dyn CallEngine>,
        webhooks: WorkerHandle,
        max_concurrent: usize,
        queue_limit: usize,
        queue_max_age: Option<Duration>,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            engine,
            webhooks,
            max_concurrent: max_concurrent.max(1),
            queue_limit,
            queue_max_age,
            state: Mutex::new(State::default()),
            on_final: std::sync::OnceLock::new(),
        }))
    }

    /// Call `f` with every record that becomes final from now on (once per call; set once, before
    /// [`Scheduler::recover`]). `f` must not block; see [`FinalObserver`].
    pub fn observe_final(&self, f: FinalObserver) {
        if self.0.on_final.set(f).is_err() {
            tracing::warn!("a final-call observer is already set");
        }
    }

    /// The observer acted on one end of a notification attempt it took in: queued notification
    /// attempts may start again.
    pub fn final_taken_in(&self) {
        {
            let mut s = self.state();
            s.finals_pending = s.finals_pending.saturating_sub(1);
        }
        self.pump();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain collections;
        // the data is still consistent enough to keep scheduling.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn engine(&self) -> &Arc<dyn CallEngine> {
        &self.0.engine
    }

    /// (active, waiting) call counts.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.state();
        (s.active.len(), s.queue.len())
    }

    /// Accept a call: check capacity, store it durably as queued, start it when a slot is free.
    pub async fn submit(
        &self,
        requested_id: Option<&str>,
        request: CallRequest,
    ) -> Result<CallRecord, SubmitError> {
        {
            let mut s = self.state();
            if s.closed {
                return Err(SubmitError::ShuttingDown);
            }
            let free_slots = self.0.max_concurrent.saturating_sub(s.active.len());
            let later = request.not_before.is_some_and(|t| t > Timestamp::now());
            let waiting = s.queue.len() + s.reserved;
            if later && s.scheduled.len() >= MAX_SCHEDULED {
                return Err(SubmitError::TooManyScheduled(s.scheduled.len()));
            }
            if !later && waiting >= free_slots + self.0.queue_limit {
                return Err(SubmitError::QueueFull(s.queue.len()));
            }
            s.reserved += 1;
        }
        // The insert flushes (fsync): keep it off the executor threads.
        let store = self.0.store.clone();
        let wanted = requested_id.map(str::to_string);
        let stored =
            smol::unblock(move || store.insert_call(wanted.as_deref(), request, Timestamp::now())).await;
        {
            let mut s = self.state();
            s.reserved -= 1;
        }
        if let Ok(record) = &stored {
            self.enqueue(record, Timestamp::now());
        }
        let record = stored.map_err(|e| match e {
            StoreError::IdInUse(id) => SubmitError::IdInUse(id),
            e => SubmitError::Store(e),
        })?;
        tracing::info!(call_id = %record.call_id, "call queued");
        self.pump();
        Ok(record)
    }

    /// Queue a waiting call, or hold it until its `not_before` (its queue age counts from then).
    fn enqueue(&self, record: &CallRecord, now: Timestamp) {
        let id = record.call_id.clone();
        let notification = record.notification_id.is_some();
        match record.request.not_before.filter(|t| *t > now) {
            None => self.state().queue.push_back(Waiting {
                id,
                created_at: record.created_at,
                notification,
            }),
            Some(at) => {
                self.state().scheduled.insert(
                    id.clone(),
                    Waiting {
                        id: id.clone(),
                        created_at: at.max(record.created_at),
                        notification,
                    },
                );
                tracing::info!(call_id = %id, not_before = %at.to_rfc3339(), "call held until not_before");
                let me = self.clone();
                let wait = std::time::Duration::from_millis(at.millis_since(now));
                smol::spawn(async move {
                    smol::Timer::after(wait).await;
                    let due = me.state().scheduled.remove(&id);
                    if let Some(w) = due {
                        me.state().queue.push_back(w);
                        me.pump();
                    }
                })
                .detach();
            }
        }
    }

    /// Start waiting calls while slots are free; one that waited too long ends instead. A
    /// notification's attempt waits (and the calls behind it) while the notifier has not acted on
    /// every end of an attempt: that end may have settled the notification.
    fn pump(&self) {
        let now = Timestamp::now();
        loop {
            let (id, signal) = {
                let mut s = self.state();
                if s.closed || s.active.len() >= self.0.max_concurrent {
                    return;
                }
                if s.finals_pending > 0 && s.queue.front().is_some_and(|w| w.notification) {
                    return;
                }
                let Some(w) = s.queue.pop_front() else { return };
                if queue_expired(w.created_at, now, self.0.queue_max_age) {
                    drop(s);
                    let me = self.clone();
                    smol::spawn(async move {
                        smol::unblock(move || me.end_expired(&w.id)).await;
                    })
                    .detach();
                    continue;
                }
                let (handle, signal) = CancelSignal::pair();
                s.active.insert(w.id.clone(), handle);
                (w.id, signal)
            };
            let me = self.clone();
            crate::supervise::global()
                .spawn("call task", async move { me.run(id, signal).await })
                .detach();
        }
    }

    /// End every waiting call accepted more than `calls.queue_max_age_seconds` before `now`
    /// (`failed`, [`QUEUED_TOO_LONG`], webhook queued); returns how many. Blocking (it flushes).
    pub fn expire_queued(&self, now: Timestamp) -> usize {
        let Some(max_age) = self.0.queue_max_age else {
            return 0;
        };
        let max_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        let Some(cutoff) = now.0.checked_sub(max_ms) else {
            return 0;
        };
        let expired: Vec<String> = {
            let mut s = self.state();
            s.queue
                .take_accepted_by(Timestamp(cutoff))
                .into_iter()
                .map(|w| w.id)
                .collect()
        };
        // Each end is a transaction and a flush: a few threads at once share the flushes (the
        // store's group commit) instead of one flush after another.
        let workers = expired.len().clamp(1, 8);
        let per = expired.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| {
            for chunk in expired.chunks(per) {
                scope.spawn(move || chunk.iter().for_each(|id| self.end_expired(id)));
            }
        });
        expired.len()
    }

    fn end_expired(&self, id: &str) {
        tracing::warn!(call_id = %id, "call waited longer than calls.queue_max_age_seconds: not dialled");
        // `finish` logs a failure to store it; the call is out of the queue either way.
        let _ = self.finish(id, CallOutcome::failed(QUEUED_TOO_LONG), None);
    }

    async fn run(&self, id: String, cancel: CancelSignal) {
        let now = Timestamp::now();
        let store = self.0.store.clone();
        let key = id.clone();
        let started = smol::unblock(move || {
            store.update_call_durably(&key, |r| {
                r.started_at = Some(now);
                r.push_event(now, TimelineEvent::Started, None);
            })
        })
        .await;
        let outcome = match started {
            Ok(record) => {
                tracing::info!(call_id = %id, "call started");
                let call = ActiveCall {
                    call_id: id.clone(),
                    request: record.request,
                    events: self.events_for(&id),
                    cancel,
                };
                let placed = AssertUnwindSafe(self.0.engine.place_call(call)).catch_unwind();
                placed.await.unwrap_or_else(|_| {
                    tracing::error!(call_id = %id, "call engine panicked");
                    CallOutcome::failed("internal error: the call engine panicked")
                })
            }
            Err(e) => {
                tracing::error!(call_id = %id, error = %e, "cannot mark call started");
                CallOutcome::failed(format!("store error: {e}"))
            }
        };
        let (reason, forced) = {
            let mut s = self.state();
            let forced = s.finishing.get(&id).copied().unwrap_or(false);
            if forced {
                s.finishing.remove(&id);
            } else {
                s.finishing.insert(id.clone(), false);
            }
            (s.stop_reasons.get(&id).copied(), forced)
        };
        tracing::debug!(call_id = %id, ?reason, forced, "engine returned");
        if forced {
            // The drain gave up waiting and wrote the final state itself.
            return;
        }
        let me = self.clone();
        let key = id.clone();
        // A failure is logged by `finish`; recovery ends the call after a restart.
        let _ = smol::unblock(move || me.finish(&key, outcome, reason)).await;
        // Only now, with the final state stored, does the call leave the active set: a drain that
        // sees no active call may flush and exit.
        {
            let mut s = self.state();
            s.active.remove(&id);
            s.stop_reasons.remove(&id);
            s.finishing.remove(&id);
        }
        self.pump();
    }

    fn events_for(&self, id: &str) -> CallEvents {
        let store = self.0.store.clone();
        let id = id.to_string();
        CallEvents::new(move |p| {
            let now = Timestamp::now();
            let result = store.update_call(&id, |r| match &p {
                Progress::Ringing => {
                    if r.status == CallStatus::Queued {
                        r.status = CallStatus::Ringing;
                    }
                    r.push_event(now, TimelineEvent::Ringing, None);
                }
                Progress::Answered => {
                    r.status = CallStatus::Answered;
                    r.answered_at = Some(now);
                    r.push_event(now, TimelineEvent::Answered, None);
                }
                Progress::Event { name, detail } => r.push_event(now, *name, detail.clone()),
                Progress::Dialog(d) => r.dialog = Some(d.clone()),
            });
            if let Err(e) = result {
                tracing::warn!(call_id = %id, error = %e, "cannot record call progress");
                return;
            }
            if matches!(p, Progress::Dialog(_)) {
                // A durable point: kill -9 loses unflushed sled writes, and without the dialog the
                // far end never gets its BYE after a crash. One more flush per answered call.
                let (store, id) = (store.clone(), id.clone());
                smol::spawn(async move {
                    if let Err(e) = smol::unblock(move || store.flush()).await {
                        tracing::warn!(call_id = %id, error = %e, "cannot flush the call's dialog");
                    }
                })
                .detach();
            }
        })
    }

    /// Make a call final (status, result fields, timeline) and queue its webhook, durably.
    /// Blocking (it flushes): async callers run it through `smol::unblock`. A failure is logged
    /// and returned.
    fn finish(
        &self,
        id: &str,
        outcome: CallOutcome,
        stop_reason: Option<&'static str>,
    ) -> Result<CallRecord, StoreError> {
        let now = Timestamp::now();
        let result = self.0.store.finalize_call(
            id,
            |r| {
                r.status = outcome.status.into();
                r.error = outcome.error.clone();
                if let Some(reason) = stop_reason {
                    r.status = CallStatus::Failed;
                    r.error = Some(reason.to_string());
                }
                r.message_played = outcome.message_played;
                r.choice_response = outcome.choice_response.clone();
                r.choice_raw_text = outcome.choice_raw_text.clone();
                r.confirmed_by = outcome.confirmed_by;
                r.media = outcome.media.clone();
                r.dialog = None;
                r.ended_at = Some(now);
                r.duration_seconds = r.answered_at.map_or(0.0, |a| now.millis_since(a) as f64 / 1000.0);
                let event = TimelineEvent::from(r.status);
                r.push_final_event(now, event, r.error.clone());
            },
            |r| webhook_for(r, now),
        );
        match &result {
            Ok(r) => {
                tracing::info!(call_id = %id, status = r.status.as_str(), error = r.error.as_deref().unwrap_or(""), "call ended");
                if r.webhook.is_some() {
                    self.0.webhooks.notify();
                }
                if let Some(observe) = self.0.on_final.get() {
                    // Counted before the observer hears of it: it may act and answer at once.
                    let attempt = r.notification_id.is_some();
                    if attempt {
                        self.state().finals_pending += 1;
                    }
                    if !observe(r) && attempt {
                        let mut s = self.state();
                        s.finals_pending = s.finals_pending.saturating_sub(1);
                    }
                }
            }
            Err(e) => tracing::error!(call_id = %id, error = %e, "cannot store the end of a call"),
        }
        result
    }

    /// Cancel a waiting call, or ask a running one to hang up.
    pub async fn cancel(&self, id: &str) -> Result<Cancelled, CancelError> {
        enum Found {
            Waiting(Option<queue::Place>, Waiting),
            Active,
            Neither,
        }
        let found = {
            // Nothing here reads the store: the lock is never held across I/O.
            let mut s = self.state();
            if let Some(w) = s.scheduled.remove(id) {
                Found::Waiting(None, w)
            } else if let Some((place, w)) = s.queue.remove(id) {
                Found::Waiting(Some(place), w)
            } else if s.finishing.contains_key(id) {
                // Its engine has returned and its final state is being written (or is written
                // and the call is about to leave the active set): finished, not cancellable.
                Found::Neither
            } else if let Some(handle) = s.active.get(id) {
                handle.cancel();
                s.stop_reasons.insert(id.to_string(), CANCELLED);
                Found::Active
            } else {
                Found::Neither
            }
        };
        match found {
            Found::Waiting(place, waiting) => {
                let (me, key) = (self.clone(), id.to_string());
                let ended =
                    smol::unblock(move || me.finish(&key, CallOutcome::failed(CANCELLED), None)).await;
                match ended {
                    Ok(record) => Ok(Cancelled::Queued(record)),
                    Err(e) => {
                        // Not cancelled durably. If the record did not change, the call waits
                        // again in its place (a retried DELETE can cancel it); if it changed but
                        // the flush failed, this process will not dial it, a restart may.
                        let unchanged = self
                            .0
                            .store
                            .get_call(id)
                            .ok()
                            .flatten()
                            .is_some_and(|r| r.is_waiting());
                        if unchanged {
                            let mut s = self.state();
                            match place {
                                None => {
                                    s.scheduled.insert(waiting.id.clone(), waiting);
                                }
                                Some(place) => s.queue.restore(place, waiting),
                            }
                        }
                        Err(CancelError::NotPersisted(e))
                    }
                }
            }
            Found::Active => {
                let now = Timestamp::now();
                let record = self
                    .0
                    .store
                    .update_call(id, |r| r.push_event(now, TimelineEvent::CancelRequested, None))?;
                Ok(Cancelled::HangupRequested(record))
            }
            Found::Neither => match self.0.store.get_call(id)? {
                None => Err(CancelError::NotFound(id.to_string())),
                Some(r) if r.status.is_final() => {
                    Err(CancelError::AlreadyFinished(id.to_string(), r.status.as_str()))
                }
                // Its engine returned a moment ago and the end is being written: it is hanging
                // up already.
                Some(r) => Ok(Cancelled::HangupRequested(r)),
            },
        }
    }

    /// After a restart: calls that had started end `failed` ("service restarted during call") with
    /// their webhook, and those answered get a BYE for their saved dialog; calls that never
    /// started are queued again in their original order.
    pub fn recover(&self) -> Result<(usize, usize), StoreError> {
        let mut failed = 0;
        let mut requeued = 0usize;
        for record in self.0.store.unfinished_calls()? {
            if record.is_waiting() {
                self.enqueue(&record, Timestamp::now());
                requeued += 1;
            } else {
                if let Some(dialog) = record.dialog.clone() {
                    // Answered when the process died: the far end still holds the call.
                    tracing::info!(call_id = %record.call_id, "sending BYE for the dialog of a call cut by the restart");
                    self.0.engine.hang_up_recovered(dialog);
                }
                // A failure is logged by `finish`; the next start tries again.
                let _ = self.finish(&record.call_id, CallOutcome::failed(RESTARTED), None);
                failed += 1;
            }
        }
        let expired = self.expire_queued(Timestamp::now());
        requeued = requeued.saturating_sub(expired);
        failed += expired;
        if failed + requeued > 0 {
            tracing::info!(failed, requeued, "recovered calls from the store");
        }
        self.pump();
        Ok((failed, requeued))
    }

    /// Stop accepting calls (new submissions get [`SubmitError::ShuttingDown`]); waiting calls stay
    /// queued in the store and run after the next start.
    pub fn close(&self) {
        self.state().closed = true;
    }

    /// Close, let running calls finish for up to `grace`, then tell the rest to stop and wait
    /// (briefly) until they have ended with [`SHUTTING_DOWN`]. A call whose engine still has not
    /// returned then (e.g. a PBX that never confirms the CANCEL) is made final here, with its
    /// webhook, so no call is left half-done in the store.
    pub async fn drain(&self, grace: Duration) {
        self.drain_with(grace, STOP_WAIT).await;
    }

    async fn drain_with(&self, grace: Duration, stop_wait: Duration) {
        self.close();
        let deadline = Instant::now() + grace;
        while self.counts().0 > 0 && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        {
            let mut s = self.state();
            let ids: Vec<String> = s.active.keys().cloned().collect();
            tracing::debug!(?ids, "grace period over: stopping calls");
            for id in ids {
                if let Some(h) = s.active.get(&id) {
                    h.cancel();
                }
                s.stop_reasons.insert(id, SHUTTING_DOWN);
            }
        }
        let hard_deadline = Instant::now() + stop_wait;
        while self.counts().0 > 0 && Instant::now() < hard_deadline {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        let stuck: Vec<String> = {
            let mut s = self.state();
            let ids: Vec<String> = s
                .active
                .keys()
                .filter(|id| !s.finishing.contains_key(*id))
                .cloned()
                .collect();
            for id in &ids {
                s.finishing.insert(id.clone(), true);
            }
            ids
        };
        // All at once: their flushes are shared (the store's group commit).
        let ending: Vec<_> = stuck
            .into_iter()
            .map(|id| {
                tracing::warn!(call_id = %id, "the call did not stop in time: ending it as failed");
                let me = self.clone();
                smol::unblock(move || {
                    let _ = me.finish(&id, CallOutcome::failed(SHUTTING_DOWN), None);
                    id
                })
            })
            .collect();
        for task in ending {
            let id = task.await;
            let mut s = self.state();
            s.active.remove(&id);
            s.stop_reasons.remove(&id);
        }
        // Calls whose own task is writing the final state right now: let it land.
        let last = Instant::now() + Duration::from_secs(2);
        while self.counts().0 > 0 && Instant::now() < last {
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    }
}

fn webhook_for(r: &CallRecord, now: Timestamp) -> Option<Delivery> {
    let url = r.request.callback_url.as_deref()?;
    // A fresh random id per delivery: the call id alone repeats when a client reuses it.
    Some(Delivery::new(
        &new_delivery_id(rand::random()),
        &r.call_id,
        url,
        WebhookPayload::of(r).to_json(),
        now,
    ))
}

/// Wait until `f` holds, polling; for tests and shutdown paths only.
pub async fn wait_until(mut f: impl FnMut() -> bool, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        smol::Timer::after(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CallOutcome, CallRequest};
    use crate::driver::DeliveryWorker;
    use crate::webhook::{RetryPolicy, WebhookClient};
    use std::future::Future;
    use std::pin::Pin;

    /// An engine whose calls never end, cancelled or not (a PBX that never confirms the CANCEL).
    struct DeafEngine;

    impl CallEngine for DeafEngine {
        fn place_call(&self, _call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>> {
            Box::pin(std::future::pending())
        }
    }

    fn request(id: &str) -> CallRequest {
        CallRequest {
            message: "m".into(),
            extension: "1001".into(),
            callback_url: Some("http://127.0.0.1:9/h".into()),
            ring_timeout: 30,
            choice: None,
            call_id: Some(id.into()),
            language: None,
            voice: None,
            not_before: None,
            notification_id: None,
        }
    }

    /// One slot, a deaf engine, the given queue age limit; the worker is never run (tests look at
    /// the outbox).
    fn deaf_scheduler(store: &Arc<Store>, max_age: Option<Duration>) -> Scheduler {
        scheduler_with(store, Arc::new(DeafEngine), 10, max_age)
    }

    /// One slot for `engine`; the webhook worker is never run (tests look at the outbox).
    fn scheduler_with(
        store: &Arc<Store>,
        engine: Arc<dyn CallEngine>,
        queue_limit: usize,
        max_age: Option<Duration>,
    ) -> Scheduler {
        let client = WebhookClient::new(
            Duration::from_millis(100),
            Duration::from_millis(100),
            std::sync::Arc::new(crate::policy::HostPolicy::default()),
        );
        let policy = RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            max_age: Duration::from_secs(1),
        };
        let (_worker, handle) = DeliveryWorker::new(store.clone(), client, policy, None);
        Scheduler::new(store.clone(), engine, handle, 1, queue_limit, max_age)
    }

    /// "busy" takes the only slot, "waits" stays queued.
    fn one_running_one_waiting(scheduler: &Scheduler) {
        smol::block_on(async {
            let store = scheduler.0.store.clone();
            scheduler
                .submit(Some("busy"), request("busy"))
                .await
                .expect("submit");
            // Started (and that flushed): no flush of "busy" is left to race with the test's.
            let started = || {
                store
                    .get_call("busy")
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.started_at.is_some())
            };
            assert!(wait_until(started, Duration::from_secs(5)).await);
            scheduler
                .submit(Some("waits"), request("waits"))
                .await
                .expect("submit");
        });
        assert_eq!(scheduler.counts(), (1, 1));
    }

    fn stop(scheduler: &Scheduler) {
        smol::block_on(scheduler.drain_with(Duration::from_millis(10), Duration::from_millis(10)));
    }

    #[test]
    fn a_call_queued_longer_than_the_max_age_ends_failed_with_its_webhook() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let scheduler = deaf_scheduler(&store, Some(Duration::from_secs(60)));
        one_running_one_waiting(&scheduler);
        let created = store.get_call("waits").expect("get").expect("record").created_at;
        assert_eq!(scheduler.expire_queued(created.plus_millis(59_999)), 0);
        assert_eq!(scheduler.counts(), (1, 1));
        assert_eq!(scheduler.expire_queued(created.plus_millis(60_000)), 1);
        assert_eq!(scheduler.counts(), (1, 0));
        let r = store.get_call("waits").expect("get").expect("record");
        assert_eq!(r.status, CallStatus::Failed);
        assert_eq!(r.error.as_deref(), Some(QUEUED_TOO_LONG));
        assert!(r.started_at.is_none(), "never dialled");
        let outbox = store.pending_deliveries().expect("outbox");
        assert!(
            outbox.iter().any(|d| d.call_id == "waits"),
            "its webhook is queued"
        );
        stop(&scheduler);
    }

    #[test]
    fn waiting_calls_never_expire_when_the_max_age_is_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let scheduler = deaf_scheduler(&store, None);
        one_running_one_waiting(&scheduler);
        assert_eq!(scheduler.expire_queued(Timestamp(u64::MAX)), 0);
        assert_eq!(scheduler.counts(), (1, 1));
        stop(&scheduler);
    }

    #[test]
    fn a_call_that_waited_too_long_before_a_restart_is_not_dialled_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let long_ago = Timestamp(Timestamp::now().0 - 2 * 3_600_000);
        store
            .insert_call(Some("old"), request("old"), long_ago)
            .expect("insert");
        store
            .insert_call(Some("new"), request("new"), Timestamp::now())
            .expect("insert");
        let scheduler = deaf_scheduler(&store, Some(Duration::from_secs(3600)));
        assert_eq!(scheduler.recover().expect("recover"), (1, 1));
        let old = store.get_call("old").expect("get").expect("record");
        assert_eq!(old.error.as_deref(), Some(QUEUED_TOO_LONG));
        assert!(old.started_at.is_none());
        let fresh = wait_until(
            || {
                store
                    .get_call("new")
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.started_at.is_some())
            },
            Duration::from_secs(5),
        );
        assert!(smol::block_on(fresh), "the fresh call is dialled");
        stop(&scheduler);
    }

    #[test]
    fn a_cancellation_that_was_not_stored_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let scheduler = deaf_scheduler(&store, None);
        one_running_one_waiting(&scheduler);
        store.fail_next_flushes(1);
        let err = smol::block_on(scheduler.cancel("waits")).expect_err("not persisted");
        assert!(matches!(err, CancelError::NotPersisted(_)), "{err}");
        stop(&scheduler);
    }

    #[test]
    fn a_reused_call_id_gets_a_new_webhook_id() {
        let now = Timestamp(1_000);
        let r = CallRecord::new_queued("same".into(), 1, request("same"), now);
        let first = webhook_for(&r, now).expect("delivery");
        let second = webhook_for(&r, now).expect("delivery");
        assert_ne!(first.id, second.id);
        assert!(
            first.id.starts_with("wh-") && first.id.len() == 35,
            "{}",
            first.id
        );
    }

    #[test]
    fn the_drain_makes_a_call_final_when_its_engine_never_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        // The worker is never run: the outbox entry is what this test looks at.
        let scheduler = scheduler_with(&store, Arc::new(DeafEngine), 1, None);
        let request = CallRequest {
            message: "m".into(),
            extension: "1001".into(),
            callback_url: Some("http://127.0.0.1:9/h".into()),
            ring_timeout: 30,
            choice: None,
            call_id: Some("deaf-1".into()),
            language: None,
            voice: None,
            not_before: None,
            notification_id: None,
        };
        smol::block_on(async {
            scheduler.submit(Some("deaf-1"), request).await.expect("submit");
            assert!(wait_until(|| scheduler.counts().0 == 1, Duration::from_secs(5)).await);
            scheduler
                .drain_with(Duration::from_millis(50), Duration::from_millis(50))
                .await;
        });
        assert_eq!(scheduler.counts(), (0, 0));
        let r = store.get_call("deaf-1").expect("store").expect("record");
        assert_eq!(r.status, CallStatus::Failed);
        assert_eq!(r.error.as_deref(), Some(SHUTTING_DOWN));
        assert_eq!(store.pending_deliveries().expect("outbox").len(), 1);
    }

    /// Remembers the dialogs it is asked to end after a restart.
    #[derive(Default)]
    struct RecoveringEngine(Mutex<Vec<crate::sip::ua::SavedDialog>>);

    impl CallEngine for RecoveringEngine {
        fn place_call(&self, _call: ActiveCall) -> Pin<Box<dyn Future<Output = CallOutcome> + Send>> {
            Box::pin(std::future::pending())
        }

        fn hang_up_recovered(&self, dialog: crate::sip::ua::SavedDialog) {
            self.0.lock().expect("not poisoned").push(dialog);
        }
    }

    #[test]
    fn recovery_ends_the_saved_dialog_of_a_call_cut_by_the_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let dialog = crate::sip::ua::SavedDialog {
            call_id: "abc@127.0.0.1".into(),
            local_uri: "sip:1050@127.0.0.1".into(),
            local_tag: "l".into(),
            remote_uri: "sip:1001@127.0.0.1".into(),
            remote_tag: "r".into(),
            remote_target: "sip:1001@127.0.0.1:5080".into(),
            route_set: Vec::new(),
            local_cseq: 1,
            local_host: "127.0.0.1".into(),
            dest_host: "127.0.0.1".into(),
            dest_port: 5060,
            transport: crate::sip::ua::Transport::Udp,
        };
        let request = |id: &str| CallRequest {
            message: "m".into(),
            extension: "1001".into(),
            callback_url: None,
            ring_timeout: 30,
            choice: None,
            call_id: Some(id.into()),
            language: None,
            voice: None,
            not_before: None,
            notification_id: None,
        };
        let now = Timestamp::now();
        for id in ["answered", "ringing"] {
            store.insert_call(Some(id), request(id), now).expect("insert");
            store
                .update_call(id, |r| {
                    r.started_at = Some(now);
                    if r.call_id == "answered" {
                        r.status = CallStatus::Answered;
                        r.dialog = Some(dialog.clone());
                    }
                })
                .expect("update");
        }
        let engine = Arc::new(RecoveringEngine::default());
        let scheduler = scheduler_with(&store, engine.clone(), 1, None);
        assert_eq!(scheduler.recover().expect("recover"), (2, 0));
        assert_eq!(*engine.0.lock().expect("not poisoned"), vec![dialog]);
        for id in ["answered", "ringing"] {
            let r = store.get_call(id).expect("store").expect("record");
            assert_eq!(
                (r.status, r.error.as_deref()),
                (CallStatus::Failed, Some(RESTARTED))
            );
            assert_eq!(r.dialog, None, "a final record keeps no dialog");
        }
    }
}
