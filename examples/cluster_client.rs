//! The seed's Cluster Scheme, client side: the master connects to the
//! server started by `cluster_server`, forks two workers and relays between
//! them and the server; everyone dispatches now and then.
//!
//! Run: `cargo run --release --example cluster_client [-- ROUNDS]`

use redux_cluster::client::ConnectConfig;
use redux_cluster::cluster;
use redux_cluster_examples::{TaskAction, Tasks};
use std::time::Duration;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("cluster_client: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let name = cluster::worker_id().map_or_else(|| "m".to_string(), |id| id.to_string());
    // The master is a client of the server; its workers join it as usual.
    let (store, _workers) = if cluster::is_master() {
        let store = Tasks::builder()
            .on_error(|e| eprintln!("error: {e}"))
            .on_event(|e| eprintln!("event: {e}"))
            .connect(ConnectConfig::unix("./mysock.sock").login("test1", "12345"))?;
        let workers = cluster::fork(2)?;
        (store, workers)
    } else {
        (Tasks::start_master()?, Vec::new())
    };
    store.ready().await?;
    println!(
        "{name} | roles {:?}, connected = {}",
        store.roles(),
        store.connected()
    );
    let printer = {
        let mut sub = store.subscribe();
        let name = name.clone();
        tokio::spawn(async move {
            while sub.changed().await.is_some() {
                let s = sub.state();
                println!("{name} | {{version: {:?}, done: {}}}", s.version, s.done);
            }
        })
    };
    let every = if cluster::is_master() { 1100 } else { 2200 };
    let mut tick = tokio::time::interval(Duration::from_millis(every));
    for i in 0..rounds {
        tick.tick().await;
        let who = if cluster::is_master() {
            "OneRemoteMasterTest"
        } else {
            "OneRemoteWorkerTest"
        };
        store
            .commit(TaskAction::SetVersion(format!("{who}{i}")))
            .await?;
    }
    printer.abort();
    Ok(())
}
