//! The seed's backup: stop and restart this program, and the counter
//! continues where it was.
//!
//! Run: `cargo run --release --example backup` (twice). The file is
//! `./counter.backup`, encrypted with the password given as the first
//! argument (default `password-for-encrypter`).

use redux_cluster::BackupConfig;
use redux_cluster_examples::{TaskAction, Tasks};
use std::time::Duration;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("backup example: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "password-for-encrypter".into());
    let store = Tasks::start_master()?;
    // At most 1000 actions or 5 seconds of work can be lost, as the seed's
    // `count` and `timeout` options say.
    let backup = store
        .backup(
            BackupConfig::new("counter.backup")
                .key(&key)
                .count(1000)
                .timeout(Duration::from_secs(5)),
        )
        .await?;
    match backup.loaded_seq() {
        Some(seq) => println!("loaded: done = {} (seq {seq})", store.state().done),
        None => println!("no backup yet: starting at 0"),
    }
    let mut last = 0;
    for _ in 0..1000 {
        last = store.commit(TaskAction::Done).await?;
    }
    backup.durable(last).await?;
    println!(
        "saved: done = {} (seq {last}); run me again to continue",
        store.state().done
    );
    Ok(())
}
