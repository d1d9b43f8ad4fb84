//! A store's backup and journal, end to end: real processes, real files,
//! real fsync, SIGKILL at random moments.

use redux_cluster::backup::{BackupError, KdfParams};
use redux_cluster::BackupConfig;
use redux_cluster_tests::{Counter, CounterAction, Scoped};
use serial_test::serial;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(120);

struct Proc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    fn start(path: &Path, mode: &str, n: u64, key: Option<&str>) -> Self {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_persist"));
        cmd.arg(path).arg(mode).arg(n.to_string());
        if let Some(k) = key {
            cmd.args(["--key", k]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        Self {
            child,
            lines: BufReader::new(out).lines(),
        }
    }

    async fn line(&mut self) -> Option<String> {
        self.lines.next_line().await.expect("read")
    }

    /// `loaded <seq> <total>`.
    async fn loaded(&mut self) -> (u64, u64) {
        let l = self.line().await.expect("a loaded line");
        let mut it = l
            .strip_prefix("loaded ")
            .unwrap_or_else(|| panic!("{l}"))
            .split_whitespace()
            .map(|x| x.parse::<u64>().expect("number"));
        (it.next().expect("seq"), it.next().expect("total"))
    }

    /// Runs to the end; returns the last durable seq.
    async fn finish(mut self) -> u64 {
        let mut last = 0;
        while let Some(l) = self.line().await {
            last = l
                .strip_prefix("durable ")
                .unwrap_or_else(|| panic!("{l}"))
                .parse()
                .expect("seq");
        }
        assert!(self.child.wait().await.expect("wait").success());
        last
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn restart_continues_from_the_backup_with_and_without_a_key() {
    for key in [None, Some("hunter2")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counter.backup");
        for mode in ["count", "journal"] {
            let path = path.with_extension(mode);
            tokio::time::timeout(LIMIT, async {
                let mut p = Proc::start(&path, mode, 170, key);
                assert_eq!(p.loaded().await, (0, 0));
                assert_eq!(p.finish().await, 170);
                let mut p = Proc::start(&path, mode, 170, key);
                assert_eq!(p.loaded().await, (170, 170), "{mode} {key:?}");
                assert_eq!(p.finish().await, 340);
            })
            .await
            .expect("hang");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn unreadable_backups_are_errors_never_a_fresh_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("counter.backup");
    tokio::time::timeout(LIMIT, async {
        let mut p = Proc::start(&path, "count", 34, Some("right"));
        p.loaded().await;
        p.finish().await;
    })
    .await
    .expect("hang");
    let fast = || BackupConfig::new(&path).kdf(KdfParams::fast_for_tests());

    let store = Scoped(Counter::start_master().expect("store"));
    match store.backup(fast().key("wrong")).await {
        Err(BackupError::WrongKey { .. }) => {}
        other => panic!("expected WrongKey, got {other:?}"),
    }
    match store.backup(fast()).await {
        Err(BackupError::KeyRequired { .. }) => {}
        other => panic!("expected KeyRequired, got {other:?}"),
    }
    assert_eq!(store.seq(), 0, "nothing was loaded");

    // Tamper with one body byte.
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    match store.backup(fast().key("right")).await {
        Err(e @ BackupError::Corrupt { .. }) => {
            assert!(e.to_string().contains("counter.backup"), "{e}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Only when asked, it is moved aside and the store starts empty.
    let b = store
        .backup(fast().key("right").replace_unreadable())
        .await
        .expect("replaced");
    assert_eq!(b.loaded_seq(), None);
    assert!(dir.path().join("counter.backup.unreadable").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_backup_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("counter.backup");
    tokio::time::timeout(LIMIT, async {
        let mut p = Proc::start(&path, "count", 17, None);
        p.loaded().await;
        p.finish().await;
    })
    .await
    .expect("hang");
    let store = Scoped(redux_cluster_tests::drifted::Counter::start_master().expect("store"));
    match store
        .backup(BackupConfig::new(&path).kdf(KdfParams::fast_for_tests()))
        .await
    {
        Err(e @ BackupError::SchemaMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&store.schema_hash().to_string()), "{msg}");
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn journal_survives_sigkill_with_every_durable_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("counter.backup");
    let mut acked = 0u64;
    tokio::time::timeout(Duration::from_secs(240), async {
        for round in 0..20u64 {
            let mut p = Proc::start(&path, "journal", 0, None);
            let (seq, total) = p.loaded().await;
            assert!(
                seq >= acked,
                "round {round}: loaded {seq}, but {acked} was durable"
            );
            assert_eq!(seq, total, "round {round}: no action applied twice or lost");
            // Kill after a random number of durable acks.
            let wait_for = 1 + rand_below(round, 6);
            for _ in 0..wait_for {
                let l = p.line().await.expect("durable line");
                acked = l
                    .strip_prefix("durable ")
                    .unwrap_or_else(|| panic!("{l}"))
                    .parse()
                    .expect("seq");
            }
            p.child.start_kill().expect("kill");
            // Lines already printed before the kill still count as acked.
            while let Some(l) = p.line().await {
                if let Some(s) = l.strip_prefix("durable ") {
                    acked = s.parse().expect("seq");
                }
            }
            let _ = p.child.wait().await;
        }
    })
    .await
    .expect("hang");
}

/// A small deterministic spread of kill points.
fn rand_below(seed: u64, n: u64) -> u64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn journal_durable_acks_are_awaitable_in_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Scoped(Counter::start_master().expect("store"));
    let backup = store
        .backup(BackupConfig::new(dir.path().join("c.backup")).journal())
        .await
        .expect("backup");
    tokio::time::timeout(LIMIT, async {
        for _ in 0..1000 {
            store.dispatch(CounterAction::Inc(0)).expect("dispatch");
        }
        let seq = store.commit(CounterAction::Inc(0)).await.expect("commit");
        assert_eq!(backup.durable(seq).await.expect("durable"), seq);
        assert!(backup.durable_seq() >= 1001);
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn close_flushes_a_snapshot_backup_and_a_journal() {
    for mode in ["count", "journal"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counter.backup");
        let cfg = || {
            let cfg = BackupConfig::new(&path).kdf(KdfParams::fast_for_tests());
            if mode == "journal" {
                cfg.journal()
            } else {
                // A window that the 10 actions below never fill.
                cfg.count(1_000_000)
            }
        };
        tokio::time::timeout(LIMIT, async {
            let store = Counter::start_master().expect("master");
            store.backup(cfg()).await.expect("backup");
            for _ in 0..10 {
                store.dispatch(CounterAction::Inc(1)).expect("dispatch");
            }
            store.close().await.expect("close");
            let again = Scoped(Counter::start_master().expect("master again"));
            let backup = again.backup(cfg()).await.expect("reload");
            assert_eq!(backup.loaded_seq(), Some(10), "{mode}");
            assert_eq!(again.state().total, 10, "{mode}");
        })
        .await
        .expect("within the limit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn commits_held_for_the_journal_end_when_the_store_shuts_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("counter.backup");
    tokio::time::timeout(LIMIT, async {
        let store = Counter::start_master().expect("master");
        store
            .backup(
                BackupConfig::new(&path)
                    .kdf(KdfParams::fast_for_tests())
                    .journal(),
            )
            .await
            .expect("backup");
        let commits: Vec<_> = (0..100)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.commit(CounterAction::Inc(1)).await })
            })
            .collect();
        store.shutdown();
        for c in commits {
            // Durable before the shutdown, or told it was not: never a hang.
            match c.await.expect("task") {
                Ok(_)
                | Err(redux_cluster::DispatchError::NotDurable(_))
                | Err(redux_cluster::DispatchError::Closed) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_store_that_holds_state_when_its_backup_starts_saves_it_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("counter.backup");
    let store = Scoped(Counter::start_master().expect("master"));
    for _ in 0..3 {
        store.dispatch(CounterAction::Inc(1)).expect("dispatch");
    }
    // A window so wide that only the start itself can have saved.
    let backup = store
        .backup(BackupConfig::new(&path).count(u64::MAX))
        .await
        .expect("backup");
    assert_eq!(backup.durable_seq(), 3);
    store.0.shutdown();
    drop(store);
    let again = Scoped(Counter::start_master().expect("master"));
    let loaded = again
        .backup(BackupConfig::new(&path))
        .await
        .expect("backup");
    assert_eq!(loaded.loaded_seq(), Some(3));
    assert_eq!(again.state().total, 3);
}
