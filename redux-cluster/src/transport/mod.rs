//! Transports. Each one only yields a reader/writer pair; framing, the
//! handshake and sync live above them, shared by all.

// The worker channel's plumbing (fork uses it): not a promise.
pub(crate) mod accept;
#[doc(hidden)]
pub mod pipe;
pub mod quic;
pub mod tcp_tls;
pub mod tls;
pub mod unix;
