//! QUIC and TCP+TLS transports: certificates, trust, pinning, mutual TLS.
//! Loopback only; every wait is on an event (a link, a byte, an error),
//! each under a generous guard so a regression fails instead of hanging.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use redux_cluster::transport::quic::{quic_connect, QuicOptions, QuicServer};
use redux_cluster::transport::tcp_tls::{tcp_tls_connect, TcpTlsOptions, TcpTlsServer};
use redux_cluster::transport::tls::{
    client_config, ClientAuth, Fingerprint, PemSource, ServerIdentity, TransportError, Trust,
    KEY_FILE,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use redux_cluster_tests::TestCa;

const GUARD: Duration = Duration::from_secs(30);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn guarded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no event within {GUARD:?}"),
    }
}

fn generated() -> ServerIdentity {
    ServerIdentity::generate(&["localhost".to_owned()]).expect("generate")
}

/// Writes `msg`, half-closes, and reads the echo to its end.
async fn round_trip<R, W>(mut r: R, mut w: W, msg: &[u8]) -> Vec<u8>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    w.write_all(msg).await.expect("write");
    w.shutdown().await.expect("shutdown");
    let mut back = Vec::new();
    // Fully qualified: quinn's RecvStream has an inherent `read_to_end`.
    AsyncReadExt::read_to_end(&mut r, &mut back)
        .await
        .expect("read echo");
    back
}

async fn echo<R, W>(mut r: R, mut w: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::io::copy(&mut r, &mut w).await.expect("echo copy");
    w.shutdown().await.expect("echo shutdown");
}

/// Serves one QUIC link as an echo; returns what `accept` gave.
fn quic_echo_once(mut server: QuicServer) -> tokio::task::JoinHandle<QuicServer> {
    tokio::spawn(async move {
        let (r, w, _peer) = server
            .accept()
            .await
            .expect("server open")
            .expect("link opens");
        echo(r, w).await;
        server
    })
}

fn tcp_echo_once(mut server: TcpTlsServer) -> tokio::task::JoinHandle<TcpTlsServer> {
    tokio::spawn(async move {
        let (r, w, _peer) = server
            .accept()
            .await
            .expect("server open")
            .expect("link opens");
        echo(r, w).await;
        server
    })
}

#[tokio::test]
async fn quic_echo_with_pinned_fingerprint() {
    let identity = generated();
    let pin = Trust::Fingerprint(identity.fingerprint());
    let server = QuicServer::bind(loopback(), identity, QuicOptions::default())
        .await
        .expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let served = quic_echo_once(server);

    let (r, w) = guarded(
        "connect",
        quic_connect(addr, "localhost", &pin, &QuicOptions::default()),
    )
    .await
    .expect("connect");
    let msg = b"hello over quic".repeat(1000);
    assert_eq!(guarded("echo", round_trip(r, w, &msg)).await, msg);
    guarded("server task", served).await.expect("server task");
}

#[tokio::test]
async fn quic_wrong_pin_is_refused_before_anything_is_sent() {
    let identity = generated();
    let actual = identity.fingerprint();
    let mut server = QuicServer::bind(loopback(), identity, QuicOptions::default())
        .await
        .expect("bind");
    let wrong = Fingerprint::of(b"some other certificate");

    let err = guarded(
        "connect",
        quic_connect(
            server.local_addr(),
            "localhost",
            &Trust::Fingerprint(wrong),
            &QuicOptions::default(),
        ),
    )
    .await
    .expect_err("a wrong pin must be refused");
    match &err {
        TransportError::FingerprintMismatch {
            expected,
            actual: seen,
        } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*seen, actual);
        }
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains("fingerprint mismatch"), "{err}");

    // The server never got a stream: the client aborted the handshake,
    // so no application byte could have been sent.
    let outcome = guarded("server accept", server.accept())
        .await
        .expect("server open");
    assert!(outcome.is_err(), "server must not get a link: {outcome:?}");
}

#[tokio::test]
async fn quic_ca_trust_checks_the_name() {
    let ca = TestCa::new("test ca");
    let server = QuicServer::bind(
        loopback(),
        ca.server_identity(&["localhost"]),
        QuicOptions::default(),
    )
    .await
    .expect("bind");
    let addr = server.local_addr();
    let served = quic_echo_once(server);

    let trust = ca.trust();
    let opts = QuicOptions::default();
    let (r, w) = guarded("connect", quic_connect(addr, "localhost", &trust, &opts))
        .await
        .expect("a client trusting the CA connects as localhost");
    assert_eq!(guarded("echo", round_trip(r, w, b"ca")).await, b"ca");
    let mut server = guarded("server task", served).await.expect("server task");

    let err = guarded("connect", quic_connect(addr, "example.com", &trust, &opts))
        .await
        .expect_err("the certificate is not for example.com");
    assert!(
        matches!(&err, TransportError::NameMismatch { name } if name == "example.com"),
        "{err:?}"
    );
    assert!(guarded("accept", server.accept())
        .await
        .expect("open")
        .is_err());

    let stranger = TestCa::new("another ca");
    let err = guarded(
        "connect",
        quic_connect(addr, "localhost", &stranger.trust(), &opts),
    )
    .await
    .expect_err("a CA that did not sign the server");
    assert!(matches!(err, TransportError::UntrustedCert(_)), "{err:?}");
}

#[tokio::test]
async fn tcp_tls_echo_with_pinned_fingerprint() {
    let identity = generated();
    let pin = Trust::Fingerprint(identity.fingerprint());
    let server = TcpTlsServer::bind(loopback(), identity, TcpTlsOptions::default())
        .await
        .expect("bind");
    let addr = server.local_addr();
    let served = tcp_echo_once(server);

    let (r, w) = guarded(
        "connect",
        tcp_tls_connect(addr, "localhost", &pin, &TcpTlsOptions::default()),
    )
    .await
    .expect("connect");
    let msg = b"hello over tcp".repeat(1000);
    assert_eq!(guarded("echo", round_trip(r, w, &msg)).await, msg);
    let mut server = guarded("server task", served).await.expect("server task");

    let wrong = Trust::Fingerprint(Fingerprint::of(b"not it"));
    let err = guarded(
        "connect",
        tcp_tls_connect(addr, "localhost", &wrong, &TcpTlsOptions::default()),
    )
    .await
    .expect_err("wrong pin");
    assert!(
        matches!(err, TransportError::FingerprintMismatch { .. }),
        "{err:?}"
    );
    assert!(guarded("accept", server.accept())
        .await
        .expect("open")
        .is_err());
}

#[tokio::test]
async fn tcp_tls_refuses_a_client_without_alpn() {
    let identity = generated();
    let pin = Trust::Fingerprint(identity.fingerprint());
    let mut server = TcpTlsServer::bind(loopback(), identity, TcpTlsOptions::default())
        .await
        .expect("bind");
    let mut config = client_config(&pin, None).expect("client config");
    config.alpn_protocols.clear();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("tcp connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    // TLS itself completes: ALPN is optional in TLS, so the check is ours.
    let _tls = guarded("tls", connector.connect(name, tcp))
        .await
        .expect("tls handshake");
    let outcome = guarded("accept", server.accept()).await.expect("open");
    assert!(
        matches!(outcome, Err(TransportError::WrongAlpn(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn tcp_tls_silent_client_does_not_stall_others() {
    let identity = generated();
    let pin = Trust::Fingerprint(identity.fingerprint());
    let opts = TcpTlsOptions::default().handshake_timeout(Duration::from_secs(60));
    let server = TcpTlsServer::bind(loopback(), identity, opts)
        .await
        .expect("bind");
    let addr = server.local_addr();
    // Connects and never says a word.
    let _silent = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let served = tcp_echo_once(server);
    let (r, w) = guarded(
        "connect",
        tcp_tls_connect(addr, "localhost", &pin, &TcpTlsOptions::default()),
    )
    .await
    .expect("a second client is served while the first is silent");
    assert_eq!(guarded("echo", round_trip(r, w, b"next")).await, b"next");
    guarded("server task", served).await.expect("server task");
}

#[tokio::test]
async fn tcp_tls_handshake_timeout_reports_the_silent_client() {
    let identity = generated();
    let opts = TcpTlsOptions::default().handshake_timeout(Duration::from_millis(200));
    let mut server = TcpTlsServer::bind(loopback(), identity, opts)
        .await
        .expect("bind");
    let _silent = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("tcp connect");
    let outcome = guarded("accept", server.accept()).await.expect("open");
    assert!(
        matches!(outcome, Err(TransportError::HandshakeTimeout(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn identity_persists_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = dir.path().join("identity");
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let first = ServerIdentity::load_or_generate(&keep, &names).expect("generate");
    let second = ServerIdentity::load_or_generate(&keep, &names).expect("load");
    assert_eq!(first.fingerprint(), second.fingerprint());

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keep.join(KEY_FILE))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");

    // The reloaded key is the certificate's: a client pinning the first
    // start's fingerprint reaches a server started from the files.
    let pin = Trust::Fingerprint(first.fingerprint());
    let server = QuicServer::bind(loopback(), second, QuicOptions::default())
        .await
        .expect("bind");
    let addr = server.local_addr();
    let served = quic_echo_once(server);
    let (r, w) = guarded(
        "connect",
        quic_connect(addr, "127.0.0.1", &pin, &QuicOptions::default()),
    )
    .await
    .expect("connect");
    assert_eq!(guarded("echo", round_trip(r, w, b"again")).await, b"again");
    guarded("server task", served).await.expect("server task");

    // Half an identity is reported, never silently replaced.
    std::fs::remove_file(keep.join("cert.pem")).expect("remove cert");
    let err = ServerIdentity::load_or_generate(&keep, &names).expect_err("incomplete");
    assert!(
        matches!(err, TransportError::IncompleteIdentity { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn quic_mutual_tls_refuses_a_client_without_a_certificate() {
    let ca = TestCa::new("cluster ca");
    let opts = QuicOptions::default().client_auth(ClientAuth::RequireCa(PemSource::Bytes(
        ca.pem.clone().into_bytes(),
    )));
    let mut server = QuicServer::bind(loopback(), ca.server_identity(&["localhost"]), opts)
        .await
        .expect("bind");
    let addr = server.local_addr();
    let trust = ca.trust();

    let err = guarded(
        "connect",
        quic_connect(addr, "localhost", &trust, &QuicOptions::default()),
    )
    .await
    .expect_err("no client certificate");
    assert!(matches!(err, TransportError::PeerRefused(_)), "{err:?}");
    assert!(guarded("accept", server.accept())
        .await
        .expect("open")
        .is_err());

    let with_cert = QuicOptions::default().client_identity(ca.client_identity());
    let served = quic_echo_once(server);
    let (r, w) = guarded(
        "connect",
        quic_connect(addr, "localhost", &trust, &with_cert),
    )
    .await
    .expect("a client with a CA-signed certificate connects");
    assert_eq!(guarded("echo", round_trip(r, w, b"mtls")).await, b"mtls");
    guarded("server task", served).await.expect("server task");
}

#[tokio::test]
async fn tcp_tls_mutual_tls_refuses_a_client_without_a_certificate() {
    let ca = TestCa::new("cluster ca");
    let opts = TcpTlsOptions::default().client_auth(ClientAuth::RequireCa(PemSource::Bytes(
        ca.pem.clone().into_bytes(),
    )));
    let mut server = TcpTlsServer::bind(loopback(), ca.server_identity(&["localhost"]), opts)
        .await
        .expect("bind");
    let addr = server.local_addr();
    let trust = ca.trust();

    let err = guarded(
        "connect",
        tcp_tls_connect(addr, "localhost", &trust, &TcpTlsOptions::default()),
    )
    .await
    .expect_err("no client certificate");
    assert!(matches!(err, TransportError::PeerRefused(_)), "{err:?}");
    assert!(guarded("accept", server.accept())
        .await
        .expect("open")
        .is_err());

    let with_cert = TcpTlsOptions::default().client_identity(ca.client_identity());
    let served = tcp_echo_once(server);
    let (r, w) = guarded(
        "connect",
        tcp_tls_connect(addr, "localhost", &trust, &with_cert),
    )
    .await
    .expect("a client with a CA-signed certificate connects");
    assert_eq!(guarded("echo", round_trip(r, w, b"mtls")).await, b"mtls");
    guarded("server task", served).await.expect("server task");
}

#[tokio::test]
async fn quic_server_refuses_nonsense_options() {
    let opts = QuicOptions::default()
        .keep_alive_interval(Duration::from_secs(20))
        .idle_timeout(Duration::from_secs(15));
    let err = QuicServer::bind(loopback(), generated(), opts)
        .await
        .expect_err("keep-alive longer than idle timeout");
    assert!(matches!(err, TransportError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn quic_close_ends_accept() {
    let mut server = QuicServer::bind(loopback(), generated(), QuicOptions::default())
        .await
        .expect("bind");
    server.close();
    assert!(guarded("accept after close", server.accept())
        .await
        .is_none());
}
