//! Local dispatch on the master: actions per second through `dispatch` and
//! `commit`, alone and with a subscriber task woken by every change.
//!
//! Run: `cargo bench -p redux-cluster --bench local`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redux_cluster::{reducer, ClusterStore, Store};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tasks {
    version: String,
    done: u64,
}

#[reducer(Tasks)]
#[derive(Clone, Serialize, Deserialize)]
pub enum TaskAction {
    SetVersion(String),
    Done,
}

fn reduce(state: &mut Tasks, action: &TaskAction) {
    match action {
        TaskAction::SetVersion(v) => state.version.clone_from(v),
        TaskAction::Done => state.done += 1,
    }
}

fn start() -> Store<Tasks> {
    Tasks::start_master().expect("a plain process is its own master")
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut g = c.benchmark_group("local");
    g.throughput(Throughput::Elements(1));

    // A process runs one store of a name at a time: each bench starts its
    // store once and shuts it down before the next one starts.
    let store = start();
    g.bench_function("dispatch", |b| {
        b.iter(|| {
            store
                .dispatch(black_box(TaskAction::Done))
                .expect("dispatch")
        });
    });
    store.shutdown();

    // The headline figure: a subscriber task on the runtime, woken by the
    // changes (coalesced), while this thread dispatches.
    let store = start();
    let mut sub = store.subscribe();
    let follower = rt.spawn(async move {
        let mut wakeups = 0u64;
        while sub.changed().await.is_some() {
            wakeups += 1;
        }
        wakeups
    });
    g.bench_function("dispatch_with_subscriber", |b| {
        b.iter(|| {
            store
                .dispatch(black_box(TaskAction::Done))
                .expect("dispatch")
        });
    });
    store.shutdown();
    let wakeups = rt.block_on(follower).expect("the subscriber task");
    println!(
        "dispatch_with_subscriber: {} actions, {wakeups} subscriber wake-ups",
        store.seq()
    );

    // `commit` awaits the sequence number; on the master it is ready at
    // once, so this measures the async path's overhead.
    let store = start();
    g.bench_function("commit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(
                        store
                            .commit(black_box(TaskAction::Done))
                            .await
                            .expect("commit"),
                    );
                }
                t.elapsed()
            })
        });
    });
    store.shutdown();
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = dispatch
}
criterion_main!(benches);
