//! [`Supervisor`] (spawning) and [`SupervisorRef`] (its client API).

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, Message, RpcReplyPort};

use crate::supervisor::actor::{self, ChildKey, Nested, SharedSlots, SlotEntry, SupervisorMsg};
use crate::supervisor::child_ref::{ChildRef, Slot};
use crate::supervisor::dynamic::DynamicSupervisorRef;
use crate::supervisor::error::SupervisorError;
use crate::supervisor::spec::{ChildKind, ChildSpec, ChildStatus, SupervisorSpec};

/// One child as reported by `which_children`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// The running incarnation; `None` unless `status` is `Running`.
    pub actor: Option<ActorCell>,
    /// Running, restarting or stopped.
    pub status: ChildStatus,
    /// Worker or supervisor.
    pub kind: ChildKind,
}

/// Child counts as OTP's `count_children`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildCounts {
    /// All children, running or not.
    pub specs: usize,
    /// Children running now.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
}

/// Spawns supervisors. See the [module docs](crate::supervisor).
#[derive(Debug, Clone, Copy)]
pub struct Supervisor;

impl Supervisor {
    /// Validates `spec`, spawns the supervisor and starts its children in
    /// order. Returns once every child has started.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] or
    /// [`SupervisorError::DuplicateChildId`] before anything starts;
    /// [`SupervisorError::FailedToStart`] naming the child whose `pre_start`
    /// failed (the children already started are stopped again, in reverse
    /// order); [`SupervisorError::Spawn`] if `name` is already registered.
    pub async fn spawn(
        name: Option<String>,
        spec: SupervisorSpec,
    ) -> Result<(SupervisorRef, JoinHandle<()>), SupervisorError> {
        spec.validate()?;
        actor::spawn_static(name, spec, None, SharedSlots::default())
            .await
            .map_err(actor::spawn_error)
    }

    /// As [`Supervisor::spawn`], linked to `parent`: the parent receives the
    /// supervisor's exit, including the failure when its intensity is
    /// exceeded (escalation).
    ///
    /// # Errors
    ///
    /// As [`Supervisor::spawn`].
    pub async fn spawn_linked(
        name: Option<String>,
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<(SupervisorRef, JoinHandle<()>), SupervisorError> {
        spec.validate()?;
        actor::spawn_static(name, spec, Some(parent), SharedSlots::default())
            .await
            .map_err(actor::spawn_error)
    }
}

/// A handle to a running supervisor: OTP's administration calls.
///
/// Calls wait for the supervisor's answer; they fail with
/// [`SupervisorError::NotRunning`] once it has stopped.
#[derive(Clone)]
pub struct SupervisorRef {
    pub(crate) actor: ActorRef<SupervisorMsg>,
    slots: SharedSlots,
}

impl std::fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorRef")
            .field("actor", &self.actor.get_id())
            .finish_non_exhaustive()
    }
}

impl SupervisorRef {
    pub(crate) fn new(actor: ActorRef<SupervisorMsg>, slots: SharedSlots) -> Self {
        Self { actor, slots }
    }

    /// Makes the supervisor stop its children and fail with `err`, as if
    /// its own intensity had been exceeded (used by pool workers, which
    /// restart in place and keep their own restart window).
    pub(crate) fn escalate(&self, err: SupervisorError) {
        let _ = self.actor.cast(SupervisorMsg::Escalate(err));
    }

    /// The supervisor's actor: link to it, or stop it with
    /// `cell().stop_and_wait(None, None)`, which stops the children in
    /// reverse start order first.
    #[must_use]
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// Every child in start order.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`].
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        call(&self.actor, SupervisorMsg::WhichChildren).await
    }

    /// Counts of children by state and kind.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`].
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        call(&self.actor, SupervisorMsg::CountChildren).await
    }

    /// Adds a child at the end of the start order and starts it. Returns the
    /// started incarnation (always `Some` today: no child can decline to
    /// start, as OTP's `ignore` allows).
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Running`] if a child with this id runs,
    /// [`SupervisorError::AlreadyPresent`] if it exists but does not,
    /// [`SupervisorError::InvalidSpec`], [`SupervisorError::FailedToStart`]
    /// (the spec is not kept), [`SupervisorError::NotRunning`].
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<ActorCell>, SupervisorError> {
        call(&self.actor, |port| SupervisorMsg::StartChild(spec, port))
            .await?
            .map(Some)
    }

    /// Stops the child under its `Shutdown` and keeps its spec (a temporary
    /// child's spec is dropped). A pending restart of the child is cancelled.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotFound`], [`SupervisorError::NotRunning`].
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let key = ChildKey::Id(id.to_string());
        call(&self.actor, |port| SupervisorMsg::TerminateChild(key, port)).await?
    }

    /// Starts a stopped child again from its spec.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Running`], [`SupervisorError::Restarting`],
    /// [`SupervisorError::NotFound`], [`SupervisorError::FailedToStart`],
    /// [`SupervisorError::NotRunning`].
    pub async fn restart_child(&self, id: &str) -> Result<ActorCell, SupervisorError> {
        let id = id.to_string();
        call(&self.actor, |port| SupervisorMsg::RestartChild(id, port)).await?
    }

    /// Removes a stopped child's spec.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::Running`], [`SupervisorError::Restarting`],
    /// [`SupervisorError::NotFound`], [`SupervisorError::NotRunning`].
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_string();
        call(&self.actor, |port| SupervisorMsg::DeleteChild(id, port)).await?
    }

    /// A handle to child `id` that follows its restarts; `None` if there is
    /// no such child or its message type is not `M`.
    #[must_use]
    pub fn child<M: Message>(&self, id: &str) -> Option<ChildRef<M>> {
        let slots = lock!(self.slots.read());
        let slot = slots
            .get(id)?
            .slot
            .clone()
            .into_any()
            .downcast::<Slot<M>>()
            .ok()?;
        Some(ChildRef::new(id, slot))
    }

    /// A handle to child `id` when it is a dynamic supervisor (see
    /// [`ChildSpec::dynamic_supervisor`]); the handle follows its restarts.
    #[must_use]
    pub fn dynamic_child(&self, id: &str) -> Option<DynamicSupervisorRef> {
        let is_dynamic = matches!(self.entry(id)?.nested, Nested::Dynamic);
        let child = self.child::<SupervisorMsg>(id)?;
        is_dynamic.then(|| DynamicSupervisorRef::following(child))
    }

    /// A handle to child `id` when it is a nested supervisor
    /// ([`ChildSpec::supervisor`]) that is running now; `None` otherwise.
    ///
    /// The returned `SupervisorRef` talks to the current incarnation of the
    /// nested supervisor, but `ChildRef`s taken from it (with
    /// [`child`](Self::child)) follow the grandchildren across restarts of
    /// the nested supervisor too.
    #[must_use]
    pub fn supervisor_child(&self, id: &str) -> Option<SupervisorRef> {
        let Nested::Static(slots) = self.entry(id)?.nested else {
            return None;
        };
        let actor = self.child::<SupervisorMsg>(id)?.current()?;
        Some(SupervisorRef::new(actor, slots))
    }

    fn entry(&self, id: &str) -> Option<SlotEntry> {
        lock!(self.slots.read()).get(id).cloned()
    }

    /// The live tree below this supervisor as indented text, one child a
    /// line: id, kind, status and actor id, nested supervisors expanded.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`] if this supervisor stopped; a nested
    /// supervisor that stops meanwhile is shown without its children.
    pub async fn render_tree(&self) -> Result<String, SupervisorError> {
        render_tree(&self.actor).await
    }
}

/// Renders the tree below `actor` (also used by `DynamicSupervisorRef`).
pub(crate) async fn render_tree(
    actor: &ActorRef<SupervisorMsg>,
) -> Result<String, SupervisorError> {
    let mut out = call(actor, SupervisorMsg::Describe).await?;
    out.push('\n');
    render_children(actor.clone(), 1, &mut out).await?;
    Ok(out)
}

fn render_children<'a>(
    actor: ActorRef<SupervisorMsg>,
    depth: usize,
    out: &'a mut String,
) -> Pin<Box<dyn Future<Output = Result<(), SupervisorError>> + Send + 'a>> {
    Box::pin(async move {
        let children = call(&actor, SupervisorMsg::WhichChildren).await?;
        for child in children {
            let indent = "  ".repeat(depth);
            let kind = match child.kind {
                ChildKind::Worker => "worker",
                ChildKind::Supervisor => "supervisor",
            };
            let status = match child.status {
                ChildStatus::Running => "running",
                ChildStatus::Restarting => "restarting",
                ChildStatus::Stopped => "stopped",
            };
            let actor_id = child
                .actor
                .as_ref()
                .map(|cell| format!(" {}", cell.get_id()))
                .unwrap_or_default();
            let _ = writeln!(out, "{indent}{} [{kind}] {status}{actor_id}", child.id);
            if let Some(cell) = child
                .actor
                .filter(|c| c.is_message_type_of::<SupervisorMsg>() == Some(true))
            {
                let nested: ActorRef<SupervisorMsg> = cell.into();
                if render_children(nested, depth + 1, out).await.is_err() {
                    let _ = writeln!(out, "{indent}  (stopped while rendering)");
                }
            }
        }
        Ok(())
    })
}

/// One request–reply round trip with the supervisor.
pub(crate) async fn call<T: Send + 'static>(
    actor: &ActorRef<SupervisorMsg>,
    build: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg,
) -> Result<T, SupervisorError> {
    match actor.call(build, None).await {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => {
            Err(SupervisorError::NotRunning)
        }
    }
}
