//! A store's changes as streams: [`Subscription`] (every change),
//! [`Selection`] (a part of the state, when it changes) and [`Actions`]
//! (the applied actions themselves, with their seqs). All are
//! `futures::Stream`s, all coalesce or skip rather than queue: none can
//! hold up the apply path or grow without bound.

use crate::core::Shared;
use crate::reducer::Reducer;
use crate::store::{guard, StateGuard};
use futures_core::Stream;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::Notify;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// (change counter, (seq, resets)) after a change; `None` once shut down.
type Change = Option<(u64, (u64, u64))>;

/// A stream of changes to a store: each item is the seq applied by then.
/// Changes that come faster than they are read coalesce into one. Never
/// blocks the apply path.
pub struct Subscription<S: Reducer> {
    shared: Arc<Shared<S>>,
    /// The change counter last seen.
    seen: u64,
    /// The (seq, resets) last reported.
    last: (u64, u64),
    /// The wait in progress when polled as a stream.
    pending: Option<Boxed<Change>>,
}

impl<S: Reducer> Subscription<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>) -> Self {
        Self {
            seen: shared.version(),
            last: (shared.seq.load(Ordering::SeqCst), shared.resets()),
            shared,
            pending: None,
        }
    }

    /// Waits for the next change and returns the sequence number now applied;
    /// `None` once the store has shut down. The same as the stream's next
    /// item.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn changed(&mut self) -> Option<u64> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Reads the state now.
    pub fn state(&self) -> StateGuard<'_, S> {
        guard(&self.shared)
    }
}

async fn next_change<S: Reducer>(
    shared: Arc<Shared<S>>,
    mut seen: u64,
    last: (u64, u64),
) -> Change {
    loop {
        seen = shared.wait_change(seen).await?;
        // A wake-up can announce a change already reported (its seq was
        // visible before its counter moved); skip those.
        let now = (shared.seq.load(Ordering::SeqCst), shared.resets());
        if now != last {
            return Some((seen, now));
        }
    }
}

impl<S: Reducer> Stream for Subscription<S> {
    type Item = u64;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        let this = self.get_mut();
        let shared = Arc::clone(&this.shared);
        let (seen, last) = (this.seen, this.last);
        let fut = this
            .pending
            .get_or_insert_with(|| Box::pin(next_change(shared, seen, last)));
        let change = std::task::ready!(fut.as_mut().poll(cx));
        this.pending = None;
        Poll::Ready(change.map(|(seen, now)| {
            this.seen = seen;
            this.last = now;
            now.0
        }))
    }
}

/// A part of a store's state, as a stream: the current value first, then
/// each new value when a change makes it differ from the last one yielded
/// ([`crate::Store::select`]).
pub struct Selection<S: Reducer, T, F> {
    changes: Subscription<S>,
    select: F,
    last: Option<T>,
}

impl<S: Reducer, T, F> Selection<S, T, F> {
    pub(crate) fn new(changes: Subscription<S>, select: F) -> Self {
        Self {
            changes,
            select,
            last: None,
        }
    }
}

impl<S, T, F> Stream for Selection<S, T, F>
where
    S: Reducer,
    T: PartialEq + Clone + Unpin,
    F: FnMut(&S) -> T + Unpin,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            let value = (this.select)(&this.changes.state());
            if this.last.as_ref() != Some(&value) {
                this.last = Some(value.clone());
                return Poll::Ready(Some(value));
            }
            if std::task::ready!(Pin::new(&mut this.changes).poll_next(cx)).is_none() {
                return Poll::Ready(None);
            }
        }
    }
}

/// Actions a reader of [`Actions`] did not see: the ring of recent actions
/// had moved past them (the reader was too slow, or a snapshot replaced the
/// state). The state holds their effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("actions {first}..={last} were applied but not seen by this reader")]
pub struct Missed {
    /// The first action not seen.
    pub first: u64,
    /// The last action not seen.
    pub last: u64,
}

/// The actions a store applies, in order, with their seqs
/// ([`crate::Store::actions`]): what Redux middleware sees, for logs,
/// audits and side effects. Read from the store's ring of recent actions,
/// so a reader that falls behind by more than the ring holds is told what
/// it missed ([`Missed`]) and goes on from the newest action; it never
/// holds up the apply path.
pub struct Actions<S: Reducer> {
    reader: Option<Reader<S>>,
    pending: Option<Boxed<Read<S>>>,
    /// For detaching on drop.
    shared: Arc<Shared<S>>,
    wake: Arc<Notify>,
}

/// A finished read: the reader back, and what it read.
type Read<S> = (Reader<S>, Option<ActionItem<S>>);

/// One item of [`Actions`].
pub type ActionItem<S> = Result<(u64, <S as Reducer>::Action), Missed>;

struct Reader<S: Reducer> {
    shared: Arc<Shared<S>>,
    wake: Arc<Notify>,
    /// The seq of the next action to yield.
    next: u64,
    buf: VecDeque<(u64, S::Action)>,
}

/// Bytes of actions decoded per read of the ring.
const READ_BUDGET: usize = 64 * 1024;

impl<S: Reducer> Actions<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>) -> Self {
        let wake = Arc::new(Notify::new());
        // Turns the ring on (it may be off on a master without followers)
        // and wakes this reader after every apply.
        shared.attach_link(&wake);
        let next = shared.seq.load(Ordering::SeqCst) + 1;
        Self {
            reader: Some(Reader {
                shared: Arc::clone(&shared),
                wake: Arc::clone(&wake),
                next,
                buf: VecDeque::new(),
            }),
            pending: None,
            shared,
            wake,
        }
    }

    /// The next applied action and its seq; `None` once the store has shut
    /// down.
    pub async fn next(&mut self) -> Option<ActionItem<S>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

// Nothing in `Actions` is pinned in place: the reader moves in and out of
// the boxed future that owns it while it waits.
impl<S: Reducer> Unpin for Actions<S> {}

impl<S: Reducer> Drop for Actions<S> {
    fn drop(&mut self) {
        self.shared.detach_link(&self.wake);
    }
}

async fn read<S: Reducer>(mut r: Reader<S>) -> Read<S> {
    loop {
        if let Some(item) = r.buf.pop_front() {
            return (r, Some(Ok(item)));
        }
        let wake = Arc::clone(&r.wake);
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(missed) = r.fill() {
            return (r, Some(Err(missed)));
        }
        if !r.buf.is_empty() {
            continue;
        }
        if r.shared.closed.load(Ordering::SeqCst) {
            return (r, None);
        }
        notified.await;
    }
}

impl<S: Reducer> Reader<S> {
    /// Decodes what the ring holds after `next` (up to what may be seen:
    /// with a journal, what is durable) into `buf`; the actions missed if
    /// the ring no longer holds `next`.
    fn fill(&mut self) -> Option<Missed> {
        let core = self.shared.core.read();
        let limit = self.shared.visible(core.seq);
        let Some(log) = &core.log else {
            return None;
        };
        match log.read_until(self.next, limit, READ_BUDGET) {
            crate::log::Read::Actions {
                first_seq,
                count,
                packed,
            } => {
                // The ring holds what this build encoded, so it decodes.
                if let Ok(actions) = crate::codec::decode_packed::<S::Action>(count, packed) {
                    let skip = self.next.saturating_sub(first_seq) as usize;
                    for (i, (a, _)) in actions.into_iter().enumerate().skip(skip) {
                        self.buf.push_back((first_seq + i as u64, a));
                    }
                }
                self.next = first_seq + u64::from(count);
                None
            }
            // Visible actions the ring does not hold (a snapshot replaced
            // the state), or actions it no longer holds: missed.
            crate::log::Read::UpToDate if self.next > limit => None,
            crate::log::Read::UpToDate | crate::log::Read::Evicted => {
                let missed = Missed {
                    first: self.next,
                    last: limit,
                };
                self.next = limit + 1;
                Some(missed)
            }
        }
    }
}

impl<S: Reducer> Stream for Actions<S> {
    type Item = ActionItem<S>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ActionItem<S>>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            let Some(reader) = this.reader.take() else {
                return Poll::Ready(None);
            };
            this.pending = Some(Box::pin(read(reader)));
        }
        let Some(fut) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let (reader, item) = std::task::ready!(fut.as_mut().poll(cx));
        this.pending = None;
        this.reader = Some(reader);
        Poll::Ready(item)
    }
}
