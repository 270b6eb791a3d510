//! The scope a [`Checkpointed`](super::Checkpointed) actor handles a message
//! in: replies held until the checkpoint is saved, and [`request`].

use std::cell::{Cell, RefCell};
use std::future::Future;

use super::CheckpointError;

/// An answer given inside a held scope, waiting for the checkpoint.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) trait HeldReply: Send {
    /// Sends the answer (`Ok`) or refuses the call because the state it
    /// reports was not saved (`Err`).
    fn release(self: Box<Self>, saved: Result<(), &CheckpointError>);
}

struct Scope {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    hold: bool,
    held: RefCell<Vec<Box<dyn HeldReply>>>,
    requested: Cell<bool>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Asks for a checkpoint after the message being handled (the
/// [`CheckpointPolicy::OnRequest`](super::CheckpointPolicy::OnRequest)
/// policy, though every policy honours it). Returns `false`, and does
/// nothing, outside the handler of a [`Checkpointed`](super::Checkpointed)
/// actor.
pub fn request() -> bool {
    SCOPE.try_with(|s| s.requested.set(true)).is_ok()
}

/// Holds `reply` until the checkpoint of the message being handled is
/// saved, when the handler runs in a holding scope; otherwise hands it back
/// to be sent at once.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn defer_reply<R: HeldReply + 'static>(reply: R) -> Result<(), R> {
    let mut reply = Some(reply);
    let _ = SCOPE.try_with(|s| {
        if s.hold {
            if let Some(r) = reply.take() {
                s.held.borrow_mut().push(Box::new(r));
            }
        }
    });
    match reply {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

/// What a handler left behind: the replies it held and whether it asked
/// for a checkpoint.
pub(crate) struct Held {
    pub(crate) replies: Vec<Box<dyn HeldReply>>,
    pub(crate) requested: bool,
}

impl Held {
    /// Releases every held reply with the save's outcome.
    pub(crate) fn release(self, saved: Result<(), &CheckpointError>) {
        for r in self.replies {
            r.release(saved);
        }
    }
}

/// Runs `fut` in a scope; `hold` says whether replies wait for the save.
pub(crate) async fn scoped<F: Future>(hold: bool, fut: F) -> (F::Output, Held) {
    let scope = Scope {
        hold,
        held: RefCell::new(Vec::new()),
        requested: Cell::new(false),
    };
    SCOPE
        .scope(scope, async move {
            let out = fut.await;
            let held = SCOPE.with(|s| Held {
                replies: std::mem::take(&mut *s.held.borrow_mut()),
                requested: s.requested.get(),
            });
            (out, held)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Probe(Arc<Mutex<Vec<bool>>>);
    impl HeldReply for Probe {
        fn release(self: Box<Self>, saved: Result<(), &CheckpointError>) {
            lock!(self.0.lock()).push(saved.is_ok());
        }
    }

    #[tokio::test]
    async fn replies_wait_only_in_a_holding_scope() {
        let log = Arc::new(Mutex::new(Vec::new()));
        assert!(defer_reply(Probe(log.clone())).is_err());
        let (_, held) = scoped(true, async {
            assert!(defer_reply(Probe(log.clone())).is_ok());
            assert!(request());
        })
        .await;
        assert!(held.requested);
        assert_eq!(held.replies.len(), 1);
        held.release(Ok(()));
        assert_eq!(*lock!(log.lock()), vec![true]);
        let (_, held) = scoped(false, async {
            assert!(defer_reply(Probe(log.clone())).is_err());
        })
        .await;
        assert!(!held.requested && held.replies.is_empty());
        assert!(!request());
    }
}
