//! The media core, sans-IO: codecs (G.711, Opus), resampling, RFC 4733 DTMF and the 20 ms pacer.
//! The media thread in `crate::driver::media` owns the sockets and the clock.

pub mod dtmf;
pub mod g711;
pub mod opus_codec;
pub mod pacer;
pub mod prompt;
pub mod resample;
pub mod session;
