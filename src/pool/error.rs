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
    /// An in-flight limit or waiting-room bound that cannot work.
    #[error("invalid limit: {0}")]
    InvalidLimit(String),
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

/// A message the pool could not accept, handed back to the caller.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum PoolCastError<M> {
    /// The pool has stopped.
    #[error("the pool has stopped; the message is returned so it can be sent elsewhere")]
    Stopped(M),
    /// Every worker has ended for good (temporary workers, and transient
    /// ones that ended normally, are not restarted), so nothing would ever
    /// handle the message.
    #[error("no worker is left in the pool (temporary workers that ended, and transient ones that ended normally, are not restarted); the message is returned: resize the pool to start workers again, or send it elsewhere")]
    NoWorkers(M),
    /// The pool's waiting room is at its bound
    /// ([`max_waiting`](crate::pool::PoolBuilder::max_waiting)).
    #[error(
        "the pool's waiting room is full; the message is returned: retry later or shed the load"
    )]
    Full(M),
}

impl<M> PoolCastError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Stopped(message) | Self::NoWorkers(message) | Self::Full(message) => message,
        }
    }
}

impl<M> fmt::Debug for PoolCastError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stopped(_) => "Stopped(..)",
            Self::NoWorkers(_) => "NoWorkers(..)",
            Self::Full(_) => "Full(..)",
        })
    }
}

/// A request through [`PoolRef::call`](crate::pool::PoolRef::call) that got
/// no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolCallError {
    /// The pool has stopped.
    #[error("the pool has stopped")]
    Stopped,
    /// No worker is left in the pool (see [`PoolCastError::NoWorkers`]).
    #[error("no worker is left in the pool; resize it to start workers again")]
    NoWorkers,
    /// The pool's waiting room is full (see [`PoolCastError::Full`]).
    #[error("the pool's waiting room is full; retry later")]
    Full,
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
    /// Every worker had ended for good (temporary workers, and transient
    /// ones that ended normally, are not restarted) while it waited in the
    /// pool.
    NoWorkers,
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WorkerFailed(why) => write!(f, "worker failed while handling it: {why}"),
            Self::WorkerKilled => f.write_str("queued at a worker that was killed"),
            Self::WorkerStopped => f.write_str("queued at a worker that stopped itself"),
            Self::MailboxClosed => f.write_str("the worker's mailbox was closed"),
            Self::PoolStopped => f.write_str("the pool stopped first"),
            Self::NoWorkers => f.write_str("no worker was left to take it"),
        }
    }
}
