use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

// The pin was taken before `done` became a u32.
#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(schema = "0000000000000000000000000000000000000000000000000000000000000000")]
pub struct Tasks {
    version: String,
    done: u32,
}

#[reducer(Tasks)]
#[derive(Serialize, Deserialize)]
pub enum TaskAction {
    SetVersion(String),
    Done,
}

fn reduce(state: &mut Tasks, action: &TaskAction) {
    match action {
        TaskAction::SetVersion(v) => state.version.clone_from(v),
        TaskAction::Done => state.done += 1,
    }
}

fn main() {}
