//! A hub's tasks: connect to NATS, make sure the stream and snapshot bucket
//! exist and hold this schema, start from the newest snapshot, then apply
//! the log in order while a publisher sends this hub's dispatches to it and
//! snapshots are saved and the log trimmed behind them.

use super::apply::Settled;
use super::wire::{self, Names, Snapshot};
use super::{Hub, HubConfig};
use crate::core::{LinkStatus, Shared};
use crate::error::{DispatchError, JoinError};
use crate::reducer::Reducer;
use async_nats::jetstream::{self, consumer, object_store, stream, Context};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How long one JetStream request may take before it is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish waits for the stream's ack before it is sent again
/// (same message id): a publish lost with a node that died is retried soon.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// A consumer that delivers nothing this long while the log has more is
/// replaced.
const STALL: Duration = Duration::from_secs(2);
/// Attempts, and the time each may take, to create the log's consumer.
const CONSUMER_TRIES: u32 = 10;
const CONSUMER_TRY: Duration = Duration::from_secs(1);
/// Backoff between retries.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// A failure of one step, and whether trying again can help.
enum Failure {
    Retry(String),
    Final(Box<JoinError>),
}

/// Says which step failed.
trait Step<T> {
    fn step(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure::Retry(format!("{what}: {e}")))
    }
}

/// Runs the hub of `shared` until the store shuts down (its owned task is
/// aborted) or the stream turns out to hold another schema.
pub(crate) async fn run<S: Reducer>(shared: Arc<Shared<S>>, hub: Arc<Hub>, cfg: HubConfig) {
    let names = Names::of(S::NAME);
    let weak = Arc::downgrade(&shared);
    drop(shared);
    let servers = match servers(&cfg) {
        Ok(s) => s,
        Err(why) => return refused(&weak, JoinError::Misconfigured(why)),
    };
    let mut delay = FIRST_RETRY;
    let client = loop {
        match connect::<S>(&servers, &cfg, &weak).await {
            Ok(c) => break c,
            Err(Failure::Final(why)) => return refused(&weak, *why),
            Err(Failure::Retry(e)) => {
                if !retrying(&weak, &format!("NATS: {e}")) {
                    return;
                }
                backoff(&mut delay).await;
            }
        }
    };
    let max_payload = client.server_info().max_payload;
    let max_message = cfg
        .max_message
        .min(max_payload.saturating_sub(1024).max(1024));
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .ack_timeout(ACK_TIMEOUT)
        .build(client);
    let mut publisher: Option<tokio::task::JoinHandle<()>> = None;
    // The log position this hub's state stands at, once it has one: a
    // restarted `follow` goes on from there instead of from a snapshot.
    let mut reached: Option<u64> = None;
    let mut delay = FIRST_RETRY;
    loop {
        let at = Hold {
            publisher: &mut publisher,
            reached: &mut reached,
        };
        match follow::<S>(&js, &names, &cfg, &weak, &hub, max_message, at).await {
            Ok(()) => return,
            Err(Failure::Final(why)) => {
                if let Some(p) = publisher {
                    p.abort();
                }
                return refused(&weak, *why);
            }
            Err(Failure::Retry(e)) => {
                if !retrying(&weak, &format!("NATS: {e}")) {
                    return;
                }
                backoff(&mut delay).await;
            }
        }
    }
}

/// Stops the hub for good: `ready()` returns `why`, and the error hook
/// hears it.
fn refused<S: Reducer>(weak: &Weak<Shared<S>>, why: JoinError) {
    if let Some(shared) = weak.upgrade() {
        if let Some(f) = &shared.follower {
            f.status.send_replace(LinkStatus::Refused(why.clone()));
        }
        shared.report(crate::Error::Hub(why.to_string()));
    }
}

/// The configured server addresses; an address that does not parse will
/// never work.
fn servers(cfg: &HubConfig) -> Result<Vec<async_nats::ServerAddr>, String> {
    if cfg.servers.is_empty() {
        return Err("no NATS server given".into());
    }
    cfg.servers
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e| format!("NATS server address `{s}`: {e}"))
        })
        .collect()
}

async fn backoff(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(MAX_RETRY);
}

/// Records a failure; false once the store is gone.
fn retrying<S: Reducer>(weak: &Weak<Shared<S>>, cause: &str) -> bool {
    let Some(shared) = weak.upgrade() else {
        return false;
    };
    tracing::info!(store = S::NAME, cause, "hub: retrying");
    if let Some(f) = &shared.follower {
        *f.last_failure.lock() = Some(cause.to_string());
    }
    shared.event(crate::Event::Reconnecting {
        cause: cause.to_string(),
    });
    true
}

/// Connects to any of `servers`. A refused login or certificate is final;
/// anything else is worth another try.
async fn connect<S: Reducer>(
    servers: &[async_nats::ServerAddr],
    cfg: &HubConfig,
    weak: &Weak<Shared<S>>,
) -> Result<async_nats::Client, Failure> {
    use async_nats::ConnectErrorKind as Kind;
    let events = weak.clone();
    let mut options = async_nats::ConnectOptions::new();
    match &cfg.auth {
        Some(super::Auth::Login { user, password }) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        Some(super::Auth::Token(t)) => options = options.token(t.clone()),
        None => {}
    }
    if let Some(ca) = &cfg.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    options
        .name(format!("redux-cluster hub {}", S::NAME))
        .connection_timeout(REQUEST_TIMEOUT)
        .max_reconnects(None)
        .event_callback(move |ev| {
            let events = events.clone();
            async move {
                if let async_nats::Event::Disconnected = ev {
                    retrying(&events, "NATS: disconnected; reconnecting");
                }
            }
        })
        .connect(servers.to_vec())
        .await
        .map_err(|e| match e.kind() {
            Kind::AuthorizationViolation | Kind::Authentication if cfg.auth.is_none() => {
                Failure::Final(Box::new(JoinError::LoginRequired))
            }
            Kind::AuthorizationViolation | Kind::Authentication => {
                Failure::Final(Box::new(JoinError::WrongCredentials))
            }
            Kind::Tls => Failure::Final(Box::new(JoinError::CertificateRejected(format!(
                "NATS: {e}"
            )))),
            _ if certificate_refused(&e) => Failure::Final(Box::new(
                JoinError::CertificateRejected(format!("NATS: {e}")),
            )),
            _ => Failure::Retry(e.to_string()),
        })
}

/// Whether a connection failed because the server's certificate was
/// refused (async-nats reports it as an I/O error that wraps rustls's):
/// retrying cannot help.
fn certificate_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let tls = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<async_nats::rustls::Error>())
            .or_else(|| c.downcast_ref::<async_nats::rustls::Error>());
        if matches!(tls, Some(async_nats::rustls::Error::InvalidCertificate(_))) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// What outlives one `follow`: the publisher task and the position reached.
struct Hold<'a> {
    publisher: &'a mut Option<tokio::task::JoinHandle<()>>,
    reached: &'a mut Option<u64>,
}

/// Sets the hub up and applies the log until something fails.
async fn follow<S: Reducer>(
    js: &Context,
    names: &Names,
    cfg: &HubConfig,
    weak: &Weak<Shared<S>>,
    hub: &Arc<Hub>,
    max_message: usize,
    hold: Hold<'_>,
) -> Result<(), Failure> {
    let Hold { publisher, reached } = hold;
    let stream = open_stream::<S>(js, names, cfg).await?;
    let bucket = open_bucket(js, names, cfg).await?;
    let created = stream.cached_info().created.unix_timestamp_nanos();
    let epoch = wire::epoch_of(&names.stream, created);
    let target = stream.cached_info().state.last_sequence;
    let Some(shared) = weak.upgrade() else {
        return Ok(());
    };
    // Where this process stands: a hub that was following already goes on
    // from its position (its state is the log up to there).
    let mut position = match *reached {
        Some(p) if shared.core.read().epoch == epoch => p,
        _ => bounded(start_position(&shared, &bucket, epoch, None)).await?,
    };
    *reached = Some(position);
    if publisher.is_none() {
        let task = tokio::spawn(publish::<S>(
            weak.clone(),
            Arc::clone(hub),
            js.clone(),
            names.subject.clone(),
            max_message,
        ));
        shared.own_task(task.abort_handle());
        *publisher = Some(task);
    }
    let mut snapshots = Snapshots {
        bucket,
        stream: stream.clone(),
        every: cfg.snapshot_every,
        keep: cfg.keep_snapshots,
        busy: Arc::new(AtomicBool::new(false)),
        last: shared.seq.load(Ordering::SeqCst),
        due: false,
    };
    drop(shared);
    let mut messages = consume(&stream, position).await?;
    if position >= target {
        joined(weak);
    }
    loop {
        let next = match tokio::time::timeout(STALL, messages.next()).await {
            Ok(next) => next,
            Err(_) => {
                // Quiet for a while. If the log holds more than this hub
                // applied, its consumer is stuck (its server died, or the
                // connection moved): make a new one from the position.
                let info = stream.get_info().await.step("reading the log's state")?;
                if info.state.last_sequence > position {
                    tracing::info!(
                        store = S::NAME,
                        position,
                        "hub: consumer stalled; recreating"
                    );
                    messages = consume(&stream, position).await?;
                }
                continue;
            }
        };
        let Some(next) = next else {
            return Err(Failure::Retry("the log's consumer ended".into()));
        };
        let msg = next.step("reading the log")?;
        let at = msg.info().step("a log message")?.stream_sequence;
        if at <= position {
            continue;
        }
        let Some(shared) = weak.upgrade() else {
            return Ok(());
        };
        if at > position + 1 {
            // The log was trimmed past this hub (it was paused, or slow):
            // start over from a snapshot that covers the gap.
            let now = bounded(start_position(
                &shared,
                &snapshots.bucket,
                epoch,
                Some((position, at)),
            ))
            .await?;
            if now + 1 < at {
                return Err(Failure::Retry(format!(
                    "the log starts at {at} and the newest snapshot is at {now}"
                )));
            }
            position = now;
            *reached = Some(position);
            settle_skipped(&shared, hub);
            snapshots.last = shared.seq.load(Ordering::SeqCst);
            messages = consume(&stream, position).await?;
            continue;
        }
        match wire::entries(&msg.payload, &S::SCHEMA) {
            Ok(entries) => {
                let settled = shared.apply_entries(&entries);
                answer(&shared, hub, settled);
            }
            Err(e) => {
                // Every hub skips the same message, so they stay equal.
                shared.report(crate::Error::Hub(format!("log message {at} skipped: {e}")));
            }
        }
        position = at;
        *reached = Some(position);
        if position >= target {
            joined(weak);
        }
        snapshots.maybe_save(&shared, position);
    }
}

/// Marks the hub caught up (once): `ready()` returns.
fn joined<S: Reducer>(weak: &Weak<Shared<S>>) {
    let Some(shared) = weak.upgrade() else {
        return;
    };
    let Some(f) = &shared.follower else {
        return;
    };
    if !matches!(*f.status.borrow(), LinkStatus::Joined) {
        f.joined_once.store(true, Ordering::SeqCst);
        shared.connected.store(true, Ordering::SeqCst);
        f.status.send_replace(LinkStatus::Joined);
    }
}

/// Creates the stream or opens it, refusing one of another schema.
async fn open_stream<S: Reducer>(
    js: &Context,
    names: &Names,
    cfg: &HubConfig,
) -> Result<stream::Stream, Failure> {
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: names.stream.clone(),
            subjects: vec![names.subject.clone()],
            description: Some(wire::describe(S::NAME, &S::SCHEMA)),
            storage: stream::StorageType::File,
            num_replicas: cfg.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .step("opening the log")?;
    let info = stream.info().await.step("reading the log's description")?;
    let theirs = info.config.description.as_deref().and_then(wire::schema_in);
    match theirs {
        Some(theirs) if theirs == S::SCHEMA => Ok(stream),
        theirs => Err(Failure::Final(Box::new(JoinError::SchemaMismatch(
            crate::error::SchemaMismatch::new(
                S::NAME,
                &format!("the NATS stream {}", names.stream),
                (S::SCHEMA, &crate::reducer::describe_store::<S>()),
                (theirs.unwrap_or(crate::SchemaHash([0; 32])), ""),
            ),
        )))),
    }
}

async fn open_bucket(
    js: &Context,
    names: &Names,
    cfg: &HubConfig,
) -> Result<object_store::ObjectStore, Failure> {
    if let Ok(b) = js.get_object_store(&names.bucket).await {
        return Ok(b);
    }
    js.create_object_store(object_store::Config {
        bucket: names.bucket.clone(),
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        ..Default::default()
    })
    .await
    .step("creating the snapshot bucket")
}

/// Where to follow the log from: the newest snapshot's position (the
/// snapshot is installed), else an empty log's. `behind` is (the position
/// reached, the first message the log still has) for a hub that fell
/// behind a trimmed log: only a snapshot that covers the gap will do.
async fn start_position<S: Reducer>(
    shared: &Arc<Shared<S>>,
    bucket: &object_store::ObjectStore,
    epoch: u64,
    behind: Option<(u64, u64)>,
) -> Result<u64, Failure> {
    let need = behind.map_or(0, |(_, first)| first - 1);
    let mut newest: Vec<u64> = Vec::new();
    let mut list = bucket.list().await.step("listing snapshots")?;
    while let Some(info) = list.next().await {
        let info = info.step("listing snapshots")?;
        if !info.deleted {
            if let Some(p) = Snapshot::position_in(&info.name) {
                newest.push(p);
            }
        }
    }
    newest.sort_unstable();
    // A snapshot may be deleted (trimmed) between the listing and the read:
    // try the next older one.
    for &p in newest.iter().rev() {
        let mut object = match bucket.get(Snapshot::name(p)).await {
            Ok(o) => o,
            Err(_) => continue,
        };
        let mut bytes = Vec::new();
        if object.read_to_end(&mut bytes).await.is_err() {
            continue;
        }
        let snap = match Snapshot::decode(&bytes) {
            Ok(s) => s,
            Err(e) => {
                // A damaged snapshot: an older one may do.
                shared.report(crate::Error::Hub(format!(
                    "snapshot at {p} cannot be read: {e}"
                )));
                continue;
            }
        };
        if snap.epoch != epoch {
            // Left by an earlier stream of the same name.
            continue;
        }
        let position = snap.position;
        if position < need {
            break;
        }
        let installed = shared.install_snapshot(snap, || {
            if let Some((from, _)) = behind {
                // Before the install wakes anyone who waits on the state.
                shared.event(crate::Event::HubFellBehind { from, to: position });
            }
        });
        match installed {
            Ok(()) => return Ok(position),
            Err(e) => shared.report(crate::Error::Hub(format!("snapshot at {p}: {e}"))),
        }
    }
    if behind.is_none() {
        shared.install_empty(epoch);
    }
    Ok(0)
}

/// How long finding and loading a snapshot may take in all (a listing or
/// a read can wait on a server that just died).
const SNAPSHOT_LOAD: Duration = Duration::from_secs(60);
/// How long saving a snapshot (and trimming behind it) may take.
const SNAPSHOT_SAVE: Duration = Duration::from_secs(120);

/// `load`, given up after [`SNAPSHOT_LOAD`].
async fn bounded(
    load: impl std::future::Future<Output = Result<u64, Failure>>,
) -> Result<u64, Failure> {
    tokio::time::timeout(SNAPSHOT_LOAD, load)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Retry(format!(
                "loading a snapshot took more than {SNAPSHOT_LOAD:?}"
            )))
        })
}

/// An ordered consumer of the log after `position`.
async fn consume(
    stream: &stream::Stream,
    position: u64,
) -> Result<consumer::pull::Ordered, Failure> {
    let config = consumer::pull::OrderedConfig {
        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
            start_sequence: position + 1,
        },
        ..Default::default()
    };
    // A creation can hang on a server that just died (the consumer placed
    // there, or a leader being elected): try again soon, a few times,
    // rather than wait out the whole request timeout each time.
    let mut last = String::new();
    for _ in 0..CONSUMER_TRIES {
        let attempt = async {
            let c = stream
                .create_consumer(config.clone())
                .await
                .map_err(|e| e.to_string())?;
            c.messages().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(CONSUMER_TRY, attempt).await {
            Ok(Ok(messages)) => return Ok(messages),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer within {CONSUMER_TRY:?}"),
        }
    }
    Err(Failure::Retry(format!(
        "creating the log's consumer: {last} ({CONSUMER_TRIES} tries)"
    )))
}

/// After a snapshot was installed over a gap in the log: answers every
/// waiting batch the snapshot's session table says was applied (their
/// messages were skipped), and has this hub's own unanswered batches sent
/// again (the log drops any it already holds).
fn settle_skipped<S: Reducer>(shared: &Shared<S>, hub: &Hub) {
    let done = {
        let mut sessions = shared.sessions.lock();
        let now = shared.seq.load(Ordering::SeqCst);
        hub.pending
            .lock()
            .settle_applied(|session, batch| match sessions.check(session, batch) {
                crate::session::Seen::Duplicate(done) => {
                    Some(done.unwrap_or(crate::validate::Committed::at(now)))
                }
                crate::session::Seen::New => None,
            })
    };
    for (reply, done) in done {
        reply(Ok(done));
    }
    if let Some(f) = &shared.follower {
        let acked = f.queue.lock().acked_batch();
        let applied = shared.sessions.lock().applied_after(f.session, acked);
        shared.rejoined(&applied);
        hub.wake.notify_one();
    }
}

/// Answers the dispatchers of the batches one message settled: this hub's
/// own through its outbox, followers through their waiting replies.
fn answer<S: Reducer>(shared: &Shared<S>, hub: &Hub, settled: Vec<Settled>) {
    let own = shared.follower.as_ref().map(|f| f.session);
    for s in settled {
        if Some(s.session) == own {
            match s.result {
                Ok(done) => {
                    for r in &done.rejected {
                        shared.rejected_by_master(s.batch, r.index, &r.reason);
                    }
                    shared.ack(s.batch, done.seq);
                }
                Err(e) => shared.nack(s.batch, e),
            }
            continue;
        }
        let replies = hub.pending.lock().settle(s.session, s.batch);
        for r in replies {
            r(s.result.clone());
        }
    }
}

/// Publishes this hub's dispatches, one message in flight at a time (so
/// they reach the log in order), each retried with its message id until
/// the stream has it.
async fn publish<S: Reducer>(
    weak: Weak<Shared<S>>,
    hub: Arc<Hub>,
    js: Context,
    subject: String,
    max_message: usize,
) {
    let instance = rand::random::<u64>();
    loop {
        {
            let Some(shared) = weak.upgrade() else {
                return;
            };
            take_own(&shared, &hub);
        }
        let (out, failed) = hub.pending.lock().next_message(&S::SCHEMA, max_message);
        for (reply, err) in failed {
            reply(Err(err));
        }
        let Some(out) = out else {
            hub.wake.notified().await;
            continue;
        };
        tracing::trace!(
            store = S::NAME,
            batches = out.batches,
            actions = out.actions,
            "hub: publishing"
        );
        crate::telemetry::hub_message(S::NAME, out.actions);
        let id = wire::message_id(instance, out.number);
        let body = bytes::Bytes::from(out.body);
        let mut delay = FIRST_RETRY;
        loop {
            let sent = tokio::time::timeout(REQUEST_TIMEOUT + ACK_TIMEOUT, async {
                js.send_publish(
                    subject.clone(),
                    jetstream::message::PublishMessage::build()
                        .message_id(&id)
                        .payload(body.clone()),
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|_| Err("no answer".into()));
            match sent {
                Ok(_) => {
                    hub.messages.fetch_add(1, Ordering::Relaxed);
                    hub.actions.fetch_add(out.actions as u64, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    if !retrying(&weak, &format!("NATS: publishing to the log: {e}")) {
                        return;
                    }
                    backoff(&mut delay).await;
                }
            }
        }
    }
}

/// Moves the hub's own queued dispatches (its outbox) into the log queue,
/// under its own session.
fn take_own<S: Reducer>(shared: &Shared<S>, hub: &Hub) {
    let Some(f) = &shared.follower else {
        return;
    };
    let ready = {
        let mut q = f.queue.lock();
        let (ready, _never) = q.take_with(|batch, count, packed| {
            hub.pending
                .lock()
                .submit(f.session, batch, count, packed, Vec::new(), None);
            Ok::<(), DispatchError>(())
        });
        ready
    };
    crate::outbox::run(ready);
}

/// Saving snapshots and trimming the log behind them.
struct Snapshots {
    bucket: object_store::ObjectStore,
    stream: stream::Stream,
    every: u64,
    keep: usize,
    busy: Arc<AtomicBool>,
    /// The seq after the previous message.
    last: u64,
    /// A save is due and waits for the running one.
    due: bool,
}

impl Snapshots {
    /// After the message at `position`: when the seq passed a multiple of
    /// `every` since the last message (or a save was due and the previous
    /// one has finished), saves a snapshot in the background, one at a time,
    /// unless another hub already did.
    fn maybe_save<S: Reducer>(&mut self, shared: &Shared<S>, position: u64) {
        let seq = shared.seq.load(Ordering::SeqCst);
        let prev = std::mem::replace(&mut self.last, seq);
        self.due |= seq / self.every != prev / self.every;
        // A save still running (a slow server) delays the next one to the
        // first message after it, rather than skipping it: under load
        // snapshots come less often, never stop.
        if !self.due || self.busy.swap(true, Ordering::SeqCst) {
            return;
        }
        self.due = false;
        let snap = match shared.hub_snapshot(position).and_then(|s| s.encode()) {
            Ok(b) => b,
            Err(e) => {
                self.busy.store(false, Ordering::SeqCst);
                shared.report(crate::Error::Hub(format!("snapshot at {position}: {e}")));
                return;
            }
        };
        let (bucket, stream, keep, busy) = (
            self.bucket.clone(),
            self.stream.clone(),
            self.keep,
            Arc::clone(&self.busy),
        );
        tokio::spawn(async move {
            let res =
                tokio::time::timeout(SNAPSHOT_SAVE, save(&bucket, &stream, keep, position, snap))
                    .await
                    .unwrap_or_else(|_| Err(format!("took more than {SNAPSHOT_SAVE:?}")));
            if let Err(e) = res {
                tracing::warn!(store = S::NAME, error = %e, "hub: snapshot not saved");
            }
            busy.store(false, Ordering::SeqCst);
        });
    }
}

async fn save(
    bucket: &object_store::ObjectStore,
    stream: &stream::Stream,
    keep: usize,
    position: u64,
    snap: Vec<u8>,
) -> Result<(), String> {
    let name = Snapshot::name(position);
    if bucket.info(&name).await.is_err() {
        bucket
            .put(name.as_str(), &mut snap.as_slice())
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut positions = Vec::new();
    let mut list = bucket.list().await.map_err(|e| e.to_string())?;
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| e.to_string())?;
        if !info.deleted {
            if let Some(p) = Snapshot::position_in(&info.name) {
                positions.push(p);
            }
        }
    }
    let (old, below) = wire::trim(&positions, keep);
    if let Some(below) = below {
        stream
            .purge()
            .sequence(below)
            .await
            .map_err(|e| e.to_string())?;
    }
    for p in old {
        // Another hub may have deleted it first.
        let _ = bucket.delete(Snapshot::name(p)).await;
    }
    Ok(())
}
