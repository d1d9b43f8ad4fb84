use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    done: u64,
}

#[reducer(Tasks, aply = count)]
#[derive(Serialize, Deserialize)]
pub enum TaskAction {
    Done,
}

fn count(state: &mut Tasks, _: &TaskAction) {
    state.done += 1;
}

fn main() {}
