//! A process that saves a counter store, for the persistence tests.
//!
//! Usage: `persist <path> <mode> <n> [--key PASSWORD]` where mode is
//! `count` (backup after every action) or `journal`. It prints
//! `loaded <seq> <total>`, then dispatches `n` increments (forever when `n`
//! is 0), printing `durable <seq>` each time an awaited action is on disk,
//! and exits after the last.

use redux_cluster::backup::KdfParams;
use redux_cluster::BackupConfig;
use redux_cluster_tests::{Counter, CounterAction};
use std::io::Write;

#[tokio::main]
async fn main() {
    redux_cluster_tests::main_of(run()).await;
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("path")?;
    let mode = args.get(1).ok_or("mode")?;
    let n: u64 = args.get(2).ok_or("n")?.parse()?;
    let mut cfg = BackupConfig::new(path).kdf(KdfParams::fast_for_tests());
    cfg = if mode == "journal" {
        cfg.journal()
    } else {
        cfg.count(1)
    };
    if let Some(i) = args.iter().position(|a| a == "--key") {
        cfg = cfg.key(args.get(i + 1).ok_or("--key PASSWORD")?);
    }
    let store = Counter::start_master()?;
    let backup = store.backup(cfg).await?;
    let s = store.get_state();
    println!("loaded {} {}", store.seq(), s.total);
    std::io::stdout().flush()?;
    let mut i = 0u64;
    while n == 0 || i < n {
        // Batches of 16 fire-and-forget, then one awaited.
        for _ in 0..16 {
            store.dispatch(CounterAction::Inc(1))?;
        }
        let seq = store.commit(CounterAction::Inc(1)).await?;
        backup.durable(seq).await?;
        println!("durable {seq}");
        std::io::stdout().flush()?;
        i += 17;
    }
    Ok(())
}
