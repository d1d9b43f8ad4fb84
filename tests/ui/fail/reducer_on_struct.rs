use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    done: u64,
}

#[reducer(Tasks)]
#[derive(Serialize, Deserialize)]
pub struct Done;

fn reduce(state: &mut Tasks, _: &Done) {
    state.done += 1;
}

fn main() {}
