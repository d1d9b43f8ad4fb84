use redux_cluster::ClusterStore;
use serde::{Deserialize, Serialize};

// No `#[reducer(Tasks)]` enum anywhere.
#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    done: u64,
}

fn main() {
    let _store = Tasks::start_master();
}
