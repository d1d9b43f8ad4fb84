//! The main demo: a store, dispatches, and a subscriber that prints changes.
//!
//! Run: `cargo run --release --example cluster`

use redux_cluster_examples::{TaskAction, Tasks};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Tasks::start_master()?;
    println!("store {} ({:?}), schema {}", store.id(), store.roles(), store.schema_hash());

    let mut sub = store.subscribe();
    let printer = tokio::spawn(async move {
        while let Some(seq) = sub.changed().await {
            let s = sub.state();
            println!("m | seq {seq} | version {:?} done {}", s.version, s.done);
            if s.done == 3 {
                break;
            }
        }
    });

    store.dispatch(TaskAction::SetVersion("MasterTest".into()))?;
    for _ in 0..3 {
        let seq = store.commit(TaskAction::Done).await?;
        println!("committed seq {seq}");
    }
    printer.await?;
    Ok(())
}
