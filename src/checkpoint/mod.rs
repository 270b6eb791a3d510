//! Checkpoints: an actor's state saved by policy and restored on every start.
//!
//! A checkpointed actor is a plain ractor actor whose `State` is
//! `Serialize + DeserializeOwned`, wrapped in [`Checkpointed`]. The wrapper
//! saves the state into a [`CheckpointStore`] under a [`CheckpointPolicy`]
//! (after every handled message, every N, after an interval, or when the
//! actor asks with [`request`]) and, on every start — a restart by its
//! supervisor or a start on another node — begins from the latest
//! checkpoint instead of calling the actor's `pre_start`.
//!
//! What a start from a checkpoint means:
//! - `pre_start` is **not** called when a checkpoint exists (the state comes
//!   from it); `post_start` always is, so put per-start side effects there.
//! - A checkpoint that does not decode fails the start with
//!   [`CheckpointError::Decode`]; the stored checkpoint is left as it was.
//! - A failed save fails the actor with the error (its in-memory state is
//!   ahead of what is stored), so its supervisor restarts it from the last
//!   saved state; replies held for the save are refused, never sent.
//! - A graceful stop saves unsaved changes first; a failure does not (the
//!   state that failed is not trusted).
//!
//! With [`CheckpointPolicy::EveryMessage`] and
//! [`Checkpointed::ack_after_save`], the [`RemoteReply`](crate::cluster::RemoteReply)
//! answers a handler gives are held until the checkpoint is saved: an
//! acknowledged write is a stored write.
//!
//! ```
//! use std::sync::Arc;
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::checkpoint::{Checkpointed, CheckpointPolicy, CheckpointStore, MemoryStore};
//!
//! struct Counter;
//! impl Actor for Counter {
//!     type Msg = u64;
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: ActorRef<u64>, n: u64, total: &mut u64) -> Result<(), ActorProcessingErr> {
//!         *total += n;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
//! let counter = || Checkpointed::new(Counter, store.clone(), "counter/a", CheckpointPolicy::EveryMessage);
//!
//! let (a, h) = Actor::spawn(None, counter(), ()).await?;
//! a.cast(2)?;
//! a.cast(3)?;
//! a.drain_and_wait(None).await?; // handles both casts, then stops
//! h.await?;
//! let saved = store.load("counter/a").await?.expect("saved");
//! assert_eq!(saved.seq, 2); // one checkpoint per message
//!
//! // A new incarnation starts where the last one stopped.
//! let (a, h) = Actor::spawn(None, counter(), ()).await?;
//! a.stop_and_wait(None, None).await?;
//! h.await?;
//! # Ok(()) }
//! ```

mod actor;
mod child;
#[cfg(feature = "disk")]
mod disk;
mod hold;
#[cfg(any(feature = "disk", feature = "postgres"))]
mod limit;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;

use std::time::Duration;

use futures::future::BoxFuture;

pub use actor::{Checkpointed, CheckpointedState};
#[cfg(feature = "disk")]
pub use disk::DiskStore;
pub use hold::request;
#[cfg_attr(not(feature = "cluster"), allow(unused_imports))]
pub(crate) use hold::{defer_reply, HeldReply};
#[cfg(any(feature = "disk", feature = "postgres"))]
pub use limit::DEFAULT_MAX_CHECKPOINT_BYTES;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;

/// One saved state: its sequence number and its bytes (the state encoded
/// with bincode 2's standard configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1 for the first save of an id, then one more for each save. A store
    /// never replaces a checkpoint with one of a lower or equal number
    /// ([`CheckpointError::Stale`]).
    pub seq: u64,
    /// The encoded state.
    pub bytes: Vec<u8>,
}

/// When a [`Checkpointed`] actor saves its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointPolicy {
    /// After every handled message (the only policy under which an
    /// acknowledged write is always a stored one).
    EveryMessage,
    /// After every `n` handled messages (`n` of 0 counts as 1).
    EveryN(u32),
    /// After the first message handled once `interval` has passed since the
    /// last save (a quiet actor's changes are saved on its graceful stop).
    Interval(Duration),
    /// Only when the actor calls [`request`] while handling a message (and
    /// on a graceful stop).
    OnRequest,
}

/// What went wrong with a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store could not be reached or did not answer.
    #[error("checkpoint store `{store}` is unavailable: {reason}; the state was not saved or loaded, try again once the store is back")]
    Unavailable {
        /// The store's name.
        store: String,
        /// What failed.
        reason: String,
    },
    /// The save may or may not have been stored: a replica or the
    /// database did not answer after it was sent the checkpoint. The state
    /// the actor reported must be treated as possibly applied.
    #[error("checkpoint store `{store}` may or may not have stored the checkpoint: {reason}")]
    Unconfirmed {
        /// The store's name.
        store: String,
        /// What failed.
        reason: String,
    },
    /// The store's disk or database refused the operation.
    #[error("checkpoint store `{store}` failed: {reason}")]
    Storage {
        /// The store's name.
        store: String,
        /// What failed.
        reason: String,
    },
    /// A state did not encode, or a checkpoint did not decode into the
    /// actor's state type; the stored checkpoint was left unchanged.
    #[error("checkpoint `{id}` did not decode: {reason}; the stored checkpoint was kept — run a build whose state type matches it")]
    Decode {
        /// The checkpoint id.
        id: String,
        /// The decoder's message.
        reason: String,
    },
    /// The state did not encode.
    #[error("the state of `{id}` did not encode: {reason}")]
    Encode {
        /// The checkpoint id.
        id: String,
        /// The encoder's message.
        reason: String,
    },
    /// The encoded state is larger than the store accepts.
    #[error("checkpoint `{id}` is {size} bytes, over the store's limit of {limit}; keep the state smaller or raise the limit")]
    TooLarge {
        /// The checkpoint id.
        id: String,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store already holds a checkpoint of this id with a sequence
    /// number at least as high: another copy of the actor saved after the
    /// one that tried. The actor that gets this must stop.
    #[error("checkpoint `{id}` #{offered} is stale: #{stored} is already stored (another copy of this actor is ahead)")]
    Stale {
        /// The checkpoint id.
        id: String,
        /// The number stored.
        stored: u64,
        /// The number offered.
        offered: u64,
    },
    /// The checkpoint existed (up to `last_seq`) but no reachable copy is
    /// left: every node that held it is gone.
    #[error("checkpoint `{id}` is lost: #{last_seq} was saved but every copy is gone; the actor was not started from scratch")]
    Lost {
        /// The checkpoint id.
        id: String,
        /// The last sequence number known to have been saved.
        last_seq: u64,
    },
}

/// Where checkpoints are kept. Implementations: [`MemoryStore`] (one
/// process), the cluster's replicated store (the next members on the
/// placement ring), an embedded disk store and PostgreSQL.
///
/// Object safe (methods return boxed futures) so actors hold an
/// `Arc<dyn CheckpointStore>`.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The store's name, used in errors and logs.
    fn name(&self) -> &str;

    /// Saves `checkpoint` under `id`. Fails with [`CheckpointError::Stale`]
    /// when a checkpoint with a number at least as high is stored; returns
    /// once the checkpoint is durable by the store's own definition.
    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>>;

    /// The latest checkpoint saved under `id`, if any.
    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>>;

    /// Forgets `id` (an entity that ended for good). Removing an unknown id
    /// is not an error.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>>;
}

/// The encoding of checkpointed states: bincode 2, standard configuration.
pub(crate) fn encode_state<S: serde::Serialize>(
    id: &str,
    state: &S,
) -> Result<Vec<u8>, CheckpointError> {
    bincode::serde::encode_to_vec(state, bincode::config::standard()).map_err(|e| {
        CheckpointError::Encode {
            id: id.to_owned(),
            reason: e.to_string(),
        }
    })
}

/// Decodes a checkpointed state; trailing bytes are an error.
pub(crate) fn decode_state<S: serde::de::DeserializeOwned>(
    id: &str,
    bytes: &[u8],
) -> Result<S, CheckpointError> {
    let decode_err = |reason: String| CheckpointError::Decode {
        id: id.to_owned(),
        reason,
    };
    let (state, read) =
        bincode::serde::decode_from_slice::<S, _>(bytes, bincode::config::standard())
            .map_err(|e| decode_err(e.to_string()))?;
    if read != bytes.len() {
        return Err(decode_err(format!(
            "{} trailing bytes after the state",
            bytes.len() - read
        )));
    }
    Ok(state)
}
