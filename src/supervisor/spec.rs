//! What a supervisor supervises: [`SupervisorSpec`], [`ChildSpec`] and the
//! small enums that configure them, with OTP's defaults.
//!
//! | setting              | default (as OTP)                          |
//! |----------------------|-------------------------------------------|
//! | intensity            | [`DEFAULT_INTENSITY`] restart in [`DEFAULT_PERIOD`] |
//! | auto-shutdown        | [`AutoShutdown::Never`]                   |
//! | restart              | [`Restart::Permanent`]                    |
//! | shutdown, worker     | [`Shutdown::Timeout`]`(`[`DEFAULT_WORKER_SHUTDOWN`]`)` |
//! | shutdown, supervisor | [`Shutdown::Infinity`]                    |
//! | significant          | `false`                                   |
//! | backoff              | none: restart at once                     |
//!
//! Specs are checked before anything starts ([`SupervisorSpec::validate`]);
//! a bad one is refused with [`SupervisorError::InvalidSpec`] or
//! [`SupervisorError::DuplicateChildId`].

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, Message, SpawnErr};

use crate::supervisor::actor::{spawn_static, Nested, SharedSlots};
use crate::supervisor::backoff::Backoff;
use crate::supervisor::child_ref::{ErasedSlot, Slot};
use crate::supervisor::dynamic::spawn_dynamic_actor;
use crate::supervisor::error::SupervisorError;
use crate::supervisor::strategy::Strategy;

/// OTP's default restart intensity: one restart...
pub const DEFAULT_INTENSITY: u32 = 1;
/// ...within five seconds.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
/// How long a worker gets to stop gracefully before it is killed (OTP: 5000 ms).
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

/// When a child is restarted after it ends (OTP's `restart` key).
///
/// See [`should_restart`](crate::supervisor::strategy::should_restart) for the
/// full table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (anything but normal or
    /// shutdown; a kill is abnormal).
    Transient,
    /// Never restarted; its spec is dropped when it ends.
    Temporary,
}

/// How a child is stopped when its supervisor stops it (OTP's `shutdown` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Killed at once: no `post_stop`, the running handler is interrupted.
    Brutal,
    /// Asked to stop (`post_stop` runs), killed if still running after the
    /// duration.
    Timeout(Duration),
    /// Asked to stop, and waited for as long as it takes (the default for
    /// child supervisors, so that they can stop their own children).
    Infinity,
}

/// Whether a child is a worker or a supervisor (OTP's `type` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// Any actor that is not a supervisor.
    Worker,
    /// A nested supervisor.
    Supervisor,
}

/// How a one-for-all or rest-for-one supervisor stops the rest of the group
/// before restarting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupStop {
    /// One after another, in reverse start order, each within its
    /// `Shutdown` (OTP's behaviour, the default): a child never outlives
    /// one started after it, so a child may rely on those started before
    /// it while it stops.
    #[default]
    InOrder,
    /// All at once, each within its `Shutdown`: faster for large groups
    /// whose children do not depend on one another while stopping (1.2–1.3×
    /// less time at 100 children; see `BENCHMARKS.md`). Starting again is
    /// still in start order.
    Parallel,
}

/// When a supervisor stops itself because significant children ended
/// (OTP 24's `auto_shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AutoShutdown {
    /// Never; the `significant` flag is ignored.
    #[default]
    Never,
    /// As soon as any significant child ends without being restarted.
    AnySignificant,
    /// Once every significant child has ended without being restarted.
    AllSignificant,
}

/// The state of a supervised child as reported by `which_children`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildStatus {
    /// Running.
    Running,
    /// Ended and about to be started again: stopping as part of a group
    /// restart, waiting for its backoff, or retrying a failed start.
    Restarting,
    /// Not running and not going to be restarted: terminated with
    /// `terminate_child`, or a transient child that ended normally.
    Stopped,
}

/// The future that starts one incarnation of a child.
pub(crate) type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// Starts a new incarnation of a child linked to the given supervisor, and
/// publishes its typed reference in the given slot.
pub(crate) type StartFn =
    Arc<dyn Fn(ActorCell, Option<Arc<dyn ErasedSlot>>) -> StartFuture + Send + Sync>;

/// How to start, restart and stop one child (OTP's child specification).
///
/// `Actor::Arguments` is not `Clone` and a restarted actor is a new actor, so
/// the spec keeps the actor value and a factory for its arguments, and builds
/// both again for every incarnation.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::{ChildSpec, Restart, Shutdown};
///
/// #[derive(Clone)]
/// struct Cache;
///
/// impl Actor for Cache {
///     type Msg = ();
///     type State = usize;
///     type Arguments = usize;
///     async fn pre_start(&self, _: ActorRef<()>, capacity: usize) -> Result<usize, ActorProcessingErr> {
///         Ok(capacity)
///     }
/// }
///
/// let spec = ChildSpec::new("cache", Cache, || 1024)
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
/// assert_eq!(spec.id(), "cache");
/// ```
#[derive(Clone)]
#[must_use = "a ChildSpec does nothing until it is given to a supervisor"]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: StartFn,
    pub(crate) new_slot: fn() -> Arc<dyn ErasedSlot>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    pub(crate) backoff: Option<Backoff>,
    /// Whether the child is one of our supervisors, for handles to it.
    pub(crate) nested: Nested,
    /// Stop gracefully with ractor's `drain` (process the mailbox first)
    /// instead of `stop`; used by pool workers so that no message is lost.
    pub(crate) drain_on_stop: bool,
    /// Told when the supervisor decides not to restart an incarnation that
    /// ended by itself (temporary, or transient that ended normally): the
    /// pool uses it to show the worker stopped and stop counting it.
    pub(crate) on_ended: Option<OnStop>,
}

/// How the supervisor stops one child: its `Shutdown` and whether it
/// drains its mailbox first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopPolicy {
    pub(crate) shutdown: Shutdown,
    pub(crate) drain: bool,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A worker child: every incarnation is `actor.clone()` started with
    /// `args()`. Permanent, 5 s graceful shutdown, not significant, no backoff.
    pub fn new<A, F>(id: impl Into<String>, actor: A, args: F) -> Self
    where
        A: Actor + Clone,
        F: Fn() -> A::Arguments + Send + Sync + 'static,
    {
        Self::from_start(
            id.into(),
            ChildKind::Worker,
            Nested::Worker,
            move |parent| {
                let actor = actor.clone();
                let arguments = args();
                async move {
                    let (actor_ref, _join) =
                        A::spawn_linked(None, actor, arguments, parent).await?;
                    Ok(actor_ref)
                }
            },
        )
    }

    /// A nested supervisor child running `spec`; its shutdown defaults to
    /// [`Shutdown::Infinity`] so that it can stop its own children in order.
    ///
    /// Get a handle to it with
    /// [`SupervisorRef::supervisor_child`](crate::SupervisorRef::supervisor_child);
    /// `ChildRef`s taken through that handle follow the nested children
    /// across restarts of the nested supervisor itself.
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        // Shared by every incarnation of the nested supervisor.
        let slots = SharedSlots::default();
        let nested = Nested::Static(slots.clone());
        Self::from_start(id.into(), ChildKind::Supervisor, nested, move |parent| {
            let spec = spec.clone();
            let slots = slots.clone();
            async move {
                let (sup, _join) = spawn_static(None, spec, Some(parent), slots).await?;
                Ok(sup.actor)
            }
        })
    }

    /// A nested [`DynamicSupervisor`](crate::DynamicSupervisor) child;
    /// reach it with [`SupervisorRef::dynamic_child`](crate::SupervisorRef::dynamic_child).
    /// Its shutdown defaults to [`Shutdown::Infinity`]. Its children are
    /// not kept across its restarts (they are started at run time).
    pub fn dynamic_supervisor(id: impl Into<String>, spec: crate::DynamicSpec) -> Self {
        Self::from_start(
            id.into(),
            ChildKind::Supervisor,
            Nested::Dynamic,
            move |parent| async move {
                let (actor, _join) = spawn_dynamic_actor(None, spec, Some(parent)).await?;
                Ok(actor)
            },
        )
    }

    /// A permanent, non-significant child without backoff whose incarnations
    /// come from `start`; each started `ActorRef` is published to the
    /// child's `ChildRef` slot. Workers get OTP's 5 s shutdown, supervisors
    /// infinity.
    pub(crate) fn from_start<M, S, Fut>(
        id: String,
        kind: ChildKind,
        nested: Nested,
        start: S,
    ) -> Self
    where
        M: Message,
        S: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorRef<M>, SpawnErr>> + Send + 'static,
    {
        let start = Arc::new(start);
        let start: StartFn = Arc::new(
            move |parent: ActorCell, slot: Option<Arc<dyn ErasedSlot>>| {
                let start = start.clone();
                // The spawn future is built inside the box on first poll,
                // not built on the stack and then moved into it (ractor's
                // spawn futures are large; that copy showed in profiles).
                Box::pin(async move {
                    let actor = start(parent).await?;
                    if let Some(Ok(slot)) = slot.map(|s| s.into_any().downcast::<Slot<M>>()) {
                        slot.set(actor.clone());
                    }
                    Ok(actor.get_cell())
                }) as StartFuture
            },
        );
        let shutdown = match kind {
            ChildKind::Worker => Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            ChildKind::Supervisor => Shutdown::Infinity,
        };
        Self {
            id,
            start,
            new_slot: Slot::<M>::new_erased,
            restart: Restart::Permanent,
            shutdown,
            kind,
            significant: false,
            backoff: None,
            nested,
            drain_on_stop: false,
            on_ended: None,
        }
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Marks the child significant for [`AutoShutdown`]; a permanent child
    /// cannot be significant (the spec is refused).
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Waits before each restart of this child (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    pub(crate) fn stop_policy(&self) -> StopPolicy {
        StopPolicy {
            shutdown: self.shutdown,
            drain: self.drain_on_stop,
        }
    }

    /// The child's id, unique within its supervisor.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the child is a worker or a supervisor.
    #[must_use]
    pub fn kind(&self) -> ChildKind {
        self.kind
    }

    /// Checks the parts of the spec that do not depend on its siblings.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] for an empty id or a significant
    /// permanent child.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        if self.id.is_empty() {
            return Err(SupervisorError::InvalidSpec {
                child: None,
                field: "id",
                reason: "a child id must not be empty".into(),
            });
        }
        if self.significant && self.restart == Restart::Permanent {
            return Err(SupervisorError::InvalidSpec {
                child: Some(self.id.clone()),
                field: "significant",
                reason: "a permanent child cannot be significant; make it transient or temporary"
                    .into(),
            });
        }
        Ok(())
    }
}

/// A supervisor's strategy, intensity, auto-shutdown and children.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::{AutoShutdown, Strategy, SupervisorSpec};
///
/// let spec = SupervisorSpec::new(Strategy::RestForOne)
///     .intensity(3, Duration::from_secs(10))
///     .auto_shutdown(AutoShutdown::Never);
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Clone)]
#[must_use = "a SupervisorSpec does nothing until a supervisor is spawned with it"]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) period: Duration,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) group_stop: GroupStop,
    pub(crate) children: Vec<ChildSpec>,
    /// Called once the supervisor has stopped all its children for good
    /// (shutdown, escalation or a failed start); the pool uses it to report
    /// messages still queued as dead letters.
    pub(crate) on_stop: Option<OnStop>,
}

/// A hook run when a supervisor has stopped its children for good, or (as
/// [`ChildSpec`]'s `on_ended`) when it lets a child that ended stay down.
pub(crate) type OnStop = Arc<dyn Fn() + Send + Sync>;

impl fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("strategy", &self.strategy)
            .field("max_restarts", &self.max_restarts)
            .field("period", &self.period)
            .field("auto_shutdown", &self.auto_shutdown)
            .field("group_stop", &self.group_stop)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl SupervisorSpec {
    /// A spec with OTP's defaults: intensity 1 in 5 s, no auto-shutdown, no
    /// children.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            max_restarts: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            auto_shutdown: AutoShutdown::Never,
            group_stop: GroupStop::InOrder,
            children: Vec::new(),
            on_stop: None,
        }
    }

    /// At most `max_restarts` restarts in any window of `period`; one more
    /// and the supervisor stops its children and exits with a failure.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// When significant children ending stops the supervisor.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.auto_shutdown = auto_shutdown;
        self
    }

    /// How the rest of a group stops before a one-for-all or rest-for-one
    /// restart (default [`GroupStop::InOrder`], as OTP). The supervisor's
    /// own shutdown always stops children in reverse order.
    pub fn group_stop(mut self, how: GroupStop) -> Self {
        self.group_stop = how;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// The restart strategy.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Checks the whole spec before anything starts.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] for a zero period or an invalid
    /// child, [`SupervisorError::DuplicateChildId`] when two children share
    /// an id.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        validate_period(self.period)?;
        let mut seen = HashSet::with_capacity(self.children.len());
        for child in &self.children {
            child.validate()?;
            if !seen.insert(child.id.as_str()) {
                return Err(SupervisorError::DuplicateChildId(child.id.clone()));
            }
        }
        Ok(())
    }
}

/// Refuses a zero restart period, shared by static and dynamic specs.
pub(crate) fn validate_period(period: Duration) -> Result<(), SupervisorError> {
    if period.is_zero() {
        return Err(SupervisorError::InvalidSpec {
            child: None,
            field: "period",
            reason: "the restart period must be longer than zero".into(),
        });
    }
    Ok(())
}
