//! The local tier: what plain `cargo test` runs on a machine with Rust only (no SIP peers, no
//! speech libraries, no Python): the API, hooks, store, configuration and RTP attacks, in-process
//! (the built binary loads the speech engines at start, so its tests are in the interop tier). One
//! test binary, so wasmtime and the service link once.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../support/cli.rs"]
mod cli;
#[path = "../support/guests.rs"]
mod guests;
#[path = "../support/harness.rs"]
mod harness;
#[path = "../support/openapi.rs"]
mod openapi;

mod api;
mod api_methods;
mod attack_rtp;
mod config;
mod hooks;
mod hooks_input;
mod hooks_yesno;
mod notifications;
mod openapi_validator;
mod store;
mod supervise;
