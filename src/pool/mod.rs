//! Pools: load-balance messages among supervised workers.
//!
//! A pool is a one-for-one supervisor of N identical workers plus a router.
//! Workers are plain ractor actors (no special trait); the pool restarts
//! them under the same restart types, intensity and backoff as any
//! supervisor, and escalates when they crash-loop.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
//! use ractor_otp::prelude::*;
//!
//! #[derive(Clone)]
//! struct Squarer;
//!
//! impl Actor for Squarer {
//!     type Msg = (u64, RpcReplyPort<u64>);
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//!     async fn handle(&self, _: ActorRef<Self::Msg>, (n, reply): Self::Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
//!         let _ = reply.send(n * n);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(Squarer, |_worker| ())
//!     .size(4)
//!     .routing(Routing::LeastLoaded)
//!     .spawn(None)
//!     .await?;
//! let nine = pool.call(|reply| (3, reply), Some(Duration::from_secs(1))).await?;
//! assert_eq!(nine, 9);
//! pool.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! | topic | behaviour |
//! |-------|-----------|
//! | routing | on the caller's side: `cast` chooses a worker from shared counters and casts into its mailbox, no actor hop (see [`routing`] for the algorithms) |
//! | restarting workers | skipped by every router; a worker that refuses a cast is marked down and the next choice gets the message |
//! | no worker up | the message waits in the pool and goes to the first worker that comes up |
//! | [in-flight limit](PoolBuilder::max_in_flight) | off by default. With `max_in_flight(n)` a worker holding `n` unfinished messages takes no more (a broker's prefetch); the rest wait in the pool in arrival order and go to the first worker under its limit, so a slow worker holds at most `n` of a burst (see [`admission`]) |
//! | waiting room | unbounded by default; with [`max_waiting`](PoolBuilder::max_waiting) a cast that would wait in a full room gets its message back (`PoolCastError::Full`). While messages wait, new ones queue behind them: none overtakes a waiting one, so a worker receives its messages in cast order (one caller) |
//! | no worker left | temporary workers that ended, and transient ones that ended normally (their supervisor tells the pool it will not restart them), are not restarted: they show `Stopped` in `stats()`, `size()` stops counting them, and once none is left a cast gets its message back (`PoolCastError::NoWorkers`) and whatever waited becomes a dead letter (`DeadLetterReason::NoWorkers`). `resize` starts the positions again |
//! | a worker fails | it is restarted **in place**, Akka-style: the user's actor starts again from `pre_start` in the same ractor actor, so its mailbox survives and its queued messages wait for it (through its backoff too). The restart type, intensity (one sliding window for the pool; exceeding it escalates through the pool's supervisor) and backoff are the pool's. The message being handled goes to another worker with [redelivery](PoolBuilder::redelivery) on, or to the [dead-letter handler](PoolBuilder::dead_letters) with it off |
//! | a worker gives up | (temporary workers, or the pool escalating) it drains its mailbox to the other workers, then stops |
//! | a worker is killed | its mailbox dies with it; each message in it is reported as a dead letter (without the message) |
//! | resize | new workers start before `resize` returns; removed workers stop taking work, finish their mailbox and stop |
//! | stop | graceful: each worker (in reverse order, as any supervisor's children) finishes its mailbox, then keeps taking what waits in the pool (messages held back by the in-flight limit, or the shared queue), all within its shutdown limit; whatever is left then becomes a dead letter |
//! | shared queue | idle workers pull one job at a time, FIFO or shortest job first (ties in arrival order). A graceful stop lets the workers keep taking jobs from the queue, each within its shutdown limit; what is left then becomes a dead letter |
//! | broadcast | a copy to each worker that is up; never re-routed, so no worker gets two |
//!
//! Processed plus dead letters always equals sent, once the pool is idle
//! (`stats()` shows both).

pub mod admission;
pub(crate) mod builder;
mod core;
mod error;
mod pool_ref;
pub mod queue;
pub mod routing;
mod worker;

pub use builder::{Pool, PoolBuilder};
pub use error::{DeadLetter, DeadLetterReason, PoolCallError, PoolCastError, PoolError};
pub use pool_ref::{PoolRef, PoolStats, WorkerStats};
pub use routing::{QueueOrder, Routing};
