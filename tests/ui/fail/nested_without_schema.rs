use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

// Forgot `#[derive(Schema)]`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Inner {
    x: u32,
}

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct State {
    inner: Inner,
}

#[reducer(State)]
#[derive(Serialize, Deserialize)]
pub enum Action {
    Set(u32),
}

fn reduce(state: &mut State, action: &Action) {
    match action {
        Action::Set(x) => state.inner.x = *x,
    }
}

fn main() {}
