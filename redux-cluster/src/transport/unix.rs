//! Unix domain sockets (the seed's `path` option), with safe handling of
//! the socket file: a live server on the path is an error, a stale socket
//! left by a crash is replaced, anything that is not a socket is refused.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

/// Why a socket path could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another server answers on this path.
    #[error("a server is already listening on {0}")]
    InUse(PathBuf),
    /// The path holds something that is not a socket; it is left alone.
    #[error("refusing to replace {0}: it exists and is not a socket")]
    NotASocket(PathBuf),
    /// The OS refused.
    #[error("cannot bind {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A bound socket that removes its file when dropped.
#[derive(Debug)]
pub struct UnixServer {
    listener: UnixListener,
    path: PathBuf,
}

/// Binds `path` with mode 0600 (owner only).
///
/// # Errors
/// [`BindError`] as described on it.
pub async fn bind(path: &Path) -> Result<UnixServer, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // Alive or stale? Only a connection attempt can tell.
            match UnixStream::connect(path).await {
                Ok(_) => return Err(BindError::InUse(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "replacing a stale socket file");
                    std::fs::remove_file(path).map_err(io_err)?;
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(UnixServer {
        listener,
        path: path.to_path_buf(),
    })
}

/// What a server knows of a connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCred {
    /// The peer process's user id (SO_PEERCRED).
    pub uid: u32,
    /// Its process id, when the OS tells.
    pub pid: Option<i32>,
}

impl UnixServer {
    /// Accepts one connection.
    ///
    /// # Errors
    /// When accept fails.
    pub async fn accept(&self) -> io::Result<(OwnedReadHalf, OwnedWriteHalf, PeerCred)> {
        let (stream, _) = self.listener.accept().await?;
        let cred = stream.peer_cred()?;
        let (r, w) = stream.into_split();
        Ok((
            r,
            w,
            PeerCred {
                uid: cred.uid(),
                pid: cred.pid(),
            },
        ))
    }

    /// The bound path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to a server on `path`.
///
/// # Errors
/// When nothing listens there.
pub async fn connect(path: &Path) -> io::Result<(OwnedReadHalf, OwnedWriteHalf)> {
    Ok(UnixStream::connect(path).await?.into_split())
}
