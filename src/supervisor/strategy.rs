//! The pure restart decision: whether an ended child is restarted, and which
//! of its siblings stop and restart with it.
//!
//! Two decision tables, each an exhaustive `match` so that a new variant
//! cannot compile until its row is decided.
//!
//! **Restart type × exit reason** ([`should_restart`]):
//!
//! | restart \ exit | normal | shutdown | killed | failed | stopped(other) | start failed |
//! |----------------|--------|----------|--------|--------|----------------|--------------|
//! | `Permanent`    | yes    | yes      | yes    | yes    | yes            | yes          |
//! | `Transient`    | no     | no       | yes    | yes    | yes            | yes          |
//! | `Temporary`    | no     | no       | no     | no     | no             | no           |
//!
//! **Strategy × failed position** ([`affected`]), children in start order:
//!
//! | strategy     | children stopped and restarted           |
//! |--------------|------------------------------------------|
//! | `OneForOne`  | the failed child only                    |
//! | `OneForAll`  | every child                              |
//! | `RestForOne` | the failed child and all started after it |
//!
//! ```
//! use ractor_otp::{ExitReason, Restart, Strategy};
//! use ractor_otp::supervisor::strategy::{affected, should_restart};
//!
//! assert!(should_restart(Restart::Transient, &ExitReason::Killed));
//! assert!(!should_restart(Restart::Transient, &ExitReason::Normal));
//! assert_eq!(affected(Strategy::RestForOne, 1, 4), 1..4);
//! ```

use std::ops::Range;

use crate::exit::ExitReason;
use crate::supervisor::spec::Restart;

/// How a supervisor reacts when one of its children must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Restart only the child that ended.
    OneForOne,
    /// Stop all other children (in reverse start order), then restart all
    /// (in start order).
    OneForAll,
    /// Stop the children started after the one that ended (in reverse
    /// order), then restart it and them (in start order).
    RestForOne,
}

/// Whether a child with restart type `restart` is restarted after ending with
/// `reason`. See the module's table.
#[must_use]
pub fn should_restart(restart: Restart, reason: &ExitReason) -> bool {
    match restart {
        Restart::Permanent => true,
        Restart::Temporary => false,
        Restart::Transient => match reason {
            ExitReason::Normal | ExitReason::Shutdown(_) => false,
            ExitReason::Killed
            | ExitReason::Failed(_)
            | ExitReason::Stopped(_)
            | ExitReason::StartFailed(_) => true,
        },
    }
}

/// The positions (in start order, out of `len` children) that stop and
/// restart when the child at `failed` must be restarted. An out-of-range
/// `failed` affects nothing.
#[must_use]
pub fn affected(strategy: Strategy, failed: usize, len: usize) -> Range<usize> {
    if failed >= len {
        return failed..failed;
    }
    match strategy {
        Strategy::OneForOne => failed..failed + 1,
        Strategy::OneForAll => 0..len,
        Strategy::RestForOne => failed..len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_matrix() {
        let reasons = [
            ExitReason::Normal,
            ExitReason::Shutdown(None),
            ExitReason::Shutdown(Some("why".into())),
            ExitReason::Killed,
            ExitReason::Failed("boom".into()),
            ExitReason::Stopped("bye".into()),
            ExitReason::StartFailed("no".into()),
        ];
        let table = [
            (
                Restart::Permanent,
                [true, true, true, true, true, true, true],
            ),
            (
                Restart::Transient,
                [false, false, false, true, true, true, true],
            ),
            (Restart::Temporary, [false; 7]),
        ];
        for (restart, expected) in table {
            for (reason, want) in reasons.iter().zip(expected) {
                assert_eq!(
                    should_restart(restart, reason),
                    want,
                    "{restart:?} after {reason}"
                );
            }
        }
    }

    #[test]
    fn affected_table() {
        let table = [
            (Strategy::OneForOne, 0, 3, 0..1),
            (Strategy::OneForOne, 2, 3, 2..3),
            (Strategy::OneForAll, 1, 3, 0..3),
            (Strategy::OneForAll, 0, 1, 0..1),
            (Strategy::RestForOne, 0, 3, 0..3),
            (Strategy::RestForOne, 1, 3, 1..3),
            (Strategy::RestForOne, 2, 3, 2..3),
            (Strategy::OneForAll, 3, 3, 3..3),
            (Strategy::OneForOne, 9, 0, 9..9),
        ];
        for (strategy, failed, len, expected) in table {
            assert_eq!(
                affected(strategy, failed, len),
                expected,
                "{strategy:?} at {failed} of {len}"
            );
        }
    }
}
