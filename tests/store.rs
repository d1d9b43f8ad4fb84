//! A store in one process, as its own master: sequence numbers, reads,
//! subscriptions, waits and shutdown. Every test waits on an event (a
//! sequence number, a state, a closed store), never on a timer; the
//! `timeout`s only turn a lost wake-up into a failure instead of a hang.

use redux_cluster::{DispatchError, Reducer, Role, StartError};
use std::future::Future;
use std::time::Duration;

/// Declares one counter store per module. A process runs at most one store
/// of a name, and tests run in parallel, so each test has a store of its own.
macro_rules! counter_stores {
    ($($module:ident: $name:literal),* $(,)?) => {$(
        mod $module {
            use redux_cluster::{reducer, ClusterStore, Store};
            use serde::{Deserialize, Serialize};

            #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
            #[cluster_store(name = $name)]
            pub struct Counter {
                pub total: u64,
                pub applied: u64,
                pub log: Vec<u64>,
            }

            #[reducer(Counter)]
            #[derive(Clone, Debug, Serialize, Deserialize)]
            pub enum CounterAction {
                Add(u64),
                /// Records its argument, to check order.
                Mark(u64),
            }

            fn reduce(state: &mut Counter, action: &CounterAction) {
                state.applied += 1;
                match action {
                    CounterAction::Add(n) => state.total += n,
                    CounterAction::Mark(n) => state.log.push(*n),
                }
            }

            #[allow(dead_code)]
            pub fn start() -> Store<Counter> {
                Counter::start_master().expect("a plain process is its own master")
            }
        }
    )*};
}

counter_stores! {
    numbering: "numbering",
    guard: "guard",
    busy_subscriber: "busy_subscriber",
    subscriber_task: "subscriber_task",
    lost_wakeup: "lost_wakeup",
    wait_for: "wait_for",
    wait_until: "wait_until",
    many_threads: "many_threads",
    roles: "roles",
    duplicate: "duplicate",
    shutdown: "shutdown",
    guard_dispatch: "guard_dispatch",
    close_master: "close_master",
    streams: "streams",
    selections: "selections",
    action_stream: "action_stream",
    missed_actions: "missed_actions",
}

/// Fails the test if `fut` does not finish: a guard against a lost wake-up
/// hanging the suite. It never delays a passing test.
async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("the awaited event never came")
}

#[tokio::test]
async fn dispatch_and_commit_number_actions_in_order() {
    use numbering::{start, Counter, CounterAction};
    let store = start();
    assert_eq!(store.seq(), 0);
    store.dispatch(CounterAction::Add(2)).expect("dispatch");
    assert_eq!(store.seq(), 1, "the master applies before dispatch returns");
    assert_eq!(store.commit(CounterAction::Add(3)).await, Ok(2));
    assert_eq!(store.commit(CounterAction::Mark(7)).await, Ok(3));
    store.dispatch(CounterAction::Mark(8)).expect("dispatch");
    assert_eq!(store.seq(), 4);
    // A batch takes consecutive numbers.
    store
        .dispatch_all(&[CounterAction::Mark(9), CounterAction::Add(4)])
        .expect("dispatch_all");
    assert_eq!(store.seq(), 6);
    let (seq, state) = store.with(Clone::clone);
    assert_eq!(seq, 6);
    assert_eq!(
        state,
        Counter {
            total: 9,
            applied: 6,
            log: vec![7, 8, 9],
        }
    );
    store.shutdown();
}

#[tokio::test]
async fn state_is_read_through_a_guard() {
    use guard::{start, CounterAction};
    let store = start();
    store.dispatch(CounterAction::Add(40)).expect("dispatch");
    {
        let guard = store.state();
        assert_eq!(guard.total, 40);
        // Several readers at once.
        let again = store.state();
        assert_eq!(again.applied, guard.applied);
    }
    assert_eq!(store.with(|s| s.total * 2), (1, 80));
    assert_eq!(store.get_state().total, 40);
    // A clone of the handle reads and writes the same store.
    let other = store.clone();
    other.dispatch(CounterAction::Add(2)).expect("dispatch");
    assert_eq!(store.state().total, 42);
    assert_eq!(store.seq(), 2);
    assert_eq!(store.epoch(), other.epoch());
    store.shutdown();
}

#[tokio::test]
async fn a_busy_subscriber_sees_the_final_seq_once() {
    use busy_subscriber::{start, CounterAction};
    let store = start();
    let mut sub = store.subscribe();
    for i in 0..100 {
        store.dispatch(CounterAction::Mark(i)).expect("dispatch");
    }
    // A hundred changes while the subscriber was not looking: one wake-up,
    // at the newest sequence number, never a backlog.
    assert_eq!(within(sub.changed()).await, Some(100));
    assert_eq!(sub.state().log.len(), 100);
    store.dispatch(CounterAction::Mark(100)).expect("dispatch");
    assert_eq!(within(sub.changed()).await, Some(101));
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_task_follows_a_stream_of_dispatches() {
    use subscriber_task::{start, CounterAction};
    const N: u64 = 20_000;
    let store = start();
    let mut sub = store.subscribe();
    let follower = tokio::spawn(async move {
        let mut wakeups = 0u64;
        let mut last = 0;
        while let Some(seq) = sub.changed().await {
            assert!(seq > last, "sequence numbers only grow: {last} then {seq}");
            last = seq;
            wakeups += 1;
            // The state is at least as new as the seq just reported.
            assert!(sub.state().applied >= seq);
            if seq == N {
                break;
            }
        }
        (wakeups, last)
    });
    for i in 0..N {
        store.dispatch(CounterAction::Add(i)).expect("dispatch");
    }
    let (wakeups, last) = within(follower).await.expect("the follower task");
    assert_eq!(last, N);
    assert!(wakeups <= N, "{wakeups} wake-ups for {N} actions");
    assert_eq!(store.state().total, N * (N - 1) / 2);
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wake_up_is_lost() {
    use lost_wakeup::{start, CounterAction};
    // One change at a time, each racing the subscriber going to sleep.
    let store = start();
    for round in 1..=2_000u64 {
        let mut sub = store.subscribe();
        let writer = store.clone();
        let handle = std::thread::spawn(move || {
            writer.dispatch(CounterAction::Add(1)).expect("dispatch");
        });
        assert_eq!(within(sub.changed()).await, Some(round));
        handle.join().expect("the writer thread");
    }
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_returns_once_the_seq_is_applied() {
    use wait_for::{start, CounterAction};
    let store = start();
    let waiter = tokio::spawn({
        let store = store.clone();
        async move { store.wait_for(50).await }
    });
    for _ in 0..60 {
        store.dispatch(CounterAction::Add(1)).expect("dispatch");
    }
    let seen = within(waiter)
        .await
        .expect("the waiter task")
        .expect("not closed");
    assert!(seen >= 50, "{seen}");
    // Already reached: returns at once with the current seq.
    assert_eq!(store.wait_for(10).await, Ok(60));
    assert_eq!(store.wait_for(0).await, Ok(60));
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_returns_once_the_state_matches() {
    use wait_until::{start, CounterAction};
    let store = start();
    let waiter = tokio::spawn({
        let store = store.clone();
        async move { store.wait_until(|s| s.log.contains(&3)).await }
    });
    for i in 0..5 {
        store.dispatch(CounterAction::Mark(i)).expect("dispatch");
    }
    let seq = within(waiter)
        .await
        .expect("the waiter task")
        .expect("not closed");
    // The returned seq is one at which the predicate held.
    assert!((4..=5).contains(&seq), "{seq}");
    // Already true: returns at once.
    assert_eq!(store.wait_until(|s| s.applied == 5).await, Ok(5));
    store.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatches_from_many_threads_are_totally_ordered() {
    use many_threads::{start, CounterAction};
    let store = start();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    store
                        .dispatch(CounterAction::Mark(t * 1_000 + i))
                        .expect("dispatch");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a dispatching thread");
    }
    assert_eq!(store.seq(), 4_000);
    let state = store.get_state();
    assert_eq!(state.applied, 4_000);
    // Each thread's actions keep their order within the total order.
    for t in 0..4u64 {
        let mine: Vec<u64> = state
            .log
            .iter()
            .copied()
            .filter(|v| v / 1_000 == t)
            .collect();
        let expected: Vec<u64> = (t * 1_000..(t + 1) * 1_000).collect();
        assert_eq!(mine, expected, "thread {t}");
    }
    store.shutdown();
}

#[tokio::test]
async fn a_master_reports_its_role_and_identity() {
    use roles::{start, Counter};
    let store = start();
    let roles = store.roles();
    assert!(roles.contains(Role::Master));
    assert!(!roles.contains(Role::Worker));
    assert!(!roles.contains(Role::Client));
    assert_eq!(roles.to_vec(), [Role::Master]);
    assert_eq!(format!("{roles:?}"), "[Master]");
    assert!(store.connected());
    assert_eq!(store.schema_hash(), <Counter as Reducer>::SCHEMA);
    assert_eq!(store.id(), <Counter as Reducer>::ID);
    assert_ne!(store.epoch(), 0);
    let debug = format!("{store:?}");
    assert!(debug.contains("name: \"roles\""), "{debug}");
    // A store started afresh (once the name is free again) is a new epoch.
    let epoch = store.epoch();
    store.shutdown();
    let again = start();
    assert_ne!(again.epoch(), epoch);
    again.shutdown();
}

#[tokio::test]
async fn one_store_of_a_name_per_process() {
    use duplicate::{start, Counter};
    let first = start();
    match Counter::start_master() {
        Err(StartError::DuplicateStore(name)) => assert_eq!(name, "duplicate"),
        other => panic!("expected DuplicateStore, got {other:?}"),
    }
    // Shutting the first down frees the name.
    first.shutdown();
    let second = Counter::start_master().expect("the name is free again");
    second.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_subscriptions_and_refuses_dispatch() {
    use shutdown::{start, CounterAction};
    let store = start();
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    let mut sub = store.subscribe();
    let subscriber = tokio::spawn(async move { sub.changed().await });
    let waiter = tokio::spawn({
        let store = store.clone();
        async move { store.wait_for(1_000).await }
    });
    let until = tokio::spawn({
        let store = store.clone();
        async move { store.wait_until(|s| s.total > 1_000).await }
    });
    // Let the three tasks park first, if they are quick; the result must
    // not depend on whether they did.
    tokio::task::yield_now().await;
    store.shutdown();
    assert_eq!(within(subscriber).await.expect("the subscriber task"), None);
    assert_eq!(
        within(waiter).await.expect("the waiter task"),
        Err(DispatchError::Closed)
    );
    assert_eq!(
        within(until).await.expect("the wait_until task"),
        Err(DispatchError::Closed)
    );
    assert_eq!(
        store.dispatch(CounterAction::Add(1)),
        Err(DispatchError::Closed)
    );
    assert_eq!(
        store.commit(CounterAction::Add(1)).await,
        Err(DispatchError::Closed)
    );
    // Subscribing after the shutdown ends at once too.
    assert_eq!(within(store.subscribe().changed()).await, None);
    // The last state stays readable.
    assert_eq!(store.state().total, 1);
    assert_eq!(store.seq(), 1);
    assert_eq!(
        DispatchError::Closed.to_string(),
        "the store has been shut down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatching_while_this_thread_holds_a_guard_is_refused_not_a_deadlock() {
    use guard_dispatch::{start, CounterAction};
    let store = start();
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    {
        // The pattern that used to hang: decide from a guard, dispatch.
        let guard = store.state();
        let res = if guard.total == 1 {
            store.dispatch(CounterAction::Add(1))
        } else {
            Ok(())
        };
        assert_eq!(res, Err(DispatchError::StateBorrowed));
        assert_eq!(guard.total, 1, "nothing was applied");
    }
    let (_, inside) = store.with(|_| store.dispatch(CounterAction::Add(1)));
    assert_eq!(inside, Err(DispatchError::StateBorrowed));
    // A guard held by another thread only delays a dispatch.
    let other = store.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let g = other.state();
        held_tx.send(g.total).expect("send");
        release_rx.recv().expect("release");
    });
    assert_eq!(held_rx.recv().expect("held"), 1);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || store.dispatch(CounterAction::Add(1)))
    };
    release_tx.send(()).expect("release");
    reader.join().expect("reader");
    assert_eq!(writer.join().expect("writer"), Ok(()));
    // Once the guard is gone, this thread dispatches again.
    within(store.commit(CounterAction::Add(1)))
        .await
        .expect("commit");
    assert_eq!(store.state().total, 3);
    store.shutdown();
}

#[tokio::test]
async fn close_on_a_master_stops_the_store() {
    use close_master::{start, CounterAction};
    let store = start();
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    within(store.close())
        .await
        .expect("nothing queued on a master");
    assert_eq!(
        store.dispatch(CounterAction::Add(1)),
        Err(DispatchError::Closed)
    );
}

#[tokio::test]
async fn a_subscription_is_a_stream_of_seqs() {
    use futures_util::StreamExt;
    use streams::{start, CounterAction};
    let store = start();
    let mut changes = store.subscribe();
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    assert_eq!(within(changes.next()).await, Some(1));
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    // Two changes before the read: one item, at the newest seq.
    assert_eq!(within(changes.next()).await, Some(3));
    store.shutdown();
    assert_eq!(within(changes.next()).await, None);
}

#[tokio::test]
async fn a_selection_yields_only_when_its_part_changes() {
    use futures_util::StreamExt;
    use selections::{start, CounterAction};
    let store = start();
    let mut total = store.select(|s| s.total);
    assert_eq!(within(total.next()).await, Some(0), "the value now, first");
    // A change elsewhere in the state, then one of the total: the next item
    // is the new total, with no repeat of the old one before it.
    store.dispatch(CounterAction::Mark(7)).expect("dispatch");
    store.dispatch(CounterAction::Add(5)).expect("dispatch");
    assert_eq!(within(total.next()).await, Some(5));
    store.dispatch(CounterAction::Mark(8)).expect("dispatch");
    store.dispatch(CounterAction::Add(0)).expect("dispatch");
    store.dispatch(CounterAction::Add(2)).expect("dispatch");
    assert_eq!(within(total.next()).await, Some(7));
    store.shutdown();
    assert_eq!(within(total.next()).await, None);
}

#[tokio::test]
async fn the_action_stream_shows_every_action_with_its_seq() {
    use action_stream::{start, CounterAction};
    use futures_util::StreamExt;
    let store = start();
    store
        .dispatch(CounterAction::Add(1))
        .expect("before the stream");
    let mut actions = store.actions();
    store.dispatch(CounterAction::Mark(10)).expect("dispatch");
    store.dispatch(CounterAction::Add(4)).expect("dispatch");
    let seen: Vec<_> = within(actions.by_ref().take(2).collect::<Vec<_>>()).await;
    let seen: Vec<(u64, String)> = seen
        .into_iter()
        .map(|r| {
            let (seq, a) = r.expect("nothing missed");
            (seq, format!("{a:?}"))
        })
        .collect();
    assert_eq!(
        seen,
        vec![(2, "Mark(10)".to_string()), (3, "Add(4)".to_string())]
    );
    store.shutdown();
    assert!(within(actions.next()).await.is_none());
}

#[tokio::test]
async fn a_slow_action_reader_is_told_what_it_missed() {
    use missed_actions::{Counter, CounterAction};
    let store = Counter::builder()
        .history(1 << 20, 64)
        .start()
        .expect("master");
    let mut actions = store.actions();
    // Far more than the ring keeps, before the reader reads.
    for i in 0..1000 {
        store.dispatch(CounterAction::Mark(i)).expect("dispatch");
    }
    match within(actions.next()).await {
        Some(Err(missed)) => {
            assert_eq!(missed.first, 1);
            assert_eq!(missed.last, 1000);
        }
        other => panic!("expected to hear what was missed, got {other:?}"),
    }
    // Then it goes on from the newest.
    store.dispatch(CounterAction::Add(1)).expect("dispatch");
    match within(actions.next()).await {
        Some(Ok((seq, CounterAction::Add(1)))) => assert_eq!(seq, 1001),
        other => panic!("expected the next action, got {other:?}"),
    }
    store.shutdown();
}
