//! TLS over TCP (tokio-rustls, ring): for networks that drop UDP. Same
//! certificates, trust and link opening as [`quic`](super::quic); yields
//! the read and write halves of the TLS stream. `TCP_NODELAY` is on:
//! frames are small and latency matters more than packet count.
//!
//! Unlike QUIC there are no keep-alives here: a dead peer is noticed when
//! a write fails, or by the heartbeats of the layers above.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::accept::{Accepting, Handle};
use super::tls::{
    self, blocking, ClientAuth, ClientIdentity, ServerIdentity, TransportError, Trust, LINK_OPEN,
};

type Result<T, E = TransportError> = std::result::Result<T, E>;

/// The reading half of a TLS link (client and server alike).
pub type TlsReader = ReadHalf<TlsStream<TcpStream>>;
/// The writing half of a TLS link (client and server alike).
pub type TlsWriter = WriteHalf<TlsStream<TcpStream>>;

/// Links accepted but not yet taken by [`TcpTlsServer::accept`].
const ACCEPTED_QUEUE: usize = 16;

/// TCP+TLS settings; side-specific fields say so and are ignored by the
/// other side.
#[derive(Clone, Debug)]
pub struct TcpTlsOptions {
    handshake_timeout: Duration,
    max_pending_handshakes: usize,
    client_auth: ClientAuth,
    client_identity: Option<ClientIdentity>,
}

impl Default for TcpTlsOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 64,
            client_auth: ClientAuth::None,
            client_identity: None,
        }
    }
}

impl TcpTlsOptions {
    /// How long a new connection has to finish TLS and open its link
    /// (default 10 s). On a client it bounds the whole connect, TCP
    /// included.
    pub fn handshake_timeout(mut self, within: Duration) -> Self {
        self.handshake_timeout = within;
        self
    }

    /// Server only: how many connections may be in their handshake at
    /// once (default 64); more are closed at once until some finish.
    pub fn max_pending_handshakes(mut self, n: usize) -> Self {
        self.max_pending_handshakes = n;
        self
    }

    /// Server only: whether clients must present a certificate.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Client only: the certificate to present to a server that asks.
    pub fn client_identity(mut self, identity: ClientIdentity) -> Self {
        self.client_identity = Some(identity);
        self
    }

    fn check(&self) -> Result<()> {
        if self.handshake_timeout.is_zero() || self.max_pending_handshakes == 0 {
            return Err(TransportError::Config(
                "handshake timeout and max pending handshakes must be non-zero".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A listening TCP socket that accepts TLS links.
///
/// `accept(2)` and the TLS handshakes run in a background task owned by
/// the server: each handshake is its own task bounded by the handshake
/// timeout, so a client that connects and says nothing holds up no one;
/// [`accept`](Self::accept) hands over links that are fully open.
/// Dropping or [closing](Self::close) the server stops listening; links
/// already handed over are the caller's and live on.
#[derive(Debug)]
pub struct TcpTlsServer {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<Result<(TlsReader, TlsWriter, tls::Remote)>>,
    accepting: Accepting,
}

impl TcpTlsServer {
    /// Listens on `addr` (port 0 picks one) and starts accepting.
    ///
    /// # Errors
    /// Invalid options, a client CA that cannot be loaded, or a socket
    /// the OS refuses.
    pub async fn bind(
        addr: SocketAddr,
        identity: ServerIdentity,
        options: TcpTlsOptions,
    ) -> Result<Self> {
        options.check()?;
        let client_auth = options.client_auth.clone();
        let tls = blocking(move || tls::server_config(&identity, &client_auth)).await?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let handshakes = Handshakes {
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            tx,
            timeout: options.handshake_timeout,
        };
        let accepting = Accepting::start(listener, handshakes, options.max_pending_handshakes);
        Ok(Self {
            local_addr,
            accepted,
            accepting,
        })
    }

    /// The next open link: `(reader, writer, who opened it)`. An `Err` is
    /// one connection that failed (bad certificate, timeout, not our
    /// protocol) or a failed `accept(2)`; keep accepting after it. `None`
    /// once the server is closed.
    ///
    /// # Cancel safety
    /// Cancel safe: a link is never lost by dropping this future.
    pub async fn accept(&mut self) -> Option<Result<(TlsReader, TlsWriter, tls::Remote)>> {
        self.accepted.recv().await
    }

    /// The address the server listens on (with the real port when bound
    /// to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and abandons handshakes in progress;
    /// [`accept`](Self::accept) then returns `None`.
    pub fn close(&self) {
        self.accepting.stop();
    }

    /// Closes as [`close`](Self::close) does and waits until the listening
    /// socket is closed, so the port can be bound again when this returns.
    pub async fn shutdown(self) {
        self.accepting.shutdown().await;
    }
}

/// The TLS handshakes, each its own task (see [`accept`](super::accept)),
/// bounded by the handshake timeout; open links go to the queue
/// [`TcpTlsServer::accept`] reads.
struct Handshakes {
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Result<(TlsReader, TlsWriter, tls::Remote)>>,
    timeout: Duration,
}

impl Handle<(TcpStream, SocketAddr)> for Handshakes {
    fn serve(
        &self,
        (tcp, remote): (TcpStream, SocketAddr),
        _stop: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (acceptor, tx, timeout) = (self.acceptor.clone(), self.tx.clone(), self.timeout);
        async move {
            let link = match tokio::time::timeout(timeout, open_server_link(acceptor, tcp)).await {
                Ok(link) => link,
                Err(_) => Err(TransportError::HandshakeTimeout(timeout)),
            };
            match &link {
                Ok(_) => tracing::debug!(%remote, "tls link open"),
                Err(e) => tracing::debug!(%remote, error = %e, "tls link failed"),
            }
            // Waits while the queue is full: backpressure up to the most
            // handshakes at once.
            let link = link.map(|(r, w, certificate)| {
                (
                    r,
                    w,
                    tls::Remote {
                        addr: remote,
                        certificate,
                    },
                )
            });
            let _ = tx.send(link).await;
        }
    }
}

/// Opens a link: the halves and the subject of the client's certificate.
async fn open_server_link(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
) -> Result<(TlsReader, TlsWriter, Option<String>)> {
    tcp.set_nodelay(true)?;
    let mut tls = acceptor.accept(tcp).await.map_err(tls_error)?;
    tls::check_alpn(tls.get_ref().1.alpn_protocol())?;
    let subject = tls::subject_of(tls.get_ref().1.peer_certificates());
    let mut first = [0u8; 1];
    tls.read_exact(&mut first).await.map_err(tls_error)?;
    if first[0] != LINK_OPEN {
        return Err(TransportError::BadPreamble(first[0]));
    }
    tls.write_all(&[LINK_OPEN]).await.map_err(tls_error)?;
    tls.flush().await.map_err(tls_error)?;
    let (r, w) = tokio::io::split(TlsStream::from(tls));
    Ok((r, w, subject))
}

/// Connects to a TCP+TLS server and opens the link: `(reader, writer)`.
///
/// `server_name` is what the certificate must be valid for with
/// [`Trust::CaPem`] or [`Trust::SystemRoots`] (a DNS name or an IP
/// address); with [`Trust::Fingerprint`] any valid name will do.
///
/// # Errors
/// As [`quic_connect`](super::quic::quic_connect): a refused certificate
/// is a typed error and nothing was sent on the link.
///
/// # Cancel safety
/// Dropping the future abandons the attempt and closes its socket.
pub async fn tcp_tls_connect(
    addr: SocketAddr,
    server_name: &str,
    trust: &Trust,
    options: &TcpTlsOptions,
) -> Result<(TlsReader, TlsWriter)> {
    options.check()?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TransportError::InvalidServerName(server_name.to_owned()))?;
    let (trust, identity) = (trust.clone(), options.client_identity.clone());
    let (tls, report) =
        blocking(move || tls::client_config_reporting(&trust, identity.as_ref())).await?;
    let connector = TlsConnector::from(Arc::new(tls));
    let within = options.handshake_timeout;
    let opened = tokio::time::timeout(within, async move {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut tls = connector.connect(name, tcp).await.map_err(tls_error)?;
        tls::check_alpn(tls.get_ref().1.alpn_protocol())?;
        tls.write_all(&[LINK_OPEN]).await.map_err(tls_error)?;
        tls.flush().await.map_err(tls_error)?;
        let mut answer = [0u8; 1];
        tls.read_exact(&mut answer).await.map_err(tls_error)?;
        if answer[0] != LINK_OPEN {
            return Err(TransportError::BadPreamble(answer[0]));
        }
        Ok(tokio::io::split(TlsStream::from(tls)))
    })
    .await;
    // Our own verifier's reason beats the flattened one.
    match opened {
        Ok(Ok(link)) => Ok(link),
        Ok(Err(e)) => Err(report.take().unwrap_or(e)),
        Err(_) => Err(report
            .take()
            .unwrap_or(TransportError::HandshakeTimeout(within))),
    }
}

/// tokio-rustls wraps TLS errors in `io::Error`; unwrap them. Used
/// until the link is open: with TLS 1.3 a server's refusal of our
/// certificate arrives after the handshake, as an alert on the first read.
fn tls_error(e: io::Error) -> TransportError {
    let kind = e.kind();
    if !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return match kind {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                TransportError::PeerRefused(
                    "the peer closed the connection while the link was opening".to_owned(),
                )
            }
            _ => TransportError::Io(e),
        };
    }
    match e
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(tls)) => match *tls {
            rustls::Error::AlertReceived(alert) => {
                TransportError::PeerRefused(format!("tls alert {alert:?}"))
            }
            other => TransportError::Tls(other.to_string()),
        },
        // Not reached: the check above saw a rustls error inside.
        Some(Err(inner)) => TransportError::Io(io::Error::new(kind, inner)),
        None => TransportError::Io(kind.into()),
    }
}
