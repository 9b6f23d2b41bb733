//! Wiring and the run loop: open the store, start the webhook worker, recover calls, serve the API,
//! and on SIGTERM/SIGINT drain calls, stop the worker and flush.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{FutureExt, StreamExt};

use crate::api::{self, ApiState};
use crate::call::{CallEngine, Timestamp};
use crate::config::Config;
use crate::driver::{DeliveryWorker, WorkerHandle};
use crate::hooks::{Hooks, HooksError, HooksSettings};
use crate::notifier::Notifier;
use crate::policy::{DialPolicy, HostPolicy, RateLimiter};
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};
use crate::supervise::notify::sd_notify;
use crate::supervise::{self, Supervisor};
use crate::webhook::{RetryPolicy, WebhookClient};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot create the data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the store in {0}: {1} (is another instance running on the same data dir?)")]
    Store(String, StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Hooks(#[from] HooksError),
    #[error(transparent)]
    Sip(#[from] crate::driver::DriverError),
    #[error("webhook.allow_hosts: {0}")]
    AllowHosts(#[from] crate::policy::hosts::BadEntry),
}

/// How often finished records past retention are deleted.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);
/// The longest time between two checks for waiting calls past `calls.queue_max_age_seconds`.
const QUEUE_EXPIRY_CHECK: Duration = Duration::from_secs(30);
/// How often non-durable writes (progress, delivery results) are flushed.
const LAZY_FLUSH: Duration = Duration::from_secs(60);
/// At shutdown, how long webhook attempts already in flight may take to finish; unfinished ones
/// stay in the outbox and are retried after the next start.
const WEBHOOK_STOP_WAIT: Duration = Duration::from_secs(5);

/// The running pieces, built by [`App::start`].
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub scheduler: Scheduler,
    /// Notifications: calls people until enough acknowledge.
    pub notifier: Notifier,
    pub webhooks: WorkerHandle,
    /// The delivery worker, awaited (briefly) at shutdown so in-flight webhooks are not cut off.
    worker: std::sync::Mutex<Option<smol::Task<Option<()>>>>,
    /// WebAssembly choice hooks from `hooks.dir`, reloaded on change and on SIGHUP.
    pub hooks: Hooks,
    /// Closed at shutdown: stops the housekeeping tasks so the store can be reopened.
    housekeeping: async_channel::Sender<()>,
    /// `calls.dial_allow`, checked at the API edge.
    dial: DialPolicy,
    /// `webhook.allow_hosts`, checked at the API edge and again at every connection.
    hosts: Arc<HostPolicy>,
    /// Requests per client (`api.rate_limit_*`).
    limiter: Arc<std::sync::Mutex<RateLimiter>>,
    /// Catches panics of the tasks started here; its health flag is part of `GET /health`.
    pub supervisor: Supervisor,
}

impl App {
    /// Open the store, start the webhook worker and recover calls; `engine` places calls.
    pub fn start(config: Config, engine: Arc<dyn CallEngine>) -> Result<Self, AppError> {
        let hooks = load_hooks(&config)?;
        Self::start_with_hooks(config, engine, hooks)
    }

    /// As [`App::start`], with hooks already loaded ([`load_hooks`]) and shared with `engine`.
    pub fn start_with_hooks(
        config: Config,
        engine: Arc<dyn CallEngine>,
        hooks: Hooks,
    ) -> Result<Self, AppError> {
        let dir = &config.store.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| AppError::DataDir(dir.display().to_string(), e))?;
        let store = Arc::new(Store::open(dir).map_err(|e| AppError::Store(dir.display().to_string(), e))?);
        let w = &config.webhook;
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(w.initial_backoff_ms),
            max_backoff: Duration::from_secs(w.max_backoff_seconds),
            max_age: Duration::from_secs(w.max_retry_seconds),
        };
        let hosts = Arc::new(HostPolicy::new(w.allow_hosts.as_slice())?);
        if w.secret.is_none() {
            tracing::warn!(
                "webhook.secret is not set: webhooks go out unsigned, so a receiver cannot tell them from forgeries"
            );
        }
        let client = WebhookClient::new(
            Duration::from_millis(w.connect_timeout_ms),
            Duration::from_millis(w.request_timeout_ms),
            hosts.clone(),
        );
        let (worker, webhooks) = DeliveryWorker::new(store.clone(), client, policy, w.secret.clone());
        let supervisor = supervise::global().clone();
        let worker = supervisor.spawn("webhook delivery", worker.run());
        let scheduler = Scheduler::new(
            store.clone(),
            engine,
            webhooks.clone(),
            config.calls.max_concurrent as usize,
            config.calls.queue_limit as usize,
            config.calls.queue_max_age(),
        );
        // Before the scheduler's recovery, so the end of no notification attempt goes unseen.
        let (notifier, notifier_task) = Notifier::new(store.clone(), scheduler.clone(), webhooks.clone());
        scheduler
            .recover()
            .map_err(|e| AppError::Store(dir.display().to_string(), e))?;
        supervisor.spawn("notifier", notifier_task.run()).detach();
        let (housekeeping, stop) = async_channel::bounded(1);
        if let Some(every) = hooks.settings().poll {
            hooks.spawn_watcher(every, stop.clone());
        }
        if let Some(max_age) = config.calls.queue_max_age() {
            spawn_queue_expiry(&supervisor, scheduler.clone(), max_age, stop.clone());
        }
        spawn_housekeeping(
            &supervisor,
            store.clone(),
            config.store.retention_days,
            stop.clone(),
        );
        spawn_scheduler_probe(&supervisor, scheduler.clone(), stop);
        let limiter = Arc::new(std::sync::Mutex::new(RateLimiter::new(
            config.api.rate_limit_per_second,
            config.api.rate_limit_burst,
        )));
        Ok(Self {
            dial: DialPolicy::new(config.calls.dial_allow.as_ref().map(|l| l.as_slice())),
            hosts,
            limiter,
            config,
            store,
            scheduler,
            notifier,
            webhooks,
            worker: std::sync::Mutex::new(Some(worker)),
            hooks,
            housekeeping,
            supervisor,
        })
    }

    pub fn api_state(&self) -> ApiState {
        ApiState {
            scheduler: self.scheduler.clone(),
            notifier: self.notifier.clone(),
            store: self.store.clone(),
            token: self.config.api.token.clone(),
            registrar_configured: self.config.sip.registrar.is_some(),
            hooks: self.hooks.clone(),
            dial: self.dial.clone(),
            hosts: self.hosts.clone(),
            limiter: self.limiter.clone(),
            supervisor: self.supervisor.clone(),
        }
    }

    /// Drain calls (up to the grace period), stop the worker, flush.
    pub async fn shutdown(&self) {
        let grace = Duration::from_secs(u64::from(self.config.calls.shutdown_grace_seconds));
        self.scheduler.drain(grace).await;
        // After the drain: the ends of the attempts it stopped are recorded (the notifier places
        // no new call once the scheduler is closed; those are placed after the next start).
        smol::Timer::after(Duration::from_millis(100)).await;
        self.notifier.stop();
        self.scheduler.engine().shutdown().await;
        // Give deliveries queued by the drain a moment to go out before stopping the worker.
        smol::Timer::after(Duration::from_millis(200)).await;
        self.webhooks.stop();
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            let finished = async {
                let _ = worker.await;
                true
            };
            let timeout = async {
                smol::Timer::after(WEBHOOK_STOP_WAIT).await;
                false
            };
            if !finished.or(timeout).await {
                tracing::warn!(
                    "webhook attempts still in flight at shutdown: they are retried after the next start"
                );
            }
        }
        self.housekeeping.close();
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final store flush failed");
        }
    }
}

/// Sleep for `d`; false when `stop` closed first.
async fn pause(d: Duration, stop: &async_channel::Receiver<()>) -> bool {
    let slept = async {
        smol::Timer::after(d).await;
        true
    };
    let stopped = async {
        let _ = stop.recv().await;
        false
    };
    slept.or(stopped).await
}

fn spawn_housekeeping(
    supervisor: &Supervisor,
    store: Arc<Store>,
    retention_days: u32,
    stop: async_channel::Receiver<()>,
) {
    let flusher = store.clone();
    let stop2 = stop.clone();
    supervisor
        .spawn("store flusher", async move {
            while pause(LAZY_FLUSH, &stop2).await {
                let f = flusher.clone();
                if let Err(e) = smol::unblock(move || f.flush_if_dirty()).await {
                    tracing::error!(error = %e, "periodic store flush failed");
                }
            }
        })
        .detach();
    supervisor
        .spawn("retention sweep", async move {
            loop {
                let cutoff = Timestamp(
                    Timestamp::now()
                        .0
                        .saturating_sub(u64::from(retention_days) * 86_400_000),
                );
                let s = store.clone();
                match smol::unblock(move || s.purge_finished_before(cutoff)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, retention_days, "deleted old call records"),
                    Err(e) => tracing::error!(error = %e, "retention sweep failed"),
                }
                let s = store.clone();
                match smol::unblock(move || s.purge_notifications_before(cutoff)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, retention_days, "deleted old notifications"),
                    Err(e) => tracing::error!(error = %e, "retention sweep of notifications failed"),
                }
                if !pause(RETENTION_SWEEP, &stop).await {
                    break;
                }
            }
        })
        .detach();
}

/// End waiting calls older than `calls.queue_max_age_seconds`, checked every `max_age / 10`
/// (1 s to [`QUEUE_EXPIRY_CHECK`]), so a call is never dialled much later than it may be.
fn spawn_queue_expiry(
    supervisor: &Supervisor,
    scheduler: Scheduler,
    max_age: Duration,
    stop: async_channel::Receiver<()>,
) {
    let every = (max_age / 10).clamp(Duration::from_secs(1), QUEUE_EXPIRY_CHECK);
    supervisor
        .spawn("queue expiry", async move {
            while pause(every, &stop).await {
                let s = scheduler.clone();
                let n = smol::unblock(move || s.expire_queued(Timestamp::now())).await;
                if n > 0 {
                    tracing::warn!(
                        expired = n,
                        "waiting calls ended: queued longer than calls.queue_max_age_seconds"
                    );
                }
            }
        })
        .detach();
}

/// The scheduler's heartbeat: every [`supervise::heartbeat::BEAT_EVERY`] a task on the executor
/// takes the scheduler's lock (`counts`) and beats, so a wedged executor or a held scheduler lock
/// stops the watchdog pings.
fn spawn_scheduler_probe(supervisor: &Supervisor, scheduler: Scheduler, stop: async_channel::Receiver<()>) {
    let heartbeat = supervisor.heartbeat("scheduler");
    supervisor
        .spawn("scheduler probe", async move {
            loop {
                let _ = scheduler.counts();
                heartbeat.beat();
                if !pause(supervise::heartbeat::BEAT_EVERY, &stop).await {
                    break;
                }
            }
        })
        .detach();
}

/// Set up the WebAssembly hooks of `hooks.dir` and load them (blocking: compiles what the cache
/// lacks). The built-in fallback uses the `[script]` matcher settings.
pub fn load_hooks(config: &Config) -> Result<Hooks, AppError> {
    let mut settings =
        HooksSettings::from_config(&config.hooks, Some(config.store.data_dir.join("hooks-cache")));
    settings.builtin = crate::driver::speech_setup::match_settings(config);
    let hooks = Hooks::new(settings)?;
    hooks.reload_blocking();
    Ok(hooks)
}

/// Run the service until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), AppError> {
    let mut signals = async_signal::Signals::new([
        async_signal::Signal::Term,
        async_signal::Signal::Int,
        async_signal::Signal::Hup,
    ])
    .map_err(AppError::Signals)?;
    // From here a panic in a core task (or the end of one that must run forever) ends the process
    // with code 70 after a short grace, so systemd restarts it.
    supervise::global().arm_exit(Box::new(|code| std::process::exit(code)), supervise::EXIT_GRACE);
    let hooks = load_hooks(&config)?;
    let decider = Arc::new(crate::driver::HookDecider { hooks: hooks.clone() });
    let engine = crate::driver::SipEngine::start_with_decider(&config, decider).await?;
    let app = App::start_with_hooks(config, Arc::new(engine), hooks)?;
    let addr = app.config.api_listen();
    let server = api::router(app.api_state());
    let (bound_tx, bound_rx) = async_channel::bounded(1);
    let sup = supervise::global().clone();
    let serving = supervise::global().spawn("api accept loop", async move {
        let bound = std::sync::atomic::AtomicBool::new(false);
        let served = api::serve(server, addr, |a| {
            bound.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = bound_tx.try_send(a);
        })
        .await;
        // After a successful bind the accept loop must run until the service stops.
        if bound.load(std::sync::atomic::Ordering::SeqCst) {
            let how = served.as_ref().err().map(ToString::to_string).unwrap_or_default();
            sup.ended("api accept loop", &how);
        }
        served
    });
    // The sender is dropped without sending when `serve` fails to bind.
    let Some(bound) = bound_rx.recv().await.ok() else {
        let err = serving
            .await
            .and_then(Result::err)
            .unwrap_or_else(|| std::io::Error::other("server stopped"));
        return Err(AppError::Listen(addr, err));
    };
    tracing::info!(listen = %bound, version = env!("CARGO_PKG_VERSION"), "API listening on http://{bound}");
    sd_notify("READY=1");
    if let Some(plan) = supervise::watchdog::WatchdogPlan::from_env() {
        tracing::info!(every = ?plan.ping_every, "systemd watchdog: pinging while the SIP, media and scheduler loops beat");
        let sup = supervise::global().clone();
        supervise::global()
            .spawn("watchdog pinger", supervise::watchdog::run(plan, sup))
            .detach();
    }
    let signal = loop {
        match signals.next().await {
            Some(Ok(async_signal::Signal::Hup)) => {
                let report = app.hooks.reload().await;
                tracing::info!(?report, "SIGHUP: hooks reloaded");
            }
            other => break other,
        }
    };
    tracing::info!(
        ?signal,
        "shutting down: new calls get 503, running calls may finish"
    );
    supervise::global().begin_shutdown();
    sd_notify("STOPPING=1");
    app.shutdown().await;
    drop(serving);
    tracing::info!(store_flushes = app.store.flush_count(), "stopped");
    Ok(())
}
