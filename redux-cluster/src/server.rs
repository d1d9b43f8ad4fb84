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

use crate::admission::{Access, PeerKey};
use crate::auth::Logins;
use crate::ban::BanPolicy;
use crate::link::serve::{serve, ServeOptions};
use crate::options::Role;
use crate::protocol::{FrameCodec, DEFAULT_MAX_FRAME};
use crate::transport::accept::{Accepting, Handle, Listen};
#[cfg(feature = "quic")]
use crate::transport::quic::{QuicOptions, QuicServer};
#[cfg(feature = "tls")]
use crate::transport::tcp_tls::{TcpTlsOptions, TcpTlsServer};
#[cfg(feature = "tls")]
use crate::transport::tls::{ClientAuth, ServerIdentity};
use crate::transport::unix::{self, BindError};
use crate::transport::TransportError;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where and how to serve.
pub struct ServeConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) logins: Logins,
    pub(crate) bans: BanPolicy,
    pub(crate) max_frame: usize,
    pub(crate) max_clients: usize,
    pub(crate) heartbeat: Duration,
    pub(crate) handshake_timeout: Option<Duration>,
}

// Built once per store; the TLS variants are the large ones.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    #[cfg(feature = "quic")]
    Quic {
        addr: SocketAddr,
        identity: ServerIdentity,
        options: QuicOptions,
    },
    #[cfg(feature = "tls")]
    TcpTls {
        addr: SocketAddr,
        identity: ServerIdentity,
        options: TcpTlsOptions,
    },
}

impl ServeConfig {
    /// Serve on a Unix domain socket at `path` (mode 0600). A stale socket
    /// file left by a crash is replaced; a live server or a file that is not
    /// a socket is an error.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::at(Endpoint::Unix(path.into()))
    }

    /// Serve over QUIC on a UDP address (the seed's default port is
    /// [`crate::transport::quic::DEFAULT_PORT`], 10001). Logins travel only
    /// inside TLS. Use [`ServerIdentity::load_or_generate`] for a
    /// self-signed certificate that survives restarts, and log its
    /// [`ServerIdentity::fingerprint`] for clients to pin.
    ///
    /// Feature `quic`.
    #[cfg(feature = "quic")]
    pub fn quic(addr: SocketAddr, identity: ServerIdentity) -> Self {
        Self::at(Endpoint::Quic {
            addr,
            identity,
            options: QuicOptions::default(),
        })
    }

    /// Serve over TCP + TLS (for networks that block UDP), with the same
    /// rules as QUIC.
    ///
    /// Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tcp_tls(addr: SocketAddr, identity: ServerIdentity) -> Self {
        Self::at(Endpoint::TcpTls {
            addr,
            identity,
            options: TcpTlsOptions::default(),
        })
    }

    fn at(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            logins: Logins::new(),
            bans: BanPolicy::default(),
            max_frame: DEFAULT_MAX_FRAME,
            max_clients: 10_000,
            heartbeat: Duration::from_secs(5),
            handshake_timeout: Some(Duration::from_secs(10)),
        }
    }

    /// How long a client may take to say hello and log in before it is
    /// dropped (default 10 s; `None` waits forever, e.g. under a paused test
    /// clock).
    pub fn handshake_timeout(mut self, limit: Option<Duration>) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// Require client certificates signed by this CA (mutual TLS), on QUIC
    /// and TCP + TLS; an alternative or an addition to logins.
    #[cfg(feature = "tls")]
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        match &mut self.endpoint {
            #[cfg(feature = "quic")]
            Endpoint::Quic { options, .. } => {
                *options = std::mem::take(options).client_auth(auth);
            }
            Endpoint::TcpTls { options, .. } => {
                *options = std::mem::take(options).client_auth(auth);
            }
            Endpoint::Unix(_) => {}
        }
        self
    }

    /// QUIC transport options (keep-alive, idle timeout, handshake limits).
    #[cfg(feature = "quic")]
    pub fn quic_options(mut self, opts: QuicOptions) -> Self {
        if let Endpoint::Quic { options, .. } = &mut self.endpoint {
            *options = opts;
        }
        self
    }

    /// TCP + TLS options (handshake timeout, handshakes at once). Replaces
    /// any [`client_auth`](Self::client_auth) set before: set that on
    /// `opts`, or after this.
    #[cfg(feature = "tls")]
    pub fn tcp_tls_options(mut self, opts: TcpTlsOptions) -> Self {
        if let Endpoint::TcpTls { options, .. } = &mut self.endpoint {
            *options = opts;
        }
        self
    }

    /// On network links, a heartbeat goes out after `every` without traffic,
    /// and a client silent for three times that is dropped (default 5 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
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
    /// The QUIC or TLS endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Serving needs a tokio runtime.
    #[error("serving needs a tokio runtime")]
    NoRuntime,
}

/// A running server. Dropping it stops accepting, closes every client link
/// and removes the socket file.
pub struct Server {
    accepting: Accepting,
    access: Arc<Access>,
    path: Option<PathBuf>,
    addr: Option<SocketAddr>,
}

impl Server {
    /// The socket path, for a Unix server.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// The bound address (with the real port when bound to port 0), for a
    /// QUIC or TCP + TLS server.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The peers banned now for failed logins, with the seconds left on
    /// each ban.
    pub fn bans(&self) -> Vec<(crate::ban::BanKey, u64)> {
        let now = tokio::time::Instant::now();
        let mut v: Vec<_> = self
            .access
            .bans
            .lock()
            .banned(now)
            .into_iter()
            .filter_map(|(k, b)| Some((k.ban_key()?, b.until_secs_left)))
            .collect();
        v.sort_by_key(|(k, _)| format!("{k:?}"));
        v
    }

    /// Lifts a ban (and forgets the failed logins) of `key`; returns whether
    /// it had any.
    pub fn unban(&self, key: crate::ban::BanKey) -> bool {
        self.access.bans.lock().lift(&PeerKey::from_ban_key(key))
    }

    /// Stops the server and waits until its links are closed and its
    /// address is free again.
    pub async fn shutdown(self) {
        self.accepting.shutdown().await;
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.path)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
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
    let access = Arc::new(Access::new(cfg.logins, cfg.bans));
    let keep_access = Arc::clone(&access);
    let stores: Arc<[&'static str]> = Arc::from(vec![name]);
    let codec = FrameCodec::new(cfg.max_frame);
    let (listener, path, addr, heartbeat) = match cfg.endpoint {
        Endpoint::Unix(path) => {
            let l = unix::bind(&path).await?;
            (Listener::Unix(l), Some(path), None, None)
        }
        #[cfg(feature = "quic")]
        Endpoint::Quic {
            addr,
            identity,
            options,
        } => {
            let fp = identity.fingerprint();
            let l = QuicServer::bind(addr, identity, options).await?;
            let addr = l.local_addr();
            tracing::info!(store = name, %addr, fingerprint = %fp, "serving over QUIC");
            (Listener::Quic(l), None, Some(addr), Some(cfg.heartbeat))
        }
        #[cfg(feature = "tls")]
        Endpoint::TcpTls {
            addr,
            identity,
            options,
        } => {
            let fp = identity.fingerprint();
            let l = TcpTlsServer::bind(addr, identity, options).await?;
            let addr = l.local_addr();
            tracing::info!(store = name, %addr, fingerprint = %fp, "serving over TCP + TLS");
            (Listener::TcpTls(l), None, Some(addr), Some(cfg.heartbeat))
        }
    };
    let links = Links {
        codec,
        access,
        stores,
        heartbeat,
        handshake_timeout: cfg.handshake_timeout,
        max_clients: cfg.max_clients,
    };
    Ok(Server {
        accepting: Accepting::start(listener, links, cfg.max_clients),
        access: keep_access,
        path,
        addr,
    })
}

/// Serves each accepted client (see [`crate::transport::accept`]).
struct Links {
    codec: FrameCodec,
    access: Arc<Access>,
    stores: Arc<[&'static str]>,
    heartbeat: Option<Duration>,
    handshake_timeout: Option<Duration>,
    max_clients: usize,
}

impl Handle<Result<Accepted, String>> for Links {
    const GRACEFUL: bool = true;

    fn serve(
        &self,
        conn: Result<Accepted, String>,
        stop: tokio_util::sync::CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.access.collect_expired(tokio::time::Instant::now());
        let opts = conn.map(|(r, w, peer, peer_key, who)| {
            let opts = ServeOptions {
                peer,
                who,
                codec: self.codec,
                join_wait: Duration::ZERO,
                access: Some(Arc::clone(&self.access)),
                peer_key,
                stores: Some(Arc::clone(&self.stores)),
                role: Role::Server,
                heartbeat: self.heartbeat,
                handshake_timeout: self.handshake_timeout,
                stop: Some(stop),
            };
            (r, w, opts)
        });
        async move {
            match opts {
                Ok((r, w, opts)) => serve(r, w, opts).await,
                Err(e) => tracing::info!(error = %e, "a connection failed before its link opened"),
            }
        }
    }

    fn turn_away(
        &self,
        conn: Result<Accepted, String>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (codec, max_clients) = (self.codec, self.max_clients);
        async move {
            if let Ok((r, w, peer, _, _)) = conn {
                tracing::warn!(max_clients, %peer, "refusing a client: too many connected");
                refuse_full(r, w, codec, max_clients).await;
            }
        }
    }
}

type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// The listener of any transport; each only yields byte streams.
enum Listener {
    Unix(unix::UnixServer),
    #[cfg(feature = "quic")]
    Quic(QuicServer),
    #[cfg(feature = "tls")]
    TcpTls(TcpTlsServer),
}

impl Listen for Listener {
    type Conn = Result<Accepted, String>;

    async fn accept(&mut self) -> Option<Self::Conn> {
        self.next().await
    }

    /// Closes the listener and waits until its address is free.
    async fn release(self) {
        match self {
            #[cfg(feature = "quic")]
            Listener::Quic(q) => q.shutdown().await,
            #[cfg(feature = "tls")]
            Listener::TcpTls(t) => t.shutdown().await,
            Listener::Unix(u) => drop(u),
        }
    }
}

/// A connection: its halves, its name for messages, its ban key, and who
/// it is for the validator.
type Accepted = (BoxRead, BoxWrite, String, PeerKey, crate::Peer);

/// A network connection, named and keyed by its remote address.
#[cfg(feature = "tls")]
fn remote<R, W, E>(
    conn: Result<(R, W, crate::transport::tls::Remote), E>,
) -> Result<Accepted, String>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    match conn {
        Ok((r, w, who)) => Ok((
            Box::new(r),
            Box::new(w),
            format!("client {}", who.addr),
            PeerKey::ip(who.addr.ip()),
            crate::Peer::Remote {
                addr: who.addr,
                login: None,
                certificate: who.certificate,
            },
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl Listener {
    /// The next connection; `None` once the listener is closed.
    async fn next(&mut self) -> Option<Result<Accepted, String>> {
        match self {
            Listener::Unix(l) => Some(match l.accept().await {
                Ok((r, w, cred)) => Ok((
                    Box::new(r) as BoxRead,
                    Box::new(w) as BoxWrite,
                    match cred.pid {
                        Some(pid) => format!("client uid {} pid {pid}", cred.uid),
                        None => format!("client uid {}", cred.uid),
                    },
                    if cred.uid == own_uid() {
                        PeerKey::Owner
                    } else {
                        PeerKey::Uid(cred.uid)
                    },
                    crate::Peer::Unix {
                        uid: cred.uid,
                        pid: cred.pid,
                        login: None,
                    },
                )),
                Err(e) => Err(e.to_string()),
            }),
            #[cfg(feature = "quic")]
            Listener::Quic(l) => Some(remote(l.accept().await?)),
            #[cfg(feature = "tls")]
            Listener::TcpTls(l) => Some(remote(l.accept().await?)),
        }
    }
}

/// This process's effective user id.
fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Tells a client over the limit that the server is full, then waits (at
/// most a second) for it to close: closing first could fail the client's
/// hello with a broken pipe before it reads why.
async fn refuse_full(mut r: BoxRead, w: BoxWrite, codec: FrameCodec, max_clients: usize) {
    use tokio::io::AsyncReadExt;
    let mut writer = crate::connection::FrameWriter::new(w, codec);
    let detail = format!("the server is full ({max_clients} clients); try again later");
    let msg = crate::protocol::Message::Refuse(crate::protocol::Refuse {
        reason: crate::protocol::RefuseReason::Unavailable,
        detail: &detail,
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        writer.send(&msg).await?;
        // Whatever the client sends is dropped; a small buffer, reused.
        let mut sink = [0u8; 256];
        while r.read(&mut sink).await? > 0 {}
        Ok::<(), crate::LinkError>(())
    })
    .await;
}
