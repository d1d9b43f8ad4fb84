// Every std type that has a `Schema` impl can sit in a store's state.
use redux_cluster::{reducer, ClusterStore, Schema};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Everything {
    a: u8,
    b: u16,
    c: u32,
    d: u64,
    e: u128,
    f: usize,
    g: i8,
    h: i16,
    i: i32,
    j: i64,
    k: i128,
    l: isize,
    m: f32,
    n: f64,
    o: bool,
    p: char,
    q: String,
    r: Vec<u8>,
    s: VecDeque<String>,
    t: Option<u32>,
    u: Box<u64>,
    v: Box<str>,
    w: [u8; 4],
    x: [[i16; 2]; 3],
    y: (u8, String, bool),
    z: (),
    one: (u8,),
    eight: (u8, u16, u32, u64, i8, i16, i32, i64),
    hash_map: HashMap<String, u32>,
    btree_map: BTreeMap<u64, Vec<String>>,
    hash_set: HashSet<i32>,
    btree_set: BTreeSet<char>,
    nested: Option<Vec<BTreeMap<String, (u8, Option<Box<[u8; 2]>>)>>>,
}

#[reducer(Everything)]
#[derive(Serialize, Deserialize)]
pub enum Set {
    Unit,
    Tuple(u8, i128, char),
    Named { key: String, value: Option<f64> },
}

fn reduce(state: &mut Everything, action: &Set) {
    match action {
        Set::Unit => state.z = (),
        Set::Tuple(a, k, p) => {
            state.a = *a;
            state.k = *k;
            state.p = *p;
        }
        Set::Named { key, value } => {
            state.q.clone_from(key);
            state.t = value.map(|v| v as u32);
        }
    }
}

// Shared pointers have a schema too (serde needs its `rc` feature to send
// them, so this type only hashes).
#[derive(Schema)]
pub struct Shared {
    arc: Arc<String>,
    arc_str: Arc<str>,
    rc: Rc<u8>,
}

fn main() {
    let store = Everything::start_master().expect("a plain process is its own master");
    store
        .dispatch(Set::Tuple(1, -2, 'x'))
        .expect("the master applies at once");
    store
        .dispatch(Set::Named {
            key: "k".into(),
            value: Some(3.0),
        })
        .expect("the master applies at once");
    store
        .dispatch(Set::Unit)
        .expect("the master applies at once");
    assert_eq!(store.state().p, 'x');
    assert_eq!(store.state().t, Some(3));
    let _ = redux_cluster::describe::<Shared>();
}
