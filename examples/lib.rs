//! Store types shared by the examples and the benchmark.

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
