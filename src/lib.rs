//! # ractor-otp
//!
//! Erlang/OTP-grade fault tolerance for [`ractor`] actors: supervision trees
//! that restart failed actors under OTP's strategies, restart types and
//! restart intensity, with ordered graceful shutdown, backoff, dynamic
//! supervisors and handles ([`ChildRef`]) that survive restarts.
//!
//! Children are plain ractor actors: no special trait to implement.
//!
//! # Quick start
//!
//! With `ractor-otp`, `ractor = "0.16"`, `tokio` (features `rt-multi-thread`
//! and `macros`), `serde` (feature `derive`) and `tracing-subscriber = "0.3"`
//! in your dependencies (the README's **Install** lists the exact lines):
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::prelude::*;
//!
//! /// A worker that fails on demand.
//! #[derive(Clone)]
//! struct Worker;
//!
//! impl Actor for Worker {
//!     type Msg = &'static str;
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//!     async fn handle(&self, _: ActorRef<Self::Msg>, msg: Self::Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
//!         match msg {
//!             "crash" => Err("asked to crash".into()),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     tracing_subscriber::fmt::init(); // prints restarts and failures as they happen
//!     let spec = SupervisorSpec::new(Strategy::OneForAll)
//!         .intensity(5, Duration::from_secs(10))
//!         .child(ChildSpec::new("a", Worker, || ()))
//!         .child(ChildSpec::new("b", Worker, || ()).restart(Restart::Transient));
//!     let (sup, _join) = Supervisor::spawn(Some("quick-start".into()), spec).await?;
//!
//!     let a = sup.child::<&'static str>("a").expect("child a");
//!     a.cast("crash").expect("a is running");
//!
//!     // Both children come back (one-for-all); the supervisor keeps answering.
//!     let counts = sup.count_children().await?;
//!     assert_eq!(counts.specs, 2);
//!
//!     println!("{}", sup.render_tree().await?);
//!     sup.cell().stop_and_wait(None, None).await?; // children stop in reverse order
//!     Ok(())
//! }
//! ```
//!
//! # Modules
//!
//! - [`supervisor`]: supervisors, child specs, strategies, intensity,
//!   backoff, dynamic supervisors, `ChildRef`.
//! - [`application`]: [`Application`], a root supervisor run as a service:
//!   until Ctrl-C or SIGTERM, then an ordered stop within a deadline.
//! - [`pool`]: [`Pool`], load-balancing among supervised workers.
//! - [`exit`]: [`ExitReason`], how a child ended.
//! - `cluster` (feature `cluster`): [`Node`], remote actors
//!   ([`RemoteRef`], [`RemoteReply`]), heartbeats and node events.
//! - [`checkpoint`]: [`Checkpointed`](checkpoint::Checkpointed) actors whose
//!   state is saved by policy into a [`CheckpointStore`](checkpoint::CheckpointStore)
//!   and restored on every start; `ChildSpec::checkpointed`.
//! - `cluster::EntitySpec`, `Node::entities`, `Node::singleton`: sharded
//!   entities and singletons that move with their state (feature `cluster`).
//! - [`metrics`]: the names of every metric, and the Prometheus helper.
//! - `observer` (feature `observer`): the observer's page and API.
//!
//! # Features
//!
//! | feature  | default | what it adds |
//! |----------|---------|--------------|
//! | `cluster` | yes    | [`cluster`]: nodes over TCP, remote actors, heartbeats, phi-accrual failure detection |
//! | `macros` | yes     | `#[derive(RemoteMessage)]` from `ractor-otp-macros` |
//! | `metrics` | yes    | [`metrics`]: every supervisor, pool and peer reports through the `metrics` facade (a no-op without a recorder) |
//! | `prometheus` | no  | `metrics::install_prometheus(addr)`: a Prometheus exporter in one line |
//! | `observer` | no    | `observer`: a live web page and JSON API over trees, pools and the cluster |
//! | `tls`    | no      | TLS 1.3 with mutual certificates for the cluster transport |
//! | `checkpoint` | yes (with `cluster`) | [`checkpoint`]: checkpointed actors and the in-memory store (serde + bincode) |
//! | `disk`   | no      | `checkpoint::DiskStore`: checkpoints in an embedded `redb` file |
//! | `postgres` | no    | `checkpoint::PostgresStore`: checkpoints in PostgreSQL (`tokio-postgres`) |

#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// Takes a std lock, recovering it if a holder panicked (visible to every
/// module below by textual scope): every structure
/// behind our locks stays valid across a panic (each update is a single
/// store, push or pop), so poisoning carries no information here.
macro_rules! lock {
    ($e:expr) => {
        $e.unwrap_or_else(|poisoned| poisoned.into_inner())
    };
}

// The derive macros name `::ractor_otp::...`; this lets them work inside
// the crate too (doc tests and unit tests).
extern crate self as ractor_otp;

pub mod application;
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod exit;
pub mod metrics;
#[cfg(feature = "observer")]
pub mod observer;
pub mod pool;
pub mod supervisor;

pub use application::Application;
pub use exit::ExitReason;
pub use pool::{
    DeadLetter, DeadLetterReason, Pool, PoolBuilder, PoolCallError, PoolCastError, PoolError,
    PoolRef, PoolStats, QueueOrder, Routing, WorkerStats,
};
pub use supervisor::{
    AutoShutdown, Backoff, CallError, CastError, ChildCounts, ChildInfo, ChildKind,
    ChildLookupError, ChildRef, ChildSpec, ChildStatus, DynamicSpec, DynamicSupervisor,
    DynamicSupervisorRef, GroupStop, Restart, Shutdown, Strategy, Supervisor, SupervisorError,
    SupervisorExit, SupervisorRef, SupervisorSpec,
};

#[cfg(feature = "cluster")]
pub use cluster::{
    ActorDownReason, ClusterError, DownReason, Node, NodeConfig, NodeEvent, NodeEvents, PeerInfo,
    PeerStatus, Refusal, RemoteDown, RemoteMessage, RemoteMonitor, RemoteRef, RemoteReply, Replied,
    UndeliveredReason,
};
/// `#[derive(RemoteMessage)]`: see [`cluster::RemoteMessage`].
#[cfg(all(feature = "macros", feature = "cluster"))]
pub use ractor_otp_macros::RemoteMessage;

/// Everything an application usually needs, for `use ractor_otp::prelude::*`.
pub mod prelude {
    pub use crate::application::Application;
    #[cfg(feature = "checkpoint")]
    pub use crate::checkpoint::{CheckpointPolicy, CheckpointStore, Checkpointed};
    #[cfg(feature = "cluster")]
    pub use crate::cluster::{
        ActorDownReason, ClusterError, DownReason, GroupRef, GroupRouting, Member, MemberStatus,
        NamedRef, Node, NodeConfig, NodeEvent, NodeEvents, PeerInfo, PeerStatus, Refusal,
        RemoteCastError, RemoteDeadLetter, RemoteDown, RemoteMessage, RemoteMonitor, RemoteRef,
        RemoteReply, Replied, UndeliveredReason,
    };
    #[cfg(feature = "cluster")]
    pub use crate::cluster::{EntityRef, EntitySpec, SingletonSpec};
    pub use crate::exit::ExitReason;
    pub use crate::pool::{
        DeadLetter, DeadLetterReason, Pool, PoolBuilder, PoolCallError, PoolCastError, PoolError,
        PoolRef, PoolStats, QueueOrder, Routing, WorkerStats,
    };
    pub use crate::supervisor::{
        AutoShutdown, Backoff, CallError, CastError, ChildCounts, ChildInfo, ChildKind,
        ChildLookupError, ChildRef, ChildSpec, ChildStatus, DynamicSpec, DynamicSupervisor,
        DynamicSupervisorRef, GroupStop, Restart, Shutdown, Strategy, Supervisor, SupervisorError,
        SupervisorExit, SupervisorRef, SupervisorSpec,
    };
    #[cfg(all(feature = "macros", feature = "cluster"))]
    pub use ractor_otp_macros::RemoteMessage;
}

/// The README's code blocks run as doc tests, so its quick start always
/// compiles and works.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
