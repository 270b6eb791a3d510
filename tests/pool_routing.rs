//! Routing through a real pool (DESIGN §4): every router's distribution
//! measured on the workers themselves (round robin exactly even, weighted
//! 5:1:1, random roughly uniform, consistent hashing with stable keys across
//! a resize, least loaded avoiding a slow worker, the shared queue in FIFO
//! and shortest-job-first order), broadcast and call, and the bad
//! configurations refused at build time with clear errors.
//!
//! Each worker learns its index through `args(i)` and records
//! `(worker, message id)` in a shared journal, so the tests check what the
//! workers actually handled. Every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::{
    ChildSpec, ChildStatus, Pool, PoolError, PoolRef, QueueOrder, Routing, Strategy, Supervisor,
    SupervisorSpec,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use common::wait_until;

// ---------------------------------------------------------------------------
// A recording worker

/// What the workers handled, in handling order: `(worker index, id)`.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<(usize, u64)>>>);

impl Journal {
    fn push(&self, worker: usize, id: u64) {
        self.0.lock().unwrap().push((worker, id));
    }
    fn entries(&self) -> Vec<(usize, u64)> {
        self.0.lock().unwrap().clone()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    /// Messages handled per worker, for `workers` workers.
    fn per_worker(&self, workers: usize) -> Vec<usize> {
        let mut counts = vec![0; workers];
        for (worker, _) in self.entries() {
            counts[worker] += 1;
        }
        counts
    }
    /// The ids, in handling order.
    fn ids(&self) -> Vec<u64> {
        self.entries().into_iter().map(|(_, id)| id).collect()
    }
}

/// Holds a worker inside `handle` until the test opens it.
#[derive(Clone)]
struct Gate {
    entered: Arc<AtomicBool>,
    open: Arc<tokio::sync::Semaphore>,
}

impl Gate {
    fn new() -> Self {
        Self {
            entered: Arc::new(AtomicBool::new(false)),
            open: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
    fn entered(&self) -> bool {
        self.entered.load(Ordering::SeqCst)
    }
    fn open(&self) {
        self.open.add_permits(1_000);
    }
}

#[derive(Clone)]
enum Job {
    /// Record `(worker, id)`.
    Work(u64),
    /// Wait at the gate, then record `(worker, id)`.
    Held(u64, Gate),
}

/// Records every job it handles; worker `slow.0`, if any, sleeps `slow.1`
/// before each one.
#[derive(Clone)]
struct Recorder {
    journal: Journal,
    slow: Option<(usize, Duration)>,
}

impl Recorder {
    fn new(journal: &Journal) -> Self {
        Self {
            journal: journal.clone(),
            slow: None,
        }
    }
    fn slow_worker(mut self, index: usize, per_job: Duration) -> Self {
        self.slow = Some((index, per_job));
        self
    }
}

impl Actor for Recorder {
    type Msg = Job;
    /// The worker's index.
    type State = usize;
    type Arguments = usize;

    async fn pre_start(&self, _: ActorRef<Job>, index: usize) -> Result<usize, ActorProcessingErr> {
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Job>,
        job: Job,
        index: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((slow, delay)) = self.slow {
            if slow == *index {
                tokio::time::sleep(delay).await;
            }
        }
        match job {
            Job::Work(id) => self.journal.push(*index, id),
            Job::Held(id, gate) => {
                gate.entered.store(true, Ordering::SeqCst);
                let _permit = gate.open.acquire().await?;
                self.journal.push(*index, id);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Bound on a whole test step (casting and waiting for the workers).
const STEP: Duration = Duration::from_secs(10);

/// Spawns a pool of `size` recorders, each given its index, and waits until
/// every worker is up (so that no router skips one that is still starting).
async fn recorder_pool(recorder: Recorder, size: usize, routing: Routing) -> PoolRef<Job> {
    let pool = Pool::builder(recorder, |index| index)
        .size(size)
        .routing(routing)
        .spawn(None)
        .await
        .expect("the pool starts");
    all_running(&pool, size).await;
    pool
}

/// Waits until the pool has `size` workers, all running.
async fn all_running<M: ractor::Message>(pool: &PoolRef<M>, size: usize) {
    wait_until(&format!("all {size} workers run"), || async {
        let stats = pool.stats();
        stats.workers.len() == size
            && stats
                .workers
                .iter()
                .all(|w| w.status == ChildStatus::Running)
    })
    .await;
}

/// Waits until the journal holds `count` entries.
async fn handled(journal: &Journal, count: usize) {
    wait_until(&format!("the workers handled {count} messages"), || async {
        journal.len() >= count
    })
    .await;
}

/// Waits until the pool has no message in flight (every routed message
/// finished) and none waiting.
async fn idle<M: ractor::Message>(pool: &PoolRef<M>) {
    wait_until("the pool is idle", || async {
        let stats = pool.stats();
        stats.waiting == 0 && stats.workers.iter().all(|w| w.in_flight == 0)
    })
    .await;
}

async fn stop<M: ractor::Message>(pool: PoolRef<M>) {
    tokio::time::timeout(STEP, pool.stop())
        .await
        .expect("the pool stops in bounded time")
        .expect("the pool stops");
}

fn processed<M: ractor::Message>(pool: &PoolRef<M>) -> Vec<u64> {
    pool.stats().workers.iter().map(|w| w.processed).collect()
}

// ---------------------------------------------------------------------------
// Round robin, weighted, random

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_messages_exactly_evenly() {
    let journal = Journal::default();
    let pool = recorder_pool(Recorder::new(&journal), 4, Routing::RoundRobin).await;

    for id in 0..4_000 {
        pool.cast(Job::Work(id)).expect("the pool runs");
    }
    handled(&journal, 4_000).await;

    assert_eq!(
        journal.per_worker(4),
        [1_000; 4],
        "round robin gives each of 4 workers exactly 1,000 of 4,000 messages"
    );
    assert_eq!(
        processed(&pool),
        [1_000; 4],
        "the pool's statistics count what each worker processed"
    );
    // Worker i handles ids i, i+4, i+8, ... in order.
    for (worker, id) in journal.entries() {
        assert_eq!(
            id % 4,
            worker as u64,
            "round robin is exactly cyclic: id {id} belongs to worker {}",
            id % 4
        );
    }
    stop(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_routing_follows_the_weights_5_1_1() {
    let journal = Journal::default();
    let pool = recorder_pool(Recorder::new(&journal), 3, Routing::Weighted(vec![5, 1, 1])).await;

    for id in 0..7_000 {
        pool.cast(Job::Work(id)).expect("the pool runs");
    }
    handled(&journal, 7_000).await;

    assert_eq!(
        journal.per_worker(3),
        [5_000, 1_000, 1_000],
        "weights 5:1:1 split 7,000 messages 5,000 / 1,000 / 1,000"
    );
    assert_eq!(
        processed(&pool),
        [5_000, 1_000, 1_000],
        "the statistics agree with the workers"
    );
    // Smooth weighted round robin: the first cycle is a a b a c a a.
    let first_cycle: Vec<usize> = {
        let mut by_id: Vec<(u64, usize)> = journal
            .entries()
            .into_iter()
            .map(|(w, id)| (id, w))
            .collect();
        by_id.sort_unstable();
        by_id.into_iter().take(7).map(|(_, w)| w).collect()
    };
    assert_eq!(
        first_cycle,
        [0, 0, 1, 0, 2, 0, 0],
        "smooth weighted round robin interleaves: a a b a c a a"
    );
    stop(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_routing_is_roughly_uniform() {
    let journal = Journal::default();
    let pool = recorder_pool(Recorder::new(&journal), 4, Routing::Random).await;

    for id in 0..8_000 {
        pool.cast(Job::Work(id)).expect("the pool runs");
    }
    handled(&journal, 8_000).await;

    // Expected 2,000 each; one standard deviation is about 39.
    let counts = journal.per_worker(4);
    for (worker, count) in counts.iter().enumerate() {
        assert!(
            (1_600..=2_400).contains(count),
            "random routing gives each of 4 workers about a quarter of 8,000 messages: \
             worker {worker} got {count} ({counts:?})"
        );
    }
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Consistent hashing

/// A load factor large enough that the bound never passes a key on:
/// with `n` workers a worker holding everything in flight (`t`) is under
/// ⌈(1+ε)(t+1)/n⌉ whenever 1+ε ≥ n, so affinity is exact.
const NO_SPILL: f64 = 10.0;

/// Casts every key `rounds` times (interleaved) and returns each key's
/// workers once all are handled.
async fn owners(
    pool: &PoolRef<Job>,
    journal: &Journal,
    keys: u64,
    rounds: usize,
) -> BTreeMap<u64, BTreeSet<usize>> {
    journal.clear();
    for _ in 0..rounds {
        for key in 0..keys {
            pool.cast_keyed(&key, Job::Work(key))
                .expect("the pool runs");
        }
    }
    handled(journal, keys as usize * rounds).await;
    let mut owners: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for (worker, key) in journal.entries() {
        owners.entry(key).or_default().insert(worker);
    }
    owners
}

/// The single worker of each key; panics if a key reached two workers.
fn single_owner(owners: &BTreeMap<u64, BTreeSet<usize>>) -> BTreeMap<u64, usize> {
    owners
        .iter()
        .map(|(key, workers)| {
            assert_eq!(
                workers.len(),
                1,
                "the same key always reaches the same worker: key {key} reached {workers:?}"
            );
            (*key, *workers.iter().next().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_sends_a_key_to_one_worker_and_moves_about_one_nth_of_keys_on_resize() {
    let journal = Journal::default();
    let routing = Routing::ConsistentHash {
        vnodes: 160,
        load_factor: NO_SPILL,
    };
    let pool = recorder_pool(Recorder::new(&journal), 4, routing).await;
    let keys = 2_000u64;

    let before = single_owner(&owners(&pool, &journal, keys, 3).await);
    let mut spread = [0usize; 4];
    for worker in before.values() {
        spread[*worker] += 1;
    }
    for (worker, count) in spread.iter().enumerate() {
        assert!(
            (300..=700).contains(count),
            "160 virtual nodes spread 2,000 keys evenly over 4 workers: \
             worker {worker} owns {count} ({spread:?})"
        );
    }

    tokio::time::timeout(STEP, pool.resize(5))
        .await
        .expect("resize returns in bounded time")
        .expect("the pool grows to 5");
    all_running(&pool, 5).await;

    let after = single_owner(&owners(&pool, &journal, keys, 2).await);
    let mut moved = 0usize;
    for key in 0..keys {
        let (old, new) = (before[&key], after[&key]);
        if old != new {
            assert_eq!(
                new, 4,
                "a key that moves on growing from 4 to 5 workers moves to the new worker \
                 (key {key}: {old} -> {new})"
            );
            moved += 1;
        }
    }
    let share = moved as f64 / keys as f64;
    assert!(
        (0.12..=0.28).contains(&share),
        "growing from 4 to 5 workers moves about 1/5 of the keys, moved {share:.3}"
    );
    stop(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_passes_a_hot_key_on_when_its_owner_is_over_the_load_bound() {
    let journal = Journal::default();
    let routing = Routing::ConsistentHash {
        vnodes: 100,
        load_factor: 0.25,
    };
    let pool = recorder_pool(Recorder::new(&journal), 4, routing).await;

    // Find the key's owner while the pool is idle.
    pool.cast_keyed("hot", Job::Work(0)).expect("the pool runs");
    handled(&journal, 1).await;
    idle(&pool).await;
    let owner = journal.entries()[0].0;

    // Hold the owner: with its one message in flight and nothing else, it
    // is at the bound ⌈1.25·(1+1)/4⌉ = 1, so the next copy of the key goes
    // elsewhere. (Each copy is cast once the previous one is handled: with
    // more in flight elsewhere the average, and so the bound, would rise.)
    let gate = Gate::new();
    pool.cast_keyed("hot", Job::Held(1, gate.clone()))
        .expect("the pool runs");
    wait_until("the owner holds the first job", || async { gate.entered() }).await;
    for id in 2..10 {
        pool.cast_keyed("hot", Job::Work(id))
            .expect("the pool runs");
        handled(&journal, id as usize).await;
    }
    let elsewhere: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|(_, id)| (2..10).contains(id))
        .collect();
    assert!(
        elsewhere.iter().all(|(worker, _)| *worker != owner),
        "while its owner (worker {owner}) is over the load bound the key goes to other workers: \
         {elsewhere:?}"
    );
    gate.open();
    handled(&journal, 10).await;
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Least loaded

/// Casts 200 jobs, one every millisecond, to a pool of 4 whose worker 0
/// takes 30 ms per job; returns how many jobs worker 0 handled.
async fn share_of_slow_worker(routing: Routing) -> usize {
    let journal = Journal::default();
    let recorder = Recorder::new(&journal).slow_worker(0, Duration::from_millis(30));
    let pool = recorder_pool(recorder, 4, routing).await;
    for id in 0..200 {
        pool.cast(Job::Work(id)).expect("the pool runs");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handled(&journal, 200).await;
    let counts = journal.per_worker(4);
    stop(pool).await;
    counts[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_gives_a_slow_worker_clearly_less_work_than_round_robin() {
    let round_robin = share_of_slow_worker(Routing::RoundRobin).await;
    let least_loaded = share_of_slow_worker(Routing::LeastLoaded).await;
    assert_eq!(
        round_robin, 50,
        "round robin gives the slow worker its full quarter of 200 jobs"
    );
    assert!(
        least_loaded * 2 < round_robin,
        "least loaded gives the slow worker less than half of what round robin gives it: \
         {least_loaded} vs {round_robin}"
    );
}

// ---------------------------------------------------------------------------
// Shared queue

/// A one-worker shared-queue pool, held on job `u64::MAX` so that
/// everything cast next waits in the queue; returns the gate to release it.
async fn held_shared_queue(order: QueueOrder, journal: &Journal) -> (PoolRef<Job>, Gate) {
    let pool = recorder_pool(Recorder::new(journal), 1, Routing::SharedQueue(order)).await;
    let gate = Gate::new();
    pool.cast(Job::Held(u64::MAX, gate.clone()))
        .expect("the pool runs");
    wait_until("the only worker holds the first job", || async {
        gate.entered()
    })
    .await;
    (pool, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortest_job_first_takes_jobs_in_ascending_cost_with_ties_in_arrival_order() {
    let journal = Journal::default();
    let (pool, gate) = held_shared_queue(QueueOrder::ShortestJobFirst, &journal).await;

    // 200 jobs, costs 0..25 (8 of each) in a shuffled order; id = arrival.
    let mut costs: Vec<u64> = (0..200).map(|i| i % 25).collect();
    costs.shuffle(&mut StdRng::seed_from_u64(42));
    for (id, cost) in costs.iter().enumerate() {
        pool.cast_with_cost(*cost, Job::Work(id as u64))
            .expect("the pool runs");
    }
    assert_eq!(
        pool.stats().waiting,
        200,
        "the jobs wait in the shared queue while the only worker is busy"
    );
    gate.open();
    handled(&journal, 201).await;

    let mut expected: Vec<(u64, u64)> = costs
        .iter()
        .enumerate()
        .map(|(id, cost)| (*cost, id as u64))
        .collect();
    expected.sort_unstable();
    let expected: Vec<u64> = std::iter::once(u64::MAX)
        .chain(expected.into_iter().map(|(_, id)| id))
        .collect();
    assert_eq!(
        journal.ids(),
        expected,
        "after the job it was holding, the worker takes jobs by ascending cost, \
         ties in arrival order"
    );
    stop(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_shared_queue_keeps_arrival_order_with_one_worker() {
    let journal = Journal::default();
    let (pool, gate) = held_shared_queue(QueueOrder::Fifo, &journal).await;

    let mut costs: Vec<u64> = (0..200).collect();
    costs.shuffle(&mut StdRng::seed_from_u64(7));
    for (id, cost) in costs.iter().enumerate() {
        // The cost is ignored in FIFO order.
        pool.cast_with_cost(*cost, Job::Work(id as u64))
            .expect("the pool runs");
    }
    gate.open();
    handled(&journal, 201).await;

    let expected: Vec<u64> = std::iter::once(u64::MAX).chain(0..200).collect();
    assert_eq!(
        journal.ids(),
        expected,
        "a FIFO shared queue hands jobs out in arrival order"
    );
    stop(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_queue_gives_no_job_to_a_busy_worker() {
    let journal = Journal::default();
    let pool = recorder_pool(
        Recorder::new(&journal),
        3,
        Routing::SharedQueue(QueueOrder::Fifo),
    )
    .await;
    let gate = Gate::new();
    pool.cast(Job::Held(u64::MAX, gate.clone()))
        .expect("the pool runs");
    wait_until("a worker holds the first job", || async { gate.entered() }).await;
    for id in 0..600 {
        pool.cast(Job::Work(id)).expect("the pool runs");
    }
    handled(&journal, 600).await;

    let held_by = (0..3)
        .find(|&i| pool.stats().workers[i].in_flight == 1)
        .expect("one worker still holds the first job");
    let counts = journal.per_worker(3);
    assert_eq!(
        counts[held_by], 0,
        "the busy worker pulls no job while it holds one: {counts:?}"
    );
    assert_eq!(
        counts.iter().sum::<usize>(),
        600,
        "the two idle workers take every job exactly once"
    );
    gate.open();
    handled(&journal, 601).await;
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Broadcast and call

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_worker_exactly_once() {
    let journal = Journal::default();
    let pool = recorder_pool(Recorder::new(&journal), 4, Routing::RoundRobin).await;

    let reached = pool.broadcast(Job::Work(7)).expect("the pool runs");
    assert_eq!(
        reached, 4,
        "broadcast reports that all 4 running workers took a copy"
    );
    handled(&journal, 4).await;
    idle(&pool).await;

    let mut entries = journal.entries();
    entries.sort_unstable();
    assert_eq!(
        entries,
        [(0, 7), (1, 7), (2, 7), (3, 7)],
        "each worker handles the broadcast message exactly once"
    );
    assert_eq!(
        processed(&pool),
        [1; 4],
        "each worker processed one message"
    );
    stop(pool).await;
}

/// Answers `(its index, n²)`.
#[derive(Clone)]
struct Squarer;

impl Actor for Squarer {
    type Msg = (u64, RpcReplyPort<(usize, u64)>);
    type State = usize;
    type Arguments = usize;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        index: usize,
    ) -> Result<usize, ActorProcessingErr> {
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        (n, reply): Self::Msg,
        index: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send((*index, n * n));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_returns_the_answer_of_the_chosen_worker() {
    let pool = Pool::builder(Squarer, |index| index)
        .size(3)
        .routing(Routing::RoundRobin)
        .spawn(None)
        .await
        .expect("the pool starts");
    all_running(&pool, 3).await;

    let mut answered_by = Vec::new();
    for n in 0..9u64 {
        let (worker, square) = pool
            .call(|reply| (n, reply), Some(Duration::from_secs(5)))
            .await
            .expect("every call is answered");
        assert_eq!(square, n * n, "call returns the worker's answer");
        answered_by.push(worker);
    }
    assert_eq!(
        answered_by,
        [0, 1, 2, 0, 1, 2, 0, 1, 2],
        "calls are routed like casts (round robin here)"
    );
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Bad configurations

fn recorder() -> Recorder {
    Recorder::new(&Journal::default())
}

/// Spawns a pool of `size` recorders with `routing`, which must be refused.
async fn refused(size: usize, routing: Routing) -> PoolError {
    let pool = Pool::builder(recorder(), |index| index)
        .size(size)
        .routing(routing.clone())
        .spawn(None)
        .await;
    match pool {
        Ok(pool) => {
            stop(pool).await;
            panic!("a pool of {size} with {routing:?} must be refused")
        }
        Err(err) => err,
    }
}

#[tokio::test]
async fn a_pool_of_zero_workers_is_refused() {
    assert_eq!(
        refused(0, Routing::RoundRobin).await,
        PoolError::ZeroSize,
        "size 0 is refused with ZeroSize"
    );
    assert_eq!(
        PoolError::ZeroSize.to_string(),
        "pool size must be at least 1"
    );
    let as_child = ChildSpec::pool("pool", Pool::builder(recorder(), |i| i).size(0));
    assert_eq!(
        as_child.err(),
        Some(PoolError::ZeroSize),
        "ChildSpec::pool refuses size 0 too"
    );
}

#[tokio::test]
async fn bad_weights_are_refused_with_a_clear_reason() {
    let table: &[(usize, &[u32], &str)] = &[
        (3, &[], "weights must not be empty"),
        (3, &[1, 0, 2], "weight of worker 1 is zero"),
        (3, &[1, 1], "2 weights for 3 workers"),
        (2, &[1, 1, 1], "3 weights for 2 workers"),
    ];
    for (size, weights, reason) in table {
        let err = refused(*size, Routing::Weighted(weights.to_vec())).await;
        assert!(
            matches!(&err, PoolError::InvalidRouting(why) if why.contains(reason)),
            "weights {weights:?} for {size} workers are refused as InvalidRouting \
             saying `{reason}`: got {err:?}"
        );
        assert!(
            err.to_string().starts_with("invalid routing: "),
            "the error reads as an invalid routing: {err}"
        );
    }
}

#[tokio::test]
async fn bad_consistent_hash_parameters_are_refused_with_a_clear_reason() {
    let table: &[(usize, f64, &str)] = &[
        (160, 0.0, "load_factor 0 must be a finite number above 0"),
        (160, -1.0, "load_factor -1 must be a finite number above 0"),
        (
            160,
            f64::NAN,
            "load_factor NaN must be a finite number above 0",
        ),
        (
            160,
            f64::INFINITY,
            "load_factor inf must be a finite number above 0",
        ),
        (0, 0.25, "vnodes must be at least 1"),
    ];
    for (vnodes, load_factor, reason) in table {
        let routing = Routing::ConsistentHash {
            vnodes: *vnodes,
            load_factor: *load_factor,
        };
        let err = refused(4, routing.clone()).await;
        assert!(
            matches!(&err, PoolError::InvalidRouting(why) if why.contains(reason)),
            "{routing:?} is refused as InvalidRouting saying `{reason}`: got {err:?}"
        );
        let as_child = ChildSpec::pool("pool", Pool::builder(recorder(), |i| i).routing(routing));
        assert!(
            matches!(as_child, Err(PoolError::InvalidRouting(_))),
            "ChildSpec::pool refuses it before anything starts"
        );
    }
}

#[tokio::test]
async fn a_running_pool_refuses_to_shrink_to_zero_and_a_weighted_pool_to_resize() {
    let pool = recorder_pool(recorder(), 2, Routing::RoundRobin).await;
    assert_eq!(
        pool.resize(0).await,
        Err(PoolError::ZeroSize),
        "resize to 0 is refused"
    );
    assert_eq!(pool.size(), 2, "a refused resize leaves the size alone");
    stop(pool).await;

    let weighted = recorder_pool(recorder(), 2, Routing::Weighted(vec![2, 1])).await;
    assert_eq!(
        weighted.resize(3).await,
        Err(PoolError::WeightedResize),
        "a weighted pool's weights fix its size"
    );
    stop(weighted).await;
}

#[tokio::test]
async fn a_pool_child_spec_starts_under_a_supervisor_and_routes() {
    let journal = Journal::default();
    let (spec, pool) = ChildSpec::pool(
        "pool",
        Pool::builder(Recorder::new(&journal), |i| i).size(2),
    )
    .expect("a valid pool spec");
    let (root, _) = Supervisor::spawn(None, SupervisorSpec::new(Strategy::OneForOne).child(spec))
        .await
        .expect("the root starts with the pool");
    all_running(&pool, 2).await;
    for id in 0..10 {
        pool.cast(Job::Work(id)).expect("the pool runs");
    }
    handled(&journal, 10).await;
    assert_eq!(journal.per_worker(2), [5, 5], "the pool routes round robin");
    let mut ids: HashMap<u64, usize> = HashMap::new();
    for id in journal.ids() {
        *ids.entry(id).or_default() += 1;
    }
    assert!(
        ids.values().all(|n| *n == 1),
        "each message is handled once"
    );
    common::stop(&root).await;
}
