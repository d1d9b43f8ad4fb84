//! Errors, split by when they happen (as quinn does): starting a store,
//! dispatching into it, and reading frames off a link.

use std::io;

/// Starting a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// This process is a worker but is not running inside a tokio runtime,
    /// which the link to the master needs.
    #[error("this process is a worker and needs a tokio runtime to reach its master; start the store inside #[tokio::main]")]
    NoRuntime,
    /// The worker channel named by the environment could not be opened.
    #[error("cannot open the worker channel to the master: {0}")]
    WorkerChannel(#[source] io::Error),
}

/// A dispatch was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The link to the master closed before the action was committed. The
    /// action may or may not have been applied by the master.
    #[error("the link to the master closed before the action was committed")]
    Disconnected,
    /// Too many dispatches are waiting for the link to come up.
    #[error("the queue of dispatches waiting for the master is full ({0} actions)")]
    QueueFull(usize),
    /// The master refused the dispatch (for example, a read-only login).
    #[error("the master refused the dispatch: {0}")]
    Refused(String),
    /// The action could not be encoded.
    #[error("the action could not be encoded: {0}")]
    Encode(String),
    /// The store has been shut down.
    #[error("the store has been shut down")]
    Closed,
}

/// A frame read off a link was bad. The link that sent it is closed; other
/// links are not affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    Oversized {
        /// Announced length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated {
        /// Bytes the frame needs (prefix included).
        need: usize,
        /// Bytes that arrived.
        have: usize,
    },
}
