use redux_cluster::ClusterStore;
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(schema = "0xDEADBEEF")]
pub struct Tasks {
    done: u64,
}

fn main() {}
