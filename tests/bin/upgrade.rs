//! The processes of the rolling-upgrade test (tests/upgrade.rs): a `Tally`
//! store in two versions, v2 declaring v1 as its previous one.
//!
//! - `upgrade master <v1|v2> <dir> <expect>`: a journaling master on
//!   `<dir>/tally.backup`, serving `<dir>/sock`; prints `serving`, and
//!   `final <line>` once its total reaches `<expect>` (0: never); runs until
//!   killed.
//! - `upgrade client <v1|v2> <sock> <slot> <k> <seen> <expect>`: once
//!   joined and its total has reached `<seen>`, prints `following <line>`;
//!   commits `<k>` increments of `<slot>` (all in flight at once), prints
//!   `acked <k>` once every commit is acknowledged, then `final <line>`
//!   once the total reaches `<expect>`, and closes.
//!
//! A `<line>` is `total by1 by2 by3 digest seq`, equal on every copy that
//! applied the same actions in the same order.

use redux_cluster::client::ConnectConfig;
use redux_cluster::server::ServeConfig;
use redux_cluster::{reducer, BackupConfig, ClusterStore, Reducer, Store};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;

/// Folds an action into an order-sensitive digest.
fn fold(digest: u64, slot: u8) -> u64 {
    digest
        .rotate_left(5)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(u64::from(slot) + 1)
}

mod v1 {
    use super::*;

    #[derive(ClusterStore, Clone, Default, Debug, Serialize, Deserialize)]
    #[cluster_store(name = "Tally")]
    pub struct Tally {
        pub by: [u32; 4],
        pub digest: u64,
    }

    #[reducer(Tally)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum TallyAction {
        Inc(u8),
    }

    fn reduce(s: &mut Tally, a: &TallyAction) {
        let TallyAction::Inc(slot) = a;
        s.by[usize::from(*slot) % 4] += 1;
        s.digest = fold(s.digest, *slot);
    }
}

mod v2 {
    use super::*;

    /// Counters widened, and a total kept.
    #[derive(ClusterStore, Clone, Default, Debug, Serialize, Deserialize)]
    #[cluster_store(name = "Tally", previous = v1::Tally)]
    pub struct Tally {
        pub by: [u64; 4],
        pub total: u64,
        pub digest: u64,
    }

    #[reducer(Tally)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub enum TallyAction {
        Add(u8, u64),
    }

    fn reduce(s: &mut Tally, a: &TallyAction) {
        let TallyAction::Add(slot, n) = a;
        for _ in 0..*n {
            s.by[usize::from(*slot) % 4] += 1;
            s.total += 1;
            s.digest = fold(s.digest, *slot);
        }
    }

    impl From<v1::Tally> for Tally {
        fn from(old: v1::Tally) -> Self {
            Tally {
                by: old.by.map(u64::from),
                total: old.by.iter().map(|&n| u64::from(n)).sum(),
                digest: old.digest,
            }
        }
    }

    impl From<v1::TallyAction> for TallyAction {
        fn from(old: v1::TallyAction) -> Self {
            let v1::TallyAction::Inc(slot) = old;
            TallyAction::Add(slot, 1)
        }
    }
}

/// What both versions show of their state.
trait Shown: Reducer {
    fn total(&self) -> u64;
    fn line(&self) -> String;
    fn inc(slot: u8) -> Self::Action;
}

impl Shown for v1::Tally {
    fn total(&self) -> u64 {
        self.by.iter().map(|&n| u64::from(n)).sum()
    }
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {:x}",
            self.total(),
            self.by[1],
            self.by[2],
            self.by[3],
            self.digest
        )
    }
    fn inc(slot: u8) -> Self::Action {
        v1::TallyAction::Inc(slot)
    }
}

impl Shown for v2::Tally {
    fn total(&self) -> u64 {
        self.total
    }
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {:x}",
            self.total, self.by[1], self.by[2], self.by[3], self.digest
        )
    }
    fn inc(slot: u8) -> Self::Action {
        v2::TallyAction::Add(slot, 1)
    }
}

fn out(s: String) {
    println!("{s}");
    let _ = std::io::stdout().flush();
}

async fn master<S: Shown>(dir: PathBuf, expect: u64) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::<S>::builder().start()?;
    store
        .backup(BackupConfig::new(dir.join("tally.backup")).journal())
        .await?;
    let _server = store.serve(ServeConfig::unix(dir.join("sock"))).await?;
    out("serving".into());
    if expect > 0 {
        let seq = store.wait_until(|s| s.total() >= expect).await?;
        out(format!("final {} {seq}", store.get_state().line()));
    }
    std::future::pending::<()>().await;
    Ok(())
}

async fn client<S: Shown>(
    sock: PathBuf,
    slot: u8,
    k: u64,
    (seen, expect): (u64, u64),
) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::<S>::builder().connect(ConnectConfig::unix(sock).connect_timeout(None))?;
    store.ready().await?;
    let seq = store.wait_until(|s| s.total() >= seen).await?;
    out(format!("following {} {seq}", store.get_state().line()));
    let mut commits = tokio::task::JoinSet::new();
    for _ in 0..k {
        let store = store.clone();
        commits.spawn(async move { store.commit(S::inc(slot)).await });
    }
    let mut acked = 0;
    while let Some(done) = commits.join_next().await {
        done??;
        acked += 1;
    }
    out(format!("acked {acked}"));
    let seq = store.wait_until(|s| s.total() >= expect).await?;
    out(format!("final {} {seq}", store.get_state().line()));
    store.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    redux_cluster_tests::main_of(run()).await;
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or("missing argument");
    let num = |i: usize| -> Result<u64, Box<dyn std::error::Error>> { Ok(arg(i)?.parse()?) };
    match (arg(0)?.as_str(), arg(1)?.as_str()) {
        ("master", "v1") => master::<v1::Tally>(arg(2)?.into(), num(3)?).await,
        ("master", "v2") => master::<v2::Tally>(arg(2)?.into(), num(3)?).await,
        ("client", "v1") => {
            client::<v1::Tally>(arg(2)?.into(), num(3)? as u8, num(4)?, (num(5)?, num(6)?)).await
        }
        ("client", "v2") => {
            client::<v2::Tally>(arg(2)?.into(), num(3)? as u8, num(4)?, (num(5)?, num(6)?)).await
        }
        _ => Err("usage: upgrade master|client v1|v2 ...".into()),
    }
}
