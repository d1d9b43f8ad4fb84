//! A store's earlier versions, and reading what they wrote.
//!
//! `#[cluster_store(previous = v1::Flags)]` on a state names the version
//! before it: a store type of its own (kept in a module, with its
//! `#[reducer]`), and `From` conversions for its state and its actions.
//! Each version names its own previous one, so the chain goes back as far
//! as the user keeps it. A backup or journal written by any version of the
//! chain is read with that version's types, converted step by step, and
//! then rewritten in the current schema (`persist.rs`).
//!
//! The chain is checked where `#[reducer]` expands: a missing `From` is a
//! compile error that names it.

use crate::codec;
use crate::reducer::Reducer;
use crate::schema::{SchemaHash, StoreId};

/// The previous version of a store that has none.
#[derive(Debug, Clone, Copy)]
pub struct NoPrevious;

/// Longest chain followed (a chain that loops back on itself stops here).
const MAX_DEPTH: usize = 64;

/// What one earlier version of store `Next` can read: its own files and,
/// through its own previous version, older ones. Implemented for every
/// store type whose state and actions convert into `Next`'s, and for
/// [`NoPrevious`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the previous version of `{Next}`",
    label = "named by `#[cluster_store(previous = ...)]`",
    note = "the previous version is a store of its own (`#[derive(ClusterStore)]` and `#[reducer]`), with `impl From<{Self}> for {Next}` and `From` between their action enums"
)]
pub trait History<Next: Reducer> {
    /// Appends the schema hash and store id of this version and each
    /// older one, newest first.
    fn versions(out: &mut Vec<(SchemaHash, StoreId)>, depth: usize);

    /// A state written under `schema`, converted to `Next`; `None` when no
    /// version of the chain has that schema.
    fn state(schema: SchemaHash, bytes: &[u8], depth: usize) -> Option<Result<Next, String>>;

    /// `count` actions written back to back under `schema`, converted.
    fn actions(
        schema: SchemaHash,
        count: u32,
        packed: &[u8],
        depth: usize,
    ) -> Option<Result<Vec<Next::Action>, String>>;
}

impl<Next: Reducer> History<Next> for NoPrevious {
    fn versions(_: &mut Vec<(SchemaHash, StoreId)>, _: usize) {}

    fn state(_: SchemaHash, _: &[u8], _: usize) -> Option<Result<Next, String>> {
        None
    }

    fn actions(
        _: SchemaHash,
        _: u32,
        _: &[u8],
        _: usize,
    ) -> Option<Result<Vec<Next::Action>, String>> {
        None
    }
}

impl<P, Next> History<Next> for P
where
    P: Reducer,
    Next: Reducer + From<P>,
    Next::Action: From<P::Action>,
{
    fn versions(out: &mut Vec<(SchemaHash, StoreId)>, depth: usize) {
        if depth < MAX_DEPTH {
            out.push((P::SCHEMA, P::ID));
            P::older_versions(out, depth + 1);
        }
    }

    fn state(schema: SchemaHash, bytes: &[u8], depth: usize) -> Option<Result<Next, String>> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let older = if schema == P::SCHEMA {
            Some(codec::decode::<P>(bytes).map_err(|e| e.to_string()))
        } else {
            P::older_state(schema, bytes, depth + 1)
        };
        older.map(|r| r.map(Next::from))
    }

    fn actions(
        schema: SchemaHash,
        count: u32,
        packed: &[u8],
        depth: usize,
    ) -> Option<Result<Vec<Next::Action>, String>> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let older = if schema == P::SCHEMA {
            Some(
                codec::decode_packed::<P::Action>(count, packed)
                    .map(|v| v.into_iter().map(|(a, _)| a).collect())
                    .map_err(|e| e.to_string()),
            )
        } else {
            P::older_actions(schema, count, packed, depth + 1)
        };
        older.map(|r| r.map(|v: Vec<P::Action>| v.into_iter().map(Next::Action::from).collect()))
    }
}

/// The schema hashes and store ids store `S` reads: its own first, then
/// each earlier version's.
pub(crate) fn readable<S: Reducer>() -> Vec<(SchemaHash, StoreId)> {
    let mut out = vec![(S::SCHEMA, S::ID)];
    S::older_versions(&mut out, 0);
    out
}

/// A state of store `S` written under `schema` (this version or an earlier
/// one, converted).
pub(crate) fn read_state<S: Reducer>(schema: SchemaHash, bytes: &[u8]) -> Result<S, String> {
    if schema == S::SCHEMA {
        return codec::decode(bytes).map_err(|e| e.to_string());
    }
    S::older_state(schema, bytes, 0)
        .unwrap_or_else(|| Err(format!("no version of this store has schema {schema}")))
}

/// The schema hashes of store `S`'s earlier versions.
pub(crate) fn older_schemas<S: Reducer>() -> Vec<SchemaHash> {
    readable::<S>()
        .into_iter()
        .skip(1)
        .map(|(s, _)| s)
        .collect()
}

/// Actions and the bytes they were decoded from, as
/// [`codec::decode_packed`] returns them and the action ring takes them.
pub(crate) type Packed<A> = (Vec<(A, std::ops::Range<usize>)>, Vec<u8>);

/// `count` actions written under an earlier version's `schema`, converted
/// and encoded again as this version's (what the action ring holds and
/// followers are sent).
pub(crate) fn convert_packed<S: Reducer>(
    schema: SchemaHash,
    count: u32,
    packed: &[u8],
) -> Result<Packed<S::Action>, String> {
    let actions = read_actions::<S>(schema, count, packed)?;
    let mut bytes = Vec::new();
    let mut out = Vec::with_capacity(actions.len());
    for a in actions {
        let start = bytes.len();
        codec::encode_into(&a, &mut bytes).map_err(|e| e.to_string())?;
        out.push((a, start..bytes.len()));
    }
    Ok((out, bytes))
}

/// `count` actions of store `S` written under `schema`, converted.
pub(crate) fn read_actions<S: Reducer>(
    schema: SchemaHash,
    count: u32,
    packed: &[u8],
) -> Result<Vec<S::Action>, String> {
    S::older_actions(schema, count, packed, 0)
        .unwrap_or_else(|| Err(format!("no version of this store has schema {schema}")))
}
