//! Sharded entities and cluster singletons: actors that start on whichever
//! node owns them, move when that node dies, joins or leaves, and bring
//! their state with them through checkpoints (Akka Cluster Sharding and
//! Singleton, Orleans' virtual actors). The rules are in DESIGN.md §10.
//!
//! - [`Node::register_kind`] names an actor that can start anywhere: on
//!   every node, the same kind name maps to a factory.
//! - [`Node::entities`] makes this node a host of an entity type;
//!   [`Node::entity`] returns an [`EntityRef`] that reaches the key's actor
//!   wherever it runs. The owner of a key is the first of the hosts in the
//!   key's rendezvous order ([`placement`](super::placement)); it starts
//!   the actor on the first message (from the latest checkpoint), and
//!   may passivate it when idle.
//! - [`Node::singleton`] runs one instance cluster-wide on the oldest host;
//!   [`Node::singleton_ref`] reaches it.
//!
//! How a key changes hands, so that nothing acknowledged is lost and no
//! two copies run on nodes that can reach each other:
//! - Activation: before starting a key, the new owner asks every other
//!   reachable host to hand it over. A host running it stops taking
//!   messages for it, lets the actor finish its mailbox and save its
//!   checkpoint, stops it, and only then answers; the messages that came
//!   meanwhile follow, in order, to the new owner. A host that is itself
//!   starting the key answers "busy" and the asker retries shortly.
//! - A host that cannot be asked because it is down is skipped; a host that
//!   is up but does not answer in time makes the activation fail (and be
//!   retried), rather than risk a second copy.
//! - Keep-majority downing: a node that reaches fewer than half of the
//!   members it knows (exactly half: the half holding the smallest name
//!   survives) stops its entities and singletons, saves nothing and starts
//!   nothing until it is back in the majority.
//! - Messages for a key being started or handed over are held in order,
//!   up to [`EntitySpec::max_held`]; past that, and when a start fails for
//!   good, they become dead letters (a call's caller gets a refusal).
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::cluster::{EntitySpec, Node, NodeConfig, RemoteReply};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
//! enum Account {
//!     Deposit(u64, RemoteReply<u64>),
//! }
//!
//! struct AccountActor;
//! impl Actor for AccountActor {
//!     type Msg = Account;
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Account>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: ActorRef<Account>, msg: Account, balance: &mut u64) -> Result<(), ActorProcessingErr> {
//!         let Account::Deposit(n, reply) = msg;
//!         *balance += n;
//!         reply.send(*balance); // sent once the new balance is replicated
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let a = Node::start(NodeConfig::new("a").cookie("secret")).await?;
//! a.register_kind("account", |_key: &str| AccountActor)?;
//! a.entities(EntitySpec::new("accounts", "account")).await?;
//!
//! let alice = a.entity::<Account>("accounts", "alice");
//! let balance = alice.call(|r| Account::Deposit(5, r), Duration::from_secs(5)).await?;
//! assert_eq!(balance, 5);
//! # a.shutdown().await; Ok(()) }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorRef};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::entity_host::{start_host, AnyMessage, HostMsg, LeaveFn};
use super::error::{ClusterError, RemoteCastError};
use super::global::{local_call, GroupRef, Target};
use super::message::RemoteMessage;
use super::names::GroupMember;
use super::node::{Node, NodeInner};
use super::placement;
use super::remote_ref::{drop_disarmed, RemoteReply};
use crate::checkpoint::{CheckpointPolicy, CheckpointStore, Checkpointed};

/// The group an entity type's hosts join.
pub(crate) fn host_group(ty: &str) -> String {
    format!("\u{1}entities:{ty}")
}

/// A singleton's entity type and its one key.
fn singleton_type(name: &str) -> String {
    format!("\u{1}singleton:{name}")
}

/// How a type's owner is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Rendezvous hashing of (type, key) over the hosts.
    Rendezvous,
    /// The oldest host (smallest incarnation, then name).
    Oldest,
}

// ---------------------------------------------------------------------------
// Specs

/// An entity type hosted on this node; from [`EntitySpec::new`], given to
/// [`Node::entities`] on every node that should host it.
#[derive(Debug, Clone)]
pub struct EntitySpec {
    pub(crate) ty: String,
    pub(crate) kind: String,
    pub(crate) args: Vec<u8>,
    pub(crate) policy: CheckpointPolicy,
    pub(crate) replicas: usize,
    pub(crate) passivate_after: Option<Duration>,
    pub(crate) max_held: usize,
    pub(crate) timeout: Duration,
    pub(crate) fresh_when_lost: bool,
    pub(crate) placement: Placement,
}

impl EntitySpec {
    /// A singleton's one key (its name); empty for an entity type.
    pub(crate) fn singleton_key(&self) -> String {
        self.ty
            .strip_prefix("\u{1}singleton:")
            .unwrap_or_default()
            .to_owned()
    }

    /// Entities of type `ty`, each an actor of `kind` (registered with
    /// [`Node::register_kind`]). Defaults: arguments `()`, a checkpoint
    /// after every message with replies held until it is replicated, one
    /// replica, no passivation, 10,000 held messages per key, 2 s for each
    /// exchange between hosts.
    pub fn new(ty: impl Into<String>, kind: impl Into<String>) -> Self {
        EntitySpec {
            ty: ty.into(),
            kind: kind.into(),
            args: Vec::new(),
            policy: CheckpointPolicy::EveryMessage,
            replicas: 1,
            passivate_after: None,
            max_held: 10_000,
            timeout: Duration::from_secs(2),
            fresh_when_lost: false,
            placement: Placement::Rendezvous,
        }
    }

    /// The actor's start arguments (its `Arguments`, the same for every
    /// key), encoded now and decoded by the kind at each start.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Encode`] if they do not encode.
    pub fn args<T: Serialize>(mut self, args: &T) -> Result<Self, ClusterError> {
        self.args =
            crate::checkpoint::encode_state(&self.ty, args).map_err(|e| ClusterError::Encode {
                actor: self.ty.clone(),
                reason: super::wire::WireError::Malformed(e.to_string()),
            })?;
        Ok(self)
    }

    /// When the entities save their state (default: after every message).
    pub fn checkpoint(mut self, policy: CheckpointPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How many other hosts keep each checkpoint (default 1; fewer when
    /// fewer other hosts are up).
    pub fn replicas(mut self, k: usize) -> Self {
        self.replicas = k;
        self
    }

    /// Stops an entity (saving its state first) after it has had no
    /// message for `idle`; its next message starts it again.
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.passivate_after = Some(idle);
        self
    }

    /// The most messages held for one key while it starts or moves
    /// (default 10,000); past it they are dead letters.
    pub fn max_held(mut self, n: usize) -> Self {
        self.max_held = n.max(1);
        self
    }

    /// How long one exchange between hosts (hand-over, replica, load) may
    /// take (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether a key whose every checkpoint copy is lost may start from
    /// scratch (default `false`: it is not started, and its messages are
    /// dead letters saying so).
    pub fn fresh_when_lost(mut self, allow: bool) -> Self {
        self.fresh_when_lost = allow;
        self
    }
}

/// A cluster singleton: from [`SingletonSpec::new`], given to
/// [`Node::singleton`] on every node that may run it. Exactly one instance
/// runs, on the oldest reachable such node of the majority side; when that
/// node goes down or leaves, the next oldest starts it from its latest
/// checkpoint.
#[derive(Debug, Clone)]
pub struct SingletonSpec {
    name: String,
    entity: EntitySpec,
}

impl SingletonSpec {
    /// The singleton `name`, an actor of `kind` started with `args`.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Encode`] if the arguments do not encode.
    pub fn new<T: Serialize>(
        name: impl Into<String>,
        kind: impl Into<String>,
        args: &T,
    ) -> Result<Self, ClusterError> {
        let name = name.into();
        let mut entity = EntitySpec::new(singleton_type(&name), kind).args(args)?;
        entity.placement = Placement::Oldest;
        Ok(SingletonSpec { name, entity })
    }

    /// The singleton's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the singleton saves its state (default: after every message).
    pub fn checkpoint(mut self, policy: CheckpointPolicy) -> Self {
        self.entity = self.entity.checkpoint(policy);
        self
    }

    /// How many other nodes keep its checkpoint (default 1).
    pub fn replicas(mut self, k: usize) -> Self {
        self.entity = self.entity.replicas(k);
        self
    }

    /// The most messages held while it moves (default 10,000).
    pub fn max_held(mut self, n: usize) -> Self {
        self.entity = self.entity.max_held(n);
        self
    }

    /// Whether it may start from scratch when every copy of its
    /// checkpoint is lost (default `false`).
    pub fn fresh_when_lost(mut self, allow: bool) -> Self {
        self.entity = self.entity.fresh_when_lost(allow);
        self
    }
}

// ---------------------------------------------------------------------------
// Kinds

pub(crate) type SpawnFn<M> = dyn Fn(
        &str,
        Arc<dyn CheckpointStore>,
        &EntitySpec,
        ActorCell,
    ) -> BoxFuture<'static, Result<ActorRef<M>, String>>
    + Send
    + Sync;

type StartHostFn = dyn Fn(
        Arc<NodeInner>,
        EntitySpec,
    ) -> BoxFuture<'static, Result<(ActorCell, Arc<LeaveFn>), ClusterError>>
    + Send
    + Sync;

/// A registered kind: its message tag and how to start a host for it.
pub(crate) struct KindEntry {
    start_host: Arc<StartHostFn>,
}

/// This node's kinds and hosts.
#[derive(Default)]
pub(crate) struct Migration {
    kinds: HashMap<String, Arc<KindEntry>>,
    /// Entity type → its host actor here.
    hosts: HashMap<String, (ActorCell, Arc<LeaveFn>)>,
    /// Keep-majority's memory of `Down` members.
    downing: Downing,
}

/// Since when each member has been `Down`, and which ones the majority
/// side stopped counting ([`NodeConfig::remove_down_after`](super::NodeConfig::remove_down_after)).
#[derive(Default)]
struct Downing {
    since: HashMap<String, Instant>,
    removed: std::collections::HashSet<String>,
}

impl Node {
    /// Registers `kind`: an actor that can start on this node from a
    /// factory taking the entity's key. Register the same kind on every
    /// node that may run it; a kind registered on some nodes only is placed
    /// only there. The actor's state is checkpointed (`Serialize +
    /// DeserializeOwned`), its arguments travel encoded.
    ///
    /// # Errors
    ///
    /// [`ClusterError::InvalidName`] for an empty or over-long kind name,
    /// [`ClusterError::AlreadyHosted`] if the kind is registered already.
    pub fn register_kind<A, F>(&self, kind: &str, factory: F) -> Result<(), ClusterError>
    where
        A: Actor,
        A::Msg: RemoteMessage,
        A::State: Serialize + DeserializeOwned,
        A::Arguments: DeserializeOwned,
        F: Fn(&str) -> A + Send + Sync + 'static,
    {
        super::registry::check_name(kind)?;
        let factory = Arc::new(factory);
        let spawn: Arc<SpawnFn<A::Msg>> = Arc::new(
            move |key: &str, store: Arc<dyn CheckpointStore>, spec: &EntitySpec, sup: ActorCell| {
                let actor = Checkpointed::new(factory(key), store, key, spec.policy)
                    .fresh_when_lost(spec.fresh_when_lost);
                let args = crate::checkpoint::decode_state::<A::Arguments>(&spec.ty, &spec.args);
                Box::pin(async move {
                    let args = args.map_err(|e| format!("the kind's arguments: {e}"))?;
                    Actor::spawn_linked(None, actor, args, sup)
                        .await
                        .map(|(r, _)| r)
                        .map_err(|e| format!("the actor did not start: {e}"))
                }) as BoxFuture<'static, _>
            },
        );
        let start_host: Arc<StartHostFn> = Arc::new(move |node, spec| {
            let spawn = spawn.clone();
            Box::pin(async move { start_host::<A::Msg>(node, spec, spawn).await })
        });
        let mut m = lock!(self.inner.migration.lock());
        if m.kinds.contains_key(kind) {
            return Err(ClusterError::AlreadyHosted(format!("kind `{kind}`")));
        }
        m.kinds
            .insert(kind.to_owned(), Arc::new(KindEntry { start_host }));
        Ok(())
    }

    /// Makes this node a host of the entity type `spec` names; call it on
    /// every node that should run such entities.
    ///
    /// # Errors
    ///
    /// [`ClusterError::UnknownKind`] if the spec's kind is not registered
    /// here, [`ClusterError::AlreadyHosted`] if the type is hosted already.
    pub async fn entities(&self, spec: EntitySpec) -> Result<(), ClusterError> {
        self.host(spec).await
    }

    /// Runs `spec`'s singleton on this cluster: call it on every node that
    /// may run it. See [`SingletonSpec`].
    ///
    /// # Errors
    ///
    /// As [`entities`](Self::entities).
    pub async fn singleton(&self, spec: SingletonSpec) -> Result<(), ClusterError> {
        self.host(spec.entity).await
    }

    async fn host(&self, spec: EntitySpec) -> Result<(), ClusterError> {
        super::registry::check_name(&spec.ty)?;
        let kind = lock!(self.inner.migration.lock())
            .kinds
            .get(&spec.kind)
            .cloned()
            .ok_or_else(|| ClusterError::UnknownKind {
                kind: spec.kind.clone(),
            })?;
        if lock!(self.inner.migration.lock())
            .hosts
            .contains_key(&spec.ty)
        {
            return Err(ClusterError::AlreadyHosted(spec.ty.clone()));
        }
        let ty = spec.ty.clone();
        let (cell, leave) = (kind.start_host)(self.inner.clone(), spec).await?;
        let mut m = lock!(self.inner.migration.lock());
        if m.hosts.contains_key(&ty) {
            drop(m);
            cell.stop(None);
            return Err(ClusterError::AlreadyHosted(ty));
        }
        m.hosts.insert(ty, (cell, leave));
        Ok(())
    }

    /// The nodes hosting entities of type `ty` that this node reaches (this
    /// one included), sorted by name.
    pub fn entity_hosts(&self, ty: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .group::<HostMsg<AnyMessage>>(&host_group(ty))
            .members()
            .into_iter()
            .map(|m| m.node)
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// A handle to the entity `key` of type `ty`, wherever it runs.
    pub fn entity<M: RemoteMessage>(&self, ty: &str, key: &str) -> EntityRef<M> {
        EntityRef {
            hosts: Hosts::new(self.clone(), ty, Placement::Rendezvous),
            key: key.to_owned(),
            held: Default::default(),
            _msg: PhantomData,
        }
    }

    /// A handle to the singleton `name`, wherever it runs.
    pub fn singleton_ref<M: RemoteMessage>(&self, name: &str) -> EntityRef<M> {
        EntityRef {
            hosts: Hosts::new(self.clone(), &singleton_type(name), Placement::Oldest),
            key: name.to_owned(),
            held: Default::default(),
            _msg: PhantomData,
        }
    }
}

impl NodeInner {
    /// Stops every host on this node, each letting its entities finish
    /// and save first (a planned leave or a shutdown).
    pub(crate) async fn stop_hosts(&self) {
        let leaves: Vec<Arc<LeaveFn>> = {
            let mut m = lock!(self.migration.lock());
            // The factories may hold `Node` clones: dropping them here
            // ends that cycle (the node is shutting down).
            m.kinds.clear();
            m.hosts.drain().map(|(_, (_, leave))| leave).collect()
        };
        // Each host leaves its group, hands its keys over (finishing and
        // saving them), passes on what still reaches it, then stops.
        futures::future::join_all(leaves.iter().map(|leave| leave())).await;
    }

    /// Whether this node may start an entity now: it is in the majority,
    /// has met the cluster it was told to join (its seeds), is connected
    /// to every member it knows of, and has every reachable member's
    /// registrations — so that it knows, and asks, every host that might
    /// run the key.
    pub(crate) fn may_start(&self) -> Result<(), String> {
        use super::membership::MemberStatus as S;
        if !self.has_majority() {
            return Err("this node is on the minority side of a partition".into());
        }
        let members = Node { inner: self.arc() }.members();
        if members.is_empty() && !self.config.seeds.is_empty() {
            return Err("this node is still joining the cluster through its seeds".into());
        }
        if let Some(m) = members.iter().find(|m| m.status == S::Joining) {
            return Err(format!(
                "this node is still connecting to member `{}`",
                m.name
            ));
        }
        let view = lock!(self.view.lock());
        if let Some(m) = members
            .iter()
            .find(|m| matches!(m.status, S::Up | S::Suspect) && !view.is_synced(&m.name))
        {
            return Err(format!(
                "this node is still waiting for member `{}`'s registrations",
                m.name
            ));
        }
        Ok(())
    }

    /// Keep-majority: whether this node reaches more than half of the
    /// members it knows (exactly half with the smallest name).
    pub(crate) fn has_majority(&self) -> bool {
        use super::membership::MemberStatus as S;
        let node = Node { inner: self.arc() };
        let members = node.members();
        let now = Instant::now();
        let mut m = lock!(self.migration.lock());
        let d = &mut m.downing;
        for member in &members {
            match member.status {
                S::Down => {
                    d.since.entry(member.name.clone()).or_insert(now);
                }
                _ => {
                    d.since.remove(&member.name);
                    d.removed.remove(&member.name);
                }
            }
        }
        d.since
            .retain(|name, _| members.iter().any(|m| &m.name == name));
        d.removed
            .retain(|name| members.iter().any(|m| &m.name == name));
        let known: Vec<&str> = members
            .iter()
            .filter(|m| !matches!(m.status, S::Left | S::Joining | S::Leaving))
            .filter(|m| !d.removed.contains(&m.name))
            .map(|m| m.name.as_str())
            .chain(std::iter::once(self.name.as_str()))
            .collect();
        let reachable: Vec<&str> = members
            .iter()
            .filter(|m| matches!(m.status, S::Up | S::Suspect))
            .map(|m| m.name.as_str())
            .chain(std::iter::once(self.name.as_str()))
            .collect();
        let majority = placement::has_majority(&known, &reachable);
        if let (true, Some(after)) = (majority, self.config.remove_down_after) {
            // Only the majority side gives up on members down long enough.
            for (name, since) in &d.since {
                if now.duration_since(*since) >= after && d.removed.insert(name.clone()) {
                    tracing::info!(node = %self.name, member = %name, "down for {after:?}: no longer counted for keep-majority");
                }
            }
        }
        majority
    }
}

// ---------------------------------------------------------------------------
// Hosts of a type

/// The hosts of one entity type, as this node sees them.
pub(crate) struct Hosts<M: RemoteMessage> {
    node: Node,
    ty: String,
    placement: Placement,
    group: GroupRef<HostMsg<M>>,
}

impl<M: RemoteMessage> Clone for Hosts<M> {
    fn clone(&self) -> Self {
        Hosts {
            node: self.node.clone(),
            ty: self.ty.clone(),
            placement: self.placement,
            group: self.group.clone(),
        }
    }
}

impl<M: RemoteMessage> Hosts<M> {
    pub(crate) fn new(node: Node, ty: &str, placement: Placement) -> Self {
        let group = node.group::<HostMsg<M>>(&host_group(ty));
        Hosts {
            node,
            ty: ty.to_owned(),
            placement,
            group,
        }
    }

    pub(crate) fn ty(&self) -> &str {
        &self.ty
    }

    /// The hosts on reachable nodes (this one included).
    pub(crate) fn snapshot(&self) -> Arc<[GroupMember]> {
        self.group.live_snapshot().0
    }

    /// The host owning `key`, by `placement`.
    /// The reachable hosts in `key`'s order: the owner first, then the
    /// hosts its checkpoint replicas go to.
    pub(crate) fn order(&self, key: &str) -> Vec<GroupMember> {
        let hosts = self.snapshot();
        let order = match self.placement {
            Placement::Rendezvous => {
                let nodes: Vec<&str> = hosts.iter().map(|m| m.node.as_str()).collect();
                placement::rank(&self.ty, key, &nodes)
            }
            Placement::Oldest => {
                let members = self.node.members();
                let me = (self.node.inner.name.as_str(), self.node.inner.incarnation());
                let aged: Vec<(&str, u64)> = hosts
                    .iter()
                    .map(|h| {
                        if h.node == me.0 {
                            return me;
                        }
                        let inc = members
                            .iter()
                            .find(|m| m.name == h.node)
                            .map(|m| m.incarnation)
                            .unwrap_or(u64::MAX);
                        (h.node.as_str(), inc)
                    })
                    .collect();
                placement::oldest(&aged)
            }
        };
        order.into_iter().map(|i| hosts[i].clone()).collect()
    }

    /// The host owning `key`.
    pub(crate) fn owner(&self, key: &str) -> Option<GroupMember> {
        if self.placement == Placement::Rendezvous {
            // Every send asks this: no sort, no list of every host.
            let hosts = self.snapshot();
            return placement::owner(&self.ty, key, &hosts).map(|i| hosts[i].clone());
        }
        self.order(key).into_iter().next()
    }

    // The error hands the message back, as every cast here does.
    #[allow(clippy::result_large_err)]
    pub(crate) fn cast(
        &self,
        m: &GroupMember,
        msg: HostMsg<M>,
    ) -> Result<(), RemoteCastError<HostMsg<M>>> {
        match self.group.target(m) {
            Ok(t) => t.cast(&self.node.inner, &self.ty, msg),
            Err(e) => Err(RemoteCastError::new(e, msg)),
        }
    }

    pub(crate) async fn call<T, F>(
        &self,
        m: &GroupMember,
        build: F,
        timeout: Duration,
    ) -> Result<T, ClusterError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(RemoteReply<T>) -> HostMsg<M>,
    {
        match self.group.target(m)? {
            Target::Remote(r) => r.call(build, timeout).await,
            Target::Local(any) => {
                local_call(&self.node.inner, &self.ty, &any, build, timeout).await
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Handles

/// Whether a send failed because the key's owner cannot be reached (it is
/// moving): such casts are held rather than handed back.
fn moving(e: &ClusterError) -> bool {
    matches!(
        e,
        ClusterError::EntityUnavailable { .. }
            | ClusterError::NotConnected { .. }
            | ClusterError::NodeDown { .. }
    )
}

/// A handle to one entity (or a singleton), wherever it runs; from
/// [`Node::entity`] and [`Node::singleton_ref`]. Each send goes to the
/// key's owner in this node's view; the owner starts the actor if needed.
pub struct EntityRef<M: RemoteMessage> {
    hosts: Hosts<M>,
    key: String,
    /// Casts held while no owner can be reached (shared by the clones).
    held: Arc<std::sync::Mutex<HeldCasts<M>>>,
    _msg: PhantomData<fn(M)>,
}

/// Casts an [`EntityRef`] holds, in order, while its key has no reachable
/// owner (it is moving), each with the time it was held.
struct HeldCasts<M> {
    queue: std::collections::VecDeque<(Instant, M)>,
    draining: bool,
}

impl<M> Default for HeldCasts<M> {
    fn default() -> Self {
        HeldCasts {
            queue: Default::default(),
            draining: false,
        }
    }
}

/// The most casts one entity handle holds while its key moves; past it,
/// casts are handed back.
pub const MAX_HELD_CASTS: usize = 10_000;
/// How long a held cast waits for an owner before it is a dead letter.
pub const HOLD_CASTS_FOR: Duration = Duration::from_secs(30);
/// How often held casts are tried again.
const HELD_RETRY: Duration = Duration::from_millis(20);

impl<M: RemoteMessage> Clone for EntityRef<M> {
    fn clone(&self) -> Self {
        EntityRef {
            hosts: self.hosts.clone(),
            key: self.key.clone(),
            held: self.held.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M: RemoteMessage> std::fmt::Debug for EntityRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityRef")
            .field("type", &self.hosts.ty)
            .field("key", &self.key)
            .finish()
    }
}

impl<M: RemoteMessage> EntityRef<M> {
    /// The entity's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The node that owns the key in this node's view (where the next
    /// message goes), if any host is reachable.
    pub fn owner(&self) -> Option<String> {
        self.hosts.owner(&self.key).map(|m| m.node)
    }

    /// The reachable hosts in the key's order as this node sees them: the
    /// owner first, then the nodes that keep its checkpoint (the first `k`
    /// after the owner) and would take it over, in turn.
    pub fn hosts_in_order(&self) -> Vec<String> {
        self.hosts
            .order(&self.key)
            .into_iter()
            .map(|m| m.node)
            .collect()
    }

    /// How errors name this entity: `type/key`, or `singleton NAME`.
    fn display_name(&self) -> String {
        match self.hosts.ty.strip_prefix("\u{1}singleton:") {
            Some(name) => format!("singleton {name}"),
            None => format!("{}/{}", self.hosts.ty, self.key),
        }
    }

    /// `e` with the entity's name in place of its host's internal one.
    fn named(&self, e: ClusterError) -> ClusterError {
        let name = self.display_name();
        match e {
            ClusterError::Refused { peer, refusal, .. } => ClusterError::Refused {
                peer,
                actor: name,
                refusal,
            },
            ClusterError::Timeout { peer, after, .. } => ClusterError::Timeout {
                peer,
                actor: name,
                after,
            },
            ClusterError::Decode { peer, reason, .. } => ClusterError::Decode {
                peer,
                actor: name,
                reason,
            },
            ClusterError::Encode { reason, .. } => ClusterError::Encode {
                actor: name,
                reason,
            },
            other => other,
        }
    }

    fn unavailable(&self, reason: &str) -> ClusterError {
        ClusterError::EntityUnavailable {
            ty: self.hosts.ty.trim_start_matches('\u{1}').to_owned(),
            key: self.key.clone(),
            reason: reason.to_owned(),
        }
    }

    /// Sends `msg` to the entity.
    ///
    /// While the key has no reachable owner (no host is up, or the owner's
    /// node is down and the key is moving), the cast is held by this handle
    /// (and its clones), in order with the casts after it, and sent once an
    /// owner is reachable; a cast held longer than [`HOLD_CASTS_FOR`] is a
    /// dead letter. Casts sent to an owner that dies before it is detected
    /// are dead letters there, like any remote cast.
    ///
    /// # Errors
    ///
    /// Hands `msg` back when [`MAX_HELD_CASTS`] are already held
    /// ([`ClusterError::EntityUnavailable`]), or with the error of the send
    /// to the owner when it is not about reachability (its send buffer is
    /// full: [`ClusterError::Busy`]; the message does not encode).
    pub fn cast(&self, msg: M) -> Result<(), RemoteCastError<M>> {
        let mut held = lock!(self.held.lock());
        if !held.queue.is_empty() {
            // Behind the casts already held: order is kept.
            return self.hold(&mut held, msg);
        }
        drop(held);
        match self.send_now(msg) {
            Ok(()) => Ok(()),
            Err(e) if moving(e.error()) => {
                let msg = e.into_message();
                let mut held = lock!(self.held.lock());
                self.hold(&mut held, msg)
            }
            Err(e) => Err(e),
        }
    }

    fn hold(&self, held: &mut HeldCasts<M>, msg: M) -> Result<(), RemoteCastError<M>> {
        if held.queue.len() >= MAX_HELD_CASTS {
            return Err(RemoteCastError::new(
                self.unavailable(&format!(
                    "no owner is reachable and {MAX_HELD_CASTS} casts are already held"
                )),
                msg,
            ));
        }
        held.queue.push_back((Instant::now(), msg));
        if !held.draining {
            held.draining = true;
            let me = self.clone();
            tokio::spawn(async move { me.drain_held().await });
        }
        Ok(())
    }

    /// Sends the held casts in order as soon as an owner is reachable.
    async fn drain_held(self) {
        loop {
            tokio::time::sleep(HELD_RETRY).await;
            let mut held = lock!(self.held.lock());
            while let Some((since, msg)) = held.queue.pop_front() {
                if since.elapsed() > HOLD_CASTS_FOR {
                    self.dead_letter(msg, "no owner was reachable while it was held");
                    continue;
                }
                match self.send_now(msg) {
                    Ok(()) => {}
                    Err(e) if moving(e.error()) => {
                        held.queue.push_front((since, e.into_message()));
                        break;
                    }
                    Err(e) => {
                        let reason = e.error().to_string();
                        self.dead_letter(e.into_message(), &reason);
                    }
                }
            }
            if held.queue.is_empty() || self.hosts.node.is_shut_down() {
                for (_, msg) in held.queue.drain(..) {
                    self.dead_letter(msg, "the node shut down while it was held");
                }
                held.draining = false;
                return;
            }
        }
    }

    fn dead_letter(&self, msg: M, reason: &str) {
        let node = &self.hosts.node.inner;
        node.events
            .dead_letter(super::events::RemoteDeadLetter::new(
                &node.name,
                self.display_name(),
                M::TAG.to_string(),
                super::events::UndeliveredReason::EntityUnavailable(reason.to_owned()),
                None,
            ));
        super::remote_ref::drop_refusing(
            msg,
            super::wire::Refusal::EntityUnavailable(reason.to_owned()),
        );
    }

    /// One attempt to send `msg` to the key's owner in this node's view.
    fn send_now(&self, msg: M) -> Result<(), RemoteCastError<M>> {
        let Some(owner) = self.hosts.owner(&self.key) else {
            return Err(RemoteCastError::new(
                self.unavailable("no host of this type is reachable; call entities() on some node"),
                msg,
            ));
        };
        self.hosts
            .cast(
                &owner,
                HostMsg::Deliver {
                    key: self.key.clone(),
                    hops: 0,
                    handed: false,
                    msg,
                },
            )
            .or_else(|e| match e.into_parts() {
                (error, HostMsg::Deliver { msg, .. }) => {
                    Err(RemoteCastError::new(self.named(error), msg))
                }
                (error, other) => {
                    // Cannot happen: what was sent is what comes back.
                    tracing::error!(%error, "entity cast handed back another message");
                    drop_disarmed(other);
                    Ok(())
                }
            })
    }

    /// Calls the entity and waits up to `timeout` for the answer. With the
    /// per-message checkpoint policy (the default) the answer is sent only
    /// once the state it reports is held by the replicas.
    ///
    /// An error does not say the call was not handled: the owner may have
    /// applied it and died before answering, or the answer may have been
    /// lost with a session. Retrying is the caller's choice and is safe only
    /// for a message that can be applied twice, or that carries an id the
    /// entity remembers in its (checkpointed) state so a repeat is answered
    /// without being applied again (`examples/bank.rs` does this). Right
    /// after an owner dies, calls fail with [`ClusterError::NodeDown`] or
    /// time out until this node's view moves the key (about the failure
    /// detection time).
    ///
    /// # Errors
    ///
    /// [`ClusterError::EntityUnavailable`] when no host is reachable; the
    /// errors of [`RemoteRef::call`](super::RemoteRef::call) otherwise
    /// (a refusal [`Refusal::NotSaved`](super::Refusal::NotSaved) or
    /// [`Refusal::ReplyDropped`](super::Refusal::ReplyDropped) means the
    /// call may not have happened: retry it).
    pub async fn call<T, F>(&self, build: F, timeout: Duration) -> Result<T, ClusterError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(RemoteReply<T>) -> M,
    {
        let owner = self.hosts.owner(&self.key).ok_or_else(|| {
            self.unavailable("no host of this type is reachable; call entities() on some node")
        })?;
        let key = self.key.clone();
        self.hosts
            .call(
                &owner,
                move |reply| HostMsg::Deliver {
                    key,
                    hops: 0,
                    handed: false,
                    msg: build(reply),
                },
                timeout,
            )
            .await
            .map_err(|e| self.named(e))
    }
}
