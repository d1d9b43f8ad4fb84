//! The state as JSON, and a bounded ring of JSON Patch diffs between the
//! versions browsers have seen.
//!
//! One watcher per WebSocket server turns the store into JSON after applies
//! (coalesced: under load one diff covers several actions) and diffs it
//! against the previous version, once for every client. Each client only
//! copies text out of the ring, so a hundred tabs cost one serialization and
//! one diff per change, not a hundred.

use super::wire;
use crate::codec;
use crate::core::Shared;
use crate::log::Read;
use crate::reducer::Reducer;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// How much history is kept for clients that fall behind or reconnect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most diffs.
    pub entries: usize,
    /// Most bytes of diff text.
    pub bytes: usize,
}

/// One diff: the state at `from` becomes the state at the next entry's
/// `from` (or the newest version, for the last entry).
struct Entry {
    from: u64,
    /// JSON text of each operation, in order.
    ops: Vec<String>,
    /// JSON text of each action it covers (`{seq, action}`), when sent.
    actions: Vec<String>,
    bytes: usize,
}

/// What a client at some position needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// Nothing: it has the newest version.
    UpToDate,
    /// A frame to send, and the position it brings the client to.
    Frame {
        text: Utf8Bytes,
        epoch: u64,
        seq: u64,
    },
}

/// The newest version as JSON, and the diffs that led to it.
pub(crate) struct History {
    epoch: u64,
    seq: u64,
    value: Value,
    /// Snapshot frame of `value`, made on first demand.
    snapshot: Option<Utf8Bytes>,
    ring: VecDeque<Entry>,
    bytes: usize,
    limits: Limits,
}

impl History {
    pub fn new(epoch: u64, seq: u64, value: Value, limits: Limits) -> Self {
        Self {
            epoch,
            seq,
            value,
            snapshot: None,
            ring: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    /// Where the newest version stands.
    pub fn position(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }

    /// Records the version at (`epoch`, `seq`), reached by `actions` (as
    /// JSON, possibly none). A new epoch, or a sequence number that went
    /// back (a follower reset by its master), drops the ring: clients then
    /// get a snapshot.
    pub fn advance(&mut self, epoch: u64, seq: u64, value: Value, actions: Vec<String>) {
        if epoch == self.epoch && seq == self.seq && value == self.value {
            return;
        }
        if epoch != self.epoch || seq <= self.seq {
            self.ring.clear();
            self.bytes = 0;
        } else {
            let patch = json_patch::diff(&self.value, &value);
            let ops: Vec<String> = patch
                .0
                .iter()
                .filter_map(|op| serde_json::to_string(op).ok())
                .collect();
            let bytes = ops.iter().chain(&actions).map(String::len).sum::<usize>() + 16;
            self.bytes += bytes;
            self.ring.push_back(Entry {
                from: self.seq,
                ops,
                actions,
                bytes,
            });
            while self.ring.len() > self.limits.entries.max(1)
                || (self.bytes > self.limits.bytes && self.ring.len() > 1)
            {
                if let Some(e) = self.ring.pop_front() {
                    self.bytes -= e.bytes;
                }
            }
            if self.bytes > self.limits.bytes {
                // One diff larger than the whole budget: snapshots only.
                self.ring.clear();
                self.bytes = 0;
            }
        }
        self.epoch = epoch;
        self.seq = seq;
        self.value = value;
        self.snapshot = None;
    }

    /// What a client at `at` (`None`: knows nothing) needs to reach the
    /// newest version: the missing diffs as one patch when the ring still
    /// has them all, else a snapshot.
    pub fn catch_up(&mut self, at: Option<(u64, u64)>) -> CatchUp {
        if let Some((epoch, seq)) = at {
            if epoch == self.epoch {
                if seq == self.seq {
                    return CatchUp::UpToDate;
                }
                let i = self.ring.partition_point(|e| e.from < seq);
                if self.ring.get(i).is_some_and(|e| e.from == seq) {
                    let entries = || self.ring.range(i..);
                    let ops = entries().flat_map(|e| e.ops.iter().map(String::as_str));
                    let actions = entries().flat_map(|e| e.actions.iter().map(String::as_str));
                    let text = wire::patch(self.epoch, seq, self.seq, ops, actions);
                    return CatchUp::Frame {
                        text: text.into(),
                        epoch: self.epoch,
                        seq: self.seq,
                    };
                }
            }
        }
        let text = match &self.snapshot {
            Some(t) => t.clone(),
            None => {
                // `Value`'s own serializer does not fail.
                let state = serde_json::to_string(&self.value).unwrap_or_default();
                let t = Utf8Bytes::from(wire::snapshot(self.epoch, self.seq, &state));
                self.snapshot = Some(t.clone());
                t
            }
        };
        CatchUp::Frame {
            text,
            epoch: self.epoch,
            seq: self.seq,
        }
    }
}

/// The state as JSON with its position, read under the store's lock.
///
/// # Errors
/// The state's `Serialize` failed (a map with non-string keys, say).
pub(crate) fn read<S: Reducer>(shared: &Shared<S>) -> Result<(u64, u64, Value), serde_json::Error> {
    let core = shared.core.read();
    let value = serde_json::to_value(&core.state)?;
    Ok((core.epoch, core.seq, value))
}

/// A version to record: the state as JSON at (epoch, seq), and the
/// actions after `after` that led there (when asked for).
type Version = (u64, u64, Value, Vec<String>);

/// [`read`], with the actions after `after` as JSON when `after` is given
/// (those the ring still holds).
fn read_version<S: Reducer>(
    shared: &Shared<S>,
    after: Option<u64>,
) -> Result<Version, serde_json::Error> {
    let core = shared.core.read();
    let value = serde_json::to_value(&core.state)?;
    let mut actions = Vec::new();
    if let (Some(mut at), Some(log)) = (after, &core.log) {
        while at < core.seq {
            let Read::Actions {
                first_seq,
                count,
                packed,
            } = log.read_until(at + 1, core.seq, usize::MAX)
            else {
                break;
            };
            let Ok(decoded) = codec::decode_packed::<S::Action>(count, packed) else {
                break;
            };
            for (i, (a, _)) in decoded.iter().enumerate() {
                actions.push(wire::action(first_seq + i as u64, a)?);
            }
            at = first_seq + u64::from(count) - 1;
        }
    }
    Ok((core.epoch, core.seq, value, actions))
}

/// Follows the store: after applies, records the new version and tells the
/// clients (through `tx`, which coalesces). Runs until aborted.
pub(crate) async fn watch<S: Reducer>(
    shared: Arc<Shared<S>>,
    history: Arc<Mutex<History>>,
    tx: watch::Sender<(u64, u64)>,
    with_actions: bool,
) {
    let wake = Arc::new(Notify::new());
    shared.attach_link(&wake);
    let _detach = Detach {
        shared: Arc::clone(&shared),
        wake: Arc::clone(&wake),
    };
    let mut reported = false;
    // A state read past what is durable (journal mode), held until it is:
    // browsers never see an action the master could still lose.
    let mut held: Option<Version> = None;
    loop {
        // A change between the last read and here left a permit: no wakeup
        // is lost.
        if held.is_none() {
            let after = with_actions.then(|| history.lock().position().1);
            match read_version(&shared, after) {
                Ok(v) => {
                    held = Some(v);
                    reported = false;
                }
                Err(e) if !reported => {
                    reported = true;
                    tracing::warn!(store = S::NAME, error = %e, "the state cannot be sent to browsers as JSON");
                }
                Err(_) => {}
            }
        }
        if let Some((epoch, seq, value, actions)) =
            held.take_if(|(_, seq, _, _)| shared.visible(*seq) >= *seq)
        {
            let pos = {
                let mut h = history.lock();
                h.advance(epoch, seq, value, actions);
                h.position()
            };
            tx.send_replace(pos);
        }
        if shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        wake.notified().await;
    }
}

struct Detach<S: Reducer> {
    shared: Arc<Shared<S>>,
    wake: Arc<Notify>,
}

impl<S: Reducer> Drop for Detach<S> {
    fn drop(&mut self) {
        self.shared.detach_link(&self.wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits {
            entries: 3,
            bytes: 1 << 20,
        }
    }

    fn apply(doc: &mut Value, frame: &str) -> (u64, u64) {
        let f: Value = serde_json::from_str(frame).expect("frame");
        match f["type"].as_str() {
            Some("snapshot") => *doc = f["state"].clone(),
            Some("patch") => {
                let p: json_patch::Patch = serde_json::from_value(f["ops"].clone()).expect("ops");
                json_patch::patch(doc, &p).expect("applies");
            }
            other => panic!("{other:?}"),
        }
        let epoch = f["epoch"]
            .as_str()
            .and_then(|e| e.parse().ok())
            .expect("epoch");
        (epoch, f["seq"].as_u64().expect("seq"))
    }

    #[test]
    fn coalesced_patches_reach_the_newest_state() {
        let mut h = History::new(7, 0, json!({"n": 0, "items": []}), limits());
        let mut doc = Value::Null;
        let CatchUp::Frame { text, .. } = h.catch_up(None) else {
            panic!("snapshot")
        };
        let mut at = apply(&mut doc, &text);
        assert_eq!(at, (7, 0));
        h.advance(7, 2, json!({"n": 2, "items": ["a", "b"]}), Vec::new());
        h.advance(
            7,
            3,
            json!({"n": 3, "items": ["b"], "x": {"a/b": 1}}),
            Vec::new(),
        );
        let CatchUp::Frame { text, seq, .. } = h.catch_up(Some(at)) else {
            panic!("patch")
        };
        assert!(text.contains(r#""type":"patch""#), "{text}");
        assert_eq!(seq, 3);
        at = apply(&mut doc, &text);
        assert_eq!(at, (7, 3));
        assert_eq!(doc, json!({"n": 3, "items": ["b"], "x": {"a/b": 1}}));
        assert_eq!(h.catch_up(Some(at)), CatchUp::UpToDate);
    }

    #[test]
    fn evicted_or_foreign_positions_get_a_snapshot() {
        let mut h = History::new(7, 0, json!(0), limits());
        for s in 1..=5 {
            h.advance(7, s, json!(s), Vec::new());
        }
        let snap =
            |c: CatchUp| matches!(c, CatchUp::Frame { text, .. } if text.contains("snapshot"));
        assert!(snap(h.catch_up(Some((7, 1)))), "evicted");
        assert!(!snap(h.catch_up(Some((7, 2)))), "still in the ring");
        assert!(snap(h.catch_up(Some((8, 2)))), "another epoch");
        assert!(snap(h.catch_up(Some((7, 99)))), "ahead of us");
        h.advance(9, 1, json!(1), Vec::new());
        assert!(snap(h.catch_up(Some((7, 5)))), "epoch changed");
        assert_eq!(h.catch_up(Some((9, 1))), CatchUp::UpToDate);
    }

    #[test]
    fn actions_ride_with_their_patches_in_order() {
        let mut h = History::new(7, 0, json!(0), limits());
        let at = Some((7, 0));
        h.advance(
            7,
            2,
            json!(2),
            vec![r#"{"seq":1}"#.into(), r#"{"seq":2}"#.into()],
        );
        h.advance(7, 3, json!(3), vec![r#"{"seq":3}"#.into()]);
        let CatchUp::Frame { text, .. } = h.catch_up(at) else {
            panic!("patch")
        };
        let f: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(f["actions"], json!([{"seq": 1}, {"seq": 2}, {"seq": 3}]));
        h.advance(7, 4, json!(4), Vec::new());
        let CatchUp::Frame { text, .. } = h.catch_up(Some((7, 3))) else {
            panic!("patch")
        };
        assert!(!text.contains("actions"), "none to send: {text}");
    }
}
