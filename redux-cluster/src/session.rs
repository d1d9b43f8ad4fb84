//! Dispatch sessions: what makes a follower's dispatches exactly-once across
//! reconnects.
//!
//! A follower numbers its dispatch batches within a random session id and
//! keeps each batch until the master acks it. After a reconnect it tells the
//! master the last batch it saw acked; the master answers with the batches
//! it applied after that (and their sequence numbers), and drops any batch
//! it has already applied when the follower re-sends it.

use crate::validate::{Committed, Rejection};
use std::collections::{HashMap, VecDeque};

/// Batches remembered per session, for answering a rejoin.
const RECENT: usize = 1024;
/// Sessions remembered per store; the least recently used is forgotten.
const MAX_SESSIONS: usize = 100_000;

#[derive(Default)]
struct Session {
    last_batch: u64,
    /// (batch, what it came to), oldest first.
    recent: VecDeque<(u64, Committed)>,
    touched: u64,
}

/// The sessions a master store has seen.
#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<u64, Session>,
    clock: u64,
}

/// One session as saved with a snapshot: its last batch, the seqs of its
/// recent batches, and the actions of those the validator rejected.
#[cfg_attr(not(any(feature = "backup", feature = "nats")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Saved {
    pub session: u64,
    pub last_batch: u64,
    pub recent: Vec<(u64, u64)>,
    /// (batch, its rejected actions), for the recent batches that had any.
    pub rejected: Vec<(u64, Vec<Rejection>)>,
}

/// [`Saved`] as formats before validation wrote it (no rejections).
#[cfg_attr(not(any(feature = "backup", feature = "nats")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedBefore {
    pub session: u64,
    pub last_batch: u64,
    pub recent: Vec<(u64, u64)>,
}

impl From<SavedBefore> for Saved {
    fn from(s: SavedBefore) -> Self {
        Saved {
            session: s.session,
            last_batch: s.last_batch,
            recent: s.recent,
            rejected: Vec::new(),
        }
    }
}

/// What to do with an incoming batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not applied yet: apply it.
    New,
    /// Applied before, with this result (if still remembered): answer it,
    /// do not apply.
    Duplicate(Option<Committed>),
}

impl Sessions {
    pub fn check(&mut self, session: u64, batch: u64) -> Seen {
        match self.map.get(&session) {
            Some(s) if batch <= s.last_batch => Seen::Duplicate(
                s.recent
                    .iter()
                    .find(|(b, _)| *b == batch)
                    .map(|(_, done)| done.clone()),
            ),
            _ => Seen::New,
        }
    }

    pub fn record(&mut self, session: u64, batch: u64, done: Committed) {
        self.clock += 1;
        if !self.map.contains_key(&session) && self.map.len() >= MAX_SESSIONS {
            if let Some((&oldest, _)) = self.map.iter().min_by_key(|(_, s)| s.touched) {
                self.map.remove(&oldest);
            }
        }
        let s = self.map.entry(session).or_default();
        s.touched = self.clock;
        // Recorded again (a journal replayed over a snapshot that has it).
        if s.recent.back().is_some_and(|(b, _)| *b == batch) {
            return;
        }
        s.last_batch = s.last_batch.max(batch);
        s.recent.push_back((batch, done));
        if s.recent.len() > RECENT {
            s.recent.pop_front();
        }
    }

    /// The table as saved with a snapshot, least recently used first.
    #[cfg_attr(not(any(feature = "backup", feature = "nats")), allow(dead_code))]
    pub fn save(&self) -> Vec<Saved> {
        let mut v: Vec<(&u64, &Session)> = self.map.iter().collect();
        v.sort_by_key(|(_, s)| s.touched);
        v.into_iter()
            .map(|(&session, s)| Saved {
                session,
                last_batch: s.last_batch,
                recent: s.recent.iter().map(|(b, d)| (*b, d.seq)).collect(),
                rejected: s
                    .recent
                    .iter()
                    .filter(|(_, d)| !d.rejected.is_empty())
                    .map(|(b, d)| (*b, d.rejected.clone()))
                    .collect(),
            })
            .collect()
    }

    /// Replaces the table with one saved by [`Sessions::save`].
    #[cfg_attr(not(any(feature = "backup", feature = "nats")), allow(dead_code))]
    pub fn restore(&mut self, saved: Vec<Saved>) {
        self.map.clear();
        self.clock = 0;
        for s in saved {
            self.clock += 1;
            let mut rejected: HashMap<u64, Vec<Rejection>> = s.rejected.into_iter().collect();
            let mut recent: VecDeque<(u64, Committed)> = s
                .recent
                .into_iter()
                .map(|(batch, seq)| {
                    let rejected = rejected.remove(&batch).unwrap_or_default();
                    (batch, Committed { seq, rejected })
                })
                .collect();
            while recent.len() > RECENT {
                recent.pop_front();
            }
            self.map.insert(
                s.session,
                Session {
                    last_batch: s.last_batch,
                    recent,
                    touched: self.clock,
                },
            );
        }
    }

    /// Batches of `session` applied after `acked`, oldest first.
    pub fn applied_after(&self, session: u64, acked: u64) -> Vec<(u64, Committed)> {
        self.map.get(&session).map_or_else(Vec::new, |s| {
            s.recent
                .iter()
                .filter(|(b, _)| *b > acked)
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(index: u32, reason: &str) -> Committed {
        Committed {
            seq: 11,
            rejected: vec![Rejection {
                index,
                reason: reason.into(),
            }],
        }
    }

    #[test]
    fn duplicates_are_recognised_with_their_seq() {
        let mut s = Sessions::default();
        assert_eq!(s.check(7, 1), Seen::New);
        s.record(7, 1, Committed::at(10));
        s.record(7, 2, Committed::at(12));
        assert_eq!(s.check(7, 1), Seen::Duplicate(Some(Committed::at(10))));
        assert_eq!(s.check(7, 3), Seen::New);
        assert_eq!(s.check(8, 1), Seen::New);
        assert_eq!(s.applied_after(7, 1), vec![(2, Committed::at(12))]);
    }

    #[test]
    fn a_saved_table_restores_the_same_answers_rejections_included() {
        let mut s = Sessions::default();
        s.record(7, 1, Committed::at(10));
        s.record(9, 4, rejected(1, "too big"));
        s.record(7, 2, Committed::at(12));
        let mut r = Sessions::default();
        r.restore(s.save());
        assert_eq!(r.check(7, 2), Seen::Duplicate(Some(Committed::at(12))));
        assert_eq!(r.check(9, 4), Seen::Duplicate(Some(rejected(1, "too big"))));
        assert_eq!(r.check(9, 5), Seen::New);
        assert_eq!(r.save(), s.save());
        assert_eq!(r.applied_after(9, 0), vec![(4, rejected(1, "too big"))]);
    }

    #[test]
    fn recent_is_bounded() {
        let mut s = Sessions::default();
        for b in 1..=5000 {
            s.record(1, b, Committed::at(b));
        }
        assert_eq!(s.applied_after(1, 0).len(), RECENT);
        assert_eq!(s.check(1, 3), Seen::Duplicate(None));
    }
}
