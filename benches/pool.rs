//! Criterion benchmarks of the pool, each next to a ractor baseline measured
//! in the same group (see `BENCHMARKS.md`):
//!
//! 1. `pool_throughput`: batches of [`BATCH`] trivial jobs (each increments
//!    a shared counter) through a pool of [`WORKERS`] workers under
//!    `RoundRobin`, `LeastLoaded` and `SharedQueue(Fifo)`, vs ractor's
//!    `factory` with the same job and worker count under `QueuerRouting`
//!    (the factory queues, idle workers take the next job) and
//!    `RoundRobinRouting` (pushed to the workers' mailboxes). A round is
//!    timed from its first send until the counter shows every job handled;
//! 2. `pool_burst`: bursts of [`BURST`] jobs into [`WORKERS`] workers of
//!    which one is slow (each of its jobs spins for [`SLOW_JOB`]; the
//!    others' jobs are trivial): ractor's `factory` under `QueuerRouting`
//!    (the baseline: idle workers take the next job), and the pool under
//!    `LeastLoaded` without a limit, with `max_in_flight` of
//!    [`IN_FLIGHT_LIMITS`], and under `SharedQueue(Fifo)`. A round is timed
//!    from its first send until every job of the burst is handled;
//! 3. `pool_cast`: the caller's side of one cast alone, on a current-thread
//!    runtime where the workers run only between timed chunks of
//!    [`CAST_CHUNK`] casts: `PoolRef::cast` under `RoundRobin` and
//!    `LeastLoaded` (no in-flight limit), vs a plain `ActorRef::cast` into
//!    one worker's mailbox;
//! 4. `router_decision`: one decision of each pure router on 8 workers
//!    (no actors, no locks): `RoundRobin::choose`, `routing::random`,
//!    `SmoothWeighted::choose`, `HashRing::choose` (hashing the key with
//!    `hash_key` included) and `power_of_two_choices`.
//!
//! Benches 1 and 2 run on one multi-thread tokio runtime with 2 workers, and the
//! measured code runs as a task on that runtime (not on the bench thread),
//! baselines included.
//!
//! Run with `cargo bench --bench pool`.

mod common;

use common::{on_runtime, runtime};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use ractor::factory::{
    queues::DefaultQueue,
    routing::{QueuerRouting, RoundRobinRouting, Router},
    worker_builder, Factory, FactoryArguments, FactoryMessage, FactoryRef, Job, WorkerId,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::pool::routing::{self, hash_key, HashRing, RoundRobin, SmoothWeighted, WorkerLoad};
use ractor_otp::{Pool, PoolRef, QueueOrder, Routing};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Jobs per round of the throughput bench.
const BATCH: u64 = 10_000;
/// Workers in every pool and factory of the throughput bench.
const WORKERS: usize = 4;
/// Jobs per burst of the burst bench.
const BURST: u64 = 10_000;
/// How long the slow worker of the burst bench spins on each job.
const SLOW_JOB: Duration = Duration::from_micros(20);
/// The `max_in_flight` settings measured in the burst bench.
const IN_FLIGHT_LIMITS: [u64; 2] = [4, 16];
/// Casts per timed chunk of the cast bench (the mailboxes are emptied,
/// untimed, between chunks).
const CAST_CHUNK: u64 = 10_000;
/// Upper bound on polls while waiting for a round to be handled.
const MAX_POLLS: u64 = 100_000_000;

// ---------------------------------------------------------------------------
// Workers

/// The trivial job, the same for the pool and the factory.
struct Tick;

/// Pool worker: counts each job in a counter shared with the bench.
#[derive(Clone)]
struct PoolCounter(Arc<AtomicU64>);

impl Actor for PoolCounter {
    type Msg = Tick;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Tick>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Tick>,
        _: Tick,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Factory worker: the same job as [`PoolCounter`], behind ractor's
/// `factory::Worker` trait (a separate type: the trait has a blanket
/// `Actor` impl).
struct FactoryCounter(Arc<AtomicU64>);

impl ractor::factory::Worker for FactoryCounter {
    type Key = ();
    type Message = Tick;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: WorkerId,
        _: &ActorRef<FactoryMessage<(), Tick>>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: WorkerId,
        _: &ActorRef<FactoryMessage<(), Tick>>,
        _: Job<(), Tick>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.0.fetch_add(1, Ordering::Relaxed);
        // The job's key, `()`, handed back to the factory.
        Ok(())
    }
}

/// The burst bench's job: trivial, or a [`SLOW_JOB`] spin on the slow
/// worker (a busy worker, as a CPU-bound job makes it), then counted.
fn burst_job(counter: &AtomicU64, slow: bool) {
    if slow {
        let start = Instant::now();
        while start.elapsed() < SLOW_JOB {
            std::hint::spin_loop();
        }
    }
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Pool worker of the burst bench; its argument says whether it is slow.
#[derive(Clone)]
struct PoolBurst(Arc<AtomicU64>);

impl Actor for PoolBurst {
    type Msg = Tick;
    type State = bool;
    type Arguments = bool;

    async fn pre_start(&self, _: ActorRef<Tick>, slow: bool) -> Result<bool, ActorProcessingErr> {
        Ok(slow)
    }

    async fn handle(
        &self,
        _: ActorRef<Tick>,
        _: Tick,
        slow: &mut bool,
    ) -> Result<(), ActorProcessingErr> {
        burst_job(&self.0, *slow);
        Ok(())
    }
}

/// Factory worker of the burst bench: the same job as [`PoolBurst`].
struct FactoryBurst(Arc<AtomicU64>);

impl ractor::factory::Worker for FactoryBurst {
    type Key = ();
    type Message = Tick;
    type State = bool;
    type Arguments = bool;

    async fn pre_start(
        &self,
        _: WorkerId,
        _: &ActorRef<FactoryMessage<(), Tick>>,
        slow: bool,
    ) -> Result<bool, ActorProcessingErr> {
        Ok(slow)
    }

    async fn handle(
        &self,
        _: WorkerId,
        _: &ActorRef<FactoryMessage<(), Tick>>,
        _: Job<(), Tick>,
        slow: &mut bool,
    ) -> Result<(), ActorProcessingErr> {
        burst_job(&self.0, *slow);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Yields until `counter` reaches `target`; panics after [`MAX_POLLS`].
async fn wait_for(counter: &AtomicU64, target: u64) {
    for _ in 0..MAX_POLLS {
        if counter.load(Ordering::Relaxed) >= target {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "only {} of {target} jobs handled",
        counter.load(Ordering::Relaxed)
    );
}

/// `iters` rounds of `batch` sends through `send`, each timed until
/// `counter` shows every job of the round handled.
async fn rounds<S>(counter: Arc<AtomicU64>, iters: u64, batch: u64, send: S) -> Duration
where
    S: Fn(),
{
    let start = Instant::now();
    for _ in 0..iters {
        let target = counter.load(Ordering::Relaxed) + batch;
        for _ in 0..batch {
            send();
        }
        wait_for(&counter, target).await;
    }
    start.elapsed()
}

/// `iters` rounds of `batch` jobs through a pool.
async fn pool_rounds(
    pool: PoolRef<Tick>,
    counter: Arc<AtomicU64>,
    iters: u64,
    batch: u64,
) -> Duration {
    rounds(counter, iters, batch, || {
        assert!(pool.cast(Tick).is_ok(), "pool refused a cast");
    })
    .await
}

/// `iters` rounds of `batch` jobs through a ractor factory.
async fn factory_rounds(
    factory: FactoryRef<(), Tick>,
    counter: Arc<AtomicU64>,
    iters: u64,
    batch: u64,
) -> Duration {
    rounds(counter, iters, batch, || {
        assert!(factory.dispatch((), Tick).is_ok(), "factory refused a job");
    })
    .await
}

/// A pool of [`WORKERS`] counters under `routing`, and its counter.
async fn spawn_pool(routing: Routing) -> (PoolRef<Tick>, Arc<AtomicU64>) {
    let counter = Arc::new(AtomicU64::new(0));
    let pool = Pool::builder(PoolCounter(counter.clone()), |_| ())
        .size(WORKERS)
        .routing(routing)
        .spawn(None)
        .await
        .expect("pool");
    (pool, counter)
}

/// A ractor factory of [`WORKERS`] counters under router `R` with the
/// default queue, its join handle and its counter.
async fn spawn_factory<R>(router: R) -> (FactoryRef<(), Tick>, JoinHandle<()>, Arc<AtomicU64>)
where
    R: Router<(), Tick>,
{
    let counter = Arc::new(AtomicU64::new(0));
    let worker_counter = counter.clone();
    let definition = Factory::<(), Tick, (), FactoryCounter, R, DefaultQueue<(), Tick>>::default();
    let arguments = FactoryArguments::builder()
        .worker_builder(Box::new(worker_builder(move |_| {
            (FactoryCounter(worker_counter.clone()), ())
        })))
        .num_initial_workers(WORKERS)
        .router(router)
        .queue(DefaultQueue::default())
        .build();
    let (factory, join) = Actor::spawn(None, definition, arguments)
        .await
        .expect("factory");
    (factory, join, counter)
}

/// The burst bench's pool: [`WORKERS`] workers, worker 0 slow.
async fn spawn_burst_pool(
    routing: Routing,
    max_in_flight: Option<u64>,
) -> (PoolRef<Tick>, Arc<AtomicU64>) {
    let counter = Arc::new(AtomicU64::new(0));
    let mut builder = Pool::builder(PoolBurst(counter.clone()), |i| i == 0)
        .size(WORKERS)
        .routing(routing);
    if let Some(limit) = max_in_flight {
        builder = builder.max_in_flight(limit);
    }
    (builder.spawn(None).await.expect("pool"), counter)
}

/// The burst bench's baseline: a factory of [`WORKERS`] workers, worker 0
/// slow, under `QueuerRouting`.
async fn spawn_burst_factory() -> (FactoryRef<(), Tick>, JoinHandle<()>, Arc<AtomicU64>) {
    let counter = Arc::new(AtomicU64::new(0));
    let worker_counter = counter.clone();
    type Queuer = QueuerRouting<(), Tick>;
    let definition =
        Factory::<(), Tick, bool, FactoryBurst, Queuer, DefaultQueue<(), Tick>>::default();
    let arguments = FactoryArguments::builder()
        .worker_builder(Box::new(worker_builder(move |id: WorkerId| {
            (FactoryBurst(worker_counter.clone()), id == 0)
        })))
        .num_initial_workers(WORKERS)
        .router(Queuer::default())
        .queue(DefaultQueue::default())
        .build();
    let (factory, join) = Actor::spawn(None, definition, arguments)
        .await
        .expect("factory");
    (factory, join, counter)
}

// ---------------------------------------------------------------------------
// 1. Throughput

/// Bench 1: pool throughput under three routings vs ractor's factory under
/// two, same job and worker count.
fn bench_throughput(c: &mut Criterion, rt: &Runtime) {
    let pools: Vec<(&str, PoolRef<Tick>, Arc<AtomicU64>)> = [
        ("pool_round_robin", Routing::RoundRobin),
        ("pool_least_loaded", Routing::LeastLoaded),
        (
            "pool_shared_queue_fifo",
            Routing::SharedQueue(QueueOrder::Fifo),
        ),
    ]
    .into_iter()
    .map(|(name, routing)| {
        let (pool, counter) = rt.block_on(spawn_pool(routing));
        (name, pool, counter)
    })
    .collect();
    let (queuer, queuer_join, queuer_counter) =
        rt.block_on(spawn_factory(QueuerRouting::<(), Tick>::default()));
    let (round_robin, round_robin_join, round_robin_counter) =
        rt.block_on(spawn_factory(RoundRobinRouting::<(), Tick>::default()));

    let mut group = c.benchmark_group("pool_throughput");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH));
    group.bench_function(BenchmarkId::new("factory_queuer", BATCH), |b| {
        b.iter_custom(|iters| {
            on_runtime(
                rt,
                factory_rounds(queuer.clone(), queuer_counter.clone(), iters, BATCH),
            )
        });
    });
    group.bench_function(BenchmarkId::new("factory_round_robin", BATCH), |b| {
        b.iter_custom(|iters| {
            on_runtime(
                rt,
                factory_rounds(
                    round_robin.clone(),
                    round_robin_counter.clone(),
                    iters,
                    BATCH,
                ),
            )
        });
    });
    for (name, pool, counter) in &pools {
        group.bench_function(BenchmarkId::new(*name, BATCH), |b| {
            b.iter_custom(|iters| {
                on_runtime(rt, pool_rounds(pool.clone(), counter.clone(), iters, BATCH))
            });
        });
    }
    group.finish();

    rt.block_on(async {
        for (_, pool, _) in &pools {
            pool.stop().await.expect("stop pool");
        }
        for factory in [&queuer, &round_robin] {
            factory
                .stop_and_wait(None, None)
                .await
                .expect("stop factory");
        }
        for join in [queuer_join, round_robin_join] {
            join.await.expect("factory task");
        }
    });
}

// ---------------------------------------------------------------------------
// 2. Bursts with one slow worker

/// Bench 2: bursts into four workers of which one is slow, the pool's
/// `LeastLoaded` with and without an in-flight limit and its shared queue
/// vs ractor's factory with its queue.
fn bench_burst(c: &mut Criterion, rt: &Runtime) {
    let mut variants: Vec<(String, Routing, Option<u64>)> = vec![
        ("pool_least_loaded".into(), Routing::LeastLoaded, None),
        (
            "pool_shared_queue_fifo".into(),
            Routing::SharedQueue(QueueOrder::Fifo),
            None,
        ),
    ];
    for limit in IN_FLIGHT_LIMITS {
        variants.push((
            format!("pool_least_loaded_max_in_flight_{limit}"),
            Routing::LeastLoaded,
            Some(limit),
        ));
    }
    let pools: Vec<(String, PoolRef<Tick>, Arc<AtomicU64>)> = variants
        .into_iter()
        .map(|(name, routing, limit)| {
            let (pool, counter) = rt.block_on(spawn_burst_pool(routing, limit));
            (name, pool, counter)
        })
        .collect();
    let (factory, factory_join, factory_counter) = rt.block_on(spawn_burst_factory());

    let mut group = c.benchmark_group("pool_burst");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BURST));
    group.bench_function(BenchmarkId::new("factory_queuer", BURST), |b| {
        b.iter_custom(|iters| {
            on_runtime(
                rt,
                factory_rounds(factory.clone(), factory_counter.clone(), iters, BURST),
            )
        });
    });
    for (name, pool, counter) in &pools {
        group.bench_function(BenchmarkId::new(name.as_str(), BURST), |b| {
            b.iter_custom(|iters| {
                on_runtime(rt, pool_rounds(pool.clone(), counter.clone(), iters, BURST))
            });
        });
    }
    group.finish();

    rt.block_on(async {
        for (_, pool, _) in &pools {
            pool.stop().await.expect("stop pool");
        }
        factory
            .stop_and_wait(None, None)
            .await
            .expect("stop factory");
        factory_join.await.expect("factory task");
    });
}

// ---------------------------------------------------------------------------
// 3. The caller's side of a cast

/// Times `iters` calls of `send` in chunks of [`CAST_CHUNK`], letting the
/// workers empty their mailboxes (untimed) after each chunk.
async fn cast_chunks<S: Fn()>(counter: &AtomicU64, iters: u64, send: S) -> Duration {
    let mut timed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let chunk = CAST_CHUNK.min(iters - done);
        let target = counter.load(Ordering::Relaxed) + chunk;
        let start = Instant::now();
        for _ in 0..chunk {
            send();
        }
        timed += start.elapsed();
        wait_for(counter, target).await;
        done += chunk;
    }
    timed
}

/// Bench 3: one cast, the caller's side only: the pool's routing (no
/// limit) vs a plain mailbox send.
fn bench_cast(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pools: Vec<(&str, PoolRef<Tick>, Arc<AtomicU64>)> = [
        ("pool_round_robin", Routing::RoundRobin),
        ("pool_least_loaded", Routing::LeastLoaded),
    ]
    .into_iter()
    .map(|(name, routing)| {
        let (pool, counter) = rt.block_on(spawn_pool(routing));
        (name, pool, counter)
    })
    .collect();
    let raw_counter = Arc::new(AtomicU64::new(0));
    let (raw, raw_join) = rt
        .block_on(Actor::spawn(None, PoolCounter(raw_counter.clone()), ()))
        .expect("actor");

    let mut group = c.benchmark_group("pool_cast");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("actor_ref_cast", |b| {
        b.iter_custom(|iters| {
            rt.block_on(cast_chunks(&raw_counter, iters, || {
                assert!(raw.cast(Tick).is_ok(), "the actor refused a cast");
            }))
        });
    });
    for (name, pool, counter) in &pools {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(cast_chunks(counter, iters, || {
                    assert!(pool.cast(Tick).is_ok(), "pool refused a cast");
                }))
            });
        });
    }
    group.finish();

    rt.block_on(async {
        for (_, pool, _) in &pools {
            pool.stop().await.expect("stop pool");
        }
        raw.stop(None);
        raw_join.await.expect("actor task");
    });
}

// ---------------------------------------------------------------------------
// 4. Router decisions

/// Eight workers, all up, with uneven messages in flight (the load-aware
/// routers compare them; the hash ring's bound is 2, so the two workers
/// holding 3 pass their keys on).
fn loads() -> [WorkerLoad; 8] {
    [2, 0, 1, 3, 0, 2, 1, 3].map(WorkerLoad::up)
}

/// Bench 4: one decision of each pure router on [`loads`].
fn bench_routers(c: &mut Criterion) {
    let loads = loads();
    let loads: &[WorkerLoad] = &loads;

    let mut group = c.benchmark_group("router_decision");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    let round_robin = RoundRobin::new();
    group.bench_function("round_robin", |b| {
        b.iter(|| round_robin.choose(black_box(loads)));
    });

    let mut rng = rand::rng();
    group.bench_function("random", |b| {
        b.iter(|| routing::random(black_box(loads), &mut rng));
    });

    let mut weighted = SmoothWeighted::new(&[5, 1, 1, 2, 3, 1, 4, 1]);
    group.bench_function("smooth_weighted", |b| {
        b.iter(|| weighted.choose(black_box(loads)));
    });

    let ring = HashRing::new(loads.len(), 160, 0.25);
    let mut key = 0u64;
    group.bench_function("hash_ring_160_vnodes", |b| {
        b.iter(|| {
            key = key.wrapping_add(1);
            ring.choose(hash_key(&black_box(key)), black_box(loads))
        });
    });

    group.bench_function("power_of_two_choices", |b| {
        b.iter(|| routing::power_of_two_choices(black_box(loads), &mut rng));
    });
    group.finish();
}

/// Runs the four bench groups (what `criterion_main!` would do, written out
/// so that every item is documented).
fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    bench_throughput(&mut c, &rt);
    bench_burst(&mut c, &rt);
    bench_cast(&mut c);
    bench_routers(&mut c);
    c.final_summary();
}
