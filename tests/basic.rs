//! The basic scheme with real processes: this test process is the master;
//! workers are the `worker` binary, linked by inherited socket pairs.

use redux_cluster::{cluster, Error};
use redux_cluster_tests::{
    events, exited, parse_final, slot, Counter, CounterAction, Notes, Scoped,
};
use serial_test::serial;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

/// Guards against a hang; not a timing assertion.
const LIMIT: Duration = Duration::from_secs(120);

fn worker_cmd(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.args(args).stdout(Stdio::piped());
    cmd
}

fn start(args: &[&str]) -> (cluster::Worker, Lines<BufReader<ChildStdout>>) {
    let mut w = cluster::spawn_worker(worker_cmd(args)).expect("spawn worker");
    let out = w.take_stdout().expect("piped stdout");
    (w, BufReader::new(out).lines())
}

async fn line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    lines
        .next_line()
        .await
        .expect("read worker stdout")
        .expect("worker ended without a line")
}

async fn final_of(lines: &mut Lines<BufReader<ChildStdout>>) -> (u64, u64, u64) {
    let l = line(lines).await;
    parse_final(&l).unwrap_or_else(|| panic!("not a final line: {l}"))
}

fn errors() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&Error) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    (seen, move |e: &Error| {
        s.lock().expect("lock").push(e.to_string())
    })
}

async fn three_workers(store: Scoped<Counter>) {
    let k = 100_000u64;
    let expect = (4 * k).to_string();
    let ks = k.to_string();
    let mut ws: Vec<_> = (0..3).map(|_| start(&["count", &ks, &expect])).collect();
    for _ in 0..k {
        store
            .dispatch(CounterAction::Inc(0))
            .expect("master dispatch");
    }
    store
        .wait_until(|s| s.total == 4 * k)
        .await
        .expect("converge");
    let master = store.get_state();
    assert_eq!(master.by[0], k);
    for (w, lines) in &mut ws {
        let (total, digest, seq) = final_of(lines).await;
        assert_eq!(total, 4 * k, "worker {} total", w.id());
        assert_eq!(digest, master.digest, "worker {} saw another order", w.id());
        assert_eq!(seq, store.seq(), "worker {} seq", w.id());
        assert_eq!(master.by[slot(w.id())], k, "worker {} increments", w.id());
        w.wait().await.expect("worker exit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn three_workers_and_master_converge_in_one_order() {
    // No resync snapshots: every worker's digest comes from its own applies,
    // so equal digests prove one order everywhere.
    let store = Scoped(Counter::builder().resync(0).start().expect("master"));
    tokio::time::timeout(LIMIT, three_workers(store))
        .await
        .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn resync_snapshots_during_a_stream_never_double_apply() {
    // A snapshot every 1000 actions (the seed's default) while 400,000
    // actions stream: totals stay exact (the seed ends at 2101 for 2100).
    let store = Scoped(Counter::builder().resync(1000).start().expect("master"));
    tokio::time::timeout(LIMIT, three_workers(store))
        .await
        .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn snapshot_mode_converges() {
    let store = Scoped(
        Counter::builder()
            .mode(redux_cluster::Mode::Snapshot)
            .start()
            .expect("master"),
    );
    tokio::time::timeout(LIMIT, async {
        let (mut w, mut lines) = start(&["count", "20000", "40000"]);
        for _ in 0..20_000 {
            store.dispatch(CounterAction::Inc(0)).expect("dispatch");
        }
        let (total, digest, _) = final_of(&mut lines).await;
        store
            .wait_until(|s| s.total == 40_000)
            .await
            .expect("converge");
        assert_eq!(total, 40_000);
        assert_eq!(digest, store.get_state().digest);
        w.wait().await.expect("exit");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn killed_worker_is_reported_and_others_carry_on() {
    let (seen, hook) = events();
    let store = Scoped(Counter::builder().on_event(hook).start().expect("master"));
    tokio::time::timeout(LIMIT, async {
        // Survivors dispatch 20,000 each, then wait for the end marker.
        let mut victim = start(&["count", "100000000", "end"]);
        let mut a = start(&["count", "20000", "end"]);
        let mut b = start(&["count", "20000", "end"]);
        let victim_slot = slot(victim.0.id());
        store
            .wait_until(|s| s.by[victim_slot] >= 1000)
            .await
            .expect("victim streams");
        victim.0.kill().await.expect("kill");
        victim.0.link_closed().await;
        assert!(
            seen.lock()
                .expect("lock")
                .iter()
                .any(|e| e.contains(&format!("worker {}", victim.0.id()))),
            "the killed worker was not reported: {:?}",
            seen.lock().expect("lock")
        );
        let (sa, sb) = (slot(a.0.id()), slot(b.0.id()));
        store
            .wait_until(|s| s.by[sa] == 20_000 && s.by[sb] == 20_000)
            .await
            .expect("survivors");
        store.dispatch(CounterAction::End).expect("end");
        store.wait_until(|s| s.ended).await.expect("end applied");
        let master = store.get_state();
        for (w, lines) in [&mut a, &mut b] {
            let (total, digest, _) = final_of(lines).await;
            assert_eq!(
                (total, digest),
                (master.total, master.digest),
                "survivor {}",
                w.id()
            );
        }
        // A new worker joins after the crash and converges too.
        let mut late = start(&["follow", &master.total.to_string()]);
        assert_eq!(line(&mut late.1).await, "ready");
        let (total, digest, _) = final_of(&mut late.1).await;
        assert_eq!((total, digest), (master.total, master.digest));
        a.0.wait().await.expect("a exits");
        b.0.wait().await.expect("b exits");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn malformed_frame_disconnects_only_that_worker() {
    let store = Scoped(Counter::start_master().expect("master"));
    tokio::time::timeout(LIMIT, async {
        let (_bad, mut bad_lines) = start(&["garbage"]);
        let (mut good, mut good_lines) = start(&["count", "5000", "10000"]);
        assert_eq!(line(&mut bad_lines).await, "sent");
        assert_eq!(line(&mut bad_lines).await, "closed by master");
        for _ in 0..5000 {
            store.dispatch(CounterAction::Inc(0)).expect("dispatch");
        }
        let (total, digest, _) = final_of(&mut good_lines).await;
        assert_eq!(total, 10_000);
        assert_eq!(digest, store.get_state().digest);
        good.wait().await.expect("exit");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn schema_mismatch_is_refused_on_both_sides_and_other_stores_work() {
    let (seen, hook) = errors();
    let store = Scoped(Counter::builder().on_error(hook).start().expect("master"));
    let notes = Scoped(Notes::start_master().expect("notes"));
    tokio::time::timeout(LIMIT, async {
        let (mut w, mut lines) = start(&["drifted"]);
        let refused = line(&mut lines).await;
        let ours = store.schema_hash().to_string();
        assert!(refused.starts_with("refused: "), "{refused}");
        assert!(refused.contains("schema mismatch"), "{refused}");
        assert!(
            refused.contains(&ours),
            "worker's error names the master's hash: {refused}"
        );
        assert!(refused.contains("first difference"), "{refused}");
        assert_eq!(line(&mut lines).await, "notes ok");
        notes
            .wait_until(|n| n.lines.len() == 1)
            .await
            .expect("notes");
        let master_side = seen.lock().expect("lock").clone();
        assert!(
            master_side
                .iter()
                .any(|e| e.contains("schema mismatch") && e.contains(&ours)),
            "master's hook names both hashes: {master_side:?}"
        );
        w.wait().await.expect("exit");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn dispatch_before_the_link_is_up_is_delivered_in_order() {
    let store = Scoped(Counter::start_master().expect("master"));
    tokio::time::timeout(LIMIT, async {
        let (mut w, mut lines) = start(&["early", "3000", "3000"]);
        let (total, digest, _) = final_of(&mut lines).await;
        assert_eq!(total, 3000);
        assert_eq!(digest, store.get_state().digest);
        w.wait().await.expect("exit");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn awaited_commits_return_sequence_numbers() {
    let store = Scoped(Counter::start_master().expect("master"));
    tokio::time::timeout(LIMIT, async {
        let (mut w, mut lines) = start(&["commit", "2000", "2000"]);
        let (total, _, seq) = final_of(&mut lines).await;
        assert_eq!((total, seq), (2000, 2000));
        assert_eq!(store.seq(), 2000);
        w.wait().await.expect("exit");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_of_a_dead_master_reports_disconnected() {
    tokio::time::timeout(LIMIT, async {
        let mut master = tokio::process::Command::new(env!("CARGO_BIN_EXE_master"))
            .arg("die")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn master");
        let out = master.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let ready = lines.next_line().await.expect("read").expect("line");
        assert_eq!(ready, "ready");
        master.kill().await.expect("kill master");
        let l = lines.next_line().await.expect("read").expect("worker line");
        assert!(l.starts_with("disconnected: "), "{l}");
        assert!(l.ends_with("connected=false"), "{l}");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_exits_when_its_master_is_killed() {
    tokio::time::timeout(LIMIT, async {
        let mut master = tokio::process::Command::new(env!("CARGO_BIN_EXE_master"))
            .arg("orphan")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn master");
        let out = master.stdout.take().expect("stdout");
        let err = master.stderr.take().expect("stderr");
        let mut lines = BufReader::new(out).lines();
        let ready = lines.next_line().await.expect("read").expect("line");
        let pid = ready.strip_prefix("ready ").expect("ready <pid>");
        master.kill().await.expect("kill -9 the master");
        // The worker shares the master's stdout and stderr: they end only
        // when the worker has exited too.
        assert_eq!(lines.next_line().await.expect("read"), None);
        let mut said = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut BufReader::new(err), &mut said)
            .await
            .expect("stderr");
        assert!(
            said.contains("the master process is gone; exiting"),
            "{said}"
        );
        // Closing its files is part of exiting, not its end: wait for the
        // end itself (a pidfd turns readable when the process has exited).
        exited(pid.parse().expect("pid")).await;
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_diverging_worker_is_detected_reported_and_repaired() {
    use redux_cluster_tests::{Flaky, FlakyAction};
    let (seen, hook) = events();
    let store = Scoped(
        Flaky::builder()
            .resync(0)
            // Every catch-up point: the last pass before seq 100 may hold fewer
            // than any larger cadence, and the check must happen at 100.
            .digest_every(1)
            .on_event(hook)
            .start()
            .expect("master"),
    );
    tokio::time::timeout(LIMIT, async {
        let (mut w, mut lines) = start(&["flaky", "100"]);
        assert_eq!(line(&mut lines).await, "ready");
        for _ in 0..100 {
            store.dispatch(FlakyAction::Step).expect("dispatch");
        }
        let master = store.get_state();
        // The worker's own reducer gives another `noise`; the digest at
        // seq 100 catches it and a snapshot brings it to the master's.
        let want = format!("state 100 {}", master.noise);
        loop {
            let l = line(&mut lines).await;
            if l == want {
                break;
            }
            assert!(l.starts_with("state 100 "), "{l}");
        }
        let reports = seen.lock().expect("lock").clone();
        assert!(
            reports.iter().any(|e| e.contains("diverged at seq")),
            "the master reports the repair: {reports:?}"
        );
        w.kill().await.expect("kill");
    })
    .await
    .expect("hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial]
async fn a_worker_that_exits_is_an_event_not_an_error() {
    let (errors_seen, on_error) = errors();
    let (events_seen, on_event) = events();
    let store = Scoped(
        Counter::builder()
            .on_error(on_error)
            .on_event(on_event)
            .start()
            .expect("master"),
    );
    tokio::time::timeout(LIMIT, async {
        let (mut w, mut lines) = start(&["count", "10", "end"]);
        let id = w.id();
        let s = slot(id);
        store
            .wait_until(|st| st.by[s] == 10)
            .await
            .expect("applied");
        store.dispatch(CounterAction::End).expect("end");
        let fin = line(&mut lines).await;
        assert!(fin.starts_with("final "), "{fin}");
        w.link_closed().await;
        let events = events_seen.lock().expect("lock").clone();
        assert!(
            events.contains(&format!("worker {id} joined")),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("worker {id} left"))),
            "{events:?}"
        );
        assert!(errors_seen.lock().expect("lock").is_empty());
    })
    .await
    .expect("hang");
}
