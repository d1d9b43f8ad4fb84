//! The worker channel: one end of a Unix socket pair, inherited by the
//! worker process and named to it by an environment variable (like Node's
//! cluster IPC channel), so the worker's stdin, stdout and stderr stay free.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Environment variable holding the inherited channel's descriptor number.
pub const CHANNEL_ENV: &str = "REDUX_CLUSTER_CHANNEL";

/// A connected socket pair: `(master end, worker end)`.
///
/// # Errors
/// When the OS refuses to create the pair.
pub fn pair() -> io::Result<(StdUnixStream, StdUnixStream)> {
    StdUnixStream::pair()
}

/// Lets `fd` survive `exec` in a child (called between fork and exec).
///
/// # Errors
/// When `fcntl` fails.
pub fn inherit(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is touched.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the channel named in [`CHANNEL_ENV`], in the worker.
///
/// # Errors
/// When the variable is missing or malformed, or names a descriptor that
/// is not an open socket.
pub fn open_inherited() -> io::Result<UnixStream> {
    let raw = std::env::var(CHANNEL_ENV).map_err(|_| {
        io::Error::new(io::ErrorKind::NotFound, format!("{CHANNEL_ENV} is not set"))
    })?;
    let fd: RawFd = raw.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{CHANNEL_ENV}={raw:?} is not a descriptor number"),
        )
    })?;
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{CHANNEL_ENV}={fd} names a standard stream"),
        ));
    }
    // SAFETY: fstat only writes into the struct we pass.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } == -1 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{CHANNEL_ENV}={fd} is not an open descriptor"),
        ));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{CHANNEL_ENV}={fd} is not a socket"),
        ));
    }
    // SAFETY: the descriptor is open, is a socket, and was handed to this
    // process for this purpose; nothing else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Our own children must not inherit it.
    // SAFETY: fcntl on the descriptor we now own.
    unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let std = StdUnixStream::from(owned);
    std.set_nonblocking(true)?;
    UnixStream::from_std(std)
}

/// Splits a channel into its reader and writer.
pub fn split(s: UnixStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    s.into_split()
}
