//! A hub process for the hub tests: the test counter store as a hub of a
//! NATS JetStream stream, served on a Unix socket.
//!
//! Usage: `hub <nats-urls,comma-separated> <socket> <snapshot-every> <expect> [replicas [workers per-worker]]`.
//! With `workers`, the hub forks that many workers (this same program);
//! each prints `worker <pid>`, commits `per-worker` increments in its own
//! slot, and then stays until its hub is gone (it exits with it).
//! Prints `ready <seq>` once it has caught up with the log and serves;
//! then, once the counter reaches `expect`,
//! `final <total> <digest> <seq> behind <n>` (n: times it fell behind a
//! trimmed log and started over from a snapshot); then runs until its
//! stdin closes.

use redux_cluster::cluster;
use redux_cluster::hub::HubConfig;
use redux_cluster::server::ServeConfig;
use redux_cluster_tests::{Counter, CounterAction};
use std::io::Read;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

static BEHIND: AtomicU64 = AtomicU64::new(0);

#[tokio::main]
async fn main() {
    redux_cluster_tests::main_of(run()).await;
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let urls: Vec<String> = args
        .first()
        .ok_or("nats urls")?
        .split(',')
        .map(String::from)
        .collect();
    let socket = args.get(1).ok_or("socket path")?;
    let every: u64 = args.get(2).ok_or("snapshot-every")?.parse()?;
    let expect: u64 = args.get(3).ok_or("expect")?.parse()?;
    let replicas: usize = args.get(4).map_or(Ok(3), |r| r.parse())?;
    let workers: usize = args.get(5).map_or(Ok(0), |r| r.parse())?;
    let per_worker: u64 = args.get(6).map_or(Ok(0), |r| r.parse())?;
    let store = Counter::builder()
        .on_event(|e| {
            if matches!(e, redux_cluster::Event::HubFellBehind { .. }) {
                BEHIND.fetch_add(1, Ordering::SeqCst);
            }
            eprintln!("hub event: {e}");
        })
        .hub(
            HubConfig::new(urls)
                .snapshot_every(every)
                .replicas(replicas)
                // The tests load the machine: a generous bound, still one.
                .connect_timeout(Some(std::time::Duration::from_secs(120))),
        )?;
    store.ready().await?;
    if let Some(id) = cluster::worker_id() {
        println!("worker {}", std::process::id());
        std::io::stdout().flush()?;
        let slot = redux_cluster_tests::slot(id) as u8;
        for _ in 0..per_worker {
            store.commit(CounterAction::Inc(slot)).await?;
        }
        std::future::pending::<()>().await;
    }
    let _server = store.serve(ServeConfig::unix(socket)).await?;
    println!("ready {}", store.seq());
    std::io::stdout().flush()?;
    let _workers = cluster::fork(workers)?;
    let seq = store.wait_until(|s| s.total >= expect).await?;
    let s = store.get_state();
    println!(
        "final {} {} {} behind {}",
        s.total,
        s.digest,
        seq,
        BEHIND.load(Ordering::SeqCst)
    );
    std::io::stdout().flush()?;
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink)
    })
    .await;
    Ok(())
}
