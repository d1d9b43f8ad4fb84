//! The seed's basic scheme: one program; the master starts three workers
//! (copies of this same binary); every process creates the same store and
//! dispatches; every process prints the same final state.
//!
//! Run: `cargo run --release --example basic`

use redux_cluster::cluster;
use redux_cluster_examples::{TaskAction, Tasks};
use std::time::Instant;

const WORKERS: usize = 3;
const PER_PROCESS: u64 = 100_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The same call makes the master here, and joins it in a worker.
    let store = Tasks::start_master()?;
    let name = cluster::worker_id().map_or_else(|| "m".to_string(), |id| format!("w{id}"));
    let mut workers = if cluster::is_master() {
        println!("m | master, starting {WORKERS} workers");
        cluster::fork(WORKERS)?
    } else {
        Vec::new()
    };
    store.ready().await?;
    println!(
        "{name} | {:?}, connected = {}",
        store.roles(),
        store.connected()
    );

    let total = PER_PROCESS * (WORKERS as u64 + 1);
    let started = Instant::now();
    store.dispatch(TaskAction::SetVersion(format!("{name}Test")))?;
    for _ in 0..PER_PROCESS {
        store.dispatch(TaskAction::Done)?;
    }

    // Progress, from a subscription: changes coalesce, so this prints a few
    // lines however fast actions arrive.
    let mut sub = store.subscribe();
    let mut next_mark = total / 4;
    loop {
        let done = sub.state().done;
        if done >= next_mark {
            println!("{name} | {done} / {total}");
            next_mark += total / 4;
        }
        if done >= total {
            break;
        }
        sub.changed().await.ok_or("store closed")?;
    }
    let s = store.get_state();
    println!(
        "{name} | final: done = {}, last version = {:?}, seq = {}, {:.0} actions/s seen here",
        s.done,
        s.version,
        store.seq(),
        store.seq() as f64 / started.elapsed().as_secs_f64()
    );
    for w in &mut workers {
        w.wait().await?;
    }
    if cluster::is_master() {
        println!("m | all workers finished with the same state");
    }
    Ok(())
}
