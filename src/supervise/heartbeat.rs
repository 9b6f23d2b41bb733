//! Heartbeats of the loops that matter (SIP driver loop, media thread, scheduler): each loop owns a
//! [`Heartbeat`] and beats it on every wake; [`Heartbeats::stale`] names those that have not beaten
//! recently. A loop that ends drops its handle and leaves the registry; a loop that hangs keeps its
//! handle and goes stale. Time is an argument (`now`), so the logic is tested in virtual time.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often an idle loop wakes just to beat (the SIP driver loop and the scheduler probe).
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

struct Cell {
    name: &'static str,
    last: Mutex<Instant>,
}

/// One loop's heartbeat; dropping it unregisters the loop.
pub struct Heartbeat(Arc<Cell>);

impl Heartbeat {
    /// The loop is alive at `now`.
    pub fn beat_at(&self, now: Instant) {
        if let Ok(mut last) = self.0.last.lock() {
            if now > *last {
                *last = now;
            }
        }
    }

    /// The loop is alive now.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    pub fn name(&self) -> &'static str {
        self.0.name
    }
}

/// The registry of live heartbeats.
#[derive(Default)]
pub struct Heartbeats {
    cells: Mutex<Vec<Weak<Cell>>>,
}

impl Heartbeats {
    /// Register `name`, beaten now.
    pub fn register(&self, name: &'static str) -> Heartbeat {
        self.register_at(name, Instant::now())
    }

    /// Register `name`, beaten at `now`.
    pub fn register_at(&self, name: &'static str, now: Instant) -> Heartbeat {
        let cell = Arc::new(Cell {
            name,
            last: Mutex::new(now),
        });
        if let Ok(mut cells) = self.cells.lock() {
            cells.retain(|c| c.strong_count() > 0);
            cells.push(Arc::downgrade(&cell));
        }
        Heartbeat(cell)
    }

    /// Names of the live heartbeats not beaten within `max_age` before `now`.
    pub fn stale(&self, now: Instant, max_age: Duration) -> Vec<&'static str> {
        let Ok(cells) = self.cells.lock() else {
            return vec!["heartbeat registry"];
        };
        cells
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| {
                let last = c.last.lock().map(|l| *l).unwrap_or(now - max_age * 2);
                now.saturating_duration_since(last) > max_age
            })
            .map(|c| c.name)
            .collect()
    }

    /// Names of the live heartbeats.
    pub fn names(&self) -> Vec<&'static str> {
        self.cells
            .lock()
            .map(|cells| cells.iter().filter_map(Weak::upgrade).map(|c| c.name).collect())
            .unwrap_or_default()
    }
}
