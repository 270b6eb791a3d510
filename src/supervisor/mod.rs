//! Supervision trees: supervisors restart failed actors, OTP-style.
//!
//! A supervisor starts its children in order, watches them, and when one
//! ends decides — from the child's [`Restart`] type, the supervisor's
//! [`Strategy`] and its restart intensity — whether to restart it, restart
//! some of its siblings with it, or give up and fail itself so that its own
//! parent decides (escalation). Stopping a supervisor stops its children in
//! reverse start order, each under its [`Shutdown`].
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::prelude::*;
//!
//! #[derive(Clone)]
//! struct Counter;
//!
//! impl Actor for Counter {
//!     type Msg = u64;
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: ActorRef<u64>, n: u64, total: &mut u64) -> Result<(), ActorProcessingErr> {
//!         if n == 0 {
//!             return Err("zero is not a count".into()); // the supervisor restarts us
//!         }
//!         *total += n;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = SupervisorSpec::new(Strategy::OneForOne)
//!     .intensity(3, Duration::from_secs(5))
//!     .child(ChildSpec::new("counter", Counter, || ()));
//! let (sup, exit) = Supervisor::spawn(None, spec).await?;
//!
//! let counter = sup.child::<u64>("counter")?;
//! let first = counter.current().expect("running").get_id();
//! counter.cast(0).expect("delivered"); // crashes the counter
//! for _ in 0..100 {
//!     if counter.current().is_some_and(|c| c.get_id() != first) { break; }
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! assert_ne!(counter.current().map(|c| c.get_id()), Some(first), "a new incarnation runs");
//! sup.stop(None).await?; // children stop in reverse start order
//! assert_eq!(exit.await, ExitReason::Shutdown(None));
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! As Erlang/OTP's `supervisor`, with these choices:
//!
//! | topic | behaviour |
//! |-------|-----------|
//! | start | children start in spec order, each fully (`pre_start` done) before the next; if one fails, the started ones stop in reverse order and spawning fails with [`SupervisorError::FailedToStart`] naming it |
//! | batch start | `start_children(specs)` (on [`SupervisorRef`] and [`DynamicSupervisorRef`]) adds and starts many children in one round trip, in order, all or none: every spec is checked first, and a failed start stops the ones that call started (reverse order). OTP has no batch call; it is one `start_child` per child |
//! | restart types | see [`strategy::should_restart`]: permanent always, transient after an abnormal exit (a kill is abnormal), temporary never (its spec is dropped) |
//! | group restarts | `OneForAll` / `RestForOne` stop the affected running siblings in reverse order under their own `Shutdown`, drop temporary ones, then start the group in forward order. Their induced exits are not counted |
//! | intensity | every restart attempt counts, failed starts included; a group restart counts once. One more than allowed and the supervisor stops all children (reverse order) and fails with [`SupervisorError::IntensityExceeded`], an abnormal exit for its parent |
//! | non-blocking | stopping a group and waiting for a backoff happen outside the supervisor's mailbox loop; it answers calls meanwhile and shows those children as `Restarting`. Starting one incarnation (`pre_start`) runs inline, as in OTP: keep `pre_start` short and do slow work in `post_start` |
//! | failed restart | counted, then retried through the mailbox (after the child's backoff if it has one), as OTP's `try_again_restart`. `RestForOne` (and `OneForOne`) retry from the child that failed; the rest of the group starts after it. `OneForAll`: the children of the group already restarted stop again (reverse order) and the whole group starts over, as OTP (`one_for_all_other_child_fails_restart`) |
//! | terminate during a restart | `terminate_child` on a child that is restarting (or waiting to be started by a group restart) answers ok and stops the restart there: the children after it in that restart stay stopped, so none runs without the one it depends on (OTP's `hanging_restart_loop_rest_for_one`); `restart_child` brings each back |
//! | dynamic children | a dynamic child that is restarting is still found by its last incarnation, so [`DynamicSupervisorRef::terminate_child`] removes it (OTP's `hanging_restart_loop_simple`, Elixir's "terminates restarting child") |
//! | handles | [`SupervisorRef::child`] hands out a [`ChildRef`] only for a child the supervisor has, and says why not: [`ChildLookupError::NotFound`] or [`ChildLookupError::WrongMessageType`] naming both types. Handles below a nested supervisor survive its restarts for the children of its spec; a child added to it at run time is gone after such a restart, its handles stay empty, and a later child under the same id gets a fresh handle |
//! | backoff | optional per child, see [`Backoff`]; a group restart waits for the backoff of the child that failed |
//! | auto-shutdown | a significant child that ends for good (not restarted) stops the supervisor with reason `shutdown` under `AnySignificant`, or once all significant children have under `AllSignificant`; `terminate_child` never triggers it |
//! | stop | [`SupervisorRef::stop`] stops the children in reverse start order and ends the supervisor with `shutdown`; with a timeout, a tree still running then is killed and the call says so ([`SupervisorError::StopTimeout`]) |
//! | root exit | [`Supervisor::spawn`] returns a [`SupervisorExit`]; awaiting it gives the root's [`ExitReason`](crate::ExitReason): `Shutdown` after a stop, `Failed` naming the child when it gave up. See [`Application`](crate::Application) to run a root as a service |
//! | names | a root is named by its registered name (else `supervisor-<actor id>`); a nested supervisor or pool by its path in the tree, `root/storage/shard`, in its tracing span and fields and in `render_tree` |
//! | kill | killing a supervisor (ractor's `kill()`) kills its whole subtree at once without `post_stop`; use `stop` for an ordered shutdown |
//! | panics | a panic in a child is caught by ractor and is a failure like an `Err`; building with `panic = "abort"` kills the process instead, so do not |
//!
//! # Where we differ from OTP
//!
//! | OTP | here | why |
//! |-----|------|-----|
//! | a supervisor that exceeds its intensity exits with `shutdown` | it fails with [`SupervisorError::IntensityExceeded`] | so that a *transient* parent child restarts too, and the reason names the child and its exit |
//! | a group restart starts every sibling of the group again, including one stopped with `terminate_child` | a sibling that was *stopped* (terminated, or a transient that ended normally) stays stopped | an operator's `terminate_child` is not undone by an unrelated crash |
//! | `simple_one_for_one` children share one spec and are terminated by pid | [`DynamicSupervisor`] children carry their own spec (Elixir's `DynamicSupervisor`) and are terminated by the `ActorCell` of any incarnation the caller holds | ractor has no pids that survive a restart; the caller's cell is what it knows |
//! | `start_child` may return `ignore` | no child can decline to start | ractor's `pre_start` has no such outcome |
//! | a child added at run time to a nested supervisor is lost at its restart, and nothing refers to it | the same, and its [`ChildRef`]s go empty | handles outlive incarnations here, so they must not reach a different child later |
//!
//! # Choosing a strategy
//!
//! - `OneForOne`: children are independent (a cache, a metrics reporter).
//! - `RestForOne`: later children depend on earlier ones (a connection, then
//!   the writers that use it).
//! - `OneForAll`: the children only make sense together.
//! - [`DynamicSupervisor`]: many similar children started at run time
//!   (sessions, connections).

pub(crate) mod actor;
pub mod backoff;
mod child_ref;
mod children;
mod dynamic;
mod error;
pub(crate) mod handle;
pub mod intensity;
mod root;
// Read only by the observer.
#[cfg_attr(not(feature = "observer"), allow(dead_code))]
pub(crate) mod snapshot;
mod spec;
pub mod strategy;

pub use backoff::Backoff;
pub use child_ref::{CallError, CastError, ChildRef};
pub use dynamic::{
    DynamicSpec, DynamicSupervisor, DynamicSupervisorRef, DEFAULT_DYNAMIC_INTENSITY,
    DEFAULT_DYNAMIC_PERIOD,
};
pub use error::{ChildLookupError, SupervisorError};
pub use handle::{ChildCounts, ChildInfo, Supervisor, SupervisorRef};
pub use root::SupervisorExit;
pub use spec::{
    AutoShutdown, ChildKind, ChildSpec, ChildStatus, GroupStop, Restart, Shutdown, SupervisorSpec,
    DEFAULT_INTENSITY, DEFAULT_PERIOD, DEFAULT_WORKER_SHUTDOWN,
};
pub use strategy::Strategy;

pub(crate) use spec::validate_period;
