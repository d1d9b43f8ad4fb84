//! Brute-force protection: refuse a peer for a while after repeated failed
//! logins. No I/O and no clock: every call takes `now`, so tests drive time
//! with plain [`Instant`]s or `tokio::time::pause`.
//!
//! The key is whatever identifies a peer to the caller; for network peers,
//! the address the socket reports (never a header the peer writes). For IPv6
//! a peer owns a whole /64, so key on the prefix, not the full address.
//!
//! ```
//! use redux_cluster::ban::{BanPolicy, Bans};
//! use std::time::Duration;
//! use tokio::time::Instant;
//!
//! let mut bans = Bans::new(BanPolicy { max_failures: 2, ..BanPolicy::default() });
//! let now = Instant::now();
//! let peer = "203.0.113.7";
//!
//! assert!(bans.check(&peer, now).is_ok());
//! assert!(bans.record_failure(&peer, now).is_none());
//! let Some(banned) = bans.record_failure(&peer, now) else {
//!     panic!("the second failure bans");
//! };
//! assert_eq!(banned.until_secs_left, 3 * 60 * 60);
//! assert!(bans.check(&peer, now).is_err());
//! assert!(bans.check(&peer, now + Duration::from_secs(3 * 60 * 60)).is_ok());
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

/// When to ban, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    /// Failures within [`window`](Self::window) that ban a key (default 5).
    /// 0 acts as 1: the first failure bans.
    pub max_failures: u32,
    /// How long a ban lasts (default 3 hours).
    pub ban_for: Duration,
    /// Failures older than this are forgotten (default 3 hours, like
    /// `ban_for`).
    pub window: Duration,
    /// Most keys tracked at once (default 100 000); 0 acts as 1. When full,
    /// the keys whose last failure is oldest are forgotten first; active
    /// bans are never dropped early. If every tracked key is banned, a new
    /// key's failures go unrecorded until a ban expires.
    pub max_keys: usize,
}

impl Default for BanPolicy {
    fn default() -> Self {
        const THREE_HOURS: Duration = Duration::from_secs(3 * 60 * 60);
        Self {
            max_failures: 5,
            ban_for: THREE_HOURS,
            window: THREE_HOURS,
            max_keys: 100_000,
        }
    }
}

/// Who a ban is on: a local user by uid (Unix sockets, other users than the
/// server's own), or a remote host by IP address (IPv6 by its /64 prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BanKey {
    /// A local user.
    Uid(u32),
    /// A remote host.
    Ip(std::net::IpAddr),
}

/// A key is refused for a while after too many failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins; refused for another {until_secs_left} s")]
#[non_exhaustive]
pub struct Banned {
    /// Seconds until the ban ends, rounded up (at least 1).
    pub until_secs_left: u64,
}

impl Banned {
    fn left(until: Instant, now: Instant) -> Self {
        let left = until.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Self {
            until_secs_left: secs.max(1),
        }
    }
}

/// What is known about one key: recent failures, or a ban.
#[derive(Debug)]
struct Record {
    /// Times of failures within the window, oldest first; never more than
    /// `max_failures - 1` (the next one bans and clears them).
    failures: VecDeque<Instant>,
    /// End of the ban, when banned. Expired bans stay until looked at or
    /// collected.
    banned_until: Option<Instant>,
}

impl Record {
    fn banned_at(&self, now: Instant) -> Option<Instant> {
        self.banned_until.filter(|&until| until > now)
    }

    fn forget_stale(&mut self, now: Instant, window: Duration) {
        while let Some(&first) = self.failures.front() {
            if now.saturating_duration_since(first) > window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
    }

    /// Worth keeping: banned, or failures still in the window.
    fn is_live(&mut self, now: Instant, window: Duration) -> bool {
        if self.banned_at(now).is_some() {
            return true;
        }
        self.banned_until = None;
        self.forget_stale(now, window);
        !self.failures.is_empty()
    }

    /// When the key last failed, for eviction order.
    fn last_failure(&self) -> Option<Instant> {
        self.failures.back().copied()
    }
}

/// Failed logins and bans, per key.
///
/// Memory is bounded by [`BanPolicy::max_keys`] records of at most
/// `max_failures - 1` instants each.
#[derive(Debug)]
#[doc(hidden)]
pub struct Bans<K: Hash + Eq + Clone> {
    policy: BanPolicy,
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Default for Bans<K> {
    fn default() -> Self {
        Self::new(BanPolicy::default())
    }
}

impl<K: Hash + Eq + Clone> Bans<K> {
    /// No failures, no bans.
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            records: HashMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &BanPolicy {
        &self.policy
    }

    /// Whether `key` may try to log in now. Call it before the handshake, so
    /// a banned key is refused whatever it would send.
    ///
    /// # Errors
    /// [`Banned`] while `key` is banned.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Banned> {
        let Some(record) = self.records.get_mut(key) else {
            return Ok(());
        };
        if let Some(until) = record.banned_at(now) {
            return Err(Banned::left(until, now));
        }
        if record.banned_until.take().is_some() && record.failures.is_empty() {
            // The ban is over; the key starts afresh.
            self.records.remove(key);
        }
        Ok(())
    }

    /// Counts a failed login by `key`.
    ///
    /// Returns `Some` when `key` is banned after this failure: this failure
    /// reached [`BanPolicy::max_failures`], or the key was banned already (a
    /// failure during a ban does not lengthen it).
    pub fn record_failure(&mut self, key: &K, now: Instant) -> Option<Banned> {
        if !self.records.contains_key(key) {
            if !self.make_room(now) {
                return None;
            }
            self.records.insert(
                key.clone(),
                Record {
                    failures: VecDeque::new(),
                    banned_until: None,
                },
            );
        }
        let policy = self.policy;
        let record = self.records.get_mut(key)?;
        if let Some(until) = record.banned_at(now) {
            return Some(Banned::left(until, now));
        }
        record.banned_until = None;
        record.forget_stale(now, policy.window);
        record.failures.push_back(now);
        if record.failures.len() < policy.max_failures.max(1) as usize {
            return None;
        }
        record.failures.clear();
        let until = now + policy.ban_for;
        record.banned_until = Some(until);
        Some(Banned::left(until, now))
    }

    /// Clears `key`'s failures after a successful login. An active ban stays
    /// (it cannot be lifted by logging in, since [`check`](Self::check)
    /// refuses first).
    pub fn record_success(&mut self, key: &K) {
        let drop = match self.records.get_mut(key) {
            Some(record) if record.banned_until.is_some() => {
                record.failures.clear();
                false
            }
            Some(_) => true,
            None => false,
        };
        if drop {
            self.records.remove(key);
        }
    }

    /// Forgets expired bans and failures older than the window. Call it now
    /// and then (say, every minute); [`record_failure`](Self::record_failure)
    /// also calls it when the table is full.
    pub fn collect(&mut self, now: Instant) {
        let window = self.policy.window;
        self.records.retain(|_, record| record.is_live(now, window));
    }

    /// The keys banned now, with the time left on each ban.
    pub fn banned(&self, now: Instant) -> Vec<(K, Banned)> {
        self.records
            .iter()
            .filter_map(|(k, r)| {
                r.banned_at(now)
                    .map(|until| (k.clone(), Banned::left(until, now)))
            })
            .collect()
    }

    /// Lifts the ban on `key` and forgets its failures; returns whether it
    /// was tracked.
    pub fn lift(&mut self, key: &K) -> bool {
        self.records.remove(key).is_some()
    }

    /// Number of keys tracked (with failures or bans, expired ones included
    /// until collected).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Makes room for one more key; false when every tracked key is banned.
    ///
    /// Evicts a tenth of the table at a time, so a flood of new keys costs
    /// one scan per `max_keys / 10` insertions rather than one per insertion.
    fn make_room(&mut self, now: Instant) -> bool {
        let max_keys = self.policy.max_keys.max(1);
        if self.records.len() < max_keys {
            return true;
        }
        self.collect(now);
        if self.records.len() < max_keys {
            return true;
        }
        let mut candidates: Vec<(Instant, K)> = self
            .records
            .iter()
            .filter(|(_, record)| record.banned_at(now).is_none())
            .filter_map(|(key, record)| Some((record.last_failure()?, key.clone())))
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let excess = self.records.len() + 1 - max_keys;
        let evict = excess.max(max_keys / 10).min(candidates.len());
        if evict < candidates.len() {
            candidates.select_nth_unstable_by_key(evict - 1, |(at, _)| *at);
        }
        for (_, key) in candidates.into_iter().take(evict) {
            self.records.remove(&key);
        }
        self.records.len() < max_keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(60 * 60);

    fn policy() -> BanPolicy {
        BanPolicy::default()
    }

    #[test]
    fn defaults() {
        let policy = BanPolicy::default();
        assert_eq!(policy.max_failures, 5);
        assert_eq!(policy.ban_for, 3 * HOUR);
        assert_eq!(policy.window, policy.ban_for);
        assert_eq!(policy.max_keys, 100_000);
    }

    #[test]
    fn one_failure_short_is_not_banned_the_nth_is() {
        let mut bans = Bans::new(policy());
        let now = Instant::now();
        for i in 0..4 {
            assert_eq!(bans.record_failure(&"peer", now), None, "failure {}", i + 1);
            assert!(bans.check(&"peer", now).is_ok());
        }
        let banned = bans
            .record_failure(&"peer", now)
            .expect("fifth failure bans");
        assert_eq!(banned.until_secs_left, 3 * 60 * 60);
        assert_eq!(bans.check(&"peer", now), Err(banned));
    }

    #[test]
    fn banned_key_is_refused_even_with_the_right_password() {
        use crate::auth::{nonce, Credentials, Logins, ServerAuth};

        let logins = Logins::new().add("alice", "correct horse");
        let credentials = Credentials::new("alice", "correct horse");
        let mut bans = Bans::new(BanPolicy {
            max_failures: 2,
            ..policy()
        });
        let now = Instant::now();
        bans.record_failure(&"peer", now);
        assert!(bans.record_failure(&"peer", now).is_some());

        // The gate comes first; the right password would have passed.
        let later = now + HOUR;
        let refused = bans.check(&"peer", later).expect_err("banned");
        assert_eq!(refused.until_secs_left, 2 * 60 * 60);
        let client_nonce = nonce();
        let (challenge, pending) = ServerAuth::challenge(&logins, "alice", &client_nonce);
        let (proof, _) = credentials
            .prove(&client_nonce, &challenge)
            .expect("in range");
        assert!(pending.verify(&proof.proof).is_ok());
        // And a success does not lift the ban.
        bans.record_success(&"peer");
        assert!(bans.check(&"peer", later).is_err());
    }

    #[test]
    fn ban_expires_after_the_period() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 1,
            ..policy()
        });
        let now = Instant::now();
        assert!(bans.record_failure(&"peer", now).is_some());
        let almost = now + 3 * HOUR - Duration::from_millis(1);
        assert_eq!(
            bans.check(&"peer", almost),
            Err(Banned { until_secs_left: 1 })
        );
        assert!(bans.check(&"peer", now + 3 * HOUR).is_ok());
        // Looking at an expired ban forgets the key; it starts afresh.
        assert_eq!(bans.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn ban_expires_with_the_paused_tokio_clock() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 2,
            ban_for: Duration::from_secs(60),
            ..policy()
        });
        bans.record_failure(&1u32, Instant::now());
        bans.record_failure(&1u32, Instant::now());
        assert!(bans.check(&1, Instant::now()).is_err());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            bans.check(&1, Instant::now()),
            Err(Banned {
                until_secs_left: 30
            })
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(bans.check(&1, Instant::now()).is_ok());
    }

    #[test]
    fn expired_bans_and_stale_failures_are_collected() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 2,
            ban_for: HOUR,
            window: 2 * HOUR,
            ..policy()
        });
        let now = Instant::now();
        bans.record_failure(&"banned", now);
        bans.record_failure(&"banned", now);
        bans.record_failure(&"failed", now);
        bans.record_failure(&"recent", now + 2 * HOUR);
        assert_eq!(bans.len(), 3);

        bans.collect(now + HOUR - Duration::from_secs(1));
        assert_eq!(bans.len(), 3, "nothing expired yet");
        bans.collect(now + HOUR);
        assert_eq!(bans.len(), 2, "the ban expired");
        bans.collect(now + 2 * HOUR + Duration::from_secs(1));
        assert_eq!(bans.len(), 1, "the old failure left the window");
        bans.collect(now + 5 * HOUR);
        assert!(bans.is_empty());
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 3,
            window: HOUR,
            ..policy()
        });
        let now = Instant::now();
        bans.record_failure(&"peer", now);
        bans.record_failure(&"peer", now + HOUR / 2);
        // The first failure is now out of the window: two in it, no ban.
        assert_eq!(
            bans.record_failure(&"peer", now + HOUR + Duration::from_secs(1)),
            None
        );
        // A third within the window of the last two bans.
        assert!(bans
            .record_failure(&"peer", now + HOUR + Duration::from_secs(2))
            .is_some());
    }

    #[test]
    fn success_clears_the_count() {
        let mut bans = Bans::new(policy());
        let now = Instant::now();
        for _ in 0..4 {
            bans.record_failure(&"peer", now);
        }
        bans.record_success(&"peer");
        assert!(bans.is_empty());
        for _ in 0..4 {
            assert_eq!(bans.record_failure(&"peer", now), None);
        }
        assert!(bans.record_failure(&"peer", now).is_some());
    }

    #[test]
    fn keys_are_independent() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 3,
            ..policy()
        });
        let now = Instant::now();
        for _ in 0..2 {
            bans.record_failure(&"a", now);
            bans.record_failure(&"b", now);
        }
        assert!(bans.record_failure(&"a", now).is_some());
        assert!(bans.check(&"a", now).is_err());
        assert!(bans.check(&"b", now).is_ok());
        assert!(bans.check(&"c", now).is_ok());
        bans.record_success(&"b");
        assert!(bans.check(&"a", now).is_err());
        assert_eq!(bans.len(), 1);
    }

    #[test]
    fn failure_while_banned_neither_extends_nor_rebans() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 1,
            ..policy()
        });
        let now = Instant::now();
        bans.record_failure(&"peer", now);
        let later = now + HOUR;
        let again = bans.record_failure(&"peer", later).expect("still banned");
        assert_eq!(again.until_secs_left, 2 * 60 * 60);
        assert!(bans.check(&"peer", now + 3 * HOUR).is_ok());
    }

    #[test]
    fn zero_max_failures_bans_on_the_first() {
        let mut bans = Bans::new(BanPolicy {
            max_failures: 0,
            ..policy()
        });
        assert!(bans.record_failure(&"peer", Instant::now()).is_some());
    }

    #[test]
    fn the_cap_holds_and_evicts_the_oldest_failures() {
        let mut bans = Bans::new(BanPolicy {
            max_keys: 20,
            ..policy()
        });
        let start = Instant::now();
        for key in 0..200u32 {
            bans.record_failure(&key, start + Duration::from_secs(u64::from(key)));
            assert!(bans.len() <= 20, "{} keys after key {key}", bans.len());
        }
        // The newest keys are the ones kept.
        assert!(bans.records.contains_key(&199));
        assert!(!bans.records.contains_key(&0));
    }

    #[test]
    fn the_cap_never_evicts_active_bans() {
        let cap = 10;
        let mut bans = Bans::new(BanPolicy {
            max_failures: 2,
            max_keys: cap,
            ..policy()
        });
        let now = Instant::now();
        for key in 0..3u32 {
            bans.record_failure(&key, now);
            assert!(bans.record_failure(&key, now).is_some());
        }
        for key in 100..1000u32 {
            bans.record_failure(&key, now + Duration::from_secs(1));
            assert!(bans.len() <= cap);
        }
        for key in 0..3u32 {
            assert!(bans.check(&key, now + HOUR).is_err(), "ban {key} kept");
        }

        // A table full of bans records no more failures, and stays in bounds.
        for key in 3..cap as u32 {
            bans.record_failure(&key, now);
            bans.record_failure(&key, now);
        }
        for key in 2000..2100u32 {
            assert_eq!(bans.record_failure(&key, now), None);
            assert!(bans.len() <= cap);
        }
        assert_eq!(bans.len(), cap);
        // Once the bans expire there is room again.
        let after = now + 3 * HOUR;
        bans.record_failure(&5000, after);
        assert_eq!(bans.len(), 1);
    }

    #[test]
    fn banned_message() {
        assert_eq!(
            Banned {
                until_secs_left: 42
            }
            .to_string(),
            "too many failed logins; refused for another 42 s"
        );
    }
}
