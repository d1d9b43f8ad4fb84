//! Loading a large backup through one migration step, against loading the
//! same state without one (issue "Schema evolution", benchmark).
//!
//! ```sh
//! cargo run --release --example evolve_bench -- write DIR 100   # a v1 backup of ~100 MB
//! cargo run --release --example evolve_bench -- load-v1 DIR     # v1 reads it: no migration
//! cargo run --release --example evolve_bench -- load-v2 DIR     # v2 reads it: decode, convert, rewrite
//! ```
//! Each load runs in its own process (the DIR is copied first, so the
//! migration always starts from the v1 files) and prints the time to load
//! and the process's peak resident memory.

use redux_cluster::{reducer, BackupConfig, ClusterStore, Store};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The first version: a catalog of items.
mod v1 {
    use super::*;

    #[derive(Clone, Default, Serialize, Deserialize, redux_cluster::Schema)]
    pub struct Item {
        pub id: u64,
        pub name: String,
        pub tags: Vec<String>,
    }

    #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
    #[cluster_store(name = "Catalog")]
    pub struct Catalog {
        pub items: Vec<Item>,
    }

    #[reducer(Catalog)]
    #[derive(Clone, Serialize, Deserialize)]
    pub enum CatalogAction {
        Add(Item),
    }

    fn reduce(s: &mut Catalog, a: &CatalogAction) {
        let CatalogAction::Add(i) = a;
        s.items.push(i.clone());
    }
}

/// The second: every item gets a price.
mod v2 {
    use super::*;

    #[derive(Clone, Default, Serialize, Deserialize, redux_cluster::Schema)]
    pub struct Item {
        pub id: u64,
        pub name: String,
        pub tags: Vec<String>,
        pub cents: u64,
    }

    #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
    #[cluster_store(name = "Catalog", previous = v1::Catalog)]
    pub struct Catalog {
        pub items: Vec<Item>,
    }

    #[reducer(Catalog)]
    #[derive(Clone, Serialize, Deserialize)]
    pub enum CatalogAction {
        Add(Item),
    }

    fn reduce(s: &mut Catalog, a: &CatalogAction) {
        let CatalogAction::Add(i) = a;
        s.items.push(i.clone());
    }

    fn item(old: v1::Item) -> Item {
        Item {
            id: old.id,
            name: old.name,
            tags: old.tags,
            cents: 0,
        }
    }

    impl From<v1::Catalog> for Catalog {
        fn from(old: v1::Catalog) -> Self {
            Catalog {
                items: old.items.into_iter().map(item).collect(),
            }
        }
    }

    impl From<v1::CatalogAction> for CatalogAction {
        fn from(old: v1::CatalogAction) -> Self {
            let v1::CatalogAction::Add(i) = old;
            CatalogAction::Add(item(i))
        }
    }
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn backup(dir: &Path) -> BackupConfig {
    BackupConfig::new(dir.join("catalog.backup"))
}

async fn write(dir: &Path, mb: u64) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::<v1::Catalog>::builder().start()?;
    // One item is about 100 bytes encoded; added in batches of 10,000.
    let n = mb * 1024 * 1024 / 100;
    let mut batch = Vec::with_capacity(10_000);
    for id in 0..n {
        batch.push(v1::CatalogAction::Add(v1::Item {
            id,
            name: format!("item number {id:>12} of the catalog, a long-ish name"),
            tags: vec!["a".into(), format!("t{}", id % 97), "catalog".into()],
        }));
        if batch.len() == 10_000 || id + 1 == n {
            store.dispatch_all(&batch)?;
            batch.clear();
        }
    }
    store.backup(backup(dir).count(u64::MAX)).await?;
    store.close().await?;
    let len = std::fs::metadata(dir.join("catalog.backup"))?.len();
    println!("wrote {n} items, {:.1} MB", len as f64 / 1e6);
    Ok(())
}

async fn load<S: redux_cluster::Reducer>(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let work = dir.join("run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::fs::copy(dir.join("catalog.backup"), work.join("catalog.backup"))?;
    let store = Store::<S>::builder().start()?;
    let t = Instant::now();
    store.backup(backup(&work).count(u64::MAX)).await?;
    let took = t.elapsed();
    println!(
        "loaded seq {} in {:.0} ms, peak RSS {} MiB",
        store.seq(),
        took.as_secs_f64() * 1e3,
        peak_rss_mib()
    );
    store.shutdown();
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.get(1)
            .ok_or("usage: evolve_bench write|load-v1|load-v2 DIR [MB]")?,
    );
    match args.first().map(String::as_str) {
        Some("write") => write(&dir, args.get(2).map_or(Ok(100), |m| m.parse())?).await,
        Some("load-v1") => load::<v1::Catalog>(&dir).await,
        Some("load-v2") => load::<v2::Catalog>(&dir).await,
        _ => Err("usage: evolve_bench write|load-v1|load-v2 DIR [MB]".into()),
    }
}
