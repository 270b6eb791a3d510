//! [`Application`]: run a supervision tree as a service, OTP's
//! `application` in Rust terms.
//!
//! An application starts one root supervisor, runs until it is asked to
//! stop (Ctrl-C, or SIGTERM on unix, as a service manager sends) or until
//! the root ends on its own, then stops the tree in order within a deadline
//! and runs the shutdown hooks it was given (a cluster node's `shutdown`,
//! flushing a metrics exporter, ...). Every step is logged with `tracing`.
//! It returns the root's [`ExitReason`], so that `main` can exit non-zero
//! when the root gave up after exceeding its restart intensity.
//!
//! # Example
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::time::Duration;
//! use ractor_otp::prelude::*;
//! # use ractor::{Actor, ActorProcessingErr, ActorRef};
//! # #[derive(Clone)] struct Store;
//! # impl Actor for Store {
//! #     type Msg = (); type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
//! # }
//!
//! #[tokio::main]
//! async fn main() -> Result<ExitCode, SupervisorError> {
//!     let spec = SupervisorSpec::new(Strategy::OneForOne)
//!         .child(ChildSpec::new("store", Store, || ()));
//!     let app = Application::start("kv", spec)
//!         .await?
//!         .shutdown_timeout(Duration::from_secs(10))
//!         .on_shutdown("flush metrics", || async { /* ... */ });
//!     // Work with the tree through `app.root()`, then hand over:
//!     let reason = app.run().await; // until Ctrl-C or SIGTERM, or the root gives up
//!     Ok(reason.exit_code())
//! }
//! ```
//!
//! # Semantics
//!
//! | topic | behaviour |
//! |-------|-----------|
//! | start | [`Application::start`] spawns the root (named after the application) and returns once every child has started, or fails with the root's start error |
//! | run | [`run`](Application::run) waits for Ctrl-C or SIGTERM (unix), [`run_until`](Application::run_until) for any future you give (tests, an admin command); either returns early if the root ends on its own |
//! | stop | the root stops as [`SupervisorRef::stop`]: children in reverse start order, each under its own `Shutdown`; the root ends with `shutdown` |
//! | deadline | [`shutdown_timeout`](Application::shutdown_timeout) (default [`DEFAULT_SHUTDOWN_TIMEOUT`]) bounds the whole stop: a tree still running at the deadline is killed (the result is then [`ExitReason::Killed`]); each hook gets what is left of it, and a hook started with none left is skipped with an error log |
//! | hooks | run after the tree has ended (also when the root ended on its own), one at a time in the order they were added, so a node shuts down after the actors that use it |
//! | result | the root's [`ExitReason`]: `Shutdown` after a requested stop, `Failed` naming the child when it gave up ([`ExitReason::exit_code`] maps it to a failing process exit) |
//!
//! OTP's application controller also starts applications in dependency
//! order and restarts a `permanent` application's node; here one process
//! runs one application, and restarting the process is the service
//! manager's job (hence the exit code).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::exit::ExitReason;
use crate::supervisor::{
    Supervisor, SupervisorError, SupervisorExit, SupervisorRef, SupervisorSpec,
};

/// How long an application's stop may take by default (tree and hooks),
/// before the tree is killed: 30 s, the grace period Kubernetes gives a pod
/// between SIGTERM and SIGKILL.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A shutdown hook: called once, after the tree has ended.
type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A running supervision tree with its shutdown plan. See the
/// [module docs](self).
#[must_use = "an Application stops only when run (or stopped)"]
pub struct Application {
    name: String,
    root: SupervisorRef,
    exit: SupervisorExit,
    shutdown_timeout: Duration,
    /// In the order they run, each with the name it is logged under.
    hooks: Vec<(String, Hook)>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("root", &self.root)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field(
                "hooks",
                &self.hooks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Application {
    /// Spawns the root supervisor, registered under `name`, and starts its
    /// children in order.
    ///
    /// # Errors
    ///
    /// As [`Supervisor::spawn`]: an invalid spec, a child that failed to
    /// start (named), or `name` already registered.
    pub async fn start(
        name: impl Into<String>,
        spec: SupervisorSpec,
    ) -> Result<Self, SupervisorError> {
        let name = name.into();
        let (root, exit) = Supervisor::spawn(Some(name.clone()), spec).await?;
        tracing::info!(application = %name, "application started");
        Ok(Self {
            name,
            root,
            exit,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            hooks: Vec::new(),
        })
    }

    /// The root supervisor, to reach the children.
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// How the root ended, once it has (see [`SupervisorExit`]).
    pub fn exit(&self) -> &SupervisorExit {
        &self.exit
    }

    /// Bounds the whole stop, tree and hooks (default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Adds a hook that runs once the tree has ended, after the hooks added
    /// before it, within what is left of the shutdown deadline; for
    /// instance a cluster node's `shutdown`, so that peers see a graceful
    /// leave after the local actors have stopped.
    pub fn on_shutdown<F, Fut>(mut self, name: impl Into<String>, hook: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(hook()));
        self.hooks.push((name.into(), hook));
        self
    }

    /// Runs until Ctrl-C or SIGTERM (unix), or until the root ends on its
    /// own, then stops (see [`run_until`](Self::run_until)).
    pub async fn run(self) -> ExitReason {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` completes or the root ends on its own, then
    /// stops the tree in order within the deadline, runs the hooks, and
    /// returns the root's [`ExitReason`].
    pub async fn run_until<F>(self, shutdown: F) -> ExitReason
    where
        F: Future<Output = ()> + Send,
    {
        let exit = self.exit.clone();
        let ended = tokio::select! {
            reason = exit.wait() => Some(reason),
            () = shutdown => None,
        };
        let Some(reason) = ended else {
            return self.stop().await;
        };
        if reason.is_abnormal() {
            tracing::error!(application = %self.name, %reason, "root supervisor ended on its own");
        } else {
            tracing::info!(application = %self.name, %reason, "root supervisor ended on its own");
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        self.run_hooks(deadline).await;
        reason
    }

    /// Stops now: the tree in order within the deadline, then the hooks.
    /// Returns the root's [`ExitReason`] (`Shutdown` unless it had already
    /// ended otherwise, or `Killed` if it overran the deadline).
    pub async fn stop(self) -> ExitReason {
        let deadline = Instant::now() + self.shutdown_timeout;
        tracing::info!(application = %self.name, timeout_ms = self.shutdown_timeout.as_millis() as u64, "stopping the supervision tree");
        let reason = match self.root.stop(Some(self.shutdown_timeout)).await {
            Ok(()) => self.exit.wait().await,
            Err(err) => {
                tracing::error!(application = %self.name, error = %err, "the supervision tree overran the shutdown deadline");
                // The tree was killed and has ended; its exit says so.
                self.exit.wait().await
            }
        };
        tracing::info!(application = %self.name, %reason, "supervision tree stopped");
        self.run_hooks(deadline).await;
        reason
    }

    /// Runs the hooks one at a time, each within what is left until
    /// `deadline`.
    async fn run_hooks(self, deadline: Instant) {
        for (name, hook) in self.hooks {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::error!(application = %self.name, hook = %name, "no time left before the shutdown deadline; hook skipped");
                continue;
            }
            tracing::info!(application = %self.name, hook = %name, "running shutdown hook");
            if tokio::time::timeout(left, hook()).await.is_err() {
                tracing::error!(application = %self.name, hook = %name, timeout_ms = left.as_millis() as u64, "shutdown hook overran the deadline; abandoned");
            }
        }
        tracing::info!(application = %self.name, "application stopped");
    }
}

/// Completes at the first Ctrl-C (SIGINT) or, on unix, SIGTERM. A signal
/// that cannot be listened for is logged and never completes, so the other
/// one still works.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!(signal = "SIGINT", "shutdown requested"),
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
                tracing::info!(signal = "SIGTERM", "shutdown requested");
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
