//! sip-assistant: an outbound voice notification appliance for a PBX.
//!
//! Layers, the data flow of one call, the drive contract and where each kind of change goes:
//! `ARCHITECTURE.md` at the repository root. In short: the sans-IO core ([`sip`], [`sdp`], [`rtp`],
//! [`media`], the call flow and script in [`flow`], the call's data in [`call`], [`choice`], the
//! webhook retry plan in [`webhook`], [`policy`]) is plain
//! data and functions with `now` as an argument; the shell ([`app`], [`api`], [`scheduler`],
//! [`driver`], the webhook worker, [`hooks`], the speech engines) owns sockets, clocks, threads and
//! tasks; [`store`] is the one facade over sled.

// The sans-IO core: clippy.toml's disallowed methods and types (clocks, sockets, threads, files,
// the executor, sled, wasmtime, surf) are errors here, except in unit tests.
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod call;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod choice;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod flow;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod media;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod notify;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod policy;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod rtp;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod sdp;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod sip;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod sip_addr;
#[cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub mod webhook;

// What the unit tests share (a seeded generator, a byte mutator).
#[cfg(test)]
mod testing;

// The shell: owns the clocks, sockets, threads, tasks, files and the database.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod api;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod app;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod config;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod driver;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod hooks;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod http_client;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod logging;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod models;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod notifier;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod rng;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod scheduler;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod speech;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod store;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod supervise;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod workers;
