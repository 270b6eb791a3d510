//! [`SupervisorExit`]: how a root supervisor ended, as something to await.
//!
//! A supervisor spawned with [`Supervisor::spawn`](crate::Supervisor::spawn)
//! has no parent to receive its exit, and ractor's `JoinHandle<()>` says
//! nothing about why it ended. So the root is linked to a small watcher
//! actor, its stand-in parent: the watcher turns the supervision event
//! ractor sends a parent into an [`ExitReason`], publishes it, and stops.
//! A root that gave up after exceeding its restart intensity therefore
//! reports [`ExitReason::Failed`] naming the cause, exactly what a parent
//! supervisor would have seen.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use ractor::{Actor, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::watch;

use crate::exit::ExitReason;

/// The stand-in parent of a root supervisor.
pub(crate) struct RootWatch;

impl Actor for RootWatch {
    type Msg = ();
    /// Where the exit is published.
    type State = watch::Sender<Option<ExitReason>>;
    type Arguments = watch::Sender<Option<ExitReason>>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        sender: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(sender)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        sender: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The watcher has one child, the root: its first exit is the one.
        if let Some(reason) = ExitReason::from_event(&event) {
            sender.send_replace(Some(reason));
            myself.stop(None);
        }
        Ok(())
    }
}

/// Spawns a watcher and returns its actor (to link the root to) and the
/// handle that will report the root's exit.
pub(crate) async fn spawn_watch() -> Result<(ActorRef<()>, SupervisorExit), SpawnErr> {
    let (sender, receiver) = watch::channel(None);
    let (watcher, _join) = RootWatch::spawn(None, RootWatch, sender).await?;
    Ok((watcher, SupervisorExit { receiver }))
}

/// How a root supervisor ended, once it has: returned by
/// [`Supervisor::spawn`](crate::Supervisor::spawn).
///
/// Await it (or call [`wait`](Self::wait)) to learn why the supervisor
/// stopped: [`ExitReason::Shutdown`] after
/// [`SupervisorRef::stop`](crate::SupervisorRef::stop) or an auto-shutdown,
/// [`ExitReason::Failed`] when it gave up after exceeding its restart
/// intensity (the message names the child and its exit), and
/// [`ExitReason::Killed`] if it was killed. It resolves once the supervisor
/// and all its children have ended. Clones report the same exit.
///
/// # Examples
///
/// ```
/// # use ractor_otp::prelude::*;
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (sup, exit) = Supervisor::spawn(None, SupervisorSpec::new(Strategy::OneForOne)).await?;
/// assert_eq!(exit.exit_reason(), None, "still running");
/// sup.stop(None).await?;
/// assert_eq!(exit.await, ExitReason::Shutdown(None));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a SupervisorExit reports how the supervisor ended only if awaited"]
pub struct SupervisorExit {
    receiver: watch::Receiver<Option<ExitReason>>,
}

impl SupervisorExit {
    /// Waits until the supervisor has ended and returns how.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; wait again.
    pub async fn wait(&self) -> ExitReason {
        let mut receiver = self.receiver.clone();
        let reason = match receiver.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            // The watcher was dropped without a report: its runtime shut
            // down, which cancels every actor task (ractor's
            // `actor_task_cancelled`, a kill).
            Err(_) => None,
        };
        reason.unwrap_or(ExitReason::Killed)
    }

    /// How the supervisor ended, or `None` while it runs.
    #[must_use]
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.receiver.borrow().clone()
    }
}

impl IntoFuture for SupervisorExit {
    type Output = ExitReason;
    type IntoFuture = Pin<Box<dyn Future<Output = ExitReason> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.wait().await })
    }
}
