//! The SIP user agent core, sans-IO: messages, transactions (RFC 3261 §17), dialogs (§12),
//! registration and digest authentication, driven with `now` as an argument. The smol driver in
//! `crate::driver` owns the sockets and the one timer.

pub mod auth;
pub mod header;
pub mod ids;
pub mod message;
pub mod transaction;
pub mod ua;
