//! The sync protocol, with no I/O: message types and the frame codec.
//! Everything here is testable without sockets.

mod frame;
mod message;

pub use frame::{FrameCodec, DEFAULT_MAX_FRAME, HANDSHAKE_MAX_FRAME, LEN_PREFIX};
pub use message::*;

/// Version of the wire protocol; a peer with another version is refused at
/// the hello.
pub const PROTOCOL_VERSION: u16 = 2;
