//! The shared inside of a store: state, sequence number, change
//! notification, the action ring for followers, and the dispatch queue when
//! following a master.

use crate::codec;
use crate::error::DispatchError;
use crate::log::Log;
use crate::options::{Options, Role, Roles};
pub(crate) use crate::outbox::Reply;
use crate::outbox::{self, Outbox};
use crate::reducer::Reducer;
use crate::validate::{Check, Committed, Peer, Rejection, Validator};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// A fresh master epoch: random, so two starts never share one.
pub(crate) fn new_epoch() -> u64 {
    rand::random::<u64>() | 1
}

/// The state, its sequence number, and the master's epoch, under one lock.
pub(crate) struct Core<S> {
    pub state: S,
    pub seq: u64,
    pub epoch: u64,
    /// Encoded recent actions, kept once some link serves followers.
    pub log: Option<Log>,
}

impl<S: Reducer> Core<S> {
    /// The one apply loop: applies decoded actions in order (on the master,
    /// a follower, or from a journal), keeping their encoded bytes in the
    /// ring when there is one. With `check` (a master's validator), each
    /// action is checked first against the state the ones before it made,
    /// and a rejected one is skipped. Returns the seq of the last applied
    /// and the rejections.
    pub fn apply_packed(
        &mut self,
        actions: &[(S::Action, std::ops::Range<usize>)],
        packed: &[u8],
        check: Option<&Check<'_, S>>,
    ) -> Committed {
        let mut rejected = Vec::new();
        for (i, (a, range)) in actions.iter().enumerate() {
            if let Some(r) = check.and_then(|c| c.run(&self.state, a, i)) {
                rejected.push(r);
                continue;
            }
            if let Some(log) = &mut self.log {
                log.push_raw(&packed[range.clone()]);
            }
            self.state.reduce(a);
            self.seq += 1;
        }
        Committed {
            seq: self.seq,
            rejected,
        }
    }

    /// Replaces the state wholesale (a snapshot from the master or a file).
    pub fn install(&mut self, state: S, epoch: u64, seq: u64) {
        self.state = state;
        self.seq = seq;
        self.epoch = epoch;
        if let Some(log) = &mut self.log {
            log.reset(seq + 1);
        }
    }
}

/// Where a follower's link to its master stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkStatus {
    Connecting,
    Joined,
    Refused(crate::JoinError),
    Down,
    /// Down because the server is full: `ready()` says so at once.
    Unavailable(crate::JoinError),
}

/// Counts one parked waiter for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The follower side: what `dispatch` needs to reach the master.
pub(crate) struct Follower {
    /// Wakes the link's writer.
    pub wake: Arc<Notify>,
    pub queue: Mutex<Outbox>,
    pub status: watch::Sender<LinkStatus>,
    /// Whether the store has joined once (so it can resume).
    pub joined_once: AtomicBool,
    /// This store instance's dispatch session.
    pub session: u64,
    /// Woken when the queue empties or the link dies for good.
    pub drained: Notify,
    /// How long `ready()` waits for the first join (`None`: for ever).
    pub ready_timeout: Mutex<Option<std::time::Duration>>,
    /// Why the last connection attempt failed.
    pub last_failure: Mutex<Option<String>>,
    /// The schema of the master joined last: this store's, or an earlier
    /// version's (then snapshots and actions are converted, and this
    /// store's own dispatches wait for a master of its version).
    pub master_schema: Mutex<Option<crate::SchemaHash>>,
}

pub(crate) struct Shared<S: Reducer> {
    pub core: RwLock<Core<S>>,
    /// Last applied sequence number, published after the lock is released.
    pub seq: AtomicU64,
    /// Change counter for subscribers (see [`Shared::version`]).
    version: AtomicU64,
    /// Wholesale replacements of the state (see [`Shared::resets`]).
    resets: AtomicU64,
    changed: Notify,
    waiters: AtomicUsize,
    roles: AtomicU8,
    pub connected: AtomicBool,
    pub closed: AtomicBool,
    /// Live `Store` handles (see the `Drop` of `Store`).
    pub handles: AtomicUsize,
    pub options: Options,
    /// Writers of links serving followers, woken after every apply.
    links: Mutex<Vec<Arc<Notify>>>,
    has_links: AtomicBool,
    pub follower: Option<Follower>,
    /// The digest of the state at one (epoch, seq), shared by all links.
    pub digest_cache: Mutex<Option<(u64, u64, [u8; 32])>>,
    /// Snapshots this store has applied from its master.
    pub snapshots: AtomicU64,
    /// Dispatch sessions of followers (master side), for exactly-once.
    pub sessions: Mutex<crate::session::Sessions>,
    /// Background tasks this store owns (a client's reconnect loop); aborted
    /// on shutdown.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Says goodbye to the master on a clean close (a client's link).
    farewell: Mutex<Option<Arc<dyn Farewell>>>,
    /// The backup task, awaited by a close so that it can flush.
    persist: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// What may leave this store: with a journal, only what is on disk.
    durability: Durability,
    /// On a hub, what orders dispatches instead of this store (the shared
    /// log); set once, when the hub starts.
    sequencer: std::sync::OnceLock<Arc<dyn Sequencer>>,
    /// The user's check of each action before it is sequenced (master or
    /// hub); set once, when the store starts.
    validator: std::sync::OnceLock<Validator<S>>,
}

/// Orders the dispatches of a hub's followers: a hub does not apply them
/// itself but passes them, with their session and batch, to the shared log,
/// and applies them when they come back from it in order.
pub(crate) trait Sequencer: Send + Sync {
    /// Takes one follower batch (the actions the validator accepted, and
    /// the indices and reasons of those it rejected); `reply` gets the seq
    /// of its last action once it is applied, with the rejections (or why
    /// it was not applied).
    fn submit(
        &self,
        session: u64,
        batch: u64,
        count: u32,
        packed: &[u8],
        rejected: Vec<crate::validate::Rejection>,
        reply: Reply,
    );

    /// Messages published to the log so far, and the actions in them.
    #[cfg(feature = "nats")]
    fn published(&self) -> (u64, u64);
}

/// A follower's way to end its link cleanly: it tells the master it is
/// leaving (so the master reports a clean departure, not a lost peer) and
/// does not reconnect.
pub trait Farewell: Send + Sync {
    /// Says goodbye; returns once it is written (or could not be).
    fn say(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// The master's durability rule: with a journal, no action leaves the
/// process (to a follower, a browser, or as an ack) before the group commit
/// that covers it.
#[derive(Default)]
struct Durability {
    journaled: AtomicBool,
    /// Highest seq on disk (journal mode only).
    durable: AtomicU64,
    /// Replies held until their seq is durable, by seq.
    held: Mutex<BTreeMap<u64, Vec<(Reply, Committed)>>>,
    /// Set when the journal failed: held and later replies get this.
    failed: Mutex<Option<String>>,
}

thread_local! {
    /// The stores (by address) this thread holds a read guard of.
    static GUARDS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks a read guard of one store as held by this thread while it lives,
/// so that a dispatch from the same thread fails instead of deadlocking.
pub(crate) struct Held(usize);

impl Held {
    pub fn new<S: Reducer>(shared: &Shared<S>) -> Self {
        let id = shared as *const Shared<S> as usize;
        GUARDS.with(|g| g.borrow_mut().push(id));
        Held(id)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        GUARDS.with(|g| {
            let mut g = g.borrow_mut();
            if let Some(i) = g.iter().rposition(|&x| x == self.0) {
                g.swap_remove(i);
            }
        });
    }
}

impl<S: Reducer> Shared<S> {
    pub fn new(options: Options, follower: Option<Arc<Notify>>) -> Self {
        Self {
            core: RwLock::new(Core {
                state: S::default(),
                seq: 0,
                epoch: new_epoch(),
                log: None,
            }),
            seq: AtomicU64::new(0),
            version: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            changed: Notify::new(),
            waiters: AtomicUsize::new(0),
            roles: AtomicU8::new(0),
            connected: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            options,
            links: Mutex::new(Vec::new()),
            has_links: AtomicBool::new(false),
            follower: follower.map(|wake| Follower {
                wake,
                queue: Mutex::new(Outbox::default()),
                status: watch::channel(LinkStatus::Connecting).0,
                joined_once: AtomicBool::new(false),
                session: rand::random::<u64>() | 1,
                drained: Notify::new(),
                ready_timeout: Mutex::new(None),
                last_failure: Mutex::new(None),
                master_schema: Mutex::new(None),
            }),
            tasks: Mutex::new(Vec::new()),
            farewell: Mutex::new(None),
            sessions: Mutex::new(crate::session::Sessions::default()),
            snapshots: AtomicU64::new(0),
            digest_cache: Mutex::new(None),
            durability: Durability::default(),
            persist: Mutex::new(None),
            sequencer: std::sync::OnceLock::new(),
            validator: std::sync::OnceLock::new(),
        }
    }

    /// Checks every action sequenced here with `validator` from now on.
    pub fn set_validator(&self, validator: Validator<S>) {
        let _ = self.validator.set(validator);
    }

    /// The validator with `peer`, when this store has one.
    pub fn check<'a>(&'a self, peer: &'a Peer) -> Option<Check<'a, S>> {
        self.validator
            .get()
            .map(|validator| Check { validator, peer })
    }

    /// Reports the rejections of a batch from `peer` (master side).
    pub fn rejected(&self, peer: &Peer, rejected: &[Rejection]) {
        for r in rejected {
            self.event(crate::Event::ActionRejected {
                peer: peer.to_string(),
                reason: r.reason.clone(),
            });
        }
    }

    /// Makes this store a hub whose dispatches `sequencer` orders.
    #[cfg(feature = "nats")]
    pub fn set_sequencer(&self, sequencer: Arc<dyn Sequencer>) {
        let _ = self.sequencer.set(sequencer);
    }

    /// What orders this store's dispatches, on a hub.
    pub fn sequencer(&self) -> Option<&Arc<dyn Sequencer>> {
        self.sequencer.get()
    }

    #[cfg(feature = "backup")]
    /// Takes ownership of the backup task.
    pub fn own_persist(&self, task: tokio::task::JoinHandle<()>) {
        self.own_task(task.abort_handle());
        *self.persist.lock() = Some(task);
    }

    /// Waits for the backup task to write what is applied and stop (the
    /// store must be marked closed first).
    pub async fn flush_persist(&self) {
        // The journal waits on its link wake, a snapshot backup on a change:
        // both must see `closed` now.
        self.wake_links();
        self.wake_all();
        let task = self.persist.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Waits until every queued dispatch is acked; returns how many were
    /// dropped because the link died for good.
    pub async fn drain(&self) -> usize {
        let Some(f) = &self.follower else { return 0 };
        loop {
            let drained = f.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if let Some(lost) = f.queue.lock().drained() {
                return lost;
            }
            drained.await;
        }
    }

    /// Actions queued for the master and not acked yet.
    pub fn queued(&self) -> usize {
        self.follower
            .as_ref()
            .map_or(0, |f| f.queue.lock().queued())
    }

    /// Whether this thread holds a read guard of this store.
    fn guard_held(&self) -> bool {
        let id = self as *const Self as usize;
        GUARDS.with(|g| g.borrow().contains(&id))
    }

    #[cfg(feature = "backup")]
    /// From now on, actions leave this store only once a journal has
    /// reported them durable ([`Shared::set_durable`]); `seq` is on disk.
    pub fn start_journal(&self, seq: u64) {
        self.durability.durable.store(seq, Ordering::SeqCst);
        self.durability.journaled.store(true, Ordering::SeqCst);
    }

    /// The last seq that may leave this store, given the applied `seq`.
    pub fn visible(&self, seq: u64) -> u64 {
        if self.durability.journaled.load(Ordering::SeqCst) {
            self.durability.durable.load(Ordering::SeqCst).min(seq)
        } else {
            seq
        }
    }

    /// Answers `reply` with `done` once its seq is durable (at once without
    /// a journal).
    pub fn reply_durable(&self, done: Committed, reply: Reply) {
        let d = &self.durability;
        let seq = done.seq;
        if !d.journaled.load(Ordering::SeqCst) {
            return reply(Ok(done));
        }
        // Replies run under this lock, here and in `set_durable`, so they
        // go out in seq order: an ack must never overtake the acks of the
        // batches before it. (Replies only queue frames or fill oneshots;
        // none takes this lock.)
        let mut held = d.held.lock();
        if let Some(why) = &*d.failed.lock() {
            return reply(Err(DispatchError::NotDurable(why.clone())));
        }
        if d.durable.load(Ordering::SeqCst) >= seq {
            return reply(Ok(done));
        }
        held.entry(seq).or_default().push((reply, done));
    }

    #[cfg(feature = "backup")]
    /// The journal has made everything up to `seq` durable: answers the
    /// replies held for it and lets the links send it.
    pub fn set_durable(&self, seq: u64) {
        let d = &self.durability;
        {
            let mut held = d.held.lock();
            d.durable.fetch_max(seq, Ordering::SeqCst);
            let later = held.split_off(&(seq + 1));
            // In seq order, under the lock (see `reply_durable`).
            for (r, done) in std::mem::replace(&mut *held, later).into_values().flatten() {
                r(Ok(done));
            }
        }
        self.wake_links();
    }

    /// The journal failed: nothing more becomes durable. Held replies (and
    /// later ones) fail with `why`.
    pub fn durability_failed(&self, why: String) {
        let d = &self.durability;
        let held = {
            let mut held = d.held.lock();
            *d.failed.lock() = Some(why.clone());
            std::mem::take(&mut *held)
        };
        for (r, _) in held.into_values().flatten() {
            r(Err(DispatchError::NotDurable(why.clone())));
        }
    }

    /// Takes ownership of a background task.
    pub fn own_task(&self, task: tokio::task::AbortHandle) {
        self.tasks.lock().push(task);
    }

    /// What a clean close says to the master first.
    pub fn set_farewell(&self, farewell: Arc<dyn Farewell>) {
        *self.farewell.lock() = Some(farewell);
    }

    /// Says goodbye to the master, if this store has a link of its own.
    pub async fn farewell(&self) {
        let farewell = self.farewell.lock().take();
        if let Some(f) = farewell {
            f.say().await;
        }
    }

    /// Aborts every owned task.
    pub fn stop_tasks(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    /// Makes `seq` visible to subscribers and links, and wakes them.
    ///
    /// Appliers on several threads may publish out of order after releasing
    /// the lock; `fetch_max` keeps the newest.
    pub fn publish(&self, seq: u64) {
        // A publish that lost the race to a newer one is no change.
        let before = self.seq.fetch_max(seq, Ordering::SeqCst);
        if before < seq {
            crate::telemetry::applied(S::NAME, seq - before);
            self.notify();
        }
    }

    /// Publishes a sequence number that may be lower than the last one (a
    /// snapshot from a new master epoch). Only the link's reader applies on
    /// a follower, so there is no race to lose.
    pub fn publish_reset(&self, seq: u64) {
        self.seq.store(seq, Ordering::SeqCst);
        self.resets.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    /// How many times the state was replaced wholesale (snapshots), so a
    /// subscriber can tell a repair from a spurious wake-up at the same seq.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::SeqCst)
    }

    fn notify(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
        // Pairs with the increment in `wait_change`: either the waiter sees
        // the new version, or we see the waiter and wake it.
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.changed.notify_waiters();
        }
        self.wake_links();
    }

    /// Wakes the writers of links serving followers.
    fn wake_links(&self) {
        if self.has_links.load(Ordering::Acquire) {
            for w in self.links.lock().iter() {
                w.notify_one();
            }
        }
    }

    /// The change counter: bumped by every publish, including a repair
    /// snapshot that leaves the sequence number where it was.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Waits until the change counter differs from `seen` (a
    /// [`Shared::version`]), or the store closes (`None`).
    pub async fn wait_change(&self, seen: u64) -> Option<u64> {
        loop {
            let now = self.version.load(Ordering::SeqCst);
            if now != seen {
                return Some(now);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Counted while parked, and uncounted even if this future is
            // dropped mid-wait (under a timeout or `select!`).
            let _waiting = Waiting::new(&self.waiters);
            let now = self.version.load(Ordering::SeqCst);
            if now != seen || self.closed.load(Ordering::SeqCst) {
                continue;
            }
            notified.await;
        }
    }

    /// Wakes everything waiting on the store (on shutdown).
    pub fn wake_all(&self) {
        self.changed.notify_waiters();
    }

    pub fn add_role(&self, role: Role) {
        self.roles.fetch_or(Roles::bit(role), Ordering::SeqCst);
    }

    pub fn roles(&self) -> Roles {
        Roles::from_bits(self.roles.load(Ordering::SeqCst))
    }

    pub fn event(&self, ev: crate::Event) {
        tracing::info!(store = S::NAME, event = %ev, "redux-cluster");
        crate::telemetry::event(S::NAME, &ev);
        if let Some(hook) = &self.options.on_event {
            hook(&ev);
        }
    }

    pub fn report(&self, err: crate::Error) {
        tracing::warn!(store = S::NAME, error = %err, "redux-cluster");
        if let Some(hook) = &self.options.on_error {
            hook(&err);
        }
    }

    /// The canonical digest of the state in `core` (see `digest.rs`),
    /// cached per (epoch, seq) so that many links share one computation;
    /// `None` for a state that cannot be compared.
    pub fn digest_of(&self, core: &Core<S>) -> Option<[u8; 32]> {
        // A state holding a `HashSet` has no canonical order to digest.
        if !<S as crate::Schema>::ORDERED {
            return None;
        }
        if let Some((e, s, d)) = *self.digest_cache.lock() {
            if (e, s) == (core.epoch, core.seq) {
                return Some(d);
            }
        }
        let d = crate::digest::of(&core.state).ok()?;
        *self.digest_cache.lock() = Some((core.epoch, core.seq, d));
        Some(d)
    }

    /// Starts waking `waker` after every apply; turns the action ring on.
    pub fn attach_link(&self, waker: &Arc<Notify>) {
        {
            let mut core = self.core.write();
            if core.log.is_none() {
                core.log = Some(Log::new(core.seq + 1, self.options.log));
            }
        }
        let mut links = self.links.lock();
        links.push(Arc::clone(waker));
        self.has_links.store(true, Ordering::Release);
    }

    pub fn detach_link(&self, waker: &Arc<Notify>) {
        let mut links = self.links.lock();
        links.retain(|w| !Arc::ptr_eq(w, waker));
        // The ring stays on: a follower that dropped may come back to resume.
    }

    /// Applies actions in order as the master, each checked by the
    /// validator (as sent by `peer`) against the state the ones before it
    /// made; returns the last seq and the rejected actions.
    ///
    /// # Errors
    /// [`DispatchError::Encode`] when an action cannot be encoded for the
    /// followers; that action and the ones after it are not applied.
    /// [`DispatchError::StateBorrowed`] when this thread holds a read guard
    /// of the store (applying would wait for it for ever).
    pub fn apply_local(
        &self,
        actions: &[S::Action],
        peer: &Peer,
    ) -> Result<Committed, DispatchError> {
        if self.guard_held() {
            return Err(DispatchError::StateBorrowed);
        }
        let check = self.check(peer);
        let mut rejected = Vec::new();
        let mut guard = self.core.write();
        let core = &mut *guard;
        let mut res = Ok(());
        for (i, a) in actions.iter().enumerate() {
            if let Some(r) = check.as_ref().and_then(|c| c.run(&core.state, a, i)) {
                rejected.push(r);
                continue;
            }
            if let Some(log) = &mut core.log {
                if let Err(e) = log.push_with(|buf| codec::encode_into(a, buf)) {
                    res = Err(DispatchError::Encode(e.to_string()));
                    break;
                }
            }
            core.state.reduce(a);
            core.seq += 1;
        }
        let done = Committed {
            seq: core.seq,
            rejected,
        };
        drop(guard);
        self.publish(done.seq);
        self.rejected(peer, &done.rejected);
        res.map(|()| done)
    }

    /// Queues actions for the master (follower side).
    pub fn enqueue<'a>(
        &self,
        f: &Follower,
        actions: impl IntoIterator<Item = &'a S::Action, IntoIter: ExactSizeIterator>,
        reply: Option<Reply>,
    ) -> Result<(), DispatchError> {
        let actions = actions.into_iter();
        self.enqueue_with(f, actions.len(), reply, |buf| {
            for a in actions {
                codec::encode_into(a, buf)?;
            }
            Ok(())
        })
    }

    /// Checks `actions` (as sent by `peer`) against the state now, ahead
    /// of their being sequenced elsewhere (a hub's shared log); returns the
    /// rejections, reported. None without a validator.
    pub fn check_ahead<'a>(
        &self,
        actions: impl IntoIterator<Item = &'a S::Action>,
        peer: &Peer,
    ) -> Vec<Rejection> {
        let Some(check) = self.check(peer) else {
            return Vec::new();
        };
        let rejected: Vec<Rejection> = {
            let core = self.core.read();
            actions
                .into_iter()
                .enumerate()
                .filter_map(|(i, a)| check.run(&core.state, a, i))
                .collect()
        };
        self.rejected(peer, &rejected);
        rejected
    }

    /// On a hub, [`Shared::check_ahead`] of this process's own actions
    /// before they are queued for the log; none elsewhere (a follower's
    /// master checks them).
    pub fn precheck(&self, actions: &[S::Action], peer: &Peer) -> Vec<Rejection> {
        if self.sequencer().is_none() {
            return Vec::new();
        }
        self.check_ahead(actions, peer)
    }

    /// Queues `count` actions that `write` appends, already encoded.
    pub fn enqueue_with(
        &self,
        f: &Follower,
        count: usize,
        reply: Option<Reply>,
        write: impl FnOnce(&mut Vec<u8>) -> postcard::Result<()>,
    ) -> Result<(), DispatchError> {
        let (res, ready, depth) = {
            let mut q = f.queue.lock();
            let (res, ready) = q.enqueue(count, reply, self.options.max_queue, write);
            (res, ready, q.queued())
        };
        crate::telemetry::queue_depth(S::NAME, depth);
        outbox::run(ready);
        if res.is_ok() {
            f.wake.notify_one();
        }
        res
    }

    /// Runs `step` on the outbox with this store's applied seq, then the
    /// replies it made ready, and wakes `close` if it drained; reports the
    /// rejections of dispatches no commit waited on.
    fn with_outbox(&self, step: impl FnOnce(&mut Outbox, u64) -> outbox::Ready) {
        let Some(f) = &self.follower else { return };
        let applied = self.core.read().seq;
        let (ready, depth, unclaimed) = {
            let mut q = f.queue.lock();
            let ready = step(&mut q, applied);
            if q.drained().is_some() {
                f.drained.notify_waiters();
            }
            (ready, q.queued(), q.take_unclaimed())
        };
        crate::telemetry::queue_depth(S::NAME, depth);
        outbox::run(ready);
        for reason in unclaimed {
            self.event(crate::Event::DispatchRejected { reason });
        }
    }

    /// The master rejected action `index` of `batch` (its ack follows).
    pub fn rejected_by_master(&self, batch: u64, index: u32, reason: &str) {
        if let Some(f) = &self.follower {
            f.queue.lock().rejected(batch, index, reason);
        }
    }

    /// Records the master's ack of `batch`, its last action at `seq`; its
    /// commits resolve once their seqs are applied here.
    pub fn ack(&self, batch: u64, seq: u64) {
        self.with_outbox(|q, applied| q.ack(batch, seq, applied));
    }

    /// The master refused `batch`: its commits fail with `err`; a batch
    /// without commits is reported through the error hook.
    pub fn nack(&self, batch: u64, err: DispatchError) {
        let mut silent = false;
        self.with_outbox(|q, _| {
            let (ready, s) = q.nack(batch, &err);
            silent = s;
            ready
        });
        if silent {
            self.report(crate::Error::Dispatch(err));
        }
    }

    /// After a rejoin: the batches the master applied while the link was
    /// down are settled; the rest of the in-flight ones will be sent again.
    pub fn rejoined(&self, applied: &[(u64, Committed)]) {
        self.with_outbox(|q, seq| q.rejoined(applied, seq));
    }

    /// Resolves acks whose sequence number has now been applied.
    pub fn resolve_acks(&self, applied: u64) {
        self.with_outbox(|q, _| q.resolve(applied));
    }

    /// Fails every waiting commit, and when `dead` every queued dispatch
    /// and every later one. Only for a link that will not come back; a
    /// reconnecting link keeps its queue (see [`Shared::rejoined`]).
    /// Returns how many queued actions were dropped.
    pub fn fail_all(&self, err: DispatchError, dead: bool) -> usize {
        let mut dropped = 0;
        self.with_outbox(|q, _| {
            let (ready, d) = q.fail_all(&err, dead);
            dropped = d;
            ready
        });
        dropped
    }
}
