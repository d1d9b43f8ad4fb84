//! Hubs on a real NATS JetStream cluster: three `nats-server` processes
//! (R3 stream), hub processes (tests/bin/hub.rs) each serving a Unix
//! socket, and client processes (tests/bin/client.rs `commits`) that fail
//! over between the hubs. Hubs and NATS nodes are killed with SIGKILL.
//!
//! Exactly-once is checked by counting: each client increments its own
//! slot with awaited commits, so every acknowledged commit shows as one
//! increment there, and every copy (clients, hubs) must end with the same
//! total, order-sensitive digest and seq.

use redux_cluster::hub::HubConfig;
use redux_cluster::Reducer;
use redux_cluster_tests::nats_cluster::NatsCluster;
use redux_cluster_tests::{drifted, Proc};
use std::path::{Path, PathBuf};

const HUB: &str = env!("CARGO_BIN_EXE_hub");
const CLIENT: &str = env!("CARGO_BIN_EXE_client");
/// Guards against a hang; not a timing assertion.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `final <total> <digest> <seq> …` of a hub or a client, and the number
/// after `by` (clients) or `behind` (hubs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Final {
    total: u64,
    digest: u64,
    seq: u64,
    extra: u64,
}

async fn final_of(p: &mut Proc) -> Final {
    parse(&p.line().await)
}

/// A `final <total> <digest> <seq> <word> <n> …` line.
fn parse(line: &str) -> Final {
    let w: Vec<&str> = line.split_whitespace().collect();
    let n = |i: usize| -> u64 {
        w.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a final line: {line}"))
    };
    assert_eq!(w.first(), Some(&"final"), "not a final line: {line}");
    Final {
        total: n(1),
        digest: n(2),
        seq: n(3),
        extra: n(5),
    }
}

/// A `commits` client's lines up to its `final <total> <digest> <seq> by
/// <n> …`.
async fn client_final(p: &mut Proc) -> Final {
    loop {
        let line = p.line().await;
        if line.starts_with("final") {
            return parse(&line);
        }
        assert!(line.starts_with("acked"), "client: {line}");
    }
}

/// Every client's and hub's final line: all equal, `expect` in all, each
/// client's slot holding its `per_client` commits once.
async fn all_equal(hubs: &mut [Proc], clients: &mut [Proc], expect: u64, per_client: u64) {
    let mut cfinals = Vec::new();
    for c in clients {
        cfinals.push(client_final(c).await);
    }
    let mut hfinals = Vec::new();
    for p in hubs {
        hfinals.push(final_of(p).await);
    }
    assert_eq!(cfinals[0].total, expect);
    assert_equal(&hfinals, &cfinals, per_client);
}

struct Hubs {
    dir: tempfile::TempDir,
    urls: String,
}

impl Hubs {
    fn new(nats: &NatsCluster) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            urls: nats.urls().join(","),
        }
    }

    fn socket(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("hub{i}.sock"))
    }

    /// Starts hub `i` and waits for its `ready <seq>`.
    async fn start(&self, i: usize, every: u64, expect: u64) -> (Proc, u64) {
        let sock = self.socket(i);
        let _ = std::fs::remove_file(&sock);
        let mut p = Proc::spawn(
            HUB,
            &self.urls,
            &[path(&sock), &every.to_string(), &expect.to_string()],
        );
        let line = p.line().await;
        let seq = line
            .strip_prefix("ready ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("hub {i}: {line}"));
        (p, seq)
    }

    /// A client process committing `n` increments as `slot`, `w` at a
    /// time, through the first of `via` and failing over to the others.
    fn client(&self, via: &[usize], slot: u8, n: u64, w: u64, expect: u64) -> Proc {
        let targets: Vec<String> = via
            .iter()
            .map(|&i| path(&self.socket(i)).to_string())
            .collect();
        Proc::spawn(
            CLIENT,
            targets.join("|"),
            &[
                "commits",
                &slot.to_string(),
                &n.to_string(),
                &w.to_string(),
                &expect.to_string(),
            ],
        )
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// Reads lines until `acked <k>` with k ≥ `at`.
async fn acked(p: &mut Proc, at: u64) {
    loop {
        let line = p.line().await;
        match line
            .strip_prefix("acked ")
            .and_then(|k| k.parse::<u64>().ok())
        {
            Some(k) if k >= at => return,
            Some(_) => {}
            None => panic!("expected `acked …`, got: {line}"),
        }
    }
}

/// Every copy ends equal, and each client's slot holds exactly its own
/// acknowledged commits.
fn assert_equal(finals: &[Final], clients: &[Final], per_client: u64) {
    let first = finals.first().or(clients.first()).copied().expect("copies");
    for f in finals.iter().chain(clients) {
        assert_eq!(
            (f.total, f.digest, f.seq),
            (first.total, first.digest, first.seq),
            "copies differ: {finals:?} {clients:?}"
        );
    }
    for c in clients {
        assert_eq!(
            c.extra, per_client,
            "a client's commits applied {} times, not {per_client}",
            c.extra
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hub_s_clients_fail_over_and_nothing_acked_is_lost_or_repeated() {
    let nats = NatsCluster::start(3);
    let hubs = Hubs::new(&nats);
    let (k, w) = (1500u64, 4u64);
    let expect = 6 * k;
    let mut procs = Vec::new();
    for i in 0..3 {
        procs.push(hubs.start(i, 1000, expect).await.0);
    }
    let mut clients = Vec::new();
    for i in 0..3 {
        for j in 0..2 {
            let slot = (1 + 2 * i + j) as u8;
            clients.push(hubs.client(&[i, (i + 1) % 3, (i + 2) % 3], slot, k, w, expect));
        }
    }
    // Hub 0's clients are committing: kill it under them.
    acked(&mut clients[0], 500).await;
    acked(&mut clients[1], 500).await;
    let mut dead = procs.remove(0);
    dead.child.start_kill().expect("SIGKILL hub 0");
    dead.child.wait().await.expect("reap hub 0");
    all_equal(&mut procs, &mut clients, expect, k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nats_node_loses_nothing_acked_and_writes_go_on() {
    let mut nats = NatsCluster::start(3);
    let hubs = Hubs::new(&nats);
    let (k, w) = (3000u64, 4u64);
    let expect = 2 * k;
    let mut procs = Vec::new();
    for i in 0..2 {
        procs.push(hubs.start(i, 1000, expect).await.0);
    }
    let mut clients = vec![
        hubs.client(&[0, 1], 1, k, w, expect),
        hubs.client(&[1, 0], 2, k, w, expect),
    ];
    acked(&mut clients[0], 500).await;
    nats.kill(0);
    // Writes go on with two of three nodes.
    acked(&mut clients[0], 1500).await;
    acked(&mut clients[1], 1500).await;
    nats.restart(0);
    all_equal(&mut procs, &mut clients, expect, k).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_restarted_from_nothing_rebuild_the_state_from_snapshots_and_the_log() {
    let nats = NatsCluster::start(3);
    let hubs = Hubs::new(&nats);
    let (k, w) = (2000u64, 4u64);
    let mut procs = Vec::new();
    for i in 0..2 {
        procs.push(hubs.start(i, 150, k).await.0);
    }
    let mut client = hubs.client(&[0, 1], 1, k, w, k);
    let before = final_of(&mut procs[0]).await;
    assert_eq!(final_of(&mut procs[1]).await, before);
    assert_eq!(client_final(&mut client).await.extra, k);
    drop(client);
    for mut p in procs.drain(..) {
        p.child.start_kill().expect("SIGKILL a hub");
        p.child.wait().await.expect("reap a hub");
    }
    for i in 0..2 {
        let (mut p, seq) = hubs.start(i, 150, k).await;
        // Caught up before it serves.
        assert_eq!(seq, before.seq);
        assert_eq!(final_of(&mut p).await, before);
        procs.push(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_hub_catches_up_from_a_snapshot_after_the_log_was_trimmed() {
    let nats = NatsCluster::start(3);
    let hubs = Hubs::new(&nats);
    // One commit in flight: one log message each, so the log holds many
    // more messages than the paused hub's consumer had been handed (a
    // pull of a few hundred may still land in its socket while it is
    // stopped) and the trimmed part lies beyond them.
    let (k, w) = (3000u64, 1u64);
    let (mut paused, _) = hubs.start(0, 100, k).await;
    let (mut busy, _) = hubs.start(1, 100, k).await;
    let pid = paused.child.id().expect("a pid") as i32;
    // SAFETY: signals to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let mut client = hubs.client(&[1], 1, k, w, k);
    let done = final_of(&mut busy).await;
    assert_eq!(client_final(&mut client).await.extra, k);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let caught_up = final_of(&mut paused).await;
    assert_eq!(
        (caught_up.total, caught_up.digest, caught_up.seq),
        (done.total, done.digest, done.seq)
    );
    assert!(
        caught_up.extra >= 1,
        "the paused hub should have started over from a snapshot"
    );
    println!(
        "paused hub: peak RSS {} KiB",
        redux_cluster_tests::status_kib(pid as u32, "VmHWM:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_of_another_schema_is_refused_with_both_hashes() {
    let nats = NatsCluster::start(1);
    let hubs = Hubs::new(&nats);
    let sock = hubs.socket(0);
    let mut first = Proc::spawn(HUB, &hubs.urls, &[path(&sock), "1000", "1", "1"]);
    let line = first.line().await;
    assert!(line.starts_with("ready"), "{line}");
    let drifted = drifted::Counter::builder()
        .hub(HubConfig::new(nats.urls()).replicas(1))
        .expect("start");
    let err = drifted.ready().await.expect_err("another schema");
    let text = err.to_string();
    assert!(
        matches!(err, redux_cluster::JoinError::SchemaMismatch(_)),
        "{err}"
    );
    for hash in [
        drifted::Counter::SCHEMA,
        redux_cluster_tests::Counter::SCHEMA,
    ] {
        assert!(text.contains(&hash.to_string()), "{text}");
    }
    drifted.shutdown();
}

#[tokio::test]
async fn an_unreachable_log_times_out_ready_with_the_cause_and_a_bad_address_is_refused() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let hub = redux_cluster_tests::Notes::builder()
        .hub(
            HubConfig::new([format!("nats://127.0.0.1:{port}")])
                .connect_timeout(Some(std::time::Duration::from_millis(500))),
        )
        .expect("start");
    match hub.ready().await {
        Err(redux_cluster::JoinError::Timeout { last_failure, .. }) => {
            let cause = last_failure.expect("the last failure");
            assert!(cause.contains("NATS"), "{cause}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    hub.shutdown();
    let bad = redux_cluster_tests::Notes::builder()
        .hub(HubConfig::new(["nats://[not an address"]))
        .expect("start");
    match bad.ready().await {
        Err(redux_cluster::JoinError::Misconfigured(why)) => {
            assert!(why.contains("not an address"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    bad.shutdown();
}

/// An in-process `Notes` hub on a one-node cluster, with no limit on
/// `ready()`: a refusal must end it by itself.
fn single_node_hub(cfg: HubConfig) -> redux_cluster::Store<redux_cluster_tests::Notes> {
    redux_cluster_tests::Notes::builder()
        .hub(cfg.replicas(1).connect_timeout(None))
        .expect("start")
}

#[tokio::test]
async fn a_refused_nats_login_is_a_typed_error_not_a_retry() {
    let nats = NatsCluster::start_with(1, &["--user", "rc", "--pass", "s3cret"]);
    let none = single_node_hub(HubConfig::new(nats.urls()));
    assert_eq!(
        none.ready().await,
        Err(redux_cluster::JoinError::LoginRequired)
    );
    none.shutdown();
    let wrong = single_node_hub(HubConfig::new(nats.urls()).login("rc", "guess"));
    assert_eq!(
        wrong.ready().await,
        Err(redux_cluster::JoinError::WrongCredentials)
    );
    wrong.shutdown();
    let right = single_node_hub(HubConfig::new(nats.urls()).login("rc", "s3cret"));
    right.ready().await.expect("the right login");
    right
        .commit(redux_cluster_tests::NotesAction::Push("in".into()))
        .await
        .expect("a commit through the log");
    right.shutdown();
}

#[tokio::test]
async fn a_hub_verifies_the_nats_servers_certificate() {
    redux_cluster_tests::log_from_env();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = redux_cluster_tests::TestCa::new("nats test CA");
    let (cert, key) = ca.sign(
        &["localhost", "127.0.0.1"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write a PEM file");
        p.to_str().expect("UTF-8").to_string()
    };
    let (cert, key, ca_pem) = (
        file("server.pem", &cert),
        file("server.key", &key),
        file("ca.pem", &ca.pem),
    );
    let other = file(
        "other.pem",
        &redux_cluster_tests::TestCa::new("another CA").pem,
    );
    let nats = NatsCluster::start_with(1, &["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let forged = single_node_hub(HubConfig::new(nats.urls()).tls_ca(&other));
    match forged.ready().await {
        Err(redux_cluster::JoinError::CertificateRejected(why)) => {
            assert!(why.contains("NATS"), "{why}")
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    forged.shutdown();
    let trusted = single_node_hub(HubConfig::new(nats.urls()).tls_ca(&ca_pem));
    trusted.ready().await.expect("the server's CA is trusted");
    trusted
        .commit(redux_cluster_tests::NotesAction::Push("over TLS".into()))
        .await
        .expect("a commit through the log over TLS");
    trusted.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_s_forked_workers_commit_through_it_and_exit_with_it() {
    let nats = NatsCluster::start(3);
    let hubs = Hubs::new(&nats);
    let (workers, per) = (2u64, 500u64);
    let expect = workers * per;
    let (mut other, _) = hubs.start(1, 1000, expect).await;
    let sock = hubs.socket(0);
    let mut parent = Proc::spawn(
        HUB,
        &hubs.urls,
        &[
            path(&sock),
            "1000",
            &expect.to_string(),
            "3",
            &workers.to_string(),
            &per.to_string(),
        ],
    );
    let mut pids = Vec::new();
    let mut finals = Vec::new();
    // `ready`, a `worker <pid>` per worker and the hub's `final`, in any
    // order (the workers share the hub's stdout).
    while finals.is_empty() || pids.len() < workers as usize {
        let line = parent.line().await;
        if let Some(pid) = line.strip_prefix("worker ") {
            pids.push(pid.parse::<i32>().expect("a pid"));
        } else if line.starts_with("final") {
            let f = parse(&line);
            finals.push((f.total, f.digest, f.seq));
        } else {
            assert!(line.starts_with("ready"), "hub 0: {line}");
        }
    }
    let there = final_of(&mut other).await;
    assert_eq!(finals[0], (there.total, there.digest, there.seq));
    assert_eq!(there.total, expect, "every worker commit applied once");
    // The hub dies: its workers follow it out.
    parent.child.start_kill().expect("SIGKILL the hub");
    parent.child.wait().await.expect("reap the hub");
    for pid in pids {
        redux_cluster_tests::exited(pid).await;
    }
}

/// A store of its own for the validation test (other tests here hold
/// `Counter` and `Notes` in this process).
#[derive(
    redux_cluster::ClusterStore,
    Clone,
    Default,
    Debug,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
)]
struct Ledger {
    total: u64,
}

#[redux_cluster::reducer(Ledger)]
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum LedgerAction {
    Add(u64),
}

fn reduce(state: &mut Ledger, action: &LedgerAction) {
    let LedgerAction::Add(n) = action;
    state.total += n;
}

/// A hub checks actions before they go into the log: its own (`commit`
/// fails, `dispatch_all` applies the rest) and its followers' (the batch
/// goes in without the rejected action, the rejection with it, and the
/// follower is told after the log gave the batch back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_validates_before_the_log_and_tells_the_dispatcher() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::server::ServeConfig;
    use redux_cluster::{DispatchError, Event, Peer};
    let nats = NatsCluster::start(1);
    let peers = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Peer>::new()));
    let seen = std::sync::Arc::clone(&peers);
    let hub = Ledger::builder()
        .validate(move |_, action, peer| {
            seen.lock().expect("lock").push(peer.clone());
            match action {
                LedgerAction::Add(0) => Err("adding nothing".into()),
                _ => Ok(()),
            }
        })
        .hub(HubConfig::new(nats.urls()).replicas(1))
        .expect("hub");
    let rejected = || {
        Err::<u64, _>(DispatchError::Rejected {
            reason: "adding nothing".into(),
        })
    };
    tokio::time::timeout(LIMIT, async {
        hub.ready().await.expect("ready");
        assert_eq!(hub.commit(LedgerAction::Add(0)).await, rejected());
        assert_eq!(
            hub.dispatch_all(&[
                LedgerAction::Add(1),
                LedgerAction::Add(0),
                LedgerAction::Add(2)
            ]),
            rejected().map(drop)
        );
        assert_eq!(hub.commit(LedgerAction::Add(4)).await, Ok(3));
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("hub.sock");
        let _server = hub.serve(ServeConfig::unix(&sock)).await.expect("serve");
        let (tx, mut told) = tokio::sync::mpsc::unbounded_channel();
        let client = Ledger::builder()
            .on_event(move |e| {
                if let Event::DispatchRejected { reason } = e {
                    let _ = tx.send(reason.clone());
                }
            })
            .connect(ConnectConfig::unix(&sock).relay(false))
            .expect("client");
        client.ready().await.expect("client ready");
        assert_eq!(client.commit(LedgerAction::Add(0)).await, rejected());
        client
            .dispatch_all(&[
                LedgerAction::Add(10),
                LedgerAction::Add(0),
                LedgerAction::Add(20),
            ])
            .expect("dispatch");
        assert_eq!(client.commit(LedgerAction::Add(30)).await, Ok(6));
        assert_eq!(told.recv().await.as_deref(), Some("adding nothing"));
        assert_eq!(client.state().total, 67);
        hub.wait_for(6).await.expect("the hub applied it");
        assert_eq!((hub.seq(), hub.state().total), (6, 67));
        let peers = peers.lock().expect("lock").clone();
        assert!(peers.contains(&Peer::Local), "{peers:?}");
        assert!(
            peers.iter().any(|p| matches!(p, Peer::Unix { .. })),
            "{peers:?}"
        );
        client.shutdown();
    })
    .await
    .expect("hang");
    hub.shutdown();
}
