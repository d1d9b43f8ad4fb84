//! QUIC (quinn over rustls/ring): for links between hosts. One
//! connection carries one link, on one bidirectional stream, yielded as
//! `(RecvStream, QuicWriter)`: tokio `AsyncRead` / `AsyncWrite`, like
//! every other transport's pair.
//!
//! Keep-alives (default every 5 s) hold an idle link open; the idle
//! timeout (default 15 s) ends a link whose peer vanished, so a dead peer
//! is noticed in bounded time even when nothing is being sent.
//!
//! Closing works as with TCP: dropping the [`QuicWriter`] finishes the
//! stream (the peer reads end of stream after the last byte), and the
//! connection closes once both halves are gone and the peer has
//! acknowledged everything written (or after the idle timeout, if it
//! never does). Raw quinn streams would instead close the connection the
//! moment both were dropped, losing whatever was still in flight, such as
//! a last frame explaining why a link is refused.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ConnectionError, Endpoint, IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt,
};
use rustls_pki_types::CertificateDer;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use super::accept::{Accepting, Handle, Listen};
use super::tls::{
    self, blocking, ClientAuth, ClientIdentity, ServerIdentity, TransportError, Trust, LINK_OPEN,
};

/// The port a QUIC server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 10001;

/// Links accepted but not yet taken by [`QuicServer::accept`].
const ACCEPTED_QUEUE: usize = 16;

type Result<T, E = TransportError> = std::result::Result<T, E>;

/// QUIC settings, for servers and clients alike; side-specific fields
/// say so and are ignored by the other side.
#[derive(Clone, Debug)]
pub struct QuicOptions {
    keep_alive_interval: Duration,
    idle_timeout: Duration,
    handshake_timeout: Duration,
    max_pending_handshakes: usize,
    client_auth: ClientAuth,
    client_identity: Option<ClientIdentity>,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            keep_alive_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 64,
            client_auth: ClientAuth::None,
            client_identity: None,
        }
    }
}

impl QuicOptions {
    /// How often an idle side sends a keep-alive (default 5 s). Must be
    /// shorter than the idle timeout.
    pub fn keep_alive_interval(mut self, every: Duration) -> Self {
        self.keep_alive_interval = every;
        self
    }

    /// How long a link may hear nothing before it is declared dead
    /// (default 15 s; the smaller of both sides' values applies).
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.idle_timeout = after;
        self
    }

    /// How long a new connection has to finish TLS and open its link
    /// (default 10 s). On a client it bounds the whole connect.
    pub fn handshake_timeout(mut self, within: Duration) -> Self {
        self.handshake_timeout = within;
        self
    }

    /// Server only: how many connections may be in their handshake at
    /// once (default 64); more are refused until some finish.
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

    fn transport(&self, server: bool) -> Result<TransportConfig> {
        if self.keep_alive_interval.is_zero() || self.keep_alive_interval >= self.idle_timeout {
            return Err(TransportError::Config(format!(
                "keep-alive interval {:?} must be non-zero and shorter than the idle timeout {:?}",
                self.keep_alive_interval, self.idle_timeout
            )));
        }
        if self.handshake_timeout.is_zero() || self.max_pending_handshakes == 0 {
            return Err(TransportError::Config(
                "handshake timeout and max pending handshakes must be non-zero".to_owned(),
            ));
        }
        let idle = IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            TransportError::Config(format!("idle timeout {:?} is too large", self.idle_timeout))
        })?;
        let mut t = TransportConfig::default();
        t.keep_alive_interval(Some(self.keep_alive_interval))
            .max_idle_timeout(Some(idle))
            // A link is exactly one stream, opened by the client: refuse
            // anything else a peer might try to open, and datagrams.
            .max_concurrent_bidi_streams(VarInt::from_u32(u32::from(server)))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None);
        Ok(t)
    }
}

/// The writing half of a QUIC link: quinn's `SendStream`, except that
/// dropping it finishes the stream and keeps the connection up until the
/// peer has acknowledged every byte (at most the idle timeout), as closing
/// a TCP socket does.
#[derive(Debug)]
pub struct QuicWriter {
    // `None` only after drop has taken it.
    send: Option<SendStream>,
    linger: Duration,
}

impl QuicWriter {
    fn new(send: SendStream, linger: Duration) -> Self {
        Self {
            send: Some(send),
            linger,
        }
    }

    fn stream(&mut self) -> io::Result<&mut SendStream> {
        self.send
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncWrite for QuicWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => AsyncWrite::poll_write(Pin::new(s), cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => AsyncWrite::poll_flush(Pin::new(s), cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => AsyncWrite::poll_shutdown(Pin::new(s), cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for QuicWriter {
    fn drop(&mut self) {
        let Some(mut send) = self.send.take() else {
            return;
        };
        // Err: already finished by a shutdown (whose data may still be in
        // flight, so linger all the same), or reset, or lost (then
        // `stopped` returns at once).
        let _ = send.finish();
        let linger = self.linger;
        // The task holds the stream, and so the connection, until the
        // peer acknowledges the rest; it ends by itself within `linger`.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(linger, send.stopped()).await;
            });
        }
    }
}

/// A bound QUIC endpoint that accepts links.
///
/// Handshakes run concurrently in a background task owned by the server,
/// each bounded by the handshake timeout, so a silent or slow client
/// never holds up the others; [`accept`](Self::accept) hands over links
/// that are fully open. Dropping the server stops accepting (links
/// already handed over live on); [`close`](Self::close) also ends them.
#[derive(Debug)]
pub struct QuicServer {
    endpoint: Endpoint,
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<Result<(RecvStream, QuicWriter, tls::Remote)>>,
    accepting: Accepting,
}

impl QuicServer {
    /// Binds a UDP socket at `addr` (port 0 picks one) and starts
    /// accepting.
    ///
    /// # Errors
    /// Invalid options, a client CA that cannot be loaded, or a socket
    /// the OS refuses.
    pub async fn bind(
        addr: SocketAddr,
        identity: ServerIdentity,
        options: QuicOptions,
    ) -> Result<Self> {
        let transport = options.transport(true)?;
        let client_auth = options.client_auth.clone();
        let tls = blocking(move || tls::server_config(&identity, &client_auth)).await?;
        let crypto = QuicServerConfig::try_from(Arc::new(tls))
            .map_err(|e| TransportError::Config(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        let endpoint = Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(config),
            reusable_udp(addr)?,
            Arc::new(quinn::TokioRuntime),
        )?;
        let local_addr = endpoint.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let handshakes = Handshakes {
            tx,
            timeout: options.handshake_timeout,
            linger: options.idle_timeout,
        };
        let accepting =
            Accepting::start(endpoint.clone(), handshakes, options.max_pending_handshakes);
        Ok(Self {
            endpoint,
            local_addr,
            accepted,
            accepting,
        })
    }

    /// The next open link: `(reader, writer, who opened it)`. An `Err` is
    /// one connection that failed (bad certificate, timeout, not our
    /// protocol); keep accepting after it. `None` once the server is
    /// closed.
    ///
    /// # Cancel safety
    /// Cancel safe: a link is never lost by dropping this future.
    pub async fn accept(&mut self) -> Option<Result<(RecvStream, QuicWriter, tls::Remote)>> {
        self.accepted.recv().await
    }

    /// The address the server is bound to (with the real port when bound
    /// to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection of this endpoint,
    /// including links already handed over; their peers see the close at
    /// once. [`accept`](Self::accept) then returns `None`.
    pub fn close(&self) {
        self.accepting.stop();
        self.endpoint.close(VarInt::from_u32(0), b"server closed");
    }

    /// Closes as [`close`](Self::close) does, then waits until every
    /// connection has drained, so the UDP port is free for a new server when
    /// this returns.
    pub async fn shutdown(self) {
        self.close();
        let endpoint = self.endpoint.clone();
        drop(self);
        endpoint.wait_idle().await;
    }
}

impl Drop for QuicServer {
    fn drop(&mut self) {
        self.accepting.stop();
        // Refuse new connections; established ones keep the endpoint alive.
        self.endpoint.set_server_config(None);
    }
}

/// A UDP socket bound with SO_REUSEADDR and SO_REUSEPORT, so a server
/// restarted on the same port binds at once even while the previous
/// endpoint is still draining its last connections (quinn keeps the old
/// socket until every connection object is gone).
fn reusable_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped peers too, as std's bind does by default.
        let _ = socket.set_only_v6(false);
    }
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl Listen for Endpoint {
    type Conn = quinn::Incoming;

    async fn accept(&mut self) -> Option<quinn::Incoming> {
        Endpoint::accept(self).await
    }
}

/// The QUIC handshakes, each its own task (see [`accept`](super::accept)),
/// bounded by the handshake timeout; open links go to the queue
/// [`QuicServer::accept`] reads.
struct Handshakes {
    tx: mpsc::Sender<Result<(RecvStream, QuicWriter, tls::Remote)>>,
    timeout: Duration,
    linger: Duration,
}

impl Handle<quinn::Incoming> for Handshakes {
    fn serve(
        &self,
        incoming: quinn::Incoming,
        _stop: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, timeout, linger) = (self.tx.clone(), self.timeout, self.linger);
        async move {
            let remote = incoming.remote_address();
            let link = match tokio::time::timeout(timeout, open_server_link(incoming)).await {
                Ok(link) => link,
                Err(_) => Err(TransportError::HandshakeTimeout(timeout)),
            };
            match &link {
                Ok(_) => tracing::debug!(%remote, "quic link open"),
                Err(e) => tracing::debug!(%remote, error = %e, "quic link failed"),
            }
            // Waits while the queue is full: backpressure up to the most
            // handshakes at once.
            let link = link.map(|(r, w, certificate)| {
                let who = tls::Remote {
                    addr: remote,
                    certificate,
                };
                (r, QuicWriter::new(w, linger), who)
            });
            let _ = tx.send(link).await;
        }
    }

    fn turn_away(
        &self,
        incoming: quinn::Incoming,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        tracing::debug!(remote = %incoming.remote_address(), "too many quic handshakes in progress; refusing");
        incoming.refuse();
        async {}
    }
}

/// Opens a link: the streams and the subject of the client's certificate.
async fn open_server_link(
    incoming: quinn::Incoming,
) -> Result<(RecvStream, SendStream, Option<String>)> {
    let conn = incoming.await.map_err(conn_error)?;
    let subject = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .and_then(|chain| tls::subject_of(Some(&chain)));
    let (mut send, mut recv) = conn.accept_bi().await.map_err(conn_error)?;
    let mut first = [0u8; 1];
    recv.read_exact(&mut first).await.map_err(read_error)?;
    if first[0] != LINK_OPEN {
        conn.close(VarInt::from_u32(1), b"not a redux-cluster link");
        return Err(TransportError::BadPreamble(first[0]));
    }
    send.write_all(&[LINK_OPEN]).await.map_err(write_error)?;
    // The streams hold the connection; `conn` may go.
    Ok((recv, send, subject))
}

/// Connects to a QUIC server and opens the link: `(reader, writer)`.
///
/// `server_name` is what the certificate must be valid for with
/// [`Trust::CaPem`] or [`Trust::SystemRoots`] (a DNS name or an IP
/// address); with [`Trust::Fingerprint`] any valid name will do. Each
/// call binds its own UDP socket, released when the link closes.
///
/// # Errors
/// [`TransportError::FingerprintMismatch`], [`TransportError::NameMismatch`]
/// or [`TransportError::UntrustedCert`] when the server's certificate is
/// refused (before anything is sent on the link);
/// [`TransportError::PeerRefused`] when the server refuses us;
/// [`TransportError::HandshakeTimeout`]; I/O and QUIC errors.
///
/// # Cancel safety
/// Dropping the future abandons the attempt and closes its connection.
pub async fn quic_connect(
    addr: SocketAddr,
    server_name: &str,
    trust: &Trust,
    options: &QuicOptions,
) -> Result<(RecvStream, QuicWriter)> {
    let transport = options.transport(false)?;
    let (trust, identity) = (trust.clone(), options.client_identity.clone());
    let (tls, report) =
        blocking(move || tls::client_config_reporting(&trust, identity.as_ref())).await?;
    let crypto = QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| TransportError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let local: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    // The endpoint's driver lives on while the connection does.
    let endpoint = Endpoint::client(local)?;
    let connecting = endpoint
        .connect_with(config, addr, server_name)
        .map_err(|e| match e {
            quinn::ConnectError::InvalidServerName(name) => TransportError::InvalidServerName(name),
            e => TransportError::QuicConnect(e.to_string()),
        })?;
    let within = options.handshake_timeout;
    let opened = tokio::time::timeout(within, async move {
        let conn = connecting.await.map_err(conn_error)?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(conn_error)?;
        send.write_all(&[LINK_OPEN]).await.map_err(write_error)?;
        let mut answer = [0u8; 1];
        recv.read_exact(&mut answer).await.map_err(read_error)?;
        if answer[0] != LINK_OPEN {
            conn.close(VarInt::from_u32(1), b"not a redux-cluster link");
            return Err(TransportError::BadPreamble(answer[0]));
        }
        Ok((recv, send))
    })
    .await;
    // Our own verifier's reason beats quinn's flattened one.
    match opened {
        Ok(Ok((recv, send))) => Ok((recv, QuicWriter::new(send, options.idle_timeout))),
        Ok(Err(e)) => Err(report.take().unwrap_or(e)),
        Err(_) => Err(report
            .take()
            .unwrap_or(TransportError::HandshakeTimeout(within))),
    }
}

/// Errors while a link opens: a close by the peer then is a refusal.
fn conn_error(e: ConnectionError) -> TransportError {
    match &e {
        ConnectionError::ConnectionClosed(close) if is_tls_alert(close.error_code) => {
            TransportError::PeerRefused(close.to_string())
        }
        ConnectionError::ApplicationClosed(close) => TransportError::PeerRefused(close.to_string()),
        _ => TransportError::QuicConnection(e.to_string()),
    }
}

/// QUIC carries TLS alerts as transport error codes 0x100..=0x1ff.
fn is_tls_alert(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

fn read_error(e: quinn::ReadExactError) -> TransportError {
    use quinn::{ReadError, ReadExactError};
    match e {
        ReadExactError::ReadError(ReadError::ConnectionLost(e)) => conn_error(e),
        ReadExactError::FinishedEarly(_) | ReadExactError::ReadError(ReadError::Reset(_)) => {
            TransportError::PeerRefused(
                "the peer closed the stream while the link was opening".to_owned(),
            )
        }
        e => TransportError::Io(std::io::Error::other(e)),
    }
}

fn write_error(e: quinn::WriteError) -> TransportError {
    match e {
        quinn::WriteError::ConnectionLost(e) => conn_error(e),
        quinn::WriteError::Stopped(_) => TransportError::PeerRefused(
            "the peer stopped the stream while the link was opening".to_owned(),
        ),
        e => TransportError::Io(e.into()),
    }
}
