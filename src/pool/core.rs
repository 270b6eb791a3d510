//! The pool's shared state and its dispatch: what every `PoolRef` clone and
//! every worker incarnation reads and updates.
//!
//! Routing happens on the caller's side: a cast chooses a worker from the
//! shared atomics and casts straight into that worker's mailbox, with no
//! actor hop in between. Nothing is lost on the way:
//!
//! - a worker that cannot take a message (restarting, stopping) is marked
//!   down and the message goes to the next choice;
//! - with no worker up, the message is parked and flushed when one comes up;
//! - in shared-queue mode the message waits in the queue until an idle
//!   worker pulls it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::{ActorRef, Message, MessagingErr};

use crate::pool::queue::JobQueue;
use crate::pool::routing::{self, HashRing, Loads, RoundRobin, SmoothWeighted};
use crate::pool::{DeadLetter, DeadLetterReason, QueueOrder, Routing};
use crate::supervisor::intensity::RestartWindow;
use crate::supervisor::{ChildStatus, SupervisorRef};

/// Copies the message a worker is about to handle (redelivery on).
pub(crate) type CopyFn<M> = fn(&M) -> M;

/// The dead-letter handler.
pub(crate) type DeadLetterFn<M> = Arc<dyn Fn(DeadLetter<M>) + Send + Sync>;

/// One worker position in the pool; outlives the worker's incarnations.
pub(crate) struct Worker<M: Message> {
    pub(crate) index: usize,
    /// The running incarnation; set in its `post_start`, cleared when it
    /// fails or stops.
    pub(crate) actor: RwLock<Option<ActorRef<M>>>,
    /// Routers may choose this worker. Cleared by the worker when it fails,
    /// and by a caller whose cast it refused.
    pub(crate) up: AtomicBool,
    /// Being removed by a resize: never chosen again.
    pub(crate) retiring: AtomicBool,
    /// Shared-queue mode: the worker has no job and may be handed one. A
    /// claimant flips it to `false` before handing a job over.
    pub(crate) idle: AtomicBool,
    /// Messages cast to this worker and not yet finished (or re-routed).
    pub(crate) in_flight: AtomicU64,
    pub(crate) processed: AtomicU64,
    /// Incarnations started; restarts are `starts - 1`.
    pub(crate) starts: AtomicU64,
}

impl<M: Message> Worker<M> {
    pub(crate) fn new(index: usize) -> Self {
        Self {
            index,
            actor: RwLock::new(None),
            up: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            starts: AtomicU64::new(0),
        }
    }

    fn routable(&self) -> bool {
        self.up.load(Ordering::Acquire) && !self.retiring.load(Ordering::Relaxed)
    }

    pub(crate) fn status(&self) -> ChildStatus {
        if self.retiring.load(Ordering::Relaxed) {
            ChildStatus::Stopped
        } else if self.up.load(Ordering::Acquire) {
            ChildStatus::Running
        } else {
            ChildStatus::Restarting
        }
    }

    /// Casts into the running incarnation, counting the message in flight;
    /// hands it back (and marks the worker down) if it was refused.
    ///
    /// The whole sequence holds the `actor` read lock, and every change of
    /// incarnation (`attach`, `detach`) takes the write lock, so a refusal
    /// by a dead incarnation can neither be counted as lost by the next one
    /// nor mark the next one down.
    pub(crate) fn try_cast(&self, message: M) -> Result<(), Option<M>> {
        let actor = lock!(self.actor.read());
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let refused = match actor.as_ref() {
            Some(actor) => match actor.cast(message) {
                Ok(()) => return Ok(()),
                Err(MessagingErr::SendErr(message)) => Some(message),
                // A typed cast reports a refusal with the message; the
                // other variants cannot carry it.
                Err(MessagingErr::ChannelClosed | MessagingErr::InvalidActorType) => None,
            },
            None => Some(message),
        };
        self.finish_one();
        self.up.store(false, Ordering::Release);
        Err(refused)
    }

    /// One counted message is finished (handled, re-routed or refused).
    /// Saturates at zero: a message cast to the worker directly (a
    /// self-cast, a timer) was never counted.
    pub(crate) fn finish_one(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// A new incarnation takes this position; returns how many messages the
    /// previous one still counted (they died with its mailbox).
    pub(crate) fn attach(&self, actor: ActorRef<M>) -> u64 {
        let mut current = lock!(self.actor.write());
        *current = Some(actor);
        self.in_flight.swap(0, Ordering::AcqRel)
    }

    /// The incarnation is gone; returns how many messages it still counted.
    pub(crate) fn detach(&self) -> u64 {
        let mut current = lock!(self.actor.write());
        self.up.store(false, Ordering::Release);
        *current = None;
        self.in_flight.swap(0, Ordering::AcqRel)
    }
}

impl<M: Message> Loads for [Arc<Worker<M>>] {
    fn len(&self) -> usize {
        <[Arc<Worker<M>>]>::len(self)
    }
    fn is_up(&self, i: usize) -> bool {
        self.get(i).is_some_and(|w| w.routable())
    }
    fn in_flight(&self, i: usize) -> u64 {
        self.get(i)
            .map_or(0, |w| w.in_flight.load(Ordering::Relaxed))
    }
}

/// The router and its state.
enum Router {
    RoundRobin(RoundRobin),
    Random,
    Weighted(Mutex<SmoothWeighted>),
    Hash {
        ring: RwLock<HashRing>,
        vnodes: usize,
        load_factor: f64,
    },
    LeastLoaded,
    Shared,
}

/// Shared by the pool's handles and workers.
pub(crate) struct PoolCore<M: Message> {
    router: Router,
    /// Worker positions, by index. Resizes take the write lock briefly.
    pub(crate) workers: RwLock<Vec<Arc<Worker<M>>>>,
    /// Messages that found no worker up (per-worker routing modes).
    pending: Mutex<VecDeque<M>>,
    /// Shared-queue mode: jobs waiting for an idle worker.
    queue: Mutex<JobQueue<M>>,
    /// `Some` when redelivery is on: copies the message a worker is about
    /// to handle, so that it can be handed to another worker if it dies.
    pub(crate) redelivery: Option<CopyFn<M>>,
    dead_letter_handler: Option<DeadLetterFn<M>>,
    dead_letters: AtomicU64,
    /// Set once the pool's supervisor has stopped for good.
    stopped: AtomicBool,
    /// The pool's current supervisor incarnation.
    pub(crate) supervisor: RwLock<Option<SupervisorRef>>,
    /// Serialises resizes.
    pub(crate) resize_lock: tokio::sync::Mutex<()>,
    /// Spreads keyless casts over a hash ring.
    keyless: AtomicU64,
    /// Restarts of workers in place, against the pool's intensity.
    pub(crate) window: Mutex<RestartWindow>,
}

impl<M: Message> PoolCore<M> {
    pub(crate) fn new(
        routing: &Routing,
        size: usize,
        redelivery: Option<CopyFn<M>>,
        dead_letter_handler: Option<DeadLetterFn<M>>,
        window: RestartWindow,
    ) -> Self {
        let (router, order) = match routing {
            Routing::RoundRobin => (Router::RoundRobin(RoundRobin::new()), QueueOrder::Fifo),
            Routing::Random => (Router::Random, QueueOrder::Fifo),
            Routing::Weighted(weights) => (
                Router::Weighted(Mutex::new(SmoothWeighted::new(weights))),
                QueueOrder::Fifo,
            ),
            Routing::ConsistentHash {
                vnodes,
                load_factor,
            } => (
                Router::Hash {
                    ring: RwLock::new(HashRing::new(size, *vnodes, *load_factor)),
                    vnodes: *vnodes,
                    load_factor: *load_factor,
                },
                QueueOrder::Fifo,
            ),
            Routing::LeastLoaded => (Router::LeastLoaded, QueueOrder::Fifo),
            Routing::SharedQueue(order) => (Router::Shared, *order),
        };
        Self {
            router,
            workers: RwLock::new((0..size).map(|i| Arc::new(Worker::new(i))).collect()),
            pending: Mutex::new(VecDeque::new()),
            queue: Mutex::new(JobQueue::new(order)),
            redelivery,
            dead_letter_handler,
            dead_letters: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            supervisor: RwLock::new(None),
            resize_lock: tokio::sync::Mutex::new(()),
            keyless: AtomicU64::new(0),
            window: Mutex::new(window),
        }
    }

    pub(crate) fn is_shared_queue(&self) -> bool {
        matches!(self.router, Router::Shared)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn worker(&self, index: usize) -> Option<Arc<Worker<M>>> {
        lock!(self.workers.read()).get(index).cloned()
    }

    pub(crate) fn size(&self) -> usize {
        lock!(self.workers.read()).len()
    }

    // -----------------------------------------------------------------------
    // Dispatch

    /// Routes one message: to a worker chosen by the router (per-worker
    /// modes), or into the shared queue. Never drops it.
    pub(crate) fn dispatch(&self, message: M, key: Option<u64>, cost: u64) {
        if self.is_shared_queue() {
            lock!(self.queue.lock()).push(message, cost);
            self.kick();
            if self.is_stopped() {
                self.dead_letter_leftovers();
            }
            return;
        }
        if let Err(message) = self.try_dispatch(message, key) {
            lock!(self.pending.lock()).push_back(message);
            // A worker may have come up (and flushed) between our failed
            // choice and the push: flush again so nothing waits for the
            // next start.
            if self.any_up() {
                self.flush_pending();
            }
        }
        if self.is_stopped() {
            self.dead_letter_leftovers();
        }
    }

    /// Re-routes a message taken back from a worker that failed or refused
    /// it; in shared-queue mode it goes back to the front of the queue.
    pub(crate) fn redispatch(&self, message: M) {
        if self.is_shared_queue() {
            lock!(self.queue.lock()).push_front(message, 0);
            self.kick();
        } else {
            self.dispatch(message, None, 0);
        }
    }

    /// One attempt per worker at most; `Err` when no worker took it.
    fn try_dispatch(&self, mut message: M, key: Option<u64>) -> Result<(), M> {
        let workers = lock!(self.workers.read());
        for _ in 0..=workers.len() {
            let Some(i) = self.choose(&workers, key) else {
                break;
            };
            match workers[i].try_cast(message) {
                Ok(()) => return Ok(()),
                Err(Some(back)) => message = back,
                Err(None) => {
                    self.dead_letter(DeadLetter {
                        worker: Some(i),
                        reason: DeadLetterReason::MailboxClosed,
                        message: None,
                    });
                    return Ok(());
                }
            }
        }
        Err(message)
    }

    fn choose(&self, workers: &[Arc<Worker<M>>], key: Option<u64>) -> Option<usize> {
        match &self.router {
            Router::RoundRobin(rr) => rr.choose(workers),
            Router::Random => routing::random(workers, &mut rand::rng()),
            Router::Weighted(weighted) => lock!(weighted.lock()).choose(workers),
            Router::Hash { ring, .. } => {
                let key = key.unwrap_or_else(|| {
                    routing::hash_key(&self.keyless.fetch_add(1, Ordering::Relaxed))
                });
                lock!(ring.read()).choose(key, workers)
            }
            Router::LeastLoaded => routing::power_of_two_choices(workers, &mut rand::rng()),
            // Shared-queue jobs are pulled, not pushed; `kick` hands them out.
            Router::Shared => None,
        }
    }

    fn any_up(&self) -> bool {
        lock!(self.workers.read()).iter().any(|w| w.routable())
    }

    /// Routes parked messages while some worker takes them.
    pub(crate) fn flush_pending(&self) {
        loop {
            let Some(message) = lock!(self.pending.lock()).pop_front() else {
                return;
            };
            if let Err(message) = self.try_dispatch(message, None) {
                lock!(self.pending.lock()).push_front(message);
                // A worker may have come up (and found nothing to flush)
                // while we held the message. Each refusal marks a worker
                // down, so this ends.
                if self.any_up() {
                    continue;
                }
                return;
            }
        }
    }

    /// Shared-queue mode: hands queued jobs to idle workers until either
    /// runs out.
    pub(crate) fn kick(&self) {
        let workers = lock!(self.workers.read());
        loop {
            // Claim an idle worker (idle: true -> false).
            let Some(worker) = workers.iter().find(|w| {
                w.routable()
                    && w.idle
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
            }) else {
                return;
            };
            let job = lock!(self.queue.lock()).pop_with_cost();
            let Some((job, cost)) = job else {
                worker.idle.store(true, Ordering::Release);
                // A job pushed after our pop may have found no idle worker
                // (we held this one): look again before leaving.
                if lock!(self.queue.lock()).is_empty() {
                    return;
                }
                continue;
            };
            match worker.try_cast(job) {
                Ok(()) => {}
                Err(Some(job)) => lock!(self.queue.lock()).push_front(job, cost),
                Err(None) => self.dead_letter(DeadLetter {
                    worker: Some(worker.index),
                    reason: DeadLetterReason::MailboxClosed,
                    message: None,
                }),
            }
        }
    }

    /// Shared-queue mode, called by a worker that finished a job: take the
    /// next one into its own mailbox, or become idle.
    pub(crate) fn pull_next(&self, worker: &Worker<M>, myself: &ActorRef<M>) {
        if worker.retiring.load(Ordering::Acquire) {
            // Being removed: take no more work.
            return;
        }
        loop {
            let job = lock!(self.queue.lock()).pop_with_cost();
            match job {
                Some((job, cost)) => {
                    worker.in_flight.fetch_add(1, Ordering::AcqRel);
                    if let Err(MessagingErr::SendErr(job)) = myself.cast(job) {
                        // Draining: give it back for another worker.
                        worker.finish_one();
                        lock!(self.queue.lock()).push_front(job, cost);
                        self.kick();
                    }
                    return;
                }
                None => {
                    worker.idle.store(true, Ordering::Release);
                    if lock!(self.queue.lock()).is_empty() {
                        return;
                    }
                    // A job arrived meanwhile; take it unless a caller has
                    // already claimed us for it.
                    if worker
                        .idle
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// A worker incarnation is ready: let it take work.
    pub(crate) fn worker_up(&self, worker: &Worker<M>) {
        worker.up.store(true, Ordering::Release);
        if self.is_shared_queue() {
            worker.idle.store(true, Ordering::Release);
            self.kick();
        } else {
            self.flush_pending();
        }
    }

    // -----------------------------------------------------------------------
    // Losses

    /// Reports one message that will not be processed.
    pub(crate) fn dead_letter(&self, letter: DeadLetter<M>) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(worker = ?letter.worker, reason = %letter.reason, "pool dead letter");
        if let Some(handler) = &self.dead_letter_handler {
            // A panicking handler must not cut short the bookkeeping that
            // called it (a stop reporting many letters, a worker failing).
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(letter)));
            if outcome.is_err() {
                tracing::error!("the pool's dead-letter handler panicked");
            }
        }
    }

    pub(crate) fn dead_letter_count(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }

    /// Reports `count` messages that died in a worker's mailbox without a
    /// trace (the worker was killed, or stopped itself with `stop`).
    pub(crate) fn report_lost(&self, worker: usize, count: u64, reason: &DeadLetterReason) {
        for _ in 0..count {
            self.dead_letter(DeadLetter {
                worker: Some(worker),
                reason: reason.clone(),
                message: None,
            });
        }
    }

    /// Messages still parked or queued.
    pub(crate) fn waiting(&self) -> usize {
        lock!(self.pending.lock()).len() + lock!(self.queue.lock()).len()
    }

    /// The pool has stopped for good: everything still parked or queued, and
    /// everything still counted in a worker's flight, is a dead letter.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        // A copy, so that the dead-letter handler runs without our locks.
        let workers: Vec<Arc<Worker<M>>> = lock!(self.workers.read()).clone();
        for worker in workers {
            let lost = worker.detach();
            self.report_lost(worker.index, lost, &DeadLetterReason::PoolStopped);
        }
        self.dead_letter_leftovers();
    }

    /// A new incarnation of the pool is starting: open for messages, with
    /// its full restart intensity (as a restarted supervisor in OTP).
    pub(crate) fn restart(&self) {
        lock!(self.window.lock()).clear();
        self.stopped.store(false, Ordering::Release);
    }

    fn dead_letter_leftovers(&self) {
        let mut leftovers: Vec<M> = lock!(self.pending.lock()).drain(..).collect();
        leftovers.extend(lock!(self.queue.lock()).drain_all());
        for message in leftovers {
            self.dead_letter(DeadLetter {
                worker: None,
                reason: DeadLetterReason::PoolStopped,
                message: Some(message),
            });
        }
    }

    /// Whether the routing fits `size` workers (the hash ring's bound).
    pub(crate) fn check_size(&self, size: usize) -> Result<(), crate::pool::PoolError> {
        match &self.router {
            Router::Hash {
                vnodes,
                load_factor,
                ..
            } => Routing::ConsistentHash {
                vnodes: *vnodes,
                load_factor: *load_factor,
            }
            .validate(size),
            Router::RoundRobin(_)
            | Router::Random
            | Router::Weighted(_)
            | Router::LeastLoaded
            | Router::Shared => Ok(()),
        }
    }

    /// Rebuilds the hash ring for `size` workers (after a resize).
    pub(crate) fn resize_router(&self, size: usize) {
        if let Router::Hash {
            ring,
            vnodes,
            load_factor,
        } = &self.router
        {
            *lock!(ring.write()) = HashRing::new(size, *vnodes, *load_factor);
        }
    }
}
