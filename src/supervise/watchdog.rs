//! The systemd watchdog pinger: with `WATCHDOG_USEC` set (and `WATCHDOG_PID` unset or ours) it
//! sends `WATCHDOG=1` every half interval, but only while every heartbeat is fresh; a hung loop
//! stops the pings and systemd restarts the service (`WatchdogSec=` in the unit).

use std::time::{Duration, Instant};

use super::heartbeat::BEAT_EVERY;
use super::{notify, Heartbeats, Supervisor};

/// A heartbeat is stale after at least this long, however short the watchdog interval.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(3);

/// When to ping and when a heartbeat counts as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogPlan {
    /// Half the watchdog interval.
    pub ping_every: Duration,
    /// A heartbeat older than this withholds the ping.
    pub stale_after: Duration,
}

impl WatchdogPlan {
    /// From `WATCHDOG_USEC` and `WATCHDOG_PID` (as systemd sets them); `None` when there is no
    /// watchdog for this process.
    pub fn from_env_values(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Self> {
        let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
        if let Some(pid) = pid {
            if pid.trim().parse::<u32>().ok() != Some(our_pid) {
                return None;
            }
        }
        let ping_every = Duration::from_micros(usec / 2).max(Duration::from_millis(1));
        let stale_after = ping_every.max(MIN_STALE_AFTER).max(BEAT_EVERY * 3);
        Some(Self {
            ping_every,
            stale_after,
        })
    }

    /// From this process's environment.
    pub fn from_env() -> Option<Self> {
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Self::from_env_values(usec.as_deref(), pid.as_deref(), std::process::id())
    }

    /// Ping at `now`? `Err` names the stale loops.
    pub fn decide(&self, heartbeats: &Heartbeats, now: Instant) -> Result<(), Vec<&'static str>> {
        let stale = heartbeats.stale(now, self.stale_after);
        if stale.is_empty() {
            Ok(())
        } else {
            Err(stale)
        }
    }
}

/// Ping systemd every `plan.ping_every` while the heartbeats of `sup` are fresh.
pub async fn run(plan: WatchdogPlan, sup: Supervisor) {
    let mut withheld = false;
    loop {
        match plan.decide(sup.heartbeats(), Instant::now()) {
            Ok(()) => {
                if withheld {
                    tracing::info!("all loops beat again: watchdog pings resumed");
                    withheld = false;
                }
                notify::sd_notify("WATCHDOG=1");
            }
            Err(stale) => {
                if !withheld {
                    tracing::error!(
                        loops = ?stale,
                        "loops stopped beating: watchdog pings withheld, systemd will restart the service"
                    );
                    withheld = true;
                }
            }
        }
        smol::Timer::after(plan.ping_every).await;
    }
}
