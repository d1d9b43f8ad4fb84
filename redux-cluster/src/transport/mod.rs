//! Transports. Each one only yields a reader/writer pair; framing, the
//! handshake and sync live above them, shared by all.

pub mod pipe;
pub mod quic;
pub mod tcp_tls;
pub mod tls;
pub mod unix;
