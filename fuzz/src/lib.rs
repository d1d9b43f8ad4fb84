//! The store the fuzz targets read files and messages of: strings, maps,
//! options, nested enums and sequences, so decoding has room to go wrong.

use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A board of notes.
#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Board {
    pub title: String,
    pub notes: BTreeMap<u32, Note>,
    pub owner: Option<(u64, String)>,
    pub log: Vec<Entry>,
}

/// One note.
#[derive(redux_cluster::Schema, Clone, Default, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    pub tags: Vec<String>,
    pub done: bool,
}

/// What happened.
#[derive(redux_cluster::Schema, Clone, Serialize, Deserialize)]
pub enum Entry {
    Added(u32),
    Renamed { from: String, to: String },
    Cleared,
}

/// Actions on [`Board`].
#[reducer(Board)]
#[derive(Clone, Serialize, Deserialize)]
pub enum BoardAction {
    Title(String),
    Put(u32, Note),
    Remove(u32),
    Own(Option<(u64, String)>),
    Clear,
}

fn reduce(state: &mut Board, action: &BoardAction) {
    match action {
        BoardAction::Title(t) => {
            let from = std::mem::replace(&mut state.title, t.clone());
            state.log.push(Entry::Renamed {
                from,
                to: t.clone(),
            });
        }
        BoardAction::Put(id, n) => {
            state.notes.insert(*id, n.clone());
            state.log.push(Entry::Added(*id));
        }
        BoardAction::Remove(id) => {
            state.notes.remove(id);
        }
        BoardAction::Own(o) => state.owner = o.clone(),
        BoardAction::Clear => {
            state.notes.clear();
            state.log.push(Entry::Cleared);
        }
    }
}

/// A state with something in every field.
pub fn sample_state() -> Board {
    let mut b = Board::default();
    for a in sample_actions() {
        reduce(&mut b, &a);
    }
    b
}

/// One action of each kind.
pub fn sample_actions() -> Vec<BoardAction> {
    vec![
        BoardAction::Title("plans".into()),
        BoardAction::Put(
            3,
            Note {
                text: "milk".into(),
                tags: vec!["shop".into()],
                done: false,
            },
        ),
        BoardAction::Own(Some((42, "ann".into()))),
        BoardAction::Remove(3),
        BoardAction::Clear,
    ]
}

/// Writes `seeds` into `corpus/<target>` (under the current directory,
/// where `cargo fuzz run` starts the target) unless they are there.
pub fn write_seeds(target: &str, seeds: Vec<Vec<u8>>) {
    let dir = std::path::Path::new("corpus").join(target);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for (i, seed) in seeds.into_iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("seed-{i}")), seed);
    }
}
