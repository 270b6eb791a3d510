//! Stopping children: one under its `Shutdown`, or all of them in reverse
//! start order (static) or in parallel (dynamic).

use ractor::ActorCell;

use super::{Mode, State};
use crate::exit::SHUTDOWN_REASON;
use crate::supervisor::children::ChildState;
use crate::supervisor::spec::Shutdown;

impl State {
    /// Stops every child: in reverse start order one at a time (static), or
    /// all at once (dynamic), each under its own `Shutdown`.
    pub(super) async fn shutdown_children(&mut self) {
        if let Some(task) = self.pending.take() {
            task.abort();
        }
        self.op = None;
        self.queued.clear();
        let mut to_stop = Vec::new();
        for seq in self.children.seqs().into_iter().rev() {
            if let Some(child) = self.children.get(seq) {
                if let Some(cell) = child.cell() {
                    to_stop.push((child.spec.id.clone(), cell.clone(), child.spec.shutdown));
                }
            }
            self.children.set_state(seq, ChildState::Stopped);
        }
        match self.mode {
            Mode::Static => {
                for (id, cell, shutdown) in to_stop {
                    stop_child(&cell, shutdown).await;
                    tracing::debug!(supervisor = %self.label, child = %id, "child shut down");
                }
            }
            Mode::Dynamic { .. } => {
                let mut set = tokio::task::JoinSet::new();
                for (_, cell, shutdown) in to_stop {
                    set.spawn(async move { stop_child(&cell, shutdown).await });
                }
                while set.join_next().await.is_some() {}
            }
        }
    }
}

/// Stops one incarnation under `shutdown` and waits until it has ended.
pub(crate) async fn stop_child(cell: &ActorCell, shutdown: Shutdown) {
    match shutdown {
        Shutdown::Brutal => {
            cell.kill();
            let _ = cell.wait(None).await;
        }
        Shutdown::Timeout(limit) => {
            cell.stop(Some(SHUTDOWN_REASON.to_string()));
            if cell.wait(Some(limit)).await.is_err() {
                tracing::warn!(actor = %cell.get_id(), timeout_ms = limit.as_millis() as u64, "child did not stop in time; killing it");
                cell.kill();
                let _ = cell.wait(None).await;
            }
        }
        Shutdown::Infinity => {
            cell.stop(Some(SHUTDOWN_REASON.to_string()));
            let _ = cell.wait(None).await;
        }
    }
}
