//! The [`Node`]: listens, connects, exports and looks up actors, reports
//! its peers' health.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{ActorCell, ActorRef};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::NodeConfig;
use super::error::{ClusterError, DownReason};
use super::events::{self, EventBus, NodeEvent, NodeEvents, PeerInfo};
use super::gate::Gate;
use super::global::LocalEntries;
use super::handshake::{self, Conn, CookieKey, HandshakeError, Identity, PeerHello};
use super::membership::{Learned, Member, MemberStatus, Members, Phase};
use super::message::RemoteMessage;
use super::names::View;
use super::peer::Peer;
use super::registry::{check_name, Registry};
use super::remote_ref::{RemoteMonitor, RemoteRef};
use super::session::{self, Link};
use super::tls;
use super::wire::{self, Frame, MemberWire};
use crate::supervisor::ChildRef;

/// Members per member-list frame for a peer that takes frames of up to
/// `max_frame` bytes: an entry is at most about 300 bytes (a 255-byte name,
/// an address, an incarnation), and a frame stays under half the limit and
/// under the header limit.
fn gossip_chunk(max_frame: usize) -> usize {
    (max_frame.min(wire::MAX_HEADER_SIZE) / 2 / 300).clamp(1, 50)
}

/// How long a dial of ours keeps the right to win a simultaneous connect;
/// an older one (stuck in a one-way partition, say) must not lock the
/// peer's own dials out.
const FRESH_DIAL: Duration = Duration::from_secs(1);

/// Attempts at a member learned from a list and never reached before it
/// is forgotten (about a minute with the default backoff).
const FORGET_UNREACHED: u32 = 16;

/// How long [`Node::leave`] tries to reach the members it has no session
/// with (at most the handshake timeout).
const LEAVE_REACH: Duration = Duration::from_secs(1);

/// The shortest time a reconnection attempt is given before the next one
/// starts (see [`reconnect`]).
const MIN_ATTEMPT: Duration = Duration::from_millis(500);

/// How long [`Node::shutdown`] waits for queued frames to be written.
const FLUSH_ON_SHUTDOWN: Duration = Duration::from_secs(2);

/// What a dial in progress is known by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DialKey {
    Addr(SocketAddr),
    Name(String),
}

/// A node of the cluster: a TCP listener, sessions with peers, and the
/// actors it exports. Cheap to clone; all clones are the same node.
///
/// See the [module docs](super) for a full example.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("local_addr", &self.inner.local_addr)
            .finish()
    }
}

/// The node's shared state.
pub(crate) struct NodeInner {
    pub(crate) name: String,
    pub(crate) config: NodeConfig,
    pub(crate) registry: Arc<Registry>,
    incarnation: u64,
    key: CookieKey,
    local_addr: SocketAddr,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    pub(crate) events: Arc<EventBus>,
    /// The replicated view of cluster-wide names and groups.
    pub(crate) view: Mutex<View>,
    /// The view's group generation, read by group handles without the lock.
    pub(crate) groups_generation: Arc<AtomicU64>,
    /// The local actors behind this node's own names and group members.
    pub(crate) locals: Mutex<LocalEntries>,
    /// Handshakes in progress on incoming connections, and how to cancel
    /// each (see [`gate`](super::gate)).
    gate: Mutex<(Gate, HashMap<u64, CancellationToken>)>,
    shutdown: CancellationToken,
    /// Cancelled when shutdown has finished (event streams end).
    closed: CancellationToken,
    next_session: AtomicU64,
    /// The address peers dial to reach this node.
    advertised: SocketAddr,
    /// Who is in the cluster (see [`membership`](super::membership)).
    members: Mutex<Members>,
    /// The addresses (and, for reconnections, names) this node is dialing
    /// right now, to settle simultaneous dials inside the handshake.
    /// Each with how many dials and when the latest reached the handshake.
    dialing: Mutex<HashMap<DialKey, (usize, Instant)>>,
    writers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    watcher: ActorCell,
    /// Kinds and entity hosts (see [`entities`](super::entities)).
    pub(crate) migration: Mutex<super::entities::Migration>,
    /// This node, for code that holds only `&NodeInner`.
    this: std::sync::Weak<NodeInner>,
}

impl Node {
    /// Starts a node: binds its listener and starts accepting peers.
    ///
    /// Fails if the configuration is invalid (no cookie, bad name or
    /// limits) or the address cannot be bound. Must run inside a tokio
    /// runtime.
    pub async fn start(config: NodeConfig) -> Result<Node, ClusterError> {
        config.validate()?;
        let key = handshake::cookie_key(&config.cookie)
            .ok_or_else(|| ClusterError::InvalidConfig("the cookie cannot key HMAC".into()))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| ClusterError::Bind {
                addr: config.listen,
                reason: e.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|e| ClusterError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
        let registry = Arc::new(Registry::default());
        let closed_token = CancellationToken::new();
        let advertised = config.advertise.unwrap_or(local_addr);
        let local_name = config.name.clone();
        let view = View::new(&local_name);
        // A start time (microseconds) with random low bits: unique per
        // start, and ordered by age, so every node agrees on which member
        // is the oldest (a singleton's place).
        let incarnation: u64 = start_incarnation();
        let members = Members::new(MemberWire {
            name: config.name.clone(),
            addr: advertised,
            incarnation,
        });
        let watcher = registry.start_watcher().await?;
        let events = Arc::new(EventBus::new(&config.name, config.on_dead_letter.clone()));
        tokio::spawn(events::flush_loop(events.clone(), closed_token.clone()));
        let inner = Arc::new_cyclic(|this| NodeInner {
            name: config.name.clone(),
            incarnation,
            key,
            local_addr,
            config,
            registry,
            peers: Mutex::new(HashMap::new()),
            events,
            groups_generation: view.groups_generation(),
            view: Mutex::new(view),
            locals: Mutex::new(LocalEntries::default()),
            gate: Mutex::new((Gate::default(), HashMap::new())),
            shutdown: CancellationToken::new(),
            closed: closed_token,
            next_session: AtomicU64::new(1),
            advertised,
            members: Mutex::new(members),
            dialing: Mutex::new(HashMap::new()),
            writers: Mutex::new(Vec::new()),
            watcher,
            migration: Mutex::new(Default::default()),
            this: this.clone(),
        });
        let weak = Arc::downgrade(&inner);
        inner.registry.on_ended(Box::new(move |export: &str| {
            if let Some(node) = weak.upgrade() {
                node.export_ended(export);
            }
        }));
        tokio::spawn(accept_loop(inner.clone(), listener));
        tracing::info!(node = %inner.name, addr = %local_addr, "node started");
        for seed in inner.config.seeds.clone() {
            tokio::spawn(join_seed(inner.clone(), seed));
        }
        Ok(Node { inner })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The address the node listens on (with the actual port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Connects to the node listening at `addr` and authenticates it.
    /// From then on this node keeps the session up: when it goes down, it
    /// reconnects with the configured backoff until the peer is back or
    /// this node shuts down.
    ///
    /// Returns the peer as it stands, also when it was already connected.
    pub async fn connect(&self, addr: SocketAddr) -> Result<PeerInfo, ClusterError> {
        // Dialing a live peer again would replace its session and fail what
        // is pending on it.
        if let Some(peer) = self.inner.live_peer_at(addr) {
            *lock!(peer.dial_addr.lock()) = Some(addr);
            return Ok(peer.info());
        }
        let peer = dial(&self.inner, addr, None).await?;
        *lock!(peer.dial_addr.lock()) = Some(addr);
        Ok(peer.info())
    }

    /// Joins the cluster that the node at `addr` belongs to: connects to
    /// it, and through its member list to every other member (the mesh
    /// forms in the background; see [`members`](Self::members)). The same
    /// as [`connect`](Self::connect); [`NodeConfig::seeds`] does it at
    /// start.
    pub async fn join(&self, addr: SocketAddr) -> Result<PeerInfo, ClusterError> {
        self.connect(addr).await
    }

    /// The cluster's members as this node sees them (itself excluded),
    /// with their status, address and incarnation, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        let peers = lock!(self.inner.peers.lock()).clone();
        lock!(self.inner.members.lock()).list(|name| {
            match peers.get(name).map(|p| p.info().status) {
                Some(super::PeerStatus::Suspect) => MemberStatus::Suspect,
                Some(super::PeerStatus::Down) => MemberStatus::Down,
                _ => MemberStatus::Up,
            }
        })
    }

    /// Leaves the cluster for good: tells every member it can reach that
    /// this node is leaving (they mark it `Left`: no failure, no
    /// reconnection), then shuts down as [`shutdown`](Self::shutdown) does.
    ///
    /// Members with a session hear it on that session. Members without one
    /// (`Down`, or `Joining`: heard of, not reached yet) are dialed once,
    /// all at once, for at most 1 s (or the handshake timeout if shorter),
    /// and told on the new session. A member that cannot be reached then
    /// (behind a partition) is not told: members do not relay a leave, so
    /// it keeps this node `Down` and redials it with backoff (every 5 s at
    /// the default cap) for as long as it runs, as it does any member that
    /// failed, unless this node's name comes back.
    pub async fn leave(&self) {
        if !self.inner.shutdown.is_cancelled() {
            // Entities and singletons first: they finish their mailboxes and
            // save while the sessions are still up; the keys move on.
            self.inner.stop_hosts().await;
            tracing::info!(node = %self.inner.name, "leaving the cluster");
            self.say_leaving();
            if self.reach_unconnected_to_leave().await {
                // A goodbye dial can cross a dial of the member's own (or
                // of ours) and its session be replaced before the member
                // read it: say it again on every session now current.
                self.say_leaving();
            }
        }
        self.shutdown().await;
    }

    /// [`leave`](Self::leave)'s second part: dials the members without a
    /// session and says goodbye on each session that comes up.
    /// Sends `Leaving` on every live session.
    fn say_leaving(&self) {
        let peers: Vec<Arc<Peer>> = lock!(self.inner.peers.lock()).values().cloned().collect();
        for link in peers.iter().filter_map(|p| p.link().ok()) {
            link.send_plain(&Frame::Leaving);
        }
    }

    /// Returns whether any member without a session was dialed.
    async fn reach_unconnected_to_leave(&self) -> bool {
        let unconnected: Vec<(String, SocketAddr)> = lock!(self.inner.members.lock())
            .list(|_| MemberStatus::Up)
            .into_iter()
            .filter(|m| matches!(m.status, MemberStatus::Down | MemberStatus::Joining))
            .map(|m| (m.name, m.addr))
            .collect();
        if unconnected.is_empty() {
            return false;
        }
        // Each member is tried until it takes the goodbye or the time is
        // up: a first attempt can be refused while the member's own dial
        // to us is in flight (simultaneous dials are settled for one side).
        let deadline = tokio::time::Instant::now() + LEAVE_REACH;
        let attempt = self.inner.config.handshake_timeout.min(LEAVE_REACH);
        let told = futures::future::join_all(unconnected.iter().map(|(name, addr)| async move {
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return false;
                }
                let reached =
                    tokio::time::timeout(attempt.min(left), dial(&self.inner, *addr, Some(name)))
                        .await;
                if let Ok(Ok(Ok(link))) = reached.map(|dialed| dialed.map(|peer| peer.link())) {
                    link.send_plain(&Frame::Leaving);
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50).min(left)).await;
            }
        }))
        .await;
        let reached = told.iter().filter(|t| **t).count();
        tracing::info!(node = %self.inner.name, reached, unreached = told.len() - reached, "told the members without a session that this node leaves");
        true
    }

    /// Every peer this node knows, with its status, phi, round-trip time
    /// and last heartbeat, sorted by name.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut all: Vec<PeerInfo> = lock!(self.inner.peers.lock())
            .values()
            .map(|p| p.info())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// One peer's state, if this node knows it.
    pub fn peer(&self, name: &str) -> Option<PeerInfo> {
        self.inner.peer(name).map(|p| p.info())
    }

    /// Makes a local actor reachable from other nodes as `name`.
    ///
    /// The actor is unexported automatically when it ends (peers
    /// monitoring it are told why). Fails if `name` is held by an actor
    /// that is still running. To export a supervised child that restarts,
    /// use [`export_child`](Self::export_child).
    pub fn export<M: RemoteMessage>(
        &self,
        name: impl AsRef<str>,
        actor: ActorRef<M>,
    ) -> Result<(), ClusterError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(ClusterError::Shutdown);
        }
        check_user_name(name.as_ref())?;
        self.inner.registry.export(name.as_ref(), actor)
    }

    /// Makes a supervised child reachable from other nodes as `name`. The
    /// export follows the child across restarts (it goes through the
    /// [`ChildRef`]); while the child restarts, messages are refused with
    /// [`Refusal::NotRunning`](super::Refusal::NotRunning) (a call fails with
    /// it, a cast becomes a dead letter) — including while the child runs
    /// its `pre_start`, so a child should not ask peers to send it state from
    /// there; let it pull state by calls instead. It stays exported until
    /// [`unexport`](Self::unexport).
    pub fn export_child<M: RemoteMessage>(
        &self,
        name: impl AsRef<str>,
        child: ChildRef<M>,
    ) -> Result<(), ClusterError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(ClusterError::Shutdown);
        }
        check_user_name(name.as_ref())?;
        self.inner.registry.export_child(name.as_ref(), child)
    }

    /// Withdraws an export; returns whether `name` was exported. Remote
    /// monitors of it fire with
    /// [`ActorDownReason::NotExported`](super::ActorDownReason::NotExported).
    pub fn unexport(&self, name: &str) -> bool {
        self.inner.registry.unexport(name)
    }

    /// Asks `peer` for its actor exported as `actor`, taking messages of
    /// type `M`.
    ///
    /// Fails with [`ClusterError::Refused`] if nothing is exported under
    /// that name or it takes another message type (the refusal says which),
    /// [`ClusterError::NotConnected`] or [`ClusterError::NodeDown`] if there
    /// is no session with `peer`, [`ClusterError::Busy`] if the session's
    /// send buffer is full (retry later), and [`ClusterError::Timeout`]
    /// after the configured request timeout.
    pub async fn lookup<M: RemoteMessage>(
        &self,
        peer: &str,
        actor: &str,
    ) -> Result<RemoteRef<M>, ClusterError> {
        check_name(actor)?;
        check_name(M::TAG)?;
        let p = self
            .inner
            .peer(peer)
            .ok_or_else(|| ClusterError::NotConnected {
                peer: peer.to_string(),
            })?;
        let link = p.link()?;
        let name: Arc<str> = Arc::from(actor);
        let encode = |id| {
            let frame = Frame::Lookup {
                id,
                actor: actor.to_string(),
                tag: M::TAG.to_string(),
            };
            wire::encode_plain(&frame, link.max_frame).map_err(|reason| ClusterError::Encode {
                actor: actor.to_string(),
                reason,
            })
        };
        p.request(&link, &name, encode, self.inner.config.request_timeout)
            .await?;
        Ok(RemoteRef::new(p, actor))
    }

    /// Monitors a remote actor: the returned future resolves once, with the
    /// reason, when the actor ends, is unexported, or its node goes down.
    /// Fails at once if there is no session with its node. An actor that
    /// ended just before the monitor reached its node still reports its exit
    /// reason (the node remembers the last 256 ended exports).
    pub fn monitor<M: RemoteMessage>(
        &self,
        target: &RemoteRef<M>,
    ) -> Result<RemoteMonitor, ClusterError> {
        let peer = target.peer_handle().clone();
        let link = peer.link()?;
        let (id, rx) = peer.register_monitor(link.session);
        let sent = link.send_plain(&Frame::Monitor {
            id,
            actor: target.actor().to_string(),
        });
        // Registered after the session closed: nobody would fire it.
        if !sent || !link.is_open() {
            peer.fire_monitor(id, super::ActorDownReason::NodeDown(link.reason()));
            return Err(peer.not_connected_error());
        }
        Ok(RemoteMonitor {
            rx,
            peer,
            actor: target.actor().to_string(),
            id,
            done: false,
        })
    }

    /// Subscribes to this node's events: peers up and down (with the
    /// reason), members, rejected connections, dead letters (counted).
    /// Every subscriber gets every lifecycle event from now on, in order,
    /// none dropped; floods of reports are coalesced, and not queued for a
    /// subscriber that leaves thousands unread (see [`NodeEvent`]). The
    /// subscription ends after the node has shut down.
    pub fn subscribe(&self) -> NodeEvents {
        self.inner.events.subscribe()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Shuts the node down: stops accepting and reconnecting, tells every
    /// peer goodbye after the frames already queued for it (waiting up to
    /// 2 s for them to be written), closes the sessions, fails pending
    /// calls and monitors with [`DownReason::LocalShutdown`], and
    /// unexports everything. Idempotent.
    pub async fn shutdown(&self) {
        let inner = self.inner.clone();
        if inner.shutdown.is_cancelled() {
            // Another call is shutting down: wait for it to finish.
            inner.closed.cancelled().await;
            return;
        }
        // Entities and singletons finish their mailboxes and save while the
        // sessions are still up.
        inner.stop_hosts().await;
        inner.shutdown.cancel();
        // The rest runs in its own task, so that dropping this future (a
        // timeout around it, say) cannot leave the node half shut down.
        let finish = tokio::spawn(shut_down(inner.clone()));
        let _ = finish.await;
        inner.closed.cancelled().await;
    }
}

/// Refuses export names that start with the character reserved for the
/// exports behind cluster-wide names and groups.
fn check_user_name(name: &str) -> Result<(), ClusterError> {
    if name.starts_with('\u{1}') {
        return Err(ClusterError::InvalidName(
            "export names may not start with U+0001 (reserved)".into(),
        ));
    }
    Ok(())
}

/// The body of [`Node::shutdown`], after the `shutdown` token is cancelled.
async fn shut_down(inner: Arc<NodeInner>) {
    let peers: Vec<Arc<Peer>> = lock!(inner.peers.lock()).values().cloned().collect();
    let links: Vec<Arc<Link>> = peers.iter().filter_map(|p| p.link().ok()).collect();
    for link in &links {
        link.mark(DownReason::LocalShutdown);
        link.finish_with(&Frame::Goodbye {
            reason: format!("node {} is shutting down", inner.name),
        });
    }
    let mut writers: Vec<_> = lock!(inner.writers.lock()).drain(..).collect();
    let flushed = tokio::time::timeout(FLUSH_ON_SHUTDOWN, async {
        for w in writers.iter_mut() {
            let _ = w.await;
        }
    })
    .await;
    if flushed.is_err() {
        tracing::warn!(node = %inner.name, "some peers did not take our last frames within {FLUSH_ON_SHUTDOWN:?}");
    }
    for link in &links {
        link.close(DownReason::LocalShutdown);
    }
    // Closed writers stop at once; wait for them, so that the dead letters
    // they report come before the event streams end.
    for w in writers.into_iter().filter(|w| !w.is_finished()) {
        let _ = tokio::time::timeout(FLUSH_ON_SHUTDOWN, w).await;
    }
    for p in &peers {
        let session = lock!(p.state.lock()).session;
        p.end_session(session, &DownReason::LocalShutdown);
    }
    inner.registry.clear();
    inner.watcher.stop(None);
    for token in lock!(inner.gate.lock()).1.values() {
        token.cancel();
    }
    inner.events.close();
    inner.closed.cancel();
    tracing::info!(node = %inner.name, "node shut down");
}

/// A new incarnation: microseconds since the Unix epoch in the high bits,
/// 8 random bits below (two starts in the same microsecond still differ).
fn start_incarnation() -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    (micros << 8) | u64::from(rand::random::<u8>())
}

impl NodeInner {
    /// This node's incarnation (a start time, see [`start_incarnation`]).
    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// This node as an `Arc` (it is always held in one).
    pub(crate) fn arc(&self) -> Arc<NodeInner> {
        // Upgrading cannot fail while `&self` is borrowed from the Arc.
        self.this
            .upgrade()
            .unwrap_or_else(|| unreachable!("NodeInner lives in an Arc"))
    }

    pub(crate) fn peer(&self, name: &str) -> Option<Arc<Peer>> {
        lock!(self.peers.lock()).get(name).cloned()
    }

    fn identity<'a>(&'a self, expect_peer: Option<&'a str>) -> Identity<'a> {
        Identity {
            name: &self.name,
            incarnation: self.incarnation,
            cookie: &self.key,
            max_frame: self.config.max_frame_size,
            listen: self.advertised,
            expect_peer,
            admit: None,
        }
    }

    /// The last check of an authenticated dialer, before it is welcomed.
    fn admit_peer(&self, hello: &PeerHello) -> Result<(), HandshakeError> {
        // A name held by a live member that listens elsewhere: refused,
        // the live session untouched. (The same address with another
        // incarnation is a restart, and replaces the old session.)
        if let Some(peer) = self.peer(&hello.name).filter(|p| p.is_up()) {
            let live = lock!(self.members.lock()).addr(&hello.name);
            if let Some(live) = live.filter(|live| *live != hello.listen) {
                drop(peer);
                return Err(HandshakeError::DuplicateName {
                    name: hello.name.clone(),
                    live,
                });
            }
        }
        // A session we dialed is up with this very incarnation: keep it
        // (the dialer then finds it up; no flap). A dialer that saw its own
        // side of it die dials again once ours dies too.
        if let Some(peer) = self.peer(&hello.name) {
            let st = lock!(peer.state.lock());
            if st.status != super::PeerStatus::Down
                && st.incarnation == hello.incarnation
                && st.we_dialed
            {
                return Err(HandshakeError::SimultaneousConnect {
                    peer: hello.name.clone(),
                });
            }
        }
        // Both dialed at once: the connection dialed by the smaller name
        // wins, on both sides alike; the loser learns it before either side
        // installs anything, so nobody sees a flap.
        let we_dial_it = {
            let dialing = lock!(self.dialing.lock());
            let fresh = |key: DialKey| {
                dialing
                    .get(&key)
                    .is_some_and(|(_, since)| since.elapsed() < FRESH_DIAL)
            };
            fresh(DialKey::Addr(hello.listen)) || fresh(DialKey::Name(hello.name.clone()))
        };
        if we_dial_it && self.name < hello.name {
            return Err(HandshakeError::SimultaneousConnect {
                peer: hello.name.clone(),
            });
        }
        Ok(())
    }

    /// A live peer reached at `addr` (the address dialed, or the one it
    /// listens at).
    fn live_peer_at(&self, addr: SocketAddr) -> Option<Arc<Peer>> {
        let by_member: Vec<String> = lock!(self.members.lock())
            .list(|_| MemberStatus::Up)
            .into_iter()
            .filter(|m| m.addr == addr)
            .map(|m| m.name)
            .collect();
        lock!(self.peers.lock())
            .values()
            .find(|p| {
                p.is_up()
                    && (lock!(p.state.lock()).addr == addr
                        || *lock!(p.dial_addr.lock()) == Some(addr)
                        || by_member.iter().any(|n| n == p.name()))
            })
            .cloned()
    }

    /// A peer's member list arrived: dial the members this node lacks.
    pub(crate) fn on_members(self: &Arc<Self>, from: &Peer, list: Vec<MemberWire>) {
        let to_dial: Vec<(String, SocketAddr)> = {
            let mut members = lock!(self.members.lock());
            list.iter()
                .filter(|m| m.name != from.name())
                .filter_map(|m| match members.learn(m) {
                    Learned::Dial(addr) => Some((m.name.clone(), addr)),
                    Learned::Known => None,
                })
                .collect()
        };
        for (name, addr) in to_dial {
            if self.shutdown.is_cancelled() {
                return;
            }
            let peer = lock!(self.peers.lock())
                .entry(name.clone())
                .or_insert_with(|| Arc::new(Peer::new(name.clone(), addr, self.events.clone())))
                .clone();
            if peer.is_up() {
                continue;
            }
            *lock!(peer.dial_addr.lock()) = Some(addr);
            tracing::debug!(node = %self.name, member = %name, %addr, "dialing a member learned from {}", from.name());
            tokio::spawn(reconnect(self.clone(), peer, true));
        }
    }

    /// A peer said it is leaving: it will not be redialed.
    pub(crate) fn on_leaving(&self, peer: &Peer) {
        lock!(self.members.lock()).leaving(peer.name());
        *lock!(peer.dial_addr.lock()) = None;
        tracing::info!(node = %self.name, peer = peer.name(), "peer is leaving the cluster");
    }

    /// Sends this node's member list to every live peer (its view
    /// changed).
    fn gossip_all(&self) {
        let list = lock!(self.members.lock()).gossip();
        let peers: Vec<Arc<Peer>> = lock!(self.peers.lock()).values().cloned().collect();
        for link in peers.iter().filter_map(|p| p.link().ok()) {
            for members in list.chunks(gossip_chunk(link.max_frame)) {
                link.send_plain(&Frame::Members {
                    members: members.to_vec(),
                });
            }
        }
    }

    /// Sends `frame` to every live peer.
    pub(crate) fn broadcast(&self, frame: &Frame) {
        let peers: Vec<Arc<Peer>> = lock!(self.peers.lock()).values().cloned().collect();
        for link in peers.iter().filter_map(|p| p.link().ok()) {
            link.send_plain(frame);
        }
    }

    fn emit(&self, event: NodeEvent) {
        self.events.emit(event);
    }

    /// Makes an authenticated connection the session with its peer,
    /// replacing a stale one or losing to a live one (see the rules in the
    /// module docs). Returns the peer.
    fn install(
        self: &Arc<Self>,
        hello: PeerHello,
        conn: Conn,
        addr: SocketAddr,
        we_dialed: bool,
        started: Instant,
    ) -> Result<Arc<Peer>, ClusterError> {
        if self.shutdown.is_cancelled() {
            return Err(ClusterError::Shutdown);
        }
        let peer = lock!(self.peers.lock())
            .entry(hello.name.clone())
            .or_insert_with(|| Arc::new(Peer::new(hello.name.clone(), addr, self.events.clone())))
            .clone();
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (link, pending) = session::open(
            session,
            conn,
            hello.max_frame,
            self.config.send_buffer,
            self.config.decode_limits,
        );
        // Where the member of that name listens, as far as we know (read
        // before `state`: the lock order is `members`, then `state`).
        let known_addr = lock!(self.members.lock()).addr(&hello.name);
        let replaced = {
            let mut st = lock!(peer.state.lock());
            let mut replaced = None;
            if st.status != super::PeerStatus::Down {
                // Another node claiming a live member's name from another
                // address: refused, the live session untouched (a restart
                // comes from the same address).
                if let Some(live) = known_addr
                    .filter(|live| *live != hello.listen && st.incarnation != hello.incarnation)
                {
                    drop(st);
                    tracing::warn!(node = %self.name, peer = %hello.name, claimed = %hello.listen, %live, "a second node claims a live member's name; refused");
                    pending.reject_duplicate();
                    return Err(ClusterError::Handshake {
                        addr,
                        reason: HandshakeError::DuplicateName {
                            name: hello.name,
                            live,
                        },
                    });
                }
                let reason = if st.incarnation != hello.incarnation {
                    Some(DownReason::PeerRestarted)
                } else if st.we_dialed == we_dialed {
                    // The same side dialed again: it saw the old session die.
                    Some(DownReason::Replaced)
                } else if st.since < started {
                    // The session was up before this connection's handshake
                    // began, so the dials did not cross (e.g. `connect` to a
                    // peer that dialed us): keep it.
                    None
                } else {
                    // Both dialed at once: keep the connection dialed by the
                    // smaller name, on both sides alike.
                    let dialer = |us: bool| if us { &self.name } else { &hello.name };
                    (dialer(we_dialed) < dialer(st.we_dialed)).then_some(DownReason::Replaced)
                };
                match reason {
                    None => {
                        drop(st);
                        tracing::debug!(node = %self.name, peer = %hello.name, "duplicate connection refused");
                        pending.reject_duplicate();
                        return Ok(peer);
                    }
                    Some(reason) => {
                        replaced = Some((st.session, reason));
                    }
                }
            }
            st.incarnation = hello.incarnation;
            st.we_dialed = we_dialed;
            st.addr = addr;
            // Before the session runs, so that its end finds where to
            // reconnect: the address this node dialed, or the one the peer
            // listens at (every member redials a member that went down).
            *lock!(peer.dial_addr.lock()) = Some(if we_dialed { addr } else { hello.listen });
            st.rtt = None;
            st.last_heartbeat = None;
            let old = peer.current_link();
            peer.install(&mut st, link.clone());
            replaced.map(|(session, reason)| (session, old, reason))
        };
        if let Some((_, _, DownReason::PeerRestarted)) = &replaced {
            // The old incarnation's names and groups are not the new one's.
            self.forget_entries_of(&hello.name);
        }
        if let Some((old_session, old_link, reason)) = replaced {
            tracing::info!(node = %self.name, peer = %hello.name, %reason, "session replaced");
            if let Some(l) = old_link {
                l.close(reason.clone());
            }
            self.registry.drop_session(old_session);
            peer.emit(NodeEvent::Down {
                peer: hello.name.clone(),
                reason: reason.clone(),
            });
            peer.end_session(old_session, &reason);
        }
        // The writer is registered (so that shutdown flushes it) and `Up`
        // published, with what the peer must hear first queued, before the
        // reader runs: a session that dies at once publishes Down after Up.
        let mut joined = false;
        pending.spawn(self.clone(), peer.clone(), link.clone(), |writer| {
            {
                let mut writers = lock!(self.writers.lock());
                writers.retain(|w| !w.is_finished());
                writers.push(writer);
            }
            // Shut down while we installed: shutdown may have missed it.
            if self.shutdown.is_cancelled() {
                link.close(DownReason::LocalShutdown);
                return;
            }
            tracing::info!(node = %self.name, peer = %hello.name, %addr, "node up");
            self.emit(NodeEvent::Up {
                peer: hello.name.clone(),
            });
            let list = {
                let mut members = lock!(self.members.lock());
                joined = members.up(&hello.name, hello.listen, hello.incarnation);
                members.gossip()
            };
            for members in list.chunks(gossip_chunk(link.max_frame)) {
                link.send_plain(&Frame::Members {
                    members: members.to_vec(),
                });
            }
            self.send_registrations(&link);
            if joined {
                tracing::info!(node = %self.name, member = %hello.name, addr = %hello.listen, "member joined");
                self.emit(NodeEvent::MemberJoined {
                    member: hello.name.clone(),
                });
            }
        });
        if !link.is_open() && self.shutdown.is_cancelled() {
            return Err(ClusterError::Shutdown);
        }
        if joined {
            self.gossip_all();
        }
        Ok(peer)
    }

    /// A session's tasks ended: clean up, publish `Down`, reconnect.
    pub(crate) fn session_ended(self: &Arc<Self>, peer: &Arc<Peer>, link: &Arc<Link>) {
        let leaving = lock!(self.members.lock()).phase(peer.name()) == Some(Phase::Leaving);
        let reason = if leaving {
            // A planned leave: not a failure, whatever ended the transport
            // (its socket closing under our writes, say).
            link.close(DownReason::PeerLeft);
            DownReason::PeerLeft
        } else {
            link.reason()
        };
        self.registry.drop_session(link.session);
        if !peer.end_session(link.session, &reason) {
            return;
        }
        // A newer session may have been installed since `end_session`:
        // then its state is not ours to undo.
        let still_current = {
            let st = lock!(peer.state.lock());
            st.session == link.session && st.status == super::PeerStatus::Down
        };
        if !still_current {
            return;
        }
        self.forget_entries_of(peer.name());
        if leaving && lock!(self.members.lock()).left(peer.name()) {
            tracing::info!(node = %self.name, member = peer.name(), "member left");
            self.emit(NodeEvent::MemberLeft {
                member: peer.name().to_string(),
            });
            return;
        }
        lock!(self.members.lock()).down(peer.name());
        if matches!(reason, DownReason::PeerShutdown(_)) {
            tracing::info!(node = %self.name, peer = peer.name(), %reason, "node down");
        } else {
            tracing::warn!(node = %self.name, peer = peer.name(), %reason, "node down");
        }
        let will_reconnect =
            !self.shutdown.is_cancelled() && lock!(peer.dial_addr.lock()).is_some();
        if will_reconnect {
            tokio::spawn(reconnect(self.clone(), peer.clone(), false));
        }
    }
}

/// Opens, authenticates and installs a connection to `addr`; with
/// `expect`, only if the node there has that name. If the node there was
/// dialing us at the same moment and its connection won, returns the peer
/// once that connection is up.
async fn dial(
    node: &Arc<NodeInner>,
    addr: SocketAddr,
    expect: Option<&str>,
) -> Result<Arc<Peer>, ClusterError> {
    if node.shutdown.is_cancelled() {
        return Err(ClusterError::Shutdown);
    }
    // From the start of the dial (before the TCP connect, so that a
    // crossing dial from that node, however fast, meets it), a
    // simultaneous dial by that node may lose to this one; only for
    // `FRESH_DIAL` (see `admit_peer`).
    let dialed = {
        let _dialing = Dialing::new(node, addr, expect);
        dial_once(node, addr, expect).await
    };
    match dialed {
        Err(ClusterError::Handshake {
            reason: HandshakeError::SimultaneousConnect { peer },
            ..
        }) => {
            // The other connection carries the session: wait for it, by the
            // name the handshake told us (the address may be another form
            // of the one the peer listens at).
            let deadline = Instant::now() + node.config.handshake_timeout;
            loop {
                if let Some(p) = node.peer(&peer).filter(|p| p.is_up()) {
                    return Ok(p);
                }
                if Instant::now() >= deadline || node.shutdown.is_cancelled() {
                    return Err(ClusterError::Handshake {
                        addr,
                        reason: HandshakeError::SimultaneousConnect { peer },
                    });
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        other => other,
    }
}

/// Registers a dial of ours in progress, until dropped.
struct Dialing<'a>(&'a NodeInner, Vec<DialKey>);

impl<'a> Dialing<'a> {
    fn new(node: &'a NodeInner, addr: SocketAddr, expect: Option<&str>) -> Self {
        let keys: Vec<DialKey> = std::iter::once(DialKey::Addr(addr))
            .chain(expect.map(|name| DialKey::Name(name.to_string())))
            .collect();
        let now = Instant::now();
        let mut dialing = lock!(node.dialing.lock());
        for key in &keys {
            let entry = dialing.entry(key.clone()).or_insert((0, now));
            entry.0 += 1;
            entry.1 = now;
        }
        drop(dialing);
        Dialing(node, keys)
    }
}

impl Drop for Dialing<'_> {
    fn drop(&mut self) {
        let mut dialing = lock!(self.0.dialing.lock());
        for key in &self.1 {
            if let Some(entry) = dialing.get_mut(key) {
                entry.0 -= 1;
                if entry.0 == 0 {
                    dialing.remove(key);
                }
            }
        }
    }
}

/// One dial: connect, handshake, install.
async fn dial_once(
    node: &Arc<NodeInner>,
    addr: SocketAddr,
    expect: Option<&str>,
) -> Result<Arc<Peer>, ClusterError> {
    let timeout = node.config.handshake_timeout;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(ClusterError::Connect {
                addr,
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(ClusterError::Connect {
                addr,
                reason: format!("no answer within {timeout:?}"),
            })
        }
    };
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let handshake = async {
        let mut conn = tls::dial(&node.config, stream, addr).await?;
        let hello = handshake::dial(&mut conn, &node.identity(expect)).await?;
        Ok((conn, hello))
    };
    let (mut conn, hello) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(reason)) => return Err(ClusterError::Handshake { addr, reason }),
        Err(_) => {
            return Err(ClusterError::Handshake {
                addr,
                reason: HandshakeError::Timeout(timeout),
            })
        }
    };
    conn.authenticated(node.config.max_frame_size);
    node.install(hello, conn, addr, true, started)
}

/// Accepts connections until the node shuts down.
async fn accept_loop(node: Arc<NodeInner>, listener: TcpListener) {
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    // Unauthenticated connections are bounded in number,
                    // per address and in time (see `gate`): a flood cannot
                    // exhaust us nor lock honest peers out.
                    let (id, token) = node.admit_handshake(addr);
                    let node = node.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = accept_one(node.clone(), stream, addr) => {}
                            _ = token.cancelled() => {
                                tracing::debug!(node = %node.name, %addr, "handshake evicted by newer connections");
                            }
                        }
                        node.handshake_done(id);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, retry.
                    tracing::warn!(node = %node.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

impl NodeInner {
    /// Admits an incoming connection's handshake; cancels the one it
    /// evicts. Returns its id and the token that evicts it.
    fn admit_handshake(&self, addr: SocketAddr) -> (u64, CancellationToken) {
        let mut gate = lock!(self.gate.lock());
        let (gate, tokens) = &mut *gate;
        let admit = gate.admit(addr.ip());
        if let Some(old) = admit.evict.and_then(|id| tokens.remove(&id)) {
            old.cancel();
        }
        let token = CancellationToken::new();
        tokens.insert(admit.id, token.clone());
        (admit.id, token)
    }

    /// An incoming connection's handshake ended, one way or another.
    fn handshake_done(&self, id: u64) {
        let mut gate = lock!(self.gate.lock());
        gate.0.release(id);
        gate.1.remove(&id);
    }
}

/// Authenticates one incoming connection and installs it.
async fn accept_one(node: Arc<NodeInner>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let timeout = node.config.handshake_timeout;
    let admit = |hello: &PeerHello| node.admit_peer(hello);
    let me = Identity {
        admit: Some(&admit),
        ..node.identity(None)
    };
    let handshake = async {
        let mut conn = tls::accept(&node.config, stream).await?;
        let hello = handshake::accept(&mut conn, &me).await?;
        Ok((conn, hello))
    };
    let reason = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok((mut conn, hello))) => {
            conn.authenticated(node.config.max_frame_size);
            if let Err(e) = node.install(hello, conn, addr, false, started) {
                tracing::debug!(node = %node.name, %addr, error = %e, "incoming session not installed");
            }
            return;
        }
        Ok(Err(HandshakeError::SimultaneousConnect { .. })) => {
            // Routine: our own dial to that node carries the session.
            tracing::debug!(node = %node.name, %addr, "simultaneous connect: our own dial wins");
            return;
        }
        Ok(Err(e)) => e,
        Err(_) => HandshakeError::Timeout(timeout),
    };
    node.events.rejected(addr, &reason);
}

/// Reconnects to a peer, with backoff, until it is back or this node shuts
/// down (or the peer leaves); `at_once` skips the first delay (a member
/// just learned of). At most one loop runs per peer.
///
/// Attempts start one backoff step apart, and each attempt gets only its
/// step (at least [`MIN_ATTEMPT`], at most the handshake timeout): an
/// attempt that started inside a silent partition does not hold up the
/// next one, so the session is back within about one step of the network
/// healing.
async fn reconnect(node: Arc<NodeInner>, peer: Arc<Peer>, at_once: bool) {
    let _one = peer.reconnecting.lock().await;
    let mut attempt: u32 = 0;
    let mut next = Instant::now();
    if !at_once {
        next += node.config.reconnect.delay(0, &mut rand::rng());
    }
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        if node.shutdown.is_cancelled() || peer.is_up() {
            return;
        }
        let Some(addr) = *lock!(peer.dial_addr.lock()) else {
            return;
        };
        attempt = attempt.saturating_add(1);
        // A member only heard of from a list, never reached: after this
        // many attempts it is forgotten (a stale list entry must not be
        // dialed forever); it comes back if a live member lists it again.
        if at_once
            && attempt > FORGET_UNREACHED
            && lock!(node.members.lock()).forget_unreached(peer.name())
        {
            // The `Peer` stays: handles to it keep working if the member
            // is heard of again.
            *lock!(peer.dial_addr.lock()) = None;
            tracing::info!(node = %node.name, member = peer.name(), attempts = attempt - 1, "a member heard of but never reached is forgotten");
            return;
        }
        let step = node.config.reconnect.delay(attempt, &mut rand::rng());
        let window = step
            .max(MIN_ATTEMPT)
            .min(node.config.handshake_timeout.max(MIN_ATTEMPT));
        next = Instant::now() + window;
        let dialed = tokio::select! {
            _ = node.shutdown.cancelled() => return,
            r = tokio::time::timeout_at(next, dial(&node, addr, Some(peer.name()))) => r,
        };
        match dialed {
            Ok(Ok(_)) => return,
            Ok(Err(ClusterError::Handshake { reason, .. })) => {
                let reason = DownReason::HandshakeFailed(reason);
                tracing::warn!(node = %node.name, peer = peer.name(), %reason, "reconnection refused");
                let changed = {
                    let mut st = lock!(peer.state.lock());
                    let changed = st.down_reason.as_ref() != Some(&reason);
                    st.down_reason = Some(reason.clone());
                    changed
                };
                if changed {
                    peer.emit(NodeEvent::Down {
                        peer: peer.name().to_string(),
                        reason,
                    });
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(node = %node.name, peer = peer.name(), attempt, error = %e, "reconnection failed");
            }
            Err(_) => {
                tracing::debug!(node = %node.name, peer = peer.name(), attempt, "reconnection attempt took its whole step; trying again");
            }
        }
    }
}

/// Joins through a seed: dials it with backoff until a session with it is
/// up, this node is connected to anyone else (who will tell it the
/// members), or the node shuts down. A seed that is this node itself is
/// skipped.
async fn join_seed(node: Arc<NodeInner>, seed: SocketAddr) {
    if seed == node.advertised || seed == node.local_addr {
        return;
    }
    let mut attempt: u32 = 0;
    loop {
        if node.shutdown.is_cancelled() || node.live_peer_at(seed).is_some() {
            return;
        }
        match dial(&node, seed, None).await {
            Ok(_) => return,
            Err(ClusterError::Handshake {
                reason: HandshakeError::SameName(_),
                ..
            }) => return,
            Err(e) => {
                tracing::debug!(node = %node.name, %seed, attempt, error = %e, "seed not reached; retrying");
            }
        }
        let delay = node.config.reconnect.delay(attempt, &mut rand::rng());
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
