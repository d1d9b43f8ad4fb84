//! Acknowledged means durable: a serving master killed with SIGKILL again
//! and again while client processes stream awaited commits. Real processes,
//! real sockets, real files with fdatasync, real `kill -9`.

use redux_cluster_tests::{parse_final, Proc};
use serial_test::serial;
use std::path::Path;
use std::time::Duration;
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
    let mut proc = Proc::spawn(
        env!("CARGO_BIN_EXE_crash_master"),
        dir,
        &[transport, mode, &port.to_string()],
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
                eprintln!("kill {kills} after {progress} progress lines: restarted at {:?}", master.loaded);
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
        let mut master = start_master(dir.path(), "unix", "count", 0).await;
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
