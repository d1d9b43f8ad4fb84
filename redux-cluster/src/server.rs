//! Serving stores to clients over a socket (the seed's `createServer`).
//!
//! ```no_run
//! # use redux_cluster::{reducer, ClusterStore, server::ServeConfig};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
//! # pub struct Tasks { done: u64 }
//! # #[reducer(Tasks)] #[derive(Serialize, Deserialize)] pub enum TaskAction { Done }
//! # fn reduce(s: &mut Tasks, _: &TaskAction) { s.done += 1 }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Tasks::start_master()?;
//! let server = store
//!     .serve(ServeConfig::unix("./mysock.sock").login("test1", "12345"))
//!     .await?;
//! # drop(server); Ok(()) }
//! ```

use crate::auth::Logins;
use crate::ban::{BanPolicy, Bans};
use crate::link::serve::{serve, Access, PeerKey, ServeOptions};
use crate::protocol::{FrameCodec, DEFAULT_MAX_FRAME};
use crate::store::Role;
use crate::transport::unix::{self, BindError};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Where and how to serve.
pub struct ServeConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) logins: Logins,
    pub(crate) bans: BanPolicy,
    pub(crate) max_frame: usize,
    pub(crate) max_clients: usize,
}

pub(crate) enum Endpoint {
    Unix(PathBuf),
}

impl ServeConfig {
    /// Serve on a Unix domain socket at `path` (mode 0600). A stale socket
    /// file left by a crash is replaced; a live server or a file that is not
    /// a socket is an error.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: Endpoint::Unix(path.into()),
            logins: Logins::new(),
            bans: BanPolicy::default(),
            max_frame: DEFAULT_MAX_FRAME,
            max_clients: 10_000,
        }
    }

    /// Admits `login` with `password` (only a salted key is kept). With no
    /// logins, everyone is admitted, as in the seed.
    pub fn login(mut self, login: &str, password: &str) -> Self {
        self.logins.insert(login, password, false);
        self
    }

    /// Admits `login` to follow the store, but not to dispatch.
    pub fn login_read_only(mut self, login: &str, password: &str) -> Self {
        self.logins.insert(login, password, true);
        self
    }

    /// Failed logins before a peer is refused, and for how long (defaults
    /// 5 and 3 hours).
    pub fn ban_policy(mut self, policy: BanPolicy) -> Self {
        self.bans = policy;
        self
    }

    /// Largest frame accepted from a client (default 64 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Most clients connected at once (default 10,000); more are refused.
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }
}

/// Serving failed to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Serving needs a tokio runtime.
    #[error("serving needs a tokio runtime")]
    NoRuntime,
}

/// A running server. Dropping it stops accepting, closes every client link
/// and removes the socket file.
#[derive(Debug)]
pub struct Server {
    task: tokio::task::JoinHandle<()>,
    path: Option<PathBuf>,
}

impl Server {
    /// The socket path, for a Unix server.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Stops the server and waits until its links are closed.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving the store named `name`.
pub(crate) async fn start(name: &'static str, cfg: ServeConfig) -> Result<Server, ServeError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ServeError::NoRuntime);
    }
    if cfg.logins.is_empty() {
        tracing::warn!(
            store = name,
            "serving with no logins: every client is admitted"
        );
    }
    let access = Arc::new(Access {
        logins: cfg.logins,
        bans: Mutex::new(Bans::new(cfg.bans)),
    });
    let stores: Arc<[&'static str]> = Arc::from(vec![name]);
    let codec = FrameCodec::new(cfg.max_frame);
    match cfg.endpoint {
        Endpoint::Unix(path) => {
            let listener = unix::bind(&path).await?;
            let max_clients = cfg.max_clients;
            let task = tokio::spawn(async move {
                let mut links = JoinSet::new();
                let mut last_collect = tokio::time::Instant::now();
                loop {
                    let (r, w, cred) = match listener.accept().await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    while links.try_join_next().is_some() {}
                    if links.len() >= max_clients {
                        tracing::warn!(max_clients, "refusing a client: too many connected");
                        continue;
                    }
                    let now = tokio::time::Instant::now();
                    if now - last_collect > Duration::from_secs(60) {
                        access.bans.lock().collect(now);
                        last_collect = now;
                    }
                    let opts = ServeOptions {
                        peer: match cred.pid {
                            Some(pid) => format!("client uid {} pid {pid}", cred.uid),
                            None => format!("client uid {}", cred.uid),
                        },
                        codec,
                        join_wait: Duration::ZERO,
                        access: Some(Arc::clone(&access)),
                        peer_key: PeerKey::Uid(cred.uid),
                        stores: Some(Arc::clone(&stores)),
                        role: Role::Server,
                    };
                    links.spawn(serve(r, w, opts));
                }
            });
            Ok(Server {
                task,
                path: Some(path),
            })
        }
    }
}
