//! What a supervisor reports about itself and its children for the
//! observer: more than `which_children` (restart counts, last exits,
//! backoff), less than its state.

use ractor::ActorCell;

use crate::exit::ExitReason;
use crate::supervisor::spec::{ChildKind, ChildStatus, Restart};

/// One supervisor at one moment.
#[derive(Debug, Clone)]
pub(crate) struct TreeSnapshot {
    /// Its name: its path in the tree (`app/storage`), else its registered
    /// name, else `supervisor-<actor id>`.
    pub(crate) label: String,
    /// Its strategy, or `dynamic`.
    pub(crate) strategy: String,
    /// Its children in start order.
    pub(crate) children: Vec<ChildSnapshot>,
}

/// One child at one moment.
#[derive(Debug, Clone)]
pub(crate) struct ChildSnapshot {
    pub(crate) id: String,
    pub(crate) kind: ChildKind,
    pub(crate) restart: Restart,
    pub(crate) status: ChildStatus,
    /// The running (or stopping) incarnation.
    pub(crate) actor: Option<ActorCell>,
    /// Incarnations started after the first.
    pub(crate) restarts: u64,
    /// How the last incarnation ended.
    pub(crate) last_exit: Option<ExitReason>,
    /// Backoff delays waited in the current run of failures (0 without a
    /// backoff, or after a healthy run).
    pub(crate) backoff_attempt: u32,
}
