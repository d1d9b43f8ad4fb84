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
//! let store = Tasks::start_master().expect("a plain process is its own master");
//! store.dispatch(TaskAction::Done).expect("the master applies at once");
//! assert_eq!(store.state().done, 1);
//! assert_eq!(store.seq(), 1);
//! ```
//!
//! # Layout
//! - `schema.rs`: the [`Schema`] trait, structural hashes, store identity.
//! - `const_sha256.rs`: SHA-256 in `const fn`, for compile-time hashes.
//! - `reducer.rs`: [`ClusterState`] and [`Reducer`], written by the macros.
//! - `store.rs`: the [`Store`] handle: dispatch, read, subscribe.
//! - `protocol/`: messages and the frame codec, with no I/O.
//! - `error.rs`: error types, split by when they happen.
#![warn(missing_docs)]

// Lets the macros' `::redux_cluster::` paths resolve inside this crate too.
extern crate self as redux_cluster;

mod const_sha256;
mod error;
pub mod protocol;
mod reducer;
mod schema;
mod store;

pub use error::{DispatchError, FrameError, StartError};
pub use reducer::{ClusterState, Reducer};
pub use redux_cluster_derive::{reducer, ClusterStore, Schema};
pub use schema::{describe, first_difference, Schema, SchemaHash, SchemaHasher, StoreId};
pub use store::{ErrorHook, Mode, Role, Roles, StateGuard, Store, StoreBuilder, Subscription};

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
}

#[doc(hidden)]
pub mod __private {
    pub use crate::schema::{check_pin, SchemaHasher, SelfRef};
}
