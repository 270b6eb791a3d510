//! Failures inside a pool (DESIGN §4): workers that panic on 1% of 100,000
//! messages (nothing lost with redelivery, every loss reported without),
//! resizing during a stream, crash-looping workers escalating through the
//! supervision tree (and the `PoolRef` following the pool's restart), a
//! killed worker's mailbox reported as dead letters, a graceful stop that
//! drains the mailboxes, and backoff: a worker waiting to restart shows
//! `Restarting`, routing skips it, and its mailbox waits for it.
//!
//! The books always balance: processed plus dead letters equals sent, once
//! the pool is idle. Every wait is bounded.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::{
    Backoff, ChildSpec, ChildStatus, DeadLetter, DeadLetterReason, Pool, PoolCallError,
    PoolCastError, PoolError, PoolRef, Routing, Strategy, SupervisorSpec,
};
use tokio::time::Instant;

use common::{wait_until, Linked, Log, Parent};

// ---------------------------------------------------------------------------
// Expected panics

/// In the text of every panic these tests cause on purpose.
const ON_PURPOSE: &str = "panicked on purpose";

/// Keeps the panics caused on purpose out of the test output (about a
/// thousand of them); every other panic is printed as usual.
fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            if !text.contains(ON_PURPOSE) {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------
// Counting what was processed and what was lost

/// How many times each message id was processed, plus the total.
#[derive(Clone)]
struct Tally {
    per_id: Arc<Vec<AtomicU32>>,
    total: Arc<AtomicU64>,
}

impl Tally {
    fn new(ids: usize) -> Self {
        Self {
            per_id: Arc::new((0..ids).map(|_| AtomicU32::new(0)).collect()),
            total: Arc::new(AtomicU64::new(0)),
        }
    }
    fn record(&self, id: u32) {
        self.per_id[id as usize].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Release);
    }
    fn total(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }
    /// Ids below `sent` processed at least once.
    fn distinct(&self, sent: usize) -> usize {
        self.per_id[..sent]
            .iter()
            .filter(|n| n.load(Ordering::Relaxed) > 0)
            .count()
    }
    /// Ids below `sent` processed more than once.
    fn duplicates(&self, sent: usize) -> usize {
        self.per_id[..sent]
            .iter()
            .filter(|n| n.load(Ordering::Relaxed) > 1)
            .count()
    }
}

/// One dead letter as seen by the handler: `(worker, reason, message given
/// back)`.
type Letter = (Option<usize>, DeadLetterReason, bool);

/// Collects dead letters.
#[derive(Clone, Default)]
struct DeadLetters {
    count: Arc<AtomicU64>,
    letters: Arc<Mutex<Vec<Letter>>>,
}

impl DeadLetters {
    /// A handler for `PoolBuilder::dead_letters`.
    fn handler<M>(&self) -> impl Fn(DeadLetter<M>) + Send + Sync + 'static {
        let this = self.clone();
        move |letter: DeadLetter<M>| {
            this.letters.lock().unwrap().push((
                letter.worker,
                letter.reason,
                letter.message.is_some(),
            ));
            this.count.fetch_add(1, Ordering::Release);
        }
    }
    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
    /// Every dead letter so far, in order.
    fn letters(&self) -> Vec<Letter> {
        self.letters.lock().unwrap().clone()
    }
}

/// Polls `cond` every 10 ms for at most `limit`; panics with `what` if it
/// never holds.
async fn within<F: FnMut() -> bool>(limit: Duration, what: &str, mut cond: F) {
    let waited = tokio::time::timeout(limit, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "timed out after {limit:?} waiting until {what}"
    );
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

async fn stop<M: ractor::Message>(pool: PoolRef<M>) {
    tokio::time::timeout(Duration::from_secs(10), pool.stop())
        .await
        .expect("the pool stops in bounded time")
        .expect("the pool stops");
}

// ---------------------------------------------------------------------------
// 100,000 messages, 1% of them failing

const STREAM: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Item(u32);

/// Panics on every 100th message of each incarnation (so on 1% of the
/// messages, whatever they are: a redelivered message does not poison the
/// next worker), processes the others.
#[derive(Clone)]
struct Flaky {
    tally: Tally,
}

impl Actor for Flaky {
    type Msg = Item;
    /// Messages this incarnation has taken.
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Item>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<Item>,
        Item(id): Item,
        taken: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *taken += 1;
        if *taken % 100 == 0 {
            panic!("{ON_PURPOSE}: message #{taken} of this incarnation (id {id})");
        }
        self.tally.record(id);
        Ok(())
    }
}

/// A pool of 4 flaky workers with room for every restart.
async fn flaky_pool(tally: &Tally, dead: &DeadLetters, redelivery: bool) -> PoolRef<Item> {
    quiet_expected_panics();
    let pool = Pool::builder(
        Flaky {
            tally: tally.clone(),
        },
        |_| (),
    )
    .size(4)
    .routing(Routing::RoundRobin)
    .intensity(100_000, Duration::from_secs(1))
    .redelivery(redelivery)
    .dead_letters(dead.handler())
    .spawn(None)
    .await
    .expect("the pool starts");
    all_running(&pool, 4).await;
    pool
}

async fn cast_stream(pool: &PoolRef<Item>) {
    for id in 0..STREAM as u32 {
        pool.cast(Item(id)).expect("the pool runs");
        if id % 1_000 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

fn restarts<M: ractor::Message>(pool: &PoolRef<M>) -> u64 {
    pool.stats().workers.iter().map(|w| w.restarts).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redelivery_every_message_is_processed_although_one_percent_panic() {
    let tally = Tally::new(STREAM);
    let dead = DeadLetters::default();
    let pool = flaky_pool(&tally, &dead, true).await;

    cast_stream(&pool).await;
    within(
        Duration::from_secs(60),
        "every message is processed",
        || tally.total() >= STREAM as u64,
    )
    .await;

    assert_eq!(
        tally.distinct(STREAM),
        STREAM,
        "with redelivery every one of the 100,000 messages is processed at least once"
    );
    assert_eq!(
        dead.count(),
        0,
        "with redelivery no message becomes a dead letter: {:?}",
        dead.letters().first()
    );
    let restarts = restarts(&pool);
    assert!(
        restarts >= 900,
        "about 1% of the messages made their worker panic and restart: {restarts} restarts"
    );
    within(Duration::from_secs(10), "the pool is idle", || {
        let stats = pool.stats();
        stats.waiting == 0 && stats.workers.iter().all(|w| w.in_flight == 0)
    })
    .await;
    let stats = pool.stats();
    assert_eq!(
        stats.workers.iter().map(|w| w.processed).sum::<u64>(),
        tally.total(),
        "the statistics count every processed message"
    );
    assert_eq!(
        tally.duplicates(STREAM),
        0,
        "a message that made its worker panic is redelivered once and processed once"
    );
    assert!(
        stats
            .workers
            .iter()
            .all(|w| w.status == ChildStatus::Running),
        "every worker is back: {stats:?}"
    );
    stop(pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redelivery_every_message_is_processed_or_reported_as_a_dead_letter() {
    let tally = Tally::new(STREAM);
    let dead = DeadLetters::default();
    let pool = flaky_pool(&tally, &dead, false).await;

    cast_stream(&pool).await;
    within(
        Duration::from_secs(60),
        "processed plus dead letters reach the number sent",
        || tally.total() + dead.count() >= STREAM as u64,
    )
    .await;
    within(Duration::from_secs(10), "the pool is idle", || {
        pool.stats().workers.iter().all(|w| w.in_flight == 0)
    })
    .await;

    assert_eq!(
        tally.total() + dead.count(),
        STREAM as u64,
        "processed ({}) plus dead letters ({}) equals the 100,000 sent",
        tally.total(),
        dead.count()
    );
    assert_eq!(
        tally.duplicates(STREAM),
        0,
        "without redelivery no message is processed twice"
    );
    assert_eq!(
        dead.count(),
        restarts(&pool),
        "each panic loses exactly the message being handled (one dead letter per restart)"
    );
    assert!(
        dead.count() >= 900,
        "about 1% of the messages were lost: {}",
        dead.count()
    );
    assert_eq!(
        pool.stats().dead_letters,
        dead.count(),
        "the statistics count every dead letter the handler saw"
    );
    for (worker, reason, given_back) in dead.letters() {
        assert!(
            matches!(&reason, DeadLetterReason::WorkerFailed(why) if why.contains(ON_PURPOSE)),
            "a message lost to a panic is reported as WorkerFailed with the panic: {reason:?}"
        );
        assert!(worker.is_some(), "the dead letter names its worker");
        assert!(
            !given_back,
            "the message a failing worker consumed cannot be given back"
        );
    }
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Resizing during a stream

/// Processes every item (no failures).
#[derive(Clone)]
struct Steady {
    tally: Tally,
}

impl Actor for Steady {
    type Msg = Item;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Item>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Item>,
        Item(id): Item,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.tally.record(id);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_up_and_down_during_a_stream_loses_nothing() {
    const MAX: usize = 400_000;
    let tally = Tally::new(MAX);
    let dead = DeadLetters::default();
    let pool = Pool::builder(
        Steady {
            tally: tally.clone(),
        },
        |_| (),
    )
    .size(2)
    .routing(Routing::RoundRobin)
    .dead_letters(dead.handler())
    .spawn(None)
    .await
    .expect("the pool starts");

    // Cast until told to stop, so that every resize happens mid-stream.
    let done = Arc::new(AtomicBool::new(false));
    let caster = tokio::spawn({
        let pool = pool.clone();
        let done = done.clone();
        async move {
            let mut sent = 0u32;
            while !done.load(Ordering::Acquire) && (sent as usize) < MAX {
                pool.cast(Item(sent)).expect("the pool runs");
                sent += 1;
                if sent % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            sent as usize
        }
    });

    for size in [5, 1, 3, 8, 2, 6, 1, 4, 3] {
        tokio::time::timeout(Duration::from_secs(10), pool.resize(size))
            .await
            .expect("resize returns in bounded time")
            .expect("resize succeeds");
        assert_eq!(pool.size(), size, "the pool has the size asked for");
        assert_eq!(
            pool.stats().workers.len(),
            size,
            "the statistics list one entry per worker"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::Release);
    let sent = caster.await.expect("the caster ends");
    assert!(
        sent < MAX,
        "the stream was still running when the last resize finished (sent {sent})"
    );

    within(
        Duration::from_secs(30),
        "every message sent during the resizes is processed",
        || tally.total() + dead.count() >= sent as u64,
    )
    .await;
    assert_eq!(
        dead.count(),
        0,
        "resizing loses no message: {:?}",
        dead.letters().first()
    );
    assert_eq!(
        tally.total(),
        sent as u64,
        "processed equals sent ({sent}) across the resizes"
    );
    assert_eq!(
        tally.distinct(sent),
        sent,
        "each message is processed exactly once"
    );
    all_running(&pool, 3).await;
    assert_eq!(pool.size(), 3, "the final size is the last one asked for");
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// A worker that does what it is told

/// Holds a worker inside `handle` for good (until it is killed); records
/// which worker entered.
#[derive(Clone)]
struct Gate {
    entered: Arc<Mutex<Option<usize>>>,
    open: Arc<tokio::sync::Semaphore>,
}

impl Gate {
    fn new() -> Self {
        Self {
            entered: Arc::new(Mutex::new(None)),
            open: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
    /// The worker holding the gate, once one does.
    fn holder(&self) -> Option<usize> {
        *self.entered.lock().unwrap()
    }
}

#[derive(Clone)]
enum Cmd {
    /// Record `(worker, id)`.
    Work(u64),
    /// Sleep, then record `(worker, id)`.
    Slow(u64, Duration),
    /// Return an error.
    Fail,
    /// Wait at the gate (never opened in these tests).
    Held(Gate),
}

/// `(worker, id)` of each processed command, in order.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<(usize, u64)>>>);

impl Journal {
    fn entries(&self) -> Vec<(usize, u64)> {
        self.0.lock().unwrap().clone()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn by(&self, worker: usize) -> usize {
        self.entries().iter().filter(|(w, _)| *w == worker).count()
    }
}

#[derive(Clone)]
struct Obedient {
    journal: Journal,
}

impl Actor for Obedient {
    type Msg = Cmd;
    /// The worker's index.
    type State = usize;
    type Arguments = usize;

    async fn pre_start(&self, _: ActorRef<Cmd>, index: usize) -> Result<usize, ActorProcessingErr> {
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Cmd>,
        cmd: Cmd,
        index: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        match cmd {
            Cmd::Work(id) => self.journal.0.lock().unwrap().push((*index, id)),
            Cmd::Slow(id, delay) => {
                tokio::time::sleep(delay).await;
                self.journal.0.lock().unwrap().push((*index, id));
            }
            Cmd::Fail => return Err(format!("worker {index} failed on purpose").into()),
            Cmd::Held(gate) => {
                *gate.entered.lock().unwrap() = Some(*index);
                let _permit = gate.open.acquire().await?;
            }
        }
        Ok(())
    }
}

fn obedient(journal: &Journal, size: usize) -> ractor_otp::PoolBuilder<Obedient> {
    Pool::builder(
        Obedient {
            journal: journal.clone(),
        },
        |index| index,
    )
    .size(size)
    .routing(Routing::RoundRobin)
}

/// Waits until the journal holds `count` entries.
async fn handled(journal: &Journal, count: usize) {
    wait_until(&format!("the workers handled {count} messages"), || async {
        journal.len() >= count
    })
    .await;
}

// ---------------------------------------------------------------------------
// Escalation

#[tokio::test]
async fn a_pool_whose_workers_crash_loop_fails_with_max_restart_intensity() {
    let journal = Journal::default();
    let dead = DeadLetters::default();
    let exits_log = Log::new();
    let (parent, _) = Actor::spawn(None, Parent::new(&exits_log), ())
        .await
        .expect("the recording parent starts");
    let pool = obedient(&journal, 2)
        .intensity(2, Duration::from_secs(10))
        .dead_letters(dead.handler())
        .spawn_linked(None, parent.get_cell())
        .await
        .expect("the pool starts");
    all_running(&pool, 2).await;

    for _ in 0..5 {
        pool.cast(Cmd::Fail).expect("the pool runs");
    }
    wait_until("the parent sees the pool end", || async {
        !exits_log.events().is_empty()
    })
    .await;

    let exits = exits_log.events();
    assert_eq!(exits.len(), 1, "the pool ends exactly once: {exits:?}");
    assert!(
        exits[0].starts_with("failed:") && exits[0].contains("max restart intensity"),
        "a pool whose workers fail more often than its intensity allows fails with \
         `max restart intensity`: {}",
        exits[0]
    );
    assert!(
        exits[0].contains("worker-"),
        "the failure names the worker that was one restart too many: {}",
        exits[0]
    );
    wait_until("the pool refuses casts", || async {
        pool.cast(Cmd::Work(0)).is_err()
    })
    .await;
    within(
        Duration::from_secs(5),
        "the 5 failing messages are all reported",
        || dead.count() == 5,
    )
    .await;
    assert_eq!(journal.len(), 0, "no message was processed");
    parent.stop(None);
}

#[tokio::test]
async fn a_crash_looping_pool_escalates_to_its_root_supervisor() {
    let journal = Journal::default();
    let (spec, pool) = ChildSpec::pool(
        "pool",
        obedient(&journal, 2).intensity(1, Duration::from_secs(10)),
    )
    .expect("a valid pool spec");
    let root = Linked::spawn(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(0, Duration::from_secs(10))
            .child(spec),
    )
    .await;
    all_running(&pool, 2).await;

    for _ in 0..4 {
        pool.cast(Cmd::Fail).expect("the pool runs");
    }
    let exit = root.wait_exit().await;
    assert!(
        exit.starts_with("failed:") && exit.contains("max restart intensity"),
        "the root, allowed no restart, fails when its pool fails: {exit}"
    );
    assert!(
        exit.contains("child `pool`"),
        "the root's failure names the pool: {exit}"
    );
    root.parent.stop(None);
}

/// A pool under a root that allows restarts, whose intensity (1 restart in
/// 10 s) its workers have just exceeded, so that the root restarted it; the
/// pool runs again under a new supervisor incarnation.
struct RestartedPool {
    pool: PoolRef<Cmd>,
    root: Linked,
    journal: Journal,
    dead: DeadLetters,
}

async fn pool_restarted_by_its_root() -> RestartedPool {
    let journal = Journal::default();
    let dead = DeadLetters::default();
    let (spec, pool) = ChildSpec::pool(
        "pool",
        obedient(&journal, 2)
            .intensity(1, Duration::from_secs(10))
            .dead_letters(dead.handler()),
    )
    .expect("a valid pool spec");
    let root = Linked::spawn(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(5, Duration::from_secs(10))
            .child(spec),
    )
    .await;
    all_running(&pool, 2).await;
    let first = pool.cell().expect("the pool runs").get_id();

    // Two failures: one restart in place is allowed, the second is one too
    // many, so the pool fails and the root starts it again.
    pool.cast(Cmd::Fail).expect("the pool runs");
    pool.cast(Cmd::Fail).expect("the pool runs");
    wait_until("the root restarts the pool", || async {
        pool.cell().is_ok_and(|cell| cell.get_id() != first)
    })
    .await;
    all_running(&pool, 2).await;
    RestartedPool {
        pool,
        root,
        journal,
        dead,
    }
}

#[tokio::test]
async fn the_pool_ref_follows_the_pool_when_its_root_restarts_it() {
    let RestartedPool {
        pool,
        root,
        journal,
        ..
    } = pool_restarted_by_its_root().await;

    for id in 0..10 {
        pool.cast(Cmd::Work(id))
            .expect("the restarted pool takes casts");
    }
    handled(&journal, 10).await;
    assert_eq!(
        (journal.by(0), journal.by(1)),
        (5, 5),
        "the same PoolRef routes to the restarted pool's workers"
    );
    assert_eq!(
        root.exits(),
        Vec::<String>::new(),
        "the root, allowed 5 restarts, keeps running"
    );
    root.stop().await;
}

#[tokio::test]
async fn a_pool_restarted_by_its_root_starts_with_a_fresh_restart_intensity() {
    let RestartedPool {
        pool,
        root,
        journal,
        dead,
    } = pool_restarted_by_its_root().await;
    let restarted = pool.cell().expect("the pool runs").get_id();

    // As any restarted supervisor, the new pool has its whole intensity
    // (1 restart in 10 s) again: one worker failure is restarted in place.
    let dead_before = dead.count();
    pool.cast(Cmd::Fail).expect("the pool runs");
    within(
        Duration::from_secs(5),
        "the failed message is reported",
        || dead.count() > dead_before,
    )
    .await;
    all_running(&pool, 2).await;
    pool.cast(Cmd::Work(0)).expect("the pool runs");
    pool.cast(Cmd::Work(1)).expect("the pool runs");
    handled(&journal, 2).await;
    assert_eq!(
        pool.cell().expect("the pool runs").get_id(),
        restarted,
        "one worker failure in a freshly restarted pool is within its intensity \
         (1 in 10 s): the pool is not restarted again"
    );
    root.stop().await;
}

// ---------------------------------------------------------------------------
// A killed worker

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_mailbox_is_reported_as_dead_letters_and_the_worker_comes_back() {
    let journal = Journal::default();
    let dead = DeadLetters::default();
    let pool = obedient(&journal, 2)
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    all_running(&pool, 2).await;

    // Hold one worker, then queue work at both: the held worker's share
    // waits in its mailbox, the other worker's share is processed.
    let gate = Gate::new();
    pool.cast(Cmd::Held(gate.clone())).expect("the pool runs");
    wait_until("a worker holds the gate", || async {
        gate.holder().is_some()
    })
    .await;
    let held = gate.holder().unwrap();
    let other = 1 - held;
    for id in 0..10 {
        pool.cast(Cmd::Work(id)).expect("the pool runs");
    }
    handled(&journal, 5).await;
    let sent = 11u64;
    let in_mailbox = pool.stats().workers[held].in_flight;
    assert_eq!(
        in_mailbox, 6,
        "the held worker has the held message and its 5 queued messages in flight"
    );

    let sup = pool.supervisor().expect("the pool runs");
    let cell = sup
        .which_children()
        .await
        .expect("the pool's supervisor answers")
        .into_iter()
        .find(|child| child.id == format!("worker-{held}"))
        .and_then(|child| child.actor)
        .expect("the held worker runs");
    cell.kill();

    within(
        Duration::from_secs(5),
        "the killed worker's messages are reported",
        || dead.count() >= in_mailbox,
    )
    .await;
    all_running(&pool, 2).await;

    assert_eq!(
        journal.len() as u64 + dead.count(),
        sent,
        "processed ({}) plus dead letters ({}) equals sent",
        journal.len(),
        dead.count()
    );
    assert_eq!(journal.by(other), 5, "the other worker processed its share");
    for (worker, reason, given_back) in dead.letters() {
        assert_eq!(
            (worker, reason, given_back),
            (Some(held), DeadLetterReason::WorkerKilled, false),
            "each message in the killed worker's mailbox is a WorkerKilled dead letter \
             without the message"
        );
    }
    let stats = pool.stats().workers[held];
    assert_eq!(
        stats.status,
        ChildStatus::Running,
        "the killed worker is back"
    );
    assert!(stats.restarts >= 1, "its restart is counted: {stats:?}");
    assert_eq!(stats.in_flight, 0, "nothing is counted in flight any more");

    for id in 10..14 {
        pool.cast(Cmd::Work(id)).expect("the pool runs");
    }
    handled(&journal, 9).await;
    assert_eq!(
        journal.by(held),
        2,
        "the restarted worker takes its share of new messages"
    );
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Stop

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_the_mailboxes_and_later_casts_get_their_message_back() {
    let journal = Journal::default();
    let dead = DeadLetters::default();
    let pool = obedient(&journal, 2)
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    all_running(&pool, 2).await;

    for id in 0..100 {
        pool.cast(Cmd::Slow(id, Duration::from_millis(2)))
            .expect("the pool runs");
    }
    tokio::time::timeout(Duration::from_secs(10), pool.clone().stop())
        .await
        .expect("the pool stops in bounded time")
        .expect("the pool stops");

    assert_eq!(
        journal.len(),
        100,
        "stop lets each worker finish its mailbox: all 100 messages are processed"
    );
    assert_eq!(dead.count(), 0, "a graceful stop loses nothing");

    match pool.cast(Cmd::Work(42)) {
        Err(PoolCastError::Stopped(Cmd::Work(42))) => {}
        Err(_) => panic!("cast after stop must give back the very message"),
        Ok(()) => panic!("cast after stop must be refused"),
    }
    assert!(
        matches!(
            pool.broadcast(Cmd::Work(43)),
            Err(PoolCastError::Stopped(Cmd::Work(43)))
        ),
        "broadcast after stop gives the message back"
    );
    assert_eq!(
        pool.resize(3).await,
        Err(PoolError::Stopped),
        "a stopped pool cannot be resized"
    );
    assert_eq!(
        pool.stop().await,
        Err(PoolError::Stopped),
        "stopping twice reports that the pool had stopped"
    );
    assert_eq!(dead.count(), 0, "refused casts are not dead letters");
}

/// Answers with `n`, or fails first when asked to.
#[derive(Clone)]
struct Answerer;

impl Actor for Answerer {
    type Msg = (bool, u64, RpcReplyPort<u64>);
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        (fail, n, reply): Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if fail {
            return Err("asked to fail on purpose".into());
        }
        let _ = reply.send(n);
        Ok(())
    }
}

#[tokio::test]
async fn a_call_whose_worker_fails_gets_no_reply_and_the_next_call_is_answered() {
    let pool = Pool::builder(Answerer, |_| ())
        .size(1)
        .spawn(None)
        .await
        .expect("the pool starts");
    all_running(&pool, 1).await;
    let limit = Some(Duration::from_secs(5));

    assert_eq!(
        pool.call(|reply| (true, 1, reply), limit).await,
        Err(PoolCallError::NoReply),
        "a call whose worker fails while handling it (redelivery off) gets NoReply"
    );
    assert_eq!(
        pool.call(|reply| (false, 2, reply), limit).await,
        Ok(2),
        "the worker restarted in place answers the next call"
    );
    stop(pool.clone()).await;
    assert_eq!(
        pool.call(|reply| (false, 3, reply), limit).await,
        Err(PoolCallError::Stopped),
        "a call to a stopped pool is refused"
    );
}

// ---------------------------------------------------------------------------
// Backoff (paused clock)

const BACKOFF_MIN: Duration = Duration::from_millis(100);

async fn backoff_pool(journal: &Journal, dead: &DeadLetters) -> PoolRef<Cmd> {
    let pool = obedient(journal, 3)
        .backoff(Backoff::new(BACKOFF_MIN, Duration::from_secs(1)))
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    all_running(&pool, 3).await;
    pool
}

/// The index of the one worker that is restarting.
fn restarting(pool: &PoolRef<Cmd>) -> Option<usize> {
    pool.stats()
        .workers
        .iter()
        .find(|w| w.status == ChildStatus::Restarting)
        .map(|w| w.index)
}

#[tokio::test(start_paused = true)]
async fn a_worker_waiting_for_its_backoff_shows_restarting_and_routing_skips_it() {
    let journal = Journal::default();
    let dead = DeadLetters::default();
    let pool = backoff_pool(&journal, &dead).await;

    let failed_at = Instant::now();
    pool.cast(Cmd::Fail).expect("the pool runs");
    wait_until("a worker fails and waits for its backoff", || async {
        restarting(&pool).is_some()
    })
    .await;
    let down = restarting(&pool).unwrap();

    for id in 0..30 {
        pool.cast(Cmd::Work(id)).expect("the pool runs");
    }
    handled(&journal, 30).await;
    assert!(
        failed_at.elapsed() < BACKOFF_MIN,
        "the 30 messages were handled within the backoff ({:?})",
        failed_at.elapsed()
    );
    assert_eq!(
        pool.stats().workers[down].status,
        ChildStatus::Restarting,
        "during its backoff the failed worker shows Restarting"
    );
    let counts: Vec<usize> = (0..3).map(|w| journal.by(w)).collect();
    assert_eq!(
        counts[down], 0,
        "routing skips the worker waiting for its backoff: {counts:?}"
    );
    assert!(
        counts
            .iter()
            .enumerate()
            .all(|(w, n)| w == down || *n == 15),
        "round robin alternates over the two workers that are up: {counts:?}"
    );

    wait_until("the failed worker is back", || async {
        pool.stats().workers[down].status == ChildStatus::Running
    })
    .await;
    assert!(
        failed_at.elapsed() >= BACKOFF_MIN,
        "the worker came back no sooner than its backoff of {BACKOFF_MIN:?} (after {:?})",
        failed_at.elapsed()
    );
    assert_eq!(
        pool.stats().workers[down].restarts,
        1,
        "the restart is counted"
    );
    assert_eq!(
        dead.letters(),
        [(
            Some(down),
            DeadLetterReason::WorkerFailed(format!("worker {down} failed on purpose")),
            false
        )],
        "the failed message is the one dead letter, with the failure"
    );
    stop(pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_worker_keeps_its_mailbox_and_handles_it_after_its_backoff() {
    let journal = Journal::default();
    let dead = DeadLetters::default();
    let pool = backoff_pool(&journal, &dead).await;

    // Nothing runs until this task awaits, so round robin sends Fail and
    // Work(3) to the same worker, Work(1) and Work(2) to the others.
    let failed_at = Instant::now();
    pool.cast(Cmd::Fail).expect("the pool runs");
    for id in 1..=3 {
        pool.cast(Cmd::Work(id)).expect("the pool runs");
    }
    handled(&journal, 2).await;
    let down = restarting(&pool).expect("the failed worker waits for its backoff");
    tokio::time::sleep(BACKOFF_MIN / 2).await;
    assert_eq!(
        journal.len(),
        2,
        "the message queued behind the failure waits in the failed worker's mailbox"
    );
    assert_eq!(
        pool.stats().workers[down].in_flight,
        1,
        "it is still counted in flight at that worker"
    );

    handled(&journal, 3).await;
    assert!(
        failed_at.elapsed() >= BACKOFF_MIN,
        "it is handled after the backoff"
    );
    assert!(
        journal.entries().contains(&(down, 3)),
        "the restarted worker handles the message from its own mailbox: {:?}",
        journal.entries()
    );
    assert_eq!(dead.count(), 1, "only the failed message is lost");
    stop(pool).await;
}

// ---------------------------------------------------------------------------
// Messages outside the pool's books, and a shrink that has to kill

/// Sends itself one extra message per job, outside the pool's books.
#[derive(Clone)]
struct SelfCaster {
    handled: Arc<AtomicU64>,
}

/// A job, or the worker's own follow-up.
enum Echo {
    Job,
    FollowUp,
}

impl Actor for SelfCaster {
    type Msg = Echo;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Echo>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Echo>,
        msg: Echo,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let Echo::Job = msg {
            let _ = myself.cast(Echo::FollowUp);
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_casts_by_a_worker_never_corrupt_the_in_flight_count_and_stop_returns() {
    let handled = Arc::new(AtomicU64::new(0));
    let pool = Pool::builder(
        SelfCaster {
            handled: handled.clone(),
        },
        |_| (),
    )
    .size(2)
    .routing(Routing::LeastLoaded)
    .spawn(None)
    .await
    .expect("the pool starts");
    for _ in 0..50 {
        pool.cast(Echo::Job).map_err(|_| "stopped").unwrap();
    }
    within(
        Duration::from_secs(10),
        "jobs and follow-ups are handled",
        || handled.load(Ordering::SeqCst) == 100,
    )
    .await;
    for w in pool.stats().workers {
        assert_eq!(
            w.in_flight, 0,
            "uncounted self-casts leave the in-flight count at zero, never wrapped"
        );
    }
    let dead = pool.stats().dead_letters;
    stop(pool).await;
    assert_eq!(dead, 0, "nothing was lost");
}

/// Takes 50 ms per job, so a shrink with a short shutdown limit must kill it.
#[derive(Clone)]
struct Slow {
    handled: Arc<AtomicU64>,
}

impl Actor for Slow {
    type Msg = u32;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<u32>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _: ActorRef<u32>, _: u32, _: &mut ()) -> Result<(), ActorProcessingErr> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_shrink_that_must_kill_a_busy_worker_reports_its_mailbox_as_dead_letters() {
    let handled = Arc::new(AtomicU64::new(0));
    let dead = DeadLetters::default();
    let pool = Pool::builder(
        Slow {
            handled: handled.clone(),
        },
        |_| (),
    )
    .size(2)
    .shutdown(ractor_otp::Shutdown::Timeout(Duration::from_millis(120)))
    .dead_letters(dead.handler())
    .spawn(None)
    .await
    .expect("the pool starts");
    let sent = 40;
    for n in 0..sent {
        pool.cast(n).unwrap();
    }
    pool.resize(1).await.expect("the pool shrinks");
    within(
        Duration::from_secs(60),
        "the remaining worker finishes",
        || handled.load(Ordering::SeqCst) + dead.count() == u64::from(sent),
    )
    .await;
    assert!(
        dead.count() > 0,
        "worker 1 could not finish 20 jobs of 50 ms within 120 ms, so it was killed"
    );
    assert!(
        dead.letters()
            .iter()
            .all(|(worker, reason, _)| *worker == Some(1)
                && *reason == DeadLetterReason::WorkerKilled),
        "every lost job is reported as killed at worker 1: {:?}",
        dead.letters()
    );
    stop(pool).await;
}
