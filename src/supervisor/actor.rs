//! The supervisor actor behind [`Supervisor`](crate::Supervisor) and
//! [`DynamicSupervisor`](crate::DynamicSupervisor).
//!
//! One actor serves both: a dynamic supervisor is a one-for-one supervisor
//! whose children are added at run time, may share ids, are removed when they
//! end for good, and stop in parallel. The file follows the lifecycle, as
//! OTP's `supervisor.erl`: spawn, init, calls, exits and restarts, shutdown.
//! This file holds the types, spawning, init and dispatch; the lifecycle
//! continues in `actor/calls.rs` (administration), `actor/restart.rs`
//! (exits, restarts, backoff, escalation) and `actor/shutdown.rs`.
//!
//! Restarts never block the supervisor. Stopping the siblings of a group
//! restart runs in a task that reports back with `GroupStopped`; a backoff
//! delay or the retry after a failed start comes back as `RestartDue`. In
//! between, the supervisor answers calls and reports those children as
//! restarting. Starting one incarnation (its `pre_start`) runs inline, as in
//! OTP, so an exit event can never arrive before the supervisor knows the
//! incarnation it is about.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tokio::task::JoinHandle;
use tracing::Instrument;

mod calls;
mod restart;
mod shutdown;

use crate::exit::{ExitReason, SHUTDOWN_REASON};
use crate::supervisor::child_ref::ErasedSlot;
use crate::supervisor::children::{ChildState, Children};
use crate::supervisor::error::SupervisorError;
use crate::supervisor::handle::{ChildCounts, ChildInfo, SupervisorRef};
use crate::supervisor::intensity::RestartWindow;
use crate::supervisor::spec::{
    AutoShutdown, ChildKind, ChildSpec, GroupStop, OnStop, SupervisorSpec,
};
use crate::supervisor::strategy::Strategy;

/// Child id → its slot, shared with every `SupervisorRef` so that
/// `SupervisorRef::child` needs no round trip. A nested supervisor keeps the
/// same map across its restarts, and a restarted child reuses its slot, so
/// `ChildRef`s taken below a supervisor survive that supervisor's restarts.
pub(crate) type SharedSlots = Arc<RwLock<std::collections::HashMap<String, SlotEntry>>>;

/// One entry of [`SharedSlots`].
#[derive(Clone)]
pub(crate) struct SlotEntry {
    pub(crate) slot: Arc<dyn ErasedSlot>,
    pub(crate) nested: Nested,
}

/// What kind of actor a child is, as far as handles to it go.
#[derive(Clone)]
pub(crate) enum Nested {
    /// A worker (or anything that is not one of our supervisors).
    Worker,
    /// A static supervisor, with the slot map it keeps across restarts.
    Static(SharedSlots),
    /// A dynamic supervisor.
    Dynamic,
}

/// Static (ordered, unique ids, fixed strategy) or dynamic (Elixir's
/// `DynamicSupervisor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Static,
    Dynamic { max_children: Option<usize> },
}

/// Which child a `TerminateChild` is about.
pub(crate) enum ChildKey {
    Id(String),
    Actor(ActorCell),
}

/// Messages of the supervisor actor: the calls of `SupervisorRef` and
/// `DynamicSupervisorRef`, and the supervisor's notes to itself.
pub(crate) enum SupervisorMsg {
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    CountChildren(RpcReplyPort<ChildCounts>),
    Describe(RpcReplyPort<String>),
    /// The observer's view of this supervisor and its children.
    #[cfg_attr(not(feature = "observer"), allow(dead_code))]
    Inspect(RpcReplyPort<crate::supervisor::snapshot::TreeSnapshot>),
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    StartChildren(
        Vec<ChildSpec>,
        RpcReplyPort<Result<Vec<ActorCell>, SupervisorError>>,
    ),
    TerminateChild(ChildKey, RpcReplyPort<Result<(), SupervisorError>>),
    RestartChild(String, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    DeleteChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// The stopping phase of restart `token` is over.
    GroupStopped {
        token: u64,
    },
    /// Restart `token` may (re)start its next child: backoff elapsed or a
    /// failed start is retried.
    RestartDue {
        token: u64,
    },
    /// A child that restarts itself in place (a pool worker) exceeded the
    /// restart intensity: stop everything and fail with this error.
    Escalate(SupervisorError),
}

/// Everything needed to start a supervisor.
pub(crate) struct Args {
    pub(crate) strategy: Strategy,
    pub(crate) group_stop: GroupStop,
    pub(crate) window: RestartWindow,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) mode: Mode,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) slots: SharedSlots,
    pub(crate) on_stop: Option<OnStop>,
    /// Where the supervisor sits in its tree (`root/storage`), when it is
    /// started as a child of one of ours; set by [`spawn_actor`].
    pub(crate) path: Option<String>,
}

tokio::task_local! {
    /// Set by a supervisor around the start of one child: that supervisor's
    /// actor id and the child's path in the tree. A supervisor spawned by
    /// that start, linked to that same supervisor (a nested supervisor or a
    /// pool), takes the path as its name in logs and `render_tree`. The
    /// parent check keeps an unrelated supervisor that a worker spawns in
    /// its `pre_start` from borrowing the worker's path.
    static CHILD_PATH: (ActorId, Arc<str>);
}

/// The supervisor actor (stateless; all state is in [`State`]).
pub(crate) struct SupervisorActor;

/// A restart in progress: the group stops, (optionally) waits, then starts
/// in start order.
struct RestartOp {
    token: u64,
    /// The child whose exit caused the restart; its backoff applies.
    cause: u64,
    /// Siblings asked to stop; each ends as `Restarting`, or is dropped if
    /// temporary.
    stopping: Vec<u64>,
    /// Children to start, in start order.
    group: Vec<u64>,
    /// Index into `group` of the next child to start.
    next: usize,
    /// Children cut from `group` by `terminate_child` (usually none): a
    /// sibling among them that is still stopping ends as stopped.
    dropped: Vec<u64>,
}

/// Why the supervisor must stop after handling a message.
enum Exit {
    /// Intensity exceeded: stop the children, exit with this failure.
    Escalate(SupervisorError),
    /// Significant children ended: stop the children, exit with `shutdown`.
    AutoShutdown,
}

pub(crate) struct State {
    /// Name (or actor id) used in logs.
    label: String,
    myself: ActorRef<SupervisorMsg>,
    strategy: Strategy,
    group_stop: GroupStop,
    auto_shutdown: AutoShutdown,
    mode: Mode,
    window: RestartWindow,
    children: Children,
    slots: SharedSlots,
    /// Ids of the children of the spec (static mode). A child added at run
    /// time is not among them: it does not survive a restart of this
    /// supervisor, so its entry in `slots` goes when this incarnation stops.
    spec_ids: HashSet<String>,
    /// The restart in progress; at most one at a time.
    op: Option<RestartOp>,
    /// Children that ended and await a restart while `op` was busy, oldest
    /// first. Their restart was already counted.
    queued: VecDeque<u64>,
    next_token: u64,
    /// The stopper or timer task of `op`; aborted when the supervisor stops.
    pending: Option<JoinHandle<()>>,
    /// Run after the children have stopped for good.
    on_stop: Option<OnStop>,
    /// The span of every event of this supervisor, built once.
    span: tracing::Span,
    /// This supervisor's metrics (the children-running gauge is set after
    /// every message).
    metrics: crate::metrics::SupervisorMetrics,
}

// ---------------------------------------------------------------------------
// Spawning

/// Spawns a static supervisor (validated spec).
pub(crate) async fn spawn_static(
    name: Option<String>,
    spec: SupervisorSpec,
    parent: Option<ActorCell>,
    slots: SharedSlots,
) -> Result<(SupervisorRef, ractor::concurrency::JoinHandle<()>), SpawnErr> {
    spec.validate()
        .map_err(|e| SpawnErr::StartupFailed(Box::new(e)))?;
    let args = Args {
        strategy: spec.strategy,
        group_stop: spec.group_stop,
        window: RestartWindow::new(spec.max_restarts, spec.period),
        auto_shutdown: spec.auto_shutdown,
        mode: Mode::Static,
        children: spec.children,
        slots: slots.clone(),
        on_stop: spec.on_stop,
        path: None,
    };
    let (actor, join) = spawn_actor(name, args, parent).await?;
    Ok((SupervisorRef::new(actor, slots), join))
}

pub(crate) async fn spawn_actor(
    name: Option<String>,
    mut args: Args,
    parent: Option<ActorCell>,
) -> Result<(ActorRef<SupervisorMsg>, ractor::concurrency::JoinHandle<()>), SpawnErr> {
    args.path = parent.as_ref().and_then(child_path);
    match parent {
        Some(parent) => SupervisorActor::spawn_linked(name, SupervisorActor, args, parent).await,
        None => SupervisorActor::spawn(name, SupervisorActor, args).await,
    }
}

/// The path in the tree (`root/storage/cache`) of the child that supervisor
/// `parent` is starting right now, when called from that start (a nested
/// supervisor's or a pool's start function, or a `pre_start` it runs);
/// `None` anywhere else. Supervisors name themselves by it; a pool can use
/// it to name its own logs.
pub(crate) fn child_path(parent: &ActorCell) -> Option<String> {
    CHILD_PATH
        .try_with(|(sup, path)| (*sup == parent.get_id()).then(|| path.to_string()))
        .ok()
        .flatten()
}

/// Turns a failed supervisor spawn back into the error that caused it.
pub(crate) fn spawn_error(err: SpawnErr) -> SupervisorError {
    match err {
        SpawnErr::StartupFailed(inner) => match inner.downcast::<SupervisorError>() {
            Ok(sup) => *sup,
            Err(other) => SupervisorError::Spawn(other.to_string()),
        },
        other => SupervisorError::Spawn(other.to_string()),
    }
}

/// The message of a start error, without ractor's wrapping.
fn start_error_text(err: &SpawnErr) -> String {
    match ExitReason::from_spawn_err(err) {
        ExitReason::StartFailed(text) => text,
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Init

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        mut args: Args,
    ) -> Result<State, ActorProcessingErr> {
        // Named by its path in the tree, else by its registered name.
        let label = args
            .path
            .take()
            .or_else(|| myself.get_name())
            .unwrap_or_else(|| format!("supervisor-{}", myself.get_id()));
        let span = tracing::info_span!("supervisor", name = %label);
        let mut state = State {
            span,
            metrics: crate::metrics::SupervisorMetrics::new(&label),
            label,
            myself,
            strategy: args.strategy,
            group_stop: args.group_stop,
            auto_shutdown: args.auto_shutdown,
            mode: args.mode,
            window: args.window,
            children: Children::new(args.mode == Mode::Static),
            slots: args.slots,
            spec_ids: match args.mode {
                Mode::Static => args.children.iter().map(|c| c.id.clone()).collect(),
                Mode::Dynamic { .. } => HashSet::new(),
            },
            on_stop: args.on_stop,
            op: None,
            queued: VecDeque::new(),
            next_token: 0,
            pending: None,
        };
        // Handles are only handed out for children this supervisor has: an
        // earlier incarnation's run-time children are gone (if it was killed
        // it could not forget them itself).
        state.forget_slots_outside_spec();
        // Start in spec order, each fully started before the next; on a
        // failure stop the started ones in reverse order and refuse to start.
        for spec in args.children {
            let id = spec.id.clone();
            let seq = state.add_child(spec);
            if let Err(err) = state.start_incarnation(seq).await {
                tracing::error!(supervisor = %state.label, child = %id, reason = %start_error_text(&err), "child failed to start; stopping the started ones");
                state.shutdown_children().await;
                return Err(Box::new(SupervisorError::FailedToStart {
                    id,
                    reason: start_error_text(&err),
                }));
            }
        }
        tracing::debug!(supervisor = %state.label, children = state.children.len(), "supervisor started");
        state.metrics.running(state.children.running());
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span();
        async move {
            let outcome = match message {
                SupervisorMsg::WhichChildren(port) => {
                    let _ = port.send(state.which_children());
                    Ok(())
                }
                SupervisorMsg::CountChildren(port) => {
                    let _ = port.send(state.count_children());
                    Ok(())
                }
                SupervisorMsg::Describe(port) => {
                    let _ = port.send(state.describe());
                    Ok(())
                }
                SupervisorMsg::Inspect(port) => {
                    let _ = port.send(state.inspect());
                    Ok(())
                }
                SupervisorMsg::StartChild(spec, port) => {
                    let _ = port.send(state.start_child(spec).await);
                    Ok(())
                }
                SupervisorMsg::StartChildren(specs, port) => {
                    let _ = port.send(state.start_children(specs).await);
                    Ok(())
                }
                SupervisorMsg::TerminateChild(key, port) => {
                    let _ = port.send(state.terminate_child(key).await);
                    Ok(())
                }
                SupervisorMsg::RestartChild(id, port) => {
                    let _ = port.send(state.restart_child(&id).await);
                    Ok(())
                }
                SupervisorMsg::DeleteChild(id, port) => {
                    let _ = port.send(state.delete_child(&id));
                    Ok(())
                }
                SupervisorMsg::GroupStopped { token } => state.group_stopped(token).await,
                SupervisorMsg::RestartDue { token } => state.restart_due(token).await,
                SupervisorMsg::Escalate(err) => Err(Exit::Escalate(err)),
            };
            state.finish(outcome).await
        }
        .instrument(span)
        .await
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(reason) = ExitReason::from_event(&event) else {
            return Ok(());
        };
        let Some(cell) = event.actor_cell() else {
            return Ok(());
        };
        state.note_exit(cell, &reason);
        let span = state.span();
        async move {
            let outcome = state.child_exited(cell, reason).await;
            state.finish(outcome).await
        }
        .instrument(span)
        .await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        state.shutdown_children().await;
        tracing::debug!(supervisor = %state.label, "supervisor stopped");
        Ok(())
    }
}

impl Drop for State {
    /// A supervisor that is killed never reaches `post_stop`; its on-stop
    /// hook (the pool reporting what it still held) runs here instead.
    fn drop(&mut self) {
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

impl State {
    /// The span every event of this supervisor is recorded in.
    fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Acts on an [`Exit`]: stops the children and makes the actor end.
    async fn finish(&mut self, outcome: Result<(), Exit>) -> Result<(), ActorProcessingErr> {
        self.metrics.running(self.children.running());
        match outcome {
            Ok(()) => Ok(()),
            Err(Exit::Escalate(err)) => {
                tracing::error!(supervisor = %self.label, error = %err, "restart intensity exceeded; stopping all children and escalating");
                let child = match &err {
                    SupervisorError::IntensityExceeded { child, .. } => child.as_str(),
                    _ => "",
                };
                self.metrics.intensity_exceeded(child, &err);
                self.shutdown_children().await;
                Err(Box::new(err))
            }
            Err(Exit::AutoShutdown) => {
                tracing::info!(supervisor = %self.label, auto_shutdown = ?self.auto_shutdown, "significant children ended; shutting down");
                // post_stop stops the remaining children in order.
                self.myself.stop(Some(SHUTDOWN_REASON.to_string()));
                Ok(())
            }
        }
    }

    // -----------------------------------------------------------------------
    // -----------------------------------------------------------------------
    // Starting children

    fn add_child(&mut self, spec: ChildSpec) -> u64 {
        if self.mode != Mode::Static {
            return self.children.push(spec, None);
        }
        let mut slots = lock!(self.slots.write());
        // Reuse the slot that an earlier incarnation of this supervisor
        // registered for this id when it carries the same type, so that
        // existing ChildRefs keep working across the supervisor's restarts.
        // (delete_child removes the entry: a re-added id is a new child, as
        // in OTP, and handles to the deleted one stay empty.)
        let fresh = (spec.new_slot)();
        let slot = match slots.get(&spec.id) {
            Some(entry) if entry.slot.message_type() == fresh.message_type() => entry.slot.clone(),
            _ => fresh,
        };
        slots.insert(
            spec.id.clone(),
            SlotEntry {
                slot: slot.clone(),
                nested: spec.nested.clone(),
            },
        );
        drop(slots);
        self.children.push(spec, Some(slot))
    }

    /// Removes (and empties) every entry of `slots` that is not a child of
    /// the spec (static mode), so that no handle is handed out for a child
    /// that is gone, and a child added later under the same id gets a fresh
    /// slot that old handles do not reach.
    pub(super) fn forget_slots_outside_spec(&mut self) {
        if self.mode != Mode::Static {
            return;
        }
        let mut slots = lock!(self.slots.write());
        slots.retain(|id, entry| {
            let keep = self.spec_ids.contains(id);
            if !keep {
                entry.slot.clear();
            }
            keep
        });
    }

    fn remove_child(&mut self, seq: u64) {
        if let Some(child) = self.children.remove(seq) {
            self.metrics.forget(&child.spec.id);
            if self.mode == Mode::Static {
                let mut slots = lock!(self.slots.write());
                slots.remove(&child.spec.id);
            }
        }
    }

    /// Starts one incarnation of child `seq` and records it as running.
    async fn start_incarnation(&mut self, seq: u64) -> Result<ActorCell, SpawnErr> {
        let Some(child) = self.children.get(seq) else {
            return Err(SpawnErr::StartupFailed("the child was removed".into()));
        };
        let start = child.spec.start.clone();
        let slot = child.slot.clone();
        let starting = start(self.myself.get_cell(), slot);
        let cell = match child.spec.kind {
            // A nested supervisor (or pool) learns its path from this scope.
            ChildKind::Supervisor => {
                let path: Arc<str> = format!("{}/{}", self.label, child.spec.id).into();
                CHILD_PATH
                    .scope((self.myself.get_id(), path), starting)
                    .await?
            }
            ChildKind::Worker => starting.await?,
        };
        tracing::debug!(supervisor = %self.label, child = %self.child_id(seq), actor = %cell.get_id(), "child started");
        if let Some(child) = self.children.get_mut(seq) {
            if child.started_at.replace(now()).is_some() {
                child.restarts += 1;
                self.metrics.restarted(&child.spec.id, child.restarts);
            }
        }
        self.children
            .set_state(seq, ChildState::Running(cell.clone()));
        Ok(cell)
    }

    /// Records how a child's incarnation ended, before the restart
    /// decision: its last exit (for the observer), and, unless a group
    /// restart stopped it, the exit metric and event.
    fn note_exit(&mut self, cell: &ActorCell, reason: &ExitReason) {
        let Some(seq) = self.children.seq_of_actor(cell.get_id()) else {
            return;
        };
        let Some(child) = self.children.get_mut(seq) else {
            return;
        };
        child.last_exit = Some(reason.clone());
        if matches!(child.state, ChildState::Running(_)) {
            let is_supervisor = child.spec.kind == ChildKind::Supervisor;
            self.metrics.exited(&child.spec.id, reason, is_supervisor);
        }
    }

    fn child_id(&self, seq: u64) -> String {
        self.children
            .get(seq)
            .map_or_else(|| format!("#{seq}"), |c| c.spec.id.clone())
    }
}
/// The actor layer's clock: tokio's, so tests can pause it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
