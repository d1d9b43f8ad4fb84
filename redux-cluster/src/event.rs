//! Events: what happens to a store that is worth knowing and is not an
//! error — peers coming and going, reconnects, failed logins, repairs.
//! They go to one callback, [`crate::StoreBuilder::on_event`] (and to
//! `tracing`); the error hook keeps only real errors.

use crate::protocol::Position;

/// Something that happened to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A follower (worker, client) joined this store.
    PeerJoined {
        /// Who.
        peer: String,
    },
    /// A follower left. `clean` when the link ended without an error (the
    /// peer closed it; on a local socket an exit and a crash look the
    /// same); otherwise `reason` says what failed.
    PeerLeft {
        /// Who.
        peer: String,
        /// Whether the link ended without an error.
        clean: bool,
        /// How it ended.
        reason: String,
    },
    /// This follower's connection attempt failed or its link was lost; it
    /// reconnects.
    Reconnecting {
        /// Why.
        cause: String,
    },
    /// A peer's login failed on a server of this store.
    LoginFailed {
        /// Who.
        peer: String,
        /// The login it tried.
        login: String,
    },
    /// A peer was banned after too many failed logins.
    Banned {
        /// Who.
        peer: String,
        /// For how long.
        seconds: u64,
    },
    /// A follower fell behind the action ring (it reads too slowly, or was
    /// away too long) and was sent a snapshot instead of the actions.
    SlowConsumer {
        /// Who.
        peer: String,
        /// How many actions behind it was.
        behind: u64,
    },
    /// A follower's state diverged from this master's (or needed repair
    /// after bad input); it was sent a snapshot.
    PeerDiverged {
        /// Who.
        peer: String,
        /// Where.
        seq: u64,
    },
    /// This follower's state was replaced by a snapshot behind its own
    /// position: its master restarted with a history that may be shorter
    /// than what this follower had applied (no journal), so it started a
    /// new epoch. Actions between `to` and `from` may be gone.
    RolledBack {
        /// Where this follower was.
        from: Position,
        /// The snapshot it installed.
        to: Position,
    },
    /// This follower joined a master that runs an earlier version of the
    /// store (a rolling upgrade): it follows it, converting snapshots and
    /// actions, and its own dispatches wait, queued, until the master runs
    /// this version.
    OlderMaster {
        /// The master's schema hash.
        schema: crate::SchemaHash,
    },
    /// This hub fell behind its store's shared log, which had been trimmed
    /// past it (it was paused or too slow), and started over from a newer
    /// snapshot; its followers get that snapshot too.
    HubFellBehind {
        /// The log position it had reached.
        from: u64,
        /// The position of the snapshot it installed.
        to: u64,
    },
    /// The validator of this store ([`crate::StoreBuilder::validate`])
    /// refused an action of `peer`; it was not applied. (The dispatcher
    /// gets the reason too.)
    ActionRejected {
        /// Who sent it.
        peer: String,
        /// The validator's reason.
        reason: String,
    },
    /// The master refused an action this store dispatched without waiting
    /// for its commit (`dispatch`, not `commit`); it was not applied.
    DispatchRejected {
        /// The validator's reason.
        reason: String,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::PeerJoined { peer } => write!(f, "{peer} joined"),
            Event::PeerLeft {
                peer,
                clean: true,
                reason,
            } => write!(f, "{peer} left ({reason})"),
            Event::PeerLeft { peer, reason, .. } => write!(f, "{peer} was lost ({reason})"),
            Event::Reconnecting { cause } => write!(f, "reconnecting: {cause}"),
            Event::LoginFailed { peer, login } => {
                write!(f, "{peer}: failed login as `{login}`")
            }
            Event::Banned { peer, seconds } => {
                write!(
                    f,
                    "{peer} banned for {seconds} s after too many failed logins"
                )
            }
            Event::SlowConsumer { peer, behind } => write!(
                f,
                "{peer} fell {behind} actions behind and was sent a snapshot"
            ),
            Event::PeerDiverged { peer, seq } => {
                write!(f, "{peer} diverged at seq {seq} and was sent a snapshot")
            }
            Event::RolledBack { from, to } => write!(
                f,
                "rolled back by the master from epoch {:x} seq {} to epoch {:x} seq {}",
                from.epoch, from.seq, to.epoch, to.seq
            ),
            Event::OlderMaster { schema } => write!(
                f,
                "the master runs an earlier version of this store (schema {schema}): following it; dispatches wait for its upgrade"
            ),
            Event::HubFellBehind { from, to } => write!(
                f,
                "this hub fell behind the trimmed log at position {from} and started over from the snapshot at {to}"
            ),
            Event::ActionRejected { peer, reason } => {
                write!(f, "rejected an action of {peer}: {reason}")
            }
            Event::DispatchRejected { reason } => {
                write!(f, "the master rejected a dispatched action: {reason}")
            }
        }
    }
}

/// Receives a store's events.
pub type EventHook = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;
