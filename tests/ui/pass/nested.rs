// Nested user types derive `Schema`; the store hash covers them.
use redux_cluster::{reducer, ClusterState, ClusterStore, Schema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Schema, Clone, Default, Serialize, Deserialize)]
pub struct Address {
    street: String,
    zip: u32,
}

#[derive(Schema, Clone, Serialize, Deserialize)]
pub enum Status {
    Active { since: u64 },
    Suspended(String),
    Gone,
}

#[derive(Schema, Clone, Serialize, Deserialize)]
pub struct User {
    name: String,
    address: Address,
    status: Status,
    tags: Vec<Tag>,
}

#[derive(Schema, Clone, Serialize, Deserialize)]
pub struct Tag(String, u8);

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
#[cluster_store(name = "users")]
pub struct Users {
    by_id: BTreeMap<u64, User>,
}

#[reducer(Users)]
#[derive(Serialize, Deserialize)]
pub enum UserAction {
    Upsert { id: u64, user: User },
    Remove(u64),
}

fn reduce(state: &mut Users, action: &UserAction) {
    match action {
        UserAction::Upsert { id, user } => {
            state.by_id.insert(*id, user.clone());
        }
        UserAction::Remove(id) => {
            state.by_id.remove(id);
        }
    }
}

fn main() {
    assert_eq!(<Users as ClusterState>::NAME, "users");
    let store = Users::start_master().expect("a plain process is its own master");
    let user = User {
        name: "ada".into(),
        address: Address::default(),
        status: Status::Active { since: 1 },
        tags: vec![Tag("admin".into(), 1)],
    };
    store
        .dispatch(UserAction::Upsert { id: 7, user })
        .expect("the master applies at once");
    store
        .dispatch(UserAction::Remove(8))
        .expect("the master applies at once");
    assert_eq!(store.state().by_id.len(), 1);
    let text = redux_cluster::describe::<Users>();
    assert!(text.contains("street:String"), "{text}");
    assert!(text.contains("Suspended(String,)"), "{text}");
    let _ = Status::Gone;
    let _ = Status::Suspended(String::new());
}
