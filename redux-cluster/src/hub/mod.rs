//! Hubs: many processes hold one store, ordered by a NATS JetStream stream.
//!
//! A master orders its store's actions itself, so it is the whole cluster:
//! while it is down nobody writes. A hub orders nothing. Each hub passes
//! the dispatches of its own process and of its followers (workers,
//! clients, browsers) to one JetStream stream per store, many batches per
//! message, and applies the stream in order. Every hub makes the same
//! decisions from the same log, so every hub, and every follower of every
//! hub, numbers actions identically, in one epoch per stream; a client
//! whose hub dies resumes on another (see
//! [`crate::client::ConnectConfig::or`]).
//!
//! - **Acks mean replicated**: a dispatch is answered once its batch came
//!   back from the stream (quorum-replicated with the default 3 replicas)
//!   and was applied by its hub.
//! - **Exactly once**: every batch carries its dispatcher's session and
//!   batch number; a batch re-sent through another hub after a crash is
//!   recognised by the session table every hub derives from the log, and
//!   answered with its first seq. A hub's retried publish carries the same
//!   `Nats-Msg-Id`, which the stream drops.
//! - **Bounded storage**: hubs save snapshots (state, stream position and
//!   session table) in a JetStream object store every
//!   [`HubConfig::snapshot_every`] actions, and trim the stream below the
//!   oldest snapshot kept. A hub starts from the newest snapshot and the
//!   log after it; one that fell behind a trimmed log starts over from a
//!   newer snapshot.
//!
//! Start a hub with [`crate::StoreBuilder::hub`]; await
//! [`crate::Store::ready`] (the hub has caught up with the log) before
//! serving it.

mod apply;
mod pending;
mod run;
mod wire;

use crate::core::{Reply, Sequencer};
use parking_lot::Mutex;
use pending::Pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub(crate) use run::run;

/// Where the NATS servers are and how the store's stream is kept.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub(crate) servers: Vec<String>,
    pub(crate) replicas: usize,
    pub(crate) snapshot_every: u64,
    pub(crate) keep_snapshots: usize,
    pub(crate) max_message: usize,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) auth: Option<Auth>,
    pub(crate) tls_ca: Option<std::path::PathBuf>,
}

/// How a hub logs in to NATS.
#[derive(Clone)]
pub(crate) enum Auth {
    Login { user: String, password: String },
    Token(String),
}

impl std::fmt::Debug for Auth {
    // Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Login { user, .. } => write!(f, "Login({user:?}, <password>)"),
            Auth::Token(_) => write!(f, "Token(<secret>)"),
        }
    }
}

impl HubConfig {
    /// Servers of one NATS cluster with JetStream, as `nats://host:port`
    /// URLs; the client connects to any of them and fails over to the
    /// others.
    pub fn new<I, T>(servers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            replicas: 3,
            snapshot_every: 100_000,
            keep_snapshots: 2,
            max_message: 512 * 1024,
            connect_timeout: Some(Duration::from_secs(30)),
            auth: None,
            tls_ca: None,
        }
    }

    /// Log in to the NATS servers as `user` with `password` (their
    /// `authorization { user, password }`). A refused login stops the hub:
    /// `ready()` returns [`crate::JoinError::WrongCredentials`].
    pub fn login(mut self, user: &str, password: &str) -> Self {
        self.auth = Some(Auth::Login {
            user: user.to_string(),
            password: password.to_string(),
        });
        self
    }

    /// Log in with a token (the servers' `authorization { token }`).
    pub fn token(mut self, token: &str) -> Self {
        self.auth = Some(Auth::Token(token.to_string()));
        self
    }

    /// Require TLS and trust the servers' certificates signed by the CA in
    /// this PEM file. A certificate that does not verify stops the hub:
    /// `ready()` returns [`crate::JoinError::CertificateRejected`].
    pub fn tls_ca(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca = Some(pem_file.into());
        self
    }

    /// Replicas of the stream and of the snapshot bucket (default 3; a
    /// publish is acknowledged once a majority holds it). Used when the
    /// stream is created; an existing stream keeps its own.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.max(1);
        self
    }

    /// Save a snapshot every `n` actions (default 100,000), when the seq
    /// passes a multiple of `n` (the same log position on every hub, so
    /// hubs write the same snapshot once).
    pub fn snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = n.max(1);
        self
    }

    /// Snapshots kept (default 2, at least 1); the stream is trimmed below
    /// the oldest kept.
    pub fn keep_snapshots(mut self, n: usize) -> Self {
        self.keep_snapshots = n.max(1);
        self
    }

    /// Largest log message in bytes (default 512 KiB; capped by the
    /// server's `max_payload`, 1 MiB by default). One dispatch batch larger
    /// than this is refused.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// How long [`crate::Store::ready`] waits for the hub to reach the
    /// servers and catch up with the log (default 30 s; `None`: for ever).
    /// The hub keeps trying after.
    pub fn connect_timeout(mut self, limit: Option<Duration>) -> Self {
        self.connect_timeout = limit;
        self
    }
}

/// A hub's queue of dispatches for the log, and the wake of its publisher.
pub(crate) struct Hub {
    pending: Mutex<Pending>,
    wake: Arc<Notify>,
    /// Messages published, and the actions in them.
    messages: AtomicU64,
    actions: AtomicU64,
}

impl Hub {
    pub fn new(wake: Arc<Notify>, max_queue: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::new(max_queue)),
            wake,
            messages: AtomicU64::new(0),
            actions: AtomicU64::new(0),
        }
    }
}

impl Sequencer for Hub {
    fn submit(
        &self,
        session: u64,
        batch: u64,
        count: u32,
        packed: &[u8],
        rejected: Vec<crate::validate::Rejection>,
        reply: Reply,
    ) {
        let refused =
            self.pending
                .lock()
                .submit(session, batch, count, packed, rejected, Some(reply));
        match refused {
            Some((reply, err)) => reply(Err(err)),
            None => self.wake.notify_one(),
        }
    }

    fn published(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.actions.load(Ordering::Relaxed),
        )
    }
}
