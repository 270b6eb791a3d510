//! The pool's shared state and its dispatch: what every `PoolRef` clone and
//! every worker incarnation reads and updates.
//!
//! Routing happens on the caller's side: a cast chooses a worker from the
//! shared atomics and casts straight into that worker's mailbox, with no
//! actor hop in between. Nothing is lost on the way:
//!
//! - a worker that cannot take a message (restarting, stopping) is marked
//!   down and the message goes to the next choice;
//! - with no worker up, or every worker at its in-flight limit, the message
//!   waits in the pool's waiting room (in arrival order, see
//!   [`admission`](crate::pool::admission)) and goes to the first worker
//!   that comes up or finishes a message;
//! - in shared-queue mode the message waits in the queue until an idle
//!   worker pulls it;
//! - once every worker has ended for good (temporary workers, or transient
//!   ones that ended normally), a cast is handed back and whatever still
//!   waits becomes a dead letter.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::{ActorRef, ActorStatus, Message, MessagingErr};

use crate::pool::admission::{fits, InFlightLimit, UnderLimit, WaitingRoom};
use crate::pool::queue::JobQueue;
use crate::pool::routing::{self, HashRing, Loads, RoundRobin, SmoothWeighted};
use crate::pool::{DeadLetter, DeadLetterReason, PoolCastError, QueueOrder, Routing};
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
    /// Ended for good: a temporary worker that gave up or ended, or a
    /// transient one that ended normally (told by the supervisor). Cleared
    /// when a resize starts the position again.
    pub(crate) gone: AtomicBool,
    /// The workers are `Restart::Temporary`: an incarnation that ends is
    /// never replaced by the supervisor.
    temporary: bool,
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
    pub(crate) fn new(index: usize, temporary: bool) -> Self {
        Self {
            index,
            actor: RwLock::new(None),
            up: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            temporary,
            idle: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            starts: AtomicU64::new(0),
        }
    }

    fn routable(&self) -> bool {
        self.up.load(Ordering::Acquire) && !self.retiring.load(Ordering::Relaxed)
    }

    /// Ended and never coming back by itself: marked gone, or a temporary
    /// incarnation that was killed (no `post_stop` ran to mark it).
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire) || (self.temporary && self.incarnation_ended())
    }

    fn incarnation_ended(&self) -> bool {
        lock!(self.actor.read())
            .as_ref()
            .is_some_and(|actor| actor.get_status() >= ActorStatus::Stopping)
    }

    /// Counts toward the pool's size: running or restarting.
    pub(crate) fn is_alive(&self) -> bool {
        !self.retiring.load(Ordering::Relaxed) && !self.is_gone()
    }

    pub(crate) fn status(&self) -> ChildStatus {
        if self.retiring.load(Ordering::Relaxed) || self.is_gone() {
            ChildStatus::Stopped
        } else if self.up.load(Ordering::Acquire) {
            ChildStatus::Running
        } else {
            ChildStatus::Restarting
        }
    }

    /// Casts into the running incarnation, counting the message in flight
    /// if `limit` admits one more.
    ///
    /// The whole sequence holds the `actor` read lock, and every change of
    /// incarnation (`attach`, `detach`) takes the write lock, so a refusal
    /// by a dead incarnation can neither be counted as lost by the next one
    /// nor mark the next one down.
    pub(crate) fn try_cast(&self, message: M, limit: InFlightLimit) -> Cast<M> {
        let actor = lock!(self.actor.read());
        match limit.max() {
            // Unlimited, the common case: one plain increment.
            None => {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
            }
            Some(_) => {
                // Never past the limit, however many callers race here.
                let admitted =
                    self.in_flight
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| limit.admit(n));
                if admitted.is_err() {
                    return Cast::Full(message);
                }
            }
        }
        let refused = match actor.as_ref() {
            Some(actor) => match actor.cast(message) {
                Ok(()) => return Cast::Sent,
                Err(MessagingErr::SendErr(message)) => Some(message),
                // A typed cast reports a refusal with the message; the
                // other variants cannot carry it.
                Err(MessagingErr::ChannelClosed | MessagingErr::InvalidActorType) => None,
            },
            None => Some(message),
        };
        self.finish_one();
        self.up.store(false, Ordering::Release);
        match refused {
            Some(message) => Cast::Refused(message),
            None => Cast::Lost,
        }
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
        self.gone.store(false, Ordering::Release);
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

/// What became of one cast into a worker.
pub(crate) enum Cast<M> {
    /// In the worker's mailbox, counted in flight.
    Sent,
    /// The worker is at its in-flight limit; nothing changed.
    Full(M),
    /// The worker's mailbox refused it; the worker is now marked down.
    Refused(M),
    /// The mailbox was closed without handing it back.
    Lost,
}

/// What became of one attempt to route a message to some worker.
enum Routed<M> {
    Sent,
    /// Lost at this worker's closed mailbox; to be reported (outside locks).
    Lost(usize),
    /// No worker took it: none up, or all at their limit.
    NotTaken(M),
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

/// What a pool's shared state is built from.
pub(crate) struct CoreConfig<M: Message> {
    pub(crate) routing: Routing,
    pub(crate) size: usize,
    pub(crate) redelivery: Option<CopyFn<M>>,
    pub(crate) dead_letter_handler: Option<DeadLetterFn<M>>,
    pub(crate) window: RestartWindow,
    pub(crate) limit: InFlightLimit,
    pub(crate) max_waiting: Option<usize>,
    pub(crate) temporary: bool,
    /// Workers can end for good: temporary, or transient (one that ends
    /// normally is not restarted).
    pub(crate) can_end: bool,
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
    /// Per-worker routing modes: messages that found no worker up, or every
    /// worker at its limit, in arrival order. Lock order: `pending` before
    /// `workers`.
    /// Each message keeps its routing key, so that it still goes to its
    /// key's worker when one is free.
    pending: Mutex<WaitingRoom<(M, Option<u64>)>>,
    /// `pending`'s length, written under its lock and read without it: a
    /// cast routes directly only while nothing waits, so that no message
    /// overtakes a waiting one.
    waiting: AtomicUsize,
    /// Per-worker limit on unfinished messages (`max_in_flight`).
    limit: InFlightLimit,
    /// Bound on `pending` and on the shared queue (`max_waiting`).
    max_waiting: Option<usize>,
    /// The workers are temporary.
    temporary: bool,
    /// Workers can end for good (temporary or transient): with none left,
    /// a cast is handed back.
    can_end: bool,
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
    /// The pool's name in tracing: its path in the supervision tree
    /// (`root/hashers`: the parent's ractor name, then the child id), or
    /// its own name when spawned alone. Set by each incarnation.
    label: RwLock<Arc<str>>,
}

impl<M: Message> PoolCore<M> {
    pub(crate) fn new(config: CoreConfig<M>) -> Self {
        let CoreConfig {
            routing,
            size,
            redelivery,
            dead_letter_handler,
            window,
            limit,
            max_waiting,
            temporary,
            can_end,
        } = config;
        let (router, order) = match &routing {
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
            workers: RwLock::new(
                (0..size)
                    .map(|i| Arc::new(Worker::new(i, temporary)))
                    .collect(),
            ),
            pending: Mutex::new(WaitingRoom::with_capacity(max_waiting)),
            waiting: AtomicUsize::new(0),
            limit,
            max_waiting,
            temporary,
            can_end,
            queue: Mutex::new(JobQueue::new(order)),
            redelivery,
            dead_letter_handler,
            dead_letters: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            supervisor: RwLock::new(None),
            resize_lock: tokio::sync::Mutex::new(()),
            keyless: AtomicU64::new(0),
            window: Mutex::new(window),
            label: RwLock::new(Arc::from("pool")),
        }
    }

    /// The pool's name in tracing (see the `label` field).
    pub(crate) fn label(&self) -> Arc<str> {
        lock!(self.label.read()).clone()
    }

    pub(crate) fn set_label(&self, label: String) {
        *lock!(self.label.write()) = Arc::from(label);
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

    /// Worker positions, including those retiring or gone.
    pub(crate) fn positions(&self) -> usize {
        lock!(self.workers.read()).len()
    }

    /// Workers running or restarting: what the pool's size says.
    pub(crate) fn alive(&self) -> usize {
        lock!(self.workers.read())
            .iter()
            .filter(|w| w.is_alive())
            .count()
    }

    pub(crate) fn is_temporary(&self) -> bool {
        self.temporary
    }

    // -----------------------------------------------------------------------
    // Dispatch

    /// Routes one new message: to a worker chosen by the router (per-worker
    /// modes), or into the shared queue.
    ///
    /// # Errors
    ///
    /// The message back when no worker is left or the waiting room is full.
    pub(crate) fn dispatch(
        &self,
        message: M,
        key: Option<u64>,
        cost: u64,
    ) -> Result<(), PoolCastError<M>> {
        if self.is_shared_queue() {
            // The short-circuiting scan stops at the first live worker.
            if !self.any_alive() {
                return Err(PoolCastError::NoWorkers(message));
            }
            {
                let mut queue = lock!(self.queue.lock());
                if !fits(queue.len(), self.max_waiting) {
                    return Err(PoolCastError::Full(message));
                }
                queue.push(message, cost);
            }
            self.kick();
            self.after_parking();
            return Ok(());
        }
        // Route directly only while nothing waits: a waiting message is
        // never overtaken by a later one.
        let message = if self.waiting.load(Ordering::SeqCst) == 0 {
            match self.try_dispatch(message, key) {
                Routed::Sent => return Ok(()),
                Routed::Lost(worker) => {
                    self.report_closed(worker);
                    return Ok(());
                }
                Routed::NotTaken(message) => message,
            }
        } else {
            message
        };
        if !self.any_alive() {
            return Err(PoolCastError::NoWorkers(message));
        }
        self.park(message, key, false)?;
        Ok(())
    }

    /// Re-routes a message taken back from a worker that failed, refused it
    /// or gave up; in shared-queue mode it goes back to the front of the
    /// queue. It was accepted already, so no bound refuses it; with no
    /// worker left it becomes a dead letter.
    pub(crate) fn redispatch(&self, message: M) {
        if self.is_shared_queue() {
            lock!(self.queue.lock()).push_front(message, 0);
            self.kick();
            self.after_parking();
            return;
        }
        let routed = if self.waiting.load(Ordering::SeqCst) == 0 {
            self.try_dispatch(message, None)
        } else {
            Routed::NotTaken(message)
        };
        match routed {
            Routed::Sent => {}
            Routed::Lost(worker) => self.report_closed(worker),
            Routed::NotTaken(message) => {
                // Infallible: taken-back messages pass the bound.
                let _ = self.park(message, None, true);
            }
        }
    }

    /// Puts a message in the waiting room, then hands out what workers can
    /// take. `taken_back`: a message accepted earlier, never refused.
    fn park(&self, message: M, key: Option<u64>, taken_back: bool) -> Result<(), PoolCastError<M>> {
        let first = {
            let mut room = lock!(self.pending.lock());
            let first = room.is_empty();
            if taken_back {
                room.push_taken_back((message, key));
            } else {
                room.push((message, key))
                    .map_err(|(message, _)| PoolCastError::Full(message))?;
            }
            self.waiting.store(room.len(), Ordering::SeqCst);
            first
        };
        if first {
            // Pairs with the fence in `finished_one`: either the worker
            // that just finished sees our message waiting, or we see its
            // free slot. Behind other waiting messages there is nothing to
            // do: whoever parked the first one, or the next worker to
            // finish, flushes the room in order (in a burst, the caller
            // only queues).
            fence(Ordering::SeqCst);
            self.flush_pending(None);
        }
        self.after_parking();
        Ok(())
    }

    /// A parked message must not wait for a pool that has stopped or has no
    /// worker left (either may have happened while we parked it).
    fn after_parking(&self) {
        if self.is_stopped() {
            self.dead_letter_leftovers(&DeadLetterReason::PoolStopped);
        } else if !self.any_alive() {
            self.dead_letter_leftovers(&DeadLetterReason::NoWorkers);
        }
    }

    /// One attempt per worker at most (a worker found full by a racing
    /// caller costs one more choice).
    fn try_dispatch(&self, mut message: M, key: Option<u64>) -> Routed<M> {
        let workers = lock!(self.workers.read());
        for _ in 0..=workers.len() {
            let choice = match self.limit.max() {
                None => self.choose(&workers[..], key),
                Some(_) => self.choose(&UnderLimit::new(&workers[..], self.limit), key),
            };
            let Some(i) = choice else {
                break;
            };
            match workers[i].try_cast(message, self.limit) {
                Cast::Sent => return Routed::Sent,
                Cast::Full(back) | Cast::Refused(back) => message = back,
                Cast::Lost => return Routed::Lost(i),
            }
        }
        Routed::NotTaken(message)
    }

    fn choose<L: Loads + ?Sized>(&self, loads: &L, key: Option<u64>) -> Option<usize> {
        match &self.router {
            Router::RoundRobin(rr) => rr.choose(loads),
            Router::Random => routing::random(loads, &mut rand::rng()),
            Router::Weighted(weighted) => lock!(weighted.lock()).choose(loads),
            Router::Hash { ring, .. } => {
                let key = key.unwrap_or_else(|| {
                    routing::hash_key(&self.keyless.fetch_add(1, Ordering::Relaxed))
                });
                lock!(ring.read()).choose(key, loads)
            }
            Router::LeastLoaded => routing::power_of_two_choices(loads, &mut rand::rng()),
            // Shared-queue jobs are pulled, not pushed; `kick` hands them out.
            Router::Shared => None,
        }
    }

    /// Some worker is running or restarting (or is being started by a
    /// resize): a waiting message will be taken one day.
    fn any_alive(&self) -> bool {
        // Only temporary and transient workers end for good, and a resize
        // keeps at least one position: a pool of permanent workers always
        // has a worker to wait for.
        !self.can_end || lock!(self.workers.read()).iter().any(|w| w.is_alive())
    }

    /// Routes waiting messages, oldest first, while some worker takes them.
    /// Holds the room's lock throughout, so that two flushes cannot swap
    /// the order of two messages bound for the same worker.
    ///
    /// `finisher`: the worker that just finished a message and so has a
    /// free slot. It takes the front message itself, as a consumer that
    /// acknowledges gets the next one from a broker (except under
    /// `ConsistentHash`, where the key chooses): the message needs no
    /// other thread to wake, which a burst would otherwise queue behind a
    /// busy worker on the same thread.
    pub(crate) fn flush_pending(&self, finisher: Option<&Worker<M>>) {
        let finisher = finisher.filter(|_| !matches!(self.router, Router::Hash { .. }));
        let mut lost = Vec::new();
        {
            let mut room = lock!(self.pending.lock());
            while let Some((message, key)) = room.pop_front() {
                let message = match finisher.filter(|w| w.routable()) {
                    Some(worker) => match worker.try_cast(message, self.limit) {
                        Cast::Sent => continue,
                        Cast::Lost => {
                            lost.push(worker.index);
                            continue;
                        }
                        // Full again: every other worker that frees a slot
                        // flushes for itself (see `finished_one`), so stop.
                        Cast::Full(message) => {
                            room.unpop((message, key));
                            break;
                        }
                        Cast::Refused(message) => message,
                    },
                    None => message,
                };
                match self.try_dispatch(message, key) {
                    Routed::Sent => {}
                    Routed::Lost(worker) => lost.push(worker),
                    Routed::NotTaken(message) => {
                        room.unpop((message, key));
                        break;
                    }
                }
            }
            self.waiting.store(room.len(), Ordering::SeqCst);
        }
        // The handler runs without our locks.
        for worker in lost {
            self.report_closed(worker);
        }
    }

    /// `worker` finished a message: with a limit, it has a free slot for
    /// the oldest waiting message.
    pub(crate) fn finished_one(&self, worker: &Worker<M>) {
        if self.limit.max().is_some() {
            // Pairs with the fence in `park`.
            fence(Ordering::SeqCst);
            if self.waiting.load(Ordering::SeqCst) > 0 {
                self.flush_pending(Some(worker));
            }
        }
    }

    fn report_closed(&self, worker: usize) {
        self.dead_letter(DeadLetter {
            worker: Some(worker),
            reason: DeadLetterReason::MailboxClosed,
            message: None,
        });
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
            match worker.try_cast(job, InFlightLimit::UNLIMITED) {
                Cast::Sent => {}
                Cast::Full(job) | Cast::Refused(job) => {
                    lock!(self.queue.lock()).push_front(job, cost);
                }
                Cast::Lost => self.report_closed(worker.index),
            }
        }
    }

    /// Shared-queue mode, called by a worker that finished a job: take the
    /// next one into its own mailbox, or become idle.
    ///
    /// Returns a job for the worker to handle at once, counted in flight,
    /// when its mailbox refuses it: the worker is being drained by a
    /// graceful stop of the pool, and keeps working through the queue
    /// within its shutdown limit instead of leaving the queue to the dead
    /// letters. (A retiring worker takes nothing; one that gave up never
    /// gets here.)
    pub(crate) fn pull_next(&self, worker: &Worker<M>, myself: &ActorRef<M>) -> Option<M> {
        if worker.retiring.load(Ordering::Acquire) {
            // Being removed: take no more work.
            return None;
        }
        loop {
            let job = lock!(self.queue.lock()).pop_with_cost();
            match job {
                Some((job, _cost)) => {
                    worker.in_flight.fetch_add(1, Ordering::AcqRel);
                    return match myself.cast(job) {
                        Ok(()) => None,
                        Err(MessagingErr::SendErr(job)) => Some(job),
                        Err(MessagingErr::ChannelClosed | MessagingErr::InvalidActorType) => {
                            worker.finish_one();
                            self.report_closed(worker.index);
                            None
                        }
                    };
                }
                None => {
                    worker.idle.store(true, Ordering::Release);
                    if lock!(self.queue.lock()).is_empty() {
                        return None;
                    }
                    // A job arrived meanwhile; take it unless a caller has
                    // already claimed us for it.
                    if worker
                        .idle
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                    {
                        return None;
                    }
                }
            }
        }
    }

    /// Called by a worker that a graceful stop drains: the oldest message
    /// waiting in the pool (or in the shared queue), counted in its flight,
    /// for it to handle at once. A retiring worker takes nothing.
    pub(crate) fn take_waiting(&self, worker: &Worker<M>) -> Option<M> {
        if worker.retiring.load(Ordering::Acquire) {
            return None;
        }
        let message = if self.is_shared_queue() {
            lock!(self.queue.lock()).pop()
        } else {
            let mut room = lock!(self.pending.lock());
            let message = room.pop_front().map(|(message, _)| message);
            self.waiting.store(room.len(), Ordering::SeqCst);
            message
        }?;
        worker.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(message)
    }

    /// A worker incarnation is ready: let it take work.
    pub(crate) fn worker_up(&self, worker: &Worker<M>) {
        worker.up.store(true, Ordering::Release);
        if self.is_shared_queue() {
            worker.idle.store(true, Ordering::Release);
            self.kick();
        } else {
            self.flush_pending(None);
        }
    }

    // -----------------------------------------------------------------------
    // Losses

    /// Reports one message that will not be processed.
    pub(crate) fn dead_letter(&self, letter: DeadLetter<M>) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(pool = %self.label(), worker = ?letter.worker, reason = %letter.reason, "pool dead letter");
        crate::metrics::pool_dead_letter(&self.label(), letter.worker, &letter.reason);
        if let Some(handler) = &self.dead_letter_handler {
            // A panicking handler must not cut short the bookkeeping that
            // called it (a stop reporting many letters, a worker failing).
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(letter)));
            if outcome.is_err() {
                tracing::error!(pool = %self.label(), "the pool's dead-letter handler panicked");
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
        self.dead_letter_leftovers(&DeadLetterReason::PoolStopped);
    }

    /// A worker has ended for good: a temporary worker that gave up, ended
    /// or was found killed, or a transient one its supervisor did not
    /// restart (it ended normally). `report`: also report what it still counted in
    /// flight, which died in its mailbox (not so for a worker that gave up:
    /// it hands its mailbox to the others). With no worker left, whatever
    /// waits becomes a dead letter.
    pub(crate) fn worker_gone(&self, worker: &Worker<M>, report: bool) {
        if worker.gone.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(
            pool = %self.label(),
            worker = worker.index,
            "pool worker ended for good (not restarted)"
        );
        if report {
            let lost = worker.detach();
            self.report_lost(worker.index, lost, &DeadLetterReason::WorkerKilled);
        } else {
            worker.up.store(false, Ordering::Release);
        }
        if !self.any_alive() {
            self.dead_letter_leftovers(&DeadLetterReason::NoWorkers);
        }
    }

    /// Temporary pools: marks the workers found killed (no `post_stop` ran
    /// to say so) as gone, and reports what their mailboxes held.
    pub(crate) fn reap(&self) {
        if !self.temporary {
            return;
        }
        let workers: Vec<Arc<Worker<M>>> = lock!(self.workers.read()).clone();
        for worker in workers {
            if !worker.gone.load(Ordering::Acquire) && worker.is_gone() {
                self.worker_gone(&worker, true);
            }
        }
    }

    /// A new incarnation of the pool is starting: open for messages, with
    /// its full restart intensity (as a restarted supervisor in OTP).
    pub(crate) fn restart(&self) {
        lock!(self.window.lock()).clear();
        self.stopped.store(false, Ordering::Release);
    }

    fn dead_letter_leftovers(&self, reason: &DeadLetterReason) {
        let mut leftovers: Vec<M> = {
            let mut room = lock!(self.pending.lock());
            self.waiting.store(0, Ordering::SeqCst);
            room.drain_all()
                .into_iter()
                .map(|(message, _)| message)
                .collect()
        };
        leftovers.extend(lock!(self.queue.lock()).drain_all());
        for message in leftovers {
            self.dead_letter(DeadLetter {
                worker: None,
                reason: reason.clone(),
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
