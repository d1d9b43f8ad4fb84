// `ClusterStore` on an enum, or on a generic struct.
use redux_cluster::ClusterStore;
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub enum NotAState {
    #[default]
    A,
}

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Generic<T> {
    value: T,
}

fn main() {}
