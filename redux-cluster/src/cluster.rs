//! The basic scheme: the master starts copies of its own executable as
//! workers, each linked to it by an inherited socket pair.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use redux_cluster::cluster;
//! if cluster::is_master() {
//!     let workers = cluster::fork(3)?;
//!     # drop(workers);
//! }
//! # Ok(()) }
//! ```

use crate::admission::PeerKey;
use crate::error::StartError;
use crate::link::follow::Upstream;
use crate::link::serve::{serve, ServeOptions};
use crate::protocol::FrameCodec;
use crate::transport::pipe;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Environment variable holding a worker's id (1, 2, …).
pub const WORKER_ID_ENV: &str = "REDUX_CLUSTER_WORKER_ID";

/// Whether this process was started by [`fork`] as a worker.
pub fn is_worker() -> bool {
    std::env::var_os(pipe::CHANNEL_ENV).is_some()
}

/// Whether this process is a master (not a forked worker).
pub fn is_master() -> bool {
    !is_worker()
}

/// This worker's id, if this process is a worker.
pub fn worker_id() -> Option<u32> {
    std::env::var(WORKER_ID_ENV).ok()?.parse().ok()
}

/// The process-wide link of a worker to its master, opened on first use.
pub(crate) fn worker_link() -> Result<Upstream, StartError> {
    static LINK: OnceLock<Upstream> = OnceLock::new();
    if let Some(l) = LINK.get() {
        return Ok(l.clone());
    }
    let handle = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
    let stream = {
        let _guard = handle.enter();
        pipe::open_inherited().map_err(StartError::WorkerChannel)?
    };
    let up = LINK.get_or_init(Upstream::new).clone();
    let run = up.clone();
    handle.spawn(async move {
        let (r, w) = pipe::split(stream);
        let res = run
            .run(r, w, FrameCodec::default(), None, None, false)
            .await;
        if let Err(e) = &res {
            tracing::warn!(error = %e, "the link to the master ended");
        }
        // The channel ends only when the master closes it or dies (the
        // kernel closes a dead process's end at once): no orphans.
        if !OUTLIVE_MASTER.load(Ordering::SeqCst) {
            eprintln!(
                "redux-cluster: worker {}: the master process is gone; exiting \
                 (call redux_cluster::cluster::outlive_master() to keep running)",
                worker_id().unwrap_or(0)
            );
            std::process::exit(WORKER_ORPHANED_EXIT);
        }
    });
    Ok(up)
}

/// Whether a worker keeps running when its master is gone.
static OUTLIVE_MASTER: AtomicBool = AtomicBool::new(false);

/// The exit code of a worker whose master is gone.
pub const WORKER_ORPHANED_EXIT: i32 = 75;

/// In a worker: keep running when the master process is gone, instead of
/// exiting (the default, with [`WORKER_ORPHANED_EXIT`] and a message on
/// stderr). The stores then report `connected() == false`, and dispatches
/// and commits fail with [`crate::DispatchError::Disconnected`].
pub fn outlive_master() {
    OUTLIVE_MASTER.store(true, Ordering::SeqCst);
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A worker process and the link serving it.
#[derive(Debug)]
pub struct Worker {
    id: u32,
    child: tokio::process::Child,
    link: JoinHandle<()>,
}

impl Worker {
    /// The worker's id (1, 2, …), as [`worker_id`] reports inside it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The worker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Takes the worker's stdout, when the command was set up to pipe it.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Kills the worker (SIGKILL) and waits for it to exit.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.child.kill().await
    }

    /// Waits for the worker to exit.
    ///
    /// # Errors
    /// When waiting fails.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Waits until the link to this worker has ended (it exited, crashed, or
    /// sent something bad).
    pub async fn link_closed(&mut self) {
        let _ = (&mut self.link).await;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Workers do not outlive the handle that owns them.
        let _ = self.child.start_kill();
        self.link.abort();
    }
}

/// Starts `n` copies of this executable, with the same arguments, as
/// workers. Must be called inside a tokio runtime.
///
/// # Errors
/// When a process cannot be started.
pub fn fork(n: usize) -> io::Result<Vec<Worker>> {
    let exe = std::env::current_exe()?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    (0..n)
        .map(|_| {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(&args);
            spawn_worker(cmd)
        })
        .collect()
}

/// Starts `cmd` as a worker: it inherits a channel to this process and
/// serves every store this process masters. Use it to run a different
/// program as a worker; [`fork`] runs this one.
///
/// # Errors
/// When the process cannot be started.
pub fn spawn_worker(mut cmd: std::process::Command) -> io::Result<Worker> {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    let (ours, theirs) = pipe::pair()?;
    let fd = theirs.as_raw_fd();
    cmd.env(pipe::CHANNEL_ENV, fd.to_string())
        .env(WORKER_ID_ENV, id.to_string())
        .stdin(Stdio::null());
    // SAFETY: the closure only calls fcntl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || pipe::inherit(fd));
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn()?;
    drop(theirs);
    ours.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(ours)?;
    let (r, w) = pipe::split(stream);
    let opts = ServeOptions {
        peer: format!("worker {id}"),
        who: crate::Peer::Worker { id },
        codec: FrameCodec::default(),
        join_wait: Duration::from_secs(10),
        access: None,
        peer_key: PeerKey::Worker,
        stores: None,
        role: crate::Role::Master,
        heartbeat: None,
        handshake_timeout: None,
        stop: None,
    };
    let link = tokio::spawn(serve(r, w, opts));
    Ok(Worker { id, child, link })
}
