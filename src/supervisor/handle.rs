//! [`Supervisor`] (spawning) and [`SupervisorRef`] (its client API).

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, Message, RpcReplyPort};

use crate::exit::SHUTDOWN_REASON;
use crate::supervisor::actor::{self, ChildKey, Nested, SharedSlots, SlotEntry, SupervisorMsg};
use crate::supervisor::child_ref::{call_while_alive, ChildRef, Slot};
use crate::supervisor::dynamic::DynamicSupervisorRef;
use crate::supervisor::error::{ChildLookupError, SupervisorError};
use crate::supervisor::root::{spawn_watch, SupervisorExit};
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
    /// Validates `spec`, spawns a root supervisor and starts its children in
    /// order. Returns once every child has started, with the
    /// [`SupervisorExit`] that reports how the supervisor ends (await it:
    /// a root that gave up after exceeding its intensity says so).
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
    ) -> Result<(SupervisorRef, SupervisorExit), SupervisorError> {
        spec.validate()?;
        let (watcher, exit) = spawn_watch()
            .await
            .map_err(|e| SupervisorError::Spawn(e.to_string()))?;
        match actor::spawn_static(name, spec, Some(watcher.get_cell()), SharedSlots::default())
            .await
        {
            Ok((sup, _join)) => Ok((sup, exit)),
            Err(err) => {
                watcher.stop(None);
                Err(actor::spawn_error(err))
            }
        }
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

    /// The supervisor's actor, to link to or monitor. To stop it, prefer
    /// [`stop`](Self::stop).
    #[must_use]
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// Stops the supervisor in order: its children stop in reverse start
    /// order, each under its own [`Shutdown`](crate::Shutdown), then the
    /// supervisor exits with reason `shutdown`
    /// ([`ExitReason::Shutdown`](crate::ExitReason::Shutdown)`(None)`).
    /// Waits until it has ended; `timeout: None` waits as long as that
    /// takes. Stopping a supervisor that already ended returns at once.
    ///
    /// A nested supervisor stopped this way is restarted by its parent if
    /// it is permanent (as in OTP); use the parent's
    /// [`terminate_child`](Self::terminate_child) to stop it for good.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::StopTimeout`] if the tree had not stopped within
    /// `timeout`: it is then killed (its remaining children without their
    /// `post_stop`), and this returns once it has ended.
    ///
    /// # Cancel safety
    ///
    /// The stop is requested at the first poll; dropping the future stops
    /// only the waiting (and the kill at the timeout).
    pub async fn stop(&self, timeout: Option<Duration>) -> Result<(), SupervisorError> {
        let cell = self.cell();
        cell.stop(Some(SHUTDOWN_REASON.to_string()));
        let Some(limit) = timeout else {
            let _ = cell.wait(None).await;
            return Ok(());
        };
        if cell.wait(Some(limit)).await.is_ok() {
            return Ok(());
        }
        tracing::error!(supervisor = %cell.get_name().unwrap_or_else(|| cell.get_id().to_string()), timeout_ms = limit.as_millis() as u64, "supervision tree did not stop in time; killing it");
        cell.kill();
        let _ = cell.wait(None).await;
        Err(SupervisorError::StopTimeout(limit))
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

    /// Adds `specs` at the end of the start order and starts them in order,
    /// in one round trip to the supervisor; returns their incarnations in
    /// the same order. All or none: every spec is checked before any
    /// starts, and if one fails to start, those this call started stop
    /// again (reverse order, while the supervisor waits) and are removed.
    ///
    /// # Errors
    ///
    /// As [`start_child`](Self::start_child), for the first child that
    /// cannot be added or started; [`SupervisorError::DuplicateChildId`] if
    /// two of `specs` share an id.
    pub async fn start_children(
        &self,
        specs: Vec<ChildSpec>,
    ) -> Result<Vec<ActorCell>, SupervisorError> {
        call(&self.actor, |port| {
            SupervisorMsg::StartChildren(specs, port)
        })
        .await?
    }

    /// Stops the child under its `Shutdown` and keeps its spec (a temporary
    /// child's spec is dropped). A child that is restarting is stopped too:
    /// its restart is dropped, and so is the rest of the group restart it
    /// belonged to (the children after it stay stopped, as in OTP).
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

    /// A handle to child `id` (whose actor handles `M`) that follows its
    /// restarts. Needs no round trip to the supervisor.
    ///
    /// A handle is handed out only for a child the supervisor has: running,
    /// restarting or stopped, not deleted. Under a nested supervisor, a
    /// child added at run time is gone once that supervisor restarts from
    /// its spec, and so are the handles to it (they stay empty).
    ///
    /// # Errors
    ///
    /// [`ChildLookupError::NotFound`] if there is no child `id`;
    /// [`ChildLookupError::WrongMessageType`] (naming both types) if its
    /// actor does not handle `M`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ractor::{Actor, ActorProcessingErr, ActorRef};
    /// # use ractor_otp::prelude::*;
    /// # #[derive(Clone)] struct Echo;
    /// # impl Actor for Echo {
    /// #     type Msg = u32; type State = (); type Arguments = ();
    /// #     async fn pre_start(&self, _: ActorRef<u32>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
    /// # }
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::new("echo", Echo, || ()));
    /// let (sup, _exit) = Supervisor::spawn(None, spec).await?;
    /// let echo = sup.child::<u32>("echo")?;
    /// assert!(matches!(sup.child::<String>("echo"), Err(ChildLookupError::WrongMessageType { .. })));
    /// assert!(matches!(sup.child::<u32>("nope"), Err(ChildLookupError::NotFound(_))));
    /// # drop(echo);
    /// # sup.stop(None).await?;
    /// # Ok(()) }
    /// ```
    pub fn child<M: Message>(&self, id: &str) -> Result<ChildRef<M>, ChildLookupError> {
        let slots = lock!(self.slots.read());
        let entry = slots
            .get(id)
            .ok_or_else(|| ChildLookupError::NotFound(id.to_string()))?;
        let found = entry.slot.message_type_name();
        let slot = entry
            .slot
            .clone()
            .into_any()
            .downcast::<Slot<M>>()
            .map_err(|_| ChildLookupError::WrongMessageType {
                id: id.to_string(),
                expected: std::any::type_name::<M>(),
                found,
            })?;
        Ok(ChildRef::new(id, slot))
    }

    /// A handle to child `id` when it is a dynamic supervisor (see
    /// [`ChildSpec::dynamic_supervisor`]); the handle follows its restarts.
    #[must_use]
    pub fn dynamic_child(&self, id: &str) -> Option<DynamicSupervisorRef> {
        let is_dynamic = matches!(self.entry(id)?.nested, Nested::Dynamic);
        let child = self.child::<SupervisorMsg>(id).ok()?;
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
        let actor = self.child::<SupervisorMsg>(id).ok()?.current()?;
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
    match call_while_alive(actor, build, None).await {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => {
            Err(SupervisorError::NotRunning)
        }
    }
}
