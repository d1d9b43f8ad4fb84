use redux_cluster::ClusterStore;
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(nmae = "tasks")]
pub struct Tasks {
    done: u64,
}

fn main() {}
