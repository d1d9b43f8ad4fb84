//! Per-action validation where actions are sequenced (a master or a hub):
//! who sent an action ([`Peer`]), the user's check
//! ([`crate::StoreBuilder::validate`]), and what a rejection leaves behind
//! ([`Rejection`]).
//!
//! A rejected action is never applied anywhere and takes no seq. The
//! others of its batch are applied in order, so one batch may come back
//! partly rejected: the master answers it with the rejected actions'
//! indices and reasons before its ack, and remembers them with the batch in
//! its dispatch sessions (and their saved copies: journal, snapshots, a
//! hub's log), so a batch re-sent after a reconnect or a master crash gets
//! the same answer.

use crate::reducer::Reducer;
use std::sync::Arc;

/// Who sent an action, as the validator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// This process: the store's own `dispatch`/`commit`.
    Local,
    /// A worker this process forked ([`crate::cluster::fork`]).
    Worker {
        /// The worker's number.
        id: u32,
    },
    /// A process on this machine, over a Unix socket.
    Unix {
        /// Its user id (SO_PEERCRED).
        uid: u32,
        /// Its process id, when the OS tells.
        pid: Option<i32>,
        /// The login it gave, if the server has logins.
        login: Option<String>,
    },
    /// A client over QUIC or TCP + TLS.
    Remote {
        /// Its address.
        addr: std::net::SocketAddr,
        /// The login it gave, if the server has logins.
        login: Option<String>,
        /// The subject of the certificate it presented, when the server
        /// asks for client certificates.
        certificate: Option<String>,
    },
    /// A browser over WebSocket (feature `ws`).
    Browser {
        /// Its address.
        addr: std::net::SocketAddr,
        /// The login it gave, if the server has logins.
        login: Option<String>,
    },
}

impl Peer {
    /// This peer, having proved `login` (binary links and browsers fill it
    /// in once admitted).
    pub(crate) fn with_login(mut self, proved: Option<String>) -> Self {
        match &mut self {
            Peer::Unix { login, .. } | Peer::Remote { login, .. } | Peer::Browser { login, .. } => {
                *login = proved;
            }
            Peer::Local | Peer::Worker { .. } => {}
        }
        self
    }

    /// The login the peer gave, if any.
    pub fn login(&self) -> Option<&str> {
        match self {
            Peer::Unix { login, .. } | Peer::Remote { login, .. } | Peer::Browser { login, .. } => {
                login.as_deref()
            }
            Peer::Local | Peer::Worker { .. } => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Local => write!(f, "this process"),
            Peer::Worker { id } => write!(f, "worker {id}"),
            Peer::Unix { uid, pid, .. } => match pid {
                Some(pid) => write!(f, "process {pid} of uid {uid}"),
                None => write!(f, "a process of uid {uid}"),
            },
            Peer::Remote { addr, .. } => write!(f, "{addr}"),
            Peer::Browser { addr, .. } => write!(f, "browser {addr}"),
        }?;
        match self.login() {
            Some(l) => write!(f, " (login `{l}`)"),
            None => Ok(()),
        }
    }
}

/// Why a validator refused an action; the dispatcher gets the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    reason: String,
}

impl Reject {
    /// A rejection with this reason (cut to [`MAX_REASON`] bytes).
    pub fn new(reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON {
            let mut end = MAX_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Self { reason }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl<T: Into<String>> From<T> for Reject {
    fn from(reason: T) -> Self {
        Reject::new(reason)
    }
}

/// Longest reason kept (it travels in acks and is saved with the batch).
pub const MAX_REASON: usize = 1024;

/// The user's check of one action against the state it would apply to.
pub(crate) type Validator<S> =
    Arc<dyn Fn(&S, &<S as Reducer>::Action, &Peer) -> Result<(), Reject> + Send + Sync>;

/// One rejected action of a batch: its index in the batch and the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rejection {
    pub index: u32,
    pub reason: String,
}

/// What a dispatch (or a batch of them) came to: the seq of its last
/// applied action, and the actions the validator rejected (indices within
/// the dispatch). With none rejected, `seq` is the seq of its last action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Committed {
    pub seq: u64,
    pub rejected: Vec<Rejection>,
}

impl Committed {
    /// Every action applied, the last at `seq`.
    pub fn at(seq: u64) -> Self {
        Self {
            seq,
            rejected: Vec::new(),
        }
    }

    /// A single action's result: its seq, or the reason it was rejected.
    /// (Of several actions: the seq of the last applied, or the first
    /// rejection.)
    pub fn single(self) -> Result<u64, crate::DispatchError> {
        match self.rejected.into_iter().next() {
            None => Ok(self.seq),
            Some(r) => Err(crate::DispatchError::Rejected { reason: r.reason }),
        }
    }
}

impl Committed {
    /// What a dispatch of `n` actions came to, when `checked` were rejected
    /// before it was sent (by index among the `n`) and `self` answers the
    /// others (its indices among those).
    pub fn after_checked(mut self, checked: Vec<Rejection>, n: usize) -> Self {
        if checked.is_empty() {
            return self;
        }
        let kept: Vec<u32> = (0..n as u32)
            .filter(|i| !checked.iter().any(|r| r.index == *i))
            .collect();
        for r in &mut self.rejected {
            if let Some(&i) = kept.get(r.index as usize) {
                r.index = i;
            }
        }
        self.rejected.extend(checked);
        self
    }

    /// The result of each of the `n` actions this covers: its own seq
    /// (rejected actions take none), or its rejection.
    pub fn per_action(mut self, n: usize) -> Vec<Result<u64, crate::DispatchError>> {
        self.rejected.sort_by_key(|r| r.index);
        self.rejected.dedup_by_key(|r| r.index);
        let applied = n.saturating_sub(self.rejected.len());
        // The applied ones have the seqs up to `self.seq`, in order.
        let mut next = (self.seq + 1).saturating_sub(applied as u64);
        let mut rejected = self.rejected.into_iter().peekable();
        (0..n)
            .map(|i| match rejected.next_if(|r| r.index as usize == i) {
                Some(r) => Err(crate::DispatchError::Rejected { reason: r.reason }),
                None => {
                    next += 1;
                    Ok(next - 1)
                }
            })
            .collect()
    }
}

/// `items` without those the rejections name (by index).
pub(crate) fn accepted<'a, T>(
    items: &'a [T],
    rejected: &'a [Rejection],
) -> impl Iterator<Item = &'a T> {
    items
        .iter()
        .enumerate()
        .filter(|(i, _)| !rejected.iter().any(|r| r.index as usize == *i))
        .map(|(_, t)| t)
}

/// A validator with the peer whose actions it checks.
pub(crate) struct Check<'a, S: Reducer> {
    pub validator: &'a Validator<S>,
    pub peer: &'a Peer,
}

impl<S: Reducer> Check<'_, S> {
    /// Checks action `index` of a batch against `state`.
    pub fn run(&self, state: &S, action: &S::Action, index: usize) -> Option<Rejection> {
        (self.validator)(state, action, self.peer)
            .err()
            .map(|r| Rejection {
                index: index as u32,
                reason: r.reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_s_seqs_skip_its_rejected_actions() {
        let done = Committed {
            seq: 12,
            rejected: vec![Rejection {
                index: 1,
                reason: "no".into(),
            }],
        };
        let no = Err(crate::DispatchError::Rejected {
            reason: "no".into(),
        });
        assert_eq!(
            done.clone().per_action(4),
            vec![Ok(10), no.clone(), Ok(11), Ok(12)]
        );
        // The same answer for a dispatch of 5 whose action 0 was rejected
        // before it was sent.
        let checked = vec![Rejection {
            index: 0,
            reason: "early".into(),
        }];
        let early = Err(crate::DispatchError::Rejected {
            reason: "early".into(),
        });
        assert_eq!(
            done.after_checked(checked, 5).per_action(5),
            vec![early, Ok(10), no, Ok(11), Ok(12)]
        );
        assert_eq!(Committed::at(5).per_action(2), vec![Ok(4), Ok(5)]);
    }
}
