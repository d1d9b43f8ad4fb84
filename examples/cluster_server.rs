//! The seed's Cluster Scheme, server side: the master serves its store on a
//! Unix socket with a login, forks one worker, and both dispatch now and
//! then. Run it in one terminal, `cluster_client` in another.
//!
//! Run: `cargo run --release --example cluster_server [-- ROUNDS]`

use redux_cluster::cluster;
use redux_cluster::server::ServeConfig;
use redux_cluster_examples::{TaskAction, Tasks};
use std::time::Duration;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("cluster_server: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let store = Tasks::builder()
        .on_error(|e| eprintln!("error: {e}"))
        .on_event(|e| eprintln!("event: {e}"))
        .start()?;
    let name = cluster::worker_id().map_or_else(|| "m".to_string(), |id| id.to_string());
    let (_server, _workers) = if cluster::is_master() {
        let server = store
            .serve(ServeConfig::unix("./mysock.sock").login("test1", "12345"))
            .await?;
        (Some(server), cluster::fork(1)?)
    } else {
        (None, Vec::new())
    };
    store.ready().await?;
    let printer = {
        let mut sub = store.subscribe();
        let name = name.clone();
        tokio::spawn(async move {
            while sub.changed().await.is_some() {
                let s = sub.state();
                println!(
                    " S1 | {name} | {{version: {:?}, done: {}}}",
                    s.version, s.done
                );
            }
        })
    };
    let every = if cluster::is_master() { 1900 } else { 3100 };
    let mut tick = tokio::time::interval(Duration::from_millis(every));
    for i in 0..rounds {
        tick.tick().await;
        let who = if cluster::is_master() {
            "MasterTest"
        } else {
            "WorkerTest"
        };
        store
            .commit(TaskAction::SetVersion(format!("{who}{i}")))
            .await?;
    }
    printer.abort();
    Ok(())
}
