//! What a store is configured with: its sync mode, the roles it can play,
//! and the builder's options. The bottom of the store's layers: it imports
//! nothing of the store itself.

use crate::log::LogLimits;
use std::fmt;
use std::sync::Arc;

/// Receives errors the store cannot return to a caller (a peer's bad frame,
/// a refused join, a failed backup): the seed's `stderr` hook.
pub type ErrorHook = Arc<dyn Fn(&crate::Error) + Send + Sync>;

/// Options of a store, set through the builder.
#[derive(Clone)]
pub(crate) struct Options {
    pub mode: Mode,
    pub on_error: Option<ErrorHook>,
    pub on_event: Option<crate::EventHook>,
    pub max_frame: usize,
    pub log: LogLimits,
    /// Most dispatches queued while the master is unreachable.
    pub max_queue: usize,
    /// Actions between state digests sent to followers (0: none).
    pub digest_every: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            on_error: None,
            on_event: None,
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
            log: LogLimits::default(),
            max_queue: 1 << 20,
            digest_every: 10_000,
        }
    }
}

/// How followers are kept in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Send each action; every `resync` actions also send a snapshot, as a
    /// guaranteed re-synchronisation point (the seed's default, 1000).
    Action {
        /// Actions between snapshots; 0 disables them.
        resync: u64,
    },
    /// Send the whole state after each action, coalesced under load: a
    /// follower that falls behind gets only the newest state.
    Snapshot,
}

impl Default for Mode {
    fn default() -> Self {
        Mode::Action { resync: 1000 }
    }
}

/// One role a store plays in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Orders and applies every action; forked workers follow it.
    Master,
    /// Follows the master that forked this process.
    Worker,
    /// Serves the store to clients over a socket.
    Server,
    /// Follows a server over a socket.
    Client,
    /// One of several hubs sharing a NATS JetStream log: orders nothing
    /// itself, applies the log in order; its followers see it as their
    /// master.
    Hub,
}

const ROLE_BITS: [(Role, u8); 5] = [
    (Role::Master, 1),
    (Role::Worker, 2),
    (Role::Server, 4),
    (Role::Client, 8),
    (Role::Hub, 16),
];

/// The set of roles a store plays (the seed's `role` array).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles(u8);

impl Roles {
    /// Whether `role` is among them.
    pub fn contains(self, role: Role) -> bool {
        ROLE_BITS
            .iter()
            .any(|(r, bit)| *r == role && self.0 & bit != 0)
    }

    /// The roles, in the order master, worker, server, client.
    pub fn to_vec(self) -> Vec<Role> {
        ROLE_BITS
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(r, _)| *r)
            .collect()
    }

    pub(crate) fn from_bits(bits: u8) -> Self {
        Roles(bits)
    }

    pub(crate) fn bit(role: Role) -> u8 {
        ROLE_BITS
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(0, |(_, b)| *b)
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}
