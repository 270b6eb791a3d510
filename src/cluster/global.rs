//! Cluster-wide names and process groups on a [`Node`]: register an actor
//! under a name every node resolves, or add it to a group every node can
//! route over (Erlang's `global` and `pg`). The replicated view and its
//! rules are in [`names`](super::names).
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::cluster::{GroupRouting, Node, NodeConfig};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
//! struct Job(u64);
//!
//! struct Worker;
//! impl Actor for Worker {
//!     type Msg = Job;
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Job>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//!     async fn handle(&self, _: ActorRef<Job>, _: Job, _: &mut ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let a = Node::start(NodeConfig::new("a").cookie("secret")).await?;
//! let b = Node::start(NodeConfig::new("b").cookie("secret").seeds([a.local_addr()])).await?;
//! let (w, _) = Actor::spawn(None, Worker, ()).await?;
//! a.register("scheduler", w.clone())?;
//! a.join_group("workers", w)?;
//!
//! // b sees both once the session is up (within milliseconds).
//! # let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
//! # while b.whereis("scheduler").is_none() || b.group::<Job>("workers").members().is_empty() {
//! #     assert!(tokio::time::Instant::now() < deadline);
//! #     tokio::time::sleep(Duration::from_millis(5)).await;
//! # }
//! assert_eq!(b.whereis("scheduler").as_deref(), Some("a"));
//! b.named::<Job>("scheduler").cast(Job(1))?;
//! b.group::<Job>("workers").routing(GroupRouting::RoundRobin).cast(Job(2))?;
//! # a.shutdown().await; b.shutdown().await; Ok(()) }
//! ```

use std::any::Any;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use ractor::ActorRef;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{ClusterError, RemoteCastError};
use super::events::{NodeEvent, RemoteDeadLetter, UndeliveredReason};
use super::message::RemoteMessage;
use super::names::{
    rendezvous, rendezvous_order, Conflict, GroupMember, GroupWire, NameWire, Snapshot,
};
use super::node::{Node, NodeInner};
use super::registry::check_name;
use super::remote_ref::{drop_disarmed, RemoteRef, RemoteReply};
use super::session::Link;
use super::wire::{self, Frame, Refusal};
use crate::pool::routing::{hash_key, power_of_two_choices, WorkerLoad};
use crate::pool::PoolRef;
use crate::supervisor::{CastError, ChildRef};

/// The export name under which a registered name's actor is reached.
pub(crate) fn name_export(name: &str) -> String {
    format!("\u{1}global:{name}")
}

/// The export name under which a group member is reached.
pub(crate) fn group_export(id: u64) -> String {
    format!("\u{1}group:{id}")
}

/// A local actor behind a name or a group membership.
pub(crate) enum Local<M: RemoteMessage> {
    Actor(ActorRef<M>),
    Child(ChildRef<M>),
    Pool(PoolRef<M>),
}

impl<M: RemoteMessage> Local<M> {
    /// Casts `msg`: `Err(Some(msg))` hands it back (the actor is not
    /// running), `Err(None)` if ractor consumed it without delivering it
    /// (its mailbox closed under the send).
    fn cast(&self, msg: M) -> Result<(), Option<M>> {
        match self {
            Local::Actor(a) => a.cast(msg).map_err(|e| match e {
                ractor::MessagingErr::SendErr(m) => Some(m),
                _ => None,
            }),
            Local::Child(c) => c.cast(msg).map_err(|e| match e {
                CastError::NotRunning(m) | CastError::Closed(m) => Some(m),
                CastError::Lost => None,
            }),
            Local::Pool(p) => p.cast(msg).map_err(|e| Some(e.into_inner())),
        }
    }
}

/// Milliseconds since the Unix epoch (registration times).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Names and groups of a node: the replicated view, and the local actors
/// behind this node's own entries.
#[derive(Default)]
pub(crate) struct LocalEntries {
    /// This node's names → their actor (a `Local<M>`).
    pub(crate) names: std::collections::HashMap<String, Arc<dyn Any + Send + Sync>>,
    /// This node's group members by id → (group, their actor).
    pub(crate) members: std::collections::HashMap<u64, (String, Arc<dyn Any + Send + Sync>)>,
    pub(crate) next_id: u64,
}

/// The most bytes of names and groups (roughly, as encoded) in one
/// registrations frame: well under the frame header limit.
const CHUNK_BYTES: usize = 16 * 1024;

/// Splits a full state into frames of at most about [`CHUNK_BYTES`] each,
/// and under half the peer's frame limit `max_frame` (so that any entry,
/// names and tags being at most 1 KiB each and frames at least 4 KiB, fits
/// in one); always at least one (an empty state still replaces the old
/// one).
fn chunks(
    names: Vec<NameWire>,
    groups: Vec<GroupWire>,
    max_frame: usize,
) -> Vec<(Vec<NameWire>, Vec<GroupWire>)> {
    let limit = CHUNK_BYTES.min(max_frame / 2);
    let mut out = vec![(Vec::new(), Vec::new())];
    let mut size = 0;
    let mut room = |n: usize, out: &mut Vec<(Vec<NameWire>, Vec<GroupWire>)>| {
        if size + n > limit && size > 0 {
            out.push((Vec::new(), Vec::new()));
            size = 0;
        }
        size += n;
    };
    for w in names {
        room(w.name.len() + w.tag.len() + 24, &mut out);
        if let Some(last) = out.last_mut() {
            last.0.push(w);
        }
    }
    for g in groups {
        room(g.group.len() + g.tag.len() + 24, &mut out);
        if let Some(last) = out.last_mut() {
            last.1.push(g);
        }
    }
    out
}

/// The longest name or group name.
pub const MAX_GLOBAL_NAME: usize = 1024;

fn check_global(name: &str) -> Result<(), ClusterError> {
    if name.is_empty() || name.len() > MAX_GLOBAL_NAME {
        return Err(ClusterError::InvalidName(format!(
            "a name or group must be 1 to {MAX_GLOBAL_NAME} bytes, not {}",
            name.len()
        )));
    }
    Ok(())
}

impl Node {
    /// Registers `actor` under `name` across the cluster: every node's
    /// [`whereis`](Self::whereis) and [`named`](Self::named) find it here.
    /// The name is released when the actor ends, on
    /// [`unregister`](Self::unregister), or when this node leaves or goes
    /// down (as other nodes see it).
    ///
    /// # Errors
    ///
    /// [`ClusterError::NameTaken`] if another node (or this one) holds the
    /// name in this node's view; [`ClusterError::InvalidName`] for a name
    /// of 0 or more than 1024 bytes.
    pub fn register<M: RemoteMessage>(
        &self,
        name: &str,
        actor: ActorRef<M>,
    ) -> Result<(), ClusterError> {
        self.inner
            .register_local(name, Local::Actor(actor.clone()), |export| {
                self.inner.registry.export(export, actor)
            })
    }

    /// Registers a supervised child under `name` across the cluster; the
    /// name follows the child across restarts (while it restarts, messages
    /// are refused as for [`export_child`](Self::export_child)).
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn register_child<M: RemoteMessage>(
        &self,
        name: &str,
        child: ChildRef<M>,
    ) -> Result<(), ClusterError> {
        self.inner
            .register_local(name, Local::Child(child.clone()), |export| {
                self.inner.registry.export_child(export, child)
            })
    }

    /// Releases a name this node holds; returns whether it held it.
    pub fn unregister(&self, name: &str) -> bool {
        self.inner.unregister_local(name)
    }

    /// The node holding `name`, from this node's replicated view (no round
    /// trip).
    pub fn whereis(&self, name: &str) -> Option<String> {
        lock!(self.inner.view.lock())
            .whereis(name)
            .map(|h| h.node.clone())
    }

    /// A handle to whoever holds `name` when a message is sent: it
    /// resolves the name at each send, so it follows a re-registration on
    /// another node.
    pub fn named<M: RemoteMessage>(&self, name: &str) -> NamedRef<M> {
        NamedRef {
            node: self.inner.clone(),
            name: name.to_string(),
            remotes: Arc::new(DashMap::new()),
            _msg: PhantomData,
        }
    }

    /// Adds `actor` to `group` across the cluster; it leaves the group when
    /// it ends, on [`leave_group`](Self::leave_group), or with its node.
    /// An actor may be in several groups. Returns its membership id.
    ///
    /// # Errors
    ///
    /// [`ClusterError::InvalidName`] for a group name of 0 or more than
    /// 1024 bytes.
    pub fn join_group<M: RemoteMessage>(
        &self,
        group: &str,
        actor: ActorRef<M>,
    ) -> Result<u64, ClusterError> {
        self.join_group_weighted(group, actor, 1)
    }

    /// Adds `actor` to `group` with a share of `weight` (at least 1) under
    /// [`GroupRouting::Weighted`]; the other routings ignore it.
    ///
    /// # Errors
    ///
    /// As [`join_group`](Self::join_group).
    pub fn join_group_weighted<M: RemoteMessage>(
        &self,
        group: &str,
        actor: ActorRef<M>,
        weight: u32,
    ) -> Result<u64, ClusterError> {
        self.inner.join_local(
            group,
            M::TAG,
            weight,
            Local::Actor(actor.clone()),
            |export| self.inner.registry.export(export, actor),
        )
    }

    /// Adds a supervised child to `group`, following its restarts.
    ///
    /// # Errors
    ///
    /// As [`join_group`](Self::join_group).
    pub fn join_group_child<M: RemoteMessage>(
        &self,
        group: &str,
        child: ChildRef<M>,
    ) -> Result<u64, ClusterError> {
        self.inner
            .join_local(group, M::TAG, 1, Local::Child(child.clone()), |export| {
                self.inner.registry.export_child(export, child)
            })
    }

    /// Makes a local pool a member of `group`: a [`GroupRef`] then
    /// load-balances over the pools of every node (a cluster pool), and
    /// each pool routes among its own workers. A message the pool refuses
    /// (stopped, no worker left) is refused to a remote sender as
    /// [`Refusal::NotRunning`] and handed back to a local one.
    ///
    /// # Errors
    ///
    /// As [`join_group`](Self::join_group).
    pub fn export_pool<M: RemoteMessage>(
        &self,
        group: &str,
        pool: &PoolRef<M>,
    ) -> Result<u64, ClusterError> {
        self.inner
            .join_local(group, M::TAG, 1, Local::Pool(pool.clone()), |export| {
                self.inner.registry.export_pool(export, pool.clone())
            })
    }

    /// Removes the membership `id` (from [`join_group`](Self::join_group));
    /// returns whether it existed.
    pub fn leave_group(&self, id: u64) -> bool {
        self.inner.leave_local(id)
    }

    /// A handle to `group`'s members of type `M`, across the cluster.
    pub fn group<M: RemoteMessage>(&self, group: &str) -> GroupRef<M> {
        GroupRef {
            node: self.inner.clone(),
            group: group.to_string(),
            routing: GroupRouting::RoundRobin,
            next: Arc::new(AtomicUsize::new(0)),
            remotes: Arc::new(DashMap::new()),
            in_flight: Arc::new(DashMap::new()),
            members_cache: Arc::new(std::sync::RwLock::new(None)),
            _msg: PhantomData,
        }
    }
}

impl NodeInner {
    // Ordering: every change of this node's own entries is made, and
    // announced to the peers, under the view lock; so is a full-state
    // announcement to a new session. Announcements therefore reach each
    // peer in the order the view changed. Exporting the actor happens
    // outside the lock: a stopped actor's export ends at once and its hook
    // releases the entry (under the lock), which the caller then sees.

    fn register_local<M: RemoteMessage>(
        &self,
        name: &str,
        local: Local<M>,
        export: impl FnOnce(&str) -> Result<(), ClusterError>,
    ) -> Result<(), ClusterError> {
        check_global(name)?;
        check_name(M::TAG)?;
        let at = now_ms();
        let local: Arc<dyn Any + Send + Sync> = Arc::new(local);
        {
            let mut view = lock!(self.view.lock());
            view.register(name, M::TAG, at)
                .map_err(|node| ClusterError::NameTaken {
                    name: name.to_string(),
                    node,
                })?;
            lock!(self.locals.lock())
                .names
                .insert(name.to_string(), local.clone());
        }
        let exported = export(&name_export(name));
        let view = lock!(self.view.lock());
        let mut locals = lock!(self.locals.lock());
        let still_ours = locals
            .names
            .get(name)
            .is_some_and(|l| Arc::ptr_eq(l, &local));
        match exported {
            Ok(()) if still_ours => {
                drop(locals);
                self.broadcast(&Frame::NameAdded(NameWire {
                    name: name.to_string(),
                    tag: M::TAG.to_string(),
                    at,
                }));
                drop(view);
                tracing::debug!(node = %self.name, %name, "registered");
                Ok(())
            }
            Ok(()) => {
                // Lost while it was exported: the actor ended (its hook
                // released the name), or a peer's earlier registration won
                // the name. Either way the export we made must go.
                drop(locals);
                self.registry.unexport(&name_export(name));
                match view.whereis(name) {
                    Some(h) if h.node != self.name => Err(ClusterError::NameTaken {
                        name: name.to_string(),
                        node: h.node.clone(),
                    }),
                    _ => Err(ClusterError::Refused {
                        peer: self.name.clone(),
                        actor: name.to_string(),
                        refusal: Refusal::ActorStopped,
                    }),
                }
            }
            Err(e) => {
                if still_ours {
                    locals.names.remove(name);
                    drop(locals);
                    let mut view = view;
                    view.unregister(&self.name, name);
                    // A full state sent meanwhile may have listed it.
                    self.broadcast(&Frame::NameRemoved {
                        name: name.to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    pub(crate) fn unregister_local(&self, name: &str) -> bool {
        let mut view = lock!(self.view.lock());
        let held = view.unregister(&self.name, name);
        lock!(self.locals.lock()).names.remove(name);
        if held {
            self.registry.unexport(&name_export(name));
            self.broadcast(&Frame::NameRemoved {
                name: name.to_string(),
            });
        }
        held
    }

    fn join_local<M: RemoteMessage>(
        &self,
        group: &str,
        tag: &'static str,
        weight: u32,
        local: Local<M>,
        export: impl FnOnce(&str) -> Result<(), ClusterError>,
    ) -> Result<u64, ClusterError> {
        check_global(group)?;
        check_name(tag)?;
        let local: Arc<dyn Any + Send + Sync> = Arc::new(local);
        let id = {
            let _view = lock!(self.view.lock());
            let mut locals = lock!(self.locals.lock());
            if locals.next_id == 0 {
                // Ids differ between incarnations, so that a peer's stale
                // view of an old incarnation's member never reaches another.
                locals.next_id = rand::random::<u64>() >> 16;
            }
            locals.next_id += 1;
            let id = locals.next_id;
            locals.members.insert(id, (group.to_string(), local));
            id
        };
        let exported = export(&group_export(id));
        let mut view = lock!(self.view.lock());
        let still_ours = lock!(self.locals.lock()).members.contains_key(&id);
        match exported {
            Ok(()) if still_ours => {
                let wire = GroupWire {
                    group: group.to_string(),
                    id,
                    tag: tag.to_string(),
                    weight: weight.max(1),
                };
                view.joined(&self.name, &wire);
                self.broadcast(&Frame::GroupJoined(wire));
                Ok(id)
            }
            Ok(()) => Err(ClusterError::Refused {
                peer: self.name.clone(),
                actor: group.to_string(),
                refusal: Refusal::ActorStopped,
            }),
            Err(e) => {
                lock!(self.locals.lock()).members.remove(&id);
                Err(e)
            }
        }
    }

    pub(crate) fn leave_local(&self, id: u64) -> bool {
        let mut view = lock!(self.view.lock());
        let Some((group, _)) = lock!(self.locals.lock()).members.remove(&id) else {
            return false;
        };
        view.left_group(&self.name, &group, id);
        self.registry.unexport(&group_export(id));
        self.broadcast(&Frame::GroupLeft { group, id });
        true
    }

    /// Announces that membership `id` leaves its group while its actor
    /// stays reachable (a leaving entity host passes on what still reaches
    /// it); [`leave_local`](Self::leave_local) or the actor's end removes
    /// the rest.
    pub(crate) fn withdraw_local(&self, id: u64) -> bool {
        let mut view = lock!(self.view.lock());
        let Some(group) = lock!(self.locals.lock())
            .members
            .get(&id)
            .map(|(g, _)| g.clone())
        else {
            return false;
        };
        view.left_group(&self.name, &group, id);
        self.broadcast(&Frame::GroupLeft { group, id });
        true
    }

    /// An export of ours ended (its actor stopped): release the name or
    /// membership behind it.
    pub(crate) fn export_ended(&self, export: &str) {
        if let Some(name) = export.strip_prefix("\u{1}global:") {
            self.unregister_local(name);
        } else if let Some(id) = export
            .strip_prefix("\u{1}group:")
            .and_then(|id| id.parse().ok())
        {
            self.leave_local(id);
        }
    }

    /// Sends this node's full state of names and groups on a new session
    /// (in frames of bounded size; the first replaces what the peer had).
    pub(crate) fn send_registrations(&self, link: &Link) {
        let view = lock!(self.view.lock());
        let (names, groups) = view.own();
        let mut first = true;
        for (names, groups) in chunks(names, groups, link.max_frame) {
            link.send_plain(&Frame::Registrations {
                first,
                names,
                groups,
            });
            first = false;
        }
        drop(view);
    }

    /// A peer's registration frame.
    pub(crate) fn on_registrations(&self, peer: &str, frame: Frame) {
        let mut view = lock!(self.view.lock());
        let conflicts = match frame {
            Frame::Registrations {
                first: true,
                names,
                groups,
            } => view.replace(peer, &names, &groups),
            Frame::Registrations {
                first: false,
                names,
                groups,
            } => {
                for g in &groups {
                    view.joined(peer, g);
                }
                names
                    .iter()
                    .filter_map(|w| view.announced(peer, w))
                    .collect()
            }
            Frame::NameAdded(w) => view.announced(peer, &w).into_iter().collect(),
            Frame::NameRemoved { name } => {
                view.unregister(peer, &name);
                Vec::new()
            }
            Frame::GroupJoined(w) => {
                view.joined(peer, &w);
                Vec::new()
            }
            Frame::GroupLeft { group, id } => {
                view.left_group(peer, &group, id);
                Vec::new()
            }
            _ => Vec::new(),
        };
        for c in conflicts {
            self.settle(c);
        }
        drop(view);
    }

    /// Reports a name conflict (called under the view lock); if this node
    /// lost, it gives the name up (the actor keeps running).
    fn settle(&self, c: Conflict) {
        tracing::warn!(node = %self.name, name = %c.name, winner = %c.winner, loser = %c.loser, "name registered on two nodes; the earlier registration keeps it");
        if c.loser == self.name {
            lock!(self.locals.lock()).names.remove(&c.name);
            self.registry.unexport(&name_export(&c.name));
            self.broadcast(&Frame::NameRemoved {
                name: c.name.clone(),
            });
        }
        self.events.emit(NodeEvent::NameConflict {
            name: c.name,
            winner: c.winner,
            loser: c.loser,
        });
    }

    /// A member went down or left: its entries vanish from the view.
    pub(crate) fn forget_entries_of(&self, peer: &str) {
        lock!(self.view.lock()).node_gone(peer);
    }

    /// The local actor behind this node's name `name`, as an `M` target.
    fn local_name(&self, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        lock!(self.locals.lock()).names.get(name).cloned()
    }
}

/// Calls a local actor with a [`RemoteReply`] bound to this caller; the
/// answer crosses as bytes, as it would between nodes.
pub(crate) async fn local_call<M, T, F>(
    node: &NodeInner,
    what: &str,
    any: &Arc<dyn Any + Send + Sync>,
    build: F,
    timeout: Duration,
) -> Result<T, ClusterError>
where
    M: RemoteMessage,
    T: Serialize + DeserializeOwned + Send + 'static,
    F: FnOnce(RemoteReply<T>) -> M,
{
    let refused = |refusal| ClusterError::Refused {
        peer: node.name.clone(),
        actor: what.to_string(),
        refusal,
    };
    let local = any
        .downcast_ref::<Local<M>>()
        .ok_or_else(|| refused(Refusal::ActorStopped))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    if let Err(msg) = local.cast(build(RemoteReply::local(tx))) {
        // The port inside the message must not answer: the error does.
        drop_disarmed(msg);
        return Err(refused(Refusal::ActorStopped));
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(Ok(bytes))) => {
            wire::decode_payload_with(&bytes, &node.config.decode_limits).map_err(|reason| {
                ClusterError::Decode {
                    peer: node.name.clone(),
                    actor: what.to_string(),
                    reason,
                }
            })
        }
        Ok(Ok(Err(refusal))) => Err(refused(refusal)),
        Ok(Err(_)) => Err(refused(Refusal::ReplyDropped)),
        Err(_) => Err(ClusterError::Timeout {
            peer: node.name.clone(),
            actor: what.to_string(),
            after: timeout,
        }),
    }
}

/// Where one send goes.
pub(crate) enum Target<M: RemoteMessage> {
    Local(Arc<dyn Any + Send + Sync>),
    Remote(RemoteRef<M>),
}

impl<M: RemoteMessage> Target<M> {
    /// Casts `msg` to the target, known to others as `what`.
    pub(crate) fn cast(
        &self,
        node: &NodeInner,
        what: &str,
        msg: M,
    ) -> Result<(), RemoteCastError<M>> {
        let stopped = |node: &str| ClusterError::Refused {
            peer: node.to_string(),
            actor: what.to_string(),
            refusal: Refusal::ActorStopped,
        };
        match self {
            Target::Local(any) => match any.downcast_ref::<Local<M>>() {
                Some(local) => match local.cast(msg) {
                    Ok(()) => Ok(()),
                    Err(Some(m)) => Err(RemoteCastError::new(stopped(&node.name), m)),
                    Err(None) => {
                        // Consumed by a mailbox that closed under the send:
                        // a dead letter, never silent.
                        node.events.dead_letter(RemoteDeadLetter::new(
                            &node.name,
                            what.to_string(),
                            M::TAG.to_string(),
                            UndeliveredReason::Refused(Refusal::ActorStopped),
                            None,
                        ));
                        Ok(())
                    }
                },
                None => Err(RemoteCastError::new(stopped(&node.name), msg)),
            },
            Target::Remote(r) => r.cast(msg),
        }
    }
}

/// A handle to whoever holds a cluster-wide name, resolved at each send;
/// from [`Node::named`].
pub struct NamedRef<M> {
    node: Arc<NodeInner>,
    name: String,
    /// The remote handle for each holder node met, built once.
    remotes: Arc<DashMap<String, RemoteRef<M>>>,
    _msg: PhantomData<fn(M)>,
}

impl<M> Clone for NamedRef<M> {
    fn clone(&self) -> Self {
        NamedRef {
            node: self.node.clone(),
            name: self.name.clone(),
            remotes: self.remotes.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M: RemoteMessage> std::fmt::Debug for NamedRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedRef")
            .field("name", &self.name)
            .field("tag", &M::TAG)
            .finish()
    }
}

impl<M: RemoteMessage> NamedRef<M> {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn resolve(&self) -> Result<Target<M>, ClusterError> {
        // The common case (a holder met before) reads the view without
        // copying anything out of it: this runs on every send.
        let holder = {
            let view = lock!(self.node.view.lock());
            let held = view
                .whereis(&self.name)
                .ok_or_else(|| ClusterError::NotRegistered {
                    name: self.name.clone(),
                })?;
            if held.tag == M::TAG && held.node != self.node.name {
                if let Some(r) = self.remotes.get(held.node.as_str()) {
                    return Ok(Target::Remote(r.clone()));
                }
            }
            held.clone()
        };
        if holder.tag != M::TAG {
            return Err(ClusterError::Refused {
                peer: holder.node,
                actor: self.name.clone(),
                refusal: Refusal::TagMismatch {
                    expected: holder.tag,
                    found: M::TAG.to_string(),
                },
            });
        }
        if holder.node == self.node.name {
            return self
                .node
                .local_name(&self.name)
                .map(Target::Local)
                .ok_or_else(|| ClusterError::NotRegistered {
                    name: self.name.clone(),
                });
        }
        let peer = self
            .node
            .peer(&holder.node)
            .ok_or_else(|| ClusterError::NotConnected {
                peer: holder.node.clone(),
            })?;
        let remote = RemoteRef::new(peer, &name_export(&self.name));
        self.remotes.insert(holder.node, remote.clone());
        Ok(Target::Remote(remote))
    }

    /// Sends `msg` to the name's current holder.
    ///
    /// # Errors
    ///
    /// Hands `msg` back with [`ClusterError::NotRegistered`] if nobody
    /// holds the name, or with the error of the cast to the holder (see
    /// [`RemoteRef::cast`]).
    pub fn cast(&self, msg: M) -> Result<(), RemoteCastError<M>> {
        match self.resolve() {
            Ok(target) => target.cast(&self.node, &self.name, msg),
            Err(e) => Err(RemoteCastError::new(e, msg)),
        }
    }

    /// Calls the name's current holder, on this node or another, and
    /// waits up to `timeout` for the answer.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotRegistered`] if nobody holds the name; the
    /// errors of [`RemoteRef::call`].
    pub async fn call<T, F>(&self, build: F, timeout: Duration) -> Result<T, ClusterError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(RemoteReply<T>) -> M,
    {
        match self.resolve()? {
            Target::Remote(r) => r.call(build, timeout).await,
            Target::Local(any) => local_call(&self.node, &self.name, &any, build, timeout).await,
        }
    }
}

/// The bounded-load factor of keyed group routing: a member may hold up to
/// 1.25 × the average of the calls in flight before keys pass it by.
const BOUNDED_LOAD: f64 = 1.25;

/// How a [`GroupRef`] picks a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupRouting {
    /// Cyclic over the members (the default).
    RoundRobin,
    /// Uniform at random.
    Random,
    /// The less loaded of two members drawn at random (power of two
    /// choices), by the calls this node has in flight to each.
    LeastLoaded,
    /// At random, each member in proportion to its weight
    /// ([`Node::join_group_weighted`]; 1 by default).
    Weighted,
}

/// A handle to a process group across the cluster; from [`Node::group`].
///
/// Members on nodes that are down are skipped at once (their entries leave
/// the view with the node). Keyed sends use rendezvous hashing with bounded
/// loads: a key moves only when its member leaves, or while its member holds
/// more than 1.25 × the average of this node's calls in flight.
///
/// | routing | picks |
/// |---|---|
/// | [`RoundRobin`](GroupRouting::RoundRobin) (default) | cyclically over the members |
/// | [`Random`](GroupRouting::Random) | uniformly |
/// | [`Weighted`](GroupRouting::Weighted) | at random in proportion to each member's weight |
/// | [`LeastLoaded`](GroupRouting::LeastLoaded) | the less loaded of two random members, by this node's calls in flight |
/// | `cast_keyed` | the key's owner (rendezvous hashing, bounded loads) |
pub struct GroupRef<M> {
    node: Arc<NodeInner>,
    group: String,
    routing: GroupRouting,
    next: Arc<AtomicUsize>,
    /// The remote handle of each member met, built once.
    remotes: Arc<DashMap<GroupMember, RemoteRef<M>>>,
    /// Calls in flight from this handle (and its clones) to each member.
    in_flight: Arc<DashMap<GroupMember, u64>>,
    /// The group's members as last read, with the view's group generation
    /// then: reused while the generation is unchanged (no view lock per
    /// send).
    members_cache: Arc<std::sync::RwLock<Option<(u64, Snapshot)>>>,
    _msg: PhantomData<fn(M)>,
}

impl<M> Clone for GroupRef<M> {
    fn clone(&self) -> Self {
        GroupRef {
            node: self.node.clone(),
            group: self.group.clone(),
            routing: self.routing,
            next: self.next.clone(),
            remotes: self.remotes.clone(),
            in_flight: self.in_flight.clone(),
            members_cache: self.members_cache.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M: RemoteMessage> std::fmt::Debug for GroupRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRef")
            .field("group", &self.group)
            .field("routing", &self.routing)
            .finish()
    }
}

/// A member of a group, from [`GroupRef::members`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    /// The node it runs on.
    pub node: String,
    /// Its membership id on that node.
    pub id: u64,
}

impl<M: RemoteMessage> GroupRef<M> {
    /// The same group with another routing.
    #[must_use]
    pub fn routing(mut self, routing: GroupRouting) -> Self {
        self.routing = routing;
        self
    }

    /// The group's members taking `M`, in the same order on every node.
    pub fn members(&self) -> Vec<GroupMemberInfo> {
        self.live_members()
            .iter()
            .map(|m| GroupMemberInfo {
                node: m.node.clone(),
                id: m.id,
            })
            .collect()
    }

    pub(crate) fn live_snapshot(&self) -> Snapshot {
        // Read before the view: a change after this read bumps it again, so
        // a snapshot is never kept under a newer generation than its own.
        let generation = self.node.groups_generation.load(Ordering::Acquire);
        if let Some((cached, snapshot)) = lock!(self.members_cache.read()).as_ref() {
            if *cached == generation {
                return snapshot.clone();
            }
        }
        let snapshot = lock!(self.node.view.lock()).snapshot(&self.group, M::TAG);
        *lock!(self.members_cache.write()) = Some((generation, snapshot.clone()));
        snapshot
    }

    fn live_members(&self) -> Arc<[GroupMember]> {
        self.live_snapshot().0
    }

    pub(crate) fn target(&self, m: &GroupMember) -> Result<Target<M>, ClusterError> {
        if m.node == self.node.name {
            return lock!(self.node.locals.lock())
                .members
                .get(&m.id)
                .map(|(_, any)| Target::Local(any.clone()))
                .ok_or_else(|| ClusterError::NoGroupMember {
                    group: self.group.clone(),
                });
        }
        if let Some(r) = self.remotes.get(m) {
            return Ok(Target::Remote(r.clone()));
        }
        let peer = self
            .node
            .peer(&m.node)
            .ok_or_else(|| ClusterError::NotConnected {
                peer: m.node.clone(),
            })?;
        let remote = RemoteRef::new(peer, &group_export(m.id));
        self.remotes.insert(m.clone(), remote.clone());
        Ok(Target::Remote(remote))
    }

    fn pick(&self, members: &[GroupMember], weights: &[u32], key: Option<u64>) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        if let Some(k) = key {
            return self.keyed(k, members);
        }
        match self.routing {
            GroupRouting::Weighted => {
                let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
                let mut ticket = rand::random_range(0..total.max(1));
                weights.iter().position(|w| {
                    let w = u64::from(*w);
                    if ticket < w {
                        true
                    } else {
                        ticket -= w;
                        false
                    }
                })
            }
            GroupRouting::RoundRobin => {
                Some(self.next.fetch_add(1, Ordering::Relaxed) % members.len())
            }
            GroupRouting::Random => Some(rand::random_range(0..members.len())),
            GroupRouting::LeastLoaded => {
                let loads: Vec<WorkerLoad> = members
                    .iter()
                    .map(|m| WorkerLoad::up(self.in_flight.get(m).map(|n| *n).unwrap_or(0)))
                    .collect();
                power_of_two_choices(&loads[..], &mut rand::rng())
            }
        }
    }

    /// The member owning `key`: rendezvous hashing with bounded loads
    /// (a member with more than ⌈1.25 × the average⌉ of this node's calls
    /// in flight passes the key to the next in the key's order).
    fn keyed(&self, key: u64, members: &[GroupMember]) -> Option<usize> {
        if self.in_flight.is_empty() {
            return rendezvous(key, members);
        }
        let load = |m: &GroupMember| self.in_flight.get(m).map(|n| *n).unwrap_or(0);
        let total: u64 = members.iter().map(load).sum();
        let bound = ((total + 1) as f64 * BOUNDED_LOAD / members.len() as f64).ceil() as u64;
        let order = rendezvous_order(key, members);
        order
            .iter()
            .copied()
            .find(|&i| load(&members[i]) < bound)
            .or_else(|| order.first().copied())
    }

    fn send(&self, key: Option<u64>, msg: M) -> Result<(), RemoteCastError<M>> {
        let (members, weights) = self.live_snapshot();
        let Some(i) = self.pick(&members, &weights, key) else {
            return Err(RemoteCastError::new(
                ClusterError::NoGroupMember {
                    group: self.group.clone(),
                },
                msg,
            ));
        };
        if let Some(remote) = self.remotes.get(&members[i]) {
            return remote.cast(msg);
        }
        match self.target(&members[i]) {
            Ok(t) => t.cast(&self.node, &self.group, msg),
            Err(e) => Err(RemoteCastError::new(e, msg)),
        }
    }

    /// Sends `msg` to one member chosen by the routing.
    ///
    /// # Errors
    ///
    /// Hands `msg` back with [`ClusterError::NoGroupMember`] if the group
    /// has no member taking `M`, or with the error of the cast to the
    /// chosen member.
    pub fn cast(&self, msg: M) -> Result<(), RemoteCastError<M>> {
        self.send(None, msg)
    }

    /// Sends `msg` to the member that owns `key` (rendezvous hashing: the
    /// same key goes to the same member while it is in the group).
    ///
    /// # Errors
    ///
    /// As [`cast`](Self::cast).
    pub fn cast_keyed<K: Hash + ?Sized>(&self, key: &K, msg: M) -> Result<(), RemoteCastError<M>> {
        self.send(Some(hash_key(key)), msg)
    }

    /// Sends a copy of `msg` to every member; returns how many took it.
    pub fn broadcast(&self, msg: M) -> usize
    where
        M: Clone,
    {
        self.live_members()
            .iter()
            .filter(|m| {
                self.target(m)
                    .map(|t| t.cast(&self.node, &self.group, msg.clone()).is_ok())
                    .unwrap_or(false)
            })
            .count()
    }

    /// Calls one member chosen by the routing, on this node or another,
    /// and waits up to `timeout` for the answer.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoGroupMember`] if no member takes `M`; the errors
    /// of [`RemoteRef::call`].
    pub async fn call<T, F>(&self, build: F, timeout: Duration) -> Result<T, ClusterError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(RemoteReply<T>) -> M,
    {
        let (members, weights) = self.live_snapshot();
        let i = self
            .pick(&members, &weights, None)
            .ok_or_else(|| ClusterError::NoGroupMember {
                group: self.group.clone(),
            })?;
        let member = members[i].clone();
        let target = self.target(&member)?;
        /// Counts the call in flight until it ends, however it ends.
        struct InFlight<'a>(&'a DashMap<GroupMember, u64>, GroupMember);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                if let Some(mut n) = self.0.get_mut(&self.1) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        *self.in_flight.entry(member.clone()).or_insert(0) += 1;
        let _counted = InFlight(&self.in_flight, member);
        match target {
            Target::Remote(remote) => remote.call(build, timeout).await,
            Target::Local(any) => local_call(&self.node, &self.group, &any, build, timeout).await,
        }
    }
}
