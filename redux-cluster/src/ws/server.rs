//! The accept loop: TCP, optional TLS, the HTTP upgrade, and who the peer
//! is (for bans).

use super::patch::{self, History};
use super::session::{self, Access, Feed, Limits};
use super::{WsConfig, WsError};
use crate::admission::PeerKey;
use crate::ban::Bans;
use crate::link::AbortOnDrop;
use crate::reducer::Reducer;
use crate::store::Store;
use crate::transport::tls::{server_config, ClientAuth};
use parking_lot::Mutex;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A byte stream a browser is on: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Binds and starts accepting; returns the accept task, its stop switch and
/// the bound address.
pub(crate) async fn start<S: Reducer>(
    store: Store<S>,
    cfg: WsConfig,
) -> Result<(tokio::task::JoinHandle<()>, oneshot::Sender<()>, SocketAddr), WsError> {
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
    let access = Arc::new(Access {
        logins: cfg.logins,
        bans: Mutex::new(Bans::new(cfg.bans)),
    });
    let limits = Limits {
        max_inflight: cfg.max_inflight,
        heartbeat: cfg.heartbeat,
        write_timeout: cfg.write_timeout,
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(cfg.max_message))
        .max_frame_size(Some(cfg.max_message));
    let accept = Accept {
        tls,
        trust_proxy: cfg.trust_proxy,
        ws_config,
        handshake_timeout: cfg.handshake_timeout,
    };
    let max_clients = cfg.max_clients;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _watcher = AbortOnDrop(tokio::spawn(patch::watch(
            Arc::clone(&store.shared),
            Arc::clone(&history),
            tx,
        )));
        let accept = Arc::new(accept);
        let mut sessions = JoinSet::new();
        let mut last_collect = tokio::time::Instant::now();
        loop {
            let (tcp, remote) = tokio::select! {
                _ = &mut stopped => break,
                conn = listener.accept() => match conn {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather
                        // than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            while sessions.try_join_next().is_some() {}
            if sessions.len() >= max_clients {
                tracing::warn!(max_clients, %remote, "refusing a browser: too many connected");
                continue;
            }
            let now = tokio::time::Instant::now();
            if now - last_collect > Duration::from_secs(60) {
                access.bans.lock().collect(now);
                last_collect = now;
            }
            let feed = Feed {
                history: Arc::clone(&history),
                rx: rx.clone(),
            };
            let accept = Arc::clone(&accept);
            let access = Arc::clone(&access);
            let store = store.clone();
            sessions.spawn(async move {
                let _ = tcp.set_nodelay(true);
                let handshake = accept.upgrade(tcp, remote);
                let upgraded = match accept.handshake_timeout {
                    Some(limit) => tokio::time::timeout(limit, handshake)
                        .await
                        .unwrap_or_else(|_| Err("timed out".into())),
                    None => handshake.await,
                };
                match upgraded {
                    Ok((ws, peer)) => {
                        session::run(
                            ws,
                            peer,
                            store,
                            access,
                            feed,
                            limits,
                            accept.handshake_timeout,
                        )
                        .await
                    }
                    Err(e) => tracing::info!(%remote, error = %e, "a browser failed to connect"),
                }
            });
        }
        sessions.shutdown().await;
    });
    Ok((task, stop, addr))
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
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

impl Accept {
    /// TLS (when on), then the WebSocket upgrade.
    async fn upgrade(
        &self,
        tcp: tokio::net::TcpStream,
        remote: SocketAddr,
    ) -> Result<(Ws, Peer), String> {
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
            },
            None => Peer {
                name: format!("browser {remote}"),
                key: PeerKey::ip(remote.ip()),
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
