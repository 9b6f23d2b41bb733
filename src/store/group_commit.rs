//! Group commit: callers of [`super::Store::flush`] that arrive while a flush runs wait for the next
//! one and share it, so a burst of `POST /call` (each durable before its 200) costs a few fsyncs,
//! not one each.
//!
//! Each caller takes a ticket after its writes. A flush that starts after ticket `t` was taken
//! covers `t`'s writes, so the flush reads the newest ticket (`target`) when it starts and, when it
//! succeeds, every caller up to `target` is done. When it fails, those callers get the error unless
//! a later flush (which covers them too) has succeeded.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::StoreError;

#[derive(Default)]
struct Gate {
    /// The newest ticket handed out.
    requested: u64,
    /// Every ticket up to this one has seen a flush end.
    finished: u64,
    /// Every ticket up to this one is durable.
    succeeded: u64,
    /// A flush is under way.
    running: bool,
    /// Why the last flush failed (shown to the callers it covered).
    last_error: String,
}

#[derive(Default)]
pub struct FlushGate {
    gate: Mutex<Gate>,
    ended: Condvar,
}

impl FlushGate {
    fn lock(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make every write made before this call durable, with `flush` (run by one caller for all
    /// that wait at that moment).
    pub fn flush(&self, flush: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut flush = Some(flush);
        let mut g = self.lock();
        g.requested += 1;
        let ticket = g.requested;
        loop {
            if g.succeeded >= ticket {
                return Ok(());
            }
            if g.finished >= ticket {
                return Err(StoreError::Sync(std::io::Error::other(format!(
                    "a shared flush failed: {}",
                    g.last_error
                ))));
            }
            if !g.running {
                if let Some(f) = flush.take() {
                    g.running = true;
                    let target = g.requested;
                    drop(g);
                    let result = f();
                    g = self.lock();
                    g.running = false;
                    g.finished = g.finished.max(target);
                    match &result {
                        Ok(()) => g.succeeded = g.succeeded.max(target),
                        Err(e) => g.last_error = e.to_string(),
                    }
                    self.ended.notify_all();
                    return result;
                }
            }
            g = self.ended.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_share_flushes_and_each_is_covered() {
        let gate = Arc::new(FlushGate::default());
        // "Writes" are numbered; a flush makes durable everything written before it started.
        let written = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let flushes = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (gate, written, durable, flushes) =
                    (gate.clone(), written.clone(), durable.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let mine = written.fetch_add(1, Ordering::SeqCst) + 1;
                        gate.flush(|| {
                            let upto = written.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            durable.fetch_max(upto, Ordering::SeqCst);
                            flushes.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .expect("flush");
                        assert!(
                            durable.load(Ordering::SeqCst) >= mine,
                            "returned before its write was durable"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!(n < 640 / 2, "{n} flushes for 640 callers: not shared");
    }

    #[test]
    fn a_failed_flush_fails_the_callers_it_covered_and_the_next_one_flushes_again() {
        let gate = FlushGate::default();
        let err = gate.flush(|| Err(StoreError::Sync(std::io::Error::other("disk gone"))));
        assert!(err.is_err());
        let mut ran = false;
        gate.flush(|| {
            ran = true;
            Ok(())
        })
        .expect("second flush");
        assert!(ran, "a caller after a failure gets a flush of its own");
    }
}
