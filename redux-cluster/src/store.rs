//! The store handle: dispatch, read, subscribe.
//!
//! A [`Store`] is a cheap `Clone` handle over shared state. On the master,
//! `dispatch` applies the action in the caller's thread under a write lock
//! (no task hop, no channel), which is what makes local dispatch fast.
//! Readers take a read guard; subscribers are woken after the lock is
//! released, so a slow subscriber never holds up the apply path.

use crate::error::{DispatchError, StartError};
use crate::reducer::Reducer;
use crate::schema::{SchemaHash, StoreId};
use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// How followers are kept in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Send each action; every `resync` actions also send a snapshot, as a
    /// guaranteed re-synchronisation point (the seed's default, 1000).
    Action {
        /// Actions between snapshots; 0 disables them.
        resync: u64,
    },
    /// Send the whole state after each action, coalesced under load: a
    /// follower that falls behind gets only the newest state.
    Snapshot,
}

impl Default for Mode {
    fn default() -> Self {
        Mode::Action { resync: 1000 }
    }
}

/// One role a store plays in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Orders and applies every action; forked workers follow it.
    Master,
    /// Follows the master that forked this process.
    Worker,
    /// Serves the store to clients over a socket.
    Server,
    /// Follows a server over a socket.
    Client,
}

const ROLE_BITS: [(Role, u8); 4] = [
    (Role::Master, 1),
    (Role::Worker, 2),
    (Role::Server, 4),
    (Role::Client, 8),
];

/// The set of roles a store plays (the seed's `role` array).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles(u8);

impl Roles {
    /// Whether `role` is among them.
    pub fn contains(self, role: Role) -> bool {
        ROLE_BITS
            .iter()
            .any(|(r, bit)| *r == role && self.0 & bit != 0)
    }

    /// The roles, in the order master, worker, server, client.
    pub fn to_vec(self) -> Vec<Role> {
        ROLE_BITS
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(r, _)| *r)
            .collect()
    }

    fn bit(role: Role) -> u8 {
        ROLE_BITS
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(0, |(_, b)| *b)
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}

/// Receives errors the store cannot return to a caller (a peer's bad frame,
/// a refused join, a failed backup): the seed's `stderr` hook.
pub type ErrorHook = Arc<dyn Fn(&crate::Error) + Send + Sync>;

/// Options of a store, set through [`StoreBuilder`].
#[derive(Clone)]
pub(crate) struct Options {
    pub mode: Mode,
    pub on_error: Option<ErrorHook>,
    pub max_frame: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            on_error: None,
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
        }
    }
}

/// The state, its sequence number, and the master's epoch, under one lock.
pub(crate) struct Core<S> {
    pub state: S,
    pub seq: u64,
    pub epoch: u64,
}

pub(crate) struct Shared<S: Reducer> {
    pub core: RwLock<Core<S>>,
    /// Last applied sequence number, published after the lock is released.
    pub seq: AtomicU64,
    changed: Notify,
    waiters: AtomicUsize,
    roles: AtomicU8,
    pub connected: AtomicBool,
    pub closed: AtomicBool,
    pub options: Options,
}

impl<S: Reducer> Shared<S> {
    fn new(options: Options) -> Self {
        Self {
            core: RwLock::new(Core {
                state: S::default(),
                seq: 0,
                epoch: rand::random::<u64>() | 1,
            }),
            seq: AtomicU64::new(0),
            changed: Notify::new(),
            waiters: AtomicUsize::new(0),
            roles: AtomicU8::new(0),
            connected: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            options,
        }
    }

    /// Makes `seq` visible to subscribers and wakes the ones waiting.
    pub fn publish(&self, seq: u64) {
        self.seq.store(seq, Ordering::SeqCst);
        // Pairs with the increment in `wait_past`: either the waiter sees the
        // new seq, or we see the waiter and wake it.
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.changed.notify_waiters();
        }
    }

    /// Waits until the published seq differs from `seen`, or the store closes.
    async fn wait_change(&self, seen: u64) -> Option<u64> {
        loop {
            let now = self.seq.load(Ordering::SeqCst);
            if now != seen {
                return Some(now);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let now = self.seq.load(Ordering::SeqCst);
            if now != seen || self.closed.load(Ordering::SeqCst) {
                self.waiters.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            notified.await;
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub fn add_role(&self, role: Role) {
        self.roles.fetch_or(Roles::bit(role), Ordering::SeqCst);
    }

    pub fn report(&self, err: crate::Error) {
        tracing::warn!(store = S::NAME, error = %err, "redux-cluster");
        if let Some(hook) = &self.options.on_error {
            hook(&err);
        }
    }

    /// Applies actions in order on the master; returns the last seq.
    fn apply_local<'a>(&self, actions: impl IntoIterator<Item = &'a S::Action>) -> u64 {
        let seq = {
            let mut core = self.core.write();
            for a in actions {
                core.state.reduce(a);
                core.seq += 1;
            }
            core.seq
        };
        self.publish(seq);
        seq
    }
}

/// Configures a store before it starts.
pub struct StoreBuilder<S: Reducer> {
    options: Options,
    _state: std::marker::PhantomData<fn() -> S>,
}

impl<S: Reducer> StoreBuilder<S> {
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

    /// Calls `hook` with every error the store cannot return to a caller.
    pub fn on_error(mut self, hook: impl Fn(&crate::Error) + Send + Sync + 'static) -> Self {
        self.options.on_error = Some(Arc::new(hook));
        self
    }

    /// Largest frame accepted from a peer (default 64 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.options.max_frame = bytes;
        self
    }

    /// Starts the store as the master of this process.
    ///
    /// # Errors
    /// [`StartError`] when this process is a worker whose link to the master
    /// cannot be set up.
    pub fn start(self) -> Result<Store<S>, StartError> {
        let shared = Arc::new(Shared::<S>::new(self.options));
        shared.add_role(Role::Master);
        shared.connected.store(true, Ordering::SeqCst);
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
        Self {
            shared: Arc::clone(&self.shared),
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
pub type StateGuard<'a, S> = MappedRwLockReadGuard<'a, S>;

impl<S: Reducer> Store<S> {
    /// A builder with default options.
    pub fn builder() -> StoreBuilder<S> {
        StoreBuilder {
            options: Options::default(),
            _state: std::marker::PhantomData,
        }
    }

    /// Dispatches an action without waiting for its commit. On the master it
    /// is applied before this returns.
    ///
    /// # Errors
    /// [`DispatchError`] when the action cannot be queued.
    pub fn dispatch(&self, action: S::Action) -> Result<(), DispatchError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(DispatchError::Closed);
        }
        self.shared.apply_local(std::iter::once(&action));
        Ok(())
    }

    /// Dispatches several actions at once; they get consecutive sequence
    /// numbers and travel together.
    ///
    /// # Errors
    /// As [`Store::dispatch`].
    pub fn dispatch_all(&self, actions: Vec<S::Action>) -> Result<(), DispatchError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(DispatchError::Closed);
        }
        self.shared.apply_local(actions.iter());
        Ok(())
    }

    /// Dispatches an action and waits until it is committed, returning its
    /// sequence number.
    ///
    /// # Errors
    /// [`DispatchError`] when the action was not committed.
    ///
    /// # Cancel safety
    /// Dropping the future does not withdraw the action.
    pub async fn commit(&self, action: S::Action) -> Result<u64, DispatchError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(DispatchError::Closed);
        }
        Ok(self.shared.apply_local(std::iter::once(&action)))
    }

    /// Reads the state through a guard, without cloning it.
    pub fn state(&self) -> StateGuard<'_, S> {
        RwLockReadGuard::map(self.shared.core.read(), |c| &c.state)
    }

    /// Runs `f` on the state and returns its result, with the sequence
    /// number the state is at.
    pub fn with<R>(&self, f: impl FnOnce(&S) -> R) -> (u64, R) {
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
        let mut seen = self.seq();
        while seen < seq {
            match self.shared.wait_change(seen).await {
                Some(s) => seen = s,
                None => return Err(DispatchError::Closed),
            }
        }
        Ok(seen)
    }

    /// Waits until `pred` holds for the state.
    ///
    /// # Errors
    /// [`DispatchError::Closed`] if the store shuts down first.
    pub async fn wait_until(&self, mut pred: impl FnMut(&S) -> bool) -> Result<u64, DispatchError> {
        let mut sub = self.subscribe();
        loop {
            let (seq, ok) = self.with(&mut pred);
            if ok {
                return Ok(seq);
            }
            sub.seen = seq;
            sub.changed().await.ok_or(DispatchError::Closed)?;
        }
    }

    /// Subscribes to changes. Changes coalesce: a subscriber that is busy
    /// sees the newest sequence number when it next asks, never a backlog.
    pub fn subscribe(&self) -> Subscription<S> {
        Subscription {
            shared: Arc::clone(&self.shared),
            seen: self.seq(),
        }
    }

    /// The roles this store plays in this process.
    pub fn roles(&self) -> Roles {
        Roles(self.shared.roles.load(Ordering::SeqCst))
    }

    /// Whether the store is linked to its master (always true on a master).
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// The schema hash peers compare.
    pub fn schema_hash(&self) -> SchemaHash {
        S::SCHEMA
    }

    /// The store identity.
    pub fn id(&self) -> StoreId {
        S::ID
    }

    /// Stops the store: subscribers and waiters end, dispatch fails.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }
}

/// A stream of changes to a store. Never blocks the apply path.
pub struct Subscription<S: Reducer> {
    shared: Arc<Shared<S>>,
    seen: u64,
}

impl<S: Reducer> Subscription<S> {
    /// Waits for the next change and returns the sequence number now applied;
    /// `None` once the store has shut down.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn changed(&mut self) -> Option<u64> {
        let s = self.shared.wait_change(self.seen).await?;
        self.seen = s;
        Some(s)
    }

    /// Reads the state now.
    pub fn state(&self) -> StateGuard<'_, S> {
        RwLockReadGuard::map(self.shared.core.read(), |c| &c.state)
    }
}
