//! RTP and RTCP (RFC 3550), sans-IO: packets, receiver statistics, reordering.

pub mod packet;
pub mod reorder;
pub mod rtcp;
pub mod stats;
