//! Codec costs: one small action, and a 1000-key state snapshot, each
//! encoded and decoded through postcard, bare and inside a protocol frame.
//!
//! Run: `cargo bench -p redux-cluster --bench codec`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redux_cluster::protocol::{Actions, FrameCodec, Message, Snapshot};
use redux_cluster::{reducer, ClusterStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hint::black_box;

/// The seed's example store.
#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    version: String,
    done: u64,
}

#[reducer(Tasks)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskAction {
    SetVersion(String),
    Done,
    Add(u64),
}

fn reduce(state: &mut Tasks, action: &TaskAction) {
    match action {
        TaskAction::SetVersion(v) => state.version.clone_from(v),
        TaskAction::Done => state.done += 1,
        TaskAction::Add(n) => state.done += n,
    }
}

/// A state with a 1000-key map, for snapshots.
#[derive(ClusterStore, Clone, Default, PartialEq, Debug, Serialize, Deserialize)]
pub struct Big {
    counts: BTreeMap<String, u64>,
}

#[reducer(Big, apply = reduce_big)]
#[derive(Serialize, Deserialize)]
pub enum BigAction {
    Bump(String),
}

fn reduce_big(state: &mut Big, action: &BigAction) {
    match action {
        BigAction::Bump(k) => *state.counts.entry(k.clone()).or_default() += 1,
    }
}

fn big_state() -> Big {
    Big {
        counts: (0..1000u64)
            .map(|i| (format!("key-{i:04}"), i * 7919))
            .collect(),
    }
}

fn small_action(c: &mut Criterion) {
    let mut g = c.benchmark_group("action");
    g.throughput(Throughput::Elements(1));
    for (name, action) in [
        ("done", TaskAction::Done),
        ("add", TaskAction::Add(1_000_000)),
        ("set_version", TaskAction::SetVersion("MasterTest".into())),
    ] {
        // Bare postcard, into a buffer on the stack: the cost per action on
        // the apply path.
        g.bench_function(format!("postcard/{name}"), |b| {
            let mut buf = [0u8; 64];
            b.iter(|| {
                let bytes = postcard::to_slice(black_box(&action), &mut buf).expect("fits");
                let back: TaskAction = postcard::from_bytes(bytes).expect("decodes");
                black_box(back)
            })
        });
    }
    // The whole path of one action to a follower: the action's bytes in an
    // `Actions` frame, framed, unframed and decoded again.
    g.bench_function("frame/done", |b| {
        let codec = FrameCodec::default();
        let mut packed = Vec::with_capacity(64);
        let mut wire = Vec::with_capacity(128);
        b.iter(|| {
            packed.clear();
            packed = postcard::to_extend(black_box(&TaskAction::Done), std::mem::take(&mut packed))
                .expect("encodes");
            wire.clear();
            let msg = Message::Actions(Actions {
                channel: 1,
                first_seq: 42,
                count: 1,
                packed: &packed,
            });
            codec.encode(&msg, &mut wire).expect("fits");
            let (msg, _) = codec.decode(&wire).expect("decodes").expect("complete");
            let Message::Actions(a) = msg else {
                unreachable!("an Actions frame decodes as one")
            };
            let back: TaskAction = postcard::from_bytes(a.packed).expect("decodes");
            black_box(back)
        })
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let state = big_state();
    let bytes = postcard::to_allocvec(&state).expect("encodes");
    let mut g = c.benchmark_group("snapshot_1000_keys");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        let mut buf = Vec::with_capacity(bytes.len());
        b.iter(|| {
            buf.clear();
            buf =
                postcard::to_extend(black_box(&state), std::mem::take(&mut buf)).expect("encodes");
            black_box(buf.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let back: Big = postcard::from_bytes(black_box(&bytes)).expect("decodes");
            black_box(back)
        })
    });
    g.bench_function("encode+decode", |b| {
        let mut buf = Vec::with_capacity(bytes.len());
        b.iter(|| {
            buf.clear();
            buf =
                postcard::to_extend(black_box(&state), std::mem::take(&mut buf)).expect("encodes");
            let back: Big = postcard::from_bytes(&buf).expect("decodes");
            black_box(back)
        })
    });
    g.bench_function("frame", |b| {
        let codec = FrameCodec::default();
        let mut wire = Vec::with_capacity(bytes.len() + 64);
        let mut body = Vec::with_capacity(bytes.len());
        b.iter(|| {
            body.clear();
            body =
                postcard::to_extend(black_box(&state), std::mem::take(&mut body)).expect("encodes");
            wire.clear();
            let msg = Message::Snapshot(Snapshot {
                channel: 1,
                epoch: 7,
                seq: 1000,
                state: &body,
            });
            codec.encode(&msg, &mut wire).expect("fits");
            let (msg, _) = codec.decode(&wire).expect("decodes").expect("complete");
            let Message::Snapshot(s) = msg else {
                unreachable!("a Snapshot frame decodes as one")
            };
            let back: Big = postcard::from_bytes(s.state).expect("decodes");
            black_box(back)
        })
    });
    g.finish();
    println!("snapshot of 1000 keys: {} bytes", bytes.len());
}

criterion_group!(benches, small_action, snapshot);
criterion_main!(benches);
