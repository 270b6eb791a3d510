//! Stopping children: one under its `Shutdown`, or all of them in reverse
//! start order (static) or in parallel (dynamic).

use ractor::ActorCell;

use super::{Mode, State};
use crate::exit::SHUTDOWN_REASON;
use crate::supervisor::children::{ChildState, Children};
use crate::supervisor::spec::{Shutdown, StopPolicy};

impl State {
    /// Stops every child: in reverse start order one at a time (static), or
    /// all at once (dynamic), each under its own `Shutdown`.
    pub(super) async fn shutdown_children(&mut self) {
        if let Some(task) = self.pending.take() {
            task.abort();
        }
        self.op = None;
        self.queued.clear();
        match self.mode {
            Mode::Static => {
                for seq in self.children.seqs().into_iter().rev() {
                    let Some(child) = self.children.get(seq) else {
                        continue;
                    };
                    let stopping = child
                        .cell()
                        .cloned()
                        .map(|cell| (cell, child.spec.stop_policy()));
                    // Forget the incarnation first: its exit event is stale.
                    self.children.set_state(seq, ChildState::Stopped);
                    if let Some((cell, policy)) = stopping {
                        stop_child(&cell, policy).await;
                        tracing::debug!(supervisor = %self.label, child = %self.children.get(seq).map_or("", |c| c.spec.id.as_str()), "child shut down");
                    }
                }
                self.forget_slots_outside_spec();
            }
            Mode::Dynamic { .. } => {
                // All at once; the table is dropped with the supervisor, so
                // take it whole instead of updating it child by child.
                let children = std::mem::replace(&mut self.children, Children::new(false));
                let mut set = tokio::task::JoinSet::new();
                for (_, child) in children.iter() {
                    if let Some(cell) = child.cell() {
                        let (cell, policy) = (cell.clone(), child.spec.stop_policy());
                        set.spawn(async move { stop_child(&cell, policy).await });
                    }
                }
                while set.join_next().await.is_some() {}
            }
        }
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

/// Stops one incarnation under its policy and waits until it has ended.
///
/// A graceful stop is ractor's `stop` (seen between messages; the rest of
/// the mailbox is dropped), or with `drain` ractor's `drain` (the mailbox is
/// processed first, new messages are refused); either way `post_stop` runs.
pub(crate) async fn stop_child(cell: &ActorCell, policy: StopPolicy) {
    let ask = || {
        if policy.drain {
            let _ = cell.drain();
        } else {
            cell.stop(Some(SHUTDOWN_REASON.to_string()));
        }
    };
    match policy.shutdown {
        Shutdown::Brutal => {
            cell.kill();
            let _ = cell.wait(None).await;
        }
        Shutdown::Timeout(limit) => {
            ask();
            if cell.wait(Some(limit)).await.is_err() {
                tracing::warn!(actor = %cell.get_id(), timeout_ms = limit.as_millis() as u64, "child did not stop in time; killing it");
                cell.kill();
                let _ = cell.wait(None).await;
            }
        }
        Shutdown::Infinity => {
            ask();
            let _ = cell.wait(None).await;
        }
    }
}
