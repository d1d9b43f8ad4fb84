//! Browser clients over WebSocket (the seed's `redux-cluster-ws`), behind
//! the `ws` feature.
//!
//! ```no_run
//! # use redux_cluster::{reducer, ClusterStore};
//! # use serde::{Deserialize, Serialize};
//! use redux_cluster::ws::{ServeWs, WsConfig};
//! # #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
//! # pub struct Tasks { done: u64 }
//! # #[reducer(Tasks)] #[derive(Serialize, Deserialize)] pub enum TaskAction { Done }
//! # fn reduce(s: &mut Tasks, _: &TaskAction) { s.done += 1 }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Tasks::start_master()?;
//! let server = store
//!     .serve_ws(WsConfig::new("127.0.0.1:10002".parse()?).login("test2", "123456"))
//!     .await?;
//! println!("browsers connect to ws://{}", server.local_addr());
//! # Ok(()) }
//! ```
//!
//! Browsers speak JSON: they get a snapshot of the state, then RFC 6902
//! JSON Patch diffs of its `serde_json` form, computed once on the server
//! for every client. The TypeScript client is in `clients/js/`.
//!
//! # Protocol
//! Every frame is one WebSocket text frame holding one JSON object whose
//! `type` names the message. Byte strings (nonces, salts, proofs,
//! signatures) are lowercase hex. The epoch is a decimal *string*: it is a
//! random 64-bit number, and JavaScript numbers keep only 53 bits. Sequence
//! numbers and dispatch ids are plain numbers (they stay far below 2^53).
//!
//! ```text
//! client                                   server
//! hello {login?, nonce?, resume?}   ->
//!                                   <-     challenge {salt, iterations, nonce}   (when logins are set)
//! proof {proof}                     ->
//!                                   <-     welcome {login, read_only, signature, epoch}
//!                                          | refuse {reason, message}, then close
//!                                   <-     snapshot {epoch, seq, state}
//!                                   <-     patch {epoch, from, seq, ops, actions?} (RFC 6902, repeated)
//! dispatch {id, action}             ->
//!                                   <-     ack {id, seq} | error {id, message, code?}
//! dispatches {first, actions}       ->                                       (ids first, first + 1, ...)
//!                                   <-     error {id, message, code?} for each that failed, then
//!                                          acks {first, seqs}                    (null for those)
//! anything malformed                ->
//!                                   <-     error {message}
//! ```
//!
//! A `dispatches` is committed together (on a master, one apply: one
//! patch for all of it); the TS client sends every dispatch of one turn of
//! the event loop as one.
//!
//! An `ack` says the action was committed at `seq` (applied by the master,
//! and on disk when it journals). It can arrive before the `patch` that
//! brings the state to `seq` (on a master it always does: patches are
//! computed once for every client after the apply); a client that wants
//! "my state includes it" waits for its state to reach `seq` (the TS
//! client's `dispatch` does; its `commit` resolves at the ack).
//!
//! With [`WsConfig::actions`], a `patch` also carries `actions`, the
//! applied actions it covers in order, each `{seq, action}`.
//!
//! An `error` with `code: "rejected"` says the store's validator refused
//! the action ([`crate::StoreBuilder::validate`]): it was applied nowhere,
//! and `message` is the validator's reason.
//!
//! A `patch` takes the state from sequence number `from` to `seq`; it may
//! cover several actions (the server coalesces under load). A client whose
//! position is not `from` has missed something and must reconnect with
//! `resume` (it then gets the missing patches, or a snapshot).
//!
//! An `action` is the `serde_json` form of the Rust action enum, externally
//! tagged: a unit variant is a string (`"Done"`), a newtype variant an
//! object with one key (`{"SetVersion": "x"}`), a tuple variant an object
//! holding an array (`{"Move": [1, 2]}`), a struct variant an object
//! holding an object (`{"Rename": {"id": 1, "name": "x"}}`); attributes such
//! as `#[serde(rename_all = ...)]` on the enum apply.
//!
//! # Logins
//! A browser logs in with the same SCRAM-SHA-256 exchange as the binary
//! protocol ([`crate::auth`]), in JSON: the page computes PBKDF2 and HMAC
//! with WebCrypto, the server keeps only salted keys, and the password never
//! crosses the wire, with or without TLS. (The alternative, a password sent
//! inside TLS, would make TLS mandatory and hand the server the password;
//! SCRAM needs neither.) SCRAM authenticates the login only: serve over TLS
//! ([`WsConfig::tls_pem`]) or behind a TLS proxy on anything but loopback.
//! WebCrypto needs a secure context: a page on `https://`, or on
//! `http://localhost` / `127.0.0.1`.
//!
//! # Bans
//! Failed logins are counted per remote IP address (an IPv6 address by its
//! /64), as for the other transports. Behind a reverse proxy every browser
//! has the proxy's address: set [`WsConfig::trust_proxy`] and the right-most
//! `X-Forwarded-For` entry (the one the proxy added) is used instead. Never
//! set it on a server browsers reach directly: they could then pick their
//! own address.
//!
//! # Layout
//! - `wire.rs`: the JSON messages, no I/O.
//! - `patch.rs`: the state as JSON and the ring of diffs clients copy.
//! - `server.rs`: the accept loop: TLS, the HTTP upgrade, who the peer is.
//! - `session.rs`: one browser: login, resume, streaming, dispatch.

mod patch;
mod server;
mod session;
pub(crate) mod wire;

use crate::auth::Logins;
use crate::ban::BanPolicy;
use crate::options::Role;
use crate::reducer::Reducer;
use crate::store::Store;
use crate::transport::accept::Accepting;
use crate::transport::tls::{ServerIdentity, TransportError};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The seed's default WebSocket port.
pub const DEFAULT_PORT: u16 = 10002;

/// Where and how to serve browsers.
#[derive(Debug)]
pub struct WsConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) logins: Logins,
    pub(crate) bans: BanPolicy,
    pub(crate) tls: Option<Result<ServerIdentity, String>>,
    pub(crate) trust_proxy: bool,
    pub(crate) max_message: usize,
    pub(crate) max_clients: usize,
    pub(crate) max_inflight: usize,
    pub(crate) heartbeat: Duration,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) write_timeout: Duration,
    pub(crate) history: patch::Limits,
    pub(crate) actions: bool,
}

impl Default for WsConfig {
    /// Loopback on [`DEFAULT_PORT`].
    fn default() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))
    }
}

impl WsConfig {
    /// Serve on `addr` (TCP; port 0 picks a free one).
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            logins: Logins::new(),
            bans: BanPolicy::default(),
            tls: None,
            trust_proxy: false,
            max_message: 1 << 20,
            max_clients: 10_000,
            max_inflight: 1024,
            heartbeat: Duration::from_secs(15),
            handshake_timeout: Some(Duration::from_secs(10)),
            write_timeout: Duration::from_secs(30),
            history: patch::Limits {
                entries: 1024,
                bytes: 8 << 20,
            },
            actions: false,
        }
    }

    /// Sends browsers the applied actions too (default off): each `patch`
    /// carries `actions: [{seq, action}]`, the `serde_json` form of every
    /// action it covers, for tools such as Redux DevTools (the TS client's
    /// `reduxDevTools()`). Costs one decode and one JSON serialization per
    /// action, once for all browsers. An action the store's ring no longer
    /// holds when the patch is made (far behind, or replaced by a
    /// snapshot) is not sent; the patch still is.
    pub fn actions(mut self, on: bool) -> Self {
        self.actions = on;
        self
    }

    /// Admits `login` with `password` (only a salted key is kept). With no
    /// logins, every browser is admitted, as in the seed.
    pub fn login(mut self, login: &str, password: &str) -> Self {
        self.logins.insert(login, password, false);
        self
    }

    /// Admits `login` to follow the store; its dispatches get an error.
    pub fn login_read_only(mut self, login: &str, password: &str) -> Self {
        self.logins.insert(login, password, true);
        self
    }

    /// Serves `wss://` with this certificate chain (leaf first) and key, PEM
    /// text. A bad PEM makes [`ServeWs::serve_ws`] fail.
    pub fn tls_pem(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Self {
        self.tls = Some(ServerIdentity::from_pem(cert_pem, key_pem).map_err(|e| e.to_string()));
        self
    }

    /// Serves `wss://` with this identity.
    pub fn tls(mut self, identity: ServerIdentity) -> Self {
        self.tls = Some(Ok(identity));
        self
    }

    /// Key bans on the right-most `X-Forwarded-For` address (default off).
    /// Only behind a reverse proxy that sets it; see the module docs.
    pub fn trust_proxy(mut self, trust: bool) -> Self {
        self.trust_proxy = trust;
        self
    }

    /// Failed logins before an address is refused, and for how long
    /// (defaults 5 and 3 hours).
    pub fn ban_policy(mut self, policy: BanPolicy) -> Self {
        self.bans = policy;
        self
    }

    /// Largest message accepted from a browser once it has logged in
    /// (default 1 MiB); a larger one closes its connection. Before the
    /// login the limit is 16 KiB (a handshake message is a few hundred
    /// bytes), so an anonymous peer cannot make the server reserve more.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Most browsers connected at once (default 10,000).
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// Most dispatches of one browser awaiting their commit (default 1024);
    /// past it, dispatches get an error (those of a batch past it too).
    /// Only a follower (a client of a master) has dispatches in flight: on
    /// a master each commit completes before the next message is read, so
    /// the limit does not apply there.
    pub fn max_inflight(mut self, n: usize) -> Self {
        self.max_inflight = n;
        self
    }

    /// A ping goes out after `every` (default 15 s); a browser silent for
    /// three times that is dropped.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long TLS, the upgrade and the login may take (default 10 s;
    /// `None` waits forever).
    pub fn handshake_timeout(mut self, limit: Option<Duration>) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// Diffs kept for browsers that fall behind or reconnect (default 1024
    /// diffs, 8 MiB); one further behind gets a snapshot.
    pub fn history(mut self, entries: usize, bytes: usize) -> Self {
        self.history = patch::Limits { entries, bytes };
        self
    }
}

/// Serving browsers failed to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The TCP address could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key was refused.
    #[error("tls: {0}")]
    Tls(String),
    /// The state cannot be turned into JSON.
    #[error("the state cannot be sent as JSON: {0}")]
    Json(String),
    /// Serving needs a tokio runtime.
    #[error("serving needs a tokio runtime")]
    NoRuntime,
}

impl From<TransportError> for WsError {
    fn from(e: TransportError) -> Self {
        WsError::Tls(e.to_string())
    }
}

/// A running WebSocket server. Dropping it stops accepting and closes every
/// browser's connection.
#[derive(Debug)]
pub struct WsServer {
    accepting: Accepting,
    addr: SocketAddr,
}

impl WsServer {
    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits until its connections are closed.
    pub async fn shutdown(self) {
        self.accepting.shutdown().await;
    }
}

/// Serving a store to browsers: `store.serve_ws(WsConfig::new(addr))`.
pub trait ServeWs {
    /// Serves this store to browsers over WebSocket (the seed's
    /// `createWSServer`). Its role then includes `server`. Works on a master
    /// and on a client of one (dispatches then go to the master).
    ///
    /// # Errors
    /// [`WsError`] when the address cannot be bound, the TLS identity is
    /// bad, or the state does not serialize to JSON.
    fn serve_ws(&self, cfg: WsConfig) -> impl Future<Output = Result<WsServer, WsError>> + Send;
}

impl<S: Reducer> ServeWs for Store<S> {
    fn serve_ws(&self, cfg: WsConfig) -> impl Future<Output = Result<WsServer, WsError>> + Send {
        let store = self.clone();
        async move {
            let (accepting, addr) = server::start(store.clone(), cfg).await?;
            store.shared.add_role(Role::Server);
            Ok(WsServer { accepting, addr })
        }
    }
}
