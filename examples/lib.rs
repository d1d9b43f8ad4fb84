//! Store types shared by the examples and the benchmark.

#[cfg(feature = "ws")]
pub mod board;

use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

/// The seed's example state: a version string, plus a counter.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tasks {
    /// Last version set.
    pub version: String,
    /// Number of `Done` actions.
    pub done: u64,
}

/// Actions on [`Tasks`].
#[reducer(Tasks)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TaskAction {
    /// Sets the version (the seed's `TASK`).
    SetVersion(String),
    /// Counts one.
    Done,
}

fn reduce(state: &mut Tasks, action: &TaskAction) {
    match action {
        TaskAction::SetVersion(v) => state.version.clone_from(v),
        TaskAction::Done => state.done += 1,
    }
}

/// The benchmark's store: a counter per source, plus `keys` string keys
/// that make snapshots realistically heavy.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bench {
    /// All increments.
    pub total: u64,
    /// Increments per source (0 = master, 1.. = workers).
    pub by: Vec<u64>,
    /// Filler keys.
    pub keys: std::collections::BTreeMap<String, u64>,
    /// Set when the master starts the clock.
    pub go: bool,
}

/// Actions on [`Bench`].
#[reducer(Bench, apply = reduce_bench)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BenchAction {
    /// Inserts `n` filler keys.
    Fill(u32),
    /// Starts the run.
    Go,
    /// One increment from a source.
    Inc(u16),
}

fn reduce_bench(state: &mut Bench, action: &BenchAction) {
    match action {
        BenchAction::Fill(n) => {
            for i in 0..*n {
                state.keys.insert(format!("key-{i:06}"), u64::from(i));
            }
        }
        BenchAction::Go => state.go = true,
        BenchAction::Inc(src) => {
            let src = usize::from(*src);
            if state.by.len() <= src {
                state.by.resize(src + 1, 0);
            }
            state.by[src] += 1;
            state.total += 1;
        }
    }
}

/// What each benchmark worker reports back, through a second store.
#[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Workers ready to start.
    pub ready: u32,
    /// One entry per finished worker.
    pub done: Vec<WorkerReport>,
}

/// One worker's result.
#[derive(redux_cluster::Schema, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Worker id.
    pub id: u32,
    /// Peak resident memory, MiB.
    pub rss_mib: f64,
    /// Whether its final state was exactly the expected one.
    pub exact: bool,
    /// Round-trip latencies in µs (latency runs): p50, p99, max.
    pub latency_us: Option<(f64, f64, f64)>,
    /// On a hub: log messages it published, and the actions in them.
    pub published: Option<(u64, u64)>,
}

/// Actions on [`BenchReport`].
#[reducer(BenchReport, apply = reduce_report)]
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ReportAction {
    /// A worker joined and is ready.
    Ready,
    /// A worker finished.
    Done(WorkerReport),
}

fn reduce_report(state: &mut BenchReport, action: &ReportAction) {
    match action {
        ReportAction::Ready => state.ready += 1,
        ReportAction::Done(r) => state.done.push(r.clone()),
    }
}

/// Peak resident set size of this process in MiB (Linux), else 0.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
