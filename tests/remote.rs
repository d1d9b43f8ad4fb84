//! Remote links over QUIC and TCP + TLS on loopback, with real client
//! processes (the `client` binary) and in-process clients.

use redux_cluster::ban::BanPolicy;
use redux_cluster::client::ConnectConfig;
use redux_cluster::server::{ServeConfig, Server};
use redux_cluster::transport::tls::{Fingerprint, ServerIdentity, Trust};
use redux_cluster::JoinError;
use redux_cluster_tests::{parse_final, Counter, CounterAction, Proc, Scoped};
use serial_test::serial;
use std::net::SocketAddr;
use std::time::Duration;

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    Quic,
    Tcp,
}

fn config(net: Net, addr: SocketAddr, identity: ServerIdentity) -> ServeConfig {
    match net {
        Net::Quic => ServeConfig::quic(addr, identity),
        Net::Tcp => ServeConfig::tcp_tls(addr, identity),
    }
}

fn target(net: Net, server: &Server, fp: Fingerprint) -> String {
    let addr = server.local_addr().expect("addr");
    match net {
        Net::Quic => format!("quic://{addr}#{fp}"),
        Net::Tcp => format!("tcp://{addr}#{fp}"),
    }
}

fn identity() -> ServerIdentity {
    ServerIdentity::generate(&["localhost".to_owned()]).expect("identity")
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// A `client` process (tests/bin/client.rs) connected to `target`.
fn client(target: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Proc {
    Proc::spawn(env!("CARGO_BIN_EXE_client"), target, args)
}

async fn three_clients(net: Net) {
    let store = Scoped(Counter::builder().resync(0).start().expect("master"));
    let id = identity();
    let fp = id.fingerprint();
    let server = store
        .serve(config(net, any_port(), id).login("test1", "12345"))
        .await
        .expect("serve");
    let t = target(net, &server, fp);
    tokio::time::timeout(LIMIT, async {
        let k = 100_000u64;
        let mut cs: Vec<Proc> = (1..=3u8)
            .map(|slot| {
                client(
                    &t,
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
        for c in &mut cs {
            let l = c.line().await;
            let (total, digest, _) = parse_final(&l).unwrap_or_else(|| panic!("{l}"));
            assert_eq!((total, digest), (3 * k, master.digest), "{net:?}");
        }
        for c in cs {
            c.exit().await;
        }
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn three_clients_converge_over_quic() {
    three_clients(Net::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn three_clients_converge_over_tcp_tls() {
    three_clients(Net::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn wrong_fingerprint_is_refused_before_any_credential() {
    let store = Scoped(Counter::start_master().expect("master"));
    let server = store
        .serve(ServeConfig::quic(any_port(), identity()).login("test1", "12345"))
        .await
        .expect("serve");
    let wrong = identity().fingerprint();
    let t = target(Net::Quic, &server, wrong);
    tokio::time::timeout(LIMIT, async {
        let mut c = client(&t, &["join", "--login", "test1", "12345"]);
        let l = c.line().await;
        assert!(
            l.starts_with("refused: ") && l.contains("fingerprint"),
            "{l}"
        );
        c.exit().await;
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn wrong_name_under_ca_trust_is_refused() {
    // The server's self-signed certificate as the CA, and a name it does
    // not carry.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Scoped(Counter::start_master().expect("master"));
    let id =
        ServerIdentity::load_or_generate(dir.path(), &["localhost".to_owned()]).expect("identity");
    let server = store
        .serve(ServeConfig::quic(any_port(), id))
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    let ca = redux_cluster::transport::tls::PemSource::File(
        dir.path().join(redux_cluster::transport::tls::CERT_FILE),
    );
    tokio::time::timeout(LIMIT, async {
        let good = Counter::connect(
            ConnectConfig::quic(addr, "localhost", Trust::CaPem(ca.clone())).relay(false),
        )
        .expect("connect");
        good.ready().await.expect("the right name is admitted");
        let bad = Counter::connect(
            ConnectConfig::quic(addr, "example.com", Trust::CaPem(ca)).relay(false),
        )
        .expect("connect");
        let err = bad.ready().await.expect_err("the wrong name is refused");
        assert!(err.to_string().contains("example.com"), "{err}");
        assert!(matches!(err, JoinError::CertificateRejected(_)), "{err:?}");
        // A server name that is no name at all: a configuration error,
        // given at once rather than retried for ever.
        let unusable = Counter::connect(
            ConnectConfig::quic(
                addr,
                "not a name!",
                Trust::Fingerprint(Fingerprint([1; 32])),
            )
            .relay(false),
        )
        .expect("connect");
        let err = unusable.ready().await.expect_err("refused");
        assert!(matches!(err, JoinError::Misconfigured(_)), "{err:?}");
        good.shutdown();
        bad.shutdown();
        unusable.shutdown();
    })
    .await
    .expect("hang");
}

/// A master serving over TCP+TLS with one login, banning after 2 failures.
async fn banning_server() -> (Scoped<Counter>, Server, Fingerprint) {
    let store = Scoped(Counter::start_master().expect("master"));
    let id = identity();
    let fp = id.fingerprint();
    let policy = BanPolicy {
        max_failures: 2,
        ..BanPolicy::default()
    };
    let server = store
        .serve(
            config(Net::Tcp, any_port(), id)
                .login("test1", "12345")
                .ban_policy(policy),
        )
        .await
        .expect("serve");
    (store, server, fp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn wrong_password_is_refused_and_counted_toward_the_ban() {
    let (_store, server, fp) = banning_server().await;
    let t = target(Net::Tcp, &server, fp);
    tokio::time::timeout(LIMIT, async {
        let mut c = client(&t, &["join", "--login", "test1", "nope"]);
        let l = c.line().await;
        assert!(l.contains("wrong login or password"), "{l}");
        c.exit().await;
        let mut c = client(&t, &["join", "--login", "test1", "nope"]);
        let l = c.line().await;
        assert!(l.contains("too many failed logins"), "{l}");
        c.exit().await;
        // 127.0.0.1 is banned now, whatever the password.
        let mut c = client(&t, &["join", "--login", "test1", "12345"]);
        let l = c.line().await;
        assert!(l.contains("too many failed logins"), "{l}");
        c.exit().await;
    })
    .await
    .expect("hang");
}

async fn restart_same_port(net: Net) {
    let store = Scoped(Counter::builder().resync(0).start().expect("master"));
    let id = identity();
    let fp = id.fingerprint();
    let server = store
        .serve(config(net, any_port(), id.clone()))
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    let t = target(net, &server, fp);
    let mut server = Some(server);
    tokio::time::timeout(LIMIT, async {
        let k = 100_000u64;
        let mut a = client(&t, &["count", "1", &k.to_string(), &(2 * k).to_string()]);
        let mut b = client(&t, &["count", "2", &k.to_string(), &(2 * k).to_string()]);
        for round in 1..=2u64 {
            store
                .wait_until(|s| s.by[1] > round * 10_000 && s.by[2] > round * 10_000)
                .await
                .expect("streaming");
            if let Some(s) = server.take() {
                s.shutdown().await;
            }
            server = Some(
                store
                    .serve(config(net, addr, id.clone()))
                    .await
                    .expect("same port"),
            );
        }
        store
            .wait_until(|s| s.total >= 2 * k)
            .await
            .expect("converge");
        let master = store.get_state();
        assert_eq!(
            master.total,
            2 * k,
            "{net:?}: nothing lost, nothing repeated"
        );
        for c in [&mut a, &mut b] {
            let l = c.line().await;
            let (total, digest, _) = parse_final(&l).unwrap_or_else(|| panic!("{l}"));
            assert_eq!((total, digest), (2 * k, master.digest));
        }
        a.exit().await;
        b.exit().await;
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn quic_endpoint_restarted_on_the_same_port_loses_nothing() {
    restart_same_port(Net::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn tcp_tls_endpoint_restarted_on_the_same_port_loses_nothing() {
    restart_same_port(Net::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn two_hundred_quic_clients_converge() {
    let store = Scoped(Counter::start_master().expect("master"));
    let id = identity();
    let fp = id.fingerprint();
    let server = store
        .serve(ServeConfig::quic(any_port(), id))
        .await
        .expect("serve");
    let t = target(Net::Quic, &server, fp);
    tokio::time::timeout(LIMIT, async {
        let mut procs: Vec<Proc> = (1..=4u8)
            .map(|slot| client(&t, &["many", "50", &slot.to_string(), "50", "10000"]))
            .collect();
        store
            .wait_until(|s| s.total == 10_000)
            .await
            .expect("converge");
        let digest = store.get_state().digest;
        for p in &mut procs {
            let l = p.line().await;
            let (total, d, _) = parse_final(&l).unwrap_or_else(|| panic!("{l}"));
            assert_eq!((total, d), (10_000, digest));
        }
        for p in procs {
            p.exit().await;
        }
    })
    .await
    .expect("hang");
}

/// A client closed with `close()` is reported by the master as a clean
/// departure (a goodbye, then TLS close_notify or the QUIC finish), one
/// dropped without it as lost.
async fn clean_close_is_a_clean_departure(net: Net) {
    use redux_cluster::Event;
    use std::sync::{Arc, Mutex};
    let left = Arc::new(Mutex::new(Vec::new()));
    let told = Arc::new(tokio::sync::Notify::new());
    let (l, t) = (Arc::clone(&left), Arc::clone(&told));
    let store = Scoped(
        Counter::builder()
            .on_event(move |e| {
                if let Event::PeerLeft { clean, reason, .. } = e {
                    l.lock().expect("lock").push((*clean, reason.clone()));
                    t.notify_one();
                }
            })
            .start()
            .expect("master"),
    );
    let id = identity();
    let fp = id.fingerprint();
    let server = store
        .serve(config(net, any_port(), id))
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    let connect = || {
        let trust = Trust::Fingerprint(fp);
        let cfg = match net {
            Net::Quic => ConnectConfig::quic(addr, "localhost", trust),
            Net::Tcp => ConnectConfig::tcp_tls(addr, "localhost", trust),
        };
        Counter::connect(cfg.relay(false)).expect("connect")
    };
    tokio::time::timeout(LIMIT, async {
        let c = connect();
        c.commit(CounterAction::Inc(1)).await.expect("commit");
        c.close().await.expect("close");
        told.notified().await;
        let (clean, reason) = left.lock().expect("lock").remove(0);
        assert!(clean, "a closed client was reported lost: {reason}");
        // Shut down without a goodbye: the link just ends.
        let c = connect();
        c.commit(CounterAction::Inc(1)).await.expect("commit");
        c.shutdown();
        told.notified().await;
        let (clean, reason) = left.lock().expect("lock").remove(0);
        if net == Net::Tcp {
            assert!(!clean, "no close_notify, yet reported clean: {reason}");
        }
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn clean_close_is_a_clean_departure_over_tcp_tls() {
    clean_close_is_a_clean_departure(Net::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn clean_close_is_a_clean_departure_over_quic() {
    clean_close_is_a_clean_departure(Net::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn in_process_client_dispatch_commits() {
    let store = Scoped(Counter::start_master().expect("master"));
    let id = identity();
    let fp = id.fingerprint();
    let server = store
        .serve(ServeConfig::quic(any_port(), id))
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    tokio::time::timeout(LIMIT, async {
        let c = Counter::connect(
            ConnectConfig::quic(addr, "localhost", Trust::Fingerprint(fp)).relay(false),
        )
        .expect("connect");
        c.ready().await.expect("ready");
        let seq = c.commit(CounterAction::Add(3, 5)).await.expect("commit");
        assert_eq!(seq, 1);
        assert_eq!(c.state().total, 5);
        assert_eq!(store.state().total, 5);
        c.shutdown();
    })
    .await
    .expect("hang");
}

/// Mutual TLS at the store level: the server requires a client certificate
/// signed by its CA, and a store holding one joins and commits.
async fn mutual_tls_store_commits(net: Net) {
    use redux_cluster::transport::tls::{ClientAuth, PemSource};
    let ca = redux_cluster_tests::TestCa::new("cluster ca");
    let store = Scoped(Counter::start_master().expect("master"));
    let server = store
        .serve(
            config(net, any_port(), ca.server_identity(&["localhost"])).client_auth(
                ClientAuth::RequireCa(PemSource::Bytes(ca.pem.clone().into_bytes())),
            ),
        )
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    tokio::time::timeout(LIMIT, async {
        let cfg = match net {
            Net::Quic => ConnectConfig::quic(addr, "localhost", ca.trust()),
            Net::Tcp => ConnectConfig::tcp_tls(addr, "localhost", ca.trust()),
        };
        let c = Counter::connect(cfg.client_identity(ca.client_identity()).relay(false))
            .expect("connect");
        c.ready().await.expect("ready");
        let seq = c.commit(CounterAction::Add(4, 7)).await.expect("commit");
        assert_eq!(seq, 1);
        assert_eq!(c.state().total, 7);
        assert_eq!(store.state().total, 7);
        c.shutdown();
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn mutual_tls_store_commits_over_quic() {
    mutual_tls_store_commits(Net::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn mutual_tls_store_commits_over_tcp_tls() {
    mutual_tls_store_commits(Net::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_banned_address_is_listed_and_can_be_unbanned() {
    use redux_cluster::ban::BanKey;
    let (_store, server, fp) = banning_server().await;
    let t = target(Net::Tcp, &server, fp);
    let addr = server.local_addr().expect("addr");
    let in_process = |password: &str| {
        let cfg = ConnectConfig::tcp_tls(addr, "localhost", Trust::Fingerprint(fp))
            .login("test1", password)
            .relay(false);
        Counter::builder().connect(cfg).expect("client")
    };
    tokio::time::timeout(LIMIT, async {
        // Refusals are typed: code can tell a wrong password from a ban.
        let wrong = in_process("wrong");
        assert_eq!(
            wrong.ready().await,
            Err(redux_cluster::JoinError::WrongCredentials)
        );
        wrong.shutdown();
        let mut c = client(&t, &["join", "--login", "test1", "wrong"]);
        let l = c.line().await;
        assert!(l.starts_with("refused: "), "{l}");
        c.exit().await;
        let right = in_process("12345");
        assert!(
            matches!(
                right.ready().await,
                Err(redux_cluster::JoinError::Banned { .. })
            ),
            "banned"
        );
        right.shutdown();
        let bans = server.bans();
        let loopback = BanKey::Ip("127.0.0.1".parse().expect("ip"));
        assert_eq!(bans.len(), 1, "{bans:?}");
        assert_eq!(bans[0].0, loopback);
        assert!(bans[0].1 > 3 * 3600 - 60, "{bans:?}");
        let mut c = client(&t, &["join", "--login", "test1", "12345"]);
        assert!(c.line().await.contains("too many failed logins"));
        c.exit().await;
        assert!(server.unban(loopback));
        assert!(server.bans().is_empty());
        let mut c = client(&t, &["join", "--login", "test1", "12345"]);
        assert_eq!(c.line().await, "joined");
        c.exit().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn every_refusal_has_its_join_error() {
    use redux_cluster_tests::{drifted, Notes};
    let (_store, server, fp) = banning_server().await;
    let addr = server.local_addr().expect("addr");
    let cfg = || {
        ConnectConfig::tcp_tls(addr, "localhost", Trust::Fingerprint(fp))
            .relay(false)
            .connect_timeout(Some(Duration::from_secs(20)))
    };
    tokio::time::timeout(LIMIT, async {
        // A right login: in.
        let ok = Counter::connect(cfg().login("test1", "12345")).expect("connect");
        assert_eq!(ok.ready().await, Ok(()));
        // The same name with another schema.
        let drift = drifted::Counter::connect(cfg().login("test1", "12345")).expect("connect");
        match drift.ready().await {
            Err(JoinError::SchemaMismatch(m)) => {
                assert!(m.to_string().contains("Counter"), "{m}")
            }
            other => panic!("expected a schema mismatch: {other:?}"),
        }
        // A store the server does not serve.
        let notes = Notes::connect(cfg().login("test1", "12345")).expect("connect");
        assert!(
            matches!(notes.ready().await, Err(JoinError::UnknownStore { .. })),
            "expected an unknown store"
        );
        // No login at a server that needs one.
        let anonymous = Counter::connect(cfg()).expect("connect");
        assert_eq!(anonymous.ready().await, Err(JoinError::LoginRequired));
        // A wrong password, then (the policy bans after 2) a ban, which
        // then holds for the right password too.
        let wrong = Counter::connect(cfg().login("test1", "nope")).expect("connect");
        assert_eq!(wrong.ready().await, Err(JoinError::WrongCredentials));
        let wrong = Counter::connect(cfg().login("test1", "nope")).expect("connect");
        assert!(
            matches!(wrong.ready().await, Err(JoinError::Banned { .. })),
            "expected a ban"
        );
        let late = Counter::connect(cfg().login("test1", "12345")).expect("connect");
        match late.ready().await {
            Err(JoinError::Banned { detail }) => assert!(detail.contains("seconds"), "{detail}"),
            other => panic!("expected a ban: {other:?}"),
        }
        // Those already in stay in.
        assert_eq!(ok.commit(CounterAction::Inc(1)).await, Ok(1));
        for s in [ok, anonymous, wrong, late] {
            s.shutdown();
        }
        drift.shutdown();
        notes.shutdown();
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_server_that_shuts_down_says_why() {
    use redux_cluster::Event;
    use std::sync::{Arc, Mutex};
    let store = Scoped(Counter::start_master().expect("master"));
    let id = identity();
    let fp = id.fingerprint();
    let server = store
        .serve(config(Net::Tcp, any_port(), id))
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    let causes = Arc::new(Mutex::new(Vec::new()));
    let told = Arc::new(tokio::sync::Notify::new());
    let (c, t) = (Arc::clone(&causes), Arc::clone(&told));
    let client = Counter::builder()
        .on_event(move |e| {
            if let Event::Reconnecting { cause } = e {
                c.lock().expect("lock").push(cause.clone());
                t.notify_one();
            }
        })
        .connect(ConnectConfig::tcp_tls(addr, "localhost", Trust::Fingerprint(fp)).relay(false))
        .expect("client");
    tokio::time::timeout(LIMIT, async {
        client.ready().await.expect("ready");
        server.shutdown().await;
        loop {
            if let Some(cause) = causes.lock().expect("lock").first() {
                assert!(cause.contains("the server is shutting down"), "{cause}");
                break;
            }
            told.notified().await;
        }
    })
    .await
    .expect("hang");
    client.shutdown();
}
