//! A hub's apply path: log messages applied in stream order, with the
//! session table deciding, the same way on every hub, which batches are
//! new; and the snapshots a hub saves and starts from. No I/O.

use super::wire::{Entry, Snapshot, WireError};
use crate::codec;
use crate::error::DispatchError;
use crate::log::Mark;
use crate::reducer::Reducer;
use crate::session::Seen;
use crate::validate::Committed;

/// What became of one batch of a log message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    pub session: u64,
    pub batch: u64,
    /// The seq of the batch's last action (its first application's, for a
    /// batch applied before) and its rejected actions, or why it was not
    /// applied.
    pub result: Result<Committed, DispatchError>,
}

impl<S: Reducer> crate::core::Shared<S> {
    /// Applies the batches of one log message in order. Every hub makes the
    /// same decisions from the same log, so they number actions
    /// identically: a batch its session already had applied (re-sent
    /// through another hub, or twice through one) is skipped and answered
    /// with its first seq; one that does not decode is skipped and refused.
    pub(crate) fn apply_entries(&self, entries: &[Entry<'_>]) -> Vec<Settled> {
        let mut out = Vec::with_capacity(entries.len());
        let seq = {
            let mut sessions = self.sessions.lock();
            let mut core = self.core.write();
            for e in entries {
                let result = match sessions.check(e.session, e.batch) {
                    // A batch whose seq is forgotten was applied before now.
                    Seen::Duplicate(done) => Ok(done.unwrap_or(Committed::at(core.seq))),
                    Seen::New => match codec::decode_packed::<S::Action>(e.count, e.packed) {
                        Err(err) => Err(DispatchError::Refused(format!(
                            "the batch could not be decoded: {err}"
                        ))),
                        Ok(actions) => {
                            // Checked by the hub that published it.
                            let seq = core.apply_packed(&actions, e.packed, None).seq;
                            let done = Committed {
                                seq,
                                rejected: e.rejected.clone(),
                            };
                            if let Some(log) = &mut core.log {
                                log.mark(
                                    Mark {
                                        session: e.session,
                                        batch: e.batch,
                                        seq,
                                        rejected: done.rejected.clone(),
                                    },
                                    e.count > 0,
                                );
                            }
                            sessions.record(e.session, e.batch, done.clone());
                            Ok(done)
                        }
                    },
                };
                out.push(Settled {
                    session: e.session,
                    batch: e.batch,
                    result,
                });
            }
            core.seq
        };
        self.publish(seq);
        out
    }

    /// The state as a snapshot taken after the message at `position`.
    pub(crate) fn hub_snapshot(&self, position: u64) -> postcard::Result<Snapshot> {
        let sessions = self.sessions.lock();
        let core = self.core.read();
        Ok(Snapshot {
            schema: S::SCHEMA.0,
            epoch: core.epoch,
            position,
            seq: core.seq,
            sessions: sessions.save(),
            state: codec::encode(&core.state)?,
        })
    }

    /// Starts over from a snapshot (a hub that starts, or one that fell
    /// behind a trimmed log); `before` runs once the snapshot is known to
    /// be readable, just before it replaces the state. A snapshot of
    /// another schema, or one that does not decode, changes nothing.
    pub(crate) fn install_snapshot(
        &self,
        snap: Snapshot,
        before: impl FnOnce(),
    ) -> Result<(), WireError> {
        if snap.schema != S::SCHEMA.0 {
            return Err(WireError::Schema);
        }
        let state: S =
            codec::decode(&snap.state).map_err(|e| WireError::Malformed(e.to_string()))?;
        before();
        {
            let mut sessions = self.sessions.lock();
            let mut core = self.core.write();
            sessions.restore(snap.sessions);
            core.install(state, snap.epoch, snap.seq);
        }
        self.publish_reset(snap.seq);
        Ok(())
    }

    /// Starts from an empty log of epoch `epoch`.
    pub(crate) fn install_empty(&self, epoch: u64) {
        {
            let mut sessions = self.sessions.lock();
            let mut core = self.core.write();
            sessions.restore(Vec::new());
            core.install(S::default(), epoch, 0);
        }
        self.publish_reset(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Shared;
    use crate::{reducer, ClusterStore};
    use serde::{Deserialize, Serialize};

    #[derive(ClusterStore, Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
    struct Tally {
        log: Vec<u8>,
    }

    #[reducer(Tally)]
    #[derive(Clone, Debug, Serialize, Deserialize)]
    enum TallyAction {
        Add(u8),
    }

    fn reduce(state: &mut Tally, action: &TallyAction) {
        let TallyAction::Add(x) = action;
        state.log.push(*x);
    }

    fn packed(xs: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &x in xs {
            codec::encode_into(&TallyAction::Add(x), &mut out).unwrap();
        }
        out
    }

    fn entry(session: u64, batch: u64, xs: &[u8]) -> (u64, u64, u32, Vec<u8>) {
        (session, batch, xs.len() as u32, packed(xs))
    }

    fn apply(shared: &Shared<Tally>, batches: &[(u64, u64, u32, Vec<u8>)]) -> Vec<Settled> {
        let entries: Vec<Entry<'_>> = batches
            .iter()
            .map(|(session, batch, count, packed)| Entry {
                session: *session,
                batch: *batch,
                count: *count,
                packed,
                rejected: Vec::new(),
            })
            .collect();
        shared.apply_entries(&entries)
    }

    #[test]
    fn batches_apply_once_in_log_order_and_bad_ones_are_refused_everywhere() {
        let hub = Shared::<Tally>::new(Default::default(), None);
        let first = apply(&hub, &[entry(1, 1, &[1, 2]), entry(2, 1, &[3])]);
        assert_eq!(
            first.iter().map(|s| s.result.clone()).collect::<Vec<_>>(),
            vec![Ok(Committed::at(2)), Ok(Committed::at(3))]
        );
        // Session 1's batch 1 again (re-sent through another hub), then its
        // batch 2, and a batch that does not decode.
        let again = apply(
            &hub,
            &[
                entry(1, 1, &[1, 2]),
                entry(1, 2, &[4]),
                (3, 1, 2, vec![0xff]),
            ],
        );
        assert_eq!(again[0].result, Ok(Committed::at(2)));
        assert_eq!(again[1].result, Ok(Committed::at(4)));
        assert!(matches!(&again[2].result, Err(DispatchError::Refused(_))));
        assert_eq!(hub.core.read().state.log, vec![1, 2, 3, 4]);
        assert_eq!(hub.core.read().seq, 4);

        // A second hub started from a snapshot answers the same way.
        let snap = hub.hub_snapshot(9).unwrap();
        assert_eq!((snap.position, snap.seq), (9, 4));
        let other = Shared::<Tally>::new(Default::default(), None);
        let mut ran = false;
        other.install_snapshot(snap.clone(), || ran = true).unwrap();
        assert!(ran);
        assert_eq!(other.core.read().state, hub.core.read().state);
        assert_eq!(
            apply(&other, &[entry(1, 2, &[4])])[0].result,
            Ok(Committed::at(4))
        );

        // A snapshot of another schema changes nothing.
        let mut foreign = snap;
        foreign.schema = [0; 32];
        let third = Shared::<Tally>::new(Default::default(), None);
        assert_eq!(
            third.install_snapshot(foreign, || panic!("not readable")),
            Err(WireError::Schema)
        );
        assert_eq!(third.core.read().seq, 0);
    }

    #[test]
    fn rejections_travel_with_the_batch_and_are_answered_again() {
        let hub = Shared::<Tally>::new(Default::default(), None);
        let rejected = vec![crate::validate::Rejection {
            index: 0,
            reason: "odd".into(),
        }];
        let xs = packed(&[2]);
        let e = Entry {
            session: 1,
            batch: 1,
            count: 1,
            packed: &xs,
            rejected: rejected.clone(),
        };
        let want = Ok(Committed { seq: 1, rejected });
        assert_eq!(hub.apply_entries(std::slice::from_ref(&e))[0].result, want);
        // Re-sent, and on a hub started from a snapshot.
        assert_eq!(hub.apply_entries(std::slice::from_ref(&e))[0].result, want);
        let other = Shared::<Tally>::new(Default::default(), None);
        other
            .install_snapshot(hub.hub_snapshot(1).unwrap(), || ())
            .unwrap();
        assert_eq!(other.apply_entries(&[e])[0].result, want);
        assert_eq!(other.core.read().state.log, vec![2]);
    }
}
