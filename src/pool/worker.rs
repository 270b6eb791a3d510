//! The actor that runs one of the user's workers inside the pool.
//!
//! `PoolWorker<A>` has the same message type as the user's actor `A` and
//! calls `A`'s own `pre_start`, `post_start`, `handle` and `post_stop`, so
//! the worker stays a plain ractor actor (its `myself` is a real
//! `ActorRef<A::Msg>`). Around `handle` it keeps the pool's books (messages
//! in flight, processed) and restarts `A` **in place** when it fails, as an
//! Akka router restarts a routee: the mailbox survives, so the messages
//! queued for the worker are neither lost nor shuffled to other workers.
//!
//! When `A`'s `handle` fails (an `Err` or a panic, caught here):
//!
//! 1. the worker is marked down, so routers skip it;
//! 2. the message being handled goes to another worker (redelivery on) or
//!    to the dead letters (off);
//! 3. the restart is decided exactly as a supervisor would: the restart type
//!    (`Temporary` is not restarted), one restart counted in the pool's
//!    sliding window (exceeding it escalates through the pool's supervisor),
//!    the backoff delay; then `A` starts again from `pre_start` with fresh
//!    arguments, and a failed start counts and is retried the same way;
//! 4. a worker that is not restarted drains its mailbox to the other
//!    workers, and its `post_stop` reports the failure to the supervisor.
//!
//! A worker killed from outside dies with its mailbox: the supervisor starts
//! a new one, and the messages that were in it are reported as dead letters.
//! A temporary worker that ends (gives up, stops, or is killed) is gone for
//! good: the pool stops routing to it and counting it in its size. So is a
//! transient worker that ends normally (it stops itself): its supervisor
//! decides not to restart it and tells the pool (the spec's `on_ended`).
//!
//! When a graceful stop drains the worker, its mailbox refuses new messages;
//! after each message it then takes the oldest one waiting in the pool (the
//! shared queue, or messages held back by the in-flight limit) and handles
//! it at once, so what waits is finished within the worker's shutdown limit
//! rather than turned into dead letters.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};

use crate::exit::ExitReason;
use crate::metrics::WorkerMetrics;
use crate::pool::core::{PoolCore, Worker};
use crate::pool::{DeadLetter, DeadLetterReason};
use crate::supervisor::actor::now;
use crate::supervisor::strategy::should_restart;
use crate::supervisor::{Backoff, Restart, SupervisorError};

/// Builds worker `index`'s arguments for every (re)start.
pub(crate) type ArgsFn<A> = Arc<dyn Fn(usize) -> <A as Actor>::Arguments + Send + Sync>;

/// Runs the user's actor `A` as worker `index` of a pool.
pub(crate) struct PoolWorker<A: Actor> {
    pub(crate) inner: A,
    pub(crate) index: usize,
    pub(crate) core: Arc<PoolCore<A::Msg>>,
    pub(crate) args: ArgsFn<A>,
    pub(crate) restart: Restart,
    pub(crate) backoff: Option<Backoff>,
}

impl<A: Actor + Clone> Clone for PoolWorker<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            index: self.index,
            core: self.core.clone(),
            args: self.args.clone(),
            restart: self.restart,
            backoff: self.backoff,
        }
    }
}

/// One actor's state.
pub(crate) struct WorkerState<A: Actor> {
    inner: A::State,
    worker: Arc<Worker<A::Msg>>,
    /// Set when the worker gives up (temporary, or the pool escalated): the
    /// mailbox is drained to other workers and `post_stop` reports this.
    failure: Option<String>,
    /// Backoff delays waited in the current run of failures.
    attempt: u32,
    /// When `A` last started, for the backoff reset.
    started_at: Instant,
    /// This incarnation's metric handles.
    metrics: WorkerMetrics,
}

impl<A: Actor + Clone> PoolWorker<A> {
    /// `A`'s `pre_start` then `post_start`, with panics caught.
    async fn start_inner(&self, myself: &ActorRef<A::Msg>) -> Result<A::State, String> {
        let args = (self.args)(self.index);
        let mut state = match AssertUnwindSafe(self.inner.pre_start(myself.clone(), args))
            .catch_unwind()
            .await
        {
            Ok(Ok(state)) => state,
            Ok(Err(err)) => return Err(err.to_string()),
            Err(panic) => return Err(panic_text(panic)),
        };
        match AssertUnwindSafe(self.inner.post_start(myself.clone(), &mut state))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => Ok(state),
            Ok(Err(err)) => Err(err.to_string()),
            Err(panic) => Err(panic_text(panic)),
        }
    }

    /// Restarts `A` in place after it failed with `failure`. `Err` when the
    /// worker must give up instead (temporary, or intensity exceeded).
    async fn restart_in_place(
        &self,
        myself: &ActorRef<A::Msg>,
        state: &mut WorkerState<A>,
        mut failure: String,
    ) -> Result<(), String> {
        if !should_restart(self.restart, &ExitReason::Failed(failure.clone())) {
            return Err(failure);
        }
        loop {
            if let Err(exceeded) = lock!(self.core.window.lock()).add_restart(now()) {
                let err = SupervisorError::IntensityExceeded {
                    child: crate::pool::builder::worker_id(self.index),
                    reason: ExitReason::Failed(failure.clone()),
                    max_restarts: exceeded.max_restarts,
                    period: exceeded.period,
                };
                if let Some(sup) = lock!(self.core.supervisor.read()).as_ref() {
                    sup.escalate(err);
                }
                return Err(failure);
            }
            if let Some(backoff) = self.backoff {
                if backoff.is_healthy_run(now().saturating_duration_since(state.started_at)) {
                    state.attempt = 0;
                }
                let delay = backoff.delay(state.attempt, &mut rand::rng());
                state.attempt = state.attempt.saturating_add(1);
                tracing::info!(
                    pool = %self.core.label(),
                    worker = self.index,
                    delay_ms = delay.as_millis() as u64,
                    "pool worker waiting before restart (backoff)"
                );
                tokio::time::sleep(delay).await;
            }
            state.started_at = now();
            match self.start_inner(myself).await {
                Ok(inner) => {
                    state.inner = inner;
                    state.worker.starts.fetch_add(1, Ordering::Relaxed);
                    state.metrics.restarted();
                    tracing::info!(pool = %self.core.label(), worker = self.index, "pool worker restarted in place");
                    return Ok(());
                }
                Err(start_failure) => {
                    tracing::warn!(pool = %self.core.label(), worker = self.index, reason = %start_failure, "pool worker failed to restart; will retry");
                    failure = start_failure;
                }
            }
        }
    }

    /// Handles one message (counted in flight) with `A`'s `handle`; on a
    /// failure, redelivers or reports it and restarts `A` in place, or gives
    /// up. `true` when the message was handled successfully.
    async fn handle_one(
        &self,
        myself: &ActorRef<A::Msg>,
        message: A::Msg,
        state: &mut WorkerState<A>,
    ) -> bool {
        let worker = state.worker.clone();
        let copy = self.core.redelivery.map(|clone| clone(&message));
        let started = state.metrics.start();
        let outcome =
            AssertUnwindSafe(self.inner.handle(myself.clone(), message, &mut state.inner))
                .catch_unwind()
                .await;
        worker.finish_one();
        let ok = matches!(outcome, Ok(Ok(())));
        let in_flight = worker.in_flight.load(Ordering::Relaxed);
        state.metrics.handled(started, ok, in_flight);
        let failure = match outcome {
            Ok(Ok(())) => {
                worker.processed.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(Err(err)) => err.to_string(),
            Err(panic) => panic_text(panic),
        };

        tracing::warn!(pool = %self.core.label(), worker = self.index, reason = %failure, "pool worker failed");
        worker.up.store(false, Ordering::Release);
        match copy {
            Some(copy) => self.core.redispatch(copy),
            None => self.core.dead_letter(DeadLetter {
                worker: Some(self.index),
                reason: DeadLetterReason::WorkerFailed(failure.clone()),
                message: None,
            }),
        }
        match self.restart_in_place(myself, state, failure).await {
            Ok(()) => self.core.worker_up(&worker),
            Err(failure) => {
                // Give up: hand the queued messages to the other workers
                // (they come back through `handle`), then `post_stop`
                // reports the failure to the supervisor.
                *lock!(worker.actor.write()) = None;
                if self.restart == Restart::Temporary {
                    // Never restarted: gone for good, out of the size, and
                    // with no worker left the pool hands casts back.
                    self.core.worker_gone(&worker, false);
                }
                state.failure = Some(failure);
                let _ = myself.drain();
            }
        }
        false
    }
}

impl<A: Actor + Clone> Actor for PoolWorker<A> {
    type Msg = A::Msg;
    type State = WorkerState<A>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<A::Msg>,
        (): (),
    ) -> Result<WorkerState<A>, ActorProcessingErr> {
        let worker = self
            .core
            .worker(self.index)
            .ok_or_else(|| format!("pool worker {} was removed by a resize", self.index))?;
        let args = (self.args)(self.index);
        let inner = self.inner.pre_start(myself.clone(), args).await?;
        // Routable from now on, so that a pool is fully usable when `spawn`
        // returns: ractor queues what arrives before `post_start` and
        // handles it after. Whatever a previous actor at this position
        // still counted died in its mailbox (it was killed): say so.
        let lost = worker.attach(myself);
        self.core
            .report_lost(self.index, lost, &DeadLetterReason::WorkerKilled);
        worker.starts.fetch_add(1, Ordering::Relaxed);
        self.core.worker_up(&worker);
        Ok(WorkerState {
            inner,
            worker,
            failure: None,
            attempt: 0,
            started_at: now(),
            metrics: WorkerMetrics::new(&self.core.label(), self.index),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<A::Msg>,
        state: &mut WorkerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        self.inner.post_start(myself, &mut state.inner).await
    }

    async fn handle(
        &self,
        myself: ActorRef<A::Msg>,
        message: A::Msg,
        state: &mut WorkerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let worker = state.worker.clone();
        if state.failure.is_some() {
            // Draining after giving up: this message was queued for us.
            worker.finish_one();
            self.core.redispatch(message);
            return Ok(());
        }
        let mut next = Some(message);
        while let Some(message) = next.take() {
            if !self.handle_one(&myself, message, state).await {
                break;
            }
            if self.core.is_shared_queue() {
                // `Some` only while a graceful stop drains us.
                next = self.core.pull_next(&worker, &myself);
            } else {
                self.core.finished_one(&worker);
            }
            if next.is_none() && myself.get_status() == ActorStatus::Draining {
                // A graceful stop drains us and our mailbox refuses new
                // messages: we take what waits in the pool ourselves, one
                // at a time, until it is empty or our shutdown limit kills
                // us (what we hold then is reported as a dead letter).
                next = self.core.take_waiting(&worker);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<A::Msg>,
        event: SupervisionEvent,
        state: &mut WorkerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        self.inner
            .handle_supervisor_evt(myself, event, &mut state.inner)
            .await
    }

    async fn post_stop(
        &self,
        myself: ActorRef<A::Msg>,
        state: &mut WorkerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        // A graceful stop drains the mailbox first; anything still counted
        // was dropped by a `stop` the worker asked for itself.
        let lost = state.worker.detach();
        self.core
            .report_lost(self.index, lost, &DeadLetterReason::WorkerStopped);
        if self.restart == Restart::Temporary && !self.core.is_stopped() {
            // Whatever ended it, the supervisor will not start it again.
            self.core.worker_gone(&state.worker, false);
        }
        if let Some(failure) = state.failure.take() {
            // As ractor after a failure: the user's post_stop does not run.
            return Err(failure.into());
        }
        self.inner.post_stop(myself, &mut state.inner).await
    }
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => format!("panicked: {text}"),
        Err(panic) => match panic.downcast::<&'static str>() {
            Ok(text) => format!("panicked: {text}"),
            Err(_) => "panicked".to_string(),
        },
    }
}
