//! Acknowledged means durable: a serving master killed with SIGKILL again
//! and again while client processes stream awaited commits. Real processes,
//! real sockets, real files with fdatasync, real `kill -9`.

use redux_cluster_tests::{parse_final, Proc};
use serial_test::serial;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(300);
/// Awaited commits per client, and how many each keeps in flight.
const N: u64 = 6_000;
const W: u64 = 32;
const CLIENTS: u8 = 3;
const KILLS: usize = 10;

/// A running `crash_master`: the process, its `loaded` fields and target.
struct Master {
    proc: Proc,
    loaded: Vec<String>,
    target: String,
}

async fn start_master(dir: &Path, transport: &str, mode: &str, port: u16) -> Master {
    start_master_with(dir, transport, mode, port, "").await
}

/// As [`start_master`]; `extra` = "saved" makes it print `saved <seq>`.
async fn start_master_with(
    dir: &Path,
    transport: &str,
    mode: &str,
    port: u16,
    extra: &str,
) -> Master {
    let mut proc = Proc::spawn(
        env!("CARGO_BIN_EXE_crash_master"),
        dir,
        &[transport, mode, &port.to_string(), extra],
    );
    let loaded = proc.line().await;
    let loaded: Vec<String> = loaded
        .strip_prefix("loaded ")
        .unwrap_or_else(|| panic!("expected a loaded line: {loaded}"))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let serving = proc.line().await;
    let target = serving
        .strip_prefix("serving ")
        .unwrap_or_else(|| panic!("expected a serving line: {serving}"))
        .to_string();
    Master {
        proc,
        loaded,
        target,
    }
}

impl Master {
    /// `kill -9`, and wait until it is gone.
    async fn kill(mut self) {
        self.proc.child.start_kill().expect("kill the master");
        self.proc.child.wait().await.expect("wait for the master");
    }

    fn loaded_u64(&self, i: usize) -> u64 {
        self.loaded[i].parse().expect("a number")
    }
}

/// The port of a `tcp://ADDR#FP` target (0 for a socket path).
fn port_of(target: &str) -> u16 {
    target
        .strip_prefix("tcp://")
        .and_then(|t| t.split('#').next())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map_or(0, |a| a.port())
}

/// A random number, from the standard library's random hasher keys.
fn random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// Reads each client's lines into one channel, up to its `final` line.
fn merge(clients: Vec<Proc>) -> mpsc::UnboundedReceiver<(usize, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, mut p) in clients.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let line = p.line().await;
                let last = !line.starts_with("acked ");
                if tx.send((i, line)).is_err() || last {
                    break;
                }
            }
            p.exit().await;
        });
    }
    rx
}

async fn kill_the_master_under_awaited_commits(transport: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut master = start_master(dir.path(), transport, "journal", 0).await;
    let port = port_of(&master.target);
    let expect = N * u64::from(CLIENTS);
    let clients = (1..=CLIENTS)
        .map(|slot| {
            Proc::spawn(
                env!("CARGO_BIN_EXE_client"),
                &master.target,
                &[
                    "commits",
                    &slot.to_string(),
                    &N.to_string(),
                    &W.to_string(),
                    &expect.to_string(),
                ],
            )
        })
        .collect();
    let mut lines = merge(clients);
    let (mut kills, mut progress, mut next_kill) = (0, 0u64, 1u64);
    let mut finals = Vec::new();
    while finals.len() < usize::from(CLIENTS) {
        let (i, line) = lines.recv().await.expect("a client ended early");
        if line.starts_with("acked ") {
            progress += 1;
            if kills < KILLS && progress >= next_kill {
                master.kill().await;
                kills += 1;
                master = start_master(dir.path(), transport, "journal", port).await;
                eprintln!(
                    "kill {kills} after {progress} progress lines: restarted at {:?}",
                    master.loaded
                );
                // At random points: after 1 to 3 more progress lines.
                next_kill = progress + 1 + random() % 3;
            }
            continue;
        }
        let (total, digest, _) = parse_final(&line).unwrap_or_else(|| panic!("client {i}: {line}"));
        let rest: Vec<&str> = line.split_whitespace().collect();
        // final <total> <digest> <seq> by <n> rollbacks <r>
        assert_eq!(
            rest[5],
            N.to_string(),
            "client {i} saw its own commits applied exactly once: {line}"
        );
        assert_eq!(rest[7], "0", "client {i} was rolled back: {line}");
        finals.push((total, digest));
    }
    assert_eq!(kills, KILLS, "the master was killed {kills} times");
    for (total, digest) in &finals {
        assert_eq!(*total, expect, "every acked action once, none twice");
        assert_eq!((*total, *digest), finals[0], "all copies equal");
    }
    // What the master's files hold after one last crash.
    master.kill().await;
    let master = start_master(dir.path(), transport, "journal", port).await;
    assert_eq!(master.loaded_u64(1), expect, "{:?}", master.loaded);
    for slot in 1..=usize::from(CLIENTS) {
        assert_eq!(
            master.loaded_u64(1 + slot),
            N,
            "slot {slot}: {:?}",
            master.loaded
        );
    }
    master.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn journaling_master_killed_ten_times_over_a_unix_socket_loses_and_repeats_nothing() {
    tokio::time::timeout(LIMIT, kill_the_master_under_awaited_commits("unix"))
        .await
        .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn journaling_master_killed_ten_times_over_tcp_tls_loses_and_repeats_nothing() {
    tokio::time::timeout(LIMIT, kill_the_master_under_awaited_commits("tcp"))
        .await
        .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_master_without_a_journal_rolls_followers_back_and_says_so() {
    tokio::time::timeout(LIMIT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        // Saves every 1,000 actions: after 1,500 awaited commits the file
        // holds one save at 1,000..1,499, and the follower is ahead of it.
        let mut master = start_master_with(dir.path(), "unix", "count", 0, "saved").await;
        let old_epoch = master.loaded[5].clone();
        let mut client = Proc::spawn(
            env!("CARGO_BIN_EXE_client"),
            &master.target,
            &["ahead", "1", "1500"],
        );
        assert_eq!(client.line().await, "acked 1500");
        let saved = loop {
            let l = master.proc.line().await;
            let seq: u64 = l
                .strip_prefix("saved ")
                .expect("a saved line")
                .parse()
                .expect("seq");
            if seq >= 1000 {
                break seq;
            }
        };
        assert!(saved < 1500, "saved {saved}");
        master.kill().await;
        let master = start_master(dir.path(), "unix", "count", 0).await;
        assert_eq!(master.loaded_u64(0), saved);
        assert_ne!(
            master.loaded[5], old_epoch,
            "a master that lost history starts a new epoch"
        );
        let rolled = client.line().await;
        assert_eq!(
            rolled,
            format!("rolled {saved} {saved}"),
            "the follower converged to the master"
        );
        client.exit().await;
        master.kill().await;
    })
    .await
    .expect("within the limit");
}

/// Forwards a Unix socket to `upstream`. The `after`-th chunk of bytes from
/// the client (by then, dispatch batches) is forwarded only after that
/// connection has started dropping everything the server sends, so the
/// master applies that batch and its ack never arrives. `withheld` is then
/// sent the master's `saved` seq from just before that batch went in.
/// (Counted in chunks, not by time: the client cannot race past it.)
fn proxy(
    listen: &Path,
    upstream: &Path,
    after: usize,
    saved: tokio::sync::watch::Receiver<u64>,
    withheld: mpsc::UnboundedSender<u64>,
) -> tokio::task::JoinHandle<()> {
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(after));
    let listener = tokio::net::UnixListener::bind(listen).expect("bind the proxy");
    let upstream = upstream.to_path_buf();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::UnixStream::connect(&upstream).await else {
                continue; // master down: the client retries
            };
            let (left, saved, withheld) = (Arc::clone(&left), saved.clone(), withheld.clone());
            conns.spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let dropping = AtomicBool::new(false);
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let trigger = left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            == Ok(1);
                        let base = *saved.borrow();
                        if trigger {
                            dropping.store(true, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        if trigger {
                            let _ = withheld.send(base);
                        }
                    }
                };
                let down = down_until_deaf(&mut sr, &mut cw, || dropping.load(Ordering::SeqCst));
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    })
}

/// Copies what the server sends to the client until `deaf()` is once
/// true; from then on drops it all (the connection stays up).
async fn down_until_deaf(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    deaf: impl Fn() -> bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut deafened = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        deafened |= deaf();
        if !deafened && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn batches_applied_but_never_acked_are_applied_once_after_a_master_crash() {
    tokio::time::timeout(LIMIT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = start_master_with(dir.path(), "unix", "journal", 0, "saved").await;
        // The master's `saved` lines, read as they come.
        let (saved_tx, mut saved) = tokio::sync::watch::channel(0u64);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let mut lines = master.proc;
        let drain = tokio::spawn(async move {
            loop {
                tokio::select! {
                    l = lines.line() => {
                        let seq = l.strip_prefix("saved ").expect("a saved line").parse().expect("seq");
                        saved_tx.send_replace(seq);
                    }
                    _ = &mut stopped => return lines,
                }
            }
        });
        let via = dir.path().join("proxy.sock");
        let (withheld, mut base) = mpsc::unbounded_channel();
        // The handshake and join take a few chunks; the 20th is a batch.
        let _proxy = proxy(&via, Path::new(&master.target), 20, saved.clone(), withheld);
        let n = 4_000u64;
        let mut c = Proc::spawn(
            env!("CARGO_BIN_EXE_client"),
            &via,
            &["commits", "1", &n.to_string(), "32", &n.to_string()],
        );
        let base = base.recv().await.expect("a batch was withheld");
        // Journaled past where it stood when the unacked batch went in.
        saved.wait_for(|s| *s > base).await.expect("saved lines");
        stop.send(()).expect("the drain runs");
        let mut proc = drain.await.expect("the drain");
        proc.child.start_kill().expect("kill -9 the master");
        proc.child.wait().await.expect("wait for the master");
        let master = start_master(dir.path(), "unix", "journal", 0).await;
        assert!(master.loaded_u64(0) > base, "{:?}", master.loaded);
        let mut done = c.line().await;
        while done.starts_with("acked ") {
            done = c.line().await;
        }
        let parts: Vec<&str> = done.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"final"), "{done}");
        assert_eq!(parts[1], n.to_string(), "each commit applied once: {done}");
        assert_eq!(parts[5], n.to_string(), "{done}");
        c.exit().await;
        master.kill().await;
    })
    .await
    .expect("within the limit");
}

/// Forwards a Unix socket to `upstream`; while `deaf` is set, a connection
/// that sees it drops everything the server sends, for good (acks and
/// rejections never arrive), while what the client sends still goes up.
fn deaf_proxy(
    listen: &Path,
    upstream: &Path,
    deaf: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(listen).expect("bind the proxy");
    let upstream = upstream.to_path_buf();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::UnixStream::connect(&upstream).await else {
                continue; // master down: the client retries
            };
            let deaf = Arc::clone(&deaf);
            conns.spawn(async move {
                let (mut cr, mut sw) = (client, server);
                let (mut c_read, mut c_write) = cr.split();
                let (mut s_read, mut s_write) = sw.split();
                let up = tokio::io::copy(&mut c_read, &mut s_write);
                let down =
                    down_until_deaf(&mut s_read, &mut c_write, || deaf.load(Ordering::SeqCst));
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    })
}

/// A commit the validator rejected and one it accepted, applied (and
/// journaled) by a master whose answers never reached the client, then the
/// master SIGKILLed and started again from its journal: the client's
/// re-sent batches get the same answers as the first time, the rejection
/// with its reason, the other its seq, and nothing is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_rejection_is_answered_again_after_a_lost_ack_and_a_master_crash() {
    use redux_cluster::client::ConnectConfig;
    use redux_cluster::DispatchError;
    use redux_cluster_tests::{Counter, CounterAction};
    tokio::time::timeout(LIMIT, async {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = start_master_with(dir.path(), "unix", "journal", 0, "saved").await;
        let via = dir.path().join("proxy.sock");
        let deaf = Arc::new(AtomicBool::new(false));
        let _proxy = deaf_proxy(&via, Path::new(&master.target), Arc::clone(&deaf));
        let c = Counter::connect(ConnectConfig::unix(&via).relay(false)).expect("connect");
        c.ready().await.expect("ready");
        deaf.store(true, Ordering::SeqCst);
        let store = c.clone();
        let commits = tokio::spawn(async move {
            // Queued in this order: the rejected one first.
            tokio::join!(
                store.commit(CounterAction::Add(1, 0)),
                store.commit(CounterAction::Add(1, 5))
            )
        });
        // On disk: the accepted action, after the rejected one.
        let mut proc = master.proc;
        while proc.line().await != "saved 1" {}
        proc.child.start_kill().expect("kill -9 the master");
        proc.child.wait().await.expect("wait for the master");
        deaf.store(false, Ordering::SeqCst);
        let master = start_master(dir.path(), "unix", "journal", 0).await;
        assert_eq!(master.loaded_u64(0), 1, "{:?}", master.loaded);
        let (rejected, applied) = commits.await.expect("the commits");
        assert_eq!(
            rejected,
            Err(DispatchError::Rejected {
                reason: "adding nothing".into()
            })
        );
        assert_eq!(applied, Ok(1));
        assert_eq!((c.seq(), c.state().total), (1, 5));
        c.shutdown();
        master.kill().await;
    })
    .await
    .expect("within the limit");
}
