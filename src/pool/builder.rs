//! [`Pool`] and [`PoolBuilder`]: configuring and spawning a pool, on its own
//! or as a child in a supervision tree.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, Message};

use crate::pool::admission::InFlightLimit;
use crate::pool::core::{CopyFn, CoreConfig, DeadLetterFn, PoolCore};
use crate::pool::error::{DeadLetter, PoolError};
use crate::pool::pool_ref::PoolRef;
use crate::pool::routing::Routing;
use crate::pool::worker::{ArgsFn, PoolWorker};
use crate::supervisor::actor::{spawn_static, Nested, SharedSlots};
use crate::supervisor::intensity::RestartWindow;
use crate::supervisor::validate_period;
use crate::supervisor::{
    Backoff, ChildKind, ChildSpec, Restart, Shutdown, Strategy, Supervisor, SupervisorSpec,
    DEFAULT_DYNAMIC_INTENSITY, DEFAULT_DYNAMIC_PERIOD, DEFAULT_WORKER_SHUTDOWN,
};

/// Builds a child spec for worker `index`.
pub(crate) type WorkerSpecFn = Arc<dyn Fn(usize) -> ChildSpec + Send + Sync>;

/// Entry point: `Pool::builder(actor, args)`.
#[derive(Debug, Clone, Copy)]
pub struct Pool;

impl Pool {
    /// A pool of `actor.clone()` workers; worker `i` starts with `args(i)`.
    ///
    /// Defaults: one worker per available core, round robin, permanent
    /// workers, intensity 3 restarts in 5 s (Elixir's, as for dynamic
    /// supervisors: a pool has many similar children), no backoff, a 5 s
    /// graceful shutdown that drains each worker's mailbox, redelivery off.
    pub fn builder<A, F>(actor: A, args: F) -> PoolBuilder<A>
    where
        A: Actor + Clone,
        F: Fn(usize) -> A::Arguments + Send + Sync + 'static,
    {
        PoolBuilder {
            actor,
            args: Arc::new(args),
            size: std::thread::available_parallelism().map_or(1, |n| n.get()),
            routing: Routing::RoundRobin,
            restart: Restart::Permanent,
            max_restarts: DEFAULT_DYNAMIC_INTENSITY,
            period: DEFAULT_DYNAMIC_PERIOD,
            backoff: None,
            shutdown: Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            redelivery: None,
            dead_letters: None,
            max_in_flight: None,
            max_waiting: None,
        }
    }
}

/// Configures a pool; finish with [`spawn`](Self::spawn),
/// [`spawn_linked`](Self::spawn_linked) or [`ChildSpec::pool`].
#[must_use = "a PoolBuilder does nothing until the pool is spawned"]
pub struct PoolBuilder<A: Actor> {
    actor: A,
    args: ArgsFn<A>,
    size: usize,
    routing: Routing,
    restart: Restart,
    max_restarts: u32,
    period: Duration,
    backoff: Option<Backoff>,
    shutdown: Shutdown,
    redelivery: Option<CopyFn<A::Msg>>,
    dead_letters: Option<DeadLetterFn<A::Msg>>,
    max_in_flight: Option<u64>,
    max_waiting: Option<usize>,
}

impl<A: Actor + Clone> PoolBuilder<A> {
    /// Number of workers (at least 1).
    pub fn size(mut self, workers: usize) -> Self {
        self.size = workers;
        self
    }

    /// How messages are spread over the workers.
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// The workers' restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// At most `max_restarts` worker restarts in any `period`; one more and
    /// the pool stops its workers and fails, like any supervisor.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Waits before restarting a failed worker.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// How long each worker gets to drain its mailbox when the pool stops or
    /// shrinks.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Called for every message the pool could not process (see
    /// [`DeadLetter`]); whatever the handler, each one is also logged and
    /// counted in [`PoolStats::dead_letters`](crate::pool::PoolStats).
    pub fn dead_letters(
        mut self,
        handler: impl Fn(DeadLetter<A::Msg>) + Send + Sync + 'static,
    ) -> Self {
        self.dead_letters = Some(Arc::new(handler));
        self
    }

    /// At most `n` unfinished messages per worker, like a broker's
    /// prefetch: a worker holding `n` messages it has not finished takes no
    /// more; the rest wait in the pool, in arrival order, and each goes to
    /// the first worker to get under its limit (usually the one that just
    /// finished a message; the router still chooses among the workers
    /// with room when a message arrives). So in a burst a slow worker
    /// holds at most `n` messages, instead of its router share.
    ///
    /// Applies to `RoundRobin`, `Random`, `Weighted`, `ConsistentHash` (a
    /// worker at its limit counts as overloaded: the key passes clockwise)
    /// and `LeastLoaded`; so under `ConsistentHash` the messages of one key
    /// keep their worker, and their order, only while it has room.
    /// `SharedQueue` workers already take one job at a time, and a
    /// [`broadcast`](crate::pool::PoolRef::broadcast) copy is never held
    /// back. Default: no limit.
    ///
    /// Waiting messages are handled as any message in the pool: when a
    /// worker fails, its mailbox waits for its restart in place and the
    /// message it was handling follows the redelivery rule; the waiting
    /// ones go to the other workers meanwhile. A graceful stop gives each
    /// worker its shutdown limit to finish its mailbox and then take what
    /// waits in the pool; what is still waiting after that becomes a dead
    /// letter. The waiting room is
    /// unbounded unless [`max_waiting`](Self::max_waiting) bounds it.
    ///
    /// # Errors
    ///
    /// [`spawn`](Self::spawn) refuses `n = 0` with
    /// [`PoolError::InvalidLimit`].
    pub fn max_in_flight(mut self, n: u64) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// At most `n` messages waiting in the pool: for a worker under its
    /// [in-flight limit](Self::max_in_flight), for a worker to come up, or
    /// in a shared queue. A cast that finds the room full gets its message
    /// back ([`PoolCastError::Full`](crate::pool::PoolCastError::Full)).
    /// Messages taken back from a worker that failed or gave up were
    /// accepted already and are never refused, so the room may briefly hold
    /// more. `0` means never wait: a cast that finds no worker free at once
    /// is handed back (not for `SharedQueue`, where every job passes
    /// through the queue). Default: unbounded (as ractor's mailboxes).
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = Some(n);
        self
    }

    fn validate(&self) -> Result<(), PoolError> {
        if self.size == 0 {
            return Err(PoolError::ZeroSize);
        }
        if self.max_in_flight == Some(0) {
            return Err(PoolError::InvalidLimit(
                "max_in_flight must be at least 1 (a worker at 0 would take nothing)".into(),
            ));
        }
        if self.max_waiting == Some(0) && matches!(self.routing, Routing::SharedQueue(_)) {
            return Err(PoolError::InvalidLimit(
                "max_waiting must be at least 1 for SharedQueue routing (every job waits in the queue)"
                    .into(),
            ));
        }
        self.routing.validate(self.size)?;
        validate_period(self.period)?;
        Ok(())
    }

    /// The shared core and the factory of worker specs.
    fn parts(self) -> (Arc<PoolCore<A::Msg>>, WorkerSpecFn, PoolPlan) {
        let core = Arc::new(PoolCore::new(CoreConfig {
            routing: self.routing.clone(),
            size: self.size,
            redelivery: self.redelivery,
            dead_letter_handler: self.dead_letters.clone(),
            window: RestartWindow::new(self.max_restarts, self.period),
            limit: match (self.max_in_flight, &self.routing) {
                (Some(n), routing) if !matches!(routing, Routing::SharedQueue(_)) => {
                    InFlightLimit::at_most(n)
                }
                _ => InFlightLimit::UNLIMITED,
            },
            max_waiting: self.max_waiting,
            temporary: self.restart == Restart::Temporary,
            can_end: self.restart != Restart::Permanent,
        }));
        let plan = PoolPlan {
            max_restarts: self.max_restarts,
            period: self.period,
            weighted: matches!(self.routing, Routing::Weighted(_)),
        };
        let worker_core = core.clone();
        let Self {
            actor,
            args,
            restart,
            backoff,
            shutdown,
            ..
        } = self;
        let worker_spec: WorkerSpecFn = Arc::new(move |index| {
            let worker = PoolWorker {
                inner: actor.clone(),
                index,
                core: worker_core.clone(),
                args: args.clone(),
                restart,
                backoff,
            };
            let mut spec = ChildSpec::new(worker_id(index), worker, || ())
                .restart(restart)
                .shutdown(shutdown);
            if let Some(backoff) = backoff {
                spec = spec.backoff(backoff);
            }
            spec.drain_on_stop = true;
            // The supervisor lets an ended worker stay down (temporary, or
            // transient that ended normally): the pool stops counting it.
            // What it still counted died in its mailbox (killed: no
            // `post_stop` detached it); after a `post_stop` that is nothing.
            let ended_core = worker_core.clone();
            spec.on_ended = Some(Arc::new(move || {
                if let Some(worker) = ended_core.worker(index) {
                    ended_core.worker_gone(&worker, true);
                }
            }));
            spec
        });
        (core, worker_spec, plan)
    }

    /// Validates and spawns the pool (its supervisor and workers); returns
    /// once every worker has started.
    ///
    /// # Errors
    ///
    /// [`PoolError::ZeroSize`], [`PoolError::InvalidRouting`], or
    /// [`PoolError::Supervisor`] (invalid intensity, a worker that failed to
    /// start, a name already registered).
    pub async fn spawn(self, name: Option<String>) -> Result<PoolRef<A::Msg>, PoolError> {
        self.spawn_inner(name, None).await
    }

    /// As [`spawn`](Self::spawn), linked to `parent`, which sees the pool
    /// fail if its workers exceed the restart intensity.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    pub async fn spawn_linked(
        self,
        name: Option<String>,
        parent: ActorCell,
    ) -> Result<PoolRef<A::Msg>, PoolError> {
        self.spawn_inner(name, Some(parent)).await
    }

    async fn spawn_inner(
        self,
        name: Option<String>,
        parent: Option<ActorCell>,
    ) -> Result<PoolRef<A::Msg>, PoolError> {
        self.validate()?;
        let (core, worker_spec, plan) = self.parts();
        core.set_label(name.clone().unwrap_or_else(|| "pool".to_string()));
        let spec = plan.supervisor_spec(&core, &worker_spec);
        let sup = match parent {
            Some(parent) => Supervisor::spawn_linked(name, spec, parent).await?.0,
            None => Supervisor::spawn(name, spec).await?.0,
        };
        *lock!(core.supervisor.write()) = Some(sup);
        Ok(PoolRef::new(core, worker_spec, plan.weighted))
    }
}

impl<A: Actor + Clone> PoolBuilder<A>
where
    A::Msg: Clone,
{
    /// With redelivery on, the message a worker was handling when it failed
    /// is handed to another worker (at least once; a message that makes
    /// every worker fail is retried until the pool's restart intensity stops
    /// it). Off (the default), it is reported as a dead letter. Messages
    /// queued at a failed worker stay in its mailbox either way: the worker
    /// restarts in place and handles them.
    pub fn redelivery(mut self, on: bool) -> Self {
        self.redelivery = on.then_some(<A::Msg as Clone>::clone as CopyFn<A::Msg>);
        self
    }
}

/// What the pool's supervisor is built from.
#[derive(Debug, Clone, Copy)]
struct PoolPlan {
    max_restarts: u32,
    period: Duration,
    weighted: bool,
}

impl PoolPlan {
    /// A one-for-one supervisor over the workers that reports leftovers as
    /// dead letters when it stops for good.
    fn supervisor_spec<M: Message>(
        &self,
        core: &Arc<PoolCore<M>>,
        worker_spec: &WorkerSpecFn,
    ) -> SupervisorSpec {
        let size = core.positions();
        let mut spec =
            SupervisorSpec::new(Strategy::OneForOne).intensity(self.max_restarts, self.period);
        for index in 0..size {
            spec = spec.child(worker_spec(index));
        }
        let stop_core = core.clone();
        spec.on_stop = Some(Arc::new(move || stop_core.stop()));
        spec
    }
}

/// A pool's name in tracing: its path under a named parent (`root/hashers`),
/// or its child id under an unnamed one.
fn pool_path(parent: Option<&str>, id: &str) -> String {
    match parent {
        Some(parent) => format!("{parent}/{id}"),
        None => id.to_string(),
    }
}

/// The supervisor's id for worker `index`.
pub(crate) fn worker_id(index: usize) -> String {
    format!("worker-{index}")
}

impl ChildSpec {
    /// A pool as a child in a supervision tree, and the handle to it. The
    /// handle follows the pool across restarts by its parent (workers start
    /// afresh; their statistics carry over).
    ///
    /// # Errors
    ///
    /// [`PoolError::ZeroSize`], [`PoolError::InvalidRouting`] or an invalid
    /// intensity, before anything starts.
    pub fn pool<A>(
        id: impl Into<String>,
        builder: PoolBuilder<A>,
    ) -> Result<(ChildSpec, PoolRef<A::Msg>), PoolError>
    where
        A: Actor + Clone,
    {
        builder.validate()?;
        let (core, worker_spec, plan) = builder.parts();
        let handle = PoolRef::new(core.clone(), worker_spec.clone(), plan.weighted);
        let slots = SharedSlots::default();
        let nested = Nested::Static(slots.clone());
        let id: String = id.into();
        let child_id = id.clone();
        let spec = ChildSpec::from_start(id, ChildKind::Supervisor, nested, move |parent| {
            core.restart();
            core.set_label(pool_path(parent.get_name().as_deref(), &child_id));
            let spec = plan.supervisor_spec(&core, &worker_spec);
            let core = core.clone();
            let slots = slots.clone();
            async move {
                // Inside the parent's start: named by the full path in the
                // tree, as the pool's own supervisor is.
                if let Some(path) = crate::supervisor::actor::child_path(&parent) {
                    core.set_label(path);
                }
                let (sup, _join) = spawn_static(None, spec, Some(parent), slots).await?;
                let actor = sup.actor.clone();
                *lock!(core.supervisor.write()) = Some(sup);
                Ok(actor)
            }
        });
        Ok((spec, handle))
    }
}
