//! [`SupervisorError`]: every way a supervisor call or spec can fail.

use std::time::Duration;

use crate::exit::ExitReason;

/// Errors from building, spawning and administering supervisors, named after
/// OTP's error terms and carrying the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// `start_child` with an id whose spec is already present but not
    /// running (OTP's `already_present`).
    #[error("child `{0}` is already present; use restart_child to start it or delete_child to remove it")]
    AlreadyPresent(String),
    /// The child is running, so the operation is refused (OTP's
    /// `already_started` / `running`).
    #[error("child `{0}` is running; terminate_child it first")]
    Running(String),
    /// The child is being restarted (OTP's `restarting`).
    #[error("child `{0}` is restarting; terminate_child it or wait until it runs")]
    Restarting(String),
    /// No child with this id (OTP's `not_found`).
    #[error("no child `{0}` in this supervisor")]
    NotFound(String),
    /// A dynamic supervisor already has `max_children` children.
    #[error("max_children ({0}) reached; terminate a child or raise the limit")]
    MaxChildren(usize),
    /// Two children in one spec share an id.
    #[error("duplicate child id `{0}`: ids must be unique within a supervisor")]
    DuplicateChildId(String),
    /// A spec field has a value that cannot work.
    #[error("invalid spec: `{field}`{}: {reason}", child.as_ref().map(|c| format!(" of child `{c}`")).unwrap_or_default())]
    InvalidSpec {
        /// The child whose spec is wrong, if the problem is in a child.
        child: Option<String>,
        /// The offending field.
        field: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A child's `pre_start` failed (OTP's `failed_to_start_child`).
    #[error("child `{id}` failed to start: {reason}")]
    FailedToStart {
        /// The child.
        id: String,
        /// Its start error.
        reason: String,
    },
    /// The supervisor gave up: one restart more than its intensity allows.
    /// This is the failure its parent sees (escalation).
    #[error("reached max restart intensity ({max_restarts} in {period:?}) after child `{child}` ended: {reason}")]
    IntensityExceeded {
        /// The child whose exit (or failed restart) was one too many.
        child: String,
        /// How that child ended.
        reason: ExitReason,
        /// The configured intensity.
        max_restarts: u32,
        /// The configured period.
        period: Duration,
    },
    /// The supervisor actor itself could not be spawned (for example its
    /// name is already registered).
    #[error("the supervisor could not be spawned: {0}; check its name is not already registered")]
    Spawn(String),
    /// [`SupervisorRef::stop`](crate::SupervisorRef::stop) waited this long
    /// and the tree had not stopped, so it was killed.
    #[error("the supervision tree did not stop within {0:?} and was killed; give slow children a shorter `Shutdown` or the stop a longer timeout")]
    StopTimeout(Duration),
    /// The supervisor is not running, so it cannot answer.
    #[error("the supervisor is not running (it stopped, or its parent is restarting it); take a fresh handle or spawn it again")]
    NotRunning,
}

/// Why [`SupervisorRef::child`](crate::SupervisorRef::child) gave no handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChildLookupError {
    /// The supervisor has no child with this id (never had one, it was
    /// deleted, or it was added at run time to an incarnation of a nested
    /// supervisor that has since restarted from its spec).
    #[error("no child `{0}` in this supervisor")]
    NotFound(String),
    /// The child exists but handles a different message type.
    #[error("child `{id}` handles `{found}`, not `{expected}`; ask for `child::<{found}>`")]
    WrongMessageType {
        /// The child.
        id: String,
        /// The message type asked for (`std::any::type_name`).
        expected: &'static str,
        /// The child's message type.
        found: &'static str,
    },
}
