//! The store of the browser example (`web`): a counter and a todo list.
//!
//! Its TypeScript types are generated from these Rust types (ts-rs) into
//! `clients/js/src/generated/`; a test fails when the committed file is out
//! of date, and the browser client's build type-checks its use of them, so
//! a schema change on either side shows up in CI.

use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What every tab shows.
#[derive(ClusterStore, TS, Clone, Default, Debug, Serialize, Deserialize)]
#[cluster_store(name = "WebBoard")]
pub struct Board {
    /// Shared counter (a JSON number in the browser).
    #[ts(type = "number")]
    pub counter: i64,
    /// The todo list.
    pub todos: Vec<Todo>,
}

/// One todo.
#[derive(Clone, Debug, Serialize, Deserialize, redux_cluster::Schema, TS)]
pub struct Todo {
    /// What to do.
    pub text: String,
    /// Whether it is done.
    pub done: bool,
}

/// What a tab (or standard input) can do. In JSON: `"Increment"`,
/// `{"AddTodo": "milk"}`, `{"ToggleTodo": 0}`, ...
#[reducer(Board)]
#[derive(Clone, Debug, Serialize, Deserialize, TS)]
pub enum BoardAction {
    /// Counter + 1.
    Increment,
    /// Counter - 1.
    Decrement,
    /// Appends a todo.
    AddTodo(String),
    /// Flips a todo's `done`.
    ToggleTodo(#[ts(type = "number")] usize),
    /// Removes a todo.
    RemoveTodo(#[ts(type = "number")] usize),
    /// Removes every done todo.
    ClearDone,
}

fn reduce(state: &mut Board, action: &BoardAction) {
    match action {
        BoardAction::Increment => state.counter += 1,
        BoardAction::Decrement => state.counter -= 1,
        BoardAction::AddTodo(text) => state.todos.push(Todo {
            text: text.clone(),
            done: false,
        }),
        BoardAction::ToggleTodo(i) => {
            if let Some(t) = state.todos.get_mut(*i) {
                t.done = !t.done;
            }
        }
        BoardAction::RemoveTodo(i) => {
            if *i < state.todos.len() {
                state.todos.remove(*i);
            }
        }
        BoardAction::ClearDone => state.todos.retain(|t| !t.done),
    }
}

/// The TypeScript declarations of the store's types, as committed in
/// `clients/js/src/generated/board.ts`.
pub fn typescript() -> String {
    let cfg = ts_rs::Config::default();
    let mut out = String::from(
        "// Generated from examples/board.rs by ts-rs: do not edit.\n\
         // Regenerate: UPDATE_TS=1 cargo test -p redux-cluster-examples --features ws\n\n",
    );
    for decl in [Todo::decl(&cfg), Board::decl(&cfg), BoardAction::decl(&cfg)] {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_typescript_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../clients/js/src/generated/board.ts"
        );
        let want = super::typescript();
        if std::env::var_os("UPDATE_TS").is_some() {
            std::fs::write(path, &want).expect("write the bindings");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            have, want,
            "clients/js/src/generated/board.ts is out of date with examples/board.rs; \
             regenerate with UPDATE_TS=1 cargo test -p redux-cluster-examples --features ws"
        );
    }
}
