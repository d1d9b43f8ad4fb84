//! Hostile peers before login: 1,000 connections that never log in (silent,
//! random bytes, a huge frame length, a hello then garbage) cost a server
//! little memory, on Unix sockets, TCP + TLS and WebSocket, while an honest
//! client logs in and makes progress. The server runs in its own process
//! (tests/bin/serve.rs) so its memory is read alone: the growth of its
//! peak resident set (VmHWM) over its size before must stay under 64 MiB.

use redux_cluster::protocol::{FrameCodec, Hello, Message, PROTOCOL_VERSION};
use redux_cluster_tests::{status_kib, Proc};
use serial_test::serial;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(180);

/// Connections of each kind (four kinds: 1,000 in all).
const EACH: usize = 250;

/// Most the server may grow by under the hostile load.
const MAX_GROWTH_MIB: u64 = 64;

/// Most its address space may grow by (thread stacks and malloc arenas, but
/// nothing sized by what a peer announces: 250 reservations of 60 MiB would
/// be 15 GiB).
const MAX_VIRTUAL_GROWTH_MIB: u64 = 2048;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Connects and says nothing.
    Silent,
    /// Sends 4 KiB of random bytes.
    Random,
    /// Announces a frame just under the 64 MiB maximum, then waits.
    HugeLength,
    /// Says hello, then sends 4 KiB of garbage.
    HelloThenGarbage,
}

const KINDS: [Kind; 4] = [
    Kind::Silent,
    Kind::Random,
    Kind::HugeLength,
    Kind::HelloThenGarbage,
];

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Deterministic noise (xorshift), `n` bytes.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A binary-protocol hello frame.
fn hello_frame() -> Vec<u8> {
    let mut buf = Vec::new();
    FrameCodec::default()
        .encode(
            &Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                login: Some("test1"),
                nonce: [5; 32],
            }),
            &mut buf,
        )
        .expect("encode");
    buf
}

/// What a hostile binary-protocol peer sends once its link is open.
fn binary_payload(kind: Kind, i: usize) -> Vec<u8> {
    match kind {
        Kind::Silent => Vec::new(),
        Kind::Random => garbage(i as u64, 4096),
        Kind::HugeLength => ((64u32 << 20) - 16).to_le_bytes().to_vec(),
        Kind::HelloThenGarbage => {
            let mut b = hello_frame();
            b.extend(garbage(i as u64 + 7, 4096));
            b
        }
    }
}

/// Starts the server binary; returns it, its target and its pid.
async fn server(transport: &str, dir: &tempfile::TempDir) -> (Proc, String, u32) {
    let mut p = Proc::spawn(
        env!("CARGO_BIN_EXE_serve"),
        transport,
        &[dir.path().to_str().expect("utf-8 path")],
    );
    let line = p.line().await;
    let target = line
        .strip_prefix("serving ")
        .unwrap_or_else(|| panic!("server said {line}"))
        .to_owned();
    let pid = p.child.id().expect("pid");
    (p, target, pid)
}

/// Opens the hostile population with `open`, keeps it open while an honest
/// client runs `honest`, and checks the server's memory.
async fn under_attack<O, OF, H, HF>(pid: u32, open: O, honest: H)
where
    O: Fn(Kind, usize) -> OF,
    OF: std::future::Future<Output = Option<Box<dyn Conn>>>,
    H: FnOnce() -> HF,
    HF: std::future::Future<Output = ()>,
{
    let before = status_kib(pid, "VmRSS:");
    let virtual_before = status_kib(pid, "VmSize:");
    let mut open_now = Vec::new();
    let mut refused = 0;
    for i in 0..EACH {
        for kind in KINDS {
            match open(kind, i).await {
                Some(c) => open_now.push(c),
                // Past the server's cap on handshakes at once.
                None => refused += 1,
            }
        }
    }
    honest().await;
    let peak = status_kib(pid, "VmHWM:");
    // Reserved but untouched memory does not show in the resident set; a
    // buffer sized by a peer's announced frame length shows here.
    let virtual_grown_mib = status_kib(pid, "VmPeak:").saturating_sub(virtual_before) / 1024;
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "{} hostile connections ({} open, {refused} turned away at once): \
         server RSS {} MiB before, peak {} MiB (+{grown_mib} MiB); \
         virtual +{virtual_grown_mib} MiB",
        EACH * KINDS.len(),
        open_now.len(),
        before / 1024,
        peak / 1024
    );
    assert!(
        grown_mib < MAX_GROWTH_MIB,
        "the server grew by {grown_mib} MiB"
    );
    assert!(
        virtual_grown_mib < MAX_VIRTUAL_GROWTH_MIB,
        "the server reserved {virtual_grown_mib} MiB more"
    );
    drop(open_now);
}

/// An honest `client` process logs in and counts to 10.
async fn honest_client(target: &str) {
    let mut c = Proc::spawn(
        env!("CARGO_BIN_EXE_client"),
        target,
        &["count", "1", "10", "10", "--login", "test1", "12345"],
    );
    assert_eq!(c.final_state().await.0, 10);
    c.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn unix_socket_hostile_population() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, target, pid) = server("unix", &dir).await;
    let path = target.clone();
    tokio::time::timeout(LIMIT, async {
        let open = |kind, i| {
            let path = path.clone();
            async move {
                let mut c = tokio::net::UnixStream::connect(&path).await.ok()?;
                c.write_all(&binary_payload(kind, i)).await.ok()?;
                Some(Box::new(c) as Box<dyn Conn>)
            }
        };
        under_attack(pid, open, || honest_client(&target)).await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn tcp_tls_hostile_population() {
    use redux_cluster::transport::tcp_tls::{tcp_tls_connect, TcpTlsOptions};
    use redux_cluster::transport::tls::{Fingerprint, Trust};
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, target, pid) = server("tcp", &dir).await;
    let (addr, fp) = target
        .strip_prefix("tcp://")
        .and_then(|t| t.split_once('#'))
        .expect("tcp://ADDR#FP");
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    let trust = Trust::Fingerprint(fp.parse::<Fingerprint>().expect("fingerprint"));
    tokio::time::timeout(LIMIT, async {
        let open = |kind, i| {
            let trust = trust.clone();
            async move {
                match kind {
                    // Before TLS: nothing, or noise instead of a ClientHello.
                    Kind::Silent | Kind::Random => {
                        let mut c = tokio::net::TcpStream::connect(addr).await.ok()?;
                        c.write_all(&binary_payload(kind, i)).await.ok()?;
                        Some(Box::new(c) as Box<dyn Conn>)
                    }
                    // Inside an open link, before the login.
                    Kind::HugeLength | Kind::HelloThenGarbage => {
                        let (r, mut w) =
                            tcp_tls_connect(addr, "localhost", &trust, &TcpTlsOptions::default())
                                .await
                                .ok()?;
                        w.write_all(&binary_payload(kind, i)).await.ok()?;
                        w.flush().await.ok()?;
                        Some(Box::new(tokio::io::join(r, w)) as Box<dyn Conn>)
                    }
                }
            }
        };
        under_attack(pid, open, || honest_client(&target)).await;
    })
    .await
    .expect("within the limit");
}

#[cfg(feature = "ws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn websocket_hostile_population() {
    use futures_util::{SinkExt, StreamExt};
    use redux_cluster::auth::{nonce, Credentials};
    use redux_cluster::protocol::Challenge;
    use redux_cluster_tests::{hex, unhex};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, target, pid) = server("ws", &dir).await;
    let addr: std::net::SocketAddr = target
        .strip_prefix("ws://")
        .and_then(|a| a.parse().ok())
        .expect("ws://ADDR");
    let url = format!("ws://{addr}/");
    tokio::time::timeout(LIMIT, async {
        let open = |kind, i| {
            let url = url.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                let mut c = match kind {
                    Kind::Silent => tcp,
                    // Noise instead of an HTTP upgrade.
                    Kind::Random => {
                        let mut tcp = tcp;
                        tcp.write_all(&garbage(i as u64, 4096)).await.ok()?;
                        tcp
                    }
                    Kind::HugeLength => {
                        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
                        let mut tcp = ws.into_inner();
                        // A masked text frame announcing 60 MiB.
                        let mut head = vec![0x81, 0x80 | 127];
                        head.extend((60u64 << 20).to_be_bytes());
                        head.extend([1, 2, 3, 4]);
                        tcp.write_all(&head).await.ok()?;
                        tcp
                    }
                    Kind::HelloThenGarbage => {
                        let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
                        let hello =
                            json!({"type": "hello", "login": "test1", "nonce": hex(&[5; 32])});
                        ws.send(Ws::text(hello.to_string())).await.ok()?;
                        let mut tcp = ws.into_inner();
                        tcp.write_all(&garbage(i as u64 + 7, 4096)).await.ok()?;
                        tcp
                    }
                };
                c.flush().await.ok()?;
                Some(Box::new(c) as Box<dyn Conn>)
            }
        };
        let honest = || async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("connect");
            let client_nonce = nonce();
            ws.send(Ws::text(
                json!({"type": "hello", "login": "test1", "nonce": hex(&client_nonce)}).to_string(),
            ))
            .await
            .expect("hello");
            let challenge = recv(&mut ws).await;
            assert_eq!(challenge["type"], "challenge", "{challenge}");
            let c = Challenge {
                salt: unhex(challenge["salt"].as_str().expect("salt")),
                iterations: challenge["iterations"].as_u64().expect("iterations") as u32,
                nonce: unhex(challenge["nonce"].as_str().expect("nonce")),
            };
            let (proof, _) = Credentials::new("test1", "12345")
                .prove(&client_nonce, &c)
                .expect("prove");
            ws.send(Ws::text(
                json!({"type": "proof", "proof": hex(&proof.proof)}).to_string(),
            ))
            .await
            .expect("proof");
            let welcome = recv(&mut ws).await;
            assert_eq!(welcome["type"], "welcome", "{welcome}");
            for id in 1..=10u64 {
                ws.send(Ws::text(
                    json!({"type": "dispatch", "id": id, "action": {"Inc": 1}}).to_string(),
                ))
                .await
                .expect("dispatch");
            }
            let mut acked = 0;
            while acked < 10 {
                if recv(&mut ws).await["type"] == "ack" {
                    acked += 1;
                }
            }
        };
        under_attack(pid, open, honest).await;
    })
    .await
    .expect("within the limit");

    async fn recv<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        loop {
            match ws.next().await.expect("open").expect("frame") {
                Ws::Text(t) => return serde_json::from_str(&t).expect("json"),
                _ => continue,
            }
        }
    }
}
