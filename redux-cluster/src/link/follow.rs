//! The follower side of a link: joins every local store to the master,
//! sends their dispatches, and applies what comes back.
//!
//! One [`Upstream`] serves all stores of a process that follow the same
//! master; each store gets a channel. The upstream outlives any one
//! connection, so a reconnecting transport can run it again and the stores
//! resume from where they stand.

use super::{AbortOnDrop, Sink};
use crate::admission::client::{ClientLogin, ClientStep};
use crate::auth::Credentials;
use crate::connection::{FrameReader, FrameWriter, LinkError};
use crate::protocol::{Channel, Diverged, FrameCodec, Goodbye, Join, Message};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

struct Chan {
    channel: Channel,
    sink: Arc<dyn Sink>,
    join_sent: bool,
    joined: bool,
}

struct Inner {
    wake: Arc<Notify>,
    chans: Mutex<Vec<Chan>>,
    /// Control frames to send (diverged notices).
    control: Mutex<Vec<u8>>,
    /// Whether a store joined during the current connection.
    joined: std::sync::atomic::AtomicBool,
    /// Whether a connection is up (logged in, writer running).
    connected: std::sync::atomic::AtomicBool,
    /// Set by a clean close: the writer says goodbye and stops, and no
    /// reconnect follows.
    leaving: std::sync::atomic::AtomicBool,
    /// Told once the goodbye is written.
    said: Notify,
}

/// The follower end of a link, shared by all stores following one master.
#[derive(Clone)]
pub(crate) struct Upstream {
    inner: Arc<Inner>,
}

impl Upstream {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                wake: Arc::new(Notify::new()),
                chans: Mutex::new(Vec::new()),
                control: Mutex::new(Vec::new()),
                joined: std::sync::atomic::AtomicBool::new(false),
                connected: std::sync::atomic::AtomicBool::new(false),
                leaving: std::sync::atomic::AtomicBool::new(false),
                said: Notify::new(),
            }),
        }
    }

    /// What a store's dispatch wakes.
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.wake)
    }

    /// Adds a store; it joins as soon as a connection is up.
    pub fn register(&self, sink: Arc<dyn Sink>) {
        let mut chans = self.inner.chans.lock();
        let channel = chans.len() as Channel + 1;
        chans.push(Chan {
            channel,
            sink,
            join_sent: false,
            joined: false,
        });
        drop(chans);
        self.inner.wake.notify_one();
    }

    /// Runs one connection until it ends. Afterwards every store has been
    /// told the link is down (`will_retry` says whether another run follows).
    pub async fn run<R, W>(
        &self,
        reader: R,
        writer: W,
        codec: FrameCodec,
        creds: Option<&Credentials>,
        heartbeat: Option<std::time::Duration>,
        will_retry: bool,
    ) -> Result<(), LinkError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        self.inner.joined.store(false, Ordering::SeqCst);
        let res = self
            .run_inner(reader, writer, codec, creds, heartbeat)
            .await;
        // A refused login will be refused again: that ends the link for
        // good, with the reason.
        let fatal = match &res {
            Err(LinkError::AuthRefused(e)) => Some((**e).clone()),
            Err(LinkError::ServerNotAuthentic) => Some(crate::JoinError::ServerNotAuthentic),
            _ => None,
        };
        for c in self.inner.chans.lock().iter_mut() {
            c.join_sent = false;
            c.joined = false;
            match &fatal {
                Some(why) => c.sink.on_fatal(why),
                None => c.sink.on_down(will_retry),
            }
            if let Err(LinkError::Unavailable(detail)) = &res {
                c.sink.on_unavailable(detail);
            }
        }
        res
    }

    /// Ends every store's link for good, with `why`.
    pub fn fail_all(&self, why: &crate::JoinError) {
        for c in self.inner.chans.lock().iter() {
            c.sink.on_fatal(why);
        }
    }

    /// A connection attempt failed (nothing listens, a refused port, a
    /// lost link): the cause, for `ready()` to report if it gives up.
    pub fn retrying(&self, cause: &str) {
        for c in self.inner.chans.lock().iter() {
            c.sink.on_retry(cause);
        }
    }

    /// Whether a clean close asked this link to end (no reconnect then).
    pub fn leaving(&self) -> bool {
        self.inner.leaving.load(Ordering::SeqCst)
    }

    /// Whether a store joined during the last connection.
    pub fn joined_any(&self) -> bool {
        self.inner.joined.load(Ordering::SeqCst)
    }

    async fn run_inner<R, W>(
        &self,
        reader: R,
        writer: W,
        codec: FrameCodec,
        creds: Option<&Credentials>,
        heartbeat: Option<std::time::Duration>,
    ) -> Result<(), LinkError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut reader = FrameReader::new(reader, codec);
        let mut writer = FrameWriter::new(writer, codec);
        login(&mut reader, &mut writer, creds).await?;
        let writer = AbortOnDrop(tokio::spawn(write_loop(
            Arc::clone(&self.inner),
            writer,
            heartbeat,
        )));
        self.inner.connected.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let res = self.read_loop(&mut reader, heartbeat).await;
        self.inner.connected.store(false, Ordering::SeqCst);
        // The channels' join flags are reset next, for the next connection;
        // this connection's writer must be gone by then, or it could mark a
        // join as sent (on the dead socket) that the next writer then never
        // sends, and the store would wait for ever.
        writer.stop().await;
        res
    }

    fn sink(&self, channel: Channel) -> Option<Arc<dyn Sink>> {
        self.inner
            .chans
            .lock()
            .iter()
            .find(|c| c.channel == channel)
            .map(|c| Arc::clone(&c.sink))
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        reader: &mut FrameReader<R>,
        heartbeat: Option<std::time::Duration>,
    ) -> Result<(), LinkError> {
        let codec = FrameCodec::default();
        while let Some(msg) = super::next_within(reader, heartbeat).await? {
            let channel = match &msg {
                Message::Joined(m) => m.channel,
                Message::JoinRefused(m) => m.channel,
                Message::Snapshot(m) => m.channel,
                Message::Actions(m) => m.channel,
                Message::Ack(m) => m.channel,
                Message::Nack(m) => m.channel,
                Message::Rejected(m) => m.channel,
                Message::Digest(m) => m.channel,
                Message::Heartbeat(_) => continue,
                Message::Goodbye(g) => return Err(LinkError::Refused(g.reason.to_string())),
                other => {
                    return Err(LinkError::Protocol(format!(
                        "unexpected message from the master: {}",
                        other.kind()
                    )))
                }
            };
            let Some(sink) = self.sink(channel) else {
                return Err(LinkError::Protocol(format!(
                    "message on unknown channel {channel}"
                )));
            };
            let res = match msg {
                Message::Joined(m) => {
                    // First settle what the master applied while the link
                    // was down and mark the rest for sending again; only
                    // then may the writer take dispatches. The other way
                    // round, a new batch could overtake the re-sent ones,
                    // and the master (which takes a session's batches in
                    // order) would drop those as already applied.
                    sink.on_joined(m.epoch, &m.applied, m.schema);
                    if let Some(c) = self
                        .inner
                        .chans
                        .lock()
                        .iter_mut()
                        .find(|c| c.channel == channel)
                    {
                        c.joined = true;
                    }
                    self.inner.joined.store(true, Ordering::SeqCst);
                    // Dispatches queued before the join can go now.
                    self.inner.wake.notify_one();
                    Ok(())
                }
                Message::JoinRefused(m) => {
                    sink.on_refused(&m);
                    Ok(())
                }
                Message::Snapshot(m) => sink.on_snapshot(m.epoch, m.seq, m.state),
                Message::Digest(m) => sink.on_digest(m.seq, &m.digest),
                Message::Actions(m) => sink.on_actions(m.first_seq, m.count, m.packed),
                Message::Ack(m) => {
                    sink.on_ack(m.batch, m.request, m.seq);
                    Ok(())
                }
                Message::Nack(m) => {
                    sink.on_nack(m.batch, m.request, m.reason);
                    Ok(())
                }
                Message::Rejected(m) => {
                    sink.on_rejected(m.batch, m.index, m.reason);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = res {
                // Ask for a snapshot to repair; keep the link.
                let seq = sink.position().map_or(0, |p| p.seq);
                sink.report(crate::Error::Sync(e));
                let mut control = self.inner.control.lock();
                codec.encode(&Message::Diverged(Diverged { channel, seq }), &mut control)?;
                drop(control);
                self.inner.wake.notify_one();
            }
        }
        Err(LinkError::Closed)
    }
}

/// The link-level handshake: hello, then the challenge-response when the
/// server asks for a login. The decisions are [`ClientLogin`]'s; PBKDF2
/// runs on a blocking thread, not on the runtime's.
async fn login<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    creds: Option<&Credentials>,
) -> Result<(), LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut login = ClientLogin::new(creds);
    writer.send(&login.hello()).await?;
    loop {
        match login.on_message(reader.next().await?)? {
            ClientStep::Admitted => return Ok(()),
            ClientStep::Prove(challenge) => {
                // `Prove` comes only with credentials.
                let Some(creds) = creds.cloned() else {
                    return Err(LinkError::Protocol(
                        "a challenge without credentials".into(),
                    ));
                };
                let nonce = *login.nonce();
                let (proof, expected) =
                    tokio::task::spawn_blocking(move || creds.prove(&nonce, &challenge))
                        .await
                        .map_err(|e| LinkError::Protocol(format!("the login's proof failed: {e}")))?
                        .map_err(|e| LinkError::Protocol(e.to_string()))?;
                writer.send(&Message::Proof(proof)).await?;
                login.proved(expected);
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    inner: Arc<Inner>,
    mut writer: FrameWriter<W>,
    heartbeat: Option<std::time::Duration>,
) {
    let codec = writer.codec();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if !super::wait_or_beat(&inner.wake, heartbeat, &mut writer).await {
            return;
        }
        if inner.leaving.load(Ordering::SeqCst) {
            // A clean close: say so, then end the stream (TLS close_notify,
            // QUIC finish, FIN), so the master reports a clean departure.
            let bye = Message::Goodbye(Goodbye { reason: "closed" });
            if writer.send(&bye).await.is_ok() {
                let _ = writer.shutdown().await;
            }
            inner.said.notify_one();
            return;
        }
        buf.clear();
        buf.append(&mut inner.control.lock());
        {
            let mut chans = inner.chans.lock();
            for c in chans.iter_mut() {
                if !c.join_sent {
                    let describe = c.sink.describe();
                    let (session, acked_batch) = c.sink.session();
                    let join = Message::Join(Join {
                        session,
                        acked_batch,
                        channel: c.channel,
                        store: c.sink.id(),
                        schema: c.sink.schema(),
                        name: c.sink.name(),
                        describe: &describe,
                        resume: c.sink.position(),
                        older: c.sink.older_schemas(),
                    });
                    if let Err(e) = codec.encode(&join, &mut buf) {
                        c.sink.report(crate::Error::Frame(e));
                    }
                    c.join_sent = true;
                } else if c.joined {
                    c.sink.take_dispatches(c.channel, &mut buf, &codec);
                }
            }
        }
        if buf.is_empty() {
            continue;
        }
        if writer.write_all(&buf).await.is_err() {
            return;
        }
        if buf.capacity() > 4 << 20 {
            buf = Vec::with_capacity(64 * 1024);
        }
    }
}

/// How long a clean close waits for the goodbye to be written.
const FAREWELL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl crate::core::Farewell for Upstream {
    fn say(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let said = self.inner.said.notified();
            self.inner.leaving.store(true, Ordering::SeqCst);
            if !self.inner.connected.load(Ordering::SeqCst) {
                return;
            }
            self.inner.wake.notify_one();
            let _ = tokio::time::timeout(FAREWELL_WAIT, said).await;
        })
    }
}
