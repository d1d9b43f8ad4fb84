//! A follower's outbox: the dispatches it queued for the master, in
//! segments (batches) sent in order, kept until the master acks them,
//! re-sent after a rejoin; and the commits waiting on them.
//!
//! No I/O and no locks: the store keeps an [`Outbox`] under a mutex, and
//! every method returns the replies it made ready ([`Ready`]) for the
//! caller to run after unlocking (a relay's reply queues an ack on another
//! link). Many commits share one segment: each remembers how many of the
//! segment's actions end with it, so one ack (the seq of the segment's
//! last action) settles them all.

use crate::error::DispatchError;
use crate::protocol::{Channel, Dispatch, FrameCodec, Message};
use crate::validate::{Committed, Rejection};
use crate::FrameError;
use std::collections::{HashMap, VecDeque};

/// Called once with the fate of a dispatch: its commit seq and the actions
/// of it the validator rejected, or why it was not committed.
pub(crate) type Reply = Box<dyn FnOnce(Result<Committed, DispatchError>) + Send>;

/// Replies to run, with their results, once the outbox is unlocked.
pub(crate) type Ready = Vec<(Reply, Result<Committed, DispatchError>)>;

/// Largest segment of queued dispatches (one frame).
const SEG_BYTES: usize = 256 * 1024;

/// A batch of dispatches: queued, then in flight until the master acks it.
struct Seg {
    /// Batch number in this store's session; 0 until sent.
    batch: u64,
    count: u32,
    bytes: Vec<u8>,
    /// Commits waiting on this batch: (request, the commit's actions as
    /// indices `start..end` of the batch).
    requests: Vec<(u64, u32, u32)>,
    /// Actions of the batch the master rejected (told before its ack).
    rejected: Vec<Rejection>,
}

/// The outbox of one follower store.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Not sent yet.
    segs: VecDeque<Seg>,
    /// Sent, not acked: re-sent after a reconnect.
    inflight: VecDeque<Seg>,
    /// Actions in `segs` and `inflight`.
    queued: usize,
    next_batch: u64,
    /// The last batch the master acked.
    acked_batch: u64,
    /// Set on rejoin: send `inflight` again before anything new.
    resend: bool,
    next_request: u64,
    waiting: HashMap<u64, Reply>,
    /// Acks for seqs not applied here yet: (request, what it came to).
    acked: Vec<(u64, Committed)>,
    /// Reasons the master gave for rejecting actions no commit waited on
    /// (`dispatch`), to report.
    unclaimed: Vec<String>,
    /// Set when the link will never come back.
    dead: Option<DispatchError>,
    /// Actions dropped because the link died for good.
    lost: usize,
}

impl Outbox {
    /// Actions queued and not acked.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The last batch the master acked (sent on rejoin).
    pub fn acked_batch(&self) -> u64 {
        self.acked_batch
    }

    /// Whether the link died for good.
    pub fn dead(&self) -> bool {
        self.dead.is_some()
    }

    /// Nothing left to deliver (or nothing that still can be); with how
    /// many actions were dropped.
    pub fn drained(&self) -> Option<usize> {
        (self.queued == 0 || self.dead.is_some()).then_some(self.lost)
    }

    /// Queues `count` actions that `write` appends, already encoded;
    /// `reply` (a commit) gets the seq of the last of them.
    ///
    /// # Errors
    /// The link is dead, the queue would pass `max_queue`, or `write`
    /// failed; a given `reply` is then in the returned [`Ready`].
    pub fn enqueue(
        &mut self,
        count: usize,
        reply: Option<Reply>,
        max_queue: usize,
        write: impl FnOnce(&mut Vec<u8>) -> postcard::Result<()>,
    ) -> (Result<(), DispatchError>, Ready) {
        let refused = match &self.dead {
            Some(e) => Some(e.clone()),
            None if self.queued + count > max_queue => Some(DispatchError::QueueFull(max_queue)),
            None => None,
        };
        if let Some(e) = refused {
            let ready = reply.map(|r| (r, Err(e.clone()))).into_iter().collect();
            return (Err(e), ready);
        }
        if self.segs.back().is_none_or(|s| s.bytes.len() >= SEG_BYTES) {
            self.segs.push_back(Seg {
                batch: 0,
                count: 0,
                bytes: Vec::new(),
                requests: Vec::new(),
                rejected: Vec::new(),
            });
        }
        let Some(seg) = self.segs.back_mut() else {
            return (Err(DispatchError::Closed), Vec::new());
        };
        let before = seg.bytes.len();
        if let Err(e) = write(&mut seg.bytes) {
            seg.bytes.truncate(before);
            if seg.count == 0 {
                self.segs.pop_back();
            }
            let err = DispatchError::Encode(e.to_string());
            let ready = reply.map(|r| (r, Err(err.clone()))).into_iter().collect();
            return (Err(err), ready);
        }
        seg.count += count as u32;
        if let Some(reply) = reply {
            self.next_request += 1;
            seg.requests
                .push((self.next_request, seg.count - count as u32, seg.count));
            self.waiting.insert(self.next_request, reply);
        }
        self.queued += count;
        (Ok(()), Vec::new())
    }

    /// Whether [`Outbox::take`] has anything to send.
    pub fn has_work(&self) -> bool {
        !self.segs.is_empty() || self.resend
    }

    /// Moves queued segments into Dispatch frames on `channel` (after a
    /// rejoin, the unacked ones first); returns the failures to report.
    pub fn take(
        &mut self,
        channel: Channel,
        out: &mut Vec<u8>,
        codec: &FrameCodec,
    ) -> (Ready, Vec<FrameError>) {
        self.take_with(|batch, count, packed| {
            codec.encode(
                &Message::Dispatch(Dispatch {
                    channel,
                    batch,
                    // The master echoes it; the batch is what settles.
                    request: 0,
                    count,
                    packed,
                }),
                out,
            )
        })
    }

    /// Hands queued segments to `send` as (batch, count, packed actions),
    /// after a rejoin the unacked ones first; they stay in flight until
    /// acked. A segment `send` fails on for the first time fails its
    /// commits; the failures are returned to report.
    pub fn take_with<E: std::fmt::Display>(
        &mut self,
        mut send: impl FnMut(u64, u32, &[u8]) -> Result<(), E>,
    ) -> (Ready, Vec<E>) {
        let mut failed = Vec::new();
        if self.resend {
            // Frames that encoded once encode again; a failure here is kept
            // in flight and reported.
            for seg in &self.inflight {
                if let Err(e) = send(seg.batch, seg.count, &seg.bytes) {
                    failed.push(e);
                }
            }
            self.resend = false;
        }
        let mut ready = Vec::new();
        while let Some(mut seg) = self.segs.pop_front() {
            self.next_batch += 1;
            seg.batch = self.next_batch;
            match send(seg.batch, seg.count, &seg.bytes) {
                Ok(()) => self.inflight.push_back(seg),
                Err(e) => {
                    self.queued -= seg.count as usize;
                    let err = DispatchError::Encode(e.to_string());
                    self.fail_requests(&seg, &err, &mut ready);
                    failed.push(e);
                }
            }
        }
        (ready, failed)
    }

    /// The master rejected action `index` of `batch` (its ack follows).
    pub fn rejected(&mut self, batch: u64, index: u32, reason: &str) {
        if let Some(seg) = self.inflight.iter_mut().find(|s| s.batch == batch) {
            if index < seg.count && !seg.rejected.iter().any(|r| r.index == index) {
                seg.rejected.push(Rejection {
                    index,
                    reason: reason.to_owned(),
                });
            }
        }
    }

    /// Takes the reasons of rejected actions no commit waited on.
    pub fn take_unclaimed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unclaimed)
    }

    /// The master acked `batch`, its last action at `seq`; `applied` is
    /// this store's seq. Commits resolve once their seq is applied here.
    ///
    /// Acks may come in any order: each settles its own batch only, and
    /// [`Outbox::acked_batch`] stays below the oldest batch still in flight,
    /// so a rejoin asks about every unacked one.
    pub fn ack(&mut self, batch: u64, seq: u64, applied: u64) -> Ready {
        let mut ready = Vec::new();
        if let Some(i) = self.inflight.iter().position(|s| s.batch == batch) {
            if let Some(seg) = self.inflight.remove(i) {
                self.queued -= seg.count as usize;
                self.settle_seg(&seg, seq, applied, &mut ready);
            }
        }
        self.advance_acked();
        ready
    }

    /// Every batch below the oldest in flight has been acked (or settled).
    fn advance_acked(&mut self) {
        let below = self
            .inflight
            .front()
            .map_or(self.next_batch, |s| s.batch.saturating_sub(1));
        self.acked_batch = self.acked_batch.max(below);
    }

    /// The master refused `batch`: its commits fail with `err`; returns
    /// whether it held no commit (so the refusal goes to the error hook).
    pub fn nack(&mut self, batch: u64, err: &DispatchError) -> (Ready, bool) {
        let mut ready = Vec::new();
        let mut silent = true;
        if let Some(i) = self.inflight.iter().position(|s| s.batch == batch) {
            if let Some(seg) = self.inflight.remove(i) {
                self.queued -= seg.count as usize;
                silent = seg.requests.is_empty();
                self.fail_requests(&seg, err, &mut ready);
            }
        }
        self.advance_acked();
        (ready, silent)
    }

    /// After a rejoin: the batches the master applied while the link was
    /// down (with the seq of each one's last action) are settled; the rest
    /// of the in-flight ones will be sent again.
    pub fn rejoined(&mut self, batches: &[(u64, Committed)], applied: u64) -> Ready {
        let mut ready = Vec::new();
        for (batch, done) in batches {
            if let Some(i) = self.inflight.iter().position(|s| s.batch == *batch) {
                if let Some(mut seg) = self.inflight.remove(i) {
                    self.queued -= seg.count as usize;
                    // Rejections told with the rejoin (a hub's own table)
                    // join those told before it.
                    for r in &done.rejected {
                        if !seg.rejected.iter().any(|x| x.index == r.index) {
                            seg.rejected.push(r.clone());
                        }
                    }
                    self.settle_seg(&seg, done.seq, applied, &mut ready);
                }
            }
        }
        // The master reports every batch after our `acked_batch` that it
        // applied; the rest go again, in order (it applies a session's
        // batches in order, and drops a batch it already has).
        self.advance_acked();
        self.resend = !self.inflight.is_empty();
        ready
    }

    /// Resolves acked commits whose seq is now applied here.
    pub fn resolve(&mut self, applied: u64) -> Ready {
        let mut ready = Vec::new();
        let waiting = &mut self.waiting;
        let mut i = 0;
        while i < self.acked.len() {
            if self.acked[i].1.seq > applied {
                i += 1;
                continue;
            }
            let (request, done) = self.acked.swap_remove(i);
            if let Some(reply) = waiting.remove(&request) {
                ready.push((reply, Ok(done)));
            }
        }
        ready
    }

    /// Fails every waiting commit with `err`, and when `dead` drops every
    /// queued dispatch and refuses later ones. Returns the replies and how
    /// many actions were dropped.
    pub fn fail_all(&mut self, err: &DispatchError, dead: bool) -> (Ready, usize) {
        let ready = self
            .waiting
            .drain()
            .map(|(_, r)| (r, Err(err.clone())))
            .collect();
        self.acked.clear();
        let mut dropped = 0;
        if dead {
            dropped = self.queued;
            self.segs.clear();
            self.inflight.clear();
            self.queued = 0;
            self.lost += dropped;
            self.dead = Some(err.clone());
        }
        (ready, dropped)
    }

    /// Settles the commits of an acked segment whose last applied action
    /// is at `last_seq`: each gets the seq of its own last applied action
    /// (rejected actions take none) and its rejected actions, numbered
    /// within the commit. Rejections no commit covers are kept to report.
    fn settle_seg(&mut self, seg: &Seg, last_seq: u64, applied: u64, ready: &mut Ready) {
        let within = |r: &&Rejection, from: u32, to: u32| r.index >= from && r.index < to;
        let mut claimed = 0;
        for &(request, start, end) in &seg.requests {
            // Applied actions after this commit's last.
            let after = (seg.count - end)
                - seg
                    .rejected
                    .iter()
                    .filter(|r| within(r, end, seg.count))
                    .count() as u32;
            let done = Committed {
                seq: last_seq - u64::from(after),
                rejected: seg
                    .rejected
                    .iter()
                    .filter(|r| within(r, start, end))
                    .map(|r| Rejection {
                        index: r.index - start,
                        reason: r.reason.clone(),
                    })
                    .collect(),
            };
            claimed += done.rejected.len();
            // A commit rejected whole has nothing to wait for.
            let whole = done.rejected.len() as u32 == end - start;
            if done.seq <= applied || whole {
                if let Some(reply) = self.waiting.remove(&request) {
                    ready.push((reply, Ok(done)));
                }
            } else {
                self.acked.push((request, done));
            }
        }
        if claimed < seg.rejected.len() {
            let covered = |r: &&Rejection| seg.requests.iter().any(|&(_, a, b)| within(r, a, b));
            self.unclaimed.extend(
                seg.rejected
                    .iter()
                    .filter(|r| !covered(r))
                    .map(|r| r.reason.clone()),
            );
        }
    }

    fn fail_requests(&mut self, seg: &Seg, err: &DispatchError, ready: &mut Ready) {
        for (request, _, _) in &seg.requests {
            if let Some(reply) = self.waiting.remove(request) {
                ready.push((reply, Err(err.clone())));
            }
        }
    }
}

/// Runs the replies an outbox made ready.
pub(crate) fn run(ready: Ready) {
    for (reply, result) in ready {
        reply(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    type Results = Arc<Mutex<Vec<(u8, Result<Committed, DispatchError>)>>>;

    fn commit(results: &Results, tag: u8) -> Reply {
        let r = Arc::clone(results);
        Box::new(move |res| r.lock().unwrap().push((tag, res)))
    }

    fn push(o: &mut Outbox, n: usize, reply: Option<Reply>) {
        let (res, ready) = o.enqueue(n, reply, 1 << 20, |b| {
            b.extend(std::iter::repeat_n(0u8, n));
            Ok(())
        });
        assert!(res.is_ok() && ready.is_empty());
    }

    #[test]
    fn commits_in_one_segment_settle_at_their_own_seqs() {
        let results: Results = Arc::default();
        let mut o = Outbox::default();
        push(&mut o, 2, Some(commit(&results, 1)));
        push(&mut o, 1, None);
        push(&mut o, 3, Some(commit(&results, 2)));
        let codec = FrameCodec::default();
        let mut out = Vec::new();
        let (ready, failed) = o.take(Channel::default(), &mut out, &codec);
        assert!(ready.is_empty() && failed.is_empty() && !out.is_empty());
        // One batch of 6 actions, the last at seq 106; applied here: 103.
        run(o.ack(1, 106, 103));
        assert_eq!(*results.lock().unwrap(), vec![(1, Ok(Committed::at(102)))]);
        run(o.resolve(106));
        assert_eq!(results.lock().unwrap()[1], (2, Ok(Committed::at(106))));
        assert_eq!(o.queued(), 0);
    }

    #[test]
    fn a_rejoin_settles_applied_batches_and_resends_the_rest() {
        let results: Results = Arc::default();
        let mut o = Outbox::default();
        let codec = FrameCodec::default();
        let mut out = Vec::new();
        push(&mut o, 1, Some(commit(&results, 1)));
        let _ = o.take(Channel::default(), &mut out, &codec);
        push(&mut o, 1, Some(commit(&results, 2)));
        let _ = o.take(Channel::default(), &mut out, &codec);
        run(o.rejoined(&[(1, Committed::at(40))], 40));
        assert_eq!(*results.lock().unwrap(), vec![(1, Ok(Committed::at(40)))]);
        assert!(o.has_work(), "batch 2 goes again");
        out.clear();
        let _ = o.take(Channel::default(), &mut out, &codec);
        assert!(!out.is_empty());
        run(o.ack(2, 41, 41));
        assert_eq!(results.lock().unwrap()[1], (2, Ok(Committed::at(41))));
    }

    #[test]
    fn acks_in_any_order_settle_their_own_commits() {
        let results: Results = Arc::default();
        let mut o = Outbox::default();
        let codec = FrameCodec::default();
        let mut out = Vec::new();
        for tag in 1..=3 {
            push(&mut o, 1, Some(commit(&results, tag)));
            let _ = o.take(Channel::default(), &mut out, &codec);
        }
        run(o.ack(3, 12, 12));
        assert_eq!(o.acked_batch(), 0, "batches 1 and 2 are still unacked");
        run(o.ack(1, 10, 12));
        assert_eq!(o.acked_batch(), 1);
        // A rejoin now reports batch 2 as applied.
        run(o.rejoined(&[(2, Committed::at(11))], 12));
        assert_eq!(o.acked_batch(), 3);
        assert!(!o.has_work());
        let mut got = results.lock().unwrap().clone();
        got.sort_by_key(|(t, _)| *t);
        assert_eq!(
            got,
            vec![
                (1, Ok(Committed::at(10))),
                (2, Ok(Committed::at(11))),
                (3, Ok(Committed::at(12)))
            ]
        );
    }

    #[test]
    fn a_dead_link_fails_everything_and_counts_it() {
        let results: Results = Arc::default();
        let mut o = Outbox::default();
        push(&mut o, 3, Some(commit(&results, 1)));
        let (ready, dropped) = o.fail_all(&DispatchError::Disconnected, true);
        run(ready);
        assert_eq!(dropped, 3);
        assert_eq!(o.drained(), Some(3));
        let (res, ready) = o.enqueue(1, None, 10, |_| Ok(()));
        assert_eq!(res, Err(DispatchError::Disconnected));
        assert!(ready.is_empty());
    }

    #[test]
    fn rejected_actions_take_no_seq_and_fail_only_their_own_commits() {
        let results: Results = Arc::default();
        let mut o = Outbox::default();
        // Batch: [c1: 2 actions] [dispatch: 1] [c2: 1] [c3: 2]
        push(&mut o, 2, Some(commit(&results, 1)));
        push(&mut o, 1, None);
        push(&mut o, 1, Some(commit(&results, 2)));
        push(&mut o, 2, Some(commit(&results, 3)));
        let _ = o.take(Channel::default(), &mut Vec::new(), &FrameCodec::default());
        // Rejected: the dispatch (2), c2 whole (3), and c3's first (4).
        o.rejected(1, 2, "no");
        o.rejected(1, 3, "c2");
        o.rejected(1, 4, "c3");
        o.rejected(1, 4, "twice");
        o.rejected(1, 9, "out of range");
        // Applied: 0, 1, 5 → seqs 51, 52, 53.
        run(o.ack(1, 53, 53));
        let mut got = results.lock().unwrap().clone();
        got.sort_by_key(|(t, _)| *t);
        let rejection = |index, reason: &str| Rejection {
            index,
            reason: reason.into(),
        };
        assert_eq!(
            got,
            vec![
                (1, Ok(Committed::at(52))),
                (
                    2,
                    Ok(Committed {
                        seq: 52,
                        rejected: vec![rejection(0, "c2")]
                    })
                ),
                (
                    3,
                    Ok(Committed {
                        seq: 53,
                        rejected: vec![rejection(0, "c3")]
                    })
                ),
            ]
        );
        assert_eq!(o.take_unclaimed(), vec!["no".to_owned()]);
        assert_eq!(o.queued(), 0);
    }
}
