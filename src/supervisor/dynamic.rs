//! [`DynamicSupervisor`]: children added at run time, Elixir-style.
//!
//! A dynamic supervisor starts with no children; [`start_child`] adds one at
//! a time. It behaves as a one-for-one supervisor with these differences,
//! which are Elixir's:
//!
//! - child ids need not be unique (they only label the child);
//! - a child that ends for good (temporary, or transient after a normal exit)
//!   is removed, as is a child stopped with [`terminate_child`];
//! - on shutdown all children are stopped in parallel, each under its own
//!   `Shutdown`;
//! - the default intensity is Elixir's: 3 restarts in 5 s;
//! - [`DynamicSpec::max_children`] caps the number of children.
//!
//! [`start_child`]: DynamicSupervisorRef::start_child
//! [`terminate_child`]: DynamicSupervisorRef::terminate_child
//!
//! ```
//! # use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::{ChildSpec, DynamicSpec, DynamicSupervisor, Restart};
//! # #[derive(Clone)] struct Session;
//! # impl Actor for Session {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
//! # }
//! # #[tokio::main] async fn main() {
//! let (sessions, _join) = DynamicSupervisor::spawn(None, DynamicSpec::new().max_children(2)).await.unwrap();
//! let spec = || ChildSpec::new("session", Session, || ()).restart(Restart::Temporary);
//! let first = sessions.start_child(spec()).await.unwrap();
//! sessions.start_child(spec()).await.unwrap();
//! assert!(sessions.start_child(spec()).await.is_err(), "max_children is 2");
//! sessions.terminate_child(&first).await.unwrap();
//! assert_eq!(sessions.count_children().await.unwrap().active, 1);
//! # sessions.cell().unwrap().stop_and_wait(None, None).await.unwrap();
//! # }
//! ```

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{ActorCell, ActorRef, SpawnErr};

use crate::supervisor::actor::{self, Args, ChildKey, Mode, SupervisorMsg};
use crate::supervisor::child_ref::ChildRef;
use crate::supervisor::error::SupervisorError;
use crate::supervisor::handle::{call, ChildCounts, ChildInfo};
use crate::supervisor::intensity::RestartWindow;
use crate::supervisor::spec::{validate_period, AutoShutdown, ChildSpec, GroupStop};
use crate::supervisor::strategy::Strategy;

/// Elixir's default intensity for dynamic supervisors: 3 restarts...
pub const DEFAULT_DYNAMIC_INTENSITY: u32 = 3;
/// ...in 5 seconds.
pub const DEFAULT_DYNAMIC_PERIOD: Duration = Duration::from_secs(5);

/// Configuration of a [`DynamicSupervisor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a DynamicSpec does nothing until a supervisor is spawned with it"]
pub struct DynamicSpec {
    max_restarts: u32,
    period: Duration,
    max_children: Option<usize>,
}

impl Default for DynamicSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl DynamicSpec {
    /// Intensity 3 in 5 s, no limit on children.
    pub fn new() -> Self {
        Self {
            max_restarts: DEFAULT_DYNAMIC_INTENSITY,
            period: DEFAULT_DYNAMIC_PERIOD,
            max_children: None,
        }
    }

    /// At most `max_restarts` restarts in any window of `period`.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Refuse `start_child` once this many children exist.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Checks the spec.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] for a zero period.
    pub fn validate(&self) -> Result<(), SupervisorError> {
        validate_period(self.period)
    }
}

/// Spawns dynamic supervisors.
#[derive(Debug, Clone, Copy)]
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// Spawns a dynamic supervisor with no children.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`], [`SupervisorError::Spawn`].
    pub async fn spawn(
        name: Option<String>,
        spec: DynamicSpec,
    ) -> Result<(DynamicSupervisorRef, JoinHandle<()>), SupervisorError> {
        Self::spawn_inner(name, spec, None).await
    }

    /// As [`DynamicSupervisor::spawn`], linked to `parent`.
    ///
    /// # Errors
    ///
    /// As [`DynamicSupervisor::spawn`].
    pub async fn spawn_linked(
        name: Option<String>,
        spec: DynamicSpec,
        parent: ActorCell,
    ) -> Result<(DynamicSupervisorRef, JoinHandle<()>), SupervisorError> {
        Self::spawn_inner(name, spec, Some(parent)).await
    }

    async fn spawn_inner(
        name: Option<String>,
        spec: DynamicSpec,
        parent: Option<ActorCell>,
    ) -> Result<(DynamicSupervisorRef, JoinHandle<()>), SupervisorError> {
        let (actor, join) = spawn_dynamic_actor(name, spec, parent)
            .await
            .map_err(actor::spawn_error)?;
        Ok((DynamicSupervisorRef::fixed(actor), join))
    }
}

/// Spawns the actor of a dynamic supervisor (validated spec).
pub(crate) async fn spawn_dynamic_actor(
    name: Option<String>,
    spec: DynamicSpec,
    parent: Option<ActorCell>,
) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), SpawnErr> {
    spec.validate()
        .map_err(|e| SpawnErr::StartupFailed(Box::new(e)))?;
    let args = Args {
        strategy: Strategy::OneForOne,
        group_stop: GroupStop::InOrder,
        window: RestartWindow::new(spec.max_restarts, spec.period),
        auto_shutdown: AutoShutdown::Never,
        mode: Mode::Dynamic {
            max_children: spec.max_children,
        },
        children: Vec::new(),
        slots: Default::default(),
        on_stop: None,
        path: None,
    };
    actor::spawn_actor(name, args, parent).await
}

/// What a [`DynamicSupervisorRef`] talks to.
#[derive(Clone)]
enum Target {
    /// A supervisor spawned on its own.
    Fixed(ActorRef<SupervisorMsg>),
    /// A supervisor that is a child in a tree: follows its restarts.
    Child(ChildRef<SupervisorMsg>),
}

/// A handle to a running [`DynamicSupervisor`]. A handle obtained with
/// [`SupervisorRef::dynamic_child`](crate::SupervisorRef::dynamic_child)
/// follows the dynamic supervisor across its restarts.
#[derive(Clone)]
pub struct DynamicSupervisorRef {
    target: Target,
}

impl std::fmt::Debug for DynamicSupervisorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSupervisorRef")
            .field("actor", &self.actor().map(|a| a.get_id()))
            .finish()
    }
}

impl DynamicSupervisorRef {
    fn fixed(actor: ActorRef<SupervisorMsg>) -> Self {
        Self {
            target: Target::Fixed(actor),
        }
    }

    pub(crate) fn following(child: ChildRef<SupervisorMsg>) -> Self {
        Self {
            target: Target::Child(child),
        }
    }

    /// The current incarnation, if one runs.
    pub(crate) fn actor(&self) -> Result<ActorRef<SupervisorMsg>, SupervisorError> {
        match &self.target {
            Target::Fixed(actor) => Ok(actor.clone()),
            Target::Child(child) => child.current().ok_or(SupervisorError::NotRunning),
        }
    }

    /// The supervisor's actor; stopping it stops all children in parallel.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`] for a handle that follows a restarting
    /// child supervisor.
    pub fn cell(&self) -> Result<ActorCell, SupervisorError> {
        self.actor().map(|a| a.get_cell())
    }

    /// Starts a new child and returns its first incarnation.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::MaxChildren`], [`SupervisorError::InvalidSpec`],
    /// [`SupervisorError::FailedToStart`], [`SupervisorError::NotRunning`].
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        call(&self.actor()?, |port| SupervisorMsg::StartChild(spec, port)).await?
    }

    /// Starts one new child per spec, in order, in one round trip to the
    /// supervisor (much cheaper than one [`start_child`](Self::start_child)
    /// call each for many children); returns their first incarnations in
    /// the same order. All or none: `max_children` and every spec are
    /// checked before any starts, and if one fails to start, those this
    /// call started stop again (reverse order) and are removed.
    ///
    /// # Errors
    ///
    /// As [`start_child`](Self::start_child), for the first child that
    /// cannot be added or started.
    pub async fn start_children(
        &self,
        specs: Vec<ChildSpec>,
    ) -> Result<Vec<ActorCell>, SupervisorError> {
        call(&self.actor()?, |port| {
            SupervisorMsg::StartChildren(specs, port)
        })
        .await?
    }

    /// Stops the child whose current incarnation is `child` and removes it.
    /// A child that is restarting (waiting for its backoff, or retrying a
    /// failed start) is found by its last incarnation, and its restart is
    /// dropped (OTP's `hanging_restart_loop_simple`).
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotFound`] if `child` is neither a current child
    /// nor the last incarnation of a restarting one (for instance an
    /// incarnation that was since replaced by a running one),
    /// [`SupervisorError::NotRunning`].
    pub async fn terminate_child(&self, child: &ActorCell) -> Result<(), SupervisorError> {
        let key = ChildKey::Actor(child.clone());
        call(&self.actor()?, |port| {
            SupervisorMsg::TerminateChild(key, port)
        })
        .await?
    }

    /// Every child in the order they were added.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`].
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        call(&self.actor()?, SupervisorMsg::WhichChildren).await
    }

    /// Counts of children by state and kind.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`].
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        call(&self.actor()?, SupervisorMsg::CountChildren).await
    }

    /// The live tree below this supervisor as indented text.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::NotRunning`].
    pub async fn render_tree(&self) -> Result<String, SupervisorError> {
        crate::supervisor::handle::render_tree(&self.actor()?).await
    }
}
