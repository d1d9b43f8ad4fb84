//! The accept loop: TCP, optional TLS, the HTTP upgrade, and who the peer
//! is (for bans).

use super::patch::{self, History};
use super::session::{self, Access, Feed, Limits};
use super::{WsConfig, WsError};
use crate::admission::PeerKey;
use crate::link::AbortOnDrop;
use crate::protocol::HANDSHAKE_MAX_FRAME;
use crate::reducer::Reducer;
use crate::store::Store;
use crate::transport::accept::{Accepting, Handle};
use crate::transport::tls::{server_config, ClientAuth};
use parking_lot::Mutex;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A byte stream a browser is on: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Binds and starts accepting; returns the accept loop and the bound
/// address.
pub(crate) async fn start<S: Reducer>(
    store: Store<S>,
    cfg: WsConfig,
) -> Result<(Accepting, SocketAddr), WsError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(WsError::NoRuntime);
    }
    let tls = match cfg.tls {
        None => None,
        Some(Err(e)) => return Err(WsError::Tls(e)),
        Some(Ok(identity)) => {
            let mut config = server_config(&identity, &ClientAuth::None)?;
            // Browsers offer `http/1.1` (and `h2`, which a WebSocket
            // upgrade cannot use).
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
        }
    };
    let (epoch, seq, value) =
        patch::read(&store.shared).map_err(|e| WsError::Json(e.to_string()))?;
    let history = Arc::new(Mutex::new(History::new(epoch, seq, value, cfg.history)));
    let (tx, rx) = watch::channel((epoch, seq));
    let listener = TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| WsError::Bind {
            addr: cfg.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WsError::Bind {
        addr: cfg.addr,
        source,
    })?;
    if cfg.logins.is_empty() {
        tracing::warn!(store = S::NAME, %addr, "serving browsers with no logins: every one is admitted");
    }
    tracing::info!(store = S::NAME, %addr, tls = tls.is_some(), "serving browsers over WebSocket");
    let watcher = AbortOnDrop(tokio::spawn(patch::watch(
        Arc::clone(&store.shared),
        Arc::clone(&history),
        tx,
        cfg.actions,
    )));
    let browsers = Browsers {
        store,
        history,
        rx,
        access: Arc::new(Access::new(cfg.logins, cfg.bans)),
        limits: Limits {
            max_inflight: cfg.max_inflight,
            heartbeat: cfg.heartbeat,
            write_timeout: cfg.write_timeout,
            // Small buffers that grow with what a browser sends or is sent
            // (tungstenite's defaults, 128 KiB each, cost 1,000 browsers
            // over 100 MiB).
            admitted: WebSocketConfig::default()
                .read_buffer_size(SESSION_BUFFER)
                .write_buffer_size(SESSION_BUFFER)
                .max_message_size(Some(cfg.max_message))
                .max_frame_size(Some(cfg.max_message)),
        },
        upgrade: Arc::new(Accept {
            tls,
            trust_proxy: cfg.trust_proxy,
            ws_config: before_login(),
            handshake_timeout: cfg.handshake_timeout,
        }),
        max_clients: cfg.max_clients,
        _watcher: watcher,
    };
    Ok((Accepting::start(listener, browsers, cfg.max_clients), addr))
}

/// Serves each browser (see [`crate::transport::accept`]).
struct Browsers<S: Reducer> {
    store: Store<S>,
    history: Arc<Mutex<History>>,
    rx: watch::Receiver<(u64, u64)>,
    access: Arc<Access>,
    limits: Limits,
    upgrade: Arc<Accept>,
    max_clients: usize,
    /// Publishes the state; stops with the accept loop.
    _watcher: AbortOnDrop,
}

impl<S: Reducer> Handle<(TcpStream, SocketAddr)> for Browsers<S> {
    fn serve(
        &self,
        (tcp, remote): (TcpStream, SocketAddr),
        _stop: tokio_util::sync::CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.access.collect_expired(Instant::now());
        let feed = Feed {
            history: Arc::clone(&self.history),
            rx: self.rx.clone(),
        };
        let (upgrade, access, store, limits) = (
            Arc::clone(&self.upgrade),
            Arc::clone(&self.access),
            self.store.clone(),
            self.limits,
        );
        async move {
            match upgrade.within_limit(tcp, remote).await {
                Ok((ws, peer)) => {
                    let limit = upgrade.handshake_timeout;
                    session::run(ws, peer, store, access, feed, limits, limit).await
                }
                Err(e) => tracing::info!(%remote, error = %e, "a browser failed to connect"),
            }
        }
    }

    /// A browser over the limit is told the server is full (its client
    /// shows the reason and tries again later).
    fn turn_away(
        &self,
        (tcp, remote): (TcpStream, SocketAddr),
    ) -> impl Future<Output = ()> + Send + 'static {
        let (upgrade, limits, max_clients) =
            (Arc::clone(&self.upgrade), self.limits, self.max_clients);
        async move {
            tracing::warn!(max_clients, %remote, "refusing a browser: too many connected");
            let said = tokio::time::timeout(Duration::from_secs(1), async {
                if let Ok((ws, _)) = upgrade.upgrade(tcp, remote).await {
                    session::full(ws, limits, max_clients).await;
                }
            });
            let _ = said.await;
        }
    }
}

/// Buffers of a browser that has not logged in: a handshake message is a
/// few hundred bytes.
const HANDSHAKE_BUFFER: usize = 4 << 10;

/// Buffers of a logged-in browser to begin with.
const SESSION_BUFFER: usize = 8 << 10;

/// The WebSocket limits until a browser has logged in: messages over
/// [`HANDSHAKE_MAX_FRAME`] are refused (tungstenite reserves a frame's
/// announced length as soon as its header arrives, so the cap keeps an
/// anonymous peer from making the server reserve up to `max_message`), and
/// small buffers. The session switches to the configured limits after the
/// login.
fn before_login() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(HANDSHAKE_BUFFER)
        .write_buffer_size(HANDSHAKE_BUFFER)
        .max_message_size(Some(HANDSHAKE_MAX_FRAME))
        .max_frame_size(Some(HANDSHAKE_MAX_FRAME))
}

/// How connections are upgraded.
struct Accept {
    tls: Option<tokio_rustls::TlsAcceptor>,
    trust_proxy: bool,
    ws_config: WebSocketConfig,
    handshake_timeout: Option<Duration>,
}

/// Who a browser is.
pub(crate) struct Peer {
    /// For messages.
    pub name: String,
    /// For bans.
    pub key: PeerKey,
    /// For the validator (its login filled in once admitted).
    pub who: crate::Peer,
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

impl Accept {
    /// [`upgrade`](Self::upgrade) within the handshake timeout.
    async fn within_limit(&self, tcp: TcpStream, remote: SocketAddr) -> Result<(Ws, Peer), String> {
        let _ = tcp.set_nodelay(true);
        match self.handshake_timeout {
            Some(limit) => tokio::time::timeout(limit, self.upgrade(tcp, remote))
                .await
                .unwrap_or_else(|_| Err("timed out".into())),
            None => self.upgrade(tcp, remote).await,
        }
    }

    /// TLS (when on), then the WebSocket upgrade.
    async fn upgrade(&self, tcp: TcpStream, remote: SocketAddr) -> Result<(Ws, Peer), String> {
        let io: Box<dyn Io> = match &self.tls {
            Some(acceptor) => Box::new(acceptor.accept(tcp).await.map_err(|e| e.to_string())?),
            None => Box::new(tcp),
        };
        let mut forwarded: Option<IpAddr> = None;
        let trust_proxy = self.trust_proxy;
        // The error type is tungstenite's, fixed by its `Callback` trait.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| {
            if trust_proxy {
                forwarded = forwarded_for(req);
            }
            Ok(resp)
        };
        let ws =
            tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(self.ws_config))
                .await
                .map_err(|e| e.to_string())?;
        let peer = match forwarded {
            Some(ip) => Peer {
                name: format!("browser {ip} (via proxy {remote})"),
                key: PeerKey::ip(ip),
                who: crate::Peer::Browser {
                    // The proxy does not say the browser's port.
                    addr: SocketAddr::new(ip, 0),
                    login: None,
                },
            },
            None => Peer {
                name: format!("browser {remote}"),
                key: PeerKey::ip(remote.ip()),
                who: crate::Peer::Browser {
                    addr: remote,
                    login: None,
                },
            },
        };
        Ok((ws, peer))
    }
}

/// The right-most address of the last `X-Forwarded-For` header: the one the
/// nearest (trusted) proxy added. Entries to its left were written by the
/// client and prove nothing.
fn forwarded_for(req: &Request) -> Option<IpAddr> {
    let last = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_takes_the_proxys_entry() {
        let req = Request::builder()
            .header("X-Forwarded-For", "1.2.3.4, 10.0.0.1")
            .header("X-Forwarded-For", "203.0.113.9, 198.51.100.7")
            .body(())
            .expect("request");
        assert_eq!(forwarded_for(&req), "198.51.100.7".parse().ok());
        let req = Request::builder()
            .header("X-Forwarded-For", "garbage")
            .body(())
            .expect("request");
        assert_eq!(forwarded_for(&req), None);
        let req = Request::builder().body(()).expect("request");
        assert_eq!(forwarded_for(&req), None);
    }
}
