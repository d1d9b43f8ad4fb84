//! Per-action validation on the master: a rejected action is applied
//! nowhere, its dispatcher learns why (an error for a commit, an event for a
//! fire-and-forget dispatch), the other actions of its batch are applied
//! with their own seqs, and the validator is told who sent each action.
//! Over every transport: in the process, a forked worker's pipe, a Unix
//! socket, QUIC and TCP + TLS with client certificates, and a relay's
//! worker. (Browsers: the Chromium end-to-end test; hubs: tests/hub.rs; a
//! rejection answered again after a reconnect and a master crash:
//! tests/crash.rs.)

use redux_cluster::client::ConnectConfig;
use redux_cluster::server::ServeConfig;
use redux_cluster::{cluster, DispatchError, Event, Peer, Reject, Store};
use redux_cluster_tests::{events, Counter, CounterAction, Scoped};
use serial_test::serial;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(120);

/// Who the validator saw, in order.
type Seen = Arc<Mutex<Vec<Peer>>>;

/// A master whose validator rejects adding nothing, and a total above
/// 1,000 (so an action is checked against the state the ones before it
/// made); it records every sender.
fn master(on_event: impl Fn(&Event) + Send + Sync + 'static) -> (Scoped<Counter>, Seen) {
    let seen = Seen::default();
    let s = Arc::clone(&seen);
    let store = Counter::builder()
        .on_event(on_event)
        .validate(move |state, action, peer| {
            s.lock().expect("lock").push(peer.clone());
            match action {
                CounterAction::Add(_, 0) => Err(Reject::new("adding nothing")),
                CounterAction::Add(_, n) if state.total + n > 1_000 => {
                    Err(format!("{} would pass 1000", state.total + n).into())
                }
                _ => Ok(()),
            }
        })
        .start()
        .expect("master");
    (Scoped(store), seen)
}

fn rejected(reason: &str) -> Result<u64, DispatchError> {
    Err(DispatchError::Rejected {
        reason: reason.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn the_master_s_own_rejected_actions_fail_and_take_no_seq() {
    let (events, hook) = events();
    let (store, seen) = master(hook);
    assert_eq!(
        store.commit(CounterAction::Add(0, 0)).await,
        rejected("adding nothing")
    );
    assert_eq!(
        store.dispatch(CounterAction::Add(0, 0)),
        Err(DispatchError::Rejected {
            reason: "adding nothing".into()
        })
    );
    // The second is checked against the state after the first.
    let res = store.dispatch_all(&[
        CounterAction::Add(0, 600),
        CounterAction::Add(0, 600),
        CounterAction::Add(0, 7),
    ]);
    assert_eq!(
        res,
        Err(DispatchError::Rejected {
            reason: "1200 would pass 1000".into()
        })
    );
    assert_eq!((store.seq(), store.state().total), (2, 607));
    assert_eq!(store.commit(CounterAction::Inc(0)).await, Ok(3));
    // Committed together: each gets its own seq or its own rejection.
    assert_eq!(
        store
            .commit_all(&[
                CounterAction::Add(0, 1),
                CounterAction::Add(0, 0),
                CounterAction::Add(0, 2),
            ])
            .await,
        vec![Ok(4), rejected("adding nothing"), Ok(5)]
    );
    assert!(seen.lock().expect("lock").iter().all(|p| *p == Peer::Local));
    let events = events.lock().expect("lock").clone();
    let rejections: Vec<&String> = events.iter().filter(|e| e.contains("rejected")).collect();
    assert_eq!(rejections.len(), 4, "{events:?}");
    assert!(
        rejections[0].contains("this process") && rejections[0].contains("adding nothing"),
        "{rejections:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_forked_worker_s_rejected_actions_are_applied_nowhere() {
    let (store, seen) = master(|_| {});
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.arg("rejected").stdout(std::process::Stdio::piped());
    let mut w = cluster::spawn_worker(cmd).expect("spawn worker");
    let id = w.id();
    let mut lines = BufReader::new(w.take_stdout().expect("stdout")).lines();
    let mut next = async || {
        tokio::time::timeout(LIMIT, lines.next_line())
            .await
            .expect("hang")
            .expect("read")
            .expect("a line")
    };
    assert_eq!(
        next().await,
        r#"commit Rejected { reason: "adding nothing" }"#
    );
    assert_eq!(
        next().await,
        "event the master rejected a dispatched action: adding nothing"
    );
    // Add(2), Add(3), then the commit of Add(5): seqs 1, 2, 3.
    assert_eq!(next().await, "committed 3 10");
    assert_eq!((store.seq(), store.state().total), (3, 10));
    let worker = Peer::Worker { id };
    assert!(
        seen.lock().expect("lock").iter().all(|p| *p == worker),
        "{:?}",
        seen.lock()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_relay_s_worker_learns_of_its_rejected_actions() {
    // master (this process) <- Unix socket <- relay (a client process) <-
    // pipe <- worker (forked by the relay): the rejections travel back
    // down both links.
    let (store, _) = master(|_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sock");
    let _server = store.serve(ServeConfig::unix(&path)).await.expect("serve");
    let mut relay = redux_cluster_tests::Proc::spawn(
        env!("CARGO_BIN_EXE_client"),
        &path,
        &["relay", env!("CARGO_BIN_EXE_worker")],
    );
    tokio::time::timeout(LIMIT, async {
        assert_eq!(
            relay.line().await,
            r#"commit Rejected { reason: "adding nothing" }"#
        );
        assert_eq!(
            relay.line().await,
            "event the master rejected a dispatched action: adding nothing"
        );
        assert_eq!(relay.line().await, "committed 3 10");
    })
    .await
    .expect("hang");
    store.wait_for(3).await.expect("applied");
    assert_eq!((store.seq(), store.state().total), (3, 10));
}

/// A client store of `store` over `cfg`: a commit of a rejected action
/// fails; a fire-and-forget batch with one rejected action in the middle
/// applies the others and reports the rejection as an event; seqs count
/// only what was applied; both sides end equal.
async fn a_client_s_rejections(store: &Store<Counter>, cfg: ConnectConfig) {
    let (events, hook) = events();
    let (tx, mut reported) = tokio::sync::mpsc::unbounded_channel();
    let c = Scoped(
        Counter::builder()
            .on_event(move |e| {
                hook(e);
                if let Event::DispatchRejected { reason } = e {
                    let _ = tx.send(reason.clone());
                }
            })
            .connect(cfg.relay(false))
            .expect("connect"),
    );
    tokio::time::timeout(LIMIT, async {
        c.ready().await.expect("ready");
        assert_eq!(
            c.commit(CounterAction::Add(1, 0)).await,
            rejected("adding nothing")
        );
        c.dispatch_all(&[
            CounterAction::Add(1, 2),
            CounterAction::Add(1, 0),
            CounterAction::Add(1, 3),
        ])
        .expect("dispatch");
        assert_eq!(c.commit(CounterAction::Add(1, 5)).await, Ok(3));
        assert_eq!(reported.recv().await.as_deref(), Some("adding nothing"));
        assert_eq!(
            c.commit_all(&[CounterAction::Add(1, 0), CounterAction::Inc(1)])
                .await,
            vec![rejected("adding nothing"), Ok(4)]
        );
        assert_eq!(
            c.commit(CounterAction::Add(1, 991)).await,
            rejected("1002 would pass 1000")
        );
        assert_eq!((c.seq(), c.state().total), (4, 11));
        assert_eq!((store.seq(), store.state().clone()), (4, c.state().clone()));
        assert_eq!(
            events
                .lock()
                .expect("lock")
                .iter()
                .filter(|e| e.contains("rejected"))
                .count(),
            1
        );
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_unix_client_s_rejections_and_its_uid_and_login() {
    let (store, seen) = master(|_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sock");
    let _server = store
        .serve(ServeConfig::unix(&path).login("test1", "12345"))
        .await
        .expect("serve");
    a_client_s_rejections(&store, ConnectConfig::unix(&path).login("test1", "12345")).await;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let pid = std::process::id() as i32;
    let seen = seen.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    for p in &seen {
        assert_eq!(
            *p,
            Peer::Unix {
                uid,
                pid: Some(pid),
                login: Some("test1".into())
            }
        );
    }
}

async fn a_remote_client_s_rejections(quic: bool) {
    use redux_cluster::transport::tls::{ClientAuth, PemSource};
    let ca = redux_cluster_tests::TestCa::new("cluster ca");
    let (store, seen) = master(|_| {});
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let identity = ca.server_identity(&["localhost"]);
    let cfg = if quic {
        ServeConfig::quic(any, identity)
    } else {
        ServeConfig::tcp_tls(any, identity)
    };
    let server = store
        .serve(cfg.client_auth(ClientAuth::RequireCa(PemSource::Bytes(
            ca.pem.clone().into_bytes(),
        ))))
        .await
        .expect("serve");
    let addr = server.local_addr().expect("addr");
    let cfg = if quic {
        ConnectConfig::quic(addr, "localhost", ca.trust())
    } else {
        ConnectConfig::tcp_tls(addr, "localhost", ca.trust())
    };
    a_client_s_rejections(&store, cfg.client_identity(ca.client_identity())).await;
    let seen = seen.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    for p in &seen {
        let Peer::Remote {
            addr,
            login,
            certificate,
        } = p
        else {
            panic!("not a remote peer: {p:?}");
        };
        assert!(addr.ip().is_loopback(), "{p:?}");
        assert_eq!(*login, None);
        assert_eq!(certificate.as_deref(), Some("CN=client.test"), "{p:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_quic_client_s_rejections_and_its_certificate() {
    a_remote_client_s_rejections(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_tcp_tls_client_s_rejections_and_its_certificate() {
    a_remote_client_s_rejections(false).await;
}
