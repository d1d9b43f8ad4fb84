//! Dispatch sessions: what makes a follower's dispatches exactly-once across
//! reconnects.
//!
//! A follower numbers its dispatch batches within a random session id and
//! keeps each batch until the master acks it. After a reconnect it tells the
//! master the last batch it saw acked; the master answers with the batches
//! it applied after that (and their sequence numbers), and drops any batch
//! it has already applied when the follower re-sends it.

use std::collections::{HashMap, VecDeque};

/// Batches remembered per session, for answering a rejoin.
const RECENT: usize = 1024;
/// Sessions remembered per store; the least recently used is forgotten.
const MAX_SESSIONS: usize = 100_000;

#[derive(Default)]
struct Session {
    last_batch: u64,
    recent: VecDeque<(u64, u64)>,
    touched: u64,
}

/// The sessions a master store has seen.
#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<u64, Session>,
    clock: u64,
}

/// One session as saved with a snapshot: its last batch and the seqs of its
/// recent batches.
#[cfg_attr(not(any(feature = "backup", feature = "nats")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Saved {
    pub session: u64,
    pub last_batch: u64,
    pub recent: Vec<(u64, u64)>,
}

/// What to do with an incoming batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not applied yet: apply it.
    New,
    /// Applied before, at this seq (if still remembered): ack, do not apply.
    Duplicate(Option<u64>),
}

impl Sessions {
    pub fn check(&mut self, session: u64, batch: u64) -> Seen {
        match self.map.get(&session) {
            Some(s) if batch <= s.last_batch => Seen::Duplicate(
                s.recent
                    .iter()
                    .find(|(b, _)| *b == batch)
                    .map(|(_, seq)| *seq),
            ),
            _ => Seen::New,
        }
    }

    pub fn record(&mut self, session: u64, batch: u64, seq: u64) {
        self.clock += 1;
        if !self.map.contains_key(&session) && self.map.len() >= MAX_SESSIONS {
            if let Some((&oldest, _)) = self.map.iter().min_by_key(|(_, s)| s.touched) {
                self.map.remove(&oldest);
            }
        }
        let s = self.map.entry(session).or_default();
        s.touched = self.clock;
        s.last_batch = s.last_batch.max(batch);
        s.recent.push_back((batch, seq));
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
                recent: s.recent.iter().copied().collect(),
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
            let mut recent: VecDeque<(u64, u64)> = s.recent.into();
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
    pub fn applied_after(&self, session: u64, acked: u64) -> Vec<(u64, u64)> {
        self.map.get(&session).map_or_else(Vec::new, |s| {
            s.recent
                .iter()
                .filter(|(b, _)| *b > acked)
                .copied()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_recognised_with_their_seq() {
        let mut s = Sessions::default();
        assert_eq!(s.check(7, 1), Seen::New);
        s.record(7, 1, 10);
        s.record(7, 2, 12);
        assert_eq!(s.check(7, 1), Seen::Duplicate(Some(10)));
        assert_eq!(s.check(7, 3), Seen::New);
        assert_eq!(s.check(8, 1), Seen::New);
        assert_eq!(s.applied_after(7, 1), vec![(2, 12)]);
    }

    #[test]
    fn a_saved_table_restores_the_same_answers() {
        let mut s = Sessions::default();
        s.record(7, 1, 10);
        s.record(9, 4, 11);
        s.record(7, 2, 12);
        let mut r = Sessions::default();
        r.restore(s.save());
        assert_eq!(r.check(7, 2), Seen::Duplicate(Some(12)));
        assert_eq!(r.check(9, 4), Seen::Duplicate(Some(11)));
        assert_eq!(r.check(9, 5), Seen::New);
        assert_eq!(r.save(), s.save());
    }

    #[test]
    fn recent_is_bounded() {
        let mut s = Sessions::default();
        for b in 1..=5000 {
            s.record(1, b, b);
        }
        assert_eq!(s.applied_after(1, 0).len(), RECENT);
        assert_eq!(s.check(1, 3), Seen::Duplicate(None));
    }
}
