use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;

    #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
    #[cluster_store(name = "Tasks")]
    pub struct Tasks {
        pub done: u32,
    }

    #[reducer(Tasks)]
    #[derive(Serialize, Deserialize)]
    pub enum TaskAction {
        Done,
    }

    fn reduce(state: &mut Tasks, _: &TaskAction) {
        state.done += 1;
    }
}

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(previous = v1::Tasks)]
pub struct Tasks {
    done: u64,
}

// The state converts, the actions do not: the error names the missing
// `From<v1::TaskAction>`.
impl From<v1::Tasks> for Tasks {
    fn from(old: v1::Tasks) -> Self {
        Tasks {
            done: old.done.into(),
        }
    }
}

#[reducer(Tasks)]
#[derive(Serialize, Deserialize)]
pub enum TaskAction {
    Done,
}

fn reduce(state: &mut Tasks, _: &TaskAction) {
    state.done += 1;
}

fn main() {}
