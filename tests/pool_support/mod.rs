//! Shared support for the pool tests: a worker driven by [`Job`]s that
//! records what it handled, and a dead-letter collector.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use ractor_otp::{DeadLetter, DeadLetterReason};
use tokio::sync::Semaphore;

/// What a [`Jobber`] is told to do.
#[derive(Clone)]
pub enum Job {
    /// Record `id` at once.
    Work(u64),
    /// Sleep, then record `id` (the clock is paused in most tests).
    Sleep(u64, Duration),
    /// Wait for a permit of the semaphore, then record `id`.
    Hold(u64, Arc<Semaphore>),
    /// Fail (return `Err`) without recording.
    Fail,
}

impl Job {
    /// The id this job records, if it records one.
    pub fn id(&self) -> Option<u64> {
        match self {
            Job::Work(id) | Job::Sleep(id, _) | Job::Hold(id, _) => Some(*id),
            Job::Fail => None,
        }
    }
}

/// What the workers did: `(worker index, id)` in the order handled, and
/// each worker's current actor.
#[derive(Clone, Default)]
pub struct Book {
    handled: Arc<Mutex<Vec<(usize, u64)>>>,
    cells: Arc<Mutex<HashMap<usize, ActorCell>>>,
}

impl Book {
    pub fn handled(&self) -> Vec<(usize, u64)> {
        self.handled.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.handled.lock().unwrap().len()
    }
    /// Ids handled, sorted.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.handled().into_iter().map(|(_, id)| id).collect();
        ids.sort_unstable();
        ids
    }
    /// Ids handled by each worker, in the order handled.
    pub fn per_worker(&self) -> HashMap<usize, Vec<u64>> {
        let mut per: HashMap<usize, Vec<u64>> = HashMap::new();
        for (worker, id) in self.handled() {
            per.entry(worker).or_default().push(id);
        }
        per
    }
    /// Worker `index`'s current actor.
    pub fn cell(&self, index: usize) -> ActorCell {
        self.cells.lock().unwrap()[&index].clone()
    }
}

/// A pool worker that does what each [`Job`] says; `Arguments` is its
/// index (build the pool with `|i| i`).
#[derive(Clone)]
pub struct Jobber(pub Book);

impl Actor for Jobber {
    type Msg = Job;
    type State = usize;
    type Arguments = usize;

    async fn pre_start(
        &self,
        myself: ActorRef<Job>,
        index: usize,
    ) -> Result<usize, ActorProcessingErr> {
        self.0
            .cells
            .lock()
            .unwrap()
            .insert(index, myself.get_cell());
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Job>,
        job: Job,
        index: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        let id = match job {
            Job::Work(id) => id,
            Job::Sleep(id, pause) => {
                tokio::time::sleep(pause).await;
                id
            }
            Job::Hold(id, gate) => {
                gate.acquire().await?.forget();
                id
            }
            Job::Fail => return Err("failed on purpose".into()),
        };
        self.0.handled.lock().unwrap().push((*index, id));
        Ok(())
    }
}

/// One dead letter: `(worker, reason, the id of the message given back)`.
pub type Letter = (Option<usize>, DeadLetterReason, Option<u64>);

/// Collects dead letters.
#[derive(Clone, Default)]
pub struct DeadLetters(Arc<Mutex<Vec<Letter>>>);

impl DeadLetters {
    /// A handler for `PoolBuilder::dead_letters`.
    pub fn handler(&self) -> impl Fn(DeadLetter<Job>) + Send + Sync + 'static {
        let this = self.clone();
        move |letter: DeadLetter<Job>| {
            this.0.lock().unwrap().push((
                letter.worker,
                letter.reason,
                letter.message.and_then(|m| m.id()),
            ));
        }
    }
    pub fn letters(&self) -> Vec<Letter> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Polls `cond` every millisecond of (usually paused) time for at most
/// 10 s; panics with `what` if it never holds.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut cond: F) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting until {what}");
}
