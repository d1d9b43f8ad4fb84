//! One browser: login, resume, the stream of snapshots and patches, and
//! its dispatches.

use super::patch::{CatchUp, History};
use super::server::{Peer, Ws};
use super::wire::{self, ClientMsg, ServerMsg};
use crate::admission::server::{self, Admission, Reason, Step};
pub(crate) use crate::admission::Access;
use crate::error::DispatchError;
use crate::reducer::Reducer;
use crate::store::Store;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The state as the watcher publishes it.
pub(crate) struct Feed {
    pub history: Arc<Mutex<History>>,
    pub rx: watch::Receiver<(u64, u64)>,
}

/// Per-browser limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_inflight: usize,
    pub heartbeat: Duration,
    pub write_timeout: Duration,
    /// The WebSocket limits once logged in (before, they are small).
    pub admitted: WebSocketConfig,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("closed")]
    Closed,
    #[error("{0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("refused: {0}")]
    Refused(String),
    #[error("sent nothing for {0:?}")]
    Silent(Duration),
    #[error("did not read for {0:?}")]
    Stalled(Duration),
    #[error("the server stopped")]
    Stopped,
}

/// The writing half, with a bound on how long one write may take, so a
/// browser that stops reading is dropped rather than held forever.
struct Out {
    sink: SplitSink<Ws, Message>,
    timeout: Duration,
}

impl Out {
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        match tokio::time::timeout(self.timeout, self.sink.send(msg)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(End::Stalled(self.timeout)),
        }
    }

    async fn text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), End> {
        self.send(Message::Text(text.into())).await
    }

    async fn msg(&mut self, msg: &ServerMsg<'_>) -> Result<(), End> {
        self.text(msg.to_text()).await
    }

    /// Sends `refuse` and ends the session with it.
    async fn refuse<T>(&mut self, reason: &str, message: &str) -> Result<T, End> {
        let _ = self.msg(&ServerMsg::Refuse { reason, message }).await;
        let _ = tokio::time::timeout(self.timeout, self.sink.close()).await;
        Err(End::Refused(message.to_owned()))
    }
}

/// Who logged in, and where the browser said it stands.
struct Admitted {
    read_only: bool,
    /// The login the browser proved, if the server asked for one.
    login: Option<String>,
    resume: Option<(u64, u64)>,
    /// The welcome to send, once the connection has its full limits.
    welcome: String,
}

/// Serves one browser until it leaves.
pub(crate) async fn run<S: Reducer>(
    ws: Ws,
    peer: Peer,
    store: Store<S>,
    access: Arc<Access>,
    feed: Feed,
    limits: Limits,
    handshake_timeout: Option<Duration>,
) {
    let (sink, mut stream) = ws.split();
    let mut out = Out {
        sink,
        timeout: limits.write_timeout,
    };
    let admitted = {
        let login = login(&mut stream, &mut out, &peer, &access, &feed, &store);
        match handshake_timeout {
            Some(limit) => tokio::time::timeout(limit, login)
                .await
                .unwrap_or(Err(End::Silent(limit))),
            None => login.await,
        }
    };
    let result = match admitted {
        Ok(a) => match with_limits(stream, out.sink, limits.admitted).await {
            Ok((sink, mut stream)) => {
                let mut out = Out {
                    sink,
                    timeout: limits.write_timeout,
                };
                match out.text(a.welcome.clone()).await {
                    Ok(()) => {
                        let who = peer.who.clone().with_login(a.login.clone());
                        serve(&mut stream, &mut out, &store, feed, limits, a, who).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) | Err(End::Closed) => tracing::debug!(peer = %peer.name, "browser left"),
        Err(e) => tracing::info!(peer = %peer.name, reason = %e, "browser dropped"),
    }
}

/// The same connection under `config`'s limits. Only between a browser's
/// last handshake message and the welcome: the browser sends nothing in
/// between, so tungstenite holds no unread bytes that could be lost.
async fn with_limits(
    stream: SplitStream<Ws>,
    sink: SplitSink<Ws, Message>,
    config: WebSocketConfig,
) -> Result<(SplitSink<Ws, Message>, SplitStream<Ws>), End> {
    // Both halves come from one split, so they always reunite.
    let io = stream.reunite(sink).map_err(|_| End::Closed)?.into_inner();
    Ok(Ws::from_raw_socket(io, Role::Server, Some(config))
        .await
        .split())
}

/// Tells a browser over the connection limit that the server is full.
pub(crate) async fn full(ws: Ws, limits: Limits, max_clients: usize) {
    let (sink, mut stream) = ws.split();
    let mut out = Out {
        sink,
        timeout: limits.write_timeout,
    };
    let message = format!("the server is full ({max_clients} browsers); try again later");
    let _: Result<(), End> = out.refuse("unavailable", &message).await;
    // Wait for the browser's close (the caller bounds how long), so the
    // socket is not gone before it has read why.
    while let Some(Ok(m)) = stream.next().await {
        if m.is_close() {
            break;
        }
    }
}

/// The next text frame; pings and pongs are skipped.
async fn next_text(stream: &mut SplitStream<Ws>) -> Result<Option<Utf8Bytes>, End> {
    loop {
        match stream.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(End::Closed),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(t))) => return Ok(Some(t)),
            Some(Ok(Message::Binary(_))) => return Ok(None),
            Some(Ok(_)) => {}
        }
    }
}

/// The login exchange (SCRAM-SHA-256 in JSON; see [`crate::auth`]); the
/// decisions are [`Admission`]'s.
async fn login<S: Reducer>(
    stream: &mut SplitStream<Ws>,
    out: &mut Out,
    peer: &Peer,
    access: &Access,
    feed: &Feed,
    store: &Store<S>,
) -> Result<Admitted, End> {
    let mut admission = Admission::new(Some(access), peer.key);
    let (mut step, resume) = match read(stream, out).await? {
        ClientMsg::Hello {
            login,
            nonce,
            resume,
        } => {
            let hello = server::Hello {
                protocol: None,
                login: login.as_deref(),
                nonce: nonce.as_deref().and_then(wire::unhex::<32>),
            };
            (
                admission.hello(hello, Instant::now()),
                resume.and_then(|r| r.position()),
            )
        }
        other => (admission.unexpected(other.kind()), None),
    };
    loop {
        match step {
            Step::Challenge(c) => {
                out.msg(&ServerMsg::Challenge {
                    salt: wire::hex(&c.salt),
                    iterations: c.iterations,
                    nonce: wire::hex(&c.nonce),
                })
                .await?;
                step = match read(stream, out).await? {
                    ClientMsg::Proof { proof } => {
                        admission.proof(wire::unhex::<32>(&proof).as_ref(), Instant::now())
                    }
                    other => admission.unexpected(other.kind()),
                };
            }
            Step::Welcome(w) => {
                let epoch = feed.history.lock().position().0.to_string();
                let welcome = ServerMsg::Welcome {
                    login: w.login.as_deref(),
                    read_only: w.read_only,
                    signature: w.signature.map(|s| wire::hex(&s)),
                    epoch,
                };
                let login = w.signature.and(w.login.clone());
                return Ok(Admitted {
                    read_only: w.read_only,
                    login,
                    resume,
                    welcome: welcome.to_text(),
                });
            }
            Step::Refuse(r) => {
                if let Some(failed) = &r.failed {
                    tracing::warn!(peer = %peer.name, login = %failed.login, "failed login from a browser");
                    for ev in failed.events(&peer.name) {
                        store.shared.event(ev);
                    }
                }
                let reason = match r.reason {
                    Reason::Banned => "banned",
                    Reason::BadCredentials => "bad_credentials",
                    Reason::LoginRequired => "login_required",
                    Reason::Version | Reason::Protocol => "protocol",
                };
                return out.refuse(reason, &r.detail).await;
            }
        }
    }
}

/// Reads one handshake message; anything that is not one is refused.
async fn read(stream: &mut SplitStream<Ws>, out: &mut Out) -> Result<ClientMsg, End> {
    let Some(text) = next_text(stream).await? else {
        return out
            .refuse("protocol", "the handshake is JSON in text frames")
            .await;
    };
    match serde_json::from_str::<ClientMsg>(&text) {
        Ok(m) => Ok(m),
        Err(e) => {
            out.refuse("protocol", &format!("malformed message: {e}"))
                .await
        }
    }
}

/// A dispatch's fate: its id and its commit seq, or why not.
type Done = (u64, Result<u64, DispatchError>);

/// After the login: streams the state and takes dispatches.
async fn serve<S: Reducer>(
    stream: &mut SplitStream<Ws>,
    out: &mut Out,
    store: &Store<S>,
    mut feed: Feed,
    limits: Limits,
    admitted: Admitted,
    who: crate::Peer,
) -> Result<(), End> {
    let mut at = admitted.resume;
    feed.rx.borrow_and_update();
    catch_up(&feed, &mut at, out).await?;
    let mut commits: JoinSet<Done> = JoinSet::new();
    // On a master a commit completes at once; on a follower it waits for
    // the master, so it runs beside the loop.
    let inline = store.shared.follower.is_none();
    let mut ping = tokio::time::interval(limits.heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            msg = stream.next() => {
                heard = Instant::now();
                let text = match msg {
                    None | Some(Ok(Message::Close(_))) => return Err(End::Closed),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        let message = "binary frames are not part of this protocol; send JSON text";
                        out.msg(&ServerMsg::Error { id: None, message, code: None }).await?;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                let reply = match serde_json::from_str::<ClientMsg>(&text) {
                    Err(e) => Some((None, format!("malformed message: {e}"))),
                    Ok(ClientMsg::Dispatch { id, action }) => {
                        if admitted.read_only {
                            Some((Some(id), "this login is read-only".to_owned()))
                        } else if commits.len() >= limits.max_inflight {
                            Some((Some(id), format!("more than {} dispatches in flight", limits.max_inflight)))
                        } else {
                            match serde_json::from_value::<S::Action>(action) {
                                Err(e) => Some((Some(id), format!("not an action of this store: {e}"))),
                                Ok(action) if inline => {
                                    let done = store.commit_from(action, &who).await;
                                    ack(out, (id, done)).await?;
                                    None
                                }
                                Ok(action) => {
                                    let (store, who) = (store.clone(), who.clone());
                                    commits.spawn(async move { (id, store.commit_from(action, &who).await) });
                                    None
                                }
                            }
                        }
                    }
                    Ok(_) => Some((None, "already logged in".to_owned())),
                };
                if let Some((id, message)) = reply {
                    out.msg(&ServerMsg::Error { id, message: &message, code: None }).await?;
                }
            }
            changed = feed.rx.changed() => {
                if changed.is_err() {
                    return Err(End::Stopped);
                }
                feed.rx.borrow_and_update();
                catch_up(&feed, &mut at, out).await?;
            }
            Some(done) = commits.join_next(), if !commits.is_empty() => {
                if let Ok(done) = done {
                    ack(out, done).await?;
                }
            }
            _ = ping.tick() => {
                let silent = limits.heartbeat * 3;
                if heard.elapsed() > silent {
                    return Err(End::Silent(silent));
                }
                out.send(Message::Ping(Default::default())).await?;
            }
        }
    }
}

async fn ack(out: &mut Out, (id, done): Done) -> Result<(), End> {
    match done {
        Ok(seq) => out.msg(&ServerMsg::Ack { id, seq }).await,
        Err(DispatchError::Rejected { reason }) => {
            out.msg(&ServerMsg::Error {
                id: Some(id),
                message: &reason,
                code: Some("rejected"),
            })
            .await
        }
        Err(e) => {
            let message = e.to_string();
            out.msg(&ServerMsg::Error {
                id: Some(id),
                message: &message,
                code: None,
            })
            .await
        }
    }
}

/// Sends what the browser at `at` lacks, and moves `at`.
async fn catch_up(feed: &Feed, at: &mut Option<(u64, u64)>, out: &mut Out) -> Result<(), End> {
    let next = feed.history.lock().catch_up(*at);
    if let CatchUp::Frame { text, epoch, seq } = next {
        out.text(text).await?;
        *at = Some((epoch, seq));
    }
    Ok(())
}
