//! The one accept path of every server: links over Unix sockets, QUIC and
//! TCP + TLS (`server.rs`), browsers (`ws/server.rs`), and the TLS and QUIC
//! handshakes before them (`tcp_tls.rs`, `quic.rs`).
//!
//! A [`Listen`] yields connections; a [`Handle`] serves each one in its
//! own task, or turns it away when `max` are already being served. One
//! `CancellationToken` stops the loop and every task it spawned; one
//! `TaskTracker` per kind of task owns them, so [`Accepting::shutdown`]
//! returns only when all of them are gone.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most over-limit connections being turned away at once; past it they are
/// just closed.
const MAX_TURNING_AWAY: usize = 64;

/// How long a graceful connection has to end after a shutdown began.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// Pause after a failed `accept(2)` (out of descriptors, say), so the loop
/// waits for a descriptor to be freed rather than spinning.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A source of connections.
pub(crate) trait Listen: Send + 'static {
    /// One accepted connection.
    type Conn: Send + 'static;
    /// The next connection; `None` once the listener is closed for good.
    /// Must be cancel safe.
    fn accept(&mut self) -> impl Future<Output = Option<Self::Conn>> + Send;
    /// Releases the listener after the last task ended.
    fn release(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async {}
    }
}

/// What happens to each connection.
pub(crate) trait Handle<C>: Send + Sync + 'static {
    /// Serves one connection until it ends. `stop` is cancelled when the
    /// server shuts down: a [`GRACEFUL`](Self::GRACEFUL) handle then ends
    /// on its own (saying goodbye) within [`GRACE`]; any other is dropped
    /// at once.
    fn serve(&self, conn: C, stop: CancellationToken) -> impl Future<Output = ()> + Send + 'static;
    /// Whether [`serve`](Self::serve) ends on its own when `stop` is
    /// cancelled.
    const GRACEFUL: bool = false;
    /// Turns away a connection over the limit, saying why if the protocol
    /// can (time-limited by the implementation). By default it is closed.
    fn turn_away(&self, conn: C) -> impl Future<Output = ()> + Send + 'static {
        drop(conn);
        async {}
    }
}

/// A running accept loop. Dropping it stops the loop and every task it
/// spawned (they end at their next poll).
#[derive(Debug)]
pub(crate) struct Accepting {
    token: CancellationToken,
    done: Option<JoinHandle<()>>,
}

impl Accepting {
    /// Starts accepting from `listener`, serving at most `max` connections
    /// at once with `handle`.
    pub fn start<L, H>(listener: L, handle: H, max: usize) -> Self
    where
        L: Listen,
        H: Handle<L::Conn>,
    {
        let token = CancellationToken::new();
        let done = tokio::spawn(run(listener, handle, max, token.clone()));
        Self {
            token,
            done: Some(done),
        }
    }

    /// Stops accepting and ends every task, without waiting.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Stops, and returns once every task has ended and the listener is
    /// closed.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn run<L, H>(mut listener: L, handle: H, max: usize, token: CancellationToken)
where
    L: Listen,
    H: Handle<L::Conn>,
{
    let served = TaskTracker::new();
    let turned_away = TaskTracker::new();
    while let Some(Some(conn)) = token.run_until_cancelled(listener.accept()).await {
        if served.len() >= max {
            if turned_away.len() < MAX_TURNING_AWAY {
                turned_away.spawn(until(token.clone(), handle.turn_away(conn)));
            }
            continue;
        }
        let serving = handle.serve(conn, token.clone());
        if H::GRACEFUL {
            served.spawn(graceful(token.clone(), serving));
        } else {
            served.spawn(until(token.clone(), serving));
        }
    }
    token.cancel();
    served.close();
    turned_away.close();
    served.wait().await;
    turned_away.wait().await;
    listener.release().await;
}

/// Runs `fut` until it ends; once `token` is cancelled, for at most
/// [`GRACE`] more (then drops it).
async fn graceful(token: CancellationToken, fut: impl Future<Output = ()>) {
    tokio::pin!(fut);
    tokio::select! {
        () = &mut fut => return,
        () = token.cancelled() => {}
    }
    let _ = tokio::time::timeout(GRACE, fut).await;
}

/// Runs `fut` until it ends or `token` is cancelled (then drops it).
async fn until(token: CancellationToken, fut: impl Future<Output = ()>) {
    token.run_until_cancelled(fut).await;
}

/// A TCP listener; a failed `accept(2)` is logged and retried after
/// [`ACCEPT_BACKOFF`].
impl Listen for tokio::net::TcpListener {
    type Conn = (tokio::net::TcpStream, std::net::SocketAddr);

    async fn accept(&mut self) -> Option<Self::Conn> {
        loop {
            match tokio::net::TcpListener::accept(self).await {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::sync::{mpsc, Semaphore};

    struct Feed(mpsc::Receiver<u32>);

    impl Listen for Feed {
        type Conn = u32;
        async fn accept(&mut self) -> Option<u32> {
            self.0.recv().await
        }
    }

    /// Serves until released; counts what it served and turned away.
    #[derive(Clone)]
    struct Counting {
        served: Arc<AtomicUsize>,
        turned_away: Arc<AtomicUsize>,
        release: Arc<Semaphore>,
        dropped: Arc<AtomicUsize>,
    }

    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Handle<u32> for Counting {
        fn serve(&self, _: u32, _: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
            let me = self.clone();
            async move {
                let _guard = OnDrop(Arc::clone(&me.dropped));
                me.served.fetch_add(1, Ordering::SeqCst);
                let _ = me.release.acquire().await;
            }
        }
        fn turn_away(&self, _: u32) -> impl Future<Output = ()> + Send + 'static {
            self.turned_away.fetch_add(1, Ordering::SeqCst);
            async {}
        }
    }

    #[tokio::test]
    async fn over_the_limit_is_turned_away_and_shutdown_ends_every_task() {
        let (tx, rx) = mpsc::channel(16);
        let h = Counting {
            served: Arc::default(),
            turned_away: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
            dropped: Arc::default(),
        };
        let accepting = Accepting::start(Feed(rx), h.clone(), 3);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        while h.served.load(Ordering::SeqCst) + h.turned_away.load(Ordering::SeqCst) < 5 {
            tokio::task::yield_now().await;
        }
        assert_eq!(h.served.load(Ordering::SeqCst), 3);
        assert_eq!(h.turned_away.load(Ordering::SeqCst), 2);
        // The three served tasks never finish on their own: shutdown
        // cancels them and waits until they are gone.
        accepting.shutdown().await;
        assert_eq!(h.dropped.load(Ordering::SeqCst), 3);
    }
}
