//! The cluster scheme over Unix sockets, with real client processes: this
//! test process serves; clients are the `client` binary.

use redux_cluster::ban::BanPolicy;
use redux_cluster::server::{ServeConfig, ServeError};
use redux_cluster::transport::unix::BindError;
use redux_cluster::Error;
use redux_cluster_tests::{events, status_kib, Counter, CounterAction, Proc, Scoped};
use serial_test::serial;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(120);

/// A `client` process (tests/bin/client.rs) connected to `target`.
fn client(target: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Proc {
    Proc::spawn(env!("CARGO_BIN_EXE_client"), target, args)
}

fn sock(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("store.sock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn three_clients_converge_in_one_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::builder().resync(0).start().expect("master"));
    let _server = store
        .serve(ServeConfig::unix(&path).login("test1", "12345"))
        .await
        .expect("serve");
    tokio::time::timeout(LIMIT, async {
        let k = 100_000u64;
        let mut clients: Vec<Proc> = (1..=3u8)
            .map(|slot| {
                client(
                    &path,
                    &[
                        "count",
                        &slot.to_string(),
                        &k.to_string(),
                        &(3 * k).to_string(),
                        "--login",
                        "test1",
                        "12345",
                    ],
                )
            })
            .collect();
        store
            .wait_until(|s| s.total == 3 * k)
            .await
            .expect("converge");
        let master = store.get_state();
        for c in &mut clients {
            let (total, digest, seq) = c.final_state().await;
            assert_eq!((total, digest, seq), (3 * k, master.digest, store.seq()));
        }
        assert_eq!(&master.by[1..4], &[k, k, k]);
        for c in clients {
            c.exit().await;
        }
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn two_hundred_clients_converge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::start_master().expect("master"));
    let _server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
    tokio::time::timeout(LIMIT, async {
        // 4 processes × 50 connections, 100 increments each.
        let mut procs: Vec<Proc> = (1..=4u8)
            .map(|slot| client(&path, &["many", "50", &slot.to_string(), "100", "20000"]))
            .collect();
        store
            .wait_until(|s| s.total == 20_000)
            .await
            .expect("converge");
        let digest = store.get_state().digest;
        for p in &mut procs {
            let (total, d, _) = p.final_state().await;
            assert_eq!((total, d), (20_000, digest));
        }
        for p in procs {
            p.exit().await;
        }
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn wrong_passwords_from_the_servers_own_user_never_ban_it() {
    // Over a Unix socket the ban key is the peer's uid; these clients run
    // as the server's own user, who could read its memory anyway: banning
    // them would lock out every process of that user and protect nothing.
    // (Bans by IP over TCP+TLS: tests/remote.rs.)
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::start_master().expect("master"));
    let policy = BanPolicy {
        max_failures: 3,
        ..BanPolicy::default()
    };
    let server = store
        .serve(
            ServeConfig::unix(&path)
                .login("test1", "12345")
                .ban_policy(policy),
        )
        .await
        .expect("serve");
    tokio::time::timeout(LIMIT, async {
        for i in 1..=5 {
            let mut c = client(&path, &["join", "--login", "test1", "wrong"]);
            let l = c.line().await;
            assert!(l.contains("wrong login or password"), "attempt {i}: {l}");
            c.exit().await;
        }
        assert!(server.bans().is_empty());
        let mut c = client(&path, &["join", "--login", "test1", "12345"]);
        assert_eq!(c.line().await, "joined");
        c.exit().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn server_restart_loses_nothing_and_repeats_nothing() {
    redux_cluster_tests::log_from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::builder().resync(0).start().expect("master"));
    let mut server = Some(store.serve(ServeConfig::unix(&path)).await.expect("serve"));
    let stage = std::sync::Mutex::new("start");
    let at = |s| *stage.lock().expect("stage") = s;
    let res = tokio::time::timeout(LIMIT, async {
        let k = 200_000u64;
        let mut a = client(&path, &["count", "1", &k.to_string(), &(2 * k).to_string()]);
        let mut b = client(&path, &["count", "2", &k.to_string(), &(2 * k).to_string()]);
        for round in 0..3u64 {
            // Restart while both are streaming.
            at("streaming");
            store
                .wait_until(|s| s.by[1] > (round + 1) * 20_000 && s.by[2] > (round + 1) * 20_000)
                .await
                .expect("streaming");
            at("shutdown");
            if let Some(s) = server.take() {
                s.shutdown().await;
            }
            at("re-serve");
            server = Some(
                store
                    .serve(ServeConfig::unix(&path))
                    .await
                    .expect("re-serve"),
            );
        }
        at("converge");
        store
            .wait_until(|s| s.total >= 2 * k)
            .await
            .expect("converge");
        let master = store.get_state();
        assert_eq!(master.total, 2 * k, "exactly once: no loss, no repeat");
        assert_eq!(&master.by[1..3], &[k, k]);
        at("clients' final states");
        for c in [&mut a, &mut b] {
            let (total, digest, _) = c.final_state().await;
            assert_eq!((total, digest), (2 * k, master.digest));
        }
        a.exit().await;
        b.exit().await;
    })
    .await;
    if res.is_err() {
        let s = store.get_state();
        panic!(
            "hang at {:?}: master total {} by {:?}",
            stage.lock().expect("stage"),
            s.total,
            &s.by[..3]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn reconnect_resumes_from_the_ring_or_gets_a_snapshot() {
    redux_cluster_tests::log_from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(
        Counter::builder()
            .resync(0)
            .history(1 << 20, 1000)
            .start()
            .expect("master"),
    );
    let server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
    tokio::time::timeout(LIMIT, async {
        let mut c = client(&path, &["follow", "100", "600", "6600"]);
        assert_eq!(c.line().await, "ready");
        store
            .dispatch_all(&vec![CounterAction::Inc(0); 100])
            .expect("dispatch");
        assert!(
            c.line().await.ends_with("snapshots 1"),
            "joined with one snapshot"
        );
        // Away for 500 actions: within the ring, resumed without a snapshot.
        server.shutdown().await;
        store
            .dispatch_all(&vec![CounterAction::Inc(0); 500])
            .expect("dispatch");
        let server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
        let l = c.line().await;
        assert!(
            l.starts_with("reached 600 ") && l.ends_with("snapshots 1"),
            "{l}"
        );
        // Away for 6000 actions: past the ring (1000), so a snapshot.
        server.shutdown().await;
        store
            .dispatch_all(&vec![CounterAction::Inc(0); 6000])
            .expect("dispatch");
        let _server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
        let l = c.line().await;
        let digest = store.get_state().digest;
        assert_eq!(l, format!("reached 6600 {digest} snapshots 2"));
        c.exit().await;
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn socket_file_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Scoped(Counter::start_master().expect("master"));
    // A live server on the path: a clear error.
    let path = dir.path().join("live.sock");
    let _live = store.serve(ServeConfig::unix(&path)).await.expect("serve");
    match store.serve(ServeConfig::unix(&path)).await {
        Err(ServeError::Bind(BindError::InUse(p))) => assert_eq!(p, path),
        other => panic!("expected InUse, got {other:?}"),
    }
    // A stale socket left by a crash: replaced.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let server = store
        .serve(ServeConfig::unix(&stale))
        .await
        .expect("replaces stale");
    let mode = std::fs::metadata(&stale).expect("meta").permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600, "owner only");
    drop(server);
    // Not a socket: refused, and left alone.
    let file = dir.path().join("data.txt");
    std::fs::write(&file, "keep me").expect("write");
    match store.serve(ServeConfig::unix(&file)).await {
        Err(ServeError::Bind(BindError::NotASocket(p))) => assert_eq!(p, file),
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn read_only_login_follows_but_cannot_dispatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::start_master().expect("master"));
    let _server = store
        .serve(ServeConfig::unix(&path).login_read_only("viewer", "pw"))
        .await
        .expect("serve");
    tokio::time::timeout(LIMIT, async {
        let mut c = client(&path, &["readonly", "--login", "viewer", "pw"]);
        let l = c.line().await;
        assert!(l.starts_with("refused: ") && l.contains("read-only"), "{l}");
        assert_eq!(store.get_state().total, 0);
        c.exit().await;
    })
    .await
    .expect("hang");
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    status_kib(std::process::id(), "VmRSS:") as f64 / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_client_that_never_reads_costs_bounded_memory_then_a_snapshot() {
    use redux_cluster::protocol::{FrameCodec, Hello, Join, Message, PROTOCOL_VERSION};
    use redux_cluster::Reducer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let (seen, hook) = events();
    let store = Scoped(Counter::builder().on_event(hook).start().expect("master"));
    let _server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
    tokio::time::timeout(LIMIT, async {
        let mut raw = tokio::net::UnixStream::connect(&path)
            .await
            .expect("connect");
        let codec = FrameCodec::default();
        let mut out = Vec::new();
        codec
            .encode(
                &Message::Hello(Hello {
                    protocol: PROTOCOL_VERSION,
                    login: None,
                    nonce: [0; 32],
                }),
                &mut out,
            )
            .expect("hello");
        codec
            .encode(
                &Message::Join(Join {
                    channel: 1,
                    store: Counter::ID,
                    schema: Counter::SCHEMA,
                    name: "Counter",
                    describe: "",
                    resume: None,
                    session: 1,
                    acked_batch: 0,
                    older: Vec::new(),
                }),
                &mut out,
            )
            .expect("join");
        raw.write_all(&out).await.expect("write");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = Vec::new();
        // Read up to the join's first snapshot, then stop reading.
        'joined: loop {
            let n = raw.read(&mut buf).await.expect("read");
            assert!(n > 0, "server closed the link");
            got.extend_from_slice(&buf[..n]);
            let mut at = 0;
            while let Ok(Some((msg, used))) = codec.decode(&got[at..]) {
                at += used;
                if matches!(msg, Message::Snapshot(_)) {
                    break 'joined;
                }
            }
        }
        got.clear();
        // Stream 2,000,000 actions while the client reads nothing.
        let before = rss_mib();
        for _ in 0..2000 {
            store
                .dispatch_all(&vec![CounterAction::Inc(0); 1000])
                .expect("dispatch");
        }
        let grown = rss_mib() - before;
        assert!(
            grown < 64.0,
            "server memory grew {grown:.1} MiB for a client that never reads"
        );
        // When it finally reads, it is sent a snapshot, and that is reported.
        loop {
            let n = raw.read(&mut buf).await.expect("read");
            assert!(n > 0, "server closed the link");
            got.extend_from_slice(&buf[..n]);
            let mut at = 0;
            let mut snapshot_at = None;
            while let Ok(Some((msg, used))) = codec.decode(&got[at..]) {
                if let Message::Snapshot(s) = msg {
                    snapshot_at = Some(s.seq);
                }
                at += used;
            }
            got.drain(..at);
            if snapshot_at == Some(2_000_000) {
                break;
            }
        }
        let reports = seen.lock().expect("lock").clone();
        assert!(
            reports
                .iter()
                .any(|e| e.contains("actions behind and was sent a snapshot")),
            "{reports:?}"
        );
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn dispatch_then_close_delivers_every_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::builder().start().expect("master"));
    let _server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
    tokio::time::timeout(LIMIT, async {
        for round in 1..=5u64 {
            let mut c = client(&path, &["close", "2", "10"]);
            assert_eq!(c.line().await, "closed ok");
            c.exit().await;
            // Closed means acknowledged, and acknowledged means applied here.
            assert_eq!(store.state().by[2], 10 * round);
        }
    })
    .await
    .expect("within the limit");
}

mod unordered {
    use redux_cluster::{reducer, ClusterStore};
    use serde::{Deserialize, Serialize};
    use std::collections::{HashMap, HashSet};

    /// A map whose iteration order differs in every process (and map).
    #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    #[cluster_store(name = "tally")]
    pub struct Tally {
        pub by: HashMap<u32, u64>,
    }

    #[reducer(Tally)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum TallyAction {
        Hit(u32),
    }

    fn reduce(s: &mut Tally, a: &TallyAction) {
        let TallyAction::Hit(k) = a;
        *s.by.entry(*k).or_default() += 1;
    }

    /// A set: no canonical order, so never compared by digest.
    #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    #[cluster_store(name = "seen")]
    pub struct Seen {
        pub keys: HashSet<u32>,
    }

    #[reducer(Seen, apply = reduce_seen)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum SeenAction {
        Saw(u32),
    }

    fn reduce_seen(s: &mut Seen, a: &SeenAction) {
        let SeenAction::Saw(k) = a;
        s.keys.insert(*k);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn hash_maps_and_sets_in_the_state_raise_no_false_divergence() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::Schema;
    use unordered::{Seen, SeenAction, Tally, TallyAction};
    const { assert!(<Tally as Schema>::ORDERED) };
    const { assert!(!<Seen as Schema>::ORDERED) };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let on = || {
        let s = Arc::clone(&seen);
        move |e: &Error| s.lock().expect("lock").push(e.to_string())
    };
    let tally = Tally::builder()
        .resync(0)
        .digest_every(1000)
        .on_error(on())
        .start()
        .expect("master");
    let set = Seen::builder()
        .resync(0)
        .digest_every(1000)
        .on_error(on())
        .start()
        .expect("master");
    let path2 = dir.path().join("seen.sock");
    let _server = tally.serve(ServeConfig::unix(&path)).await.expect("serve");
    let _server2 = set.serve(ServeConfig::unix(&path2)).await.expect("serve");
    tokio::time::timeout(LIMIT, async {
        let connect = |p: &PathBuf| ConnectConfig::unix(p).relay(false);
        let t = Tally::builder()
            .on_error(on())
            .connect(connect(&path))
            .expect("client");
        let s = Seen::builder()
            .on_error(on())
            .connect(connect(&path2))
            .expect("client");
        t.ready().await.expect("joined");
        s.ready().await.expect("joined");
        for i in 0..50_000u32 {
            tally.dispatch(TallyAction::Hit(i % 997)).expect("dispatch");
            set.dispatch(SeenAction::Saw(i % 997)).expect("dispatch");
        }
        t.wait_for(50_000).await.expect("all applied");
        s.wait_for(50_000).await.expect("all applied");
        assert_eq!(*t.state(), *tally.state());
        assert_eq!(*s.state(), *set.state());
        assert_eq!(
            t.snapshots_applied(),
            1,
            "only the join snapshot: no repair"
        );
        assert_eq!(
            s.snapshots_applied(),
            1,
            "only the join snapshot: no repair"
        );
        t.shutdown();
        s.shutdown();
    })
    .await
    .expect("within the limit");
    tally.shutdown();
    set.shutdown();
    let errors = seen.lock().expect("lock").clone();
    assert!(!errors.iter().any(|e| e.contains("diverged")), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn dropping_a_follower_with_queued_dispatches_reports_them() {
    use redux_cluster::client::ConnectConfig;
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens here: the dispatches stay queued.
    let cfg = ConnectConfig::unix(sock(&dir)).relay(false);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let dropped = Arc::new(tokio::sync::Notify::new());
    let (s, d) = (Arc::clone(&seen), Arc::clone(&dropped));
    let store = Counter::builder()
        .on_error(move |e| {
            if let Error::Dropped(n) = e {
                s.lock().expect("lock").push(format!("dropped {n}"));
                d.notify_one();
            }
        })
        .connect(cfg)
        .expect("client");
    for _ in 0..5 {
        store.dispatch(CounterAction::Inc(1)).expect("queued");
    }
    let other = store.clone();
    drop(store);
    assert!(
        seen.lock().expect("lock").is_empty(),
        "a handle is still alive"
    );
    drop(other);
    tokio::time::timeout(LIMIT, dropped.notified())
        .await
        .expect("reported");
    assert_eq!(*seen.lock().expect("lock"), vec!["dropped 5".to_string()]);
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    status_kib(std::process::id(), "VmRSS:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_peer_that_announces_a_huge_frame_before_login_is_cut_off_cheaply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::builder().start().expect("master"));
    let _server = store
        .serve(ServeConfig::unix(&path).login("test1", "12345"))
        .await
        .expect("serve");
    let before = rss_kib();
    tokio::time::timeout(LIMIT, async {
        // Each announces a frame just under the 64 MiB maximum, then waits.
        let mut conns = Vec::new();
        for _ in 0..16 {
            let mut c = tokio::net::UnixStream::connect(&path)
                .await
                .expect("connect");
            c.write_all(&(60u32 << 20).to_le_bytes())
                .await
                .expect("write");
            conns.push(c);
        }
        // Before a login only small frames are taken: the server closes
        // every one of them at once instead of reserving 60 MiB each.
        for mut c in conns {
            let mut b = [0u8; 64];
            while c.read(&mut b).await.expect("read") != 0 {}
        }
        // Honest clients are unaffected.
        let mut honest = client(
            &path,
            &["count", "1", "10", "10", "--login", "test1", "12345"],
        );
        assert_eq!(honest.final_state().await.0, 10);
        honest.exit().await;
    })
    .await
    .expect("within the limit");
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 64, "the server grew by {grown_mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn ready_gives_up_on_an_absent_server_in_time_and_a_later_ready_joins() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::transport::tls::{Fingerprint, Trust};
    use redux_cluster::JoinError;
    let limit = Some(Duration::from_secs(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let unix = Counter::builder()
        .connect(
            ConnectConfig::unix(&path)
                .relay(false)
                .connect_timeout(limit),
        )
        .expect("client");
    // A TCP port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let trust = || Trust::Fingerprint(Fingerprint([7; 32]));
    let tcp = Counter::builder()
        .connect(
            ConnectConfig::tcp_tls(addr, "localhost", trust())
                .relay(false)
                .connect_timeout(limit),
        )
        .expect("client");
    // A UDP port that never answers a QUIC handshake.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let quic = Counter::builder()
        .connect(
            ConnectConfig::quic(silent.local_addr().expect("addr"), "localhost", trust())
                .relay(false)
                .connect_timeout(limit),
        )
        .expect("client");
    tokio::time::timeout(LIMIT, async {
        for (store, cause) in [
            (&unix, Some("store.sock")),
            (&tcp, Some("refused")),
            (&quic, None),
        ] {
            match store.ready().await {
                Err(JoinError::Timeout {
                    after,
                    last_failure,
                }) => {
                    assert_eq!(Some(after), limit);
                    if let Some(cause) = cause {
                        let last = last_failure.expect("a cause");
                        assert!(last.to_lowercase().contains(cause), "{last}");
                    }
                }
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
        // The store kept trying: once a server is there, it joins.
        let master = Scoped(Counter::builder().start().expect("master"));
        let _server = master.serve(ServeConfig::unix(&path)).await.expect("serve");
        loop {
            match unix.ready().await {
                Ok(()) => break,
                Err(JoinError::Timeout { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(unix.commit(CounterAction::Inc(1)).await, Ok(1));
    })
    .await
    .expect("within the limit");
    for s in [unix, tcp, quic] {
        s.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_client_with_a_password_refuses_a_server_that_never_challenged_it() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::protocol::{FrameCodec, Message, Welcome};
    use redux_cluster::JoinError;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    // An impostor: whatever the hello says, it admits the client at once.
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let impostor = tokio::spawn(async move {
        let mut welcome = Vec::new();
        FrameCodec::default()
            .encode(
                &Message::Welcome(Welcome {
                    signature: [0; 32],
                    read_only: false,
                }),
                &mut welcome,
            )
            .expect("encode");
        while let Ok((mut s, _)) = listener.accept().await {
            let mut b = [0u8; 512];
            let _ = s.read(&mut b).await;
            let _ = s.write_all(&welcome).await;
        }
    });
    let store = Counter::builder()
        .connect(
            ConnectConfig::unix(&path)
                .login("test1", "12345")
                .relay(false),
        )
        .expect("client");
    let res = tokio::time::timeout(LIMIT, store.ready())
        .await
        .expect("answered");
    assert_eq!(res, Err(JoinError::ServerNotAuthentic));
    store.shutdown();
    impostor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_full_server_says_so_and_admits_the_client_when_a_place_frees() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::JoinError;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let store = Scoped(Counter::builder().start().expect("master"));
    let _server = store
        .serve(ServeConfig::unix(&path).max_clients(1))
        .await
        .expect("serve");
    let cfg = || {
        ConnectConfig::unix(&path)
            .relay(false)
            .connect_timeout(Some(Duration::from_secs(1)))
    };
    tokio::time::timeout(LIMIT, async {
        let first = Counter::connect(cfg()).expect("client");
        first.ready().await.expect("the first fits");
        let second = Counter::connect(cfg()).expect("client");
        match second.ready().await {
            Err(JoinError::ServerFull { detail }) => {
                assert!(
                    detail.contains("the server is full (1 clients)"),
                    "{detail}"
                )
            }
            other => panic!("expected to hear that the server is full: {other:?}"),
        }
        first.shutdown();
        // The store kept trying; once the place is free it joins, and its
        // commit (queued until then) goes through.
        assert_eq!(second.commit(CounterAction::Inc(1)).await, Ok(1));
        assert_eq!(second.ready().await, Ok(()));
        second.shutdown();
    })
    .await
    .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn commit_within_gives_up_in_time_and_the_action_still_lands_once() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::DispatchError;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let master = Scoped(Counter::start_master().expect("master"));
    let server = master.serve(ServeConfig::unix(&path)).await.expect("serve");
    let client = Scoped(Counter::connect(ConnectConfig::unix(&path).relay(false)).expect("client"));
    tokio::time::timeout(LIMIT, async {
        let quick = Duration::from_millis(300);
        assert_eq!(
            client.commit_within(CounterAction::Inc(1), quick).await,
            Ok(1)
        );
        // The server goes away: the deadline ends the wait.
        server.shutdown().await;
        assert_eq!(
            client.commit_within(CounterAction::Inc(2), quick).await,
            Err(DispatchError::Timeout(quick))
        );
        // Back again: the action that timed out is committed, once.
        let _server = master
            .serve(ServeConfig::unix(&path))
            .await
            .expect("serve again");
        master.wait_until(|s| s.total >= 2).await.expect("landed");
        client.wait_until(|s| s.total >= 2).await.expect("seen");
        let again = client
            .commit_within(CounterAction::Inc(3), LIMIT)
            .await
            .expect("commit");
        assert_eq!(again, 3, "the timed-out action was applied exactly once");
        assert_eq!(master.state().by[2], 1);
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_client_streams_the_actions_its_master_applies() {
    use redux_cluster::client::ConnectConfig;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = sock(&dir);
    let master = Scoped(Counter::start_master().expect("master"));
    let _server = master.serve(ServeConfig::unix(&path)).await.expect("serve");
    let client = Scoped(Counter::connect(ConnectConfig::unix(&path).relay(false)).expect("client"));
    tokio::time::timeout(LIMIT, async {
        client.ready().await.expect("ready");
        let mut actions = client.actions();
        master.dispatch(CounterAction::Inc(1)).expect("dispatch");
        client
            .commit(CounterAction::Add(2, 5))
            .await
            .expect("commit");
        master.dispatch(CounterAction::Inc(3)).expect("dispatch");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let (seq, a) = actions.next().await.expect("open").expect("nothing missed");
            seen.push((seq, format!("{a:?}")));
        }
        assert_eq!(
            seen,
            vec![
                (1, "Inc(1)".to_string()),
                (2, "Add(2, 5)".to_string()),
                (3, "Inc(3)".to_string())
            ]
        );
    })
    .await
    .expect("hang");
}
