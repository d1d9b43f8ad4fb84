//! Following a server over a socket (the seed's `createClient`), with
//! reconnect and resume.
//!
//! The client retries with exponential backoff (first retry fast, capped).
//! On each reconnect it sends where it stands (epoch, seq); the server
//! replays what it still holds, else sends a snapshot. Dispatches made while
//! disconnected are queued (bounded) and sent after the rejoin.

use crate::auth::Credentials;
use crate::link::follow::Upstream;
use crate::protocol::{FrameCodec, DEFAULT_MAX_FRAME};
use crate::transport::unix;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how to connect.
pub struct ConnectConfig {
    pub(crate) target: Target,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) first_retry: Duration,
    pub(crate) max_retry: Duration,
    pub(crate) max_frame: usize,
    pub(crate) relay: bool,
}

pub(crate) enum Target {
    Unix(PathBuf),
}

impl ConnectConfig {
    /// Connect to a server on a Unix domain socket.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self {
            target: Target::Unix(path.into()),
            credentials: None,
            first_retry: Duration::from_millis(10),
            max_retry: Duration::from_secs(2),
            max_frame: DEFAULT_MAX_FRAME,
            relay: true,
        }
    }

    /// Whether workers this process forks may join this store through it
    /// (default true). A relaying client is the one store of its name in
    /// the process; turn this off to hold several connections to one
    /// server in a process (load tests, tools).
    pub fn relay(mut self, on: bool) -> Self {
        self.relay = on;
        self
    }

    /// Log in as `login` (the password is only used to answer the server's
    /// challenge; it is never sent).
    pub fn login(mut self, login: &str, password: &str) -> Self {
        self.credentials = Some(Credentials::new(login, password));
        self
    }

    /// Backoff between reconnects: the first delay, doubled up to `max`.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_retry = first;
        self.max_retry = max.max(first);
        self
    }

    /// Largest frame accepted from the server (default 64 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }
}

/// Runs the client until the login is refused (or the task is aborted by
/// the store's shutdown).
pub(crate) async fn run(up: Upstream, cfg: ConnectConfig, report: impl Fn(crate::Error)) {
    let codec = FrameCodec::new(cfg.max_frame);
    let mut delay = cfg.first_retry;
    let peer = match &cfg.target {
        Target::Unix(p) => format!("server {}", p.display()),
    };
    loop {
        let conn = match &cfg.target {
            Target::Unix(p) => unix::connect(p).await,
        };
        match conn {
            Ok((r, w)) => {
                let res = up.run(r, w, codec, cfg.credentials.as_ref(), true).await;
                if up.joined_any() {
                    delay = cfg.first_retry;
                }
                match res {
                    Err(e @ crate::LinkError::AuthRefused(_))
                    | Err(e @ crate::LinkError::ServerNotAuthentic) => {
                        report(crate::Error::Link {
                            peer: peer.clone(),
                            source: e,
                        });
                        return;
                    }
                    Err(e) => {
                        tracing::info!(peer = %peer, error = %e, "link lost; reconnecting");
                    }
                    Ok(()) => {}
                }
            }
            Err(e) => tracing::debug!(peer = %peer, error = %e, "connect failed; retrying"),
        }
        let jitter =
            Duration::from_micros(rand::random::<u64>() % (delay.as_micros() as u64 / 4 + 1));
        tokio::time::sleep(delay + jitter).await;
        delay = (delay * 2).min(cfg.max_retry);
    }
}
