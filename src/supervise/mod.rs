//! Supervision of the shell's long-running work: the spawned tasks (SIP driver loop, scheduler,
//! webhook delivery, store sweeps, API accept loop) and the media OS thread.
//!
//! Owns: catching a panic in any of them (and the end of a task that must run forever), reporting
//! it with the task's name, turning `GET /health` unhealthy at once and, once armed by the service
//! ([`Supervisor::arm_exit`]), ending the process with [`EXIT_CODE`] after a short grace so systemd
//! restarts it. Also the heartbeats of the loops that matter ([`heartbeat`]) and the systemd
//! watchdog pinger built on them ([`watchdog`]).
//!
//! The service uses one process-wide supervisor ([`global`]); tests build their own with an
//! injected exit hook ([`Supervisor::new`]).
//!
//! ```no_run
//! let sup = sip_assistant::supervise::global();
//! sup.spawn("store sweep", async { /* ... */ }).detach();
//! sup.spawn_forever("api accept loop", async { /* never returns */ }).detach();
//! ```

pub mod heartbeat;
pub mod notify;
pub mod watchdog;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_lite::FutureExt;

pub use heartbeat::{Heartbeat, Heartbeats};

/// Exit code after a core task failed: `EX_SOFTWARE` (internal software error).
pub const EXIT_CODE: i32 = 70;

/// Time between a failure and the exit: `/health` answers "unhealthy" and the log is written.
pub const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What ends the process after a failure; the service passes `std::process::exit`.
pub type ExitHook = Box<dyn Fn(i32) + Send + Sync>;

struct Inner {
    healthy: AtomicBool,
    shutting_down: AtomicBool,
    failures: Mutex<Vec<String>>,
    exit: Mutex<Option<(ExitHook, Duration)>>,
    exit_started: AtomicBool,
    heartbeats: Heartbeats,
}

/// Shared health flag, failure reports, exit trigger and heartbeats; cheap to clone.
#[derive(Clone)]
pub struct Supervisor(Arc<Inner>);

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("healthy", &self.is_healthy())
            .field("failures", &self.failures())
            .finish()
    }
}

/// The process-wide supervisor the shell spawns through. Not armed: a failure turns health off
/// but ends the process only after [`Supervisor::arm_exit`] (the service arms it at start).
pub fn global() -> &'static Supervisor {
    static GLOBAL: OnceLock<Supervisor> = OnceLock::new();
    GLOBAL.get_or_init(Supervisor::new)
}

impl Supervisor {
    /// Healthy, not armed, no heartbeats.
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            healthy: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
            exit: Mutex::new(None),
            exit_started: AtomicBool::new(false),
            heartbeats: Heartbeats::default(),
        }))
    }

    /// From now on a failure calls `hook(EXIT_CODE)` after `grace` (on its own thread, so a stuck
    /// executor cannot hold it back).
    pub fn arm_exit(&self, hook: ExitHook, grace: Duration) {
        if let Ok(mut slot) = self.0.exit.lock() {
            *slot = Some((hook, grace));
        }
    }

    /// False once any supervised task failed.
    pub fn is_healthy(&self) -> bool {
        self.0.healthy.load(Ordering::SeqCst)
    }

    /// What failed so far, one line each ("<task> panicked: <message>").
    pub fn failures(&self) -> Vec<String> {
        self.0.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// The service is stopping: tasks that must run forever may end now without it being a
    /// failure (panics still are).
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The heartbeats of the loops that matter.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.0.heartbeats
    }

    /// A new heartbeat named `name`, registered for the watchdog while the handle lives.
    pub fn heartbeat(&self, name: &'static str) -> Heartbeat {
        self.0.heartbeats.register(name)
    }

    /// Report that `task` failed: error log, health off, and the exit (if armed) after the grace.
    pub fn fail(&self, task: &str, reason: &str) {
        let line = format!("{task} {reason}");
        tracing::error!(task, %reason, "core task failed: the service is unhealthy and exits with code {EXIT_CODE}");
        self.0.healthy.store(false, Ordering::SeqCst);
        if let Ok(mut f) = self.0.failures.lock() {
            f.push(line);
        }
        notify::sd_notify(&format!("STATUS=core task failed: {task} {reason}"));
        self.trigger_exit();
    }

    fn trigger_exit(&self) {
        let armed = self.0.exit.lock().map(|e| e.is_some()).unwrap_or(false);
        if !armed || self.0.exit_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("supervise-exit".into())
            .spawn(move || {
                let grace = me.0.exit.lock().ok().and_then(|e| e.as_ref().map(|(_, g)| *g));
                std::thread::sleep(grace.unwrap_or(EXIT_GRACE));
                if let Ok(slot) = me.0.exit.lock() {
                    if let Some((hook, _)) = slot.as_ref() {
                        hook(EXIT_CODE);
                    }
                }
            });
        if let Err(e) = spawned {
            // No thread for the grace: exit now rather than run on unsupervised.
            tracing::error!(error = %e, "cannot start the exit thread; exiting at once");
            if let Ok(slot) = self.0.exit.lock() {
                if let Some((hook, _)) = slot.as_ref() {
                    hook(EXIT_CODE);
                }
            }
        }
    }

    /// Spawn `fut` on smol; a panic in it is a failure of `name`. Its end is not.
    pub fn spawn<T: Send + 'static>(
        &self,
        name: &'static str,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> smol::Task<Option<T>> {
        let me = self.clone();
        smol::spawn(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(v) => Some(v),
                Err(payload) => {
                    me.fail(name, &format!("panicked: {}", panic_message(&*payload)));
                    None
                }
            }
        })
    }

    /// Spawn `fut`, which must run until the service stops: a panic, or its end before
    /// [`Supervisor::begin_shutdown`], is a failure of `name`.
    pub fn spawn_forever<T: Send + 'static>(
        &self,
        name: &'static str,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> smol::Task<Option<T>> {
        let me = self.clone();
        self.spawn(name, async move {
            let v = fut.await;
            me.ended(name, "");
            v
        })
    }

    /// `task`, which must run until the service stops, has ended (`detail` says how): a failure
    /// unless [`Supervisor::begin_shutdown`] was called.
    pub fn ended(&self, task: &str, detail: &str) {
        if !self.0.shutting_down.load(Ordering::SeqCst) {
            let sep = if detail.is_empty() { "" } else { ": " };
            self.fail(task, &format!("ended unexpectedly{sep}{detail}"));
        }
    }

    /// Run `f` (the body of an OS thread) catching a panic, which is a failure of `name`.
    pub fn run_guarded<T>(&self, name: &'static str, f: impl FnOnce() -> T) -> Option<T> {
        match std::panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => Some(v),
            Err(payload) => {
                self.fail(name, &format!("panicked: {}", panic_message(&*payload)));
                None
            }
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests;
