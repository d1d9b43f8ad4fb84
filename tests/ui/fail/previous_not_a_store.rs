use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct OldTasks {
    done: u32,
}

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(previous = OldTasks)]
pub struct Tasks {
    done: u64,
}

impl From<OldTasks> for Tasks {
    fn from(old: OldTasks) -> Self {
        Tasks {
            done: old.done.into(),
        }
    }
}

#[reducer(Tasks)]
#[derive(Serialize, Deserialize)]
pub enum TaskAction {
    Done,
}

fn reduce(state: &mut Tasks, _: &TaskAction) {
    state.done += 1;
}

fn main() {}
