//! The master side of a link: admits a peer, joins its stores, applies its
//! dispatches, and streams every store's actions back to it.
//!
//! One reader loop (this task) and one writer task per link. The writer
//! pulls from each joined store's action ring when woken, so everything that
//! accumulated while it was writing goes out in one write: batching without
//! a timer.

use super::{AbortOnDrop, Feed, Source};
use crate::admission::server::{self, Admission, Reason, Refusal, Step};
use crate::admission::{Access, PeerKey};
use crate::connection::{FrameReader, FrameWriter, LinkError};
use crate::error::{FrameError, SchemaMismatch};
use crate::options::Role;
use crate::protocol::{
    Ack, Channel, FrameCodec, Goodbye, Join, JoinRefusal, JoinRefused, Joined, Message, Nack,
    Refuse, RefuseReason, Rejected, Welcome,
};
use crate::registry;
use crate::transport::accept::GRACE;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Bytes of actions one store may add to one write before the others get
/// their turn.
const FILL_BUDGET: usize = 256 * 1024;

/// Most control bytes (acks, join replies) queued for a peer that does not
/// read; past it the peer is disconnected.
const MAX_CONTROL: usize = 16 << 20;

/// How a link serves its peer.
#[derive(Clone)]
pub(crate) struct ServeOptions {
    /// Who the peer is, for messages.
    pub peer: String,
    /// Who the peer is, for the validator (its login is filled in once
    /// admitted).
    pub who: crate::Peer,
    pub codec: FrameCodec,
    /// How long a join may wait for this process to create the store.
    pub join_wait: Duration,
    /// Logins and bans; `None` admits the peer (a forked worker).
    pub access: Option<Arc<Access>>,
    /// The identity bans are keyed on.
    pub peer_key: PeerKey,
    /// The stores this link may join; `None` for all of this process.
    pub stores: Option<Arc<[&'static str]>>,
    /// The role serving gives a store (master for workers, server for
    /// clients).
    pub role: Role,
    /// Send a heartbeat after this long without traffic, and drop a peer
    /// silent for three times as long (network links; `None` for local ones,
    /// which see a dead peer as end of stream).
    pub heartbeat: Option<Duration>,
    /// How long a peer may take to say hello and log in.
    pub handshake_timeout: Option<Duration>,
    /// Cancelled when the server shuts down: the link says goodbye, ends
    /// its stream (TLS close_notify, QUIC finish, FIN) and returns.
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

struct Chan {
    source: Arc<dyn Source>,
    feed: Feed,
    /// The follower's dispatch session on this channel.
    session: u64,
    /// The follower runs a later version of the store (it reads ours, we
    /// cannot read its actions): its dispatches are refused.
    newer: bool,
}

struct LinkState {
    wake: Arc<Notify>,
    chans: Mutex<Vec<Chan>>,
    /// Frames to send before the stores' actions (join replies).
    pre: Mutex<Vec<u8>>,
    /// Frames to send after them (acks).
    post: Mutex<Vec<u8>>,
    /// Set when the server shuts down: the writer sends what is queued,
    /// ends the stream and stops.
    closing: std::sync::atomic::AtomicBool,
    codec: FrameCodec,
    peer: String,
}

impl LinkState {
    fn push(&self, q: &Mutex<Vec<u8>>, msg: &Message<'_>) -> Result<(), LinkError> {
        let mut buf = q.lock();
        self.codec.encode(msg, &mut buf)?;
        if buf.len() > MAX_CONTROL {
            return Err(LinkError::Protocol(
                "the peer does not read its acknowledgements".into(),
            ));
        }
        drop(buf);
        self.wake.notify_one();
        Ok(())
    }

    fn session_of(&self, channel: Channel) -> u64 {
        self.chans
            .lock()
            .iter()
            .find(|c| c.feed.channel == channel)
            .map_or(0, |c| c.session)
    }

    /// Queues the refusal of a join on `channel`.
    fn refuse_join(
        &self,
        channel: Channel,
        reason: JoinRefusal,
        schema: Option<crate::SchemaHash>,
        describe: &str,
    ) -> Result<(), LinkError> {
        let msg = Message::JoinRefused(JoinRefused {
            channel,
            reason,
            schema,
            describe,
        });
        self.push(&self.pre, &msg)
    }

    fn is_newer(&self, channel: Channel) -> bool {
        self.chans
            .lock()
            .iter()
            .any(|c| c.feed.channel == channel && c.newer)
    }

    fn source_of(&self, channel: Channel) -> Option<Arc<dyn Source>> {
        self.chans
            .lock()
            .iter()
            .find(|c| c.feed.channel == channel)
            .map(|c| Arc::clone(&c.source))
    }
}

/// Serves one peer until the link ends. Reports the end to every store the
/// peer had joined.
pub(crate) async fn serve<R, W>(reader: R, writer: W, opts: ServeOptions)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let link = Arc::new(LinkState {
        wake: Arc::new(Notify::new()),
        chans: Mutex::new(Vec::new()),
        pre: Mutex::new(Vec::new()),
        post: Mutex::new(Vec::new()),
        closing: std::sync::atomic::AtomicBool::new(false),
        codec: opts.codec,
        peer: opts.peer.clone(),
    });
    // Small frames and a small buffer until the peer has logged in.
    let mut reader = FrameReader::before_login(reader, opts.codec);
    let mut writer = FrameWriter::new(writer, opts.codec);
    // Detaches the stores however this future ends, aborted included.
    let _detach = Detach(Arc::clone(&link));
    let admitted = match opts.handshake_timeout {
        Some(limit) => tokio::time::timeout(limit, handshake(&mut reader, &mut writer, &opts))
            .await
            .unwrap_or(Err(LinkError::Silent(limit))),
        None => handshake(&mut reader, &mut writer, &opts).await,
    };
    let result = match admitted {
        Ok((read_only, login)) => {
            let who = opts.who.clone().with_login(login);
            reader.admitted(opts.codec);
            let mut writer = AbortOnDrop(tokio::spawn(write_loop(
                Arc::clone(&link),
                writer,
                opts.heartbeat,
            )));
            let stopping = async {
                match &opts.stop {
                    Some(stop) => stop.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            let (res, writer_done) = tokio::select! {
                res = read_loop(&link, &mut reader, &opts, &who, read_only) => (res, false),
                () = stopping => {
                    // The server shuts down: a goodbye, then the end of the
                    // stream, so the peer knows why and sees a clean close.
                    let _ = link.push(
                        &link.post,
                        &Message::Goodbye(Goodbye {
                            reason: "the server is shutting down",
                        }),
                    );
                    link.closing.store(true, std::sync::atomic::Ordering::SeqCst);
                    link.wake.notify_one();
                    let done = tokio::time::timeout(GRACE, &mut writer.0).await.is_ok();
                    (Ok(()), done)
                }
            };
            // Stopped before the stores are detached below, so nothing
            // reads a store for this link after it is gone. (A writer that
            // already ended must not be awaited again.)
            if !writer_done {
                writer.stop().await;
            }
            res
        }
        Err(e) => Err(e),
    };
    // On a local link (a pipe or a Unix socket: no heartbeat) a reset is a
    // close too: the kernel resets instead of ending the stream when the
    // peer's process went away with bytes it had not read yet, which a
    // normal exit does as often as a crash. Both read as a closed link, as
    // the end of the stream always did.
    let result = match result {
        Err(LinkError::Io(e))
            if opts.heartbeat.is_none() && e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            Ok(())
        }
        other => other,
    };
    let chans = std::mem::take(&mut *link.chans.lock());
    let reason = match &result {
        Ok(()) => "closed the link".to_string(),
        Err(e) => e.to_string(),
    };
    if chans.is_empty() {
        if let Err(e) = &result {
            tracing::warn!(peer = %opts.peer, error = %e, "link ended before any store joined");
        }
    }
    for c in chans {
        c.source.detach(&link.wake);
        match result {
            // A peer that broke the protocol is an error; one that left is
            // an event, clean or not.
            Err(LinkError::Frame(_)) | Err(LinkError::Protocol(_)) => {
                c.source.report(crate::Error::Link {
                    peer: opts.peer.clone(),
                    source: LinkError::Protocol(reason.clone()),
                })
            }
            _ => c.source.event(crate::Event::PeerLeft {
                peer: opts.peer.clone(),
                clean: result.is_ok(),
                reason: reason.clone(),
            }),
        }
    }
}

/// Stops the stores waking a link that is gone.
struct Detach(Arc<LinkState>);

impl Drop for Detach {
    fn drop(&mut self) {
        for c in self.0.chans.lock().drain(..) {
            c.source.detach(&self.0.wake);
        }
    }
}

/// Admits the peer or refuses it; returns whether it is read-only, and the
/// login it proved (none on a server without logins: a name it was merely
/// told proves nothing).
async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    opts: &ServeOptions,
) -> Result<(bool, Option<String>), LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut admission = Admission::new(opts.access.as_deref(), opts.peer_key);
    let mut step = match reader.next().await? {
        Some(Message::Hello(h)) => admission.hello(
            server::Hello {
                protocol: Some(h.protocol),
                login: h.login,
                nonce: Some(h.nonce),
            },
            Instant::now(),
        ),
        Some(other) => admission.unexpected(other.kind()),
        None => return Err(LinkError::Closed),
    };
    loop {
        match step {
            Step::Challenge(challenge) => {
                writer.send(&Message::Challenge(challenge)).await?;
                step = match reader.next().await? {
                    Some(Message::Proof(p)) => admission.proof(Some(&p.proof), Instant::now()),
                    Some(other) => admission.unexpected(other.kind()),
                    None => return Err(LinkError::Closed),
                };
            }
            Step::Welcome(w) => {
                let welcome = Welcome {
                    signature: w.signature.unwrap_or_default(),
                    read_only: w.read_only,
                };
                writer.send(&Message::Welcome(welcome)).await?;
                let proved = w.signature.and(w.login);
                return Ok((w.read_only, proved));
            }
            Step::Refuse(r) => return refuse(writer, r, opts).await,
        }
    }
}

/// Sends a refusal, reporting a failed login to the stores this link
/// serves (before a join, the link does not know which one the peer is
/// after).
async fn refuse<W: AsyncWrite + Unpin, T>(
    writer: &mut FrameWriter<W>,
    refusal: Refusal,
    opts: &ServeOptions,
) -> Result<T, LinkError> {
    if let Some(failed) = &refusal.failed {
        tracing::warn!(peer = %opts.peer, login = %failed.login, "failed login");
        let events = failed.events(&opts.peer);
        for name in opts.stores.iter().flat_map(|s| s.iter()) {
            if let Some(s) = registry::get(name) {
                events.iter().for_each(|ev| s.event(ev.clone()));
            }
        }
    }
    let reason = match refusal.reason {
        Reason::Version => RefuseReason::Version,
        Reason::Banned => RefuseReason::Banned,
        Reason::LoginRequired => RefuseReason::LoginRequired,
        Reason::BadCredentials => RefuseReason::BadCredentials,
        // The binary protocol has no refusal for a broken handshake.
        Reason::Protocol => return Err(LinkError::Protocol(refusal.detail)),
    };
    writer
        .send(&Message::Refuse(Refuse {
            reason,
            detail: &refusal.detail,
        }))
        .await?;
    Err(LinkError::Refused(refusal.detail))
}

async fn read_loop<R: AsyncRead + Unpin>(
    link: &Arc<LinkState>,
    reader: &mut FrameReader<R>,
    opts: &ServeOptions,
    who: &crate::Peer,
    read_only: bool,
) -> Result<(), LinkError> {
    while let Some(msg) = super::next_within(reader, opts.heartbeat).await? {
        match msg {
            Message::Join(j) => join(link, &j, opts)?,
            Message::Dispatch(d) => {
                let Some(source) = link.source_of(d.channel) else {
                    return Err(LinkError::Protocol(format!(
                        "dispatch on channel {} that has not joined",
                        d.channel
                    )));
                };
                let refusal = if read_only {
                    Some("this login is read-only")
                } else if link.is_newer(d.channel) {
                    Some("the master runs an earlier version of the store and cannot read this version's actions; they are sent once it is upgraded")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    link.push(
                        &link.post,
                        &Message::Nack(Nack {
                            channel: d.channel,
                            batch: d.batch,
                            request: d.request,
                            reason,
                        }),
                    )?;
                    continue;
                }
                let reply = ack_reply(link, d.channel, d.batch, d.request);
                let session = link.session_of(d.channel);
                source
                    .dispatch_packed(session, d.batch, d.count, d.packed, who, reply)
                    .map_err(|e| LinkError::Frame(FrameError::malformed(e)))?;
            }
            Message::Diverged(d) => {
                let source = {
                    let mut chans = link.chans.lock();
                    chans
                        .iter_mut()
                        .find(|c| c.feed.channel == d.channel)
                        .map(|c| {
                            c.feed.sent = None;
                            Arc::clone(&c.source)
                        })
                };
                if let Some(s) = source {
                    s.event(crate::Event::PeerDiverged {
                        peer: opts.peer.clone(),
                        seq: d.seq,
                    });
                }
                link.wake.notify_one();
            }
            Message::Heartbeat(_) => {}
            Message::Goodbye(_) => return Ok(()),
            other => {
                return Err(LinkError::Protocol(format!(
                    "unexpected message from a follower: {}",
                    other.kind()
                )))
            }
        }
    }
    Ok(())
}

/// The reply that acknowledges a dispatch to the follower that made it.
fn ack_reply(
    link: &Arc<LinkState>,
    channel: Channel,
    batch: u64,
    request: u64,
) -> crate::core::Reply {
    let link = Arc::clone(link);
    Box::new(move |res| {
        let msg = match &res {
            Ok(done) => {
                // The rejections first: the follower settles the batch at
                // its ack.
                push_rejected(&link, channel, batch, &done.rejected);
                Message::Ack(Ack {
                    channel,
                    batch,
                    request,
                    seq: done.seq,
                })
            }
            Err(e) => {
                let reason = e.to_string();
                // Encoded right here, while `reason` lives.
                let _ = link.push(
                    &link.post,
                    &Message::Nack(Nack {
                        channel,
                        batch,
                        request,
                        reason: &reason,
                    }),
                );
                return;
            }
        };
        // A failure here means the follower stopped reading; its link
        // is closed by the control bound, so nothing else to do.
        let _ = link.push(&link.post, &msg);
    })
}

/// Tells the follower which actions of `batch` the validator rejected.
fn push_rejected(
    link: &LinkState,
    channel: Channel,
    batch: u64,
    rejected: &[crate::validate::Rejection],
) {
    for r in rejected {
        // A failure means the follower stopped reading (see `ack_reply`).
        let _ = link.push(
            &link.post,
            &Message::Rejected(Rejected {
                channel,
                batch,
                index: r.index,
                reason: &r.reason,
            }),
        );
    }
}

fn join(link: &Arc<LinkState>, j: &Join<'_>, opts: &ServeOptions) -> Result<(), LinkError> {
    if link
        .chans
        .lock()
        .iter()
        .any(|c| c.feed.channel == j.channel)
    {
        return link.refuse_join(j.channel, JoinRefusal::Duplicate, None, "");
    }
    let req = JoinRequest {
        channel: j.channel,
        name: j.name.to_string(),
        schema: j.schema,
        describe: j.describe.to_string(),
        resume: j.resume,
        session: j.session,
        acked_batch: j.acked_batch,
        older: j.older.clone(),
    };
    if let Some(allowed) = &opts.stores {
        if !allowed.iter().any(|n| *n == req.name) {
            return finish_join(link, req, None, opts);
        }
    }
    match registry::get(&req.name) {
        Some(source) => finish_join(link, req, Some(source), opts),
        None => {
            // This process may not have created the store yet.
            let link = Arc::clone(link);
            let opts = opts.clone();
            tokio::spawn(async move {
                let source = registry::wait_for(&req.name, opts.join_wait).await;
                if let Err(e) = finish_join(&link, req, source, &opts) {
                    tracing::warn!(peer = %opts.peer, error = %e, "join failed");
                }
            });
            Ok(())
        }
    }
}

struct JoinRequest {
    channel: Channel,
    name: String,
    schema: crate::SchemaHash,
    describe: String,
    resume: Option<crate::protocol::Position>,
    session: u64,
    acked_batch: u64,
    older: Vec<crate::SchemaHash>,
}

/// How a joining follower's version of a store relates to this one's.
enum Versions {
    Same,
    /// A later version that reads this one: followed along (a rolling
    /// upgrade; its dispatches wait).
    FollowerNewer,
    /// An earlier version of this store: told to upgrade.
    FollowerOlder,
    /// Another schema altogether.
    Unrelated,
}

fn versions(source: &dyn Source, req: &JoinRequest) -> Versions {
    if source.schema() == req.schema {
        Versions::Same
    } else if req.older.contains(&source.schema()) {
        Versions::FollowerNewer
    } else if source.older_schemas().contains(&req.schema) {
        Versions::FollowerOlder
    } else {
        Versions::Unrelated
    }
}

fn finish_join(
    link: &Arc<LinkState>,
    req: JoinRequest,
    source: Option<Arc<dyn Source>>,
    opts: &ServeOptions,
) -> Result<(), LinkError> {
    let Some(source) = source else {
        tracing::warn!(peer = %opts.peer, store = %req.name, "a peer asked for a store this process does not have");
        return link.refuse_join(req.channel, JoinRefusal::UnknownStore, None, "");
    };
    let newer = match versions(source.as_ref(), &req) {
        Versions::Same => false,
        Versions::FollowerNewer => true,
        Versions::FollowerOlder => {
            tracing::warn!(peer = %opts.peer, store = %req.name, "a peer runs an earlier version of the store; refused until it is upgraded");
            return link.refuse_join(
                req.channel,
                JoinRefusal::Outdated,
                Some(source.schema()),
                "",
            );
        }
        Versions::Unrelated => {
            let ours = source.describe();
            source.report(crate::Error::SchemaMismatch(SchemaMismatch::new(
                source.name(),
                &opts.peer,
                (source.schema(), &ours),
                (req.schema, &req.describe),
            )));
            return link.refuse_join(
                req.channel,
                JoinRefusal::SchemaMismatch,
                Some(source.schema()),
                &ours,
            );
        }
    };
    let sent = req
        .resume
        .filter(|pos| source.can_resume(*pos))
        .map(|pos| pos.seq);
    source.attach(&link.wake);
    source.add_role(opts.role);
    source.event(crate::Event::PeerJoined {
        peer: opts.peer.clone(),
    });
    let applied = source.applied_after(req.session, req.acked_batch);
    // The rejections of the batches the join settles go first, like an
    // ack's.
    for (batch, done) in &applied {
        for r in &done.rejected {
            link.push(
                &link.pre,
                &Message::Rejected(Rejected {
                    channel: req.channel,
                    batch: *batch,
                    index: r.index,
                    reason: &r.reason,
                }),
            )?;
        }
    }
    link.push(
        &link.pre,
        &Message::Joined(Joined {
            channel: req.channel,
            epoch: source.epoch(),
            applied: applied.iter().map(|(b, d)| (*b, d.seq)).collect(),
            schema: source.schema(),
        }),
    )?;
    link.chans.lock().push(Chan {
        newer,
        session: req.session,
        source,
        feed: Feed {
            channel: req.channel,
            sent,
            since_snapshot: 0,
            since_digest: 0,
            lagged: None,
            held: None,
        },
    });
    link.wake.notify_one();
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    link: Arc<LinkState>,
    mut writer: FrameWriter<W>,
    heartbeat: Option<Duration>,
) {
    let codec = writer.codec();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if !super::wait_or_beat(&link.wake, heartbeat, &mut writer).await {
            return;
        }
        loop {
            buf.clear();
            buf.append(&mut link.pre.lock());
            let mut more = false;
            {
                let mut chans = link.chans.lock();
                for c in chans.iter_mut() {
                    match c.source.fill(&mut c.feed, &mut buf, &codec, FILL_BUDGET) {
                        Ok(m) => more |= m,
                        Err(e) => c.source.report(crate::Error::Frame(e)),
                    }
                    if let Some(behind) = c.feed.lagged.take() {
                        c.source.event(crate::Event::SlowConsumer {
                            peer: link.peer.clone(),
                            behind,
                        });
                    }
                }
            }
            buf.append(&mut link.post.lock());
            let closing = link.closing.load(std::sync::atomic::Ordering::SeqCst);
            if buf.is_empty() && !closing {
                break;
            }
            if writer.write_all(&buf).await.is_err() {
                // The reader side sees the same failure and ends the link.
                return;
            }
            if closing {
                let _ = writer.shutdown().await;
                return;
            }
            if buf.capacity() > 4 << 20 {
                buf = Vec::with_capacity(64 * 1024);
            }
            if !more {
                break;
            }
        }
    }
}
