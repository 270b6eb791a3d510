//! The supervisor's child table: children in start order, found by id or by
//! the `ActorId` of their running incarnation.
//!
//! Children are keyed by a sequence number that grows with every child
//! added, so "start order" is the key order and removing a child never
//! shifts the others. Every lookup is O(log n) or O(1), which keeps a
//! dynamic supervisor with tens of thousands of children cheap.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use ractor::{ActorCell, ActorId};

use crate::exit::ExitReason;
use crate::supervisor::child_ref::ErasedSlot;
use crate::supervisor::spec::{ChildSpec, ChildStatus};

/// Where one child is in its life.
pub(crate) enum ChildState {
    /// Running as this incarnation.
    Running(ActorCell),
    /// Asked to stop as part of a group restart; its exit is expected and
    /// not counted.
    Stopping(ActorCell),
    /// Ended; will be started again by the current or a queued restart.
    Restarting,
    /// Not running and not to be restarted.
    Stopped,
}

/// One supervised child.
pub(crate) struct Child {
    pub(crate) spec: ChildSpec,
    /// Published to `ChildRef`s; set by the start function, cleared on exit.
    pub(crate) slot: Option<Arc<dyn ErasedSlot>>,
    pub(crate) state: ChildState,
    /// Backoff delays already waited in the current run of failures; back
    /// to 0 after a run of at least the backoff's reset interval.
    pub(crate) attempt: u32,
    /// When the current (or last) incarnation started.
    pub(crate) started_at: Option<Instant>,
    /// The id of the last incarnation that ran.
    last_actor: Option<ActorId>,
    /// Its key in `Children::restarting_from`, while restarting.
    restarting_from: Option<ActorId>,
    /// Incarnations started after the first (shown by the observer).
    pub(crate) restarts: u64,
    /// How the last incarnation ended (shown by the observer).
    pub(crate) last_exit: Option<ExitReason>,
}

impl Child {
    pub(crate) fn status(&self) -> ChildStatus {
        match self.state {
            ChildState::Running(_) => ChildStatus::Running,
            ChildState::Stopping(_) | ChildState::Restarting => ChildStatus::Restarting,
            ChildState::Stopped => ChildStatus::Stopped,
        }
    }

    /// The incarnation that is running or stopping, if any.
    pub(crate) fn cell(&self) -> Option<&ActorCell> {
        match &self.state {
            ChildState::Running(cell) | ChildState::Stopping(cell) => Some(cell),
            ChildState::Restarting | ChildState::Stopped => None,
        }
    }
}

/// Children in start order with two indexes.
#[derive(Default)]
pub(crate) struct Children {
    /// Invariant: every child of the supervisor, keyed by sequence number.
    order: BTreeMap<u64, Child>,
    /// Child id → sequence number; only when ids are unique (static mode).
    by_id: HashMap<String, u64>,
    /// `ActorId` of a running or stopping incarnation → sequence number.
    /// Invariant: an entry exists exactly while the child's state holds
    /// that cell, so a late exit event of an old incarnation finds nothing.
    by_actor: HashMap<ActorId, u64>,
    /// `ActorId` of the last incarnation of a child that is `Restarting` →
    /// sequence number (dynamic supervisors only). Only for finding the child by the handle its caller
    /// holds (a dynamic child is known by its incarnation, as OTP's
    /// `{restarting, Pid}`), never for exit events: the exit of that
    /// incarnation has already been handled.
    /// Invariant: an entry exists exactly while the child is `Restarting`.
    restarting_from: HashMap<ActorId, u64>,
    next_seq: u64,
    unique_ids: bool,
    /// Children in state `Running`, kept in step by `set_state` and
    /// `remove` (the children-running gauge reads it on every message).
    running: usize,
}

impl Children {
    pub(crate) fn new(unique_ids: bool) -> Self {
        Self {
            unique_ids,
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Children running now.
    pub(crate) fn running(&self) -> usize {
        self.running
    }

    /// Adds a child at the end of the start order, in state `Stopped`, with
    /// the given slot (none for a dynamic child: nothing reads it).
    pub(crate) fn push(&mut self, spec: ChildSpec, slot: Option<Arc<dyn ErasedSlot>>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.unique_ids {
            self.by_id.insert(spec.id.clone(), seq);
        }
        self.order.insert(
            seq,
            Child {
                spec,
                slot,
                state: ChildState::Stopped,
                attempt: 0,
                started_at: None,
                last_actor: None,
                restarting_from: None,
                restarts: 0,
                last_exit: None,
            },
        );
        seq
    }

    pub(crate) fn remove(&mut self, seq: u64) -> Option<Child> {
        let child = self.order.remove(&seq)?;
        if matches!(child.state, ChildState::Running(_)) {
            self.running -= 1;
        }
        if let Some(cell) = child.cell() {
            self.by_actor.remove(&cell.get_id());
        }
        if let Some(last) = child.restarting_from {
            self.restarting_from.remove(&last);
        }
        if self.unique_ids {
            self.by_id.remove(&child.spec.id);
        }
        if let Some(slot) = &child.slot {
            slot.clear();
        }
        Some(child)
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&Child> {
        self.order.get(&seq)
    }

    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut Child> {
        self.order.get_mut(&seq)
    }

    pub(crate) fn seq_of_id(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).copied()
    }

    /// The child whose running or stopping incarnation is `actor`.
    pub(crate) fn seq_of_actor(&self, actor: ActorId) -> Option<u64> {
        self.by_actor.get(&actor).copied()
    }

    /// As [`seq_of_actor`](Self::seq_of_actor), and also the child that is
    /// restarting after `actor` (its last incarnation) ended: what a caller
    /// holding that incarnation means by it.
    pub(crate) fn seq_of_handle(&self, actor: ActorId) -> Option<u64> {
        self.seq_of_actor(actor)
            .or_else(|| self.restarting_from.get(&actor).copied())
    }

    /// Sets a child's state, keeping the actor index in step.
    pub(crate) fn set_state(&mut self, seq: u64, state: ChildState) {
        let Some(child) = self.order.get_mut(&seq) else {
            return;
        };
        let was_running = matches!(child.state, ChildState::Running(_));
        let now_running = matches!(state, ChildState::Running(_));
        self.running = self.running + usize::from(now_running) - usize::from(was_running);
        let last = child.cell().map(ActorCell::get_id);
        if let Some(old) = last {
            self.by_actor.remove(&old);
        }
        if let Some(previous) = child.restarting_from.take() {
            self.restarting_from.remove(&previous);
        }
        // Only a dynamic supervisor finds children by a past incarnation.
        if !self.unique_ids && matches!(state, ChildState::Restarting) {
            // Keep the handle of the incarnation that ended (or, restarting
            // again after a failed start, the one before it).
            if let Some(id) = last.or(child.last_actor) {
                self.restarting_from.insert(id, seq);
                child.restarting_from = Some(id);
            }
        }
        if let Some(id) = last.filter(|_| !self.unique_ids) {
            child.last_actor = Some(id);
        }
        match &state {
            ChildState::Running(cell) | ChildState::Stopping(cell) => {
                self.by_actor.insert(cell.get_id(), seq);
            }
            ChildState::Restarting | ChildState::Stopped => {
                if let Some(slot) = &child.slot {
                    slot.clear();
                }
            }
        }
        child.state = state;
    }

    /// Sequence numbers in start order.
    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.order.keys().copied().collect()
    }

    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &Child)> {
        self.order.iter().map(|(seq, child)| (*seq, child))
    }

    /// Position of a child in start order.
    pub(crate) fn position(&self, seq: u64) -> Option<usize> {
        self.order
            .contains_key(&seq)
            .then(|| self.order.range(..seq).count())
    }
}
