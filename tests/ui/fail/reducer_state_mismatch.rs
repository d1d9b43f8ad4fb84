use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    done: u64,
}

pub struct Other {
    done: u64,
}

#[reducer(Tasks)]
#[derive(Serialize, Deserialize)]
pub enum TaskAction {
    Done,
}

// The reducer takes the wrong state type.
fn reduce(state: &mut Other, _: &TaskAction) {
    state.done += 1;
}

fn main() {}
