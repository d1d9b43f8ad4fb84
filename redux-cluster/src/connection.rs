//! Framed reading and writing over any byte stream.
//!
//! Transports only yield an `AsyncRead` and an `AsyncWrite`; this is where
//! bytes become [`Message`]s. The reader keeps one growing buffer and hands
//! out messages that borrow from it, so payloads are not copied.

use crate::error::FrameError;
use crate::protocol::{FrameCodec, Message, HANDSHAKE_MAX_FRAME, LEN_PREFIX};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a link stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The peer sent a bad frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed.
    #[error("link i/o failed: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol (a message out of place).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer closed the link.
    #[error("the peer closed the link")]
    Closed,
    /// The peer sent nothing, not even a heartbeat, for this long.
    #[error("the peer has been silent for {0:?}")]
    Silent(std::time::Duration),
    /// The peer refused us.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The server is full (or shutting down); worth trying again later.
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
    /// The server refused our login (wrong credentials, banned, or a login
    /// is required). Retrying with the same credentials cannot help.
    #[error("{0}")]
    AuthRefused(Box<crate::JoinError>),
    /// The server could not prove it knows our password: it is not the
    /// server we meant.
    #[error("the server failed to prove it holds the login's key")]
    ServerNotAuthentic,
}

/// Reads frames from a byte stream.
pub struct FrameReader<R> {
    inner: R,
    codec: FrameCodec,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const READ_CHUNK: usize = 64 * 1024;
/// The buffer of a peer that has not logged in yet.
const HANDSHAKE_BUF: usize = 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner`, refusing frames over `codec`'s maximum.
    pub fn new(inner: R, codec: FrameCodec) -> Self {
        Self {
            inner,
            codec,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// Wraps the stream of a peer that has not logged in: a small buffer,
    /// and frames over [`HANDSHAKE_MAX_FRAME`] refused, so that a peer
    /// costs little memory until [`FrameReader::admitted`].
    pub fn before_login(inner: R, codec: FrameCodec) -> Self {
        Self {
            inner,
            codec: FrameCodec::new(codec.max().min(HANDSHAKE_MAX_FRAME)),
            buf: vec![0; HANDSHAKE_BUF],
            start: 0,
            end: 0,
        }
    }

    /// The peer has logged in: frames up to `codec`'s maximum from now on.
    pub fn admitted(&mut self, codec: FrameCodec) {
        self.codec = codec;
        if self.buf.len() < READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
    }

    /// The next message; `Ok(None)` at a clean end of stream.
    ///
    /// # Errors
    /// A bad frame, a stream cut inside a frame, or an I/O error.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read so far stay buffered.
    pub async fn next(&mut self) -> Result<Option<Message<'_>>, LinkError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(len) = self.codec.frame_len(avail)? {
                let total = LEN_PREFIX + len;
                if avail.len() >= total {
                    let at = self.start;
                    self.start += total;
                    let frame = &self.buf[at..at + total];
                    return match self.codec.decode(frame)? {
                        Some((msg, _)) => Ok(Some(msg)),
                        None => Err(LinkError::Protocol("frame length mismatch".into())),
                    };
                }
                self.make_room(total);
            } else {
                self.make_room(LEN_PREFIX);
            }
            let n = self.inner.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                self.codec.finish(&self.buf[self.start..self.end])?;
                return Ok(None);
            }
            self.end += n;
        }
    }

    /// Ensures the buffer can hold `need` bytes from `start`, with room to
    /// read more.
    fn make_room(&mut self, need: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back memory after a large frame has been consumed.
            if self.buf.len() > 4 * READ_CHUNK {
                self.buf = vec![0; READ_CHUNK];
            }
        }
        if self.start > 0
            && (self.buf.len() - self.end < READ_CHUNK / 4 || self.buf.len() - self.start < need)
        {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Room for the frame, but grown with what has arrived (at most
        // doubling what is buffered), never to a length the peer announced
        // before sending it.
        let min_len = (self.start + need).max(self.end + 1);
        if self.buf.len() < min_len {
            let step = (self.end - self.start).max(READ_CHUNK.min(self.buf.len().max(1)));
            self.buf
                .resize(min_len.min(self.end + step).max(self.end + 1), 0);
        }
    }
}

/// Writes frames to a byte stream, many per syscall.
pub struct FrameWriter<W> {
    inner: W,
    codec: FrameCodec,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, codec: FrameCodec) -> Self {
        Self { inner, codec }
    }

    /// The codec frames are encoded with.
    pub fn codec(&self) -> FrameCodec {
        self.codec
    }

    /// Encodes and writes one message now.
    ///
    /// # Errors
    /// An oversized message or an I/O error.
    pub async fn send(&mut self, msg: &Message<'_>) -> Result<(), LinkError> {
        let mut buf = Vec::new();
        self.codec.encode(msg, &mut buf)?;
        self.write_all(&buf).await
    }

    /// Writes already-encoded frames in one go.
    ///
    /// # Errors
    /// An I/O error.
    ///
    /// # Cancel safety
    /// Not cancel safe: a part of `buf` may have been written.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), LinkError> {
        self.inner.write_all(buf).await?;
        Ok(())
    }

    /// Ends the stream in this direction: TLS sends its close_notify, QUIC
    /// finishes the stream, a socket sends FIN.
    ///
    /// # Errors
    /// An I/O error.
    pub async fn shutdown(&mut self) -> Result<(), LinkError> {
        self.inner.shutdown().await?;
        Ok(())
    }
}
