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
}
