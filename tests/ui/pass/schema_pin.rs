// A pin that matches the types builds.
use redux_cluster::{reducer, ClusterStore, Reducer};
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(schema = "290690b2e3b2c1a3d2e5e67c55e773554c667a376200d3680cf4eff5fd31809c")]
pub struct Pinned {
    version: String,
    done: u64,
}

#[reducer(Pinned)]
#[derive(Serialize, Deserialize)]
pub enum PinnedAction {
    SetVersion(String),
    Done,
}

fn reduce(state: &mut Pinned, action: &PinnedAction) {
    match action {
        PinnedAction::SetVersion(v) => state.version.clone_from(v),
        PinnedAction::Done => state.done += 1,
    }
}

fn main() {
    assert_eq!(
        <Pinned as Reducer>::SCHEMA.to_hex(),
        "290690b2e3b2c1a3d2e5e67c55e773554c667a376200d3680cf4eff5fd31809c"
    );
}
