//! How a child ended: one [`ExitReason`] for restart decisions, tracing and users.
//!
//! ractor reports a child's end to its parent as a `SupervisionEvent`; this
//! module turns those events (and a failed spawn) into the vocabulary of
//! Erlang/OTP, where the restart decision is made.
//!
//! | ractor says                                          | `ExitReason`              | abnormal? |
//! |------------------------------------------------------|---------------------------|-----------|
//! | `ActorTerminated` with no reason (`stop(None)`)      | [`ExitReason::Normal`]    | no        |
//! | `ActorTerminated` with reason `"shutdown"`           | [`ExitReason::Shutdown`]`(None)` | no |
//! | `ActorTerminated` with reason `"shutdown: <why>"`    | [`ExitReason::Shutdown`]`(Some(why))` | no |
//! | `ActorTerminated` with reason `"Drained"` (`drain()`) | [`ExitReason::Shutdown`]`(Some("drained"))` | no |
//! | `ActorTerminated` with reason `"killed"` (`kill()`)  | [`ExitReason::Killed`]    | yes       |
//! | `ActorTerminated` with `"actor_task_cancelled"` (runtime dropped) | [`ExitReason::Killed`] | yes |
//! | `ActorTerminated` with any other reason              | [`ExitReason::Stopped`]   | yes, as `exit(Reason)` in Erlang |
//! | `ActorFailed` (a panic or an `Err` from a handler)   | [`ExitReason::Failed`]    | yes       |
//! | `SpawnErr` from `pre_start`                          | [`ExitReason::StartFailed`] | yes     |
//!
//! # Examples
//!
//! ```
//! use ractor_otp::ExitReason;
//!
//! assert_eq!(ExitReason::from_stop_reason(None), ExitReason::Normal);
//! assert_eq!(
//!     ExitReason::from_stop_reason(Some("shutdown: maintenance")),
//!     ExitReason::Shutdown(Some("maintenance".into()))
//! );
//! assert!(ExitReason::from_stop_reason(Some("killed")).is_abnormal());
//! ```

use std::fmt;

use ractor::{SpawnErr, SupervisionEvent};

/// The stop reason a supervisor gives a child it stops gracefully.
pub const SHUTDOWN_REASON: &str = "shutdown";

/// How an actor ended.
///
/// `Normal` and `Shutdown` are the normal exits: a
/// [`Restart::Transient`](crate::Restart::Transient) child is not restarted
/// after them. Every other variant is abnormal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The actor stopped itself (or was stopped) without a reason.
    Normal,
    /// The actor was asked to shut down, with an optional explanation.
    Shutdown(Option<String>),
    /// The actor was killed (ractor's `kill()`), or its task was cancelled.
    Killed,
    /// The actor panicked or returned `Err` from a handler, `post_start` or
    /// `post_stop`; the message is the panic text or the error's `Display`.
    Failed(String),
    /// The actor stopped with a reason other than `shutdown`; abnormal, as an
    /// Erlang process that calls `exit(Reason)` with such a reason.
    Stopped(String),
    /// The actor never ran: `pre_start` returned `Err` or panicked.
    StartFailed(String),
}

impl ExitReason {
    /// Maps a ractor stop reason (`ActorTerminated`'s third field).
    #[must_use]
    pub fn from_stop_reason(reason: Option<&str>) -> Self {
        match reason {
            None => Self::Normal,
            Some(SHUTDOWN_REASON) => Self::Shutdown(None),
            Some("Drained") => Self::Shutdown(Some("drained".into())),
            Some("killed") | Some("actor_task_cancelled") => Self::Killed,
            Some(other) => match other.strip_prefix("shutdown:") {
                Some(why) => Self::Shutdown(Some(why.trim().to_string())),
                None => Self::Stopped(other.to_string()),
            },
        }
    }

    /// Maps a supervision event about a child's end; `None` for events that
    /// are not an exit (`ActorStarted`, process-group changes).
    #[must_use]
    pub fn from_event(event: &SupervisionEvent) -> Option<Self> {
        match event {
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                Some(Self::from_stop_reason(reason.as_deref()))
            }
            SupervisionEvent::ActorFailed(_, err) => Some(Self::Failed(err.to_string())),
            _ => None,
        }
    }

    /// Maps the error ractor returns when an actor fails to start.
    #[must_use]
    pub fn from_spawn_err(err: &SpawnErr) -> Self {
        match err {
            SpawnErr::StartupFailed(inner) => Self::StartFailed(inner.to_string()),
            other => Self::StartFailed(other.to_string()),
        }
    }

    /// `true` for [`ExitReason::Normal`] and [`ExitReason::Shutdown`].
    #[must_use]
    pub fn is_normal(&self) -> bool {
        match self {
            Self::Normal | Self::Shutdown(_) => true,
            Self::Killed | Self::Failed(_) | Self::Stopped(_) | Self::StartFailed(_) => false,
        }
    }

    /// `true` for every reason that is not [normal](Self::is_normal).
    #[must_use]
    pub fn is_abnormal(&self) -> bool {
        !self.is_normal()
    }

    /// The process exit code for an application whose root supervisor ended
    /// this way: success after a normal exit, failure otherwise (a root
    /// that gave up after exceeding its restart intensity, or was killed),
    /// so that a service manager sees the crash and can restart the process.
    ///
    /// ```
    /// use std::process::ExitCode;
    /// use ractor_otp::ExitReason;
    ///
    /// assert_eq!(ExitReason::Shutdown(None).exit_code(), ExitCode::SUCCESS);
    /// assert_eq!(ExitReason::Failed("gave up".into()).exit_code(), ExitCode::FAILURE);
    /// ```
    #[must_use]
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.is_normal() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown(None) => f.write_str("shutdown"),
            Self::Shutdown(Some(why)) => write!(f, "shutdown: {why}"),
            Self::Killed => f.write_str("killed"),
            Self::Failed(msg) => write!(f, "failed: {msg}"),
            Self::Stopped(reason) => write!(f, "stopped: {reason}"),
            Self::StartFailed(msg) => write!(f, "failed to start: {msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_as_documented() {
        let table: &[(Option<&str>, ExitReason, bool)] = &[
            (None, ExitReason::Normal, true),
            (Some("shutdown"), ExitReason::Shutdown(None), true),
            (
                Some("shutdown: upgrade"),
                ExitReason::Shutdown(Some("upgrade".into())),
                true,
            ),
            (
                Some("Drained"),
                ExitReason::Shutdown(Some("drained".into())),
                true,
            ),
            (Some("killed"), ExitReason::Killed, false),
            (Some("actor_task_cancelled"), ExitReason::Killed, false),
            (Some("bye"), ExitReason::Stopped("bye".into()), false),
            (
                Some("shutdownx"),
                ExitReason::Stopped("shutdownx".into()),
                false,
            ),
        ];
        for (input, expected, normal) in table {
            let got = ExitReason::from_stop_reason(*input);
            assert_eq!(&got, expected, "mapping of {input:?}");
            assert_eq!(got.is_normal(), *normal, "normality of {input:?}");
        }
    }

    #[test]
    fn spawn_errors_are_start_failures() {
        let err = SpawnErr::StartupFailed("no database".into());
        assert_eq!(
            ExitReason::from_spawn_err(&err),
            ExitReason::StartFailed("no database".into())
        );
    }

    #[test]
    fn display_reads_like_erlang() {
        assert_eq!(
            ExitReason::Shutdown(Some("x".into())).to_string(),
            "shutdown: x"
        );
        assert_eq!(
            ExitReason::Failed("boom".into()).to_string(),
            "failed: boom"
        );
    }
}
