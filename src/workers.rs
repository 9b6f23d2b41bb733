//! CPU-heavy work that must never starve the media thread: rendering and encoding prompts.
//!
//! `smol::unblock` runs each job on a thread of its own pool (up to 500 threads), at the same
//! priority as the media thread. When a few hundred calls start at once, each encoding its ~40 s
//! message, a few hundred such threads shared two cores with the one thread that paces every
//! call's RTP, and the audio of every call stalled for seconds. Jobs given to [`run`] go instead to
//! a fixed set of threads (one per core) that run at a lower priority (nice +10): they use the
//! cores the media thread leaves, and a burst of work waits in their queue, not on the CPU.
//!
//! Two lanes, each first in first out: [`run`] for new work (rendering a text), [`run_ahead`] for
//! work that finishes what a call is waiting for (encoding a rendering that is done). A worker
//! takes from the second lane first. When 500 calls each render a text of their own, the renders
//! queue up at once; with one lane, each call's encodings then waited behind every render still
//! queued, so no call could speak until nearly all had been rendered. Ahead of the renders, a call
//! is ready as soon as its own rendering is.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};

/// Niceness of the worker threads (the rest of the process stays at its own).
const NICE: libc::c_int = 10;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Which lane a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// New work, in order of arrival.
    New,
    /// Work that completes something already under way; taken before any [`Lane::New`] job.
    Ahead,
}

/// The jobs waiting, by lane (the policy only; the threads and the lock are in [`Pool`]).
struct Lanes<J> {
    ahead: VecDeque<J>,
    new: VecDeque<J>,
}

impl<J> Default for Lanes<J> {
    fn default() -> Self {
        Self {
            ahead: VecDeque::new(),
            new: VecDeque::new(),
        }
    }
}

impl<J> Lanes<J> {
    fn push(&mut self, lane: Lane, job: J) {
        match lane {
            Lane::Ahead => self.ahead.push_back(job),
            Lane::New => self.new.push_back(job),
        }
    }

    fn pop(&mut self) -> Option<J> {
        self.ahead.pop_front().or_else(|| self.new.pop_front())
    }
}

struct Pool {
    jobs: Mutex<Lanes<Job>>,
    ready: Condvar,
    /// Worker threads that started (none: every job is lost).
    threads: usize,
}

impl Pool {
    fn lanes(&self) -> std::sync::MutexGuard<'_, Lanes<Job>> {
        // A poisoned lock only means a thread panicked while pushing or popping a job.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self) {
        lower_priority();
        loop {
            let job = {
                let mut lanes = self.lanes();
                loop {
                    if let Some(job) = lanes.pop() {
                        break job;
                    }
                    lanes = self.ready.wait(lanes).unwrap_or_else(|p| p.into_inner());
                }
            };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                tracing::error!("a render job panicked");
            }
        }
    }
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let wanted = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let mut threads = 0;
        for i in 0..wanted {
            // Each thread's first `pool()` waits until this initialiser has returned.
            let started = std::thread::Builder::new()
                .name(format!("render-{i}"))
                .spawn(|| pool().work());
            match started {
                Ok(_) => threads += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a render worker thread"),
            }
        }
        Pool {
            jobs: Mutex::default(),
            ready: Condvar::new(),
            threads,
        }
    })
}

/// Make the calling thread nicer (Linux: niceness is per thread).
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "render worker keeps its priority");
    }
}

/// The render workers are not running (none could be started), or the job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the render job was lost (no render worker thread, or the job panicked)")]
pub struct Lost;

async fn submit<T: Send + 'static>(lane: Lane, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    let pool = pool();
    if pool.threads == 0 {
        return Err(Lost);
    }
    let (tx, rx) = async_channel::bounded::<T>(1);
    let job: Job = Box::new(move || {
        let _ = tx.try_send(f());
    });
    pool.lanes().push(lane, job);
    pool.ready.notify_one();
    rx.recv().await.map_err(|_| Lost)
}

/// Run `f`, new work (a rendering), on a render worker and wait for its result.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    submit(Lane::New, f).await
}

/// Run `f` on a render worker ahead of all new work waiting ([`run`]): for work that finishes what
/// a call is waiting for (encoding a rendering that is done).
pub async fn run_ahead<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    submit(Lane::Ahead, f).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn jobs_run_on_the_workers_at_a_lower_priority() {
        let (name, nice) = smol::block_on(super::run(|| {
            // SAFETY: as in lower_priority.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            (std::thread::current().name().map(str::to_string), nice)
        }))
        .expect("ran");
        assert!(name.is_some_and(|n| n.starts_with("render-")));
        assert_eq!(nice, super::NICE);
        let sum: u64 = smol::block_on(async {
            let jobs: Vec<_> = (0..64u64)
                .map(|i| smol::spawn(super::run(move || i * 2)))
                .collect();
            let mut s = 0;
            for j in jobs {
                s += j.await.expect("ran");
            }
            s
        });
        assert_eq!(sum, (0..64u64).map(|i| i * 2).sum::<u64>());
        // A job that panics loses its result, not the worker.
        assert!(smol::block_on(super::run(|| panic!("boom"))).is_err());
        assert_eq!(smol::block_on(super::run(|| 7)).expect("ran"), 7);
        assert_eq!(smol::block_on(super::run_ahead(|| 8)).expect("ran"), 8);
    }

    #[test]
    fn work_that_finishes_a_call_goes_before_new_work_and_each_lane_keeps_its_order() {
        use super::{Lane, Lanes};
        let mut lanes = Lanes::default();
        // 3 renders queued, then the encodings of the first one's result.
        for r in ["render 1", "render 2", "render 3"] {
            lanes.push(Lane::New, r);
        }
        lanes.push(Lane::Ahead, "encode 1 PCMU");
        lanes.push(Lane::Ahead, "encode 1 PCMA");
        let order: Vec<_> = std::iter::from_fn(|| lanes.pop()).collect();
        assert_eq!(
            order,
            [
                "encode 1 PCMU",
                "encode 1 PCMA",
                "render 1",
                "render 2",
                "render 3"
            ]
        );
    }
}
