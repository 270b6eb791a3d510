//! The supervisor actor behind [`Supervisor`](crate::Supervisor) and
//! [`DynamicSupervisor`](crate::DynamicSupervisor).
//!
//! One actor serves both: a dynamic supervisor is a one-for-one supervisor
//! whose children are added at run time, may share ids, are removed when they
//! end for good, and stop in parallel. The file follows the lifecycle, as
//! OTP's `supervisor.erl`: spawn, init, calls, exits and restarts, shutdown.
//!
//! Restarts never block the supervisor. Stopping the siblings of a group
//! restart runs in a task that reports back with `GroupStopped`; a backoff
//! delay or the retry after a failed start comes back as `RestartDue`. In
//! between, the supervisor answers calls and reports those children as
//! restarting. Starting one incarnation (its `pre_start`) runs inline, as in
//! OTP, so an exit event can never arrive before the supervisor knows the
//! incarnation it is about.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::exit::{ExitReason, SHUTDOWN_REASON};
use crate::supervisor::child_ref::ErasedSlot;
use crate::supervisor::children::{ChildState, Children};
use crate::supervisor::error::SupervisorError;
use crate::supervisor::handle::{ChildCounts, ChildInfo, SupervisorRef};
use crate::supervisor::intensity::RestartWindow;
use crate::supervisor::spec::{
    AutoShutdown, ChildKind, ChildSpec, Restart, Shutdown, SupervisorSpec,
};
use crate::supervisor::strategy::{affected, should_restart, Strategy};

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
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
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
}

/// Everything needed to start a supervisor.
pub(crate) struct Args {
    pub(crate) strategy: Strategy,
    pub(crate) window: RestartWindow,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) mode: Mode,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) slots: SharedSlots,
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
    auto_shutdown: AutoShutdown,
    mode: Mode,
    window: RestartWindow,
    children: Children,
    slots: SharedSlots,
    /// The restart in progress; at most one at a time.
    op: Option<RestartOp>,
    /// Children that ended and await a restart while `op` was busy, oldest
    /// first. Their restart was already counted.
    queued: VecDeque<u64>,
    next_token: u64,
    /// The stopper or timer task of `op`; aborted when the supervisor stops.
    pending: Option<JoinHandle<()>>,
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
        window: RestartWindow::new(spec.max_restarts, spec.period),
        auto_shutdown: spec.auto_shutdown,
        mode: Mode::Static,
        children: spec.children,
        slots: slots.clone(),
    };
    let (actor, join) = spawn_actor(name, args, parent).await?;
    Ok((SupervisorRef::new(actor, slots), join))
}

pub(crate) async fn spawn_actor(
    name: Option<String>,
    args: Args,
    parent: Option<ActorCell>,
) -> Result<(ActorRef<SupervisorMsg>, ractor::concurrency::JoinHandle<()>), SpawnErr> {
    match parent {
        Some(parent) => SupervisorActor::spawn_linked(name, SupervisorActor, args, parent).await,
        None => SupervisorActor::spawn(name, SupervisorActor, args).await,
    }
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
        args: Args,
    ) -> Result<State, ActorProcessingErr> {
        let label = myself
            .get_name()
            .unwrap_or_else(|| format!("supervisor-{}", myself.get_id()));
        let mut state = State {
            label,
            myself,
            strategy: args.strategy,
            auto_shutdown: args.auto_shutdown,
            mode: args.mode,
            window: args.window,
            children: Children::new(args.mode == Mode::Static),
            slots: args.slots,
            op: None,
            queued: VecDeque::new(),
            next_token: 0,
            pending: None,
        };
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
                SupervisorMsg::StartChild(spec, port) => {
                    let _ = port.send(state.start_child(spec).await);
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

impl State {
    /// The span every event of this supervisor is recorded in.
    fn span(&self) -> tracing::Span {
        tracing::info_span!("supervisor", name = %self.label)
    }

    /// Acts on an [`Exit`]: stops the children and makes the actor end.
    async fn finish(&mut self, outcome: Result<(), Exit>) -> Result<(), ActorProcessingErr> {
        match outcome {
            Ok(()) => Ok(()),
            Err(Exit::Escalate(err)) => {
                tracing::error!(supervisor = %self.label, error = %err, "restart intensity exceeded; stopping all children and escalating");
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
    // Calls

    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|(_, child)| ChildInfo {
                id: child.spec.id.clone(),
                actor: match &child.state {
                    ChildState::Running(cell) => Some(cell.clone()),
                    _ => None,
                },
                status: child.status(),
                kind: child.spec.kind,
            })
            .collect()
    }

    fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for (_, child) in self.children.iter() {
            counts.specs += 1;
            if matches!(child.state, ChildState::Running(_)) {
                counts.active += 1;
            }
            match child.spec.kind {
                ChildKind::Supervisor => counts.supervisors += 1,
                ChildKind::Worker => counts.workers += 1,
            }
        }
        counts
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Static => format!("{} ({:?})", self.label, self.strategy),
            Mode::Dynamic { max_children: None } => format!("{} (dynamic)", self.label),
            Mode::Dynamic {
                max_children: Some(max),
            } => format!("{} (dynamic, max {max})", self.label),
        }
    }

    async fn start_child(&mut self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        spec.validate()?;
        match self.mode {
            Mode::Static => {
                if let Some(seq) = self.children.seq_of_id(&spec.id) {
                    return Err(match self.children.get(seq).map(|c| c.status()) {
                        Some(crate::ChildStatus::Running) => SupervisorError::Running(spec.id),
                        _ => SupervisorError::AlreadyPresent(spec.id),
                    });
                }
            }
            Mode::Dynamic {
                max_children: Some(max),
            } if self.children.len() >= max => return Err(SupervisorError::MaxChildren(max)),
            Mode::Dynamic { .. } => {}
        }
        let id = spec.id.clone();
        let seq = self.add_child(spec);
        match self.start_incarnation(seq).await {
            Ok(cell) => Ok(cell),
            Err(err) => {
                self.remove_child(seq);
                Err(SupervisorError::FailedToStart {
                    id,
                    reason: start_error_text(&err),
                })
            }
        }
    }

    async fn terminate_child(&mut self, key: ChildKey) -> Result<(), SupervisorError> {
        let seq = match &key {
            ChildKey::Id(id) => self.children.seq_of_id(id),
            ChildKey::Actor(cell) => self.children.seq_of_actor(cell.get_id()),
        };
        let Some(seq) = seq else {
            return Err(SupervisorError::NotFound(match key {
                ChildKey::Id(id) => id,
                ChildKey::Actor(cell) => format!("actor {}", cell.get_id()),
            }));
        };
        let Some(child) = self.children.get(seq) else {
            return Err(SupervisorError::NotFound(format!("#{seq}")));
        };
        let stopping = child
            .cell()
            .cloned()
            .map(|cell| (cell, child.spec.shutdown));
        let id = child.spec.id.clone();
        let temporary = child.spec.restart == Restart::Temporary;
        // Forget the incarnation before stopping it, so that its exit event,
        // which arrives after this call, is recognised as stale. A pending
        // restart of this child skips it from now on.
        self.children.set_state(seq, ChildState::Stopped);
        if let Some((cell, shutdown)) = stopping {
            stop_child(&cell, shutdown).await;
        }
        tracing::info!(supervisor = %self.label, child = %id, "child terminated");
        if temporary || matches!(self.mode, Mode::Dynamic { .. }) {
            self.remove_child(seq);
        }
        Ok(())
    }

    async fn restart_child(&mut self, id: &str) -> Result<ActorCell, SupervisorError> {
        let seq = self.stopped_child(id)?;
        self.start_incarnation(seq)
            .await
            .map_err(|err| SupervisorError::FailedToStart {
                id: id.to_string(),
                reason: start_error_text(&err),
            })
    }

    fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let seq = self.stopped_child(id)?;
        self.remove_child(seq);
        Ok(())
    }

    /// The child `id`, if it exists and is stopped (OTP's error cases).
    fn stopped_child(&self, id: &str) -> Result<u64, SupervisorError> {
        let seq = self
            .children
            .seq_of_id(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_string()))?;
        match self.children.get(seq).map(|c| c.status()) {
            Some(crate::ChildStatus::Stopped) => Ok(seq),
            Some(crate::ChildStatus::Running) => Err(SupervisorError::Running(id.to_string())),
            Some(crate::ChildStatus::Restarting) => {
                Err(SupervisorError::Restarting(id.to_string()))
            }
            None => Err(SupervisorError::NotFound(id.to_string())),
        }
    }

    // -----------------------------------------------------------------------
    // Starting children

    fn add_child(&mut self, spec: ChildSpec) -> u64 {
        if self.mode != Mode::Static {
            return self.children.push(spec, None);
        }
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
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

    fn remove_child(&mut self, seq: u64) {
        if let Some(child) = self.children.remove(seq) {
            if self.mode == Mode::Static {
                let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
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
        let cell = start(self.myself.get_cell(), slot).await?;
        tracing::debug!(supervisor = %self.label, child = %self.child_id(seq), actor = %cell.get_id(), "child started");
        if let Some(child) = self.children.get_mut(seq) {
            child.started_at = Some(now());
        }
        self.children
            .set_state(seq, ChildState::Running(cell.clone()));
        Ok(cell)
    }

    fn child_id(&self, seq: u64) -> String {
        self.children
            .get(seq)
            .map_or_else(|| format!("#{seq}"), |c| c.spec.id.clone())
    }

    // -----------------------------------------------------------------------
    // Exits and restarts

    async fn child_exited(&mut self, cell: &ActorCell, reason: ExitReason) -> Result<(), Exit> {
        let Some(seq) = self.children.seq_of_actor(cell.get_id()) else {
            // An incarnation we already forgot: terminated, or replaced.
            tracing::trace!(supervisor = %self.label, actor = %cell.get_id(), %reason, "exit of a stale incarnation ignored");
            return Ok(());
        };
        let Some(child) = self.children.get(seq) else {
            return Ok(());
        };
        let id = child.spec.id.clone();
        if matches!(child.state, ChildState::Stopping(_)) {
            // Stopped by a group restart: expected, not counted.
            tracing::debug!(supervisor = %self.label, child = %id, %reason, "child stopped for a group restart");
            self.finish_induced_stop(seq);
            return Ok(());
        }
        let restart = child.spec.restart;
        let significant = child.spec.significant;
        let ran_for = child
            .started_at
            .map(|t| now().saturating_duration_since(t))
            .unwrap_or_default();
        if reason.is_abnormal() {
            tracing::warn!(supervisor = %self.label, child = %id, %reason, "child exited");
        } else {
            tracing::info!(supervisor = %self.label, child = %id, %reason, "child exited");
        }

        if !should_restart(restart, &reason) {
            if restart == Restart::Temporary || matches!(self.mode, Mode::Dynamic { .. }) {
                self.remove_child(seq);
            } else {
                self.children.set_state(seq, ChildState::Stopped);
            }
            return self.check_auto_shutdown(significant);
        }

        self.count_restart(&id, &reason)?;
        if let Some(child) = self.children.get_mut(seq) {
            if child
                .spec
                .backoff
                .is_some_and(|b| b.is_healthy_run(ran_for))
            {
                child.attempt = 0;
            }
        }
        self.children.set_state(seq, ChildState::Restarting);
        if self.op.is_some() {
            tracing::debug!(supervisor = %self.label, child = %id, "restart queued behind the one in progress");
            self.queued.push_back(seq);
            return Ok(());
        }
        self.begin_restart(seq).await
    }

    /// Records a restart attempt; `Err` when it is one too many.
    fn count_restart(&mut self, id: &str, reason: &ExitReason) -> Result<(), Exit> {
        self.window.add_restart(now()).map_err(|exceeded| {
            Exit::Escalate(SupervisorError::IntensityExceeded {
                child: id.to_string(),
                reason: reason.clone(),
                max_restarts: exceeded.max_restarts,
                period: exceeded.period,
            })
        })
    }

    /// A sibling stopped by a group restart has ended.
    fn finish_induced_stop(&mut self, seq: u64) {
        let temporary = self
            .children
            .get(seq)
            .is_some_and(|c| c.spec.restart == Restart::Temporary);
        if temporary {
            self.remove_child(seq);
        } else {
            self.children.set_state(seq, ChildState::Restarting);
        }
    }

    /// Starts the restart of `cause` and the siblings its strategy names.
    async fn begin_restart(&mut self, cause: u64) -> Result<(), Exit> {
        let strategy = match self.mode {
            Mode::Static => self.strategy,
            Mode::Dynamic { .. } => Strategy::OneForOne,
        };
        let Some(position) = self.children.position(cause) else {
            return Ok(());
        };
        let seqs = self.children.seqs();
        let range = affected(strategy, position, seqs.len());
        let mut group = Vec::new();
        let mut stopping = Vec::new();
        for &seq in &seqs[range] {
            let Some(child) = self.children.get(seq) else {
                continue;
            };
            match &child.state {
                ChildState::Running(cell) => {
                    let cell = cell.clone();
                    if child.spec.restart != Restart::Temporary {
                        group.push(seq);
                    }
                    stopping.push(seq);
                    self.children.set_state(seq, ChildState::Stopping(cell));
                }
                ChildState::Stopping(_) | ChildState::Restarting => group.push(seq),
                // Terminated by the operator or ended for good: stays so.
                ChildState::Stopped => {}
            }
        }
        // Queued failures inside this group are restarted by it.
        self.queued.retain(|seq| !group.contains(seq));
        let token = self.next_token;
        self.next_token += 1;
        tracing::info!(supervisor = %self.label, child = %self.child_id(cause), strategy = ?strategy, group = group.len(), "restarting");
        let to_stop: Vec<(ActorCell, Shutdown)> = stopping
            .iter()
            .rev()
            .filter_map(|seq| {
                let child = self.children.get(*seq)?;
                Some((child.cell()?.clone(), child.spec.shutdown))
            })
            .collect();
        self.op = Some(RestartOp {
            token,
            cause,
            stopping,
            group,
            next: 0,
        });
        if to_stop.is_empty() {
            return self.group_stopped(token).await;
        }
        // Stop the siblings in reverse start order without blocking.
        let myself = self.myself.clone();
        self.set_pending(tokio::spawn(async move {
            for (cell, shutdown) in to_stop {
                stop_child(&cell, shutdown).await;
            }
            let _ = myself.cast(SupervisorMsg::GroupStopped { token });
        }));
        Ok(())
    }

    fn set_pending(&mut self, task: JoinHandle<()>) {
        if let Some(old) = self.pending.replace(task) {
            old.abort();
        }
    }

    /// The group of restart `token` has stopped: wait for the backoff, or
    /// start the group.
    async fn group_stopped(&mut self, token: u64) -> Result<(), Exit> {
        let Some(op) = self.op.as_mut().filter(|op| op.token == token) else {
            return Ok(());
        };
        let stopping = std::mem::take(&mut op.stopping);
        let cause = op.cause;
        for seq in stopping {
            if self
                .children
                .get(seq)
                .is_some_and(|c| matches!(c.state, ChildState::Stopping(_)))
            {
                self.finish_induced_stop(seq);
            }
        }
        if self.schedule_backoff(cause, token) {
            return Ok(());
        }
        self.continue_restart().await
    }

    /// Schedules `RestartDue` after child `seq`'s backoff; `false` if it has
    /// no backoff (restart at once).
    /// Each scheduled delay moves the child one attempt further, so that
    /// consecutive restarts wait `min`, `2·min`, `4·min`, ...
    fn schedule_backoff(&mut self, seq: u64, token: u64) -> bool {
        let Some(child) = self.children.get_mut(seq) else {
            return false;
        };
        let Some(backoff) = child.spec.backoff else {
            return false;
        };
        let delay = backoff.delay(child.attempt, &mut rand::rng());
        child.attempt = child.attempt.saturating_add(1);
        if delay.is_zero() {
            return false;
        }
        tracing::info!(supervisor = %self.label, child = %child.spec.id, attempt = child.attempt, delay_ms = delay.as_millis() as u64, "waiting before restart (backoff)");
        let myself = self.myself.clone();
        self.set_pending(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = myself.cast(SupervisorMsg::RestartDue { token });
        }));
        true
    }

    async fn restart_due(&mut self, token: u64) -> Result<(), Exit> {
        if self.op.as_ref().is_some_and(|op| op.token == token) {
            self.continue_restart().await
        } else {
            Ok(())
        }
    }

    /// Starts the rest of the current group in order, then the next queued
    /// restart. A failed start counts as a restart and is retried later.
    async fn continue_restart(&mut self) -> Result<(), Exit> {
        while let Some(op) = self.op.as_ref() {
            let token = op.token;
            let Some(&seq) = op.group.get(op.next) else {
                // The group is running again.
                self.op = None;
                if let Some(next) = self.next_queued() {
                    // Boxed: begin_restart may finish synchronously and come
                    // back here for the next queued restart.
                    Box::pin(self.begin_restart(next)).await?;
                }
                return Ok(());
            };
            let waiting = self
                .children
                .get(seq)
                .is_some_and(|c| matches!(c.state, ChildState::Restarting));
            if !waiting {
                // Terminated or removed meanwhile.
                self.advance(token);
                continue;
            }
            match self.start_incarnation(seq).await {
                Ok(cell) => {
                    tracing::info!(supervisor = %self.label, child = %self.child_id(seq), actor = %cell.get_id(), "child restarted");
                    self.advance(token);
                }
                Err(err) => {
                    let id = self.child_id(seq);
                    let reason = ExitReason::from_spawn_err(&err);
                    tracing::warn!(supervisor = %self.label, child = %id, %reason, "restart failed; will retry");
                    self.count_restart(&id, &reason)?;
                    if let Some(op) = self.op.as_mut() {
                        op.cause = seq;
                    }
                    if !self.schedule_backoff(seq, token) {
                        // Retry through the mailbox so calls are answered in
                        // between, as OTP's `try_again_restart`.
                        let _ = self.myself.cast(SupervisorMsg::RestartDue { token });
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, token: u64) {
        if let Some(op) = self.op.as_mut().filter(|op| op.token == token) {
            op.next += 1;
        }
    }

    fn next_queued(&mut self) -> Option<u64> {
        while let Some(seq) = self.queued.pop_front() {
            if self
                .children
                .get(seq)
                .is_some_and(|c| matches!(c.state, ChildState::Restarting))
            {
                return Some(seq);
            }
        }
        None
    }

    /// After a significant child ended for good.
    fn check_auto_shutdown(&self, significant: bool) -> Result<(), Exit> {
        if !significant {
            return Ok(());
        }
        match self.auto_shutdown {
            AutoShutdown::Never => Ok(()),
            AutoShutdown::AnySignificant => Err(Exit::AutoShutdown),
            AutoShutdown::AllSignificant => {
                let any_left = self
                    .children
                    .iter()
                    .any(|(_, c)| c.spec.significant && !matches!(c.state, ChildState::Stopped));
                if any_left {
                    Ok(())
                } else {
                    Err(Exit::AutoShutdown)
                }
            }
        }
    }

    // -----------------------------------------------------------------------
    // Shutdown

    /// Stops every child: in reverse start order one at a time (static), or
    /// all at once (dynamic), each under its own `Shutdown`.
    async fn shutdown_children(&mut self) {
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

/// The actor layer's clock: tokio's, so tests can pause it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
