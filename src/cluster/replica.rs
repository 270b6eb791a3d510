//! The replicated checkpoint store of an entity type: each checkpoint is
//! kept by its owner and sent to the next `k` hosts of the type in the
//! key's placement order, so the node that takes a key over when its owner
//! dies (the next in that order) usually holds it already.
//!
//! - `save` writes the local copy, then waits until `k` replicas (fewer if
//!   fewer other hosts are up) acknowledge; a node on the minority side of
//!   a partition refuses to save (it must not acknowledge anything).
//! - `load` asks every reachable host and takes the highest sequence
//!   number; a key whose first save was announced but of which no copy is
//!   left is [`CheckpointError::Lost`].

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;

use super::entities::Hosts;
use super::entity_host::HostMsg;
use super::error::ClusterError;
use super::message::RemoteMessage;
use super::node::NodeInner;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, MemoryStore};

/// Room left in a frame for the header and the key around a checkpoint.
const FRAME_OVERHEAD: usize = 2048;

/// One entity type's replicated store on one node.
pub(crate) struct ReplicaStore<M: RemoteMessage> {
    node: Weak<NodeInner>,
    hosts: Hosts<M>,
    name: String,
    /// This node's copies: its own saves and the replicas it holds.
    pub(crate) local: MemoryStore,
    /// Keys whose first save was announced, with the highest number seen.
    pub(crate) known: Mutex<HashMap<String, u64>>,
    k: usize,
    timeout: Duration,
    /// Keep-majority as the host last computed it (at every tick and
    /// whenever a session ends): a save reads it instead of computing it
    /// from the member list each time.
    pub(crate) majority: std::sync::atomic::AtomicBool,
}

impl<M: RemoteMessage> ReplicaStore<M> {
    pub(crate) fn new(node: Weak<NodeInner>, hosts: Hosts<M>, k: usize, timeout: Duration) -> Self {
        ReplicaStore {
            name: format!("replicated:{}", hosts.ty()),
            node,
            hosts,
            local: MemoryStore::new(),
            known: Mutex::new(HashMap::new()),
            k,
            timeout,
            majority: std::sync::atomic::AtomicBool::new(true),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::Unavailable {
            store: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Records that `key` has been saved up to `seq` somewhere.
    pub(crate) fn remember(&self, key: &str, seq: u64) {
        let mut known = lock!(self.known.lock());
        let e = known.entry(key.to_owned()).or_insert(0);
        *e = (*e).max(seq);
    }

    async fn save_inner(&self, key: &str, cp: Checkpoint) -> Result<(), CheckpointError> {
        let previous = self.local.get(key);
        let seq = cp.seq;
        let saved = self.save_replicated(key, cp).await;
        if saved.is_err() {
            // Not saved: our copy must not outrank a copy that was (two
            // checkpoints with one number would make loads ambiguous).
            self.local.undo(key, seq, previous);
        }
        saved
    }

    async fn save_replicated(&self, key: &str, cp: Checkpoint) -> Result<(), CheckpointError> {
        let node = self
            .node
            .upgrade()
            .ok_or_else(|| self.unavailable("the node has shut down"))?;
        if !self.majority.load(std::sync::atomic::Ordering::Acquire) {
            return Err(self.unavailable(
                "this node is on the minority side of a partition and acknowledges nothing",
            ));
        }
        // A checkpoint must fit in a frame to reach its replicas.
        let limit = node.config.max_frame_size.saturating_sub(FRAME_OVERHEAD);
        if cp.bytes.len() > limit {
            return Err(CheckpointError::TooLarge {
                id: key.to_owned(),
                size: cp.bytes.len(),
                limit,
            });
        }
        self.local.put(key, cp.clone())?;
        self.remember(key, cp.seq);
        let hosts = self.hosts.snapshot();
        let me = node.name.clone();
        // Candidates in the key's order; one that turns out to be gone is
        // replaced by the next, so k replicas are reached when k are up.
        let mut candidates: std::collections::VecDeque<_> = self
            .hosts
            .order(key)
            .into_iter()
            .filter(|m| m.node != me)
            .collect();
        if cp.seq == 1 {
            // Announce the key once, so that a loss of every copy is
            // reported as lost rather than mistaken for a new key.
            for m in hosts.iter().filter(|m| m.node != me) {
                // Best effort: a host that misses it only loses the
                // ability to tell "lost" from "new" for this key.
                let _ = self.hosts.cast(
                    m,
                    HostMsg::Exists {
                        key: key.to_owned(),
                        seq: 1,
                    },
                );
            }
        }
        let mut stored = 0;
        // Whether a replica might hold it although the save failed.
        let mut uncertain = false;
        let mut failure: Option<String> = None;
        while stored < self.k && !candidates.is_empty() && failure.is_none() {
            let want = (self.k - stored).min(candidates.len());
            let batch: Vec<_> = candidates.drain(..want).collect();
            let puts = batch.iter().map(|m| {
                let bytes = cp.bytes.clone();
                async move {
                    self.hosts
                        .call(
                            m,
                            |reply| HostMsg::PutReplica {
                                key: key.to_owned(),
                                seq: cp.seq,
                                bytes,
                                reply,
                            },
                            self.timeout,
                        )
                        .await
                }
            });
            for (m, r) in batch.iter().zip(futures::future::join_all(puts).await) {
                match r {
                    Ok(Ok(())) => stored += 1,
                    // Gone since the view was read (it may have stored it
                    // just before): try the next one.
                    Err(ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }) => {
                        uncertain = true;
                    }
                    // It answered that it did not store it.
                    Ok(Err(reason)) => {
                        failure.get_or_insert(format!(
                            "replica on node `{}` refused #{}: {reason}",
                            m.node, cp.seq
                        ));
                    }
                    Err(e @ ClusterError::Refused { .. }) => {
                        failure.get_or_insert(format!(
                            "replica on node `{}` did not take #{}: {e}",
                            m.node, cp.seq
                        ));
                    }
                    // No answer: it may have stored it.
                    Err(e) => {
                        uncertain = true;
                        failure.get_or_insert(format!(
                            "replica on node `{}` did not answer for #{}: {e}",
                            m.node, cp.seq
                        ));
                    }
                }
            }
        }
        // Fewer than k stored without any refusal or silence means fewer
        // than k other hosts are up: as many as there are hold it.
        let Some(reason) = failure else {
            // Fewer replicas than asked because hosts are gone: make sure
            // this node did not just fall into the minority (the cached
            // answer may be a moment old).
            if stored < self.k && !node.has_majority() {
                return Err(self.unavailable(
                    "this node is on the minority side of a partition and acknowledges nothing",
                ));
            }
            return Ok(());
        };
        if uncertain || stored > 0 {
            Err(CheckpointError::Unconfirmed {
                store: self.name.clone(),
                reason,
            })
        } else {
            Err(self.unavailable(reason))
        }
    }

    /// Sends every checkpoint this node owns (first in its key's order) to
    /// its replicas in the current view: after a host came or went, the
    /// copies follow the placement, so a second loss does not take the
    /// last copy with it.
    pub(crate) async fn rereplicate(&self) {
        self.push_owned(false).await;
    }

    /// Sends every checkpoint this node owns to the hosts that hold it
    /// once this node is gone: the next owner and its replicas (a planned
    /// leave or stop, after the entities saved).
    pub(crate) async fn hand_over(&self) {
        self.push_owned(true).await;
    }

    async fn push_owned(&self, leaving: bool) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        if !node.has_majority() {
            return;
        }
        let mut puts = Vec::new();
        for (key, cp) in self.local.entries() {
            let order = self.hosts.order(&key);
            // Staying: only what we own goes to our replicas. Leaving (we
            // may have left our own view already): every copy we hold goes
            // to the key's next owner and its replicas, so none is lost.
            let owned = order.first().map(|m| m.node.as_str()) == Some(node.name.as_str());
            if !leaving && !owned {
                continue;
            }
            let order: Vec<_> = order.into_iter().filter(|m| m.node != node.name).collect();
            // Leaving: the next owner and its k replicas; staying: our k.
            let take = if leaving { self.k + 1 } else { self.k };
            for target in order.into_iter().take(take) {
                let (key, cp) = (key.clone(), cp.clone());
                puts.push(async move {
                    // Best effort; a stale answer means it holds newer already.
                    let _ = self
                        .hosts
                        .call(
                            &target,
                            |reply| HostMsg::PutReplica {
                                key,
                                seq: cp.seq,
                                bytes: cp.bytes,
                                reply,
                            },
                            self.timeout,
                        )
                        .await;
                });
            }
        }
        futures::future::join_all(puts).await;
    }

    /// The latest checkpoint of `key` on any reachable host.
    pub(crate) async fn load_everywhere(
        &self,
        key: &str,
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let node = self
            .node
            .upgrade()
            .ok_or_else(|| self.unavailable("the node has shut down"))?;
        let mut best = self.local.get(key);
        let hosts = self.hosts.snapshot();
        let gets = hosts
            .iter()
            .filter(|m| m.node != node.name)
            .map(|m| async move {
                let r = self
                    .hosts
                    .call(
                        m,
                        |reply| HostMsg::GetReplica {
                            key: key.to_owned(),
                            reply,
                        },
                        self.timeout,
                    )
                    .await;
                (m, r)
            });
        for (m, r) in futures::future::join_all(gets).await {
            match r {
                Ok(Some((seq, bytes))) => {
                    if best.as_ref().is_none_or(|b| b.seq < seq) {
                        best = Some(Checkpoint { seq, bytes });
                    }
                }
                Ok(None) => {}
                // Gone meanwhile: it holds nothing we can reach.
                Err(ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }) => {}
                Err(e) => {
                    return Err(
                        self.unavailable(format!("host on node `{}` did not answer: {e}", m.node))
                    )
                }
            }
        }
        if let Some(cp) = &best {
            self.remember(key, cp.seq);
            // Keep a copy: this node is about to own it.
            let _ = self.local.put(key, cp.clone());
            return Ok(best);
        }
        if let Some(&last_seq) = lock!(self.known.lock()).get(key) {
            return Err(CheckpointError::Lost {
                id: key.to_owned(),
                last_seq,
            });
        }
        Ok(None)
    }
}

impl<M: RemoteMessage> CheckpointStore for ReplicaStore<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>> {
        Box::pin(self.save_inner(id, checkpoint))
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>> {
        Box::pin(self.load_everywhere(id))
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>> {
        self.local.delete(id);
        lock!(self.known.lock()).remove(id);
        Box::pin(async { Ok(()) })
    }
}

/// A store whose first `load` answers with what the activation already
/// loaded (so an actor's start does not ask every host twice); everything
/// else goes to the replicated store.
pub(crate) struct Preloaded {
    first: Mutex<Option<Result<Option<Checkpoint>, CheckpointError>>>,
    inner: std::sync::Arc<dyn CheckpointStore>,
}

impl Preloaded {
    pub(crate) fn new(
        inner: std::sync::Arc<dyn CheckpointStore>,
        loaded: Result<Option<Checkpoint>, CheckpointError>,
    ) -> Self {
        Preloaded {
            first: Mutex::new(Some(loaded)),
            inner,
        }
    }
}

impl CheckpointStore for Preloaded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>> {
        self.inner.save(id, checkpoint)
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>> {
        match lock!(self.first.lock()).take() {
            Some(loaded) => Box::pin(async move { loaded }),
            None => self.inner.load(id),
        }
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>> {
        self.inner.remove(id)
    }
}
