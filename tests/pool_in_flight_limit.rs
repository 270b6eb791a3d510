//! The per-worker in-flight limit (`max_in_flight`, a broker's prefetch)
//! and the waiting room (`max_waiting`): a worker never holds more than its
//! limit under any router, a slow worker holds at most its limit of a
//! burst, messages keep their cast order per worker, a full room hands the
//! message back, and nothing is lost when workers fail. Every wait is
//! bounded.

mod pool_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_support::{eventually, Book, DeadLetters, Job, Jobber};
use ractor_otp::{Pool, PoolCastError, PoolError, PoolRef, Routing};
use tokio::sync::Semaphore;

const BURST: u64 = 400;

fn routings() -> [Routing; 5] {
    [
        Routing::RoundRobin,
        Routing::Random,
        Routing::Weighted(vec![3, 1, 1, 1]),
        Routing::ConsistentHash {
            vnodes: 100,
            load_factor: 0.25,
        },
        Routing::LeastLoaded,
    ]
}

fn highest_in_flight(pool: &PoolRef<Job>) -> u64 {
    pool.stats()
        .workers
        .iter()
        .map(|w| w.in_flight)
        .max()
        .unwrap_or(0)
}

async fn stop(pool: &PoolRef<Job>) {
    tokio::time::timeout(Duration::from_secs(60), pool.stop())
        .await
        .expect("the pool stops in bounded time")
        .expect("the pool stops");
}

/// For every router and limits 1–3: a burst into four workers (worker 0 ten
/// times slower) never puts more than the limit in a worker, every message
/// is handled once, and each worker handles its messages in cast order.
#[tokio::test(start_paused = true)]
async fn under_every_router_a_burst_never_exceeds_the_limit_keeps_order_and_loses_nothing() {
    for routing in routings() {
        for limit in 1..=3u64 {
            let book = Book::default();
            let dead = DeadLetters::default();
            let pool = Pool::builder(Jobber(book.clone()), |i| i)
                .size(4)
                .routing(routing.clone())
                .max_in_flight(limit)
                .dead_letters(dead.handler())
                .spawn(None)
                .await
                .expect("the pool starts");
            let highest = Arc::new(AtomicU64::new(0));
            for id in 0..BURST {
                let pause = Duration::from_millis(if id % 4 == 0 { 10 } else { 1 });
                pool.cast_keyed(&(id % 8), Job::Sleep(id, pause))
                    .expect("the pool runs");
                highest.fetch_max(highest_in_flight(&pool), Ordering::Relaxed);
                if id % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while book.count() < BURST as usize {
                highest.fetch_max(highest_in_flight(&pool), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(500)).await;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{routing:?}, limit {limit}: the burst is handled within a minute"
                );
            }
            let case = format!("{routing:?}, limit {limit}");
            assert!(
                highest.load(Ordering::Relaxed) <= limit,
                "{case}: a worker held {} messages",
                highest.load(Ordering::Relaxed)
            );
            assert_eq!(
                book.ids(),
                (0..BURST).collect::<Vec<_>>(),
                "{case}: each once"
            );
            assert_eq!(dead.count(), 0, "{case}: nothing lost");
            for (worker, ids) in book.per_worker() {
                assert!(
                    ids.windows(2).all(|w| w[0] < w[1]),
                    "{case}: worker {worker} handled out of cast order: {ids:?}"
                );
            }
            stop(&pool).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_worker_holds_at_most_its_limit_of_a_burst() {
    let book = Book::default();
    let gate = Arc::new(Semaphore::new(0));
    let pool = Pool::builder(Jobber(book.clone()), |i| i)
        .size(4)
        .routing(Routing::LeastLoaded)
        .max_in_flight(2)
        .spawn(None)
        .await
        .expect("the pool starts");
    // Worker 0 is stuck on its first job; the others are quick.
    pool.cast(Job::Hold(0, gate.clone())).expect("runs");
    eventually("worker 0 holds the stuck job", || {
        pool.stats().workers.iter().any(|w| w.in_flight == 1)
    })
    .await;
    let stuck = pool
        .stats()
        .workers
        .iter()
        .position(|w| w.in_flight == 1)
        .expect("one worker holds the stuck job");
    for id in 1..=BURST {
        pool.cast(Job::Work(id)).expect("runs");
    }
    eventually("the quick workers handle the rest of the burst", || {
        book.count() as u64 >= BURST - 1
    })
    .await;
    let stats = pool.stats();
    assert!(
        stats.workers[stuck].in_flight <= 2,
        "the stuck worker holds at most its limit: {stats:?}"
    );
    assert_eq!(stats.waiting, 0, "nothing waits for the stuck worker");
    gate.add_permits(1);
    eventually("all handled", || book.count() as u64 == BURST + 1).await;
    stop(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn a_full_waiting_room_hands_the_message_back() {
    let book = Book::default();
    let gate = Arc::new(Semaphore::new(0));
    let pool = Pool::builder(Jobber(book.clone()), |i| i)
        .size(1)
        .max_in_flight(1)
        .max_waiting(2)
        .spawn(None)
        .await
        .expect("the pool starts");
    pool.cast(Job::Hold(0, gate.clone()))
        .expect("taken by the worker");
    pool.cast(Job::Work(1)).expect("waits");
    pool.cast(Job::Work(2)).expect("waits");
    match pool.cast(Job::Work(3)) {
        Err(PoolCastError::Full(Job::Work(3))) => {}
        other => panic!("a full room hands back the very message, got {other:?}"),
    }
    assert_eq!(pool.stats().waiting, 2);
    gate.add_permits(1);
    eventually("the waiting messages are handled", || book.count() == 3).await;
    assert_eq!(book.ids(), [0, 1, 2]);
    pool.cast(Job::Work(3)).expect("room again");
    eventually("and the new one", || book.count() == 4).await;
    stop(&pool).await;
}

#[tokio::test(start_paused = true)]
async fn failing_workers_lose_no_waiting_message_and_report_each_failed_one() {
    let book = Book::default();
    let dead = DeadLetters::default();
    let pool = Pool::builder(Jobber(book.clone()), |i| i)
        .size(3)
        .routing(Routing::LeastLoaded)
        .max_in_flight(2)
        .intensity(1_000, Duration::from_secs(1))
        .dead_letters(dead.handler())
        .spawn(None)
        .await
        .expect("the pool starts");
    let mut good = Vec::new();
    for id in 0..300u64 {
        if id % 25 == 0 {
            pool.cast(Job::Fail).expect("the pool runs");
        } else {
            good.push(id);
            pool.cast(Job::Sleep(id, Duration::from_millis(1)))
                .expect("the pool runs");
        }
    }
    assert!(
        pool.stats().waiting > 200,
        "most of the burst waits in the pool"
    );
    eventually("every good message is handled", || {
        book.count() == good.len()
    })
    .await;
    assert_eq!(book.ids(), good, "each good message handled once");
    assert_eq!(
        dead.count(),
        300 - good.len(),
        "each failed message reported"
    );
    let stats = pool.stats();
    assert_eq!(stats.waiting, 0);
    assert!(stats.workers.iter().all(|w| w.in_flight == 0));
    assert!(stats.workers.iter().map(|w| w.restarts).sum::<u64>() >= 12);
    stop(&pool).await;
}

#[tokio::test]
async fn a_limit_of_zero_is_refused_before_anything_starts() {
    let err = Pool::builder(Jobber(Book::default()), |i| i)
        .size(2)
        .max_in_flight(0)
        .spawn(None)
        .await
        .expect_err("a limit of 0 would take nothing");
    assert!(matches!(err, PoolError::InvalidLimit(_)), "{err}");
}

/// Real threads: three callers race four workers; the limit holds at every
/// sample, and no message is stranded in the waiting room (each is handled
/// within the bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_callers_on_real_threads_never_strand_a_message_nor_pass_the_limit() {
    const PER_CALLER: u64 = 5_000;
    for limit in [1, 2, 8] {
        let book = Book::default();
        let pool = Pool::builder(Jobber(book.clone()), |i| i)
            .size(4)
            .routing(Routing::LeastLoaded)
            .max_in_flight(limit)
            .spawn(None)
            .await
            .expect("the pool starts");
        let highest = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..3u64)
            .map(|caller| {
                let pool = pool.clone();
                let highest = highest.clone();
                tokio::spawn(async move {
                    for n in 0..PER_CALLER {
                        pool.cast(Job::Work(caller * PER_CALLER + n))
                            .expect("the pool runs");
                        if n % 64 == 0 {
                            highest.fetch_max(highest_in_flight(&pool), Ordering::Relaxed);
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.expect("a caller");
        }
        let all = 3 * PER_CALLER as usize;
        let handled = tokio::time::timeout(Duration::from_secs(20), async {
            while book.count() < all {
                highest.fetch_max(highest_in_flight(&pool), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(
            handled.is_ok(),
            "limit {limit}: {} of {all} handled, {:?}: a message is stranded",
            book.count(),
            pool.stats()
        );
        assert_eq!(book.ids(), (0..all as u64).collect::<Vec<_>>(), "each once");
        assert!(
            highest.load(Ordering::Relaxed) <= limit,
            "limit {limit} held"
        );
        let mut per_caller_order_kept = true;
        for ids in book.per_worker().values() {
            for caller in 0..3 {
                let mine: Vec<u64> = ids
                    .iter()
                    .copied()
                    .filter(|id| id / PER_CALLER == caller)
                    .collect();
                per_caller_order_kept &= mine.windows(2).all(|w| w[0] < w[1]);
            }
        }
        assert!(
            per_caller_order_kept,
            "limit {limit}: each worker handles each caller's messages in that caller's order"
        );
        stop(&pool).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_shared_queue_hands_the_message_back_and_an_empty_bound_is_refused() {
    let book = Book::default();
    let gate = Arc::new(Semaphore::new(0));
    let pool = Pool::builder(Jobber(book.clone()), |i| i)
        .size(1)
        .routing(Routing::SharedQueue(ractor_otp::QueueOrder::Fifo))
        .max_waiting(2)
        .spawn(None)
        .await
        .expect("the pool starts");
    pool.cast(Job::Hold(0, gate.clone()))
        .expect("taken by the idle worker");
    eventually("the worker holds the job", || pool.stats().waiting == 0).await;
    pool.cast(Job::Work(1)).expect("queued");
    pool.cast(Job::Work(2)).expect("queued");
    assert!(
        matches!(
            pool.cast(Job::Work(3)),
            Err(PoolCastError::Full(Job::Work(3)))
        ),
        "a full queue hands back the very message"
    );
    gate.add_permits(1);
    eventually("the queue is handled", || book.count() == 3).await;
    stop(&pool).await;

    let err = Pool::builder(Jobber(Book::default()), |i| i)
        .size(1)
        .routing(Routing::SharedQueue(ractor_otp::QueueOrder::Fifo))
        .max_waiting(0)
        .spawn(None)
        .await
        .expect_err("every shared-queue job waits in the queue");
    assert!(matches!(err, PoolError::InvalidLimit(_)), "{err}");
}
