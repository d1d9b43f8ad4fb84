//! A master process for the tests that need the master to be a child (so a
//! test can kill it). It forks workers from this same binary.
//!
//! Usage: `master die`: fork one worker; the worker prints `ready`, then
//! commits in a loop until a commit fails and prints
//! `disconnected: <error> connected=<bool>` (it outlives its master).
//! `master orphan`: the worker prints `ready <pid>` and waits; with its
//! master gone it exits on its own. The master just waits to be killed.

use redux_cluster::cluster;
use redux_cluster_tests::{Counter, CounterAction};
use std::io::Write;

#[tokio::main]
async fn main() {
    redux_cluster_tests::log_from_env();
    let store = match Counter::start_master() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("start failed: {e}");
            std::process::exit(2);
        }
    };
    if cluster::is_master() {
        let _workers = match cluster::fork(1) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("fork failed: {e}");
                std::process::exit(2);
            }
        };
        // Wait to be killed.
        std::future::pending::<()>().await;
    } else {
        let orphan = std::env::args().nth(1).as_deref() == Some("orphan");
        if !orphan {
            cluster::outlive_master();
        }
        if let Err(e) = store.ready().await {
            eprintln!("join failed: {e}");
            std::process::exit(2);
        }
        if orphan {
            println!("ready {}", std::process::id());
            let _ = std::io::stdout().flush();
            std::future::pending::<()>().await;
        }
        println!("ready");
        let _ = std::io::stdout().flush();
        loop {
            if let Err(e) = store.commit(CounterAction::Inc(1)).await {
                println!("disconnected: {e} connected={}", store.connected());
                let _ = std::io::stdout().flush();
                return;
            }
        }
    }
}
