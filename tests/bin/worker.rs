//! A worker process for the tests, started by a test acting as master.
//!
//! Usage: `worker <scenario> [k] [expect]`
//! - `count K EXPECT`: dispatch K increments, wait until the counter reaches
//!   EXPECT, print `final <total> <digest> <seq>`.
//! - `commit K EXPECT`: as `count`, awaiting each commit.
//! - `drifted`: join with a drifted schema for `Counter`, print the refusal,
//!   then use `Notes` normally and print `notes ok`.
//! - `flaky N`: join the non-deterministic `Flaky` store; print
//!   `state <total> <noise>` each time its state changes at seq N.
//! - `garbage`: write bytes that are not a frame to the channel, then wait.
//! - `count K end`: dispatch K, wait for the `End` action, print final.
//! - `follow EXPECT`: dispatch nothing, wait for EXPECT, print final.
//! - `early K EXPECT`: dispatch K before the link is up (no await), then as `count`.
//! - `rejected`: against a master that rejects `Add(_, 0)`: a commit of one
//!   (prints `commit <error>`), a dispatch of `[Add(id, 2), Add(id, 0),
//!   Add(id, 3)]` (prints `event <text>` for the rejection reported), then
//!   a commit of `Add(id, 5)` (prints `committed <seq> <total here>`).

use redux_cluster::{cluster, transport::pipe, Store};
use redux_cluster_tests::{drifted, Counter, CounterAction, Notes, NotesAction};
use std::io::Write;

#[tokio::main]
async fn main() {
    redux_cluster_tests::log_from_env();
    if let Err(e) = run().await {
        eprintln!("worker error: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 { args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0) };
    let id = redux_cluster_tests::slot(cluster::worker_id().unwrap_or(0)) as u8;
    match args.first().map(String::as_str) {
        Some("count") | Some("early") | Some("commit") => {
            let store = Counter::start_master()?;
            let early = args[0] == "early";
            if !early {
                store.ready().await?;
            }
            for _ in 0..num(1) {
                if args[0] == "commit" {
                    store.commit(CounterAction::Inc(id)).await?;
                } else {
                    store.dispatch(CounterAction::Inc(id))?;
                }
            }
            if args.get(2).map(String::as_str) == Some("end") {
                let seq = store.wait_until(|s| s.ended).await?;
                let s = store.get_state();
                println!("final {} {} {}", s.total, s.digest, seq);
                std::io::stdout().flush()?;
                return Ok(());
            }
            finish(&store, num(2)).await
        }
        Some("rejected") => {
            let (events, hook) = redux_cluster_tests::events();
            let rejected = std::sync::Arc::new(tokio::sync::Notify::new());
            let wake = std::sync::Arc::clone(&rejected);
            let store = Counter::builder()
                .on_event(move |e| {
                    hook(e);
                    if matches!(e, redux_cluster::Event::DispatchRejected { .. }) {
                        wake.notify_one();
                    }
                })
                .start()?;
            store.ready().await?;
            let err = store
                .commit(CounterAction::Add(id, 0))
                .await
                .err()
                .ok_or("the commit was not rejected")?;
            println!("commit {err:?}");
            store.dispatch_all(&[
                CounterAction::Add(id, 2),
                CounterAction::Add(id, 0),
                CounterAction::Add(id, 3),
            ])?;
            rejected.notified().await;
            let text = events
                .lock()
                .map_err(|_| "lock")?
                .iter()
                .find(|e| e.contains("rejected"))
                .cloned()
                .ok_or("no event")?;
            println!("event {text}");
            let seq = store.commit(CounterAction::Add(id, 5)).await?;
            println!("committed {seq} {}", store.state().total);
            std::io::stdout().flush()?;
            Ok(())
        }
        Some("follow") => {
            let store = Counter::start_master()?;
            store.ready().await?;
            println!("ready");
            finish(&store, num(1)).await
        }
        Some("drifted") => {
            let bad = drifted::Counter::start_master()?;
            let notes = Notes::start_master()?;
            let err = bad
                .ready()
                .await
                .err()
                .ok_or("the drifted store was accepted")?;
            println!("refused: {err}");
            notes.ready().await?;
            notes
                .commit(NotesAction::Push(format!("from worker {id}")))
                .await?;
            println!("notes ok");
            Ok(())
        }
        Some("flaky") => {
            // Prints the state whenever it changes at seq EXPECT.
            let store = redux_cluster_tests::Flaky::start_master()?;
            store.ready().await?;
            let mut sub = store.subscribe();
            println!("ready");
            std::io::stdout().flush()?;
            let at = num(1);
            loop {
                let (seq, s) = store.with(|s| s.clone());
                if seq == at {
                    println!("state {} {}", s.total, s.noise);
                    std::io::stdout().flush()?;
                }
                if sub.changed().await.is_none() {
                    return Ok(());
                }
            }
        }
        Some("garbage") => {
            let s = pipe::open_inherited()?;
            let (_r, mut w) = pipe::split(s);
            use tokio::io::AsyncWriteExt;
            // A length prefix announcing 4 GiB, then junk.
            w.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await?;
            w.flush().await?;
            println!("sent");
            std::io::stdout().flush()?;
            // Stay alive until the master closes the channel on us.
            let mut buf = [0u8; 16];
            use tokio::io::AsyncReadExt;
            let mut r = _r;
            while r.read(&mut buf).await? > 0 {}
            println!("closed by master");
            Ok(())
        }
        _ => Err("unknown scenario".into()),
    }
}

async fn finish(store: &Store<Counter>, expect: u64) -> Result<(), Box<dyn std::error::Error>> {
    let seq = store.wait_until(|s| s.total >= expect).await?;
    let s = store.get_state();
    println!("final {} {} {}", s.total, s.digest, seq);
    std::io::stdout().flush()?;
    Ok(())
}
