// `apply = path` names the reducer function when it is not `reduce`.
use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Log {
    lines: Vec<String>,
}

#[reducer(Log, apply = handlers::on_log)]
#[derive(Serialize, Deserialize)]
pub enum LogAction {
    Push(String),
    Clear,
}

mod handlers {
    use super::{Log, LogAction};

    pub fn on_log(state: &mut Log, action: &LogAction) {
        match action {
            LogAction::Push(s) => state.lines.push(s.clone()),
            LogAction::Clear => state.lines.clear(),
        }
    }
}

fn main() {
    let store = Log::start_master().expect("a plain process is its own master");
    store
        .dispatch(LogAction::Push("a".into()))
        .expect("the master applies at once");
    store
        .dispatch(LogAction::Push("b".into()))
        .expect("the master applies at once");
    assert_eq!(store.state().lines, ["a", "b"]);
    store
        .dispatch(LogAction::Clear)
        .expect("the master applies at once");
    assert!(store.state().lines.is_empty());
}
