//! A store seen from a link that serves its followers.

use super::{Feed, Source};
use crate::codec;
use crate::core::{Reply, Shared};
use crate::log::{Mark, Read};
use crate::options::Mode;
use crate::protocol::{Actions, Digest, FrameCodec, Message, Position, Snapshot};
use crate::reducer::Reducer;
use crate::schema::SchemaHash;
use crate::session::Seen;
use crate::validate::{accepted, Committed};
use crate::FrameError;
use std::sync::Arc;
use tokio::sync::Notify;

impl<S: Reducer> Source for Shared<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn older_schemas(&self) -> Vec<SchemaHash> {
        crate::history::older_schemas::<S>()
    }

    fn schema(&self) -> SchemaHash {
        S::SCHEMA
    }

    fn describe(&self) -> String {
        crate::reducer::describe_store::<S>()
    }

    fn epoch(&self) -> u64 {
        self.core.read().epoch
    }

    fn can_resume(&self, pos: Position) -> bool {
        let core = self.core.read();
        if pos.epoch != core.epoch || pos.seq > core.seq {
            return false;
        }
        if pos.seq == core.seq {
            return true;
        }
        match &core.log {
            Some(log) => !matches!(log.read_from(pos.seq + 1, 1), Read::Evicted),
            None => false,
        }
    }

    fn dispatch_packed(
        &self,
        session: u64,
        batch: u64,
        count: u32,
        packed: &[u8],
        peer: &crate::Peer,
        reply: Reply,
    ) -> Result<(), postcard::Error> {
        // Decode everything first: a malformed batch applies nothing.
        let actions = codec::decode_packed::<S::Action>(count, packed)?;
        if let Some(log) = self.sequencer() {
            // A hub: the shared log orders the batch, under the follower's
            // own session, so a batch re-sent through another hub is
            // recognised there. The validator runs first, against this
            // hub's state; the rejections travel with the batch.
            let rejected = self.check_ahead(actions.iter().map(|(a, _)| a), peer);
            if rejected.is_empty() {
                log.submit(session, batch, count, packed, rejected, reply);
                return Ok(());
            }
            let mut kept = Vec::with_capacity(packed.len());
            for (_, range) in accepted(&actions, &rejected) {
                kept.extend_from_slice(&packed[range.clone()]);
            }
            let n = count - rejected.len() as u32;
            log.submit(session, batch, n, &kept, rejected, reply);
            return Ok(());
        }
        if let Some(f) = &self.follower {
            // A relay (a client that is also master of workers): pass the
            // actions up unchanged; the reply comes with the upstream's ack.
            // The relay's own session makes the upstream leg exactly-once.
            // A failed enqueue has already answered `reply`.
            let _ = self.enqueue_with(f, actions.len(), Some(reply), |buf| {
                buf.extend_from_slice(packed);
                Ok(())
            });
            return Ok(());
        }
        let mut sessions = self.sessions.lock();
        if let Seen::Duplicate(done) = sessions.check(session, batch) {
            drop(sessions);
            // A batch whose seq is forgotten was applied at or before now.
            let done = done.unwrap_or_else(|| Committed::at(self.core.read().seq));
            self.reply_durable(done, reply);
            return Ok(());
        }
        let check = self.check(peer);
        let done = {
            let mut core = self.core.write();
            let done = core.apply_packed(&actions, packed, check.as_ref());
            if let Some(log) = &mut core.log {
                let applied = done.rejected.len() < actions.len();
                log.mark(
                    Mark {
                        session,
                        batch,
                        seq: done.seq,
                        rejected: done.rejected.clone(),
                    },
                    applied,
                );
            }
            done
        };
        sessions.record(session, batch, done.clone());
        drop(sessions);
        self.publish(done.seq);
        self.rejected(peer, &done.rejected);
        self.reply_durable(done, reply);
        Ok(())
    }

    fn applied_after(&self, session: u64, acked: u64) -> Vec<(u64, Committed)> {
        self.sessions.lock().applied_after(session, acked)
    }

    fn fill(
        &self,
        feed: &mut Feed,
        out: &mut Vec<u8>,
        codec: &FrameCodec,
        budget: usize,
    ) -> Result<bool, FrameError> {
        let core = self.core.read();
        // With a journal, only what is on disk may leave.
        let limit = self.visible(core.seq);
        if let Some((seq, _)) = &feed.held {
            if *seq > limit {
                return Ok(false);
            }
            if let Some((_, frame)) = feed.held.take() {
                out.extend_from_slice(&frame);
            }
        }
        let snapshot = |feed: &mut Feed, out: &mut Vec<u8>| -> Result<(), FrameError> {
            let state = codec::encode(&core.state).map_err(FrameError::malformed)?;
            let msg = Message::Snapshot(Snapshot {
                channel: feed.channel,
                epoch: core.epoch,
                seq: core.seq,
                state: &state,
            });
            if core.seq <= limit {
                codec.encode(&msg, out)?;
            } else {
                // Taken now (so a busy store cannot starve it), sent once
                // durable.
                let mut frame = Vec::new();
                codec.encode(&msg, &mut frame)?;
                feed.held = Some((core.seq, frame));
            }
            feed.sent = Some(core.seq);
            feed.since_snapshot = 0;
            feed.since_digest = 0;
            crate::telemetry::snapshot_sent(S::NAME);
            Ok(())
        };
        // A digest goes right after the actions that reach `core.seq`, so
        // the follower compares states at the same point.
        let every = self.options.digest_every;
        let digest = |feed: &mut Feed, out: &mut Vec<u8>| -> Result<(), FrameError> {
            if every == 0 || feed.since_digest < every || feed.sent != Some(core.seq) {
                return Ok(());
            }
            if let Some(d) = self.digest_of(&core) {
                codec.encode(
                    &Message::Digest(Digest {
                        channel: feed.channel,
                        seq: core.seq,
                        digest: d,
                    }),
                    out,
                )?;
                feed.since_digest = 0;
            }
            Ok(())
        };
        let Some(mut sent) = feed.sent else {
            snapshot(feed, out)?;
            return Ok(false);
        };
        if sent >= limit {
            return Ok(false);
        }
        crate::telemetry::lag(S::NAME, limit - sent);
        let resync = match self.options.mode {
            Mode::Snapshot => {
                snapshot(feed, out)?;
                return Ok(false);
            }
            Mode::Action { resync } => resync,
        };
        let Some(log) = &core.log else {
            snapshot(feed, out)?;
            return Ok(false);
        };
        if matches!(log.read_from(sent + 1, 1), Read::Evicted) {
            feed.lagged = Some(core.seq - sent);
            snapshot(feed, out)?;
            return Ok(false);
        }
        let mut used = 0;
        loop {
            match log.read_until(sent + 1, limit, budget.saturating_sub(used).max(1)) {
                Read::UpToDate => {
                    digest(feed, out)?;
                    return Ok(false);
                }
                Read::Evicted => {
                    // Fell behind the ring: a slow consumer costs a snapshot,
                    // never unbounded memory.
                    feed.lagged = Some(core.seq - sent);
                    snapshot(feed, out)?;
                    return Ok(false);
                }
                Read::Actions {
                    first_seq,
                    count,
                    packed,
                } => {
                    codec.encode(
                        &Message::Actions(Actions {
                            channel: feed.channel,
                            first_seq,
                            count,
                            packed,
                        }),
                        out,
                    )?;
                    crate::telemetry::actions_sent(S::NAME);
                    sent = first_seq + u64::from(count) - 1;
                    feed.sent = Some(sent);
                    feed.since_snapshot += u64::from(count);
                    feed.since_digest += u64::from(count);
                    used += packed.len();
                    // The snapshot goes after the actions it covers, so a
                    // follower never applies an action twice.
                    if resync > 0 && feed.since_snapshot >= resync {
                        snapshot(feed, out)?;
                        return Ok(false);
                    }
                    if used >= budget {
                        digest(feed, out)?;
                        return Ok(sent < limit);
                    }
                }
            }
        }
    }

    fn attach(&self, waker: &Arc<Notify>) {
        self.attach_link(waker);
    }

    fn add_role(&self, role: crate::Role) {
        Shared::add_role(self, role);
    }

    fn detach(&self, waker: &Arc<Notify>) {
        self.detach_link(waker);
    }

    fn report(&self, err: crate::Error) {
        Shared::report(self, err);
    }

    fn event(&self, ev: crate::Event) {
        Shared::event(self, ev);
    }
}
