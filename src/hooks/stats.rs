//! Counters of `GET /hooks`: calls, failures and the last error of each hook file, and the calls
//! that named a hook that was not there (a file removed after a call was accepted, a mistyped
//! `hooks.default`), which the built-in matcher decided.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Names the missing-hook counter keeps apart; calls naming further ones count under
/// [`OTHER_MISSING`].
pub const MAX_MISSING_NAMES: usize = 100;
/// The bucket of missing names past [`MAX_MISSING_NAMES`] (not a valid hook name, so no clash).
pub const OTHER_MISSING: &str = "(other)";

/// One hook file's counters.
#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn set_error(&self, e: String) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(e);
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|s| s.clone())
    }

    /// A call that ran (or tried to run) this hook.
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A call that the built-in matcher decided instead.
    pub fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Calls per hook name that was not loaded when the call came.
#[derive(Default)]
pub struct Missing(Mutex<BTreeMap<String, u64>>);

impl Missing {
    pub fn count(&self, name: &str) {
        let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = if names.contains_key(name) || names.len() < MAX_MISSING_NAMES {
            name
        } else {
            OTHER_MISSING
        };
        *names.entry(key.to_string()).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_are_counted_and_bounded() {
        let m = Missing::default();
        m.count("gone");
        m.count("gone");
        for i in 0..MAX_MISSING_NAMES + 5 {
            m.count(&format!("n{i}"));
        }
        m.count("gone");
        let s = m.snapshot();
        assert_eq!(s.len(), MAX_MISSING_NAMES + 1);
        assert_eq!(s.get("gone"), Some(&3));
        assert_eq!(s.get(OTHER_MISSING), Some(&6));
    }
}
