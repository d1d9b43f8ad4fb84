//! Length-prefixed postcard frames, with a maximum size. No I/O: the caller
//! appends bytes it read to a buffer and asks for the next message.

use super::Message;
use crate::error::FrameError;

/// Bytes of the length prefix (u32, little endian).
pub const LEN_PREFIX: usize = 4;

/// Default maximum frame size: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Largest frame a peer may send before it has logged in. A hello, a proof
/// or a refusal is a few hundred bytes; anything larger before a login is
/// refused, so an unauthenticated peer cannot make the server buffer more.
pub const HANDSHAKE_MAX_FRAME: usize = 16 << 10;

/// Encodes and decodes frames under a maximum size.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameCodec {
    /// A codec refusing frames larger than `max` bytes (prefix excluded).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.min(u32::MAX as usize),
        }
    }

    /// The maximum frame size.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Appends one frame holding `msg` to `out`.
    ///
    /// # Errors
    /// [`FrameError::Oversized`] when the message is larger than the maximum;
    /// `out` is then left as it was.
    pub fn encode(&self, msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        out.extend_from_slice(&[0; LEN_PREFIX]);
        if let Err(e) = crate::codec::encode_into(msg, out) {
            out.truncate(start);
            return Err(FrameError::malformed(e));
        }
        let len = out.len() - start - LEN_PREFIX;
        if len > self.max {
            out.truncate(start);
            return Err(FrameError::Oversized { len, max: self.max });
        }
        out[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }

    /// Reads the length of the frame at the start of `buf`, if the prefix is
    /// complete.
    ///
    /// # Errors
    /// [`FrameError::Oversized`] as soon as the prefix announces too much, so
    /// a reader never buffers an oversized frame.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let mut p = [0u8; LEN_PREFIX];
        p.copy_from_slice(prefix);
        let len = u32::from_le_bytes(p) as usize;
        if len > self.max {
            return Err(FrameError::Oversized { len, max: self.max });
        }
        Ok(Some(len))
    }

    /// Decodes the first frame in `buf`. Returns `None` when more bytes are
    /// needed, else the message and how many bytes it used.
    ///
    /// # Errors
    /// [`FrameError::Oversized`] or [`FrameError::Malformed`]. Never panics,
    /// whatever the bytes.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<(Message<'a>, usize)>, FrameError> {
        let Some(len) = self.frame_len(buf)? else {
            return Ok(None);
        };
        let Some(body) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Ok(None);
        };
        let (msg, rest) =
            postcard::take_from_bytes::<Message<'a>>(body).map_err(FrameError::malformed)?;
        if !rest.is_empty() {
            return Err(FrameError::malformed(
                postcard::Error::DeserializeBadEncoding,
            ));
        }
        Ok(Some((msg, LEN_PREFIX + len)))
    }

    /// Checks what is left when the stream ends: anything but nothing is a
    /// frame cut short.
    ///
    /// # Errors
    /// [`FrameError::Truncated`] when `rest` is not empty.
    pub fn finish(&self, rest: &[u8]) -> Result<(), FrameError> {
        if rest.is_empty() {
            return Ok(());
        }
        let need = match self.frame_len(rest) {
            Ok(Some(len)) => LEN_PREFIX + len,
            _ => LEN_PREFIX,
        };
        Err(FrameError::Truncated {
            need,
            have: rest.len(),
        })
    }
}
