//! Every message of the sync protocol.
//!
//! A link starts with a link-level handshake (`Hello`, optionally
//! `Challenge`/`Proof`, then `Welcome` or `Refuse`). Stores then join over
//! the same link, one channel each (`Join`, then `Joined` or
//! `JoinRefused`), which is how several stores share one link, isolated by
//! store identity. Payloads (state, actions) borrow from the frame buffer:
//! they are postcard bytes of the user's types, decoded by the store that
//! owns the channel.

use crate::schema::{SchemaHash, StoreId};
use serde::{Deserialize, Serialize};

/// A channel number: one per store joined over a link.
pub type Channel = u32;

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message<'a> {
    /// Client → server, first on a link.
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// Server → client: prove you know the password, bound to these nonces.
    Challenge(Challenge),
    /// Client → server: the answer to the challenge.
    Proof(Proof),
    /// Server → client: admitted.
    Welcome(Welcome),
    /// Server → client: refused; the link closes.
    #[serde(borrow)]
    Refuse(Refuse<'a>),
    /// Follower → master: join a store on a channel.
    #[serde(borrow)]
    Join(Join<'a>),
    /// Master → follower: joined.
    Joined(Joined),
    /// Master → follower: this store cannot be joined.
    #[serde(borrow)]
    JoinRefused(JoinRefused<'a>),
    /// Master → follower: the whole state at a sequence number.
    #[serde(borrow)]
    Snapshot(Snapshot<'a>),
    /// Master → follower: consecutive applied actions.
    #[serde(borrow)]
    Actions(Actions<'a>),
    /// Follower → master: actions to apply.
    #[serde(borrow)]
    Dispatch(Dispatch<'a>),
    /// Master → follower: the dispatch `request` was committed.
    Ack(Ack),
    /// Master → follower: the dispatch `request` was refused.
    #[serde(borrow)]
    Nack(Nack<'a>),
    /// Master → follower: digest of the state at `seq`, to detect divergence.
    Digest(Digest),
    /// Follower → master: my state diverged at `seq`; send a snapshot.
    Diverged(Diverged),
    /// Either way: liveness.
    Heartbeat(Heartbeat),
    /// Either way: closing, with a reason.
    #[serde(borrow)]
    Goodbye(Goodbye<'a>),
    /// Master → follower: the validator rejected one action of a dispatch
    /// batch; sent before the batch's `Ack` (or the `Joined` that settles
    /// it), which then counts only the batch's applied actions.
    #[serde(borrow)]
    Rejected(Rejected<'a>),
}

/// First message of a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// [`super::PROTOCOL_VERSION`] of the sender.
    pub protocol: u16,
    /// Login name, when the client has credentials.
    pub login: Option<&'a str>,
    /// Client nonce for the challenge-response.
    pub nonce: [u8; 32],
}

/// Challenge for a login (SCRAM-style: the server stores only salted keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// Per-login salt.
    pub salt: [u8; 16],
    /// Key-derivation cost.
    pub iterations: u32,
    /// Server nonce.
    pub nonce: [u8; 32],
}

/// Answer to a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    /// Client proof; useless for a replay since it binds both nonces.
    pub proof: [u8; 32],
}

/// Admission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// Server signature over the exchange (zero when no login was asked),
    /// so the client knows the server holds the key too.
    pub signature: [u8; 32],
    /// Whether this login may dispatch.
    pub read_only: bool,
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseReason {
    /// Protocol versions differ.
    Version,
    /// Unknown login or wrong password.
    BadCredentials,
    /// Too many failures from this peer; refused for a while.
    Banned,
    /// The server needs a login and none was given.
    LoginRequired,
    /// The server is shutting down or full.
    Unavailable,
}

/// Refusal of a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refuse<'a> {
    /// Machine-readable reason.
    pub reason: RefuseReason,
    /// Human-readable detail.
    pub detail: &'a str,
}

/// Where in the master's history a state stands: after action `seq` of
/// `epoch`. A follower sends it to resume; backups record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Position {
    /// The master's epoch (changes when a master starts afresh).
    pub epoch: u64,
    /// Last applied sequence number.
    pub seq: u64,
}

/// Join a store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join<'a> {
    /// Channel the follower chose for this store.
    pub channel: Channel,
    /// Store identity.
    pub store: StoreId,
    /// Schema hash of the follower's build.
    pub schema: SchemaHash,
    /// Store name, for messages.
    pub name: &'a str,
    /// Readable schema, so a mismatch can point at the first difference.
    pub describe: &'a str,
    /// Last position, when resuming.
    pub resume: Option<Position>,
    /// The follower's dispatch session (random per store instance), so the
    /// master can drop a batch it already applied when it is re-sent after
    /// a reconnect.
    pub session: u64,
    /// Highest dispatch batch whose ack the follower has received.
    pub acked_batch: u64,
    /// Schema hashes of the store's earlier versions, which this follower
    /// can read: a master still on one of them is followed (its snapshots
    /// and actions converted), though the follower's own dispatches wait
    /// until the master runs the follower's version.
    pub older: Vec<SchemaHash>,
}

/// Store joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    /// The channel from the [`Join`].
    pub channel: Channel,
    /// Master's epoch.
    pub epoch: u64,
    /// Batches of this session applied after `acked_batch`, with the seq of
    /// each one's last action: the follower resolves them and re-sends the
    /// rest, so a reconnect neither loses nor repeats a dispatch.
    pub applied: Vec<(u64, u64)>,
    /// The master's schema hash: the follower's own, or one of its earlier
    /// versions (the snapshots and actions that follow are in it).
    pub schema: SchemaHash,
}

/// Why a store could not be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinRefusal {
    /// The other side has no store with that name.
    UnknownStore,
    /// Same name, another schema hash.
    SchemaMismatch,
    /// Joined twice on one link.
    Duplicate,
    /// The follower runs an earlier version of the store than the master:
    /// it must be upgraded.
    Outdated,
}

/// Refusal of a join.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRefused<'a> {
    /// The channel from the [`Join`].
    pub channel: Channel,
    /// Machine-readable reason.
    pub reason: JoinRefusal,
    /// The refusing side's schema hash for that name, when it has the store.
    pub schema: Option<SchemaHash>,
    /// The refusing side's readable schema, when it has the store.
    pub describe: &'a str,
}

/// Whole state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot<'a> {
    /// Channel.
    pub channel: Channel,
    /// Master epoch.
    pub epoch: u64,
    /// Sequence number of the last action folded into `state`.
    pub seq: u64,
    /// Postcard bytes of the state.
    pub state: &'a [u8],
}

/// Consecutive actions `first_seq .. first_seq + count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actions<'a> {
    /// Channel.
    pub channel: Channel,
    /// Sequence number of the first action.
    pub first_seq: u64,
    /// Number of actions in `packed`.
    pub count: u32,
    /// Postcard bytes of the actions, back to back (each is self-delimiting).
    pub packed: &'a [u8],
}

/// Actions a follower wants applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatch<'a> {
    /// Channel.
    pub channel: Channel,
    /// Batch number within the follower's session (1, 2, …).
    pub batch: u64,
    /// Request id to acknowledge; 0 asks for no ack.
    pub request: u64,
    /// Number of actions in `packed`.
    pub count: u32,
    /// Postcard bytes of the actions, back to back.
    pub packed: &'a [u8],
}

/// Commit of a dispatch batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Channel.
    pub channel: Channel,
    /// The batch committed.
    pub batch: u64,
    /// Request id.
    pub request: u64,
    /// Sequence number of the request's last action.
    pub seq: u64,
}

/// Refusal of a dispatch batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nack<'a> {
    /// Channel.
    pub channel: Channel,
    /// The batch refused.
    pub batch: u64,
    /// Request id.
    pub request: u64,
    /// Why.
    pub reason: &'a str,
}

/// One action of a dispatch batch that the master's validator rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected<'a> {
    /// Channel.
    pub channel: Channel,
    /// The batch.
    pub batch: u64,
    /// The action's index within the batch.
    pub index: u32,
    /// The validator's reason.
    pub reason: &'a str,
}

/// Digest of the state at `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Channel.
    pub channel: Channel,
    /// Sequence number the digest describes.
    pub seq: u64,
    /// SHA-256 of the postcard bytes of the state.
    pub digest: [u8; 32],
}

/// A follower's state diverged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diverged {
    /// Channel.
    pub channel: Channel,
    /// Where the digests differed.
    pub seq: u64,
}

/// Liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Echoed back by the peer when nonzero.
    pub ping: u64,
}

/// Closing notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goodbye<'a> {
    /// Why.
    pub reason: &'a str,
}

impl Message<'_> {
    /// The message's name, for protocol errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Challenge(_) => "challenge",
            Message::Proof(_) => "proof",
            Message::Welcome(_) => "welcome",
            Message::Refuse(_) => "refuse",
            Message::Join(_) => "join",
            Message::Joined(_) => "joined",
            Message::JoinRefused(_) => "join-refused",
            Message::Snapshot(_) => "snapshot",
            Message::Actions(_) => "actions",
            Message::Dispatch(_) => "dispatch",
            Message::Ack(_) => "ack",
            Message::Nack(_) => "nack",
            Message::Digest(_) => "digest",
            Message::Diverged(_) => "diverged",
            Message::Heartbeat(_) => "heartbeat",
            Message::Goodbye(_) => "goodbye",
            Message::Rejected(_) => "rejected",
        }
    }
}
