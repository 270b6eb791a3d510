//! [`PoolRef`]: sending to a pool, resizing it, reading its statistics.

use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, Message, RpcReplyPort};

use crate::pool::admission::InFlightLimit;
use crate::pool::builder::{worker_id, WorkerSpecFn};
use crate::pool::core::{Cast, PoolCore, Worker};
use crate::pool::error::DeadLetterReason;
use crate::pool::error::{PoolCallError, PoolCastError, PoolError};
use crate::pool::routing::hash_key;
use crate::supervisor::{ChildStatus, SupervisorError, SupervisorRef};

/// A handle to a pool; clones share it. Routing happens here, on the
/// caller's side, straight into the chosen worker's mailbox.
pub struct PoolRef<M: Message> {
    core: Arc<PoolCore<M>>,
    worker_spec: WorkerSpecFn,
    weighted: bool,
}

impl<M: Message> Clone for PoolRef<M> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            worker_spec: self.worker_spec.clone(),
            weighted: self.weighted,
        }
    }
}

impl<M: Message> std::fmt::Debug for PoolRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolRef")
            .field("size", &self.core.alive())
            .field("stopped", &self.core.is_stopped())
            .finish_non_exhaustive()
    }
}

/// Per-worker and pool-wide counters from [`PoolRef::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// One entry per worker position, by index. Counters belong to the
    /// position: they carry over restarts, and disappear with a position
    /// that a resize removes.
    pub workers: Vec<WorkerStats>,
    /// Messages waiting in the pool: while no worker was up or every worker
    /// was at its in-flight limit, or in the shared queue.
    pub waiting: usize,
    /// Messages reported as dead letters so far.
    pub dead_letters: u64,
}

/// One worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index.
    pub index: usize,
    /// Messages it handled successfully (all incarnations).
    pub processed: u64,
    /// Messages routed to it and not yet finished.
    pub in_flight: u64,
    /// Times it was restarted.
    pub restarts: u64,
    /// Running, restarting, or stopped: being removed by a resize, a
    /// temporary worker that ended, or a transient one that ended normally
    /// (neither is restarted; a resize starts the position again).
    pub status: ChildStatus,
}

impl<M: Message> PoolRef<M> {
    pub(crate) fn new(core: Arc<PoolCore<M>>, worker_spec: WorkerSpecFn, weighted: bool) -> Self {
        Self {
            core,
            worker_spec,
            weighted,
        }
    }

    /// Sends `message` to the worker the router chooses. If no worker is up
    /// (or every worker is at its [in-flight
    /// limit](crate::pool::PoolBuilder::max_in_flight)) it waits in the pool
    /// until one can take it.
    ///
    /// # Errors
    ///
    /// The message back in a [`PoolCastError`]: `Stopped` once the pool has
    /// stopped, `NoWorkers` when every worker has ended for good (temporary
    /// workers, or transient ones that ended normally), `Full` when it would wait and the waiting room is at its
    /// [bound](crate::pool::PoolBuilder::max_waiting).
    pub fn cast(&self, message: M) -> Result<(), PoolCastError<M>> {
        self.send(message, None, 0)
    }

    /// As [`cast`](Self::cast); under `ConsistentHash` routing the worker
    /// is chosen by `key`, so equal keys go to the same worker while it is
    /// up and not overloaded. Other routings ignore the key.
    ///
    /// # Errors
    ///
    /// As [`cast`](Self::cast).
    pub fn cast_keyed<K: Hash + ?Sized>(
        &self,
        key: &K,
        message: M,
    ) -> Result<(), PoolCastError<M>> {
        self.send(message, Some(hash_key(key)), 0)
    }

    /// As [`cast`](Self::cast); under `SharedQueue(ShortestJobFirst)` the
    /// job with the lowest cost is taken first. Other routings ignore the
    /// cost.
    ///
    /// # Errors
    ///
    /// As [`cast`](Self::cast).
    pub fn cast_with_cost(&self, cost: u64, message: M) -> Result<(), PoolCastError<M>> {
        self.send(message, None, cost)
    }

    fn send(&self, message: M, key: Option<u64>, cost: u64) -> Result<(), PoolCastError<M>> {
        if self.core.is_stopped() {
            return Err(PoolCastError::Stopped(message));
        }
        self.core.dispatch(message, key, cost)
    }

    /// Sends a request built around a reply port and waits for the answer
    /// (`timeout: None` waits as long as it takes).
    ///
    /// # Errors
    ///
    /// [`PoolCallError::Stopped`], [`PoolCallError::NoWorkers`] or
    /// [`PoolCallError::Full`] (as [`cast`](Self::cast)),
    /// [`PoolCallError::NoReply`] if the port was
    /// dropped (its worker failed with redelivery off), or
    /// [`PoolCallError::Timeout`].
    pub async fn call<T, F>(&self, build: F, timeout: Option<Duration>) -> Result<T, PoolCallError>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> M,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cast(build(RpcReplyPort::from(tx)))
            .map_err(|err| match err {
                PoolCastError::Stopped(_) => PoolCallError::Stopped,
                PoolCastError::NoWorkers(_) => PoolCallError::NoWorkers,
                PoolCastError::Full(_) => PoolCallError::Full,
            })?;
        let answer = match timeout {
            Some(limit) => tokio::time::timeout(limit, rx)
                .await
                .map_err(|_| PoolCallError::Timeout)?,
            None => rx.await,
        };
        answer.map_err(|_| PoolCallError::NoReply)
    }

    /// Sends a copy of `message` to every worker that is up; returns how
    /// many took it. A worker that is restarting misses it (a copy is never
    /// re-routed, so no worker gets two).
    ///
    /// # Errors
    ///
    /// [`PoolCastError::Stopped`] with the message once the pool has
    /// stopped.
    pub fn broadcast(&self, message: M) -> Result<usize, PoolCastError<M>>
    where
        M: Clone,
    {
        if self.core.is_stopped() {
            return Err(PoolCastError::Stopped(message));
        }
        let workers = lock!(self.core.workers.read()).clone();
        Ok(workers
            .iter()
            .filter(|w| w.status() == ChildStatus::Running)
            .filter(|w| {
                matches!(
                    w.try_cast(message.clone(), InFlightLimit::UNLIMITED),
                    Cast::Sent
                )
            })
            .count())
    }

    /// Grows or shrinks the pool to `workers`. New workers start before this
    /// returns; removed ones (the highest indexes) stop taking work at once,
    /// finish what is in their mailbox, and stop. Nothing is lost. Positions
    /// kept whose worker had ended for good (temporary or transient) start a new
    /// worker too, so afterwards [`size`](Self::size) is `workers`.
    ///
    /// # Errors
    ///
    /// [`PoolError::ZeroSize`], [`PoolError::WeightedResize`],
    /// [`PoolError::Stopped`], [`PoolError::Supervisor`] if a new worker
    /// fails to start (the pool keeps the workers that did).
    pub async fn resize(&self, workers: usize) -> Result<(), PoolError> {
        if workers == 0 {
            return Err(PoolError::ZeroSize);
        }
        if self.weighted {
            return Err(PoolError::WeightedResize);
        }
        self.core.check_size(workers)?;
        let _serial = self.core.resize_lock.lock().await;
        let sup = self.supervisor()?;
        let current = self.core.positions();
        self.core.reap();
        for index in 0..workers.min(current) {
            if self.core.worker(index).is_some_and(|w| w.is_gone()) {
                self.restart_gone(&sup, index).await?;
            }
        }
        if workers > current {
            {
                let temporary = self.core.is_temporary();
                let mut table = lock!(self.core.workers.write());
                table.extend((current..workers).map(|i| Arc::new(Worker::new(i, temporary))));
            }
            self.core.resize_router(workers);
            for index in current..workers {
                if let Err(err) = sup.start_child((self.worker_spec)(index)).await {
                    lock!(self.core.workers.write()).truncate(index);
                    self.core.resize_router(index);
                    return Err(err.into());
                }
            }
        } else {
            for index in (workers..current).rev() {
                let worker = self.core.worker(index);
                if let Some(worker) = &worker {
                    worker.retiring.store(true, Ordering::Release);
                }
                let id = worker_id(index);
                // A temporary worker that ended is already gone: fine.
                match sup.terminate_child(&id).await {
                    Ok(()) | Err(SupervisorError::NotFound(_)) => {}
                    Err(err) => return Err(err.into()),
                }
                match sup.delete_child(&id).await {
                    Ok(()) | Err(SupervisorError::NotFound(_)) => {}
                    Err(err) => return Err(err.into()),
                }
                // A worker that did not finish its mailbox within its
                // shutdown limit was killed with it: report what it held.
                if let Some(worker) = worker {
                    let lost = worker.detach();
                    self.core
                        .report_lost(index, lost, &DeadLetterReason::WorkerKilled);
                }
                lock!(self.core.workers.write()).truncate(index);
                self.core.resize_router(index);
            }
        }
        tracing::info!(pool = %self.core.label(), from = current, to = workers, "pool resized");
        Ok(())
    }

    /// Starts a new worker at a position whose worker ended for good.
    async fn restart_gone(&self, sup: &SupervisorRef, index: usize) -> Result<(), PoolError> {
        let id = worker_id(index);
        // The supervisor drops a temporary child's spec when it ends; one
        // that is still finishing (handing its mailbox on) is stopped first.
        match sup.terminate_child(&id).await {
            Ok(()) | Err(SupervisorError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        match sup.delete_child(&id).await {
            Ok(()) | Err(SupervisorError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        sup.start_child((self.worker_spec)(index)).await?;
        tracing::info!(pool = %self.core.label(), worker = index, "pool worker started again by a resize");
        Ok(())
    }

    /// The pool's name in logs and metrics: its path in the tree.
    #[cfg_attr(not(feature = "observer"), allow(dead_code))]
    pub(crate) fn label(&self) -> String {
        self.core.label().to_string()
    }

    /// Counters per worker and for the pool. A temporary worker found
    /// killed here (no `post_stop` ran to say so) is marked gone, and the
    /// messages its mailbox held are reported as dead letters first.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.core.reap();
        let workers = lock!(self.core.workers.read())
            .iter()
            .map(|w| WorkerStats {
                index: w.index,
                processed: w.processed.load(Ordering::Relaxed),
                in_flight: w.in_flight.load(Ordering::Relaxed),
                restarts: w.starts.load(Ordering::Relaxed).saturating_sub(1),
                status: w.status(),
            })
            .collect();
        PoolStats {
            workers,
            waiting: self.core.waiting(),
            dead_letters: self.core.dead_letter_count(),
        }
    }

    /// Number of workers running or restarting: not those being removed by
    /// a resize, nor workers that ended for good (temporary, or transient
    /// that ended normally).
    #[must_use]
    pub fn size(&self) -> usize {
        self.core.reap();
        self.core.alive()
    }

    /// The pool's supervisor (current incarnation).
    ///
    /// # Errors
    ///
    /// [`PoolError::Stopped`].
    pub fn supervisor(&self) -> Result<SupervisorRef, PoolError> {
        if self.core.is_stopped() {
            return Err(PoolError::Stopped);
        }
        lock!(self.core.supervisor.read())
            .clone()
            .ok_or(PoolError::Stopped)
    }

    /// The pool's supervisor actor: link to it or monitor it.
    ///
    /// # Errors
    ///
    /// [`PoolError::Stopped`].
    pub fn cell(&self) -> Result<ActorCell, PoolError> {
        self.supervisor().map(|s| s.cell())
    }

    /// Stops the pool gracefully: each worker finishes its mailbox and then
    /// takes what waits in the pool (held back by the in-flight limit, or
    /// in the shared queue), within its shutdown limit; whatever is still
    /// waiting then becomes a dead letter.
    ///
    /// # Errors
    ///
    /// [`PoolError::Stopped`] if it had already stopped.
    pub async fn stop(&self) -> Result<(), PoolError> {
        let sup = self.supervisor()?;
        sup.cell()
            .stop_and_wait(None, None)
            .await
            .map_err(|_| PoolError::Stopped)
    }
}
