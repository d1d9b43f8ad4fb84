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

/// Why a browser's dispatch was not committed: the validator's reason
/// (`code: "rejected"`), or any other message.
#[derive(Debug, Clone)]
enum Fail {
    Rejected(String),
    Other(String),
}

impl From<DispatchError> for Fail {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Rejected { reason } => Fail::Rejected(reason),
            e => Fail::Other(e.to_string()),
        }
    }
}

/// The fate of a browser's dispatches with consecutive ids from `first`:
/// one `dispatch` (`batch` false) or a `dispatches`.
struct Done {
    first: u64,
    results: Vec<Result<u64, Fail>>,
    batch: bool,
}

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
    // Dispatches in `commits`, against `max_inflight`.
    let mut in_flight = 0usize;
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
                let (first, actions, batch) = match serde_json::from_str::<ClientMsg>(&text) {
                    Ok(ClientMsg::Dispatch { id, action }) => (id, vec![action], false),
                    Ok(ClientMsg::Dispatches { first, actions }) => (first, actions, true),
                    other => {
                        let message = match other {
                            Err(e) => format!("malformed message: {e}"),
                            Ok(_) => "already logged in".to_owned(),
                        };
                        out.msg(&ServerMsg::Error { id: None, message: &message, code: None }).await?;
                        continue;
                    }
                };
                if admitted.read_only {
                    let results = vec![Err(Fail::Other("this login is read-only".into())); actions.len()];
                    reply(out, Done { first, results, batch }).await?;
                    continue;
                }
                // Only a follower has dispatches in flight (on a master each
                // commit completes here): past the limit, the rest of a
                // batch is refused.
                let room = if inline { usize::MAX } else { limits.max_inflight.saturating_sub(in_flight) };
                let parsed: Vec<Result<S::Action, Fail>> = actions
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| {
                        if i >= room {
                            return Err(Fail::Other(format!("more than {} dispatches in flight", limits.max_inflight)));
                        }
                        serde_json::from_value(a)
                            .map_err(|e| Fail::Other(format!("not an action of this store: {e}")))
                    })
                    .collect();
                if inline {
                    let results = commit_parsed(store, parsed, &who).await;
                    reply(out, Done { first, results, batch }).await?;
                } else {
                    in_flight += parsed.len();
                    let (store, who) = (store.clone(), who.clone());
                    commits.spawn(async move {
                        let results = commit_parsed(&store, parsed, &who).await;
                        Done { first, results, batch }
                    });
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
                    in_flight -= done.results.len();
                    reply(out, done).await?;
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

/// Commits the actions that parsed, together (one apply on a master: one
/// new version for the browsers, not one per action), and returns every
/// one's fate in order.
async fn commit_parsed<S: Reducer>(
    store: &Store<S>,
    parsed: Vec<Result<S::Action, Fail>>,
    who: &crate::Peer,
) -> Vec<Result<u64, Fail>> {
    let mut actions = Vec::with_capacity(parsed.len());
    let mut slots = Vec::with_capacity(parsed.len());
    for p in parsed {
        slots.push(match p {
            Ok(a) => {
                actions.push(a);
                Ok(())
            }
            Err(e) => Err(e),
        });
    }
    let mut committed = store.commit_all_from(&actions, who).await.into_iter();
    slots
        .into_iter()
        .map(|s| match s {
            Ok(()) => committed
                .next()
                .unwrap_or(Err(DispatchError::Closed))
                .map_err(Fail::from),
            Err(e) => Err(e),
        })
        .collect()
}

/// Answers dispatches: an `error` for each that failed, then an `ack`
/// (one dispatch) or one `acks` (a batch).
async fn reply(out: &mut Out, done: Done) -> Result<(), End> {
    for (i, r) in done.results.iter().enumerate() {
        let id = Some(done.first + i as u64);
        match r {
            Ok(_) => {}
            Err(Fail::Rejected(reason)) => {
                out.msg(&ServerMsg::Error {
                    id,
                    message: reason,
                    code: Some("rejected"),
                })
                .await?
            }
            Err(Fail::Other(message)) => {
                out.msg(&ServerMsg::Error {
                    id,
                    message,
                    code: None,
                })
                .await?
            }
        }
    }
    match (&done.results[..], done.batch) {
        ([Ok(seq)], false) => {
            out.msg(&ServerMsg::Ack {
                id: done.first,
                seq: *seq,
            })
            .await
        }
        (_, false) => Ok(()),
        (results, true) => {
            let seqs = results.iter().map(|r| r.as_ref().ok().copied()).collect();
            out.msg(&ServerMsg::Acks {
                first: done.first,
                seqs,
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
