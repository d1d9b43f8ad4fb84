//! A hub's apply path: log messages applied in stream order, with the
//! session table deciding, the same way on every hub, which batches are
//! new; and the snapshots a hub saves and starts from. No I/O.

use super::wire::{Entry, Snapshot, WireError};
use crate::codec;
use crate::error::DispatchError;
use crate::log::Mark;
use crate::reducer::Reducer;
use crate::session::Seen;

/// What became of one batch of a log message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    pub session: u64,
    pub batch: u64,
    /// The seq of the batch's last action (its first application's, for a
    /// batch applied before), or why it was not applied.
    pub result: Result<u64, DispatchError>,
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
                    Seen::Duplicate(seq) => Ok(seq.unwrap_or(core.seq)),
                    Seen::New => match codec::decode_packed::<S::Action>(e.count, e.packed) {
                        Err(err) => Err(DispatchError::Refused(format!(
                            "the batch could not be decoded: {err}"
                        ))),
                        Ok(actions) => {
                            let seq = core.apply_packed(&actions, e.packed);
                            if let Some(log) = &mut core.log {
                                log.mark(Mark {
                                    session: e.session,
                                    batch: e.batch,
                                    seq,
                                });
                            }
                            sessions.record(e.session, e.batch, seq);
                            Ok(seq)
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
    /// behind a trimmed log).
    pub(crate) fn install_snapshot(&self, snap: Snapshot) -> Result<(), WireError> {
        if snap.schema != S::SCHEMA.0 {
            return Err(WireError::Schema);
        }
        let state: S =
            codec::decode(&snap.state).map_err(|e| WireError::Malformed(e.to_string()))?;
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
