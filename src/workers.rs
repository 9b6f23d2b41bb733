//! CPU-heavy work that must never starve the media thread: rendering and encoding prompts.
//!
//! `smol::unblock` runs each job on a thread of its own pool (up to 500 threads), at the same
//! priority as the media thread. When a few hundred calls start at once, each encoding its ~40 s
//! message, a few hundred such threads shared two cores with the one thread that paces every
//! call's RTP, and the audio of every call stalled for seconds. Jobs given to [`run`] go instead to
//! a fixed set of threads (one per core) that run at a lower priority (nice +10): they use the
//! cores the media thread leaves, and a burst of work waits in their queue, not on the CPU.

use std::sync::OnceLock;

/// Niceness of the worker threads (the rest of the process stays at its own).
const NICE: libc::c_int = 10;

type Job = Box<dyn FnOnce() + Send + 'static>;

fn queue() -> &'static async_channel::Sender<Job> {
    static QUEUE: OnceLock<async_channel::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = async_channel::unbounded::<Job>();
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("render-{i}"))
                .spawn(move || {
                    lower_priority();
                    while let Ok(job) = rx.recv_blocking() {
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            tracing::error!("a render job panicked");
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a render worker thread");
            }
        }
        tx
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

/// Run `f` on a render worker and wait for its result.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    let (tx, rx) = async_channel::bounded::<T>(1);
    let job: Job = Box::new(move || {
        let _ = tx.try_send(f());
    });
    queue().try_send(job).map_err(|_| Lost)?;
    rx.recv().await.map_err(|_| Lost)
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
    }
}
