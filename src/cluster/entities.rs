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

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::error::{ClusterError, RemoteCastError};
use super::events::{RemoteDeadLetter, UndeliveredReason};
use super::global::{local_call, GroupRef, Target};
use super::message::RemoteMessage;
use super::names::GroupMember;
use super::node::{Node, NodeInner};
use super::placement;
use super::remote_ref::{drop_disarmed, RemoteReply};
use super::replica::{Preloaded, ReplicaStore};
use crate::checkpoint::{CheckpointError, CheckpointPolicy, CheckpointStore, Checkpointed};

/// The group an entity type's hosts join.
fn host_group(ty: &str) -> String {
    format!("\u{1}entities:{ty}")
}

/// A singleton's entity type and its one key.
fn singleton_type(name: &str) -> String {
    format!("\u{1}singleton:{name}")
}

/// How a type's owner is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
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
    ty: String,
    kind: String,
    args: Vec<u8>,
    policy: CheckpointPolicy,
    replicas: usize,
    passivate_after: Option<Duration>,
    max_held: usize,
    timeout: Duration,
    fresh_when_lost: bool,
    placement: Placement,
}

impl EntitySpec {
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

type SpawnFn<M> = dyn Fn(
        &str,
        Arc<dyn CheckpointStore>,
        &EntitySpec,
        ActorCell,
    ) -> BoxFuture<'static, Result<ActorRef<M>, String>>
    + Send
    + Sync;

type StartHostFn = dyn Fn(Arc<NodeInner>, EntitySpec) -> BoxFuture<'static, Result<ActorCell, ClusterError>>
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
    hosts: HashMap<String, ActorCell>,
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
        let cell = (kind.start_host)(self.inner.clone(), spec).await?;
        let mut m = lock!(self.inner.migration.lock());
        if m.hosts.contains_key(&ty) {
            drop(m);
            cell.stop(None);
            return Err(ClusterError::AlreadyHosted(ty));
        }
        m.hosts.insert(ty, cell);
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
            _msg: PhantomData,
        }
    }

    /// A handle to the singleton `name`, wherever it runs.
    pub fn singleton_ref<M: RemoteMessage>(&self, name: &str) -> EntityRef<M> {
        EntityRef {
            hosts: Hosts::new(self.clone(), &singleton_type(name), Placement::Oldest),
            key: name.to_owned(),
            _msg: PhantomData,
        }
    }
}

impl NodeInner {
    /// Stops every host on this node, each letting its entities finish
    /// and save first (a planned leave or a shutdown).
    pub(crate) async fn stop_hosts(&self) {
        let hosts: Vec<ActorCell> = {
            let mut m = lock!(self.migration.lock());
            // The factories may hold `Node` clones: dropping them here
            // ends that cycle (the node is shutting down).
            m.kinds.clear();
            m.hosts.drain().map(|(_, c)| c).collect()
        };
        for cell in hosts {
            let _ = cell
                .stop_and_wait(None, Some(Duration::from_secs(10)))
                .await;
        }
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
        if majority {
            // Only the majority side gives up on members down long enough.
            let after = self.config.remove_down_after;
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
    fn new(node: Node, ty: &str, placement: Placement) -> Self {
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
    fn owner(&self, key: &str) -> Option<GroupMember> {
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
// Messages between hosts

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
    /// A message for the entity `key`; `hops` counts forwards between
    /// hosts whose views of the owner differ.
    Deliver { key: String, hops: u8, msg: M },
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
struct AnyMessage;

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
    Released {
        key: String,
    },
    Retry {
        key: String,
    },
    Tick,
    /// The session with `peer` went down.
    PeerDown {
        peer: String,
    },
}

/// Why an activation failed, and whether to try again.
#[derive(Debug)]
pub(crate) struct Failure {
    reason: String,
    retry: bool,
}

// ---------------------------------------------------------------------------
// The host actor

struct Host<M: RemoteMessage> {
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
    },
    /// Stopping here (handed over, passivated or paused); its messages wait.
    Leaving {
        queue: VecDeque<M>,
        to: Option<String>,
    },
}

struct HostState<M> {
    slots: HashMap<String, Slot<M>>,
    by_actor: HashMap<ActorId, String>,
    paused: bool,
    /// The hosts' nodes at the last tick, to notice a change.
    seen: Vec<String>,
    /// A re-replication is running.
    replicating: Arc<std::sync::atomic::AtomicBool>,
}

/// The most attempts at starting one key before its messages are dead
/// letters.
const MAX_ATTEMPTS: u32 = 8;
/// How often a host checks passivation and the majority.
const TICK: Duration = Duration::from_millis(50);

async fn start_host<M: RemoteMessage>(
    node: Arc<NodeInner>,
    spec: EntitySpec,
    spawn: Arc<SpawnFn<M>>,
) -> Result<ActorCell, ClusterError> {
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
    if let Err(e) = joined {
        actor.stop(None);
        return Err(e);
    }
    Ok(actor.get_cell())
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
        super::remote_ref::drop_refusing(
            msg,
            super::wire::Refusal::EntityUnavailable(reason.to_owned()),
        );
    }

    fn hold(&self, queue: &mut VecDeque<M>, key: &str, msg: M) {
        if queue.len() >= self.spec.max_held {
            self.dead_letter(key, msg, "too many messages held while it starts or moves");
        } else {
            queue.push_back(msg);
        }
    }

    fn deliver(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: String,
        hops: u8,
        msg: M,
    ) {
        match st.slots.get_mut(&key) {
            Some(Slot::Active { actor, last }) => {
                *last = Instant::now();
                if let Err(ractor::MessagingErr::SendErr(m)) = actor.cast(msg) {
                    // Stopped under us (its end is on its way): start it
                    // again from its last checkpoint, with this message.
                    st.slots.insert(
                        key.clone(),
                        Slot::Activating {
                            queue: VecDeque::from([m]),
                            attempt: 0,
                        },
                    );
                    self.activate(myself, key);
                }
            }
            Some(Slot::Activating { queue, .. }) | Some(Slot::Leaving { queue, .. }) => {
                let mut q = std::mem::take(queue);
                self.hold(&mut q, &key, msg);
                if let Some(Slot::Activating { queue, .. } | Slot::Leaving { queue, .. }) =
                    st.slots.get_mut(&key)
                {
                    *queue = q;
                }
            }
            None => {
                // Not here: forward to the owner if it is another node (at
                // most twice, in case views differ), else start it here.
                let me = self.me();
                let mut msg = msg;
                if hops < 2 {
                    if let Some(owner) = self.hosts.owner(&key) {
                        if owner.node != me {
                            let forwarded = self.hosts.cast(
                                &owner,
                                HostMsg::Deliver {
                                    key: key.clone(),
                                    hops: hops + 1,
                                    msg,
                                },
                            );
                            match forwarded.map_err(|e| e.into_message()) {
                                Ok(()) => return,
                                // The owner in our view is gone (our view
                                // lags): start it here; the hand-over
                                // protocol keeps it to one copy.
                                Err(HostMsg::Deliver { msg: m, .. }) => msg = m,
                                Err(other) => {
                                    drop_disarmed(other);
                                    return;
                                }
                            }
                        }
                    }
                }
                if st.paused {
                    return self.dead_letter(
                        &key,
                        msg,
                        "this node is on the minority side of a partition",
                    );
                }
                st.slots.insert(
                    key.clone(),
                    Slot::Activating {
                        queue: VecDeque::from([msg]),
                        attempt: 0,
                    },
                );
                self.activate(myself, key);
            }
        }
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
                let node = node.upgrade().ok_or(Failure {
                    reason: "the node has shut down".into(),
                    retry: false,
                })?;
                if !node.has_majority() {
                    return Err(Failure {
                        reason: "this node is on the minority side of a partition".into(),
                        retry: true,
                    });
                }
                for m in hosts.snapshot().iter().filter(|m| m.node != node.name) {
                    let asked = hosts
                        .call(
                            m,
                            |reply| HostMsg::Acquire {
                                key: key.clone(),
                                from: node.name.clone(),
                                reply,
                            },
                            spec.timeout,
                        )
                        .await;
                    match asked {
                        Ok(Handover::Released) => {}
                        Ok(Handover::Busy) => {
                            return Err(Failure {
                                reason: format!("node `{}` is starting or moving it", m.node),
                                retry: true,
                            })
                        }
                        // Down or gone: it runs nothing we can reach (and a
                        // minority side stops its own copies).
                        Err(ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }) => {}
                        Err(e) => {
                            return Err(Failure {
                                reason: format!("node `{}` did not hand it over: {e}", m.node),
                                retry: true,
                            })
                        }
                    }
                }
                let loaded = store.load_everywhere(&key).await;
                if let Err(CheckpointError::Lost { last_seq, .. }) = &loaded {
                    if !spec.fresh_when_lost {
                        node.events.emit(super::events::NodeEvent::CheckpointLost {
                            ty: spec.ty.clone(),
                            key: key.clone(),
                            last_seq: *last_seq,
                        });
                        return Err(Failure {
                            reason: format!(
                                "checkpoint lost: #{last_seq} was saved but every copy is gone"
                            ),
                            retry: false,
                        });
                    }
                }
                if let Err(CheckpointError::Unavailable { reason, .. }) = &loaded {
                    return Err(Failure {
                        reason: reason.clone(),
                        retry: true,
                    });
                }
                let preloaded: Arc<dyn CheckpointStore> = Arc::new(Preloaded::new(
                    store.clone() as Arc<dyn CheckpointStore>,
                    loaded,
                ));
                (spawn)(&key, preloaded, &spec, myself.get_cell())
                    .await
                    .map_err(|reason| Failure {
                        reason,
                        retry: false,
                    })
            }
            .await;
            let _ = myself.cast(HostMsg::Internal(Internal::Activated { key, result }));
        });
    }

    /// Stops the active `key` here in a task (finishing its mailbox and
    /// saving), then reports `Released` (and answers `reply`).
    fn release(
        &self,
        myself: &ActorRef<HostMsg<M>>,
        st: &mut HostState<M>,
        key: &str,
        to: Option<String>,
        reply: Option<RemoteReply<Handover>>,
    ) {
        let Some(Slot::Active { actor, .. }) = st.slots.remove(key) else {
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
            if let Some(r) = reply {
                r.send(Handover::Released);
            }
            let _ = myself.cast(HostMsg::Internal(Internal::Released { key }));
        });
    }

    /// The session with `peer` ended: `peer` may now start, in its own
    /// view without us, keys that run here. It can only if every host
    /// ranked above it for the key is unreachable to it and it still has
    /// a majority, i.e. when fewer than half the hosts rank above it. Those
    /// keys stop here at once (finishing their mailboxes and saving if they
    /// can), so that when the two sides meet again no key runs on both.
    fn fence(&self, myself: &ActorRef<HostMsg<M>>, st: &mut HostState<M>, peer: &str) {
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
                // in age after the hosts it lost; be conservative.
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
        if !majority && !st.paused {
            tracing::warn!(node = %node.name, ty = %self.spec.ty, "minority side of a partition: stopping entities until the majority is back");
            // Killed, not drained: nothing more is processed or saved here
            // (the majority side takes over from the replicas).
            for slot in st.slots.values() {
                if let Slot::Active { actor, .. } = slot {
                    actor.kill();
                }
            }
        } else if majority && st.paused {
            tracing::info!(node = %node.name, ty = %self.spec.ty, "back in the majority: entities start again");
        }
        st.paused = !majority;
        let mut now_seen: Vec<String> = self
            .hosts
            .snapshot()
            .iter()
            .map(|m| m.node.clone())
            .collect();
        now_seen.sort();
        if majority && now_seen != st.seen {
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
                    if let super::events::NodeEvent::Down { peer, .. } = event {
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
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HostMsg::Deliver { key, hops, msg } => self.deliver(&myself, st, key, hops, msg),
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
                let stored = self
                    .store
                    .local
                    .put(&key, crate::checkpoint::Checkpoint { seq, bytes });
                reply.send(stored.map_err(|e| e.to_string()));
            }
            HostMsg::GetReplica { key, reply } => {
                reply.send(self.store.local.get(&key).map(|c| (c.seq, c.bytes)));
            }
            HostMsg::Exists { key, seq } => self.store.remember(&key, seq),
            HostMsg::Internal(Internal::Activated { key, result }) => {
                let Some(Slot::Activating { queue, attempt }) = st.slots.remove(&key) else {
                    // Not waited for (the host is stopping): undo.
                    if let Ok(actor) = result {
                        actor.stop(None);
                    }
                    return Ok(());
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
                    Err(f) if f.retry && attempt + 1 < MAX_ATTEMPTS => {
                        tracing::debug!(ty = %self.spec.ty, %key, reason = %f.reason, attempt, "start deferred");
                        st.slots.insert(
                            key.clone(),
                            Slot::Activating {
                                queue,
                                attempt: attempt + 1,
                            },
                        );
                        let delay = Duration::from_millis(
                            (10u64 << attempt.min(6)) + rand::random_range(0..10),
                        );
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
            HostMsg::Internal(Internal::Retry { key }) => {
                if matches!(st.slots.get(&key), Some(Slot::Activating { .. })) {
                    self.activate(&myself, key);
                }
            }
            HostMsg::Internal(Internal::Released { key }) => {
                if let Some(Slot::Leaving { queue, to }) = st.slots.remove(&key) {
                    for m in queue {
                        // Forwarded to the host that took it over, or
                        // handled as new (passivated: starts again here).
                        let target = to.as_ref().and_then(|node| {
                            self.hosts
                                .snapshot()
                                .iter()
                                .find(|h| &h.node == node)
                                .cloned()
                        });
                        match (&to, target) {
                            (Some(_), Some(t)) => {
                                let sent = self.hosts.cast(
                                    &t,
                                    HostMsg::Deliver {
                                        key: key.clone(),
                                        hops: 2,
                                        msg: m,
                                    },
                                );
                                if let Err(e) = sent {
                                    if let HostMsg::Deliver { msg, .. } = e.into_message() {
                                        self.dead_letter(
                                            &key,
                                            msg,
                                            "its new owner could not be reached",
                                        );
                                    }
                                }
                            }
                            // The taker is not known any more: let the
                            // placement decide.
                            (Some(_), None) => self.deliver(&myself, st, key.clone(), 0, m),
                            (None, _) => self.deliver(&myself, st, key.clone(), 2, m),
                        }
                    }
                }
            }
            HostMsg::Internal(Internal::Tick) => self.tick(&myself, st),
            HostMsg::Internal(Internal::PeerDown { peer }) => self.fence(&myself, st, &peer),
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
        // A planned stop: every entity finishes its mailbox and saves.
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
        // Our checkpoints go to whoever takes our keys once we are gone.
        self.store.hand_over().await;
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

// ---------------------------------------------------------------------------
// Handles

/// A handle to one entity (or a singleton), wherever it runs; from
/// [`Node::entity`] and [`Node::singleton_ref`]. Each send goes to the
/// key's owner in this node's view; the owner starts the actor if needed.
pub struct EntityRef<M: RemoteMessage> {
    hosts: Hosts<M>,
    key: String,
    _msg: PhantomData<fn(M)>,
}

impl<M: RemoteMessage> Clone for EntityRef<M> {
    fn clone(&self) -> Self {
        EntityRef {
            hosts: self.hosts.clone(),
            key: self.key.clone(),
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
    /// # Errors
    ///
    /// Hands `msg` back with [`ClusterError::EntityUnavailable`] when no
    /// host of the type is reachable, or with the error of the send to the
    /// owner (down, busy). Once the owner has it, a message that cannot be
    /// delivered is a dead letter there.
    pub fn cast(&self, msg: M) -> Result<(), RemoteCastError<M>> {
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
                    msg: build(reply),
                },
                timeout,
            )
            .await
            .map_err(|e| self.named(e))
    }
}
