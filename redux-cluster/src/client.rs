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
#[cfg(feature = "quic")]
use crate::transport::quic::{quic_connect, QuicOptions};
#[cfg(feature = "tls")]
use crate::transport::tcp_tls::{tcp_tls_connect, TcpTlsOptions};
#[cfg(feature = "tls")]
use crate::transport::tls::{ClientIdentity, Trust};
use crate::transport::unix;
use crate::transport::{TransportError, TransportErrorKind};
#[cfg(feature = "tls")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where and how to connect.
pub struct ConnectConfig {
    pub(crate) target: Target,
    /// Further servers, tried in turn after `target` (see
    /// [`ConnectConfig::or`]).
    pub(crate) others: Vec<Target>,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) first_retry: Duration,
    pub(crate) max_retry: Duration,
    pub(crate) max_frame: usize,
    pub(crate) relay: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) ready_timeout: Option<Duration>,
}

// Built once per store; the TLS variants are the large ones.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    Unix(PathBuf),
    #[cfg(feature = "quic")]
    Quic {
        addr: SocketAddr,
        name: String,
        trust: Trust,
        options: QuicOptions,
    },
    #[cfg(feature = "tls")]
    TcpTls {
        addr: SocketAddr,
        name: String,
        trust: Trust,
        options: TcpTlsOptions,
    },
}

impl ConnectConfig {
    /// Connect to a server on a Unix domain socket.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::to(Target::Unix(path.into()))
    }

    /// Connect over QUIC to `addr`, checking the server's certificate for
    /// `server_name` against `trust` (a CA, the system roots, or a pinned
    /// SHA-256 fingerprint). A refused certificate fails before any
    /// credential is sent. (Feature `quic`.)
    #[cfg(feature = "quic")]
    pub fn quic(addr: SocketAddr, server_name: &str, trust: Trust) -> Self {
        Self::to(Target::Quic {
            addr,
            name: server_name.to_string(),
            trust,
            // A server that is restarting answers nothing (UDP has no
            // refusal), so a shorter handshake limit reconnects sooner.
            options: QuicOptions::default().handshake_timeout(Duration::from_secs(3)),
        })
    }

    /// Connect over TCP + TLS, with the same rules as QUIC. (Feature
    /// `tls`.)
    #[cfg(feature = "tls")]
    pub fn tcp_tls(addr: SocketAddr, server_name: &str, trust: Trust) -> Self {
        Self::to(Target::TcpTls {
            addr,
            name: server_name.to_string(),
            trust,
            options: TcpTlsOptions::default(),
        })
    }

    /// Present a client certificate (mutual TLS) on QUIC or TCP + TLS.
    #[cfg(feature = "tls")]
    pub fn client_identity(mut self, identity: ClientIdentity) -> Self {
        match &mut self.target {
            #[cfg(feature = "quic")]
            Target::Quic { options, .. } => {
                *options = std::mem::take(options).client_identity(identity);
            }
            Target::TcpTls { options, .. } => {
                *options = std::mem::take(options).client_identity(identity);
            }
            Target::Unix(_) => {}
        }
        self
    }

    /// On network links, a heartbeat goes out after `every` without traffic,
    /// and a server silent for three times that counts as dead, which
    /// triggers a reconnect (default 5 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    fn to(target: Target) -> Self {
        Self {
            target,
            others: Vec::new(),
            credentials: None,
            first_retry: Duration::from_millis(10),
            max_retry: Duration::from_secs(2),
            max_frame: DEFAULT_MAX_FRAME,
            relay: true,
            heartbeat: Duration::from_secs(5),
            ready_timeout: Some(Duration::from_secs(10)),
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

    /// How long [`crate::Store::ready`] waits for the first join before it
    /// returns [`crate::JoinError::Timeout`] with the last cause (default
    /// 10 s; `None`: for ever). The store keeps reconnecting either way.
    pub fn connect_timeout(mut self, limit: Option<Duration>) -> Self {
        self.ready_timeout = limit;
        self
    }

    /// Another server of the same store to fail over to: the hubs of one
    /// store (see [`crate::hub`]) or the same server at another address.
    /// The client tries its servers in turn, moving to the next one when a
    /// connection fails or a link is lost, and backs off after a full round
    /// without a join. All hubs of a store number actions alike, so a
    /// client that moves resumes from its position, and its queued and
    /// in-flight dispatches are delivered exactly once. Only `other`'s
    /// endpoint (with its TLS options) is taken; the login, backoff and the
    /// other settings are `self`'s.
    pub fn or(mut self, other: ConnectConfig) -> Self {
        self.others.push(other.target);
        self.others.extend(other.others);
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
    let targets: Vec<&Target> = std::iter::once(&cfg.target).chain(&cfg.others).collect();
    let mut next = 0;
    loop {
        let target = targets[next];
        next = (next + 1) % targets.len();
        let (peer, heartbeat) = match target {
            Target::Unix(p) => (format!("server {}", p.display()), None),
            #[cfg(feature = "quic")]
            Target::Quic { addr, .. } => (format!("server {addr}"), Some(cfg.heartbeat)),
            #[cfg(feature = "tls")]
            Target::TcpTls { addr, .. } => (format!("server {addr}"), Some(cfg.heartbeat)),
        };
        match open(target).await {
            Ok((r, w)) => {
                let res = up
                    .run(r, w, codec, cfg.credentials.as_ref(), heartbeat, true)
                    .await;
                if up.leaving() {
                    return;
                }
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
                        up.retrying(&format!("{peer}: {e}"));
                    }
                    Ok(()) => {}
                }
            }
            Err(Open::Refused(e)) => {
                // A certificate that does not match, or a configuration that
                // cannot work, fails the same way next time: stop, and say
                // why.
                let why = format!("{peer}: {e}");
                up.fail_all(&match e.kind() {
                    TransportErrorKind::Certificate => crate::JoinError::CertificateRejected(why),
                    _ => crate::JoinError::Misconfigured(why),
                });
                report(crate::Error::Transport(e));
                return;
            }
            Err(Open::Retry(e)) => {
                tracing::debug!(peer = %peer, error = %e, "connect failed; retrying");
                up.retrying(&format!("{peer}: {e}"));
            }
        }
        if next != 0 {
            // The next server at once: failing over should not wait.
            continue;
        }
        let jitter =
            Duration::from_micros(rand::random::<u64>() % (delay.as_micros() as u64 / 4 + 1));
        tokio::time::sleep(delay + jitter).await;
        delay = (delay * 2).min(cfg.max_retry);
    }
}

type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

enum Open {
    /// Worth retrying (nothing listens yet, network trouble).
    Retry(String),
    /// Will fail again the same way (the server's certificate is refused,
    /// or the configuration cannot work).
    Refused(TransportError),
}

/// Opens a byte stream to the target.
async fn open(target: &Target) -> Result<(BoxRead, BoxWrite), Open> {
    #[allow(unused_variables)]
    let refused = |e: TransportError| {
        if e.is_retryable() {
            Open::Retry(e.to_string())
        } else {
            Open::Refused(e)
        }
    };
    match target {
        Target::Unix(p) => match unix::connect(p).await {
            Ok((r, w)) => Ok((Box::new(r), Box::new(w))),
            Err(e) => Err(Open::Retry(e.to_string())),
        },
        #[cfg(feature = "quic")]
        Target::Quic {
            addr,
            name,
            trust,
            options,
        } => match quic_connect(*addr, name, trust, options).await {
            Ok((r, w)) => Ok((Box::new(r), Box::new(w))),
            Err(e) => Err(refused(e)),
        },
        #[cfg(feature = "tls")]
        Target::TcpTls {
            addr,
            name,
            trust,
            options,
        } => match tcp_tls_connect(*addr, name, trust, options).await {
            Ok((r, w)) => Ok((Box::new(r), Box::new(w))),
            Err(e) => Err(refused(e)),
        },
    }
}
