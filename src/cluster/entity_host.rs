//! The host of one entity type on one node: the actor that starts, holds,
//! hands over and stops that type's entities here, and keeps the type's
//! checkpoint replicas. The rules it follows are described in
//! [`entities`](super::entities); this is their state machine.
//!
//! Per key, a host holds one [`Slot`]: `Activating` (asking the other hosts
//! to hand it over, loading its checkpoint, spawning; messages wait),
//! `Active` (the actor runs here), `Leaving` (finishing its mailbox and
//! saving before someone else takes it; messages wait and then follow it).
//! Slow work (hand-over rounds, loads, drains) runs in tasks that report
//! back as [`Internal`] messages, so a host never waits on another host
//! inside its handler (two hosts handing keys to each other cannot
//! deadlock).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::entities::{host_group, EntitySpec, Hosts, Placement, SpawnFn};
use super::error::ClusterError;
use super::events::{NodeEvent, RemoteDeadLetter, UndeliveredReason};
use super::message::RemoteMessage;
use super::node::{Node, NodeInner};
use super::placement;
use super::remote_ref::{drop_disarmed, drop_refusing, RemoteReply};
use super::replica::{Preloaded, ReplicaStore};
use super::wire::Refusal;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};

/// A host's answer to a hand-over request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Handover {
    /// The key does not run here (any more): start it.
    Released,
    /// The key is starting or moving here: ask again shortly.
    Busy,
}

/// What a host receives: from other hosts (serialized), from entity
/// handles, and from its own tasks (never serialized).
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "M: Serialize", deserialize = "M: DeserializeOwned"))]
pub(crate) enum HostMsg<M> {
    /// A message for the entity `key`. `hops` counts forwards between
    /// hosts whose views of the owner differ; `handed` marks a message the
    /// previous owner held while it handed the key over (it goes before
    /// anything that reached the new owner directly).
    Deliver {
        key: String,
        hops: u8,
        handed: bool,
        msg: M,
    },
    /// Hand `key` over to the host on node `from`.
    Acquire {
        key: String,
        from: String,
        reply: RemoteReply<Handover>,
    },
    /// Keep this checkpoint of `key` as a replica.
    PutReplica {
        key: String,
        seq: u64,
        bytes: Vec<u8>,
        reply: RemoteReply<Result<(), String>>,
    },
    /// The replica of `key` held here, if any.
    GetReplica {
        key: String,
        reply: RemoteReply<Option<(u64, Vec<u8>)>>,
    },
    /// `key` has been saved (its first checkpoint).
    Exists { key: String, seq: u64 },
    #[serde(skip)]
    Internal(Internal<M>),
}

/// Stands for any entity message where only the hosts matter (every
/// host's messages share one tag).
#[derive(Serialize, Deserialize)]
pub(crate) struct AnyMessage;

impl RemoteMessage for AnyMessage {
    const TAG: &'static str = "ractor_otp::any";
}

impl<M: RemoteMessage> RemoteMessage for HostMsg<M> {
    const TAG: &'static str = "ractor_otp::entity_host";
}

/// A host's own bookkeeping messages.
pub(crate) enum Internal<M> {
    Activated {
        key: String,
        result: Result<ActorRef<M>, Failure>,
    },
    /// The key finished stopping here; `reply` answers the host that asked
    /// for it, once the messages held meanwhile are on their way to it.
    Released {
        key: String,
        reply: Option<RemoteReply<Handover>>,
    },
    Retry {
        key: String,
    },
    Tick,
    /// The session with `peer` went down.
    PeerDown {
        peer: String,
    },
    /// Leave (a planned leave or stop of the node): out of the group, hand
    /// every key over, keep forwarding, then answer `done`.
    Leave {
        membership: u64,
        done: oneshot::Sender<()>,
    },
    /// The checkpoints this node owned went to their next owners.
    HandedOver,
    /// Leaving is over: answer the one waiting.
    Left,
}

/// Why an activation failed, and whether to try again.
#[derive(Debug)]
pub(crate) struct Failure {
    reason: String,
    retry: bool,
    /// Another host is starting or moving the key (not counted as a
    /// failed attempt).
    busy: bool,
}

impl Failure {
    fn retry(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            retry: true,
            busy: false,
        }
    }

    fn fatal(reason: impl Into<String>) -> Self {
        Failure {
            reason: reason.into(),
            retry: false,
            busy: false,
        }
    }
}

/// How a leaving host stands.
struct Leaving {
    done: Option<oneshot::Sender<()>>,
    handing_over: bool,
}

pub(crate) struct Host<M: RemoteMessage> {
    node: Weak<NodeInner>,
    spec: EntitySpec,
    hosts: Hosts<M>,
    store: Arc<ReplicaStore<M>>,
    spawn: Arc<SpawnFn<M>>,
}

enum Slot<M> {
    Active {
        actor: ActorRef<M>,
        last: Instant,
    },
    Activating {
        queue: VecDeque<M>,
        attempt: u32,
        busy: u32,
        /// How many handed-over messages lead the queue.
        front: usize,
    },
    /// Stopping here (handed over, passivated, fenced or leaving); its
    /// messages wait and then follow it.
    Leaving {
        queue: VecDeque<M>,
        to: Option<String>,
    },
}

pub(crate) struct HostState<M> {
    slots: HashMap<String, Slot<M>>,
    by_actor: HashMap<ActorId, String>,
    paused: bool,
    /// The hosts' nodes at the last tick, to notice a change.
    seen: Vec<String>,
    /// A re-replication is running.
    replicating: Arc<std::sync::atomic::AtomicBool>,
    leaving: Option<Leaving>,
}

/// The most failed attempts at starting one key before its messages are
/// dead letters.
const MAX_ATTEMPTS: u32 = 8;
/// The most "busy" answers (another host starting or moving the key)
/// before giving up: about 20 s of waiting.
const MAX_BUSY: u32 = 200;
/// How often a host checks the majority, passivation and its singleton.
const TICK: Duration = Duration::from_millis(50);
/// How long a leaving host keeps forwarding after its keys are handed
/// over, while the other nodes learn it left the group.
const LINGER: Duration = Duration::from_millis(200);

/// Makes a leaving host hand everything over and waits for it.
pub(crate) type LeaveFn = dyn Fn() -> BoxFuture<'static, ()> + Send + Sync;

/// Starts the host of `spec` on `node` and joins it to the type's group.
/// Returns its cell and how to make it leave.
pub(crate) async fn start_host<M: RemoteMessage>(
    node: Arc<NodeInner>,
    spec: EntitySpec,
    spawn: Arc<SpawnFn<M>>,
) -> Result<(ActorCell, Arc<LeaveFn>), ClusterError> {
    let hosts = Hosts::<M>::new(
        Node {
            inner: node.clone(),
        },
        &spec.ty,
        spec.placement,
    );
    let store = Arc::new(ReplicaStore::new(
        Arc::downgrade(&node),
        hosts.clone(),
        spec.replicas,
        spec.timeout,
    ));
    let limit = spec.timeout * 10;
    let host = Host {
        node: Arc::downgrade(&node),
        spec: spec.clone(),
        hosts,
        store,
        spawn,
    };
    let (actor, _) = Actor::spawn(None, host, ())
        .await
        .map_err(|e| ClusterError::InvalidConfig(format!("the host did not start: {e}")))?;
    let joined = Node {
        inner: node.clone(),
    }
    .join_group(&host_group(&spec.ty), actor.clone());
    let membership = match joined {
        Ok(id) => id,
        Err(e) => {
            actor.stop(None);
            return Err(e);
        }
    };
    let me = actor.clone();
    let leave: Arc<LeaveFn> = Arc::new(move || {
        let me = me.clone();
        Box::pin(async move {
            let (done, left) = oneshot::channel();
            let asked = me.cast(HostMsg::Internal(Internal::Leave { membership, done }));
            if asked.is_ok() && tokio::time::timeout(limit, left).await.is_err() {
                tracing::warn!(
                    "an entity host did not finish leaving within {limit:?}; stopping it"
                );
            }
            let _ = me.stop_and_wait(None, Some(limit)).await;
        })
    });
    Ok((actor.get_cell(), leave))
}

impl<M: RemoteMessage> Host<M> {
    fn me(&self) -> String {
        self.node
            .upgrade()
            .map(|n| n.name.clone())
            .unwrap_or_default()
    }

    fn dead_letter(&self, key: &str, msg: M, reason: &str) {
        if let Some(node) = self.node.upgrade() {
            node.events.dead_letter(RemoteDeadLetter::new(
                &node.name,
                format!("{}/{key}", self.spec.ty),
                M::TAG.to_string(),
                UndeliveredReason::EntityUnavailable(reason.to_owned()),
                None,
            ));
        }
        // A call inside answers its caller with this reason.
        drop_refusing(msg, Refusal::EntityUnavailable(reason.to_owned()));
    }

    /// Queues `msg` for `key` (a handed-over one after the earlier handed
    /// ones, before the rest), up to `max_held`.
    fn hold(&self, slot: &mut Slot<M>, key: &str, msg: M, handed: bool) {
        let (queue, front) = match slot {
            Slot::Activating { queue, front, .. } => (queue, Some(front)),
            Slot::Leaving { queue, .. } => (queue, None),
            Slot::Active { .. } => return,
        };
        if queue.len() >= self.spec.max_held {
            return self.dead_letter(key, msg, "too many messages held while it starts or moves");
        }
        match front {
            Some(front) if handed => {
                queue.insert((*front).min(queue.len()), msg);
                *front += 1;
            }
            _ => queue.push_back(msg),
        }
    }

    /// Sends `msg` for `key` to the host on `owner`; hands it back if that
    /// host cannot be reached.
    fn forward(
        &self,
        owner: &super::names::GroupMember,
        key: &str,
        hops: u8,
        handed: bool,
        msg: M,
    ) -> Result<(), M> {
        let sent = self.hosts.cast(
            owner,
            HostMsg::Deliver {
                key: key.to_owned(),
                hops,
                handed,
                msg,
            },
        );
        match sent.map_err(|e| e.into_message()) {
            Ok(()) => Ok(()),
            Err(HostMsg::Deliver { msg, .. }) => Err(msg),
            Err(other) => {
                drop_disarmed(other);
                Ok(())
            }
        }
    }

    fn deliver(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: String,
        hops: u8,
        handed: bool,
        msg: M,
    ) {
        match st.slots.get_mut(&key) {
            Some(Slot::Active { actor, last }) => {
                *last = Instant::now();
                if let Err(ractor::MessagingErr::SendErr(m)) = actor.cast(msg) {
                    // Stopped under us (its end is on its way): start it
                    // again from its last checkpoint, with this message.
                    self.start(myself, st, key, m);
                }
            }
            Some(slot) => self.hold(slot, &key, msg, handed),
            None => {
                let me = self.me();
                let owner = self.hosts.owner(&key).filter(|o| o.node != me);
                if st.leaving.is_some() {
                    // Leaving: never start anything here; pass it on.
                    let Some(owner) = owner else {
                        return self.dead_letter(
                            &key,
                            msg,
                            "its host is leaving and no other host is reachable",
                        );
                    };
                    if let Err(m) = self.forward(&owner, &key, hops.saturating_add(1), handed, msg)
                    {
                        self.dead_letter(
                            &key,
                            m,
                            "its host is leaving and the next owner could not be reached",
                        );
                    }
                    return;
                }
                // Not here: forward to the owner if it is another node (at
                // most twice, in case views differ), else start it here.
                let mut msg = msg;
                if let (true, Some(owner)) = (hops < 2, owner) {
                    match self.forward(&owner, &key, hops + 1, handed, msg) {
                        Ok(()) => return,
                        // The owner in our view is gone (our view lags):
                        // start it here; the hand-over keeps one copy.
                        Err(m) => msg = m,
                    }
                }
                if st.paused {
                    return self.dead_letter(
                        &key,
                        msg,
                        "this node is on the minority side of a partition",
                    );
                }
                self.start(myself, st, key, msg);
            }
        }
    }

    /// Starts `key` here with `first` (if any) as its first message.
    fn start_with(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: String,
        first: Option<M>,
    ) {
        st.slots.insert(
            key.clone(),
            Slot::Activating {
                queue: first.into_iter().collect(),
                attempt: 0,
                busy: 0,
                front: 0,
            },
        );
        self.activate(myself, key);
    }

    fn start(&self, myself: &ActorRef<HostMsg<M>>, st: &mut HostState<M>, key: String, first: M) {
        self.start_with(myself, st, key, Some(first));
    }

    /// Starts `key` here in a task: hand-over from every other host, load
    /// the latest checkpoint, spawn. The outcome comes back as `Activated`.
    fn activate(&self, myself: &ActorRef<HostMsg<M>>, key: String) {
        let hosts = self.hosts.clone();
        let store = self.store.clone();
        let spawn = self.spawn.clone();
        let spec = self.spec.clone();
        let node = self.node.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = async {
                let node = node
                    .upgrade()
                    .ok_or_else(|| Failure::fatal("the node has shut down"))?;
                node.may_start().map_err(Failure::retry)?;
                // A drain may take up to 5 timeouts; wait a little longer.
                let ask_for = spec.timeout * 6;
                // Every other reachable host at once.
                let others: Vec<_> = hosts
                    .snapshot()
                    .iter()
                    .filter(|m| m.node != node.name)
                    .cloned()
                    .collect();
                let asks = others.iter().map(|m| {
                    hosts.call(
                        m,
                        |reply| HostMsg::Acquire {
                            key: key.clone(),
                            from: node.name.clone(),
                            reply,
                        },
                        ask_for,
                    )
                });
                for (m, asked) in others.iter().zip(futures::future::join_all(asks).await) {
                    match asked {
                        Ok(Handover::Released) => {}
                        Ok(Handover::Busy) => {
                            return Err(Failure {
                                reason: format!("node `{}` is starting or moving it", m.node),
                                retry: true,
                                busy: true,
                            })
                        }
                        // Down or gone: it runs nothing we can reach (and a
                        // minority side stops its own copies).
                        Err(ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }) => {}
                        Err(e) => {
                            return Err(Failure::retry(format!(
                                "node `{}` did not hand it over: {e}",
                                m.node
                            )))
                        }
                    }
                }
                let loaded = store.load_everywhere(&key).await;
                match &loaded {
                    Err(CheckpointError::Lost { last_seq, .. }) if !spec.fresh_when_lost => {
                        node.events.emit(NodeEvent::CheckpointLost {
                            ty: spec.ty.clone(),
                            key: key.clone(),
                            last_seq: *last_seq,
                        });
                        return Err(Failure::fatal(format!(
                            "checkpoint lost: #{last_seq} was saved but every copy is gone"
                        )));
                    }
                    Err(CheckpointError::Unavailable { reason, .. }) => {
                        return Err(Failure::retry(reason.clone()));
                    }
                    _ => {}
                }
                let preloaded: Arc<dyn CheckpointStore> = Arc::new(Preloaded::new(
                    store.clone() as Arc<dyn CheckpointStore>,
                    loaded,
                ));
                (spawn)(&key, preloaded, &spec, myself.get_cell())
                    .await
                    .map_err(Failure::fatal)
            }
            .await;
            let report = myself.cast(HostMsg::Internal(Internal::Activated { key, result }));
            if let Err(ractor::MessagingErr::SendErr(HostMsg::Internal(Internal::Activated {
                result: Ok(actor),
                ..
            }))) = report
            {
                // The host is gone: nobody would ever stop this copy.
                actor.stop(None);
            }
        });
    }

    fn activated(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: String,
        result: Result<ActorRef<M>, Failure>,
    ) {
        let Some(Slot::Activating {
            queue,
            attempt,
            busy,
            ..
        }) = st.slots.remove(&key)
        else {
            // Not waited for any more: undo.
            if let Ok(actor) = result {
                actor.stop(None);
            }
            return;
        };
        let majority = self.node.upgrade().is_some_and(|n| n.has_majority());
        let result = match result {
            // Started, but meanwhile this node fell into the minority or
            // began to leave: this copy must not run.
            Ok(actor) if st.paused || !majority || st.leaving.is_some() => {
                actor.stop(None);
                Err(Failure::retry(
                    "this node fell into the minority or is leaving",
                ))
            }
            other => other,
        };
        match result {
            Ok(actor) => {
                st.by_actor.insert(actor.get_id(), key.clone());
                for m in queue {
                    if let Err(ractor::MessagingErr::SendErr(m)) = actor.cast(m) {
                        self.dead_letter(&key, m, "it stopped as it started");
                    }
                }
                st.slots.insert(
                    key,
                    Slot::Active {
                        actor,
                        last: Instant::now(),
                    },
                );
            }
            Err(_) if st.leaving.is_some() => {
                // Pass the held messages on to the next owner.
                for m in queue {
                    self.deliver(myself, st, key.clone(), 0, false, m);
                }
                self.check_left(myself, st);
            }
            Err(f)
                if f.retry
                    && ((f.busy && busy < MAX_BUSY) || (!f.busy && attempt + 1 < MAX_ATTEMPTS)) =>
            {
                let (attempt, busy) = if f.busy {
                    (attempt, busy + 1)
                } else {
                    (attempt + 1, busy)
                };
                tracing::debug!(ty = %self.spec.ty, %key, reason = %f.reason, attempt, busy, "start deferred");
                let step = if f.busy { busy.min(4) } else { attempt.min(6) };
                st.slots.insert(
                    key.clone(),
                    Slot::Activating {
                        front: 0,
                        queue,
                        attempt,
                        busy,
                    },
                );
                let delay = Duration::from_millis((10u64 << step) + rand::random_range(0..10));
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = me.cast(HostMsg::Internal(Internal::Retry { key }));
                });
            }
            Err(f) => {
                tracing::warn!(ty = %self.spec.ty, %key, reason = %f.reason, "entity could not be started; its held messages are dead letters");
                for m in queue {
                    self.dead_letter(&key, m, &f.reason);
                }
            }
        }
    }

    /// Stops the active `key` here in a task (finishing its mailbox and
    /// saving), then reports `Released` (which answers `reply` once the
    /// messages held meanwhile are on their way to `to`).
    fn release(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: &str,
        to: Option<String>,
        reply: Option<RemoteReply<Handover>>,
    ) {
        let Some(Slot::Active { actor, .. }) = st.slots.remove(key) else {
            if let Some(r) = reply {
                r.send(Handover::Busy);
            }
            return;
        };
        st.slots.insert(
            key.to_owned(),
            Slot::Leaving {
                queue: VecDeque::new(),
                to,
            },
        );
        let myself = myself.clone();
        let key = key.to_owned();
        let limit = self.spec.timeout * 5;
        tokio::spawn(async move {
            if actor.drain_and_wait(Some(limit)).await.is_err() {
                actor.kill();
            }
            // If the host is gone, the reply port's drop refuses the asker.
            let _ = myself.cast(HostMsg::Internal(Internal::Released { key, reply }));
        });
    }

    fn released(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: String,
        reply: Option<RemoteReply<Handover>>,
    ) {
        if let Some(Slot::Leaving { queue, to }) = st.slots.remove(&key) {
            let taker = to.as_ref().and_then(|node| {
                self.hosts
                    .snapshot()
                    .iter()
                    .find(|h| &h.node == node)
                    .cloned()
            });
            for m in queue {
                match (&to, &taker) {
                    // To the host that asked for it, ahead of what reached
                    // it directly.
                    (Some(_), Some(t)) => {
                        if let Err(m) = self.forward(t, &key, 2, true, m) {
                            self.dead_letter(&key, m, "its new owner could not be reached");
                        }
                    }
                    // The taker is not known any more: the placement decides.
                    (Some(_), None) => self.deliver(myself, st, key.clone(), 0, false, m),
                    // Passivated or fenced: starts again here, or (leaving)
                    // goes to the next owner.
                    (None, _) => self.deliver(myself, st, key.clone(), 2, false, m),
                }
            }
        }
        // Only now: the asker starts the key once it hears this, and the
        // messages above are ahead of this answer on the same session.
        if let Some(r) = reply {
            r.send(Handover::Released);
        }
        self.check_left(myself, st);
    }

    /// The session with `peer` ended: `peer` may now start, in its own
    /// view without us, keys that run here. It can only if every host
    /// ranked above it for the key is unreachable to it and it still has
    /// a majority, i.e. when fewer than half the hosts rank above it. Those
    /// keys stop here at once (finishing their mailboxes and saving if they
    /// can), so that when the two sides meet again no key runs on both.
    fn fence(&self, myself: &ActorRef<HostMsg<M>>, st: &mut HostState<M>, peer: &str) {
        if let Some(node) = self.node.upgrade() {
            // Saves read this: a lost majority must not wait for the tick.
            self.store
                .majority
                .store(node.has_majority(), std::sync::atomic::Ordering::Release);
        }
        let me = self.me();
        let mut nodes: Vec<String> = self
            .hosts
            .snapshot()
            .iter()
            .map(|m| m.node.clone())
            .collect();
        if !nodes.iter().any(|n| n == peer) {
            nodes.push(peer.to_owned());
        }
        let n = nodes.len();
        let at_risk: Vec<String> = st
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Active { .. }))
            .filter(|(key, _)| match self.spec.placement {
                Placement::Rendezvous => {
                    let order = placement::rank(&self.spec.ty, key, &nodes);
                    let pos = order.iter().position(|&i| nodes[i] == peer);
                    let mine = order.iter().position(|&i| nodes[i] == me);
                    // Ranked below us, with fewer than half the hosts above.
                    matches!((pos, mine), (Some(p), Some(m)) if p > m && 2 * p < n)
                }
                // A singleton: the peer may start it whenever it is next
                // in age after the hosts it lost; be conservative (it
                // starts again here at the next tick if it is still ours).
                Placement::Oldest => true,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in at_risk {
            tracing::debug!(ty = %self.spec.ty, %key, %peer, "session lost with a possible taker: stopping it here");
            self.release(myself, st, &key, None, None);
        }
    }

    fn tick(&self, myself: &ActorRef<HostMsg<M>>, st: &mut HostState<M>) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let majority = node.has_majority();
        self.store
            .majority
            .store(majority, std::sync::atomic::Ordering::Release);
        if !majority && !st.paused {
            tracing::warn!(node = %node.name, ty = %self.spec.ty, "minority side of a partition: stopping entities until the majority is back");
        } else if majority && st.paused {
            tracing::info!(node = %node.name, ty = %self.spec.ty, "back in the majority: entities start again");
        }
        st.paused = !majority;
        if st.paused {
            // Killed, not drained: nothing more is processed or saved here
            // (the majority side takes over from the replicas). Every tick,
            // so that a start that ends now does not survive either.
            for slot in st.slots.values() {
                if let Slot::Active { actor, .. } = slot {
                    actor.kill();
                }
            }
            return;
        }
        if st.leaving.is_some() {
            return;
        }
        let mut now_seen: Vec<String> = self
            .hosts
            .snapshot()
            .iter()
            .map(|m| m.node.clone())
            .collect();
        now_seen.sort();
        if now_seen != st.seen {
            use std::sync::atomic::Ordering;
            // Hosts came or went: keys that belong elsewhere now are handed
            // over (their owner starts them on its next message), and our
            // checkpoints follow the new replica order. Retried at the
            // next tick while a previous re-replication runs.
            if !st.replicating.swap(true, Ordering::AcqRel) {
                st.seen = now_seen;
                let me = node.name.clone();
                let moved: Vec<(String, String)> = st
                    .slots
                    .iter()
                    .filter(|(_, s)| matches!(s, Slot::Active { .. }))
                    .filter_map(|(k, _)| {
                        let owner = self.hosts.owner(k)?;
                        (owner.node != me).then(|| (k.clone(), owner.node))
                    })
                    .collect();
                for (key, to) in moved {
                    tracing::debug!(ty = %self.spec.ty, %key, %to, "owner changed: handing over");
                    self.release(myself, st, &key, Some(to), None);
                }
                let store = self.store.clone();
                let flag = st.replicating.clone();
                tokio::spawn(async move {
                    store.rereplicate().await;
                    flag.store(false, Ordering::Release);
                });
            }
        }
        if let Some(idle) = self.spec.passivate_after {
            let now = Instant::now();
            let idle_keys: Vec<String> = st
                .slots
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Active { last, .. } if now.duration_since(*last) >= idle => {
                        Some(k.clone())
                    }
                    _ => None,
                })
                .collect();
            for k in idle_keys {
                self.release(myself, st, &k, None, None);
            }
        }
        // A singleton runs without waiting for a message: its owner starts
        // it once it may.
        if self.spec.placement == Placement::Oldest {
            let key = self.spec.singleton_key();
            let ours = self.hosts.owner(&key).is_some_and(|o| o.node == node.name);
            if ours && !st.slots.contains_key(&key) && node.may_start().is_ok() {
                self.start_with(myself, st, key, None);
            }
        }
    }

    /// While leaving: once no key is left here, hand the checkpoints over,
    /// linger, then answer.
    fn check_left(&self, myself: &ActorRef<HostMsg<M>>, st: &mut HostState<M>) {
        let Some(leaving) = st.leaving.as_mut() else {
            return;
        };
        if leaving.handing_over || !st.slots.is_empty() {
            return;
        }
        leaving.handing_over = true;
        let store = self.store.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            store.hand_over().await;
            let _ = me.cast(HostMsg::Internal(Internal::HandedOver));
        });
    }
}

impl<M: RemoteMessage> Actor for Host<M> {
    type Msg = HostMsg<M>;
    type State = HostState<M>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        if let Some(node) = self.node.upgrade() {
            let mut events = node.events.subscribe();
            let me = myself.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if let NodeEvent::Down { peer, .. } = event {
                        if me
                            .cast(HostMsg::Internal(Internal::PeerDown { peer }))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            });
        }
        let weak = myself.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if weak.cast(HostMsg::Internal(Internal::Tick)).is_err() {
                    break;
                }
            }
        });
        Ok(HostState {
            slots: HashMap::new(),
            by_actor: HashMap::new(),
            paused: false,
            seen: Vec::new(),
            replicating: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            leaving: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HostMsg::Deliver {
                key,
                hops,
                handed,
                msg,
            } => self.deliver(&myself, st, key, hops, handed, msg),
            HostMsg::Acquire { key, from, reply } => match st.slots.get(&key) {
                None => {
                    reply.send(Handover::Released);
                }
                Some(Slot::Active { .. }) => {
                    tracing::debug!(ty = %self.spec.ty, %key, to = %from, "handing over");
                    self.release(&myself, st, &key, Some(from), Some(reply));
                }
                Some(Slot::Activating { .. } | Slot::Leaving { .. }) => {
                    reply.send(Handover::Busy);
                }
            },
            HostMsg::PutReplica {
                key,
                seq,
                bytes,
                reply,
            } => {
                self.store.remember(&key, seq);
                let stored = self.store.local.put(&key, Checkpoint { seq, bytes });
                reply.send(stored.map_err(|e| e.to_string()));
            }
            HostMsg::GetReplica { key, reply } => {
                reply.send(self.store.local.get(&key).map(|c| (c.seq, c.bytes)));
            }
            HostMsg::Exists { key, seq } => self.store.remember(&key, seq),
            HostMsg::Internal(Internal::Activated { key, result }) => {
                self.activated(&myself, st, key, result)
            }
            HostMsg::Internal(Internal::Retry { key }) => {
                if matches!(st.slots.get(&key), Some(Slot::Activating { .. })) {
                    self.activate(&myself, key);
                }
            }
            HostMsg::Internal(Internal::Released { key, reply }) => {
                self.released(&myself, st, key, reply)
            }
            HostMsg::Internal(Internal::Tick) => self.tick(&myself, st),
            HostMsg::Internal(Internal::PeerDown { peer }) => self.fence(&myself, st, &peer),
            HostMsg::Internal(Internal::Leave { membership, done }) => {
                st.leaving = Some(Leaving {
                    done: Some(done),
                    handing_over: false,
                });
                if let Some(node) = self.node.upgrade() {
                    // Out of the group first: from now on the others route
                    // this type's keys elsewhere; what still comes here is
                    // passed on.
                    node.withdraw_local(membership);
                }
                let active: Vec<String> = st
                    .slots
                    .iter()
                    .filter(|(_, s)| matches!(s, Slot::Active { .. }))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in active {
                    let to = self.hosts.owner(&key).map(|o| o.node);
                    self.release(&myself, st, &key, to, None);
                }
                self.check_left(&myself, st);
            }
            HostMsg::Internal(Internal::HandedOver) => {
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(LINGER).await;
                    let _ = me.cast(HostMsg::Internal(Internal::Left));
                });
            }
            HostMsg::Internal(Internal::Left) => {
                if let Some(done) = st.leaving.as_mut().and_then(|l| l.done.take()) {
                    let _ = done.send(());
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure) = match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            SupervisionEvent::ActorFailed(cell, e) => (cell, Some(e.to_string())),
            _ => return Ok(()),
        };
        if let Some(key) = st.by_actor.remove(&cell.get_id()) {
            if let Some(f) = failure {
                tracing::warn!(ty = %self.spec.ty, %key, error = %f, "entity failed; its next message starts it again from its last checkpoint");
            }
            if matches!(st.slots.get(&key), Some(Slot::Active { actor, .. }) if actor.get_id() == cell.get_id())
            {
                st.slots.remove(&key);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever a leave did not finish: every entity finishes its
        // mailbox and saves; what waits here is a dead letter.
        let limit = self.spec.timeout * 5;
        let actors: Vec<ActorRef<M>> = st
            .slots
            .values()
            .filter_map(|s| match s {
                Slot::Active { actor, .. } => Some(actor.clone()),
                _ => None,
            })
            .collect();
        let drains = actors.iter().map(|a| a.drain_and_wait(Some(limit)));
        for (a, r) in actors.iter().zip(futures::future::join_all(drains).await) {
            if r.is_err() {
                a.kill();
            }
        }
        if !actors.is_empty() {
            self.store.hand_over().await;
        }
        for (key, slot) in st.slots.drain() {
            if let Slot::Activating { queue, .. } | Slot::Leaving { queue, .. } = slot {
                for m in queue {
                    self.dead_letter(&key, m, "its host stopped");
                }
            }
        }
        Ok(())
    }
}
