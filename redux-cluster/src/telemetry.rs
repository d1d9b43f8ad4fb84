//! Metrics through the `metrics` crate's facade (feature `metrics`): the
//! library records, the application installs whatever exporter it wants
//! (Prometheus, StatsD, …); without a recorder every call is a no-op, and
//! without the feature nothing is compiled in. Every metric has a `store`
//! label.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `redux_cluster_actions_applied_total` | counter | actions applied here |
//! | `redux_cluster_commit_seconds` | histogram | `commit()` from call to ack |
//! | `redux_cluster_peers` | gauge | followers joined to this store |
//! | `redux_cluster_events_total{event}` | counter | every [`crate::Event`] by kind: `peer_joined`, `peer_left`, `peer_lost`, `reconnecting`, `login_failed`, `banned`, `slow_consumer`, `peer_diverged`, `rolled_back`, `older_master`, `hub_fell_behind` |
//! | `redux_cluster_snapshots_sent_total` | counter | snapshots sent to followers (a join without resume, a follower behind the ring, a repair) |
//! | `redux_cluster_action_frames_sent_total` | counter | frames of actions sent to followers from the ring |
//! | `redux_cluster_follower_lag_actions` | histogram | how far behind a follower was each time its link was filled |
//! | `redux_cluster_queue_depth` | gauge | a follower's dispatches queued or in flight |
//! | `redux_cluster_hub_messages_total` | counter | messages a hub published to its store's log |
//! | `redux_cluster_hub_message_actions` | histogram | actions per message a hub published |

#[cfg(feature = "metrics")]
mod imp {
    use crate::Event;
    use metrics::{counter, gauge, histogram};

    pub fn applied(store: &'static str, n: u64) {
        counter!("redux_cluster_actions_applied_total", "store" => store).increment(n);
    }

    pub fn commit(store: &'static str, took: std::time::Duration) {
        histogram!("redux_cluster_commit_seconds", "store" => store).record(took.as_secs_f64());
    }

    pub fn event(store: &'static str, ev: &Event) {
        let kind = match ev {
            Event::PeerJoined { .. } => {
                gauge!("redux_cluster_peers", "store" => store).increment(1.0);
                "peer_joined"
            }
            Event::PeerLeft { clean, .. } => {
                gauge!("redux_cluster_peers", "store" => store).decrement(1.0);
                if *clean {
                    "peer_left"
                } else {
                    "peer_lost"
                }
            }
            Event::Reconnecting { .. } => "reconnecting",
            Event::LoginFailed { .. } => "login_failed",
            Event::Banned { .. } => "banned",
            Event::SlowConsumer { .. } => "slow_consumer",
            Event::PeerDiverged { .. } => "peer_diverged",
            Event::RolledBack { .. } => "rolled_back",
            Event::OlderMaster { .. } => "older_master",
            Event::HubFellBehind { .. } => "hub_fell_behind",
            Event::ActionRejected { .. } => "action_rejected",
            Event::DispatchRejected { .. } => "dispatch_rejected",
        };
        counter!("redux_cluster_events_total", "store" => store, "event" => kind).increment(1);
    }

    pub fn snapshot_sent(store: &'static str) {
        counter!("redux_cluster_snapshots_sent_total", "store" => store).increment(1);
    }

    pub fn actions_sent(store: &'static str) {
        counter!("redux_cluster_action_frames_sent_total", "store" => store).increment(1);
    }

    pub fn lag(store: &'static str, behind: u64) {
        histogram!("redux_cluster_follower_lag_actions", "store" => store).record(behind as f64);
    }

    pub fn queue_depth(store: &'static str, n: usize) {
        gauge!("redux_cluster_queue_depth", "store" => store).set(n as f64);
    }

    #[cfg(feature = "nats")]
    pub fn hub_message(store: &'static str, actions: usize) {
        counter!("redux_cluster_hub_messages_total", "store" => store).increment(1);
        histogram!("redux_cluster_hub_message_actions", "store" => store).record(actions as f64);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(clippy::missing_const_for_fn)]
mod imp {
    use crate::Event;

    #[inline(always)]
    pub fn applied(_: &'static str, _: u64) {}
    #[inline(always)]
    pub fn commit(_: &'static str, _: std::time::Duration) {}
    #[inline(always)]
    pub fn event(_: &'static str, _: &Event) {}
    #[inline(always)]
    pub fn snapshot_sent(_: &'static str) {}
    #[inline(always)]
    pub fn actions_sent(_: &'static str) {}
    #[inline(always)]
    pub fn lag(_: &'static str, _: u64) {}
    #[inline(always)]
    pub fn queue_depth(_: &'static str, _: usize) {}
    #[inline(always)]
    #[cfg(feature = "nats")]
    pub fn hub_message(_: &'static str, _: usize) {}
}

pub(crate) use imp::*;
