//! Keep one Redux-style store in sync across processes and hosts.
//!
//! ```
//! use redux_cluster::{reducer, ClusterStore};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
//! pub struct Tasks { version: String, done: u64 }
//!
//! #[reducer(Tasks)]
//! #[derive(Serialize, Deserialize)]
//! pub enum TaskAction { SetVersion(String), Done }
//!
//! fn reduce(state: &mut Tasks, action: &TaskAction) {
//!     match action {
//!         TaskAction::SetVersion(v) => state.version = v.clone(),
//!         TaskAction::Done => state.done += 1,
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Tasks::start_master()?;
//! store.dispatch(TaskAction::Done)?;
//! assert_eq!(store.state().done, 1);
//! assert_eq!(store.seq(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `schema.rs`: the [`Schema`] trait, structural hashes, store identity.
//! - `const_sha256.rs`: SHA-256 in `const fn`, for compile-time hashes.
//! - `foreign_schema.rs`: [`Schema`] for other crates' types (uuid, chrono,
//!   time, url, bytes, rust_decimal, smol_str, compact_str, indexmap), each
//!   behind a feature of the crate's name.
//! - `reducer.rs`: [`ClusterState`] and [`Reducer`], written by the macros.
//! - `history.rs`: a store's earlier versions ([`History`]) and reading
//!   what they wrote.
//! - `options.rs`: [`Mode`], [`Role`], [`Roles`] and the builder's options.
//! - `store.rs`: the [`Store`] handle: dispatch, read, subscribe.
//! - `streams.rs`: changes, selections and applied actions as streams.
//! - `telemetry.rs`: metrics through the `metrics` facade (feature
//!   `metrics`; the table of names is there).
//! - `core.rs`: inside a store: state lock, sequence, wakeups, queues.
//! - `codec.rs`: the postcard serializers.
//! - `digest.rs`: state digests over a canonical encoding (maps sorted).
//! - `log.rs`: the ring of recent encoded actions that followers copy.
//! - `outbox.rs`: a follower's queued dispatches and waiting commits,
//!   until the master acks them (no I/O).
//! - `protocol/`: messages and the frame codec, with no I/O.
//! - `connection.rs`: framed reading and writing over any byte stream.
//! - `link/`: the master side (`serve.rs`) and follower side (`follow.rs`)
//!   of a link, and the type-erased store views they use.
//! - `registry.rs`: the stores of this process, by name.
//! - `session.rs`: exactly-once dispatch across reconnects.
//! - `validate.rs`: per-action validation where actions are sequenced: who
//!   sent an action (`Peer`), a rejection (`Reject`), what a batch came to.
//! - `transport/`: byte streams only (`pipe.rs`: the worker channel);
//!   `accept.rs`: the one accept loop every server runs.
//! - `cluster.rs`: forking workers (the basic scheme).
//! - `server.rs`, `client.rs`: serving over sockets and following a server,
//!   with reconnect (the cluster scheme).
//! - `backup/`: snapshot files and the action journal (format, crypto,
//!   crash-safe file writes, journal); `persist.rs` runs them for a store.
//! - `admission/`: who gets in, on every transport (hello, bans,
//!   challenge, welcome or refusal), with no I/O; `auth.rs`: logins by
//!   challenge-response; `ban.rs`: brute-force bans.
//! - `fuzz.rs`: entry points for the cargo-fuzz targets in `fuzz/`.
//! - `error.rs`: error types, split by when they happen; `event.rs`:
//!   events (peers joining and leaving, reconnects, repairs), which are not
//!   errors.
#![warn(missing_docs)]

// Lets the macros' `::redux_cluster::` paths resolve inside this crate too.
extern crate self as redux_cluster;

mod admission;
pub mod auth;
#[cfg(feature = "backup")]
pub mod backup;
pub mod ban;
pub mod client;
pub mod cluster;
mod codec;
mod connection;
mod const_sha256;
mod core;
mod digest;
mod error;
mod event;
// Entry points for the fuzz targets: not a promise.
#[doc(hidden)]
pub mod fuzz;
mod link;
mod log;
mod options;
mod outbox;
#[cfg(feature = "backup")]
mod persist;
// The wire messages: public for the tests and fuzz targets, not a promise.
mod foreign_schema;
mod history;
#[cfg(feature = "nats")]
pub mod hub;
#[doc(hidden)]
pub mod protocol;
mod reducer;
mod registry;
mod schema;
pub mod server;
mod session;
mod store;
mod streams;
mod telemetry;
pub mod transport;
mod validate;
#[cfg(feature = "ws")]
pub mod ws;

pub use connection::LinkError;
pub use error::{DispatchError, FrameError, JoinError, SchemaMismatch, StartError, SyncError};
pub use event::{Event, EventHook};
/// The trait of [`Subscription`], [`Selection`] and [`Actions`]
/// (`futures::Stream`): use `futures::StreamExt` or `tokio_stream` on them.
pub use futures_core::Stream;
pub use history::{History, NoPrevious};
pub use options::{ErrorHook, Mode, Role, Roles};
#[cfg(feature = "backup")]
pub use persist::{Backup, BackupConfig};
pub use protocol::Position;
pub use reducer::{ClusterState, Reducer};
pub use redux_cluster_derive::{reducer, ClusterStore, Schema};
pub use schema::{describe, first_difference, Schema, SchemaHash, SchemaHasher, StoreId};
pub use store::{StateGuard, Store, StoreBuilder};
pub use streams::{ActionItem, Actions, Missed, Selection, Subscription};
pub use validate::{Peer, Reject, MAX_REASON};

/// Any error a store reports through its error hook.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad frame from a peer.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A dispatch failed.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// A link to a peer failed; other links are unaffected.
    #[error("link to {peer}: {source}")]
    Link {
        /// Who the peer was.
        peer: String,
        /// What went wrong.
        #[source]
        source: LinkError,
    },
    /// A QUIC or TLS connection could not be opened, for a reason that will
    /// not go away by retrying (the server's certificate is refused).
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// Saving the store failed; the backup task has stopped (feature
    /// `backup`).
    #[cfg(feature = "backup")]
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    /// A peer holds this store with another schema; the join was refused.
    #[error(transparent)]
    SchemaMismatch(#[from] SchemaMismatch),
    /// The master runs a later version of this store; this peer must be
    /// upgraded to follow it.
    #[error(transparent)]
    Outdated(JoinError),
    /// The master has no store of this name.
    #[error("store `{name}`: {peer} has no such store")]
    UnknownStore {
        /// Store name.
        name: String,
        /// Who refused.
        peer: String,
    },
    /// What the master sent could not be applied; a snapshot was requested.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Queued dispatches were dropped: the link will not come back, or the
    /// store was shut down before they were delivered.
    #[error("{0} queued actions were dropped before the master acknowledged them")]
    Dropped(usize),
    /// A hub could not use its store's shared log (feature `nats`): a log
    /// message or snapshot that cannot be read, a snapshot not saved, or a
    /// refusal that stopped the hub.
    #[error("hub: {0}")]
    Hub(String),
}

#[doc(hidden)]
pub mod __private {
    pub use crate::schema::{check_pin, SchemaHasher, SelfRef};
}
