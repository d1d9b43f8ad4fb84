use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

// A field of another crate's type that has no `Schema`: the error names
// the ways out (a feature, `opaque`, `with`).
#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Peers {
    last: Option<std::net::IpAddr>,
}

#[reducer(Peers)]
#[derive(Serialize, Deserialize)]
pub enum PeerAction {
    Seen(std::net::IpAddr),
}

fn reduce(state: &mut Peers, action: &PeerAction) {
    let PeerAction::Seen(ip) = action;
    state.last = Some(*ip);
}

fn main() {}
