//! One sandboxed hook call: a fresh `Store` with fuel, an epoch deadline and a memory limit for
//! the whole store (every linear memory and table of the component together), the `log` import,
//! the call, and the classification of what went wrong.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};

use super::engine::EPOCH_TICK;

wasmtime::component::bindgen!({
    path: "wasm-hooks/wit",
    world: "choice-matcher",
});

pub use self::exports::sip_assistant::hooks::matcher::{
    Alternative as WitAlternative, ChoiceOption as WitOption, MatchInput, MatchResult,
};
use self::sip_assistant::hooks::host::{Host, Level};

/// How many log lines one call may write, and how long each may be.
const LOG_LINES_PER_CALL: u32 = 20;
const LOG_LINE_CHARS: usize = 500;
/// Table elements one table may have (function references).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// What one table element counts against the memory limit (a reference is a pointer).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();
/// Core instances, linear memories and tables one store may hold. A component built by
/// `wit-component` has a few of each; the count limits matter because every linear memory
/// reserves address space (gigabytes, with its guard region) however small it is.
const MAX_INSTANCES: usize = 20;
const MAX_MEMORIES: usize = 10;
const MAX_TABLES: usize = 20;

/// The limits of one call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub fuel: u64,
    pub timeout: Duration,
    pub memory_bytes: usize,
}

/// What a call's store holds: the memory limiter and the log budget.
pub struct GuestState {
    hook: String,
    /// Bytes all linear memories and tables of the store may hold together.
    memory_limit: usize,
    /// Bytes they hold now. A growth the limiter allowed but wasmtime then refused (a memory's
    /// declared maximum) stays counted: the count errs on the guest's side of the limit, never
    /// on the host's.
    memory_used: usize,
    memory_exceeded: bool,
    log_lines_left: u32,
}

impl GuestState {
    fn new(hook: &str, limits: Limits) -> Self {
        Self {
            hook: hook.to_string(),
            memory_limit: limits.memory_bytes,
            memory_used: 0,
            memory_exceeded: false,
            log_lines_left: LOG_LINES_PER_CALL,
        }
    }

    /// Account for one memory or table growing from `current` to `desired` bytes; an error (a
    /// trap, or a failed instantiation) when the store's total would pass the limit.
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_sub(current).saturating_add(desired);
        if total > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        self.memory_used = total;
        Ok(true)
    }
}

impl ResourceLimiter for GuestState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

impl Host for GuestState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_lines_left == 0 {
            return;
        }
        self.log_lines_left -= 1;
        let cut: String = message.chars().take(LOG_LINE_CHARS).collect();
        let hook = self.hook.as_str();
        match level {
            Level::Trace => tracing::trace!(hook, "{cut}"),
            Level::Debug => tracing::debug!(hook, "{cut}"),
            Level::Info => tracing::info!(hook, "{cut}"),
            Level::Warn => tracing::warn!(hook, "{cut}"),
            Level::Error => tracing::error!(hook, "{cut}"),
        }
        if self.log_lines_left == 0 {
            tracing::warn!(
                hook,
                "hook log budget of {LOG_LINES_PER_CALL} lines used up; further lines dropped"
            );
        }
    }
}

/// A hook ready to be instantiated (imports resolved once, at load).
pub type Prepared = ChoiceMatcherPre<GuestState>;

/// The linker every hook is resolved against: `log` and nothing else.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    ChoiceMatcher::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Why a call produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    #[error("ran out of fuel ({0} units)")]
    OutOfFuel(u64),
    #[error("timed out after {0} ms")]
    Timeout(u128),
    #[error("exceeded the memory limit of {0} bytes")]
    Memory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}

/// Epoch ticks that make up `timeout` (at least one).
fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    u64::try_from(timeout.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A fresh store for one call of `hook`, with its fuel, deadline and limiter.
fn new_store(engine: &Engine, hook: &str, limits: Limits) -> Result<Store<GuestState>, GuestFailure> {
    let mut store = Store::new(engine, GuestState::new(hook, limits));
    store.limiter(|s| s);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| GuestFailure::Instantiate(e.to_string()))?;
    store.set_epoch_deadline(deadline_ticks(limits.timeout));
    store.epoch_deadline_trap();
    Ok(store)
}

/// Run `pre` once on `input` under `limits`. Blocking: call it from `smol::unblock`.
pub fn call(
    engine: &Engine,
    hook: &str,
    pre: &Prepared,
    input: &MatchInput,
    limits: Limits,
) -> Result<MatchResult, GuestFailure> {
    let mut store = new_store(engine, hook, limits)?;
    let instance = match pre.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => return Err(classify(&e, &store, limits, true)),
    };
    instance
        .sip_assistant_hooks_matcher()
        .call_match_choice(&mut store, input)
        .map_err(|e| classify(&e, &store, limits, false))
}

/// Create a store and instantiate `pre` without calling it (for measurements).
pub fn instantiate_only(
    engine: &Engine,
    hook: &str,
    pre: &Prepared,
    limits: Limits,
) -> Result<(), GuestFailure> {
    let mut store = new_store(engine, hook, limits)?;
    pre.instantiate(&mut store)
        .map(|_| ())
        .map_err(|e| classify(&e, &store, limits, true))
}

fn classify(
    err: &wasmtime::Error,
    store: &Store<GuestState>,
    limits: Limits,
    instantiating: bool,
) -> GuestFailure {
    if store.data().memory_exceeded {
        return GuestFailure::Memory(limits.memory_bytes);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => GuestFailure::OutOfFuel(limits.fuel),
        Some(Trap::Interrupt) => GuestFailure::Timeout(limits.timeout.as_millis()),
        Some(trap) => GuestFailure::Trap(trap.to_string()),
        None if instantiating => GuestFailure::Instantiate(chain(err)),
        None => GuestFailure::Trap(chain(err)),
    }
}

fn chain(err: &wasmtime::Error) -> String {
    err.chain().map(|e| e.to_string()).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_to_whole_ticks() {
        assert_eq!(deadline_ticks(Duration::from_millis(50)), 5);
        assert_eq!(deadline_ticks(Duration::from_millis(51)), 6);
        assert_eq!(deadline_ticks(Duration::ZERO), 1);
    }

    #[test]
    fn the_memory_limit_counts_every_memory_and_table_of_the_store() {
        let limits = Limits {
            fuel: 1,
            timeout: Duration::from_millis(50),
            memory_bytes: 16 << 20,
        };
        let mut s = GuestState::new("t", limits);
        // Three memories of 5 MiB each are created: 15 MiB in all.
        for _ in 0..3 {
            assert!(s.memory_growing(0, 5 << 20, None).is_ok_and(|ok| ok));
        }
        // A fourth of 5 MiB would fit on its own but not in the total.
        assert!(s.memory_growing(0, 5 << 20, None).is_err());
        assert!(s.memory_exceeded);
        // Growing one of them by 1 MiB still fits; then a table of 64 KiB of references does not.
        assert!(s.memory_growing(5 << 20, 6 << 20, None).is_ok_and(|ok| ok));
        assert!(s
            .table_growing(0, (64 << 10) / TABLE_ELEMENT_BYTES, None)
            .is_err());
        assert_eq!(s.memory_used, 16 << 20);
        // A table past its own element limit is refused (table.grow answers -1), not trapped.
        let mut t = GuestState::new("t", limits);
        assert!(t
            .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
            .is_ok_and(|ok| !ok));
    }
}
