//! A store seen from the link that follows its master.

use super::Sink;
use crate::codec;
use crate::core::{LinkStatus, Shared};
use crate::error::{DispatchError, SchemaMismatch, SyncError};
use crate::protocol::{Channel, FrameCodec, JoinRefusal, JoinRefused, Position};
use crate::reducer::Reducer;
use crate::schema::{SchemaHash, StoreId};
use std::sync::atomic::Ordering;

impl<S: Reducer> Sink for Shared<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn id(&self) -> StoreId {
        S::ID
    }

    fn schema(&self) -> SchemaHash {
        S::SCHEMA
    }

    fn older_schemas(&self) -> Vec<SchemaHash> {
        crate::history::older_schemas::<S>()
    }

    fn describe(&self) -> String {
        crate::reducer::describe_store::<S>()
    }

    fn position(&self) -> Option<Position> {
        let f = self.follower.as_ref()?;
        if !f.joined_once.load(Ordering::SeqCst) {
            return None;
        }
        let core = self.core.read();
        Some(Position {
            epoch: core.epoch,
            seq: core.seq,
        })
    }

    fn session(&self) -> (u64, u64) {
        match &self.follower {
            Some(f) => (f.session, f.queue.lock().acked_batch()),
            None => (0, 0),
        }
    }

    fn on_joined(&self, _epoch: u64, applied: &[(u64, u64)], master_schema: SchemaHash) {
        let applied: Vec<(u64, crate::validate::Committed)> = applied
            .iter()
            .map(|&(batch, seq)| (batch, crate::validate::Committed::at(seq)))
            .collect();
        self.rejoined(&applied);
        if let Some(f) = &self.follower {
            *f.master_schema.lock() = Some(master_schema);
            if master_schema != S::SCHEMA {
                tracing::warn!(store = S::NAME, master = %master_schema, "the master runs an earlier version of this store: following it, converting; dispatches wait for its upgrade");
                self.event(crate::Event::OlderMaster {
                    schema: master_schema,
                });
            }
            f.joined_once.store(true, Ordering::SeqCst);
            self.connected.store(true, Ordering::SeqCst);
            f.status.send_replace(LinkStatus::Joined);
        }
    }

    fn on_snapshot(&self, epoch: u64, seq: u64, state: &[u8]) -> Result<(), SyncError> {
        let state: S = match self.older_master() {
            None => codec::decode(state).map_err(SyncError::decode)?,
            Some(schema) => {
                crate::history::read_state::<S>(schema, state).map_err(SyncError::Decode)?
            }
        };
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        let joined = self
            .follower
            .as_ref()
            .is_some_and(|f| f.joined_once.load(Ordering::SeqCst));
        let (from, applied) = {
            let mut core = self.core.write();
            let from = (core.epoch, core.seq);
            core.install(state, epoch, seq);
            (from, seq)
        };
        self.publish_reset(applied);
        self.resolve_acks(applied);
        // A snapshot behind this store's position, or from another epoch,
        // means the master could not prove our history is in its own (it
        // restarted without a journal, say): what we had is rolled back.
        let rolled =
            joined && ((from.0 != epoch && from.1 > 0) || (from.0 == epoch && seq < from.1));
        if rolled {
            self.event(crate::Event::RolledBack {
                from: crate::Position {
                    epoch: from.0,
                    seq: from.1,
                },
                to: crate::Position { epoch, seq },
            });
        }
        Ok(())
    }

    fn on_actions(&self, first_seq: u64, count: u32, packed: &[u8]) -> Result<(), SyncError> {
        let converted;
        let (actions, packed) = match self.older_master() {
            None => (
                codec::decode_packed::<S::Action>(count, packed).map_err(SyncError::decode)?,
                packed,
            ),
            // An earlier version's actions, converted and encoded as this
            // version's for the ring (and this store's own followers).
            Some(schema) => {
                let (actions, bytes) = crate::history::convert_packed::<S>(schema, count, packed)
                    .map_err(SyncError::Decode)?;
                converted = bytes;
                (actions, &converted[..])
            }
        };
        let applied = {
            let mut core = self.core.write();
            let expected = core.seq + 1;
            if first_seq > expected {
                return Err(SyncError::Gap {
                    expected,
                    got: first_seq,
                });
            }
            // Anything at or below our seq is already applied: skip it.
            let skip = ((expected - first_seq) as usize).min(actions.len());
            core.apply_packed(&actions[skip..], packed, None).seq
        };
        self.publish(applied);
        self.resolve_acks(applied);
        Ok(())
    }

    fn on_digest(&self, seq: u64, digest: &[u8; 32]) -> Result<(), SyncError> {
        if self.older_master().is_some() {
            // A digest of the earlier version's state: not comparable.
            return Ok(());
        }
        let core = self.core.read();
        if core.seq != seq {
            // Not at the same point (cannot happen in order); nothing to
            // compare.
            return Ok(());
        }
        match self.digest_of(&core) {
            Some(ours) if ours != *digest => Err(SyncError::Diverged { seq }),
            _ => Ok(()),
        }
    }

    fn on_ack(&self, batch: u64, _request: u64, seq: u64) {
        self.ack(batch, seq);
    }

    fn on_nack(&self, batch: u64, _request: u64, reason: &str) {
        self.nack(batch, DispatchError::Refused(reason.to_string()));
    }

    fn on_rejected(&self, batch: u64, index: u32, reason: &str) {
        self.rejected_by_master(batch, index, reason);
    }

    fn on_refused(&self, r: &JoinRefused<'_>) {
        let err = match (r.reason, r.schema) {
            (JoinRefusal::Outdated, theirs) => crate::JoinError::Outdated {
                name: S::NAME.to_string(),
                master: theirs,
            },
            (JoinRefusal::SchemaMismatch, Some(theirs)) => {
                crate::JoinError::SchemaMismatch(SchemaMismatch::new(
                    S::NAME,
                    "the master",
                    (S::SCHEMA, &Sink::describe(self)),
                    (theirs, r.describe),
                ))
            }
            _ => crate::JoinError::UnknownStore {
                name: S::NAME.to_string(),
            },
        };
        self.fail_all(DispatchError::Refused(err.to_string()), true);
        if let Some(f) = &self.follower {
            f.status.send_replace(LinkStatus::Refused(err.clone()));
        }
        self.report(match err {
            crate::JoinError::SchemaMismatch(m) => crate::Error::SchemaMismatch(m),
            e @ crate::JoinError::Outdated { .. } => crate::Error::Outdated(e),
            _ => crate::Error::UnknownStore {
                name: S::NAME.to_string(),
                peer: "the master".into(),
            },
        });
    }

    fn on_fatal(&self, why: &crate::JoinError) {
        self.connected.store(false, Ordering::SeqCst);
        let dropped = self.fail_all(DispatchError::Refused(why.to_string()), true);
        if let Some(f) = &self.follower {
            f.status.send_replace(LinkStatus::Refused(why.clone()));
        }
        if dropped > 0 {
            self.report(crate::Error::Dropped(dropped));
        }
    }

    fn on_unavailable(&self, detail: &str) {
        if let Some(f) = &self.follower {
            f.status
                .send_replace(LinkStatus::Unavailable(crate::JoinError::ServerFull {
                    detail: detail.to_string(),
                }));
        }
    }

    fn on_retry(&self, cause: &str) {
        if let Some(f) = &self.follower {
            *f.last_failure.lock() = Some(cause.to_string());
        }
        self.event(crate::Event::Reconnecting {
            cause: cause.to_string(),
        });
    }

    fn on_down(&self, will_retry: bool) {
        self.connected.store(false, Ordering::SeqCst);
        // A reconnecting link keeps every queued and in-flight dispatch and
        // settles them after the rejoin; only a link that is gone for good
        // fails them.
        let dropped = if will_retry {
            0
        } else {
            self.fail_all(DispatchError::Disconnected, true)
        };
        if let Some(f) = &self.follower {
            f.status.send_replace(LinkStatus::Down);
        }
        if dropped > 0 {
            self.report(crate::Error::Dropped(dropped));
        }
        // Wake waiters so `wait_for` callers can notice the link is gone.
        self.wake_all();
    }

    fn take_dispatches(&self, channel: Channel, out: &mut Vec<u8>, codec: &FrameCodec) -> bool {
        let Some(f) = &self.follower else {
            return false;
        };
        if self.older_master().is_some() {
            // The master cannot read this version's actions: they wait,
            // queued (bounded by `max_queue`), until it is upgraded.
            return false;
        }
        let (ready, failed) = {
            let mut q = f.queue.lock();
            if !q.has_work() {
                return false;
            }
            q.take(channel, out, codec)
        };
        crate::outbox::run(ready);
        for e in failed {
            self.report(crate::Error::Frame(e));
        }
        true
    }

    fn report(&self, err: crate::Error) {
        Shared::report(self, err);
    }
}

impl<S: Reducer> Shared<S> {
    /// The schema of the master joined last, when it is an earlier version
    /// of this store.
    fn older_master(&self) -> Option<SchemaHash> {
        let f = self.follower.as_ref()?;
        let schema = (*f.master_schema.lock())?;
        (schema != S::SCHEMA).then_some(schema)
    }
}
