//! The one wasmtime `Engine` (Cranelift, fuel, epoch interruption) and the thread that ticks its
//! epoch every [`EPOCH_TICK`], which is what makes a per-call wall-clock deadline possible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// One epoch tick; call deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Guest stack limit (wasm frames), well under the host thread's stack.
const MAX_WASM_STACK: usize = 512 * 1024;

pub fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .wasm_component_model(true);
    Engine::new(&config)
}

/// Increments the engine's epoch until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("hooks-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
