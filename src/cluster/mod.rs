//! Nodes, remote actors and heartbeats (feature `cluster`, on by default).
//!
//! A [`Node`] listens on TCP, connects to peers, and lets local actors be
//! reached from other nodes by name. The transport is our own, built from
//! tokio TCP, `tokio-util`'s length-delimited framing, serde + bincode 2
//! payloads and an HMAC-SHA256 handshake; ractor's own `cluster` feature is
//! not used. With the `tls` feature, `NodeConfig::tls` runs every
//! connection in TLS 1.3 (rustls) with mutual certificate authentication:
//! use it on untrusted networks ([`tls`] says what is checked).
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::cluster::{Node, NodeConfig, NodeEvent, RemoteReply};
//! use ractor_otp::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
//! enum Counter {
//!     Add(u64),
//!     Get(RemoteReply<u64>),
//! }
//!
//! #[derive(Clone)]
//! struct CounterActor;
//! impl Actor for CounterActor {
//!     type Msg = Counter;
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Counter>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: ActorRef<Counter>, msg: Counter, n: &mut u64) -> Result<(), ActorProcessingErr> {
//!         match msg {
//!             Counter::Add(k) => *n += k,
//!             // Never fails the actor: a caller that has gone away is
//!             // logged, not raised (see `RemoteReply`).
//!             Counter::Get(reply) => {
//!                 reply.send(*n);
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Node "a" supervises a counter and exports it; the export follows the
//! // child across restarts.
//! let a = Node::start(NodeConfig::new("a").cookie("secret")).await?;
//! let spec = SupervisorSpec::new(Strategy::OneForOne)
//!     .child(ChildSpec::new("counter", CounterActor, || ()));
//! let (sup, _join) = Supervisor::spawn(None, spec).await?;
//! a.export_child("counter", sup.child::<Counter>("counter").expect("counter"))?;
//!
//! // Node "b" connects, looks it up, casts and calls.
//! let b = Node::start(NodeConfig::new("b").cookie("secret")).await?;
//! let mut events = b.subscribe();
//! b.connect(a.local_addr()).await?;
//! assert_eq!(events.recv().await, Some(NodeEvent::Up { peer: "a".into() }));
//!
//! let remote = b.lookup::<Counter>("a", "counter").await?;
//! remote.cast(Counter::Add(2))?;
//! remote.cast(Counter::Add(3))?;
//! let n = remote.call(Counter::Get, Duration::from_secs(1)).await?;
//! assert_eq!(n, 5); // casts and calls from one sender arrive in order
//!
//! // When "a" goes away, "b" hears it.
//! a.shutdown().await;
//! // (after `MemberJoined` for "a", the next event about it is `Down`)
//! loop {
//!     match events.recv().await {
//!         Some(NodeEvent::Down { .. }) => break,
//!         Some(_) => continue,
//!         None => panic!("b's events ended without a Down"),
//!     }
//! }
//! b.shutdown().await;
//! sup.cell().stop_and_wait(None, None).await?;
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! | topic | what this layer does |
//! |---|---|
//! | frames | 4-byte length prefix, protocol version byte, bincode 2 header, payload ([`wire`]). A frame above the maximum, an unknown version or one that does not decode closes that session only, with a logged reason. |
//! | handshake | mutual HMAC-SHA256 challenge–response over the cookie, both names and a fresh nonce from each side, constant-time comparison; nothing else is accepted before it succeeds. **The cookie authenticates but does not encrypt**, nor bind the session to the connection: an attacker on the network path can read and inject frames. On untrusted networks use the `tls` feature (`NodeConfig::tls`, next row). Use a long random cookie. Before the handshake a connection may send only handshake-sized frames (4 KiB), for at most `handshake_timeout` (a deadline a slow drip cannot extend). At most 512 connections authenticate at once, 32 from one IP address; past a bound the *oldest* handshake in the way is closed, not the newcomer, so a flood from one address evicts only its own connections and an honest peer, which needs a few round trips, gets in (see `gate`). Failed handshakes are logged and reported coalesced: the first per address and reason each second, then a count. |
//! | tls | feature `tls`: `NodeConfig::tls` wraps every connection in TLS 1.3 (rustls, ring) before the cookie handshake, which runs inside it. Both sides present a certificate and verify the other's chain against their trusted roots; names in certificates are not checked (nodes dial by IP; the cookie authenticates the name), so the roots should be the cluster's own CA. A TLS node and a plain node refuse each other with [`HandshakeError::Tls`] (or the peer's `Rejected` reason) saying to enable TLS on both. See [`tls`]. |
//! | failure detection | heartbeats every `heartbeat_interval`; the phi-accrual detector ([`phi`]) declares the peer down above `phi_threshold`. Phi is judged at each heartbeat tick, so with the defaults a silent peer is down at the first tick after phi crosses 8 (1.22 s of silence): between 1.22 and 1.42 s after its last heartbeat, depending on where the ticks fall; about 1.4 s where both nodes' ticks line up, as on loopback (measured 1.399–1.411 s, two processes, `kill -STOP`). A closed socket is a down event at once. Bytes of any frame count as signs of life, and a tick that comes late because this node stalled does not judge. |
//! | down | subscribers get [`NodeEvent::Down`] with a [`DownReason`]; calls pending on that session fail with [`ClusterError::NodeDown`]; monitors fire with [`ActorDownReason::NodeDown`]; every cast not yet written (queued, or in the batch being written) becomes a dead letter. |
//! | events | every subscriber has its own queue and gets every lifecycle event (`Up`, `Down`, members, name conflicts) in order, none dropped. Dead letters and rejections are coalesced per peer (or address) and reason: the first each second is an event at once, the rest one event with their `count`; a subscriber that leaves 4,096 events unread stops getting these reports until it catches up (bounded memory under a flood from many addresses). Each dead letter itself, with the message when this node still had it, goes to [`NodeConfig::on_dead_letter`]. |
//! | back-pressure | each session holds at most [`NodeConfig::send_buffer`] bytes (default 4 MiB) for its peer. Past it, `cast` and `call` fail at once with [`ClusterError::Busy`] (a cast hands its message back in [`RemoteCastError`]), and [`RemoteRef::cast_wait`] waits for room. Replies and answers owed to a peer may take twice the limit plus two of its largest frames; a peer that does not read past that is disconnected ([`DownReason::PeerNotReading`]). Heartbeats have their own queue, written before data and between 64 KiB batches; bytes of a large frame still arriving count as heartbeats for the detector, so a stall behind a large frame is judged like any other silence. |
//! | reconnect | the node that called [`Node::connect`] reconnects with the configured [`Backoff`](crate::Backoff) until the peer (the node with that name) is back, then publishes `Up` again. Attempts start one backoff step apart and each gets only its step (at least 500 ms, at most `handshake_timeout`), so an attempt begun inside a partition never delays the reconnection past one step after the network heals. The peer that accepted waits to be dialed. A reconnection attempt that fails its handshake publishes `Down` again with [`DownReason::HandshakeFailed`] (once per new reason). |
//! | ordering | casts and calls from one sender to one remote actor arrive in send order while the session lives; nothing is delivered twice. Delivery is at most once: frames already written to a connection that breaks may be lost; calls among them fail with `NodeDown`, casts are covered only by the `Down` event (casts never written become dead letters). |
//! | replies | [`RemoteReply::send`] never fails the handler: it returns a [`Replied`] outcome (`Sent`, `CallerGone`, `Unencodable`), not a `Result`, and logs the last two (debug, warn), as Erlang's `gen_server:reply` always returns `ok`. A handler has nothing to propagate with `?`, so an exported actor is never stopped by a caller that went away. An answer that does not encode reaches the caller as [`Refusal::ReplyEncode`]; a port dropped unanswered as [`Refusal::ReplyDropped`]. |
//! | refusals | a message for a name nobody exports, or whose type tag differs from the exported actor's, is refused with a [`Refusal`]: a call fails with [`ClusterError::Refused`], a cast is a dead letter (counted in [`NodeEvent::DeadLetter`], handed to the dead-letter handler without its message: the peer does not send it back). The session stays up. |
//! | monitors | [`Node::monitor`] fires once (like Erlang's), when the actor ends (with ractor's exit reason), is unexported, or its node goes down. An export made with [`Node::export_child`] follows restarts, so its monitors fire only when it is unexported or its node goes down. |
//! | supervision | [`ChildSpec::remote`](crate::ChildSpec::remote) puts a remote actor under a local supervisor: a stand-in child that casts to it and exits abnormally when it (or its node) goes down, so restart types, intensity, backoff and escalation apply. [`Node::export_child`] goes the other way: an export that follows a supervised child across restarts. |
//! | duplicates | if two nodes dial each other at once, the connection dialed by the node with the smaller name wins, settled inside the handshake before either side installs anything: each side sees one `Up` and no `Down`, and a call made right after `connect` returns never meets a closed session (the loser's `connect` returns the winning session). A node dialing a peer whose session is established keeps that session. A new connection from a restarted peer (new incarnation) replaces the old one. |
//! | membership | [`NodeConfig::seeds`] or [`Node::join`]: one live member is a door in. Sessions exchange member lists (name, listen address, incarnation) when they come up and whenever a member joins, and every node dials the members it lacks, so the cluster becomes a full mesh (Erlang's transitive connections). [`Node::members`] shows each member's [`MemberStatus`]; [`NodeEvent::MemberJoined`] and [`NodeEvent::MemberLeft`] report changes (`Up`/`Down` stay the session's health). Every node redials a member that went `Down`, with backoff, not only the side that first dialed. [`Node::leave`] is a planned leave: members mark it `Left` (its `Down` carries [`DownReason::PeerLeft`], not a failure) and never redial it. A node claiming a live member's name from another address is refused ([`HandshakeError::DuplicateName`]) and the live session is untouched; the same address with a new incarnation is a restart. |
//! | entities | [`Node::register_kind`], [`Node::entities`], [`Node::entity`] ([`EntityRef`]), [`Node::singleton`], [`Node::singleton_ref`]: an actor starts on its key's owner (rendezvous hashing over the hosts of its type; a singleton on the oldest host), from its latest checkpoint; a new owner has every reachable host hand the key over (finish, save, stop) before it starts it; checkpoints go to the next hosts in the key's order before a reply is sent; a host that loses a session stops the keys the peer could take; a node on the minority side runs none (keep-majority). Details and the exact promises: `RELIABILITY.md`. |
//! | panics | nothing read from the network panics or allocates beyond what the maximum frame size allows; a payload is decoded within [`DecodeLimits`] (nesting depth, elements claimed), so no single frame can overflow the reader's stack or keep it busy; a panic in a message type's `Deserialize` refuses that message; names and tags are 1 to 1024 bytes. |

//! # Concurrent maps on the send path
//!
//! | map | structure | why |
//! |---|---|---|
//! | peers (by name) | `Mutex<HashMap>` | not on the send path: a [`RemoteRef`] holds its peer; taken on connect, lookup and membership changes |
//! | exports (by name) | `RwLock<HashMap>` plus a generation counter | the reader resolves a cast's export once and keeps it while the generation is unchanged, so the lock is not taken per message (issue 13: 2.6–3.1 M casts/s) |
//! | names and groups (the replicated view) | one `Mutex` over plain maps, group member lists as shared snapshots rebuilt only after a change | a read is one uncontended lock and a lookup: `whereis` measures 27.8 ns against 10.1 ns for a bare `HashMap::get` (`cargo bench --bench cluster -- cluster_whereis`), far under the 1 µs target; writes are rare |
//! | each [`NamedRef`]'s and [`GroupRef`]'s remote handles | `dashmap` 6 | read on every routed send by many tasks at once; sharded locks keep clones of one handle from contending |
//! | calls and monitors waiting for answers | `Mutex<HashMap>` per peer | one insert and one remove per call, against a 13 µs round trip |
//!
//! # How far a full mesh goes
//!
//! Every member holds a session with every other, each with its own
//! heartbeats: n nodes keep n·(n−1)/2 TCP connections and send
//! n·(n−1)/interval heartbeats (at the default 200 ms, 16 nodes send 1,200
//! heartbeats a second in all, 75 per node; 100 nodes would send 49,500, 495
//! per node, each judged by its own detector). Joining costs one member list
//! per session, O(n) bytes each, so O(n²) for the whole join wave. That is
//! right up to a few dozen nodes (Erlang's distribution and Akka's cluster
//! live there too); member lists are capped at 200 entries. Past that, the
//! all-to-all heartbeats should give way to SWIM-style membership (random
//! probes with indirect pings and gossip-piggybacked updates, constant load
//! per node; the `foca` crate is an existing engine), published through the
//! same [`NodeEvent`] API, with sessions opened on demand rather than to
//! every member.

mod config;
mod entities;
mod entity_host;
mod error;
mod events;
mod gate;
mod global;
pub mod handshake;
pub mod membership;
mod message;
pub mod names;
mod node;
mod outbox;
mod peer;
pub mod phi;
mod placement;
mod registry;
mod remote_child;
mod remote_ref;
mod replica;
mod session;
mod tally;
pub mod tls;
pub mod wire;
mod wire_limits;

pub use config::{NodeConfig, DEFAULT_SEND_BUFFER};
pub use entities::{EntityRef, EntitySpec, SingletonSpec, HOLD_CASTS_FOR, MAX_HELD_CASTS};
pub use error::{ClusterError, DownReason, RemoteCastError};
pub use events::{
    NodeEvent, NodeEvents, PeerInfo, PeerStatus, RemoteDeadLetter, UndeliveredReason,
};
pub use global::{GroupMemberInfo, GroupRef, GroupRouting, NamedRef, MAX_GLOBAL_NAME};
pub use handshake::HandshakeError;
pub use membership::{Member, MemberStatus};
pub use message::RemoteMessage;
pub use node::Node;
pub use remote_ref::{ActorDownReason, RemoteDown, RemoteMonitor, RemoteRef, RemoteReply, Replied};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsError};
pub use wire::{DecodeLimits, Refusal, WireError};
