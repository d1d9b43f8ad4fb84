//! Errors, split by when they happen (as quinn does): starting a store,
//! dispatching into it, and reading frames off a link.

use std::io;

/// Starting a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// This process is a worker but is not running inside a tokio runtime,
    /// which the link to the master needs.
    #[error("this process is a worker and needs a tokio runtime to reach its master; start the store inside #[tokio::main]")]
    NoRuntime,
    /// The worker channel named by the environment could not be opened.
    #[error("cannot open the worker channel to the master: {0}")]
    WorkerChannel(#[source] io::Error),
    /// Another store with this name already runs in this process; names
    /// identify stores on a link.
    #[error("a store named `{0}` already runs in this process")]
    DuplicateStore(&'static str),
}

/// A follower could not join its master.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The master holds this store with another schema.
    #[error(transparent)]
    SchemaMismatch(#[from] SchemaMismatch),
    /// The master has no store of this name.
    #[error("store `{name}`: the master has no such store")]
    UnknownStore {
        /// Store name.
        name: String,
    },
    /// This peer runs an earlier version of the store than the master (one
    /// the master lists as its previous): upgrade this peer.
    #[error("store `{name}`: this peer runs an earlier version than the master{}; upgrade it", master.map(|m| format!(" (schema {m})")).unwrap_or_default())]
    Outdated {
        /// Store name.
        name: String,
        /// The master's schema hash.
        master: Option<crate::SchemaHash>,
    },
    /// Unknown login or wrong password.
    #[error("login refused: wrong login or password")]
    WrongCredentials,
    /// The server needs a login and none was configured.
    #[error("login refused: the server needs a login and none was given")]
    LoginRequired,
    /// Too many failed logins from this peer; refused for a while.
    #[error("login refused: {detail}")]
    Banned {
        /// The server's words, with the time left.
        detail: String,
    },
    /// The server admitted us without proving it holds the login's key: it
    /// is not the server we meant.
    #[error("the server failed to prove it holds the login's key")]
    ServerNotAuthentic,
    /// The server's certificate was refused (wrong fingerprint, name or
    /// issuer); retrying cannot help.
    #[error("the server's certificate was refused: {0}")]
    CertificateRejected(String),
    /// The server is at its connection limit. Returned by
    /// [`crate::Store::ready`] at once; the store keeps trying and joins
    /// when a place frees (call `ready()` again to wait for it).
    #[error("the server is full: {detail}")]
    ServerFull {
        /// The server's words.
        detail: String,
    },
    /// The client's own transport configuration cannot work (an invalid
    /// server name, no trusted roots, a key rustls refuses); fix it, as
    /// retrying gives the same error.
    #[error("the connection cannot be set up: {0}")]
    Misconfigured(String),
    /// Refused for another reason (an unsupported protocol version, say).
    #[error("refused: {0}")]
    Refused(String),
    /// The link to the master is gone for good.
    #[error("the link to the master is gone")]
    LinkDown,
    /// No join within the client's connect timeout; it keeps trying.
    #[error("not joined within {after:?}{}", last_failure.as_ref().map(|c| format!("; last failure: {c}")).unwrap_or_default())]
    Timeout {
        /// The connect timeout.
        after: std::time::Duration,
        /// Why the last connection attempt failed, if one did.
        last_failure: Option<String>,
    },
}

/// A follower could not apply what its master sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The payload does not decode as this store's state or actions.
    #[error("payload does not decode as this store's types: {0}")]
    Decode(String),
    /// This store's state differs from the master's at the same sequence
    /// number: the reducer is not deterministic (it reads a clock, a random
    /// number, a global...). A snapshot from the master repairs it.
    #[error("state diverged from the master's at seq {seq} (is the reducer deterministic?); a snapshot was requested")]
    Diverged {
        /// Where the digests differed.
        seq: u64,
    },
    /// Actions arrived with a gap before them.
    #[error("actions out of order: expected seq {expected}, got {got}")]
    Gap {
        /// The next sequence number this store needs.
        expected: u64,
        /// The first sequence number that arrived.
        got: u64,
    },
}

/// Two peers hold stores of one name with different schemas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "store `{name}`: schema mismatch with {peer}: this side has {ours}, the other side has {theirs}{diff}"
)]
pub struct SchemaMismatch {
    /// Store name.
    pub name: String,
    /// Who the other side is.
    pub peer: String,
    /// This side's schema hash.
    pub ours: crate::SchemaHash,
    /// The other side's schema hash.
    pub theirs: crate::SchemaHash,
    /// Where the schemas first differ, when known (`"; first difference: …"`).
    pub diff: String,
}

impl SchemaMismatch {
    /// Builds the report, locating the first difference of the two readable
    /// schemas when both are known.
    pub fn new(
        name: &str,
        peer: &str,
        ours: (crate::SchemaHash, &str),
        theirs: (crate::SchemaHash, &str),
    ) -> Self {
        let diff = if theirs.1.is_empty() {
            String::new()
        } else {
            match crate::schema::first_difference(ours.1, theirs.1) {
                Some((a, b)) => format!("; first difference: here `{a}`, there `{b}`"),
                None => String::new(),
            }
        };
        Self {
            name: name.to_string(),
            peer: peer.to_string(),
            ours: ours.0,
            theirs: theirs.0,
            diff,
        }
    }
}

/// A dispatch was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The link to the master closed before the action was committed. The
    /// action may or may not have been applied by the master.
    #[error("the link to the master closed before the action was committed")]
    Disconnected,
    /// Too many dispatches are waiting for the link to come up.
    #[error("the queue of dispatches waiting for the master is full ({0} actions)")]
    QueueFull(usize),
    /// The master refused the dispatch (for example, a read-only login).
    #[error("the master refused the dispatch: {0}")]
    Refused(String),
    /// The action could not be encoded.
    #[error("the action could not be encoded: {0}")]
    Encode(String),
    /// The store has been shut down.
    #[error("the store has been shut down")]
    Closed,
    /// The master applied the action but its journal failed before the
    /// action was on disk, so it was not acknowledged as durable.
    #[error("the action was applied but not made durable: {0}")]
    NotDurable(String),
    /// The store closed with this many queued actions that the link to the
    /// master could no longer deliver.
    #[error("{0} queued actions were not delivered: the link to the master is gone for good")]
    Undelivered(usize),
    /// [`crate::Store::commit_within`] gave up waiting. The action stays
    /// queued (or in flight) and may still be committed later, exactly
    /// once; only the wait ended.
    #[error("not committed within {0:?}; the action may still be committed")]
    Timeout(std::time::Duration),
    /// A dispatch on a master from a thread that holds a read guard of the
    /// same store ([`crate::Store::state`]): applying would wait for that
    /// guard for ever. Drop the guard first.
    #[error("this thread holds a read guard of the store; drop it before dispatching")]
    StateBorrowed,
    /// The master's (or hub's) validator refused the action
    /// ([`crate::StoreBuilder::validate`]); it was not applied anywhere.
    #[error("the action was rejected: {reason}")]
    Rejected {
        /// The validator's reason.
        reason: String,
    },
}

/// A frame read off a link was bad. The link that sent it is closed; other
/// links are not affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    Oversized {
        /// Announced length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated {
        /// Bytes the frame needs (prefix included).
        need: usize,
        /// Bytes that arrived.
        have: usize,
    },
}

impl SyncError {
    /// A payload that did not decode (postcard's message).
    pub(crate) fn decode(e: postcard::Error) -> Self {
        SyncError::Decode(e.to_string())
    }
}

impl FrameError {
    /// A body that is not a valid message (postcard's message).
    pub(crate) fn malformed(e: postcard::Error) -> Self {
        FrameError::Malformed(e.to_string())
    }
}
