// The smallest complete store: state, action enum, reducer, a dispatch.
use redux_cluster::{reducer, ClusterStore, Reducer};
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Counter {
    n: u64,
}

#[reducer(Counter)]
#[derive(Serialize, Deserialize)]
pub enum Op {
    Add(u64),
    Reset,
}

fn reduce(state: &mut Counter, action: &Op) {
    match action {
        Op::Add(k) => state.n += k,
        Op::Reset => state.n = 0,
    }
}

fn main() {
    let store = Counter::start_master().expect("a plain process is its own master");
    store
        .dispatch(Op::Add(2))
        .expect("the master applies at once");
    store
        .dispatch(Op::Add(3))
        .expect("the master applies at once");
    assert_eq!(store.state().n, 5);
    store
        .dispatch(Op::Reset)
        .expect("the master applies at once");
    assert_eq!(store.state().n, 0);
    assert_eq!(store.seq(), 3);
    assert_eq!(store.schema_hash(), <Counter as Reducer>::SCHEMA);
    assert_eq!(store.id(), <Counter as Reducer>::ID);
}
