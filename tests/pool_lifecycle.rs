//! A pool's workers ending for good, and its graceful stop (DESIGN §4):
//! temporary workers that end show `Stopped`, leave the size, and once none
//! is left a cast gets its message back; a graceful stop lets the workers
//! finish what waits in the pool (a shared queue, or messages held back by
//! the in-flight limit) within their shutdown limit. Time is the paused
//! clock; every wait is bounded.

mod pool_support;

use std::sync::Arc;
use std::time::Duration;

use pool_support::{eventually, Book, DeadLetters, Job, Jobber};
use ractor_otp::{
    ChildStatus, DeadLetterReason, Pool, PoolBuilder, PoolCallError, PoolCastError, PoolRef,
    QueueOrder, Restart, Routing, Shutdown,
};
use tokio::sync::Semaphore;

fn statuses(pool: &PoolRef<Job>) -> Vec<ChildStatus> {
    pool.stats().workers.iter().map(|w| w.status).collect()
}

fn temporary(book: &Book, size: usize) -> PoolBuilder<Jobber> {
    Pool::builder(Jobber(book.clone()), |i| i)
        .size(size)
        .restart(Restart::Temporary)
        .routing(Routing::RoundRobin)
}

async fn stop(pool: &PoolRef<Job>) {
    tokio::time::timeout(Duration::from_secs(60), pool.stop())
        .await
        .expect("the pool stops in bounded time")
        .expect("the pool stops");
}

// ---------------------------------------------------------------------------
// Workers gone for good

#[tokio::test(start_paused = true)]
async fn a_temporary_worker_that_gave_up_shows_stopped_and_leaves_the_size() {
    let book = Book::default();
    let pool = temporary(&book, 2)
        .spawn(None)
        .await
        .expect("the pool starts");
    assert_eq!(pool.size(), 2);

    pool.cast(Job::Fail).expect("the pool runs"); // round robin: worker 0
    eventually("worker 0 is stopped", || {
        statuses(&pool) == [ChildStatus::Stopped, ChildStatus::Running]
    })
    .await;
    // Long after, it is still stopped: never "restarting" forever.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        statuses(&pool),
        [ChildStatus::Stopped, ChildStatus::Running],
        "a temporary worker that gave up is stopped, not restarting"
    );
    assert_eq!(pool.size(), 1, "the size counts only the worker that runs");

    for id in 0..10 {
        pool.cast(Job::Work(id)).expect("one worker is left");
    }
    eventually("the worker left handles every cast", || book.count() == 10).await;
    assert!(
        book.handled().iter().all(|(worker, _)| *worker == 1),
        "only the live worker gets messages"
    );
    stop(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_pool_with_no_worker_left_hands_casts_back_and_a_resize_brings_workers_back() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let pool = temporary(&book, 2)
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    pool.cast(Job::Fail).expect("the pool runs");
    pool.cast(Job::Fail).expect("the pool runs");
    eventually("both workers are gone", || pool.size() == 0).await;
    assert_eq!(statuses(&pool), [ChildStatus::Stopped; 2]);

    match pool.cast(Job::Work(7)) {
        Err(PoolCastError::NoWorkers(Job::Work(7))) => {}
        Err(other) => panic!("expected NoWorkers with the very message, got {other:?}"),
        Ok(()) => {
            panic!("a pool with no worker left must not accept a cast that would wait forever")
        }
    }
    assert!(matches!(
        pool.cast_keyed(&1, Job::Work(8)),
        Err(PoolCastError::NoWorkers(Job::Work(8)))
    ));
    let call = pool
        .call(|_reply: ractor::RpcReplyPort<()>| Job::Work(9), None)
        .await;
    assert_eq!(call, Err(PoolCallError::NoWorkers), "a call fails at once");
    assert_eq!(dead.count(), 2, "the two failed messages, and nothing else");
    assert_eq!(
        pool.stats().waiting,
        0,
        "nothing waits for workers that will never come"
    );

    pool.resize(2)
        .await
        .expect("a resize starts the positions again");
    assert_eq!(pool.size(), 2);
    assert_eq!(statuses(&pool), [ChildStatus::Running; 2]);
    for id in 0..4 {
        pool.cast(Job::Work(id)).expect("workers are back");
    }
    eventually("the new workers handle the casts", || book.count() == 4).await;
    stop(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn messages_waiting_when_the_last_worker_gives_up_become_dead_letters_with_the_message() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let gate = Arc::new(Semaphore::new(0));
    let pool = temporary(&book, 1)
        .max_in_flight(1)
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    pool.cast(Job::Hold(0, gate.clone()))
        .expect("the pool runs");
    pool.cast(Job::Fail).expect("waits in the pool (limit 1)");
    for id in 1..=3 {
        pool.cast(Job::Work(id)).expect("waits in the pool");
    }
    assert_eq!(pool.stats().waiting, 4, "the worker holds one, four wait");

    gate.add_permits(1);
    eventually("the last worker is gone", || pool.size() == 0).await;
    eventually("everything waiting is reported", || dead.count() == 4).await;
    assert_eq!(book.ids(), [0], "the held job was handled");
    let letters = dead.letters();
    assert!(
        matches!(
            &letters[0],
            (Some(0), DeadLetterReason::WorkerFailed(_), None)
        ),
        "first the failed message: {letters:?}"
    );
    assert_eq!(
        letters[1..],
        [1, 2, 3].map(|id| (None, DeadLetterReason::NoWorkers, Some(id))),
        "then the waiting ones, in order, with their message"
    );
    assert_eq!(pool.stats().waiting, 0);
    stop(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_temporary_worker_shows_stopped_and_its_mailbox_is_reported() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let gate = Arc::new(Semaphore::new(0));
    let pool = temporary(&book, 2)
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    // Worker 0 holds one job and has two more queued behind it.
    pool.cast(Job::Hold(0, gate.clone())).expect("to worker 0");
    pool.cast(Job::Work(1)).expect("to worker 1");
    pool.cast(Job::Work(2)).expect("to worker 0");
    pool.cast(Job::Work(3)).expect("to worker 1");
    pool.cast(Job::Work(4)).expect("to worker 0");
    eventually("worker 1 is done", || book.count() == 2).await;

    book.cell(0).kill();
    eventually("the killed worker shows stopped", || {
        statuses(&pool) == [ChildStatus::Stopped, ChildStatus::Running]
    })
    .await;
    assert_eq!(pool.size(), 1);
    assert_eq!(
        dead.letters(),
        vec![(Some(0), DeadLetterReason::WorkerKilled, None); 3],
        "the three messages in its mailbox are reported"
    );
    pool.cast(Job::Work(5)).expect("worker 1 is left");
    eventually("worker 1 takes the next cast", || book.count() == 3).await;
    stop(&pool).await;
}

// ---------------------------------------------------------------------------
// Graceful stop

/// A pool whose workers sleep 10 ms per job, with a shutdown limit.
fn sleepy(
    book: &Book,
    dead: &DeadLetters,
    routing: Routing,
    limit: Duration,
) -> PoolBuilder<Jobber> {
    Pool::builder(Jobber(book.clone()), |i| i)
        .size(2)
        .routing(routing)
        .shutdown(Shutdown::Timeout(limit))
        .dead_letters(dead.handler())
}

const JOBS: u64 = 40;
const PAUSE: Duration = Duration::from_millis(10);

async fn cast_jobs(pool: &PoolRef<Job>) {
    for id in 0..JOBS {
        pool.cast(Job::Sleep(id, PAUSE)).expect("the pool runs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_shared_queue_pool_stopped_gracefully_finishes_its_queue_within_the_shutdown_limit() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let routing = Routing::SharedQueue(QueueOrder::Fifo);
    let pool = sleepy(&book, &dead, routing, Duration::from_secs(5))
        .spawn(None)
        .await
        .expect("the pool starts");
    cast_jobs(&pool).await;
    assert!(pool.stats().waiting > 30, "most jobs wait in the queue");

    let started = tokio::time::Instant::now();
    stop(&pool).await;
    assert_eq!(
        book.ids(),
        (0..JOBS).collect::<Vec<_>>(),
        "a generous limit lets the workers finish the whole queue"
    );
    assert_eq!(dead.count(), 0, "nothing became a dead letter");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the stop took {:?}: about 40 × 10 ms shared by the workers",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_shared_queue_pool_whose_stop_limit_runs_out_reports_the_rest_as_dead_letters() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let routing = Routing::SharedQueue(QueueOrder::Fifo);
    let pool = sleepy(&book, &dead, routing, Duration::from_millis(55))
        .spawn(None)
        .await
        .expect("the pool starts");
    cast_jobs(&pool).await;
    stop(&pool).await;

    let handled = book.count() as u64;
    assert!(
        handled > 2 && handled < JOBS,
        "the workers kept working until their limit ({handled} handled)"
    );
    assert_eq!(
        handled + dead.count() as u64,
        JOBS,
        "handled plus dead letters is everything sent"
    );
    let mut reported: Vec<u64> = dead.letters().iter().filter_map(|l| l.2).collect();
    reported.sort_unstable();
    let unhandled: Vec<u64> = (0..JOBS).filter(|id| !book.ids().contains(id)).collect();
    assert!(
        reported.iter().all(|id| unhandled.contains(id)),
        "a dead letter is never a message that was handled"
    );
}

#[tokio::test(start_paused = true)]
async fn messages_held_back_by_the_in_flight_limit_are_delivered_by_a_graceful_stop() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let pool = sleepy(&book, &dead, Routing::LeastLoaded, Duration::from_secs(5))
        .max_in_flight(1)
        .spawn(None)
        .await
        .expect("the pool starts");
    cast_jobs(&pool).await;
    assert_eq!(
        pool.stats().waiting,
        JOBS as usize - 2,
        "each worker holds one"
    );

    stop(&pool).await;
    assert_eq!(book.ids(), (0..JOBS).collect::<Vec<_>>(), "all delivered");
    assert_eq!(dead.count(), 0);
    for (worker, ids) in book.per_worker() {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "worker {worker} handled its messages in cast order: {ids:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Transient workers that end normally

fn transient(book: &Book, size: usize) -> PoolBuilder<Jobber> {
    Pool::builder(Jobber(book.clone()), |i| i)
        .size(size)
        .restart(Restart::Transient)
        .routing(Routing::RoundRobin)
}

#[tokio::test(start_paused = true)]
async fn a_transient_worker_that_ends_normally_shows_stopped_and_leaves_the_size() {
    let book = Book::default();
    let pool = transient(&book, 2)
        .spawn(None)
        .await
        .expect("the pool starts");
    assert_eq!(pool.size(), 2);

    // A normal end (no reason): its supervisor does not restart it.
    book.cell(0).stop(None);
    eventually("worker 0 is stopped", || {
        statuses(&pool) == [ChildStatus::Stopped, ChildStatus::Running]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        statuses(&pool),
        [ChildStatus::Stopped, ChildStatus::Running],
        "a transient worker that ended normally is stopped, not restarting"
    );
    assert_eq!(pool.size(), 1, "the size counts only the worker that runs");
    for id in 0..6 {
        pool.cast(Job::Work(id)).expect("one worker is left");
    }
    eventually("the worker left handles every cast", || book.count() == 6).await;
    assert!(
        book.handled().iter().all(|(worker, _)| *worker == 1),
        "only the live worker gets messages"
    );

    // A failure is abnormal: a transient worker is restarted in place.
    pool.cast(Job::Fail).expect("worker 1 runs");
    pool.cast(Job::Work(6)).expect("worker 1 runs");
    eventually("worker 1 handles the next job", || book.count() == 7).await;
    assert_eq!(pool.stats().workers[1].restarts, 1);
    assert_eq!(pool.size(), 1);
    stop(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_transient_pool_whose_workers_all_ended_normally_hands_casts_back() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let pool = transient(&book, 2)
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    book.cell(0).stop(None);
    book.cell(1).stop(Some("shutdown".into()));
    eventually("both workers are gone", || pool.size() == 0).await;
    assert_eq!(statuses(&pool), [ChildStatus::Stopped; 2]);
    match pool.cast(Job::Work(7)) {
        Err(PoolCastError::NoWorkers(Job::Work(7))) => {}
        other => panic!("expected NoWorkers with the very message, got {other:?}"),
    }
    let call = pool
        .call(|_reply: ractor::RpcReplyPort<()>| Job::Work(8), None)
        .await;
    assert_eq!(call, Err(PoolCallError::NoWorkers), "a call fails at once");
    assert_eq!(dead.count(), 0, "nothing was lost");

    pool.resize(2)
        .await
        .expect("a resize starts the positions again");
    assert_eq!(statuses(&pool), [ChildStatus::Running; 2]);
    pool.cast(Job::Work(9)).expect("workers are back");
    eventually("a new worker handles the cast", || book.count() == 1).await;
    stop(&pool).await;
}
