//! The decode gate: bounded cost for the in-process recognisers (whisper, PocketSphinx).
//!
//! A decode is CPU work of a few hundred milliseconds; many callers answering at once must not
//! pile up on the cores nor wait without end. The gate lets at most `max_decodes` decodes run at
//! once (`speech.max_decodes`; 0 = one less than the CPU cores, at least 1), lets at most `queue`
//! more wait for a slot (`speech.decode_queue`), and gives each waiting decode `deadline` to start
//! (`speech.decode_deadline_ms`). A decode that finds the queue full, or cannot start before its
//! deadline, fails at once with [`SpeechError::Busy`]; the call script takes that as a failed
//! answer and asks again (or goes on to its next attempt), so a caller never waits on a hang.
//!
//! Decodes run off the async executor, on `smol::unblock`'s thread pool; the slot is held by the
//! blocking job itself, so a call that hangs up mid-decode does not free its slot early.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::FutureExt;
use smol::lock::Semaphore;

use super::SpeechError;
use crate::config::SpeechConfig;

/// The default of `speech.decode_queue`.
pub const DEFAULT_QUEUE: usize = 16;
/// The default of `speech.decode_deadline_ms`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// The gate's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// Decodes running at once (at least 1).
    pub max_decodes: usize,
    /// Decodes waiting for a slot at most.
    pub queue: usize,
    /// How long a decode may wait for a slot.
    pub deadline: Duration,
}

/// One less than the CPU cores, at least 1 (one core stays free for SIP and media).
pub fn default_max_decodes() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            max_decodes: default_max_decodes(),
            queue: DEFAULT_QUEUE,
            deadline: DEFAULT_DEADLINE,
        }
    }
}

impl GateSettings {
    /// The settings of `[speech]`.
    pub fn from_config(s: &SpeechConfig) -> Self {
        Self {
            max_decodes: match s.max_decodes {
                0 => default_max_decodes(),
                n => n as usize,
            },
            queue: s.decode_queue as usize,
            deadline: Duration::from_millis(s.decode_deadline_ms),
        }
    }
}

struct Inner {
    settings: GateSettings,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// A gate shared by every in-process recogniser of the service (clones share it).
#[derive(Clone)]
pub struct DecodeGate {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DecodeGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeGate")
            .field("settings", &self.inner.settings)
            .field("waiting", &self.inner.waiting.load(Ordering::Relaxed))
            .finish()
    }
}

/// The gate of a recogniser built outside the service (tests, benchmarks, tools): as many
/// decodes at once as the service's default, but patient (a long queue and a minute to start),
/// since no caller is waiting on the line. The service builds its gate from `[speech]`.
impl Default for DecodeGate {
    fn default() -> Self {
        Self::new(GateSettings {
            queue: 1024,
            deadline: Duration::from_secs(60),
            ..GateSettings::default()
        })
    }
}

/// Counts one waiting decode while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl DecodeGate {
    pub fn new(settings: GateSettings) -> Self {
        let settings = GateSettings {
            max_decodes: settings.max_decodes.max(1),
            ..settings
        };
        Self {
            inner: Arc::new(Inner {
                settings,
                slots: Arc::new(Semaphore::new(settings.max_decodes)),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    pub fn settings(&self) -> GateSettings {
        self.inner.settings
    }

    /// Run `decode` on the blocking pool once a slot is free; `Busy` (naming `engine`) when the
    /// queue is full or no slot frees up within the deadline.
    pub async fn run<T, F>(&self, engine: &str, decode: F) -> Result<T, SpeechError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, SpeechError> + Send + 'static,
    {
        let inner = &self.inner;
        let guard = match inner.slots.try_acquire_arc() {
            Some(g) => g,
            None => {
                let queued = inner.waiting.fetch_add(1, Ordering::AcqRel);
                let _waiting = Waiting(&inner.waiting);
                if queued >= inner.settings.queue {
                    return Err(busy(
                        engine,
                        format!(
                            "{} decodes are running and {queued} waiting (speech.max_decodes, speech.decode_queue)",
                            inner.settings.max_decodes
                        ),
                    ));
                }
                let deadline = inner.settings.deadline;
                let slot = async { Some(inner.slots.acquire_arc().await) };
                let timer = async {
                    smol::Timer::after(deadline).await;
                    None
                };
                match slot.or(timer).await {
                    Some(g) => g,
                    None => {
                        return Err(busy(
                            engine,
                            format!(
                                "no decode slot within {} ms (speech.decode_deadline_ms)",
                                deadline.as_millis()
                            ),
                        ))
                    }
                }
            }
        };
        smol::unblock(move || {
            let _slot = guard;
            decode()
        })
        .await
    }
}

fn busy(engine: &str, detail: String) -> SpeechError {
    SpeechError::Busy {
        engine: engine.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    fn gate(max_decodes: usize, queue: usize, deadline_ms: u64) -> DecodeGate {
        DecodeGate::new(GateSettings {
            max_decodes,
            queue,
            deadline: Duration::from_millis(deadline_ms),
        })
    }

    /// A fake decoder that takes `ms` and records how many run at once.
    fn fake(
        running: &Arc<AtomicUsize>,
        most: &Arc<AtomicUsize>,
        ms: u64,
    ) -> impl FnOnce() -> Result<usize, SpeechError> + Send + 'static {
        let (running, most) = (running.clone(), most.clone());
        move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(ms));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(now)
        }
    }

    #[test]
    fn concurrency_never_exceeds_the_limit_and_every_queued_decode_runs() {
        let g = gate(2, 16, 5_000);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let results = smol::block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let g = g.clone();
                    let f = fake(&running, &most, 40);
                    smol::spawn(async move { g.run("fake", f).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at once, never more");
    }

    #[test]
    fn a_full_queue_fails_at_once_with_busy() {
        let g = gate(1, 1, 5_000);
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        smol::block_on(async {
            let (r, st) = (release.clone(), started.clone());
            let first = smol::spawn({
                let g = g.clone();
                async move {
                    g.run("fake", move || {
                        st.store(true, Ordering::SeqCst);
                        while !r.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Ok(1)
                    })
                    .await
                }
            });
            // The first holds the slot; the second waits in the queue.
            while !started.load(Ordering::SeqCst) {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            let second = smol::spawn({
                let g = g.clone();
                async move { g.run("fake", || Ok(2)).await }
            });
            while g.inner.waiting.load(Ordering::SeqCst) == 0 {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            let started = Instant::now();
            let third = g.run("fake", || Ok(3)).await;
            assert!(started.elapsed() < Duration::from_millis(500), "fails fast");
            match third {
                Err(SpeechError::Busy { engine, detail }) => {
                    assert_eq!(engine, "fake");
                    assert!(detail.contains("speech.decode_queue"), "{detail}");
                }
                other => panic!("expected Busy, got {other:?}"),
            }
            release.store(true, Ordering::SeqCst);
            assert_eq!(first.await.ok(), Some(1));
            assert_eq!(second.await.ok(), Some(2), "the queued decode runs");
        });
        assert_eq!(g.inner.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_decode_that_cannot_start_by_its_deadline_is_busy() {
        let g = gate(1, 4, 100);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        smol::block_on(async {
            let long = smol::spawn({
                let g = g.clone();
                let f = fake(&running, &most, 1_000);
                async move { g.run("fake", f).await }
            });
            while running.load(Ordering::SeqCst) == 0 {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            let started = Instant::now();
            let late = g.run("fake", || Ok(9)).await;
            let waited = started.elapsed();
            match late {
                Err(SpeechError::Busy { detail, .. }) => {
                    assert!(detail.contains("100 ms"), "{detail}")
                }
                other => panic!("expected Busy, got {other:?}"),
            }
            assert!(
                waited >= Duration::from_millis(100) && waited < Duration::from_millis(800),
                "waited {waited:?}"
            );
            assert!(long.await.is_ok());
        });
        // A decode after the slot is free runs.
        assert_eq!(smol::block_on(g.run("fake", || Ok(5))).ok(), Some(5));
    }

    #[test]
    fn settings_come_from_the_config_with_an_automatic_default() {
        let mut s = SpeechConfig::default();
        let auto = GateSettings::from_config(&s);
        assert_eq!(auto.max_decodes, default_max_decodes());
        assert!(auto.max_decodes >= 1);
        assert_eq!(auto.queue, DEFAULT_QUEUE);
        assert_eq!(auto.deadline, DEFAULT_DEADLINE);
        s.max_decodes = 3;
        s.decode_queue = 0;
        s.decode_deadline_ms = 250;
        let set = GateSettings::from_config(&s);
        assert_eq!(
            (set.max_decodes, set.queue, set.deadline),
            (3, 0, Duration::from_millis(250))
        );
        assert_eq!(gate(0, 1, 1).settings().max_decodes, 1, "never zero slots");
        let outside = DecodeGate::default().settings();
        assert_eq!(outside.max_decodes, default_max_decodes());
        assert!(outside.deadline > DEFAULT_DEADLINE && outside.queue > DEFAULT_QUEUE);
    }
}
