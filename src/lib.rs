//! sip-assistant: an outbound voice notification appliance for a PBX.
//!
//! Layers (see `../shared/DESIGN.md`): the shell ([`app`], [`api`], the webhook worker) owns sockets,
//! clocks and tasks; the core ([`call`], [`scheduler`] rules, [`webhook::outbox`], [`sip_addr`]) is
//! plain data and functions; [`store`] is the one facade over sled.

pub mod api;
pub mod app;
pub mod call;
pub mod choice;
pub mod config;
pub mod driver;
pub mod hooks;
pub mod logging;
pub mod media;
pub mod policy;
pub mod rng;
pub mod rtp;
pub mod scheduler;
pub mod sdp;
pub mod sip;
pub mod sip_addr;
pub mod speech;
pub mod store;
pub mod supervise;
pub mod webhook;
