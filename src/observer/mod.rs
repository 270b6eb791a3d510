//! The observer: a live web page and JSON API over supervision trees,
//! pools and the cluster, as Erlang's `observer` (feature `observer`).
//!
//! One self-contained page (HTML, CSS and JS embedded in the crate, no
//! build step) shows:
//!
//! - every supervision tree given to the builder, live: each child's id,
//!   status, restart count, last exit reason and backoff state; a click on
//!   a child shows its recent events;
//! - pools: per worker, messages processed and in flight, as bars;
//! - the cluster: members with their status, phi and heartbeat round trip
//!   over the last five minutes, and the trees of the other nodes whose
//!   observers watch the same cluster (each node answers for itself,
//!   through an actor the observer exports on its node as
//!   `ractor_otp.observer`);
//! - the event stream (exits, restarts, escalations, dead letters, peers
//!   up and down), pushed live and filterable.
//!
//! # Example
//!
//! ```no_run
//! use ractor_otp::observer::{Actions, Observer};
//! # use ractor_otp::prelude::*;
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (sup, _exit) = Supervisor::spawn(Some("app".into()), SupervisorSpec::new(Strategy::OneForOne)).await?;
//! let observer = Observer::builder()
//!     .supervisor(&sup)
//!     .actions(Actions::Loopback)
//!     .serve("127.0.0.1:4000".parse()?)
//!     .await?;
//! println!("observe at {}", observer.url());
//! # Ok(()) }
//! ```
//!
//! # JSON API
//!
//! | request | answer |
//! |---------|--------|
//! | `GET /api` | what is observed, whether actions are enabled |
//! | `GET /api/trees` | every tree: supervisors with their children, nested supervisors (and pools) expanded |
//! | `GET /api/trees/{path}` | the supervisor or child at `path` (`app/storage/db`) |
//! | `GET /api/pools`, `GET /api/pools/{name}` | pool statistics per worker |
//! | `GET /api/cluster` | this node, its peers with phi and RTT, and their recent history |
//! | `GET /api/nodes/{peer}/trees` | the trees `peer`'s own observer shows, asked through the cluster (each node answers for itself) |
//! | `GET /api/events?kind=restart,exit&path=app/storage&limit=100` | recent events, newest last |
//! | `GET /api/events/stream?kind=..&path=..` | the same, live, as server-sent events (`event: observed`, and `event: lagged` when some were dropped) |
//! | `POST /api/actions/{kill,terminate,restart}/{path}` | acts on a child, when [actions](Actions) allow it |
//!
//! Anything else answers `404` with a JSON body `{"error": ..}`; a path
//! that names nothing answers `404` too.
//!
//! # A slow browser never slows the node
//!
//! Supervisors and pools publish events into a bounded broadcast channel
//! and never wait for it; with no observer running they do not even build
//! the event. Each browser reads its own bounded subscription: one that
//! falls behind loses the oldest events and is sent one `lagged` notice
//! with the count (also counted in
//! [`OBSERVER_LAGGED_EVENTS`](crate::metrics::OBSERVER_LAGGED_EVENTS)).
//! Tree, pool and peer views are read on request, each supervisor answering
//! within [`INSPECT_TIMEOUT`].
//!
//! # Actions
//!
//! Read-only by default. [`Actions::Loopback`] lets clients on this
//! machine kill (as observer's kill: an abnormal exit, so the supervisor
//! restarts it), terminate or restart a child; [`Actions::Token`] lets any
//! client that sends `Authorization: Bearer <token>`.

mod api;
mod collect;
pub(crate) mod hub;
#[cfg(feature = "cluster")]
mod remote;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::pool::{PoolRef, PoolStats};
use crate::supervisor::actor::SupervisorMsg;
use crate::supervisor::{DynamicSupervisorRef, SupervisorRef};

pub use hub::{Event, EventKind};

/// How long a supervisor has to answer the observer before it is shown as
/// not answering.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`ObserverHandle::shutdown`] lets requests in progress finish
/// (a browser that stopped reading cannot hold it longer).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Recent events an observer keeps for its page (oldest dropped first).
pub const RECENT_EVENTS: usize = 2000;

/// How much peer history an observer keeps: one sample a second for five
/// minutes.
pub const PEER_HISTORY: usize = 300;

/// Who may act on children through the observer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actions {
    /// Read-only: every action answers `403`.
    #[default]
    Off,
    /// Clients connecting from a loopback address.
    Loopback,
    /// Clients sending `Authorization: Bearer <token>`, from anywhere.
    Token(String),
}

/// Why an observer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserverError {
    /// The address could not be bound.
    #[error("the observer could not listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        reason: String,
    },
    /// An empty token would let anyone act.
    #[error("Actions::Token needs a non-empty token")]
    EmptyToken,
}

/// A pool as the observer sees it, whatever its message type.
trait PoolView: Send + Sync {
    fn stats(&self) -> PoolStats;
    fn path(&self) -> String;
}

impl<M: ractor::Message> PoolView for PoolRef<M> {
    fn stats(&self) -> PoolStats {
        PoolRef::stats(self)
    }
    fn path(&self) -> String {
        self.label()
    }
}

/// Builds an observer: what it shows, who may act, where it listens.
#[must_use]
#[derive(Default)]
pub struct ObserverBuilder {
    roots: Vec<ActorRef<SupervisorMsg>>,
    pools: Vec<(String, Arc<dyn PoolView>)>,
    #[cfg(feature = "cluster")]
    node: Option<crate::cluster::Node>,
    actions: Actions,
}

impl std::fmt::Debug for ObserverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverBuilder")
            .field("roots", &self.roots.len())
            .field("pools", &self.pools.len())
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

/// The observer. See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Observer;

impl Observer {
    /// An observer that shows nothing yet.
    pub fn builder() -> ObserverBuilder {
        ObserverBuilder::default()
    }
}

impl ObserverBuilder {
    /// Shows the tree below `sup` (nested supervisors and pools included).
    pub fn supervisor(mut self, sup: &SupervisorRef) -> Self {
        self.roots.push(sup.actor.clone());
        self
    }

    /// Shows the children of a dynamic supervisor.
    pub fn dynamic_supervisor(mut self, sup: &DynamicSupervisorRef) -> Self {
        if let Ok(actor) = sup.actor() {
            self.roots.push(actor);
        }
        self
    }

    /// Shows pool `name`'s workers.
    pub fn pool<M: ractor::Message>(mut self, name: impl Into<String>, pool: &PoolRef<M>) -> Self {
        self.pools.push((name.into(), Arc::new(pool.clone())));
        self
    }

    /// Shows this node's peers (phi, RTT, status) and its events.
    #[cfg(feature = "cluster")]
    pub fn node(mut self, node: &crate::cluster::Node) -> Self {
        self.node = Some(node.clone());
        self
    }

    /// Who may kill, terminate or restart children. Default: nobody.
    pub fn actions(mut self, actions: Actions) -> Self {
        self.actions = actions;
        self
    }

    /// Listens on `addr` (port 0 picks a free port) and serves the page and
    /// the API until [`ObserverHandle::shutdown`] or the handle is dropped.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ObserverError::Bind`] if `addr` cannot be bound;
    /// [`ObserverError::EmptyToken`] for `Actions::Token("")`.
    pub async fn serve(self, addr: SocketAddr) -> Result<ObserverHandle, ObserverError> {
        if matches!(&self.actions, Actions::Token(t) if t.is_empty()) {
            return Err(ObserverError::EmptyToken);
        }
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| ObserverError::Bind {
                    addr,
                    reason: e.to_string(),
                })?;
        let local_addr = listener.local_addr().map_err(|e| ObserverError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(api::Shared::new(
            self.roots,
            self.pools,
            #[cfg(feature = "cluster")]
            self.node,
            self.actions,
            stop_rx.clone(),
        ));
        #[cfg(feature = "cluster")]
        let answerer = match &shared.node {
            Some(node) => remote::export(node, &shared).await,
            None => None,
        };
        // Subscribed before serving, so no event after `serve` is missed.
        let subscription = hub::Subscription::new();
        tokio::spawn(collect::run(shared.clone(), subscription, stop_rx.clone()));
        let app = api::router(shared);
        let mut stop = stop_rx;
        let server = tokio::spawn(async move {
            let serving = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            if let Err(e) = serving.await {
                tracing::warn!(error = %e, "the observer's server ended");
            }
        });
        tracing::info!(url = %format!("http://{local_addr}/"), "observer serving");
        Ok(ObserverHandle {
            local_addr,
            stop: stop_tx,
            server: Some(server),
            #[cfg(feature = "cluster")]
            answerer,
        })
    }
}

/// A running observer. Dropping it stops serving.
#[must_use = "the observer stops when its handle is dropped"]
#[derive(Debug)]
pub struct ObserverHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Answers other nodes' observers (see `remote`); stopped with us.
    #[cfg(feature = "cluster")]
    answerer: Option<ActorRef<remote::ObserverQuery>>,
}

impl ObserverHandle {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The page's address, `http://127.0.0.1:4000/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.local_addr)
    }

    /// Stops serving: open event streams end, and this returns once the
    /// server has finished the requests in progress, or after
    /// [`SHUTDOWN_GRACE`], when the connections still open are dropped.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                server.abort();
                let _ = server.await;
            }
        }
    }
}

impl Drop for ObserverHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        #[cfg(feature = "cluster")]
        if let Some(answerer) = self.answerer.take() {
            answerer.stop(None);
        }
    }
}
