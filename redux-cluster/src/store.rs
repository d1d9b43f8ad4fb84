//! The store handle: dispatch, read, subscribe.
//!
//! A [`Store`] is a cheap `Clone` handle over shared state. On the master,
//! `dispatch` applies the action in the caller's thread under a write lock
//! (no task hop, no channel), which is what makes local dispatch fast.
//! Readers take a read guard; subscribers are woken after the lock is
//! released, so a slow subscriber never holds up the apply path.

use crate::core::{Held, LinkStatus, Shared};
use crate::error::{DispatchError, JoinError, StartError};
use crate::options::{Mode, Options, Role, Roles};
use crate::reducer::Reducer;
use crate::schema::{SchemaHash, StoreId};
use crate::streams::{Actions, Selection, Subscription};
use crate::validate::{accepted, Committed};
use parking_lot::{MappedRwLockReadGuard, RwLockReadGuard};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Configures a store before it starts.
pub struct StoreBuilder<S: Reducer> {
    options: Options,
    validator: Option<crate::validate::Validator<S>>,
}

impl<S: Reducer> StoreBuilder<S> {
    /// Checks every action before it is sequenced, where actions are
    /// sequenced: on the master ([`start`](Self::start)) or a hub
    /// ([`hub`](Self::hub)); a follower's store ignores it. `check` gets
    /// the state the action would apply to (after the actions sequenced
    /// before it), the action, and who sent it ([`crate::Peer`]: this
    /// process, a forked worker, a Unix-socket process by uid, a remote
    /// client by address and certificate, a browser; with its login).
    ///
    /// A rejected action is never applied anywhere and takes no seq; the
    /// others of its batch are applied as usual. Its dispatcher learns
    /// the reason: `commit` returns [`DispatchError::Rejected`]; a
    /// `dispatch` on the master returns it, on a follower it is reported
    /// to the follower's event hook ([`crate::Event::DispatchRejected`]);
    /// a browser's `dispatch` promise rejects. The master reports each
    /// rejection as [`crate::Event::ActionRejected`].
    ///
    /// `check` runs under the store's write lock, on the task that
    /// applies: keep it quick and deterministic, and do not touch the
    /// store from it. On a hub it sees the hub's own state, which may be a
    /// few messages behind the shared log.
    pub fn validate(
        mut self,
        check: impl Fn(&S, &S::Action, &crate::Peer) -> Result<(), crate::Reject>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.validator = Some(Arc::new(check));
        self
    }

    /// Sync mode for followers (default: action mode, resync every 1000).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.options.mode = mode;
        self
    }

    /// In action mode, send a snapshot every `n` actions (0 disables).
    pub fn resync(mut self, n: u64) -> Self {
        self.options.mode = Mode::Action { resync: n };
        self
    }

    /// Send followers a digest of the state every `n` actions (default
    /// 10,000; 0 turns it off). A follower whose state differs (a
    /// non-deterministic reducer) reports it and is repaired with a
    /// snapshot. Digests are taken over a canonical encoding (map entries
    /// sorted), so a `HashMap` in the state compares equal across
    /// processes; a state holding a `HashSet` (whose order no encoding can
    /// recover) is never compared: use a `BTreeSet` to keep the check.
    pub fn digest_every(mut self, n: u64) -> Self {
        self.options.digest_every = n;
        self
    }

    /// Calls `hook` with every error the store cannot return to a caller.
    pub fn on_error(mut self, hook: impl Fn(&crate::Error) + Send + Sync + 'static) -> Self {
        self.options.on_error = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` with every [`crate::Event`] of the store (peers joining
    /// and leaving, reconnects, failed logins and bans, slow consumers,
    /// repairs, rollbacks). Events are not errors: the error hook does not
    /// see them.
    pub fn on_event(mut self, hook: impl Fn(&crate::Event) + Send + Sync + 'static) -> Self {
        self.options.on_event = Some(Arc::new(hook));
        self
    }

    /// Largest frame accepted from a peer (default 64 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.options.max_frame = bytes;
        self
    }

    /// Most encoded actions kept for followers that fall behind or
    /// reconnect (bytes and count; defaults 4 MiB and 100,000). A follower
    /// further behind gets a snapshot.
    pub fn history(mut self, max_bytes: usize, max_actions: u64) -> Self {
        self.options.log = crate::log::LogLimits {
            max_bytes,
            max_actions,
        };
        self
    }

    /// Most dispatches queued while the master is unreachable (default
    /// 1,048,576); past it, dispatch returns [`DispatchError::QueueFull`].
    pub fn max_queue(mut self, actions: usize) -> Self {
        self.options.max_queue = actions;
        self
    }

    /// Starts the store as a client of a server (the seed's `createClient`).
    /// It reconnects on its own; `ready()` waits for the first join. If this
    /// process also forks workers, it relays between them and the server.
    ///
    /// # Errors
    /// [`StartError::NoRuntime`] outside a tokio runtime;
    /// [`StartError::DuplicateStore`] when a store of this name runs here.
    pub fn connect(self, cfg: crate::client::ConnectConfig) -> Result<Store<S>, StartError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let up = crate::link::follow::Upstream::new();
        let shared = Arc::new(Shared::<S>::new(self.options, Some(up.wake())));
        shared.add_role(Role::Client);
        if cfg.relay {
            crate::registry::register(
                S::NAME,
                Arc::clone(&shared) as Arc<dyn crate::link::Source>,
            )?;
        }
        if let Some(f) = &shared.follower {
            *f.ready_timeout.lock() = cfg.ready_timeout;
        }
        up.register(Arc::clone(&shared) as Arc<dyn crate::link::Sink>);
        shared.set_farewell(Arc::new(up.clone()));
        let weak = Arc::downgrade(&shared);
        let task = handle.spawn(crate::client::run(up, cfg, move |e| {
            if let Some(s) = weak.upgrade() {
                s.report(e);
            }
        }));
        shared.own_task(task.abort_handle());
        Ok(Store { shared })
    }

    /// Starts the store as a hub of a NATS JetStream stream (feature
    /// `nats`; see [`crate::hub`]): one of any number of processes that
    /// hold the store, ordered by the stream instead of by a master. It
    /// serves followers like a master (forked workers, [`Store::serve`]);
    /// its dispatches and theirs are committed once in the stream and
    /// applied. It connects and reconnects on its own; `ready()` waits
    /// until it has caught up with the log, and fails at once with
    /// [`JoinError::SchemaMismatch`] when the stream holds another schema.
    ///
    /// # Errors
    /// [`StartError::NoRuntime`] outside a tokio runtime;
    /// [`StartError::DuplicateStore`] when a store of this name runs here.
    ///
    /// In a worker forked by [`crate::cluster::fork`], it joins the hub
    /// that forked it over the inherited channel instead, like
    /// [`StoreBuilder::start`] (one program for the hub and its workers);
    /// the worker lifecycle applies (it exits when its hub dies, unless
    /// [`crate::cluster::outlive_master`]).
    #[cfg(feature = "nats")]
    pub fn hub(self, cfg: crate::hub::HubConfig) -> Result<Store<S>, StartError> {
        if crate::cluster::is_worker() {
            return self.start();
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let max_queue = self.options.max_queue;
        let shared = Arc::new(Shared::<S>::new(self.options, Some(Arc::clone(&wake))));
        if let Some(v) = self.validator {
            shared.set_validator(v);
        }
        shared.add_role(Role::Hub);
        let hub = Arc::new(crate::hub::Hub::new(wake, max_queue));
        shared.set_sequencer(Arc::clone(&hub) as Arc<dyn crate::core::Sequencer>);
        crate::registry::register(S::NAME, Arc::clone(&shared) as Arc<dyn crate::link::Source>)?;
        if let Some(f) = &shared.follower {
            *f.ready_timeout.lock() = cfg.connect_timeout;
        }
        let task = handle.spawn(crate::hub::run(Arc::clone(&shared), hub, cfg));
        shared.own_task(task.abort_handle());
        Ok(Store { shared })
    }

    /// Starts the store: as the master in a plain process, or, in a worker
    /// started by [`crate::cluster::fork`], joined to the master over the
    /// inherited channel (its role is then `worker`, and `connected` turns
    /// true once the master has accepted it).
    ///
    /// # Errors
    /// [`StartError`] when this process is a worker whose link to the master
    /// cannot be set up, or when a store of the same name already runs here.
    pub fn start(self) -> Result<Store<S>, StartError> {
        if crate::cluster::is_worker() {
            let link = crate::cluster::worker_link()?;
            let shared = Arc::new(Shared::<S>::new(self.options, Some(link.wake())));
            shared.add_role(Role::Worker);
            link.register(Arc::clone(&shared) as Arc<dyn crate::link::Sink>);
            return Ok(Store { shared });
        }
        let shared = Arc::new(Shared::<S>::new(self.options, None));
        if let Some(v) = self.validator {
            shared.set_validator(v);
        }
        shared.add_role(Role::Master);
        shared.connected.store(true, Ordering::SeqCst);
        crate::registry::register(S::NAME, Arc::clone(&shared) as Arc<dyn crate::link::Source>)?;
        Ok(Store { shared })
    }
}

/// A handle to a running store. Cloning it is cheap; all clones share one
/// state.
pub struct Store<S: Reducer> {
    pub(crate) shared: Arc<Shared<S>>,
}

impl<S: Reducer> Clone for Store<S> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::SeqCst);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Dropping the last handle of a follower (worker or client) shuts it down:
/// nothing could read it any more. Dispatches it still had queued are
/// reported through the error hook ([`crate::Error::Dropped`]); call
/// [`Store::close`] first to deliver them. A master keeps running for its
/// followers until [`Store::shutdown`].
impl<S: Reducer> Drop for Store<S> {
    fn drop(&mut self) {
        let last = self.shared.handles.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && self.shared.follower.is_some() && !self.shared.closed.load(Ordering::SeqCst) {
            self.shutdown();
        }
    }
}

impl<S: Reducer> fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &S::NAME)
            .field("seq", &self.seq())
            .field("roles", &self.roles())
            .finish()
    }
}

/// A read guard on the state. Holding it delays the next apply, so keep it
/// short; it derefs to the state without cloning it.
///
/// On a master, a dispatch from the thread that holds a guard of the same
/// store returns [`DispatchError::StateBorrowed`] instead of waiting for
/// the guard for ever; drop the guard (or clone what you need) first.
pub struct StateGuard<'a, S> {
    guard: MappedRwLockReadGuard<'a, S>,
    _held: Held,
}

impl<S> std::ops::Deref for StateGuard<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.guard
    }
}

impl<S: fmt::Debug> fmt::Debug for StateGuard<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A read guard of `shared`'s state, marked held by this thread.
pub(crate) fn guard<S: Reducer>(shared: &Shared<S>) -> StateGuard<'_, S> {
    let held = Held::new(shared);
    StateGuard {
        guard: RwLockReadGuard::map(shared.core.read(), |c| &c.state),
        _held: held,
    }
}

impl<S: Reducer> Store<S> {
    /// A builder with default options.
    pub fn builder() -> StoreBuilder<S> {
        StoreBuilder {
            options: Options::default(),
            validator: None,
        }
    }

    /// Dispatches an action without waiting for its commit. On the master it
    /// is applied before this returns; on a follower it is queued for the
    /// master (in order, even before the link is up) and applied here when it
    /// comes back.
    ///
    /// # Errors
    /// [`DispatchError`] when the action cannot be applied or queued.
    pub fn dispatch(&self, action: S::Action) -> Result<(), DispatchError> {
        self.dispatch_all(std::slice::from_ref(&action))
    }

    /// Dispatches several actions at once; they get consecutive sequence
    /// numbers and travel together.
    ///
    /// # Errors
    /// As [`Store::dispatch`]. On the master (or a hub), when its validator
    /// rejects some of the actions, the others are applied (or queued) and
    /// this returns [`DispatchError::Rejected`] with the first reason.
    pub fn dispatch_all(&self, actions: &[S::Action]) -> Result<(), DispatchError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(DispatchError::Closed);
        }
        match &self.shared.follower {
            None => self
                .shared
                .apply_local(actions, &crate::Peer::Local)
                .and_then(|done| done.single().map(|_| ())),
            Some(f) => {
                // A hub with a validator checks them here: only the
                // accepted ones are queued.
                let checked = self.shared.precheck(actions, &crate::Peer::Local);
                let Some(first) = checked.first() else {
                    return self.shared.enqueue(f, actions, None);
                };
                let queued: Vec<&S::Action> = accepted(actions, &checked).collect();
                if !queued.is_empty() {
                    self.shared.enqueue(f, queued, None)?;
                }
                Err(DispatchError::Rejected {
                    reason: first.reason.clone(),
                })
            }
        }
    }

    /// Dispatches an action and waits until it is committed and applied
    /// here, returning its sequence number.
    ///
    /// What an `Ok(seq)` promises depends on the master's persistence:
    /// - **journal** ([`crate::BackupConfig::journal`]): the action is in
    ///   the master's journal, synced to disk; it survives a `kill -9` of
    ///   any process, the master included, and is applied exactly once.
    ///   (Nothing leaves the master, to followers or as an ack, before the
    ///   group commit that covers it.)
    /// - **snapshot backup** (`count` / `timeout`): the action is applied by
    ///   the master; a master crash loses at most the actions of the loss
    ///   window chosen, and followers that had seen them are rolled back
    ///   (reported as [`crate::Event::RolledBack`]).
    /// - **no backup**: the master holds it in memory only.
    ///
    /// # Errors
    /// [`DispatchError`] when the action was not committed; on
    /// [`DispatchError::Disconnected`] it may or may not have been applied.
    ///
    /// # Cancel safety
    /// Dropping the future does not withdraw the action.
    pub async fn commit(&self, action: S::Action) -> Result<u64, DispatchError> {
        self.commit_from(action, &crate::Peer::Local).await
    }

    /// Commits several actions together (one apply on the master, one
    /// batch to it from a follower) and waits until all are committed and
    /// applied here; returns each one's seq, or why it was not committed
    /// (the validator may reject some and accept the others). What an
    /// `Ok` promises is as for [`commit`](Self::commit).
    pub async fn commit_all(&self, actions: &[S::Action]) -> Vec<Result<u64, DispatchError>> {
        self.commit_all_from(actions, &crate::Peer::Local).await
    }

    /// [`commit_all`](Self::commit_all) of actions `peer` sent.
    pub(crate) async fn commit_all_from(
        &self,
        actions: &[S::Action],
        peer: &crate::Peer,
    ) -> Vec<Result<u64, DispatchError>> {
        let n = actions.len();
        let fail = |e: DispatchError| vec![Err(e); n];
        if n == 0 {
            return Vec::new();
        }
        if self.shared.closed.load(Ordering::Relaxed) {
            return fail(DispatchError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let reply: crate::core::Reply = Box::new(move |r| {
            let _ = tx.send(r);
        });
        // Rejected before they were sent (a hub's own actions).
        let checked = match &self.shared.follower {
            None => {
                match self.shared.apply_local(actions, peer) {
                    Ok(done) => self.shared.reply_durable(done, reply),
                    Err(e) => return fail(e),
                }
                Vec::new()
            }
            Some(f) => {
                let checked = self.shared.precheck(actions, peer);
                let queued = if checked.is_empty() {
                    self.shared.enqueue(f, actions, Some(reply))
                } else {
                    let queued: Vec<&S::Action> = accepted(actions, &checked).collect();
                    if queued.is_empty() {
                        reply(Ok(Committed::default()));
                        Ok(())
                    } else {
                        self.shared.enqueue(f, queued, Some(reply))
                    }
                };
                if let Err(e) = queued {
                    return fail(e);
                }
                checked
            }
        };
        match rx.await {
            Ok(Ok(done)) => done.after_checked(checked, n).per_action(n),
            Ok(Err(e)) => fail(e),
            Err(_) => fail(DispatchError::Closed),
        }
    }

    /// [`commit`](Self::commit) of an action `peer` sent.
    pub(crate) async fn commit_from(
        &self,
        action: S::Action,
        peer: &crate::Peer,
    ) -> Result<u64, DispatchError> {
        let started = std::time::Instant::now();
        let done = self
            .commit_all_from(std::slice::from_ref(&action), peer)
            .await
            .pop()
            .unwrap_or(Err(DispatchError::Closed));
        if done.is_ok() {
            crate::telemetry::commit(S::NAME, started.elapsed());
        }
        done
    }

    /// [`commit`](Self::commit), waiting at most `deadline` for the
    /// acknowledgement: a caller that must answer its own client in time
    /// (an HTTP handler, say) gets [`DispatchError::Timeout`] rather than
    /// waiting for a master that is down.
    ///
    /// # Errors
    /// As [`commit`](Self::commit); [`DispatchError::Timeout`] when the
    /// deadline passed first. The action is not withdrawn then: it stays
    /// queued and is committed exactly once when the master is back (watch
    /// [`seq`](Self::seq) or the state to see it land).
    pub async fn commit_within(
        &self,
        action: S::Action,
        deadline: std::time::Duration,
    ) -> Result<u64, DispatchError> {
        tokio::time::timeout(deadline, self.commit(action))
            .await
            .unwrap_or(Err(DispatchError::Timeout(deadline)))
    }

    /// Serves this store to clients (the seed's `createServer`). Its role
    /// then includes `server`. Dropping the returned [`crate::server::Server`]
    /// stops serving.
    ///
    /// # Errors
    /// [`crate::server::ServeError`] when the endpoint cannot be bound.
    pub async fn serve(
        &self,
        cfg: crate::server::ServeConfig,
    ) -> Result<crate::server::Server, crate::server::ServeError> {
        let server = crate::server::start(S::NAME, cfg).await?;
        self.shared.add_role(Role::Server);
        Ok(server)
    }

    /// Saves this store to disk (the seed's `backup`; feature `backup`): loads the file if it
    /// exists (the store must not have applied anything yet) and continues
    /// from its state and sequence number, then saves as configured in a
    /// background task. In journal mode every action is appended, and
    /// [`crate::Backup::durable`] waits until an action is on disk.
    ///
    /// # Errors
    /// [`crate::backup::BackupError`]: a file that cannot be read (wrong
    /// key, corrupt, truncated, another schema or store, a newer format) is
    /// an error, never a silent fresh start (unless
    /// [`crate::BackupConfig::replace_unreadable`]); a path another process holds
    /// is [`crate::backup::BackupError::Locked`].
    #[cfg(feature = "backup")]
    pub async fn backup(
        &self,
        cfg: crate::BackupConfig,
    ) -> Result<crate::Backup, crate::backup::BackupError> {
        crate::persist::start(&self.shared, cfg).await
    }

    /// Waits until a follower has joined its master (at once on a master).
    ///
    /// # Errors
    /// [`JoinError`] when the master refused this store or the link died;
    /// for a client, [`JoinError::Timeout`] (with the last connection
    /// failure) when it has not joined within its
    /// [`crate::client::ConnectConfig::connect_timeout`]; it keeps trying,
    /// and a later `ready()` may succeed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ready(&self) -> Result<(), JoinError> {
        let Some(f) = &self.shared.follower else {
            return Ok(());
        };
        let limit = *f.ready_timeout.lock();
        match limit {
            None => self.joined().await,
            Some(after) => match tokio::time::timeout(after, self.joined()).await {
                Ok(r) => r,
                Err(_) => Err(JoinError::Timeout {
                    after,
                    last_failure: f.last_failure.lock().clone(),
                }),
            },
        }
    }

    async fn joined(&self) -> Result<(), JoinError> {
        let Some(f) = &self.shared.follower else {
            return Ok(());
        };
        let mut rx = f.status.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                LinkStatus::Joined => return Ok(()),
                LinkStatus::Refused(why) | LinkStatus::Unavailable(why) => return Err(why.clone()),
                LinkStatus::Down if f.queue.lock().dead() => {
                    return Err(JoinError::LinkDown);
                }
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err(JoinError::LinkDown);
            }
        }
    }

    /// Reads the state through a guard, without cloning it.
    pub fn state(&self) -> StateGuard<'_, S> {
        guard(&self.shared)
    }

    /// Runs `f` on the state and returns its result, with the sequence
    /// number the state is at. (A dispatch inside `f` is refused, as with a
    /// held [`StateGuard`].)
    pub fn with<R>(&self, f: impl FnOnce(&S) -> R) -> (u64, R) {
        let _held = Held::new(&self.shared);
        let core = self.shared.core.read();
        (core.seq, f(&core.state))
    }

    /// A clone of the state.
    pub fn get_state(&self) -> S {
        self.shared.core.read().state.clone()
    }

    /// Sequence number of the last applied action.
    pub fn seq(&self) -> u64 {
        self.shared.seq.load(Ordering::SeqCst)
    }

    /// The master's epoch this store follows (new for every fresh master).
    pub fn epoch(&self) -> u64 {
        self.shared.core.read().epoch
    }

    /// Waits until the store has applied action number `seq`.
    ///
    /// # Errors
    /// [`DispatchError::Closed`] if the store shuts down first.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for(&self, seq: u64) -> Result<u64, DispatchError> {
        loop {
            let version = self.shared.version();
            let now = self.seq();
            if now >= seq {
                return Ok(now);
            }
            if self.shared.wait_change(version).await.is_none() {
                return Err(DispatchError::Closed);
            }
        }
    }

    /// Waits until `pred` holds for the state.
    ///
    /// # Errors
    /// [`DispatchError::Closed`] if the store shuts down first.
    pub async fn wait_until(&self, mut pred: impl FnMut(&S) -> bool) -> Result<u64, DispatchError> {
        loop {
            let version = self.shared.version();
            let (seq, ok) = self.with(&mut pred);
            if ok {
                return Ok(seq);
            }
            if self.shared.wait_change(version).await.is_none() {
                return Err(DispatchError::Closed);
            }
        }
    }

    /// Subscribes to changes. Changes coalesce: a subscriber that is busy
    /// sees the newest sequence number when it next asks, never a backlog.
    pub fn subscribe(&self) -> Subscription<S> {
        Subscription::new(Arc::clone(&self.shared))
    }

    /// A part of the state as a stream: `select`'s value now, then each
    /// time a change makes it differ from the last one yielded (changes in
    /// other parts wake nothing downstream).
    ///
    /// ```
    /// # use redux_cluster::{reducer, ClusterStore};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
    /// # pub struct Tasks { done: u64, title: String }
    /// # #[reducer(Tasks)] #[derive(Serialize, Deserialize)]
    /// # pub enum TaskAction { Done }
    /// # fn reduce(s: &mut Tasks, _: &TaskAction) { s.done += 1 }
    /// # async fn f(store: redux_cluster::Store<Tasks>) {
    /// use futures_util::StreamExt;
    /// let mut done = store.select(|s| s.done);
    /// while let Some(n) = done.next().await {
    ///     println!("{n} done");
    /// }
    /// # }
    /// ```
    pub fn select<T, F>(&self, select: F) -> Selection<S, T, F>
    where
        T: PartialEq + Clone + Unpin,
        F: FnMut(&S) -> T + Unpin,
    {
        Selection::new(self.subscribe(), select)
    }

    /// The actions this store applies from now on, in order, with their
    /// seqs (with a journal: once they are durable). A reader too slow for
    /// the ring of recent actions gets [`crate::Missed`] and goes on from
    /// the newest.
    pub fn actions(&self) -> Actions<S> {
        Actions::new(Arc::clone(&self.shared))
    }

    /// The roles this store plays in this process.
    pub fn roles(&self) -> Roles {
        self.shared.roles()
    }

    /// Whether the store is linked to its master (always true on a master).
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// How many snapshots this store has applied from its master (joins,
    /// resyncs, and catch-ups after falling behind).
    pub fn snapshots_applied(&self) -> u64 {
        self.shared.snapshots.load(Ordering::Relaxed)
    }

    /// The schema hash peers compare.
    pub fn schema_hash(&self) -> SchemaHash {
        S::SCHEMA
    }

    /// On a hub (feature `nats`): the messages it has published to its
    /// store's log, and the actions in them; `None` on any other store.
    #[cfg(feature = "nats")]
    pub fn hub_published(&self) -> Option<(u64, u64)> {
        self.shared.sequencer().map(|s| s.published())
    }

    /// The store identity.
    pub fn id(&self) -> StoreId {
        S::ID
    }

    /// Closes the store without losing what it was given: on a follower,
    /// waits until the master has acknowledged every queued dispatch; with
    /// a backup, waits until it has written everything applied (journal:
    /// synced; snapshot mode: one last save). A client then tells its server
    /// it is leaving (a goodbye, then TLS close_notify or the QUIC stream's
    /// finish), so the server reports a clean departure. Then shuts down.
    ///
    /// # Errors
    /// [`DispatchError::Undelivered`] with how many queued actions were
    /// dropped because the link to the master died for good (a refused
    /// join, a lost worker channel). To bound the wait for an unreachable
    /// master, wrap this in `tokio::time::timeout` and call
    /// [`Store::shutdown`] after it, which reports what is still queued.
    ///
    /// # Cancel safety
    /// Cancelling it leaves the store running (or closed, if the dispatches
    /// had drained).
    pub async fn close(&self) -> Result<(), DispatchError> {
        let lost = self.shared.drain().await;
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.flush_persist().await;
        self.shared.farewell().await;
        self.shutdown();
        if lost > 0 {
            return Err(DispatchError::Undelivered(lost));
        }
        Ok(())
    }

    /// Stops the store at once: subscribers and waiters end, dispatch
    /// fails. Dispatches still queued for the master are dropped and
    /// reported through the error hook ([`crate::Error::Dropped`]); use
    /// [`Store::close`] to deliver them first.
    pub fn shutdown(&self) {
        let queued = self.shared.queued();
        if queued > 0 && !self.shared.closed.load(Ordering::SeqCst) {
            self.shared.report(crate::Error::Dropped(queued));
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.stop_tasks();
        // Commits held for a journal that is now stopped would wait for ever.
        self.shared
            .durability_failed("the store was shut down before the action was on disk".into());
        self.shared.wake_all();
        if !self.roles().contains(Role::Worker) {
            crate::registry::unregister(
                S::NAME,
                &(Arc::clone(&self.shared) as Arc<dyn crate::link::Source>),
            );
        }
    }
}
