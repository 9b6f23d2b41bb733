//! The interop tier (`cargo test --features interop`, run by `.ci/dev test`): real peers
//! (Kamailio, baresip, SIPp), real speech engines (flite, PocketSphinx, espeak-ng, Whisper, the
//! Wyoming servers), the Python webhook receiver and Debian's SIPp captures. A missing package is
//! a failing test that names it, never a skip. One test binary, so everything links once.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // clippy.toml binds the library's core only

#[path = "../support/binary.rs"]
mod binary;
#[path = "../support/cli.rs"]
mod cli;
#[path = "../support/speech_devset.rs"]
mod devset;
#[path = "../support/guests.rs"]
mod guests;
#[path = "../support/harness.rs"]
mod harness;
#[path = "../support/peers.rs"]
mod peers;
#[path = "../support/recognition_devset.rs"]
mod recognition_set;
#[path = "../support/speech_servers.rs"]
mod speech_servers;
#[path = "../support/speech_tally.rs"]
mod speech_tally;

mod attack_tcp;
mod binary_e2e;
mod binary_hooks;
mod binary_shutdown;
mod binary_watchdog;
mod call_flow;
mod call_natural;
mod check_config;
mod interop_harness;
mod media_controls;
mod media_interop;
mod models;
mod notifications;
mod recognition_devset;
mod rtp_captures;
mod shutdown;
mod sip_interop;
mod speech_remote;
mod speech_roundtrip;
mod speech_whisper;
mod store_recovery;
mod webhook_outbox;
