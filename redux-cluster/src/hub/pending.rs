//! A hub's dispatches on their way to the shared log: follower batches
//! queued until they go out in a message, and the replies that wait until
//! the batch comes back from the log applied. No I/O.
//!
//! A hub has one message in flight at a time, so its messages reach the
//! stream in the order it made them (a retry carries the same
//! `Nats-Msg-Id`; the stream drops it if the first try landed). Batches
//! that arrive meanwhile go into the next message: under load, many
//! batches per message.

use super::wire::{self, Entry};
use crate::core::Reply;
use crate::error::DispatchError;
use crate::schema::SchemaHash;
use crate::validate::{Committed, Rejection};
use std::collections::{HashMap, VecDeque};

struct Queued {
    session: u64,
    batch: u64,
    count: u32,
    packed: Vec<u8>,
    rejected: Vec<Rejection>,
}

impl Queued {
    /// At most the bytes its entry takes in a message.
    fn size(&self) -> usize {
        // Varints: 25 bytes at most for the numbers, 10 per rejection.
        self.packed.len()
            + 25
            + self
                .rejected
                .iter()
                .map(|r| r.reason.len() + 10)
                .sum::<usize>()
    }
}

/// The queue and the waiting replies.
pub(crate) struct Pending {
    queue: VecDeque<Queued>,
    /// Actions queued (bounded by `max_queue`).
    actions: usize,
    max_queue: usize,
    /// Replies by (session, batch): answered when the batch is applied.
    replies: HashMap<(u64, u64), Vec<Reply>>,
    next_message: u64,
}

/// A message ready to publish.
pub(crate) struct Outgoing {
    /// Its number among this hub's messages (for the message id).
    pub number: u64,
    /// The body.
    pub body: Vec<u8>,
    /// Batches in it.
    pub batches: usize,
    /// Actions in it.
    pub actions: usize,
}

impl Pending {
    pub fn new(max_queue: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            actions: 0,
            max_queue,
            replies: HashMap::new(),
            next_message: 0,
        }
    }

    /// Queues one batch (`count` accepted actions in `packed`, and the
    /// rejected ones); `reply` waits for it to be applied. Over the
    /// queue's bound, a follower's batch (one with a reply) is refused and
    /// its reply returned with the error, to run outside the lock; the
    /// hub's own batches (no reply) come from its outbox, bounded there.
    pub fn submit(
        &mut self,
        session: u64,
        batch: u64,
        count: u32,
        packed: &[u8],
        rejected: Vec<Rejection>,
        reply: Option<Reply>,
    ) -> Option<(Reply, DispatchError)> {
        if let Some(r) = reply {
            if self.actions + count as usize > self.max_queue {
                return Some((r, DispatchError::QueueFull(self.max_queue)));
            }
            self.replies.entry((session, batch)).or_default().push(r);
        }
        self.actions += count as usize;
        self.queue.push_back(Queued {
            session,
            batch,
            count,
            packed: packed.to_vec(),
            rejected,
        });
        None
    }

    /// Takes queued batches, oldest first, into one message of at most
    /// `max_bytes` (at least one batch). A batch that alone exceeds it can
    /// never be published: its replies are returned with the error.
    pub fn next_message(
        &mut self,
        schema: &SchemaHash,
        max_bytes: usize,
    ) -> (Option<Outgoing>, Vec<(Reply, DispatchError)>) {
        let mut failed = Vec::new();
        let mut body = Vec::new();
        wire::start_message(schema, &mut body);
        let (mut batches, mut actions) = (0, 0);
        while let Some(q) = self.queue.front() {
            let size = q.size();
            if wire::MESSAGE_HEAD + size > max_bytes {
                if let Some(q) = self.queue.pop_front() {
                    self.actions -= q.count as usize;
                    let why = DispatchError::Refused(format!(
                        "a batch of {} bytes does not fit in a log message ({max_bytes} bytes at most)",
                        q.packed.len()
                    ));
                    self.fail(&q, &why, &mut failed);
                }
                continue;
            }
            if batches > 0 && body.len() + size > max_bytes {
                break;
            }
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            self.actions -= q.count as usize;
            let entry = Entry {
                session: q.session,
                batch: q.batch,
                count: q.count,
                packed: &q.packed,
                rejected: q.rejected.clone(),
            };
            if let Err(e) = wire::push_entry(&entry, &mut body) {
                self.fail(&q, &DispatchError::Encode(e.to_string()), &mut failed);
                continue;
            }
            batches += 1;
            actions += q.count as usize;
        }
        if batches == 0 {
            return (None, failed);
        }
        self.next_message += 1;
        let out = Outgoing {
            number: self.next_message,
            body,
            batches,
            actions,
        };
        (Some(out), failed)
    }

    /// Moves the replies of a batch that cannot be published into `failed`.
    fn fail(&mut self, q: &Queued, why: &DispatchError, failed: &mut Vec<(Reply, DispatchError)>) {
        for r in self
            .replies
            .remove(&(q.session, q.batch))
            .unwrap_or_default()
        {
            failed.push((r, why.clone()));
        }
    }

    /// Takes the replies of every batch `applied` gives a seq for (a hub
    /// that started over from a snapshot: batches it never saw in the log
    /// are in that snapshot's session table), with that seq.
    pub fn settle_applied(
        &mut self,
        mut applied: impl FnMut(u64, u64) -> Option<Committed>,
    ) -> Vec<(Reply, Committed)> {
        let keys: Vec<(u64, u64)> = self.replies.keys().copied().collect();
        let mut out = Vec::new();
        for (session, batch) in keys {
            if let Some(done) = applied(session, batch) {
                for r in self.replies.remove(&(session, batch)).unwrap_or_default() {
                    out.push((r, done.clone()));
                }
            }
        }
        out
    }

    /// The replies waiting for (session, batch), now that it is settled.
    pub fn settle(&mut self, session: u64, batch: u64) -> Vec<Reply> {
        self.replies.remove(&(session, batch)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn schema() -> SchemaHash {
        SchemaHash([3; 32])
    }

    type Seen = Arc<Mutex<Vec<Result<Committed, DispatchError>>>>;

    fn reply(seen: &Seen) -> Reply {
        let seen = Arc::clone(seen);
        Box::new(move |r| seen.lock().unwrap().push(r))
    }

    #[test]
    fn batches_share_a_message_up_to_its_size_in_order() {
        let mut p = Pending::new(1000);
        for b in 1..=5u64 {
            assert!(p
                .submit(7, b, 1, &[b as u8; 100], Vec::new(), None)
                .is_none());
        }
        let (m, failed) = p.next_message(&schema(), 300);
        assert!(failed.is_empty());
        let m = m.unwrap();
        assert_eq!((m.number, m.batches, m.actions), (1, 2, 2));
        let batches: Vec<u64> = wire::entries(&m.body, &schema())
            .unwrap()
            .iter()
            .map(|e| e.batch)
            .collect();
        assert_eq!(batches, vec![1, 2]);
        let m2 = p.next_message(&schema(), 10_000).0.unwrap();
        assert_eq!((m2.number, m2.batches), (2, 3));
        assert!(p.next_message(&schema(), 10_000).0.is_none());
    }

    #[test]
    fn replies_wait_for_their_batch() {
        let seen = Seen::default();
        let mut p = Pending::new(1000);
        p.submit(7, 1, 1, b"a", Vec::new(), Some(reply(&seen)));
        p.submit(7, 1, 1, b"a", Vec::new(), Some(reply(&seen)));
        assert!(p.settle(7, 2).is_empty());
        let rs = p.settle(7, 1);
        assert_eq!(rs.len(), 2);
        assert!(p.settle(7, 1).is_empty());
    }

    #[test]
    fn replies_of_batches_a_snapshot_covers_are_settled() {
        let seen = Seen::default();
        let mut p = Pending::new(1000);
        p.submit(7, 1, 1, b"a", Vec::new(), Some(reply(&seen)));
        p.submit(7, 2, 1, b"b", Vec::new(), Some(reply(&seen)));
        let done = p.settle_applied(|_, b| (b == 1).then_some(Committed::at(40)));
        assert_eq!(done.len(), 1);
        for (r, seq) in done {
            r(Ok(seq));
        }
        assert_eq!(*seen.lock().unwrap(), vec![Ok(Committed::at(40))]);
        assert_eq!(p.settle(7, 2).len(), 1);
    }

    #[test]
    fn a_full_queue_refuses_and_an_oversized_batch_fails() {
        let seen = Seen::default();
        let mut p = Pending::new(3);
        assert!(p
            .submit(1, 1, 3, b"abc", Vec::new(), Some(reply(&seen)))
            .is_none());
        let (r, e) = p
            .submit(1, 2, 1, b"d", Vec::new(), Some(reply(&seen)))
            .unwrap();
        assert_eq!(e, DispatchError::QueueFull(3));
        r(Err(e));
        let (m, failed) = p.next_message(&schema(), 20);
        assert!(m.is_none());
        assert_eq!(failed.len(), 1);
        assert!(
            matches!(&failed[0].1, DispatchError::Refused(why) if why.contains("does not fit"))
        );
        // The queue is free again.
        assert!(p.submit(1, 3, 3, b"abc", Vec::new(), None).is_none());
    }
}
