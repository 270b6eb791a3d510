//! Pool errors and dead letters.

use std::fmt;

use crate::supervisor::SupervisorError;

/// Errors from building, spawning and administering a pool.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("pool size must be at least 1")]
    ZeroSize,
    /// The routing does not fit the pool (see [`Routing::validate`](crate::pool::Routing::validate)).
    #[error("invalid routing: {0}")]
    InvalidRouting(String),
    /// A weighted pool cannot change size without new weights.
    #[error("a weighted pool cannot be resized: its weights fix its size")]
    WeightedResize,
    /// The pool's supervisor refused (invalid intensity, a worker that
    /// failed to start, ...).
    #[error("pool supervisor: {0}")]
    Supervisor(#[from] SupervisorError),
    /// The pool has stopped.
    #[error("the pool has stopped; spawn a new one (a pool under a supervisor comes back when its parent restarts it)")]
    Stopped,
}

/// A message handed back because the pool has stopped.
#[derive(PartialEq, Eq, thiserror::Error)]
#[error("the pool has stopped; the message is returned so it can be sent elsewhere")]
pub struct PoolStopped<M>(pub M);

impl<M> fmt::Debug for PoolStopped<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PoolStopped(..)")
    }
}

/// A request through [`PoolRef::call`](crate::pool::PoolRef::call) that got
/// no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolCallError {
    /// The pool has stopped.
    #[error("the pool has stopped")]
    Stopped,
    /// The worker handling the request ended or dropped the reply port
    /// (with redelivery off, a worker that fails while handling it).
    #[error(
        "the request was dropped before an answer (its worker failed or dropped the reply port)"
    )]
    NoReply,
    /// No answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
}

/// A message the pool could not process.
#[derive(Debug)]
pub struct DeadLetter<M> {
    /// The worker it was lost at, if any.
    pub worker: Option<usize>,
    /// Why it was lost.
    pub reason: DeadLetterReason,
    /// The message, when it was not consumed: a worker's `handle` takes the
    /// message by value, so one that was being handled when its worker
    /// failed (redelivery off) or that died in a killed worker's mailbox
    /// cannot be given back.
    pub message: Option<M>,
}

/// Why a message became a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Its worker failed while handling it (redelivery off); the failure.
    WorkerFailed(String),
    /// It was in the mailbox of a worker that was killed.
    WorkerKilled,
    /// It was in the mailbox of a worker that stopped itself with `stop`.
    WorkerStopped,
    /// Its worker's mailbox was closed without handing it back.
    MailboxClosed,
    /// The pool stopped before any worker took it.
    PoolStopped,
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WorkerFailed(why) => write!(f, "worker failed while handling it: {why}"),
            Self::WorkerKilled => f.write_str("queued at a worker that was killed"),
            Self::WorkerStopped => f.write_str("queued at a worker that stopped itself"),
            Self::MailboxClosed => f.write_str("the worker's mailbox was closed"),
            Self::PoolStopped => f.write_str("the pool stopped first"),
        }
    }
}
