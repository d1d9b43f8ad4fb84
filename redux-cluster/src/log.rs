//! The master's ring of recently applied actions, already encoded.
//!
//! Each link to a follower keeps only a cursor (the last sequence number it
//! sent) and copies from here when its socket can take more, so a follower
//! gets many actions per frame under load and one at once when idle, and a
//! slow follower costs no memory: when its cursor falls off the ring, it is
//! sent a snapshot instead. The same ring serves resumes after a reconnect.

use std::collections::VecDeque;

/// Target size of one chunk; actions are appended to the newest chunk until
/// it reaches this.
const CHUNK_BYTES: usize = 64 * 1024;

/// Bounds of the ring.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Most bytes of encoded actions held.
    pub max_bytes: usize,
    /// Most actions held.
    pub max_actions: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 20,
            max_actions: 100_000,
        }
    }
}

struct Chunk {
    first_seq: u64,
    data: Vec<u8>,
    /// End offset in `data` of each action.
    ends: Vec<u32>,
}

/// What a reader gets: consecutive actions from one chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<'a> {
    /// Actions `first_seq .. first_seq + count`, back to back in `packed`.
    Actions {
        /// Sequence number of the first.
        first_seq: u64,
        /// How many.
        count: u32,
        /// Their bytes.
        packed: &'a [u8],
    },
    /// The reader is up to date.
    UpToDate,
    /// The actions the reader needs are gone: send it a snapshot.
    Evicted,
}

/// Where a follower's dispatch batch ended in the ring: the batch's session
/// and number, and the seq of its last action. The journal stores these
/// with the actions, so exactly-once survives a restart of the master.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    /// The follower's dispatch session.
    pub session: u64,
    /// The batch number within the session.
    pub batch: u64,
    /// The seq of the batch's last applied action.
    pub seq: u64,
    /// Actions of the batch the validator rejected.
    pub rejected: Vec<crate::validate::Rejection>,
}

/// [`Mark`] as journals of format 2 wrote it (before validation).
#[cfg_attr(not(feature = "backup"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MarkBefore {
    pub session: u64,
    pub batch: u64,
    pub seq: u64,
}

impl From<MarkBefore> for Mark {
    fn from(m: MarkBefore) -> Self {
        Mark {
            session: m.session,
            batch: m.batch,
            seq: m.seq,
            rejected: Vec::new(),
        }
    }
}

impl Mark {
    /// What the batch came to.
    #[cfg_attr(not(feature = "backup"), allow(dead_code))]
    pub fn committed(&self) -> crate::validate::Committed {
        crate::validate::Committed {
            seq: self.seq,
            rejected: self.rejected.clone(),
        }
    }
}

/// The ring.
pub struct Log {
    chunks: VecDeque<Chunk>,
    /// Marks of the batches whose actions the ring holds, oldest first,
    /// each with the seq of the journal record it goes in (see
    /// [`Log::mark`]).
    marks: VecDeque<(u64, Mark)>,
    bytes: usize,
    limits: LogLimits,
    next_seq: u64,
}

impl Log {
    /// An empty ring whose next action will be `next_seq`.
    pub fn new(next_seq: u64, limits: LogLimits) -> Self {
        Self {
            chunks: VecDeque::new(),
            marks: VecDeque::new(),
            bytes: 0,
            limits,
            next_seq,
        }
    }

    /// Forgets everything; the next action will be `next_seq`.
    pub fn reset(&mut self, next_seq: u64) {
        self.chunks.clear();
        self.marks.clear();
        self.bytes = 0;
        self.next_seq = next_seq;
    }

    /// Appends one action, encoded by `encode` at the end of the buffer it
    /// is given.
    ///
    /// # Errors
    /// Whatever `encode` returns; the ring is then unchanged.
    pub fn push_with<E>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let chunk = self.open_chunk();
        let before = chunk.data.len();
        if let Err(e) = encode(&mut chunk.data) {
            chunk.data.truncate(before);
            return Err(e);
        }
        let end = chunk.data.len();
        chunk.ends.push(end as u32);
        self.bytes += end - before;
        self.next_seq += 1;
        self.evict();
        Ok(())
    }

    /// Appends one already-encoded action.
    pub fn push_raw(&mut self, action: &[u8]) {
        let _ = self.push_with::<()>(|v| {
            v.extend_from_slice(action);
            Ok(())
        });
    }

    fn open_chunk(&mut self) -> &mut Chunk {
        // Chunks are a sixteenth of the bounds at most, so eviction (which
        // drops whole chunks) stays close to them.
        let max_bytes = (self.limits.max_bytes / 16).clamp(1, CHUNK_BYTES);
        let max_actions = (self.limits.max_actions / 16).max(1) as usize;
        let need_new = self
            .chunks
            .back()
            .is_none_or(|c| c.data.len() >= max_bytes || c.ends.len() >= max_actions);
        if need_new {
            self.chunks.push_back(Chunk {
                first_seq: self.next_seq,
                data: Vec::with_capacity(1024),
                ends: Vec::new(),
            });
        }
        let n = self.chunks.len() - 1;
        &mut self.chunks[n]
    }

    fn evict(&mut self) {
        while self.chunks.len() > 1 {
            let first = self.chunks[0].first_seq;
            if self.bytes <= self.limits.max_bytes
                && self.next_seq - first <= self.limits.max_actions
            {
                break;
            }
            if let Some(c) = self.chunks.pop_front() {
                self.bytes -= c.data.len();
            }
        }
        let first = self.chunks.front().map_or(self.next_seq, |c| c.first_seq);
        while self.marks.front().is_some_and(|(at, _)| *at < first) {
            self.marks.pop_front();
        }
    }

    /// Records that a follower's dispatch batch ended: with `applied`, at
    /// its last action, `mark.seq` (already pushed); without (the
    /// validator rejected all of it), it is journaled with the next action,
    /// so a later batch of its session is never on disk without it.
    pub fn mark(&mut self, mark: Mark, applied: bool) {
        let at = if applied { mark.seq } else { self.next_seq };
        self.marks.push_back((at, mark));
    }

    /// The marks of batches journaled with the actions at seqs
    /// `from..=to`, oldest first.
    #[cfg_attr(not(feature = "backup"), allow(dead_code))]
    pub fn marks_in(&self, from: u64, to: u64) -> impl Iterator<Item = &Mark> {
        let start = self.marks.partition_point(|(at, _)| *at < from);
        self.marks
            .range(start..)
            .take_while(move |(at, _)| *at <= to)
            .map(|(_, m)| m)
    }

    /// Reads actions starting at `seq`, at most about `budget` bytes (at
    /// least one action).
    pub fn read_from(&self, seq: u64, budget: usize) -> Read<'_> {
        self.read_until(seq, u64::MAX, budget)
    }

    /// As [`Log::read_from`], but never past action `last`: what may leave
    /// the master (actions not yet durable stay behind).
    pub fn read_until(&self, seq: u64, last: u64, budget: usize) -> Read<'_> {
        if seq >= self.next_seq || seq > last {
            return Read::UpToDate;
        }
        let Some(first) = self.chunks.front() else {
            return Read::Evicted;
        };
        if seq < first.first_seq {
            return Read::Evicted;
        }
        let idx = self
            .chunks
            .partition_point(|c| c.first_seq <= seq)
            .saturating_sub(1);
        let c = &self.chunks[idx];
        let skip = (seq - c.first_seq) as usize;
        let Some(&end_last) = c.ends.last() else {
            return Read::UpToDate;
        };
        let start = if skip == 0 {
            0
        } else {
            c.ends[skip - 1] as usize
        };
        // Take actions until the budget is spent.
        let limit = start.saturating_add(budget);
        let mut take = c.ends[skip..].partition_point(|&e| (e as usize) <= limit);
        take = take
            .max(1)
            .min((last - seq + 1).min(u64::from(u32::MAX)) as usize);
        let end = c.ends[skip + take - 1] as usize;
        debug_assert!(end <= end_last as usize);
        Read::Actions {
            first_seq: seq,
            count: take as u32,
            packed: &c.data[start..end],
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u64, limits: LogLimits) -> Log {
        let mut log = Log::new(1, limits);
        for i in 1..=n {
            log.push_raw(&i.to_le_bytes());
        }
        log
    }

    #[test]
    fn reads_back_in_order_across_chunks() {
        let log = log_with(20_000, LogLimits::default());
        let mut seq = 1;
        let mut seen = Vec::new();
        while let Read::Actions {
            first_seq,
            count,
            packed,
        } = log.read_from(seq, 10_000)
        {
            assert_eq!(first_seq, seq);
            assert_eq!(packed.len(), count as usize * 8);
            for c in packed.chunks(8) {
                seen.push(u64::from_le_bytes(c.try_into().expect("8 bytes")));
            }
            seq += u64::from(count);
        }
        assert_eq!(seen, (1..=20_000).collect::<Vec<_>>());
        assert_eq!(log.read_from(20_001, 100), Read::UpToDate);
    }

    #[test]
    fn evicts_to_bounds_and_reports_it() {
        let log = log_with(
            100_000,
            LogLimits {
                max_bytes: 200_000,
                max_actions: 1_000_000,
            },
        );
        assert!(log.bytes() <= 200_000 + CHUNK_BYTES);
        assert_eq!(log.read_from(1, 100), Read::Evicted);
        assert!(matches!(
            log.read_from(99_999, 100),
            Read::Actions {
                first_seq: 99_999,
                ..
            }
        ));
    }

    #[test]
    fn reads_stop_at_the_last_allowed_action() {
        let log = log_with(10, LogLimits::default());
        match log.read_until(4, 6, 1 << 20) {
            Read::Actions {
                first_seq,
                count,
                packed,
            } => {
                assert_eq!((first_seq, count, packed.len()), (4, 3, 24));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(log.read_until(7, 6, 100), Read::UpToDate);
    }

    #[test]
    fn marks_follow_their_actions_out_of_the_ring() {
        let mut log = Log::new(
            1,
            LogLimits {
                max_bytes: 1 << 20,
                max_actions: 32,
            },
        );
        for i in 1..=100u64 {
            log.push_raw(&i.to_le_bytes());
            log.mark(
                Mark {
                    session: 1,
                    batch: i,
                    seq: i,
                    rejected: Vec::new(),
                },
                true,
            );
        }
        let seqs: Vec<u64> = log.marks_in(90, 95).map(|m| m.seq).collect();
        assert_eq!(seqs, vec![90, 91, 92, 93, 94, 95]);
        assert!(
            log.marks_in(1, 40).next().is_none(),
            "evicted with their actions"
        );
        // A batch rejected whole goes with the next action.
        let whole = Mark {
            session: 2,
            batch: 1,
            seq: 100,
            rejected: Vec::new(),
        };
        log.mark(whole.clone(), false);
        assert!(log.marks_in(100, 100).all(|m| m.session == 1));
        log.push_raw(&[0]);
        assert_eq!(log.marks_in(101, 101).collect::<Vec<_>>(), vec![&whole]);
    }

    #[test]
    fn reads_from_the_middle_of_a_chunk() {
        let log = log_with(10, LogLimits::default());
        match log.read_from(4, 16) {
            Read::Actions {
                first_seq,
                count,
                packed,
            } => {
                assert_eq!((first_seq, count), (4, 2));
                assert_eq!(&packed[..8], &4u64.to_le_bytes());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
