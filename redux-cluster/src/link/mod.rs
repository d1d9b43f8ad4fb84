//! Links between processes: the master side serves followers
//! ([`serve`]), the follower side follows a master ([`follow`]).
//!
//! A link is transport-agnostic: it runs over any reader/writer pair. All
//! stores of a process share one link, each on its own channel; the link
//! talks to stores through the object-safe [`Source`] (a store that followers
//! copy) and [`Sink`] (a store that copies a master) traits, so it never
//! needs the stores' concrete types.

pub(crate) mod follow;
pub(crate) mod serve;
mod sink;
mod source;

use crate::protocol::{Channel, FrameCodec, JoinRefused, Position};
use crate::schema::{SchemaHash, StoreId};
use crate::FrameError;
use std::sync::Arc;
use tokio::sync::Notify;

/// Waits for `wake`; with a heartbeat interval, sends a heartbeat each time
/// the interval passes first. Returns false when the link is broken.
pub(crate) async fn wait_or_beat<W: tokio::io::AsyncWrite + Unpin>(
    wake: &Notify,
    heartbeat: Option<std::time::Duration>,
    writer: &mut crate::connection::FrameWriter<W>,
) -> bool {
    let Some(every) = heartbeat else {
        wake.notified().await;
        return true;
    };
    loop {
        if tokio::time::timeout(every, wake.notified()).await.is_ok() {
            return true;
        }
        let beat = crate::protocol::Message::Heartbeat(crate::protocol::Heartbeat { ping: 0 });
        if writer.send(&beat).await.is_err() {
            return false;
        }
    }
}

/// The next message, or [`crate::LinkError::Silent`] when a peer that should
/// send heartbeats has sent nothing for three intervals.
pub(crate) async fn next_within<'a, R: tokio::io::AsyncRead + Unpin>(
    reader: &'a mut crate::connection::FrameReader<R>,
    heartbeat: Option<std::time::Duration>,
) -> Result<Option<crate::protocol::Message<'a>>, crate::LinkError> {
    match heartbeat {
        None => reader.next().await,
        Some(every) => {
            let limit = every * 3;
            match tokio::time::timeout(limit, reader.next()).await {
                Ok(r) => r,
                Err(_) => Err(crate::LinkError::Silent(limit)),
            }
        }
    }
}

/// A spawned task that is aborted when this handle is dropped, so a link's
/// writer never outlives the link (even when the link's own task is
/// aborted, e.g. by a server shutting down).
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it has stopped: after this returns
    /// it touches nothing any more. (Dropping only asks it to stop; on a
    /// multi-threaded runtime it may still be running its current step.)
    pub async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a follower stands in a store's stream, kept by the serving link.
pub(crate) struct Feed {
    pub channel: Channel,
    /// Last sequence number sent; `None` until a snapshot has been sent.
    pub sent: Option<u64>,
    /// Actions sent since the last snapshot (for the `resync` option).
    pub since_snapshot: u64,
    /// Actions sent since the last digest.
    pub since_digest: u64,
    /// Set when the follower fell off the action ring and was sent a
    /// snapshot instead: how far behind it was. The link reports it.
    pub lagged: Option<u64>,
    /// A snapshot frame taken at a seq not yet durable, sent once it is.
    pub held: Option<(u64, Vec<u8>)>,
}

/// A store as seen by a link that serves followers.
pub(crate) trait Source: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> SchemaHash;
    /// The schema hashes of the store's earlier versions.
    fn older_schemas(&self) -> Vec<SchemaHash>;
    fn describe(&self) -> String;
    fn epoch(&self) -> u64;
    /// Whether a follower resuming from `pos` can be sent the actions after
    /// it (else it needs a snapshot).
    fn can_resume(&self, pos: Position) -> bool;
    /// Applies (or, on a relay, forwards) batch `batch` of `session`, sent
    /// by `peer`; `reply` gets the commit seq of its last applied action
    /// and the actions the validator rejected. A batch already applied is
    /// not applied again; `reply` still gets what it came to.
    fn dispatch_packed(
        &self,
        session: u64,
        batch: u64,
        count: u32,
        packed: &[u8],
        peer: &crate::Peer,
        reply: crate::core::Reply,
    ) -> Result<(), postcard::Error>;
    /// Batches of `session` applied after `acked`, with what each came to.
    fn applied_after(&self, session: u64, acked: u64) -> Vec<(u64, crate::validate::Committed)>;
    /// Appends frames bringing the follower up to date, about `budget`
    /// bytes; returns whether more remain.
    fn fill(
        &self,
        feed: &mut Feed,
        out: &mut Vec<u8>,
        codec: &FrameCodec,
        budget: usize,
    ) -> Result<bool, FrameError>;
    /// Wakes `waker` after every apply from now on.
    fn attach(&self, waker: &Arc<Notify>);
    /// Adds a role (master when workers join, server when clients do).
    fn add_role(&self, role: crate::Role);
    /// Stops waking `waker`.
    fn detach(&self, waker: &Arc<Notify>);
    /// Reports an error through the store's hook.
    fn report(&self, err: crate::Error);
    /// Reports an event through the store's hook.
    fn event(&self, ev: crate::Event);
}

/// A store as seen by the link that follows its master.
pub(crate) trait Sink: Send + Sync {
    fn name(&self) -> &'static str;
    fn id(&self) -> StoreId;
    fn schema(&self) -> SchemaHash;
    /// The schema hashes of the store's earlier versions.
    fn older_schemas(&self) -> Vec<SchemaHash>;
    fn describe(&self) -> String;
    /// Where the store stands, for a resume.
    fn position(&self) -> Option<Position>;
    /// This store's dispatch session and the last batch acked.
    fn session(&self) -> (u64, u64);
    /// Joined a master whose schema is `master_schema` (this store's, or an
    /// earlier version's).
    fn on_joined(&self, epoch: u64, applied: &[(u64, u64)], master_schema: SchemaHash);
    fn on_snapshot(&self, epoch: u64, seq: u64, state: &[u8]) -> Result<(), crate::SyncError>;
    fn on_actions(&self, first_seq: u64, count: u32, packed: &[u8])
        -> Result<(), crate::SyncError>;
    /// Compares the master's digest at `seq` with this store's state.
    fn on_digest(&self, seq: u64, digest: &[u8; 32]) -> Result<(), crate::SyncError>;
    fn on_ack(&self, batch: u64, request: u64, seq: u64);
    fn on_nack(&self, batch: u64, request: u64, reason: &str);
    /// The master rejected action `index` of `batch` (its ack follows).
    fn on_rejected(&self, batch: u64, index: u32, reason: &str);
    fn on_refused(&self, refusal: &JoinRefused<'_>);
    /// The link is gone for good, with this reason (a refused login).
    fn on_fatal(&self, why: &crate::JoinError);
    /// A connection attempt failed with `cause`; another follows.
    fn on_retry(&self, cause: &str);
    /// The server is full; the link will try again.
    fn on_unavailable(&self, detail: &str);
    /// The link is gone; `will_retry` when a reconnect follows.
    fn on_down(&self, will_retry: bool);
    /// Moves queued dispatches into frames; returns whether any were added.
    fn take_dispatches(&self, channel: Channel, out: &mut Vec<u8>, codec: &FrameCodec) -> bool;
    /// Drops queued dispatches that can no longer be sent.
    fn report(&self, err: crate::Error);
}
