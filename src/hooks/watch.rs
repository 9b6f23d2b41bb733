//! The polling watcher: every `hooks.poll_ms` ([`super::HooksSettings::poll`]) the hooks folder
//! is compared with what was loaded (names, sizes, modification times; contents by hash when
//! those changed).

use std::time::Duration;

use futures_lite::FutureExt;

use super::Hooks;

impl Hooks {
    /// Reload changed hooks every `interval` until `stop` closes.
    pub fn spawn_watcher(&self, interval: Duration, stop: async_channel::Receiver<()>) {
        let hooks = self.clone();
        crate::supervise::global()
            .spawn("hooks watcher", async move {
                loop {
                    let tick = async {
                        smol::Timer::after(interval).await;
                        true
                    };
                    let stopped = async {
                        let _ = stop.recv().await;
                        false
                    };
                    if !tick.or(stopped).await {
                        break;
                    }
                    hooks.poll().await;
                }
            })
            .detach();
    }
}
