//! Criterion benchmarks of supervision overhead, each next to a raw-ractor
//! baseline measured in the same group (see `BENCHMARKS.md`):
//!
//! 1. `cast_throughput`: casts through a [`ChildRef`] vs the raw `ActorRef`
//!    of the same actor;
//! 2. `restart_latency`: a failing child until its new incarnation answers,
//!    one-for-one and one-for-all (10 children), vs spawning a fresh actor
//!    that answers a call, vs a minimal hand-written restarter, and a plain
//!    call round trip for reference;
//! 3. `spawn_stop_1000`: 1,000 children under a `DynamicSupervisor`,
//!    started and stopped, vs 1,000 `spawn_linked` children of a plain
//!    ractor parent (spawned directly, and spawned by the parent on request
//!    to separate the cost of the `start_child` round trips).
//!
//! Every bench runs on one multi-thread tokio runtime with 2 workers, and
//! the measured code runs as a task on that runtime (not on the bench
//! thread), baselines included.
//!
//! Run with `cargo bench --bench supervision`.

#![warn(clippy::missing_docs_in_private_items)]

mod common;

use common::{on_runtime, paired_ratio, runtime};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use ractor_otp::{
    ChildRef, ChildSpec, DynamicSpec, DynamicSupervisor, GroupStop, Strategy, Supervisor,
    SupervisorExit, SupervisorRef, SupervisorSpec,
};
use tokio::runtime::Runtime;

/// Casts per round of the throughput bench.
const CASTS: u64 = 10_000;
/// Children in the one-for-all restart bench.
const GROUP: usize = 10;
/// Children started and stopped per round of the spawn+stop bench.
const SPAWNED: usize = 1_000;
/// The same, in the bench at scale.
const SPAWNED_MANY: usize = 10_000;
/// Group sizes of the one-for-all restart bench at scale.
const GROUPS: [usize; 3] = [10, 100, 1_000];
/// How long one ping of a restart bench waits for its answer.
const PING_LIMIT: Duration = Duration::from_secs(1);
/// Upper bound on polls while waiting for a new incarnation (no sleeping).
const MAX_POLLS: u32 = 10_000_000;

// ---------------------------------------------------------------------------
// Actors

/// Messages of the benchmarked worker.
enum Msg {
    /// Counted and otherwise ignored: the trivial message of the cast bench.
    Tick,
    /// Makes the handler return `Err`, a failure its supervisor restarts.
    Crash,
    /// Answers with the incarnation's id and the ticks it has counted.
    Ping(RpcReplyPort<(ActorId, u64)>),
}

/// The benchmarked worker: counts ticks, fails on demand.
#[derive(Clone)]
struct Worker;

impl Actor for Worker {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        ticks: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Tick => *ticks += 1,
            Msg::Crash => return Err("asked to crash".into()),
            Msg::Ping(port) => {
                let _ = port.send((myself.get_id(), *ticks));
            }
        }
        Ok(())
    }
}

/// Requests to the plain [`Parent`].
enum ParentMsg {
    /// Spawn one linked [`Worker`] and answer once it is started: the same
    /// round trip as `DynamicSupervisorRef::start_child`, without the
    /// supervisor's bookkeeping.
    SpawnChild(RpcReplyPort<()>),
}

/// A plain ractor parent: links children, ignores their exits, and stops
/// them all (in parallel, ractor's `stop_children_and_wait`) when it stops.
struct Parent;

impl Actor for Parent {
    type Msg = ParentMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<ParentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ParentMsg>,
        msg: ParentMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let ParentMsg::SpawnChild(port) = msg;
        Worker::spawn_linked(None, Worker, (), myself.get_cell()).await?;
        let _ = port.send(());
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<ParentMsg>,
        _: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ParentMsg>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        myself.stop_children_and_wait(None, None).await;
        Ok(())
    }
}

/// The current incarnation of the hand-written restarter's child.
type RawSlot = Arc<RwLock<Option<ActorRef<Msg>>>>;

/// The least a ractor parent must do to restart a failed child by hand:
/// respawn it linked on `ActorFailed` and publish it in a shared slot. No
/// intensity, strategy, bookkeeping or tracing; the floor for bench 2.
struct RawRestarter;

impl Actor for RawRestarter {
    type Msg = ();
    type State = RawSlot;
    type Arguments = RawSlot;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        slot: RawSlot,
    ) -> Result<RawSlot, ActorProcessingErr> {
        let (child, _) = Worker::spawn_linked(None, Worker, (), myself.get_cell()).await?;
        *slot.write().expect("slot lock") = Some(child);
        Ok(slot)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        slot: &mut RawSlot,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(..) = event {
            *slot.write().expect("slot lock") = None;
            let (child, _) = Worker::spawn_linked(None, Worker, (), myself.get_cell()).await?;
            *slot.write().expect("slot lock") = Some(child);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<()>,
        _: &mut RawSlot,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop_children_and_wait(None, None).await;
        Ok(())
    }
}

/// The current incarnations of the [`RawGroupRestarter`]'s children.
type RawGroup = Arc<RwLock<Vec<Option<ActorRef<Msg>>>>>;

/// What a [`RawGroupRestarter`] runs.
struct RawGroupArgs {
    /// Published incarnations, one per child.
    slots: RawGroup,
    /// Number of children.
    size: usize,
    /// Stop the siblings all at once (`true`) or one at a time in reverse
    /// start order, as OTP's one-for-all (`false`).
    parallel: bool,
}

/// A hand-written one-for-all restarter: on any child's failure it stops
/// the others (in parallel, or in reverse order one at a time), respawns
/// all of them in order and publishes them. No intensity, no bookkeeping,
/// no shutdown timeouts, no tracing: the floor for the group restart bench.
struct RawGroupRestarter;

impl Actor for RawGroupRestarter {
    type Msg = ();
    type State = (RawGroupArgs, Vec<ActorRef<Msg>>);
    type Arguments = RawGroupArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: RawGroupArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let children = spawn_group(&myself, &args).await?;
        Ok((args, children))
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        (args, children): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(failed, _) = event else {
            return Ok(());
        };
        args.slots.write().expect("slots lock").fill(None);
        let others: Vec<ActorRef<Msg>> = children
            .drain(..)
            .filter(|c| c.get_id() != failed.get_id())
            .collect();
        if args.parallel {
            for child in &others {
                child.stop(None);
            }
            for child in &others {
                let _ = child.wait(None).await;
            }
        } else {
            for child in others.iter().rev() {
                let _ = child.stop_and_wait(None, None).await;
            }
        }
        *children = spawn_group(&myself, args).await?;
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<()>,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop_children_and_wait(None, None).await;
        Ok(())
    }
}

/// Spawns the [`RawGroupRestarter`]'s children in order, publishing each.
async fn spawn_group(
    parent: &ActorRef<()>,
    args: &RawGroupArgs,
) -> Result<Vec<ActorRef<Msg>>, ActorProcessingErr> {
    let mut children = Vec::with_capacity(args.size);
    for i in 0..args.size {
        let (child, _) = Worker::spawn_linked(None, Worker, (), parent.get_cell()).await?;
        args.slots.write().expect("slots lock")[i] = Some(child.clone());
        children.push(child);
    }
    Ok(children)
}

// ---------------------------------------------------------------------------
// Helpers

/// A one-for-one or one-for-all spec with `children` workers `w0`, `w1`...
/// and an intensity no bench can exceed.
fn spec(strategy: Strategy, children: usize) -> SupervisorSpec {
    (0..children).fold(
        SupervisorSpec::new(strategy).intensity(u32::MAX, Duration::from_secs(1)),
        |spec, i| spec.child(ChildSpec::new(format!("w{i}"), Worker, || ())),
    )
}

/// The id of the incarnation that answers a ping through `child`, if any.
async fn ping(child: &ChildRef<Msg>) -> Option<ActorId> {
    ping_actor(&child.current()?).await
}

/// The id of `actor` if it answers a ping within [`PING_LIMIT`]. Every
/// restart bench polls through this, supervised or by hand, so that they
/// poll alike. The limit only matters in a rare race: a ping enqueued as
/// the incarnation stops can stay in its closed mailbox (ractor), and
/// without a limit that ping would wait forever (it hung the bench's
/// warm-up before); `ChildRef::call` ends such a call when the incarnation
/// ends, but the baselines must not pay for that guard or be spared it.
async fn ping_actor(actor: &ActorRef<Msg>) -> Option<ActorId> {
    match actor.call(Msg::Ping, Some(PING_LIMIT)).await {
        Ok(ractor::rpc::CallResult::Success((id, _))) => Some(id),
        _ => None,
    }
}

/// Polls `child` until an incarnation other than `old` answers a call,
/// yielding between polls; panics after [`MAX_POLLS`].
async fn answered_by_new(child: &ChildRef<Msg>, old: ActorId) {
    for _ in 0..MAX_POLLS {
        if ping(child).await.is_some_and(|id| id != old) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("child `{}` was not restarted", child.id());
}

/// The id of the running incarnation behind `child`.
fn current_id(child: &ChildRef<Msg>) -> ActorId {
    child.current().expect("child is running").get_id()
}

// ---------------------------------------------------------------------------
// 1. Cast throughput

/// `iters` rounds of [`CASTS`] casts through a `ChildRef`, each round ending
/// with a call so that the actor has handled every cast.
async fn cast_via_child_ref(child: ChildRef<Msg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..CASTS {
            assert!(child.cast(Msg::Tick).is_ok(), "cast refused");
        }
        let (_, ticks) = child.call(Msg::Ping, None).await.expect("ping");
        assert_eq!(ticks % CASTS, 0, "every cast handled");
    }
    start.elapsed()
}

/// As [`cast_via_child_ref`], through the raw `ActorRef` of the same actor.
async fn cast_via_actor_ref(actor: ActorRef<Msg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..CASTS {
            assert!(actor.cast(Msg::Tick).is_ok(), "cast refused");
        }
        let reply = actor.call(Msg::Ping, None).await.expect("ping");
        let (_, ticks) = reply.expect("answered");
        assert_eq!(ticks % CASTS, 0, "every cast handled");
    }
    start.elapsed()
}

/// Bench 1: `ChildRef::cast` vs `ActorRef::cast` on the same actor.
fn bench_cast(c: &mut Criterion, rt: &Runtime) {
    let (sup, join) = rt
        .block_on(Supervisor::spawn(None, spec(Strategy::OneForOne, 1)))
        .expect("supervisor");
    let child = sup.child::<Msg>("w0").expect("child w0");
    let actor = child.current().expect("w0 running");

    let mut group = c.benchmark_group("cast_throughput");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(CASTS));
    group.bench_function(BenchmarkId::new("raw_actor_ref", CASTS), |b| {
        b.iter_custom(|iters| on_runtime(rt, cast_via_actor_ref(actor.clone(), iters)));
    });
    group.bench_function(BenchmarkId::new("child_ref", CASTS), |b| {
        b.iter_custom(|iters| on_runtime(rt, cast_via_child_ref(child.clone(), iters)));
    });
    group.finish();

    rt.block_on(async {
        sup.stop(None).await.expect("stop");
        join.await;
    });
}

// ---------------------------------------------------------------------------
// 2. Restart latency

/// `iters` one-for-one restarts: from the failing cast until the new
/// incarnation answers a call.
async fn restart_one_for_one(child: ChildRef<Msg>, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let old = current_id(&child);
        let start = Instant::now();
        assert!(child.cast(Msg::Crash).is_ok(), "cast refused");
        answered_by_new(&child, old).await;
        total += start.elapsed();
    }
    total
}

/// `iters` one-for-all restarts: the last child fails; timed until every
/// child's new incarnation has answered a call.
async fn restart_one_for_all(children: Vec<ChildRef<Msg>>, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let old: Vec<ActorId> = children.iter().map(current_id).collect();
        let start = Instant::now();
        let last = children.last().expect("children");
        assert!(last.cast(Msg::Crash).is_ok(), "cast refused");
        for (child, old) in children.iter().zip(old) {
            answered_by_new(child, old).await;
        }
        total += start.elapsed();
    }
    total
}

/// Baseline: spawn a fresh actor (linked to a plain parent, as a supervisor
/// links its children) and have it answer a call. Stopping it is not timed.
async fn raw_spawn_and_call(parent: ActorCell, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let (actor, join) = Worker::spawn_linked(None, Worker, (), parent.clone())
            .await
            .expect("spawn");
        let reply = actor.call(Msg::Ping, None).await.expect("ping");
        assert!(reply.is_success(), "answered");
        total += start.elapsed();
        actor.stop(None);
        join.await.expect("worker task");
    }
    total
}

/// Reference: one call round trip to an actor that is already running (no
/// spawn), the last step of every restart bench.
async fn raw_call_roundtrip(actor: ActorRef<Msg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let reply = actor.call(Msg::Ping, None).await.expect("ping");
        assert!(reply.is_success(), "answered");
    }
    start.elapsed()
}

/// Second baseline: a failing child of the hand-written [`RawRestarter`],
/// timed until its new incarnation answers a call.
async fn raw_restart_by_hand(slot: RawSlot, iters: u64) -> Duration {
    let current = || slot.read().expect("slot lock").clone();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let old = current().expect("running");
        let old_id = old.get_id();
        let start = Instant::now();
        assert!(old.cast(Msg::Crash).is_ok(), "cast refused");
        let mut polls = 0;
        loop {
            if let Some(actor) = current() {
                if ping_actor(&actor).await.is_some_and(|id| id != old_id) {
                    break;
                }
            }
            polls += 1;
            assert!(polls < MAX_POLLS, "raw child was not restarted");
            tokio::task::yield_now().await;
        }
        total += start.elapsed();
    }
    total
}

/// `iters` restarts of a [`RawGroupRestarter`]'s group: its last child
/// fails; timed until every child's new incarnation has answered a call.
async fn raw_group_restart(slots: RawGroup, iters: u64) -> Duration {
    let current = |i: usize| slots.read().expect("slots lock")[i].clone();
    let size = slots.read().expect("slots lock").len();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let old: Vec<ActorId> = (0..size)
            .map(|i| current(i).expect("running").get_id())
            .collect();
        let start = Instant::now();
        let last = current(size - 1).expect("running");
        assert!(last.cast(Msg::Crash).is_ok(), "cast refused");
        for (i, old) in old.into_iter().enumerate() {
            let mut polls = 0;
            loop {
                if let Some(actor) = current(i) {
                    if ping_actor(&actor).await.is_some_and(|id| id != old) {
                        break;
                    }
                }
                polls += 1;
                assert!(polls < MAX_POLLS, "raw group was not restarted");
                tokio::task::yield_now().await;
            }
        }
        total += start.elapsed();
    }
    total
}

/// A one-for-all supervisor of `size` workers stopping its group `how`,
/// and handles to them.
async fn one_for_all_group_with(
    size: usize,
    how: GroupStop,
) -> (SupervisorRef, SupervisorExit, Vec<ChildRef<Msg>>) {
    let (sup, exit) = Supervisor::spawn(None, spec(Strategy::OneForAll, size).group_stop(how))
        .await
        .expect("one-for-all supervisor");
    let children = (0..size)
        .map(|i| sup.child::<Msg>(&format!("w{i}")).expect("child"))
        .collect();
    (sup, exit, children)
}

/// A one-for-all supervisor of `size` workers (OTP's reverse-order stop).
async fn one_for_all_group(size: usize) -> (SupervisorRef, SupervisorExit, Vec<ChildRef<Msg>>) {
    one_for_all_group_with(size, GroupStop::InOrder).await
}

/// A [`RawGroupRestarter`] of `size` workers and its published slots.
async fn raw_group(size: usize, parallel: bool) -> (ActorRef<()>, RawGroup) {
    let slots: RawGroup = Arc::new(RwLock::new(vec![None; size]));
    let args = RawGroupArgs {
        slots: slots.clone(),
        size,
        parallel,
    };
    let (restarter, _) = Actor::spawn(None, RawGroupRestarter, args)
        .await
        .expect("raw group restarter");
    (restarter, slots)
}

/// Bench 2b: one-for-all restarts of 10, 100 and 1,000 children vs the
/// hand-written restarter stopping the siblings in parallel and in reverse
/// order one at a time.
fn bench_group_restart(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("one_for_all_restart");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in GROUPS {
        let (sup, exit, children) = rt.block_on(one_for_all_group(size));
        let (parallel, parallel_slots) = rt.block_on(raw_group(size, true));
        let (sequential, sequential_slots) = rt.block_on(raw_group(size, false));
        group.bench_function(BenchmarkId::new("raw_parallel_stop", size), |b| {
            b.iter_custom(|iters| on_runtime(rt, raw_group_restart(parallel_slots.clone(), iters)));
        });
        group.bench_function(BenchmarkId::new("raw_reverse_order_stop", size), |b| {
            b.iter_custom(|iters| {
                on_runtime(rt, raw_group_restart(sequential_slots.clone(), iters))
            });
        });
        group.bench_function(BenchmarkId::new("supervisor", size), |b| {
            b.iter_custom(|iters| on_runtime(rt, restart_one_for_all(children.clone(), iters)));
        });
        rt.block_on(async {
            sup.stop(None).await.expect("stop");
            exit.await;
            for restarter in [parallel, sequential] {
                restarter.stop_and_wait(None, None).await.expect("stop");
            }
        });
    }
    group.finish();
}

/// Bench 2: restart latency, one-for-one and one-for-all, vs raw respawns.
fn bench_restart(c: &mut Criterion, rt: &Runtime) {
    let (one, one_join) = rt
        .block_on(Supervisor::spawn(None, spec(Strategy::OneForOne, 1)))
        .expect("one-for-one supervisor");
    let one_child = one.child::<Msg>("w0").expect("child w0");
    let (all, all_join) = rt
        .block_on(Supervisor::spawn(None, spec(Strategy::OneForAll, GROUP)))
        .expect("one-for-all supervisor");
    let all_children: Vec<ChildRef<Msg>> = (0..GROUP)
        .map(|i| all.child::<Msg>(&format!("w{i}")).expect("child"))
        .collect();
    let (parent, parent_join) = rt.block_on(Actor::spawn(None, Parent, ())).expect("parent");
    let (echo, echo_join) = rt.block_on(Actor::spawn(None, Worker, ())).expect("echo");
    let slot = RawSlot::default();
    let (restarter, restarter_join) = rt
        .block_on(Actor::spawn(None, RawRestarter, slot.clone()))
        .expect("restarter");

    let mut group = c.benchmark_group("restart_latency");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("raw_call_roundtrip", |b| {
        b.iter_custom(|iters| on_runtime(rt, raw_call_roundtrip(echo.clone(), iters)));
    });
    group.bench_function("raw_spawn_and_call", |b| {
        b.iter_custom(|iters| on_runtime(rt, raw_spawn_and_call(parent.get_cell(), iters)));
    });
    group.bench_function("raw_restart_by_hand", |b| {
        b.iter_custom(|iters| on_runtime(rt, raw_restart_by_hand(slot.clone(), iters)));
    });
    group.bench_function("one_for_one", |b| {
        b.iter_custom(|iters| on_runtime(rt, restart_one_for_one(one_child.clone(), iters)));
    });
    group.bench_function(BenchmarkId::new("one_for_all", GROUP), |b| {
        b.iter_custom(|iters| on_runtime(rt, restart_one_for_all(all_children.clone(), iters)));
    });
    group.finish();

    rt.block_on(async {
        for cell in [
            one.cell(),
            all.cell(),
            parent.get_cell(),
            echo.get_cell(),
            restarter.get_cell(),
        ] {
            cell.stop_and_wait(None, None).await.expect("stop");
        }
        for join in [one_join, all_join] {
            join.await;
        }
        for join in [parent_join, echo_join, restarter_join] {
            join.await.expect("actor task");
        }
    });
}

// ---------------------------------------------------------------------------
// 3. Spawn and stop 1,000 children

/// `iters` rounds of: spawn a dynamic supervisor, start `n` children in
/// it, one `start_child` call each, stop it and wait until it (and so every
/// child) is gone.
async fn supervised_spawn_stop(n: usize, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let (sup, join) = DynamicSupervisor::spawn(None, DynamicSpec::new())
            .await
            .expect("dynamic supervisor");
        for _ in 0..n {
            sup.start_child(ChildSpec::new("w", Worker, || ()))
                .await
                .expect("start_child");
        }
        let cell = sup.cell().expect("running");
        cell.stop_and_wait(None, None).await.expect("stop");
        join.await.expect("supervisor task");
    }
    start.elapsed()
}

/// As [`supervised_spawn_stop`], with the `n` children started by one
/// `start_children` call (one round trip).
async fn supervised_spawn_stop_batch(n: usize, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let (sup, join) = DynamicSupervisor::spawn(None, DynamicSpec::new())
            .await
            .expect("dynamic supervisor");
        let specs = (0..n).map(|_| ChildSpec::new("w", Worker, || ())).collect();
        sup.start_children(specs).await.expect("start_children");
        let cell = sup.cell().expect("running");
        cell.stop_and_wait(None, None).await.expect("stop");
        join.await.expect("supervisor task");
    }
    start.elapsed()
}

/// Baseline: spawn a plain parent, `n` `spawn_linked` children under it,
/// stop it (it stops its children) and wait.
async fn raw_spawn_stop(n: usize, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let (parent, join) = Actor::spawn(None, Parent, ()).await.expect("parent");
        for _ in 0..n {
            Worker::spawn_linked(None, Worker, (), parent.get_cell())
                .await
                .expect("spawn_linked");
        }
        parent.stop_and_wait(None, None).await.expect("stop");
        join.await.expect("parent task");
    }
    start.elapsed()
}

/// Decomposition: as [`raw_spawn_stop`], but each child is spawned by the
/// parent on request (one call per child), the shape of `start_child`.
async fn raw_spawn_stop_by_call(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let (parent, join) = Actor::spawn(None, Parent, ()).await.expect("parent");
        for _ in 0..SPAWNED {
            let reply = parent
                .call(ParentMsg::SpawnChild, None)
                .await
                .expect("spawn request");
            assert!(reply.is_success(), "child spawned");
        }
        parent.stop_and_wait(None, None).await.expect("stop");
        join.await.expect("parent task");
    }
    start.elapsed()
}

/// Bench 3: 1,000 (and 10,000) children started and stopped, supervised
/// (one call per child, and one batch) vs raw.
fn bench_spawn_stop(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("spawn_stop_1000");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(SPAWNED as u64));
    group.bench_function(BenchmarkId::new("raw_spawn_linked", SPAWNED), |b| {
        b.iter_custom(|iters| on_runtime(rt, raw_spawn_stop(SPAWNED, iters)));
    });
    group.bench_function(BenchmarkId::new("raw_spawn_linked_by_call", SPAWNED), |b| {
        b.iter_custom(|iters| on_runtime(rt, raw_spawn_stop_by_call(iters)));
    });
    group.bench_function(BenchmarkId::new("dynamic_supervisor", SPAWNED), |b| {
        b.iter_custom(|iters| on_runtime(rt, supervised_spawn_stop(SPAWNED, iters)));
    });
    group.bench_function(BenchmarkId::new("dynamic_supervisor_batch", SPAWNED), |b| {
        b.iter_custom(|iters| on_runtime(rt, supervised_spawn_stop_batch(SPAWNED, iters)));
    });
    group.finish();

    let mut group = c.benchmark_group("spawn_stop_10000");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(SPAWNED_MANY as u64));
    group.bench_function(BenchmarkId::new("raw_spawn_linked", SPAWNED_MANY), |b| {
        b.iter_custom(|iters| on_runtime(rt, raw_spawn_stop(SPAWNED_MANY, iters)));
    });
    group.bench_function(BenchmarkId::new("dynamic_supervisor", SPAWNED_MANY), |b| {
        b.iter_custom(|iters| on_runtime(rt, supervised_spawn_stop(SPAWNED_MANY, iters)));
    });
    group.bench_function(
        BenchmarkId::new("dynamic_supervisor_batch", SPAWNED_MANY),
        |b| {
            b.iter_custom(|iters| on_runtime(rt, supervised_spawn_stop_batch(SPAWNED_MANY, iters)));
        },
    );
    group.finish();
}

// ---------------------------------------------------------------------------
// Paired check of the two ratio targets

/// Interleaved rounds per variant in [`paired_check`]'s cast comparison.
const PAIRED_CAST_ROUNDS: usize = 300;
/// Interleaved rounds per variant in [`paired_check`]'s spawn+stop comparison.
const PAIRED_SPAWN_ROUNDS: usize = 40;

/// Prints the two ratio targets measured as interleaved pairs of rounds.
///
/// Criterion measures each bench of a group one after the other; on a small
/// machine the scheduling of the 2 workers drifts between those windows by
/// more than the effect measured. Interleaving the variant and its baseline
/// round by round cancels that drift, so this is the check the ratio
/// verdicts in `BENCHMARKS.md` rest on (the criterion medians are reported
/// next to it).
fn paired_check(rt: &Runtime) {
    let (cast, spawn) = rt.block_on(async {
        tokio::spawn(async {
            let mut cast = None;
            if paired_wanted("paired-cast") {
                let (sup, join) = Supervisor::spawn(None, spec(Strategy::OneForOne, 1))
                    .await
                    .expect("supervisor");
                let child = sup.child::<Msg>("w0").expect("child w0");
                let actor = child.current().expect("w0 running");
                // Time per round: raw / ChildRef is ChildRef's relative throughput.
                cast = Some(
                    paired_ratio(
                        PAIRED_CAST_ROUNDS,
                        PAIRED_CAST_ROUNDS / 5,
                        || cast_via_actor_ref(actor.clone(), 1),
                        || cast_via_child_ref(child.clone(), 1),
                    )
                    .await,
                );
                sup.stop(None).await.expect("stop");
                join.await;
            }
            let mut spawn = None;
            if paired_wanted("paired-spawn") {
                spawn = Some(
                    paired_ratio(
                        PAIRED_SPAWN_ROUNDS,
                        PAIRED_SPAWN_ROUNDS / 5,
                        || supervised_spawn_stop(SPAWNED, 1),
                        || raw_spawn_stop(SPAWNED, 1),
                    )
                    .await,
                );
            }
            (cast, spawn)
        })
        .await
        .expect("paired check task")
    });
    if let Some((raw, child, ratio)) = cast {
        println!(
            "paired check ({PAIRED_CAST_ROUNDS} interleaved pairs of {CASTS} casts): median \
             round raw ActorRef {raw:.2?}, ChildRef {child:.2?}; ChildRef throughput = \
             {ratio:.3} x raw (target >= 0.9)"
        );
    }
    if let Some((supervised, raw, ratio)) = spawn {
        println!(
            "paired check ({PAIRED_SPAWN_ROUNDS} interleaved pairs of {SPAWNED} children): \
             median round supervised {supervised:.2?}, raw {raw:.2?}; supervised = {ratio:.2} x \
             raw (target <= 2)"
        );
    }
}

/// Interleaved rounds per variant in [`paired_check_scale`]'s group restarts.
const PAIRED_GROUP_ROUNDS: [usize; 3] = [1000, 400, 40];
/// Restarts per round in [`paired_check_scale`]'s one-for-one comparison.
const PAIRED_ONE_FOR_ONE_RESTARTS: u64 = 100;

/// Prints the ratios of the supervision speed targets as interleaved pairs
/// of rounds (see [`paired_check`]): batch starts against raw spawns, and
/// restarts against the hand-written restarters.
fn paired_check_scale(rt: &Runtime) {
    let lines = rt.block_on(async {
        tokio::spawn(async {
            let mut lines = Vec::new();
            if paired_wanted("paired-batch") {
                let (batch, raw, ratio) = paired_ratio(
                    PAIRED_SPAWN_ROUNDS,
                    PAIRED_SPAWN_ROUNDS / 5,
                    || supervised_spawn_stop_batch(SPAWNED, 1),
                    || raw_spawn_stop(SPAWNED, 1),
                )
                .await;
                lines.push(format!(
                    "spawn+stop {SPAWNED}, start_children: {batch:.2?} vs raw {raw:.2?} = {ratio:.2} x \
                     (target <= 2)"
                ));
                let (batch, raw, ratio) = paired_ratio(
                    PAIRED_SPAWN_ROUNDS / 4,
                    2,
                    || supervised_spawn_stop_batch(SPAWNED_MANY, 1),
                    || raw_spawn_stop(SPAWNED_MANY, 1),
                )
                .await;
                lines.push(format!(
                    "spawn+stop {SPAWNED_MANY}, start_children: {batch:.2?} vs raw {raw:.2?} = \
                     {ratio:.2} x (target <= 2)"
                ));
                let (per_call, raw, ratio) = paired_ratio(
                    PAIRED_SPAWN_ROUNDS / 4,
                    2,
                    || supervised_spawn_stop(SPAWNED_MANY, 1),
                    || raw_spawn_stop(SPAWNED_MANY, 1),
                )
                .await;
                lines.push(format!(
                    "spawn+stop {SPAWNED_MANY}, start_child each: {per_call:.2?} vs raw {raw:.2?} = \
                     {ratio:.2} x"
                ));
            }
            if paired_wanted("paired-one-for-all") {
                for (size, rounds) in GROUPS.into_iter().zip(PAIRED_GROUP_ROUNDS) {
                    let (sup, exit, children) = one_for_all_group(size).await;
                    let (parallel, parallel_slots) = raw_group(size, true).await;
                    let (sequential, sequential_slots) = raw_group(size, false).await;
                    let (ours, floor, vs_parallel) = paired_ratio(
                        rounds,
                        rounds / 5,
                        || restart_one_for_all(children.clone(), 1),
                        || raw_group_restart(parallel_slots.clone(), 1),
                    )
                    .await;
                    let (_, ordered, vs_ordered) = paired_ratio(
                        rounds,
                        rounds / 5,
                        || restart_one_for_all(children.clone(), 1),
                        || raw_group_restart(sequential_slots.clone(), 1),
                    )
                    .await;
                    let (psup, pexit, pchildren) =
                        one_for_all_group_with(size, GroupStop::Parallel).await;
                    let (ours_par, floor_par, par_vs_parallel) = paired_ratio(
                        rounds,
                        rounds / 5,
                        || restart_one_for_all(pchildren.clone(), 1),
                        || raw_group_restart(parallel_slots.clone(), 1),
                    )
                    .await;
                    lines.push(format!(
                        "one-for-all restart of {size}: supervisor {ours:.2?}; by hand, parallel \
                         stop {floor:.2?} ({vs_parallel:.2} x), reverse-order stop {ordered:.2?} \
                         ({vs_ordered:.2} x); GroupStop::Parallel {ours_par:.2?} vs parallel by \
                         hand {floor_par:.2?} ({par_vs_parallel:.2} x){}",
                        if size == 100 {
                            " (target <= 1.3 x parallel)"
                        } else {
                            ""
                        }
                    ));
                    sup.stop(None).await.expect("stop");
                    exit.await;
                    psup.stop(None).await.expect("stop");
                    pexit.await;
                    for restarter in [parallel, sequential] {
                        restarter.stop_and_wait(None, None).await.expect("stop");
                    }
                }
            }
            if paired_wanted("paired-one-for-one") {
                let (one, _) = Supervisor::spawn(None, spec(Strategy::OneForOne, 1))
                    .await
                    .expect("one-for-one supervisor");
                let child = one.child::<Msg>("w0").expect("child w0");
                let slot = RawSlot::default();
                let (restarter, _) = Actor::spawn(None, RawRestarter, slot.clone())
                    .await
                    .expect("restarter");
                let (ours, floor, ratio) = paired_ratio(
                    100,
                    20,
                    || restart_one_for_one(child.clone(), PAIRED_ONE_FOR_ONE_RESTARTS),
                    || raw_restart_by_hand(slot.clone(), PAIRED_ONE_FOR_ONE_RESTARTS),
                )
                .await;
                let per = PAIRED_ONE_FOR_ONE_RESTARTS as u32;
                lines.push(format!(
                    "one-for-one restart: supervisor {:.2?} vs by hand {:.2?} = {ratio:.2} x",
                    ours / per,
                    floor / per
                ));
                one.stop(None).await.expect("stop");
                restarter.stop_and_wait(None, None).await.expect("stop");
            }
            lines
        })
        .await
        .expect("paired check task")
    });
    for line in lines {
        println!("paired check: {line}");
    }
}

/// Which paired checks run: all of them, unless the filter names one
/// (`paired-cast`, `paired-spawn`, `paired-batch`, `paired-one-for-all`,
/// `paired-one-for-one`; a filter that is a prefix of several runs those).
/// A filter that names no paired check and no criterion bench
/// (`paired-only`) runs them all without the criterion groups.
fn paired_wanted(check: &str) -> bool {
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    match filter {
        Some(filter) if filter.starts_with("paired-") && filter != "paired-only" => {
            check.starts_with(&filter)
        }
        _ => true,
    }
}

/// Runs the three bench groups on one runtime (what `criterion_main!` would
/// do, written out so that every item is documented), then the paired check.
fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    bench_cast(&mut c, &rt);
    bench_restart(&mut c, &rt);
    bench_group_restart(&mut c, &rt);
    bench_spawn_stop(&mut c, &rt);
    c.final_summary();
    // Not when only listing, smoke-testing (`--test`) or profiling.
    let quick = ["--list", "--test", "--profile-time"];
    if !std::env::args().any(|arg| quick.iter().any(|q| arg.starts_with(q))) {
        paired_check(&rt);
        paired_check_scale(&rt);
    }
}
