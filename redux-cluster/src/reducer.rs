//! The traits that tie a state type, its action enum and its reducer.
//!
//! Users never implement these by hand: `#[derive(ClusterStore)]` writes
//! [`ClusterState`] and `#[reducer(State)]` writes [`Reducer`].

use crate::schema::{Schema, SchemaHash, StoreId};
use serde::{de::DeserializeOwned, Serialize};

/// A state type that can be shared as a cluster store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cluster store state",
    label = "add `#[derive(ClusterStore)]` to `{Self}`"
)]
pub trait ClusterState:
    Schema + Serialize + DeserializeOwned + Clone + Default + Send + Sync + 'static
{
    /// The store's name; with the schema hash it makes the store identity.
    const NAME: &'static str;
    /// The schema hash the source pinned with `#[cluster_store(schema = "…")]`.
    const PIN: Option<&'static str>;
    /// The version of this store before this one, named with
    /// `#[cluster_store(previous = …)]`; [`crate::NoPrevious`] if none.
    type Previous;
}

/// A state type together with its action enum and deterministic reducer.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no reducer",
    label = "put `#[reducer({Self})]` on its action enum"
)]
pub trait Reducer: ClusterState {
    /// The action enum.
    type Action: Schema + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Hash of the state and action schemas together: what peers compare.
    const SCHEMA: SchemaHash;

    /// The store identity: SHA-256 over [`ClusterState::NAME`] and
    /// [`Reducer::SCHEMA`].
    const ID: StoreId;

    /// Applies one action. Must be deterministic: every peer runs it on the
    /// same sequence of actions and must reach the same state.
    fn reduce(&mut self, action: &Self::Action);

    /// Appends the schema hashes and store ids of the earlier versions
    /// (through [`crate::History`]).
    #[doc(hidden)]
    fn older_versions(out: &mut Vec<(SchemaHash, StoreId)>, depth: usize);

    /// A state written by an earlier version, converted; `None` when no
    /// earlier version has `schema`.
    #[doc(hidden)]
    fn older_state(schema: SchemaHash, bytes: &[u8], depth: usize) -> Option<Result<Self, String>>;

    /// Actions written by an earlier version, converted.
    #[doc(hidden)]
    fn older_actions(
        schema: SchemaHash,
        count: u32,
        packed: &[u8],
        depth: usize,
    ) -> Option<Result<Vec<Self::Action>, String>>;
}

/// The readable schema of a store: state, then actions (what a schema
/// mismatch is located in).
pub(crate) fn describe_store<S: Reducer>() -> String {
    let mut s = String::from("state ");
    <S as Schema>::describe(&mut s);
    s.push_str(" actions ");
    <S::Action as Schema>::describe(&mut s);
    s
}
