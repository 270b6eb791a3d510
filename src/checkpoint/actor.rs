//! [`Checkpointed`]: the wrapper that saves and restores an actor's state.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::{
    decode_state, encode_state, hold, Checkpoint, CheckpointError, CheckpointPolicy,
    CheckpointStore,
};

/// A ractor actor whose state is saved into a [`CheckpointStore`] by a
/// [`CheckpointPolicy`] and restored on every start. See the
/// [module docs](super) for the exact semantics.
pub struct Checkpointed<A> {
    inner: A,
    store: Arc<dyn CheckpointStore>,
    id: String,
    policy: CheckpointPolicy,
    ack_after_save: bool,
    fresh_when_lost: bool,
}

impl<A: Clone> Clone for Checkpointed<A> {
    fn clone(&self) -> Self {
        Checkpointed {
            inner: self.inner.clone(),
            store: self.store.clone(),
            id: self.id.clone(),
            policy: self.policy,
            ack_after_save: self.ack_after_save,
            fresh_when_lost: self.fresh_when_lost,
        }
    }
}

impl<A> Checkpointed<A> {
    /// Wraps `inner`, saving its state under `id` in `store` by `policy`.
    /// Replies are held for the save by default
    /// ([`ack_after_save`](Self::ack_after_save)).
    pub fn new(
        inner: A,
        store: Arc<dyn CheckpointStore>,
        id: impl Into<String>,
        policy: CheckpointPolicy,
    ) -> Self {
        Checkpointed {
            inner,
            store,
            id: id.into(),
            policy,
            ack_after_save: true,
            fresh_when_lost: false,
        }
    }

    /// Whether a [`RemoteReply`](crate::cluster::RemoteReply) answered while
    /// handling a message waits until that message's checkpoint is saved
    /// (default `true`; a message that triggers no save releases its replies
    /// at once). With a replicated store this means an acknowledged write is
    /// held by every replica; a failed save refuses the held replies.
    pub fn ack_after_save(mut self, hold: bool) -> Self {
        self.ack_after_save = hold;
        self
    }

    /// Whether a start whose checkpoint is [`CheckpointError::Lost`] may
    /// begin from scratch (`pre_start`) instead of failing (default
    /// `false`: a lost state is never silently replaced by a fresh one).
    pub fn fresh_when_lost(mut self, allow: bool) -> Self {
        self.fresh_when_lost = allow;
        self
    }

    /// The checkpoint id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The wrapped actor.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

/// The state of a [`Checkpointed`] actor: the actor's own state and where
/// it stands against the store.
#[derive(Debug)]
pub struct CheckpointedState<S> {
    state: S,
    seq: u64,
    unsaved: u32,
    last_save: Instant,
    failed: bool,
}

impl<S> CheckpointedState<S> {
    /// The actor's own state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The sequence number of the last checkpoint saved or restored (0: none).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl<A> Checkpointed<A>
where
    A: Actor,
    A::State: Serialize,
{
    async fn save(&self, st: &mut CheckpointedState<A::State>) -> Result<(), CheckpointError> {
        let bytes = encode_state(&self.id, &st.state)?;
        let seq = st.seq + 1;
        self.store.save(&self.id, Checkpoint { seq, bytes }).await?;
        st.seq = seq;
        st.unsaved = 0;
        st.last_save = Instant::now();
        Ok(())
    }

    fn due(&self, st: &CheckpointedState<A::State>, requested: bool) -> bool {
        requested
            || match self.policy {
                CheckpointPolicy::EveryMessage => true,
                CheckpointPolicy::EveryN(n) => st.unsaved >= n.max(1),
                CheckpointPolicy::Interval(every) => st.last_save.elapsed() >= every,
                CheckpointPolicy::OnRequest => false,
            }
    }
}

impl<A> Actor for Checkpointed<A>
where
    A: Actor,
    A::State: Serialize + DeserializeOwned,
{
    type Msg = A::Msg;
    type State = CheckpointedState<A::State>;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let restored = match self.store.load(&self.id).await {
            Ok(found) => found,
            Err(CheckpointError::Lost { last_seq, .. }) if self.fresh_when_lost => {
                tracing::warn!(
                    checkpoint = %self.id,
                    last_seq,
                    "checkpoint lost; starting from scratch as fresh_when_lost allows"
                );
                None
            }
            Err(e) => return Err(e.into()),
        };
        let (state, seq) = match restored {
            Some(cp) => {
                let state = decode_state(&self.id, &cp.bytes)?;
                tracing::debug!(checkpoint = %self.id, seq = cp.seq, "state restored from checkpoint");
                (state, cp.seq)
            }
            None => (self.inner.pre_start(myself, args).await?, 0),
        };
        Ok(CheckpointedState {
            state,
            seq,
            unsaved: 0,
            last_save: Instant::now(),
            failed: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner.post_start(myself, &mut st.state).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (result, held) = hold::scoped(
            self.ack_after_save,
            self.inner.handle(myself, msg, &mut st.state),
        )
        .await;
        if let Err(e) = result {
            st.failed = true;
            held.release(Err(&CheckpointError::Storage {
                store: self.store.name().to_owned(),
                reason: format!("the handler failed before its state was saved: {e}"),
            }));
            return Err(e);
        }
        st.unsaved = st.unsaved.saturating_add(1);
        if !self.due(st, held.requested) {
            held.release(Ok(()));
            return Ok(());
        }
        match self.save(st).await {
            Ok(()) => {
                held.release(Ok(()));
                Ok(())
            }
            Err(e) => {
                st.failed = true;
                held.release(Err(&e));
                Err(e.into())
            }
        }
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner
            .handle_supervisor_evt(myself, evt, &mut st.state)
            .await
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let saved = if !st.failed && st.unsaved > 0 {
            self.save(st).await
        } else {
            Ok(())
        };
        self.inner.post_stop(myself, &mut st.state).await?;
        saved.map_err(Into::into)
    }
}
