//! [`ChildSpec::checkpointed`]: a supervised child that restarts with its
//! state.

use std::sync::Arc;

use ractor::Actor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{CheckpointPolicy, CheckpointStore, Checkpointed};
use crate::supervisor::ChildSpec;

impl ChildSpec {
    /// A worker child whose state is checkpointed under the child's id:
    /// every incarnation is `actor` wrapped in [`Checkpointed`], so a
    /// restart by the supervisor begins from the latest checkpoint in
    /// `store` (saved by `policy`), and only the very first start calls the
    /// actor's `pre_start` with `args()`.
    ///
    /// For another checkpoint id (a child id is unique only within its
    /// supervisor, a checkpoint id within its store) or for
    /// [`ack_after_save`](Checkpointed::ack_after_save) and
    /// [`fresh_when_lost`](Checkpointed::fresh_when_lost), build the wrapper
    /// yourself: `ChildSpec::new(id, Checkpointed::new(actor, store,
    /// checkpoint_id, policy), args)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ractor::{Actor, ActorProcessingErr, ActorRef};
    /// use ractor_otp::checkpoint::{CheckpointPolicy, MemoryStore};
    /// use ractor_otp::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
    ///
    /// #[derive(Clone)]
    /// struct Counter;
    /// impl Actor for Counter {
    ///     type Msg = u64;
    ///     type State = u64;
    ///     type Arguments = ();
    ///     async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<u64, ActorProcessingErr> {
    ///         Ok(0)
    ///     }
    ///     async fn handle(&self, _: ActorRef<u64>, n: u64, total: &mut u64) -> Result<(), ActorProcessingErr> {
    ///         *total += n;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Arc::new(MemoryStore::new());
    /// let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::checkpointed(
    ///     "counter",
    ///     Counter,
    ///     || (),
    ///     store.clone(),
    ///     CheckpointPolicy::EveryMessage,
    /// ));
    /// let (sup, _join) = Supervisor::spawn(None, spec).await?;
    /// # sup.stop(None).await?;
    /// # Ok(()) }
    /// ```
    pub fn checkpointed<A, F>(
        id: impl Into<String>,
        actor: A,
        args: F,
        store: Arc<dyn CheckpointStore>,
        policy: CheckpointPolicy,
    ) -> Self
    where
        A: Actor + Clone,
        A::State: Serialize + DeserializeOwned,
        F: Fn() -> A::Arguments + Send + Sync + 'static,
    {
        let id = id.into();
        let wrapped = Checkpointed::new(actor, store, id.clone(), policy);
        ChildSpec::new(id, wrapped, args)
    }
}
