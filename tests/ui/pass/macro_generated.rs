// Stores and nested types declared through `macro_rules!`, with field types
// and the reducer path passed in as fragments.
use redux_cluster::{reducer, ClusterStore, Schema};
use serde::{Deserialize, Serialize};

macro_rules! store {
    ($state:ident { $($field:ident: $ty:ty),* } $action:ident($arg:ty) => $apply:path) => {
        #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
        pub struct $state {
            $(pub $field: $ty),*
        }

        #[reducer($state, apply = $apply)]
        #[derive(Serialize, Deserialize)]
        pub enum $action {
            Set($arg),
        }
    };
}

macro_rules! nested {
    ($name:ident($($ty:ty),*)) => {
        #[derive(Schema, Clone, Default, Serialize, Deserialize)]
        pub struct $name($(pub $ty),*);
    };
}

nested!(Pair(u8, String));
store!(Counter { n: u64, pair: Pair } CounterAction(u64) => set_counter);

fn set_counter(state: &mut Counter, action: &CounterAction) {
    match action {
        CounterAction::Set(n) => state.n = *n,
    }
}

fn main() {
    assert_eq!(redux_cluster::describe::<Pair>(), "(u8,String,)");
    let store = Counter::start_master().expect("a plain process is its own master");
    store
        .dispatch(CounterAction::Set(4))
        .expect("the master applies at once");
    assert_eq!(store.state().n, 4);
    assert_eq!(store.state().pair.0, 0);
}
