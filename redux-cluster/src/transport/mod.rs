//! Transports. Each one only yields a reader/writer pair; framing, the
//! handshake and sync live above them, shared by all. The network
//! transports are features: `tls` (TCP + TLS, and the certificate types)
//! and `quic`.

pub(crate) mod accept;
mod error;
// The worker channel's plumbing (fork uses it): not a promise.
#[doc(hidden)]
pub mod pipe;
#[cfg(feature = "quic")]
pub mod quic;
#[cfg(feature = "tls")]
pub mod tcp_tls;
#[cfg(feature = "tls")]
pub mod tls;
pub mod unix;

// The errors every server and client names, with or without the network
// transports built (`tls` re-exports them at their old path).
pub use error::{Fingerprint, TransportError, TransportErrorKind};
