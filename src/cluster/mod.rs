//! Nodes, remote actors and heartbeats (feature `cluster`, on by default).
//!
//! A [`Node`] listens on TCP, connects to peers, and lets local actors be
//! reached from other nodes by name. The transport is our own, built from
//! tokio TCP, `tokio-util`'s length-delimited framing, serde + bincode 2
//! payloads and an HMAC-SHA256 handshake; ractor's own `cluster` feature is
//! not used.
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
//! assert!(matches!(events.recv().await, Some(NodeEvent::Down { .. })));
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
//! | handshake | mutual HMAC-SHA256 challenge–response over the cookie, both names and a fresh nonce from each side, constant-time comparison; nothing else is accepted before it succeeds. **The cookie authenticates but does not encrypt**, nor bind the session to the connection: an attacker on the network path can read and inject frames. On untrusted networks use a VPN or an encrypted tunnel (TLS is not built in yet). Use a long random cookie. Before the handshake a connection may send only handshake-sized frames (4 KiB), for at most `handshake_timeout`, and at most 64 connections authenticate at once (more are dropped: a flood of idle connections delays new peers, never existing sessions). |
//! | failure detection | heartbeats every `heartbeat_interval`; the phi-accrual detector ([`phi`]) declares the peer down above `phi_threshold`. Phi is judged at each heartbeat tick, so with the defaults a silent peer is down at the first tick after phi crosses 8 (1.22 s of silence): between 1.22 and 1.42 s after its last heartbeat, depending on where the ticks fall; about 1.4 s where both nodes' ticks line up, as on loopback (measured 1.399–1.411 s, two processes, `kill -STOP`). A closed socket is a down event at once. Bytes of any frame count as signs of life, and a tick that comes late because this node stalled does not judge. |
//! | down | subscribers get [`NodeEvent::Down`] with a [`DownReason`]; calls pending on that session fail with [`ClusterError::NodeDown`]; monitors fire with [`ActorDownReason::NodeDown`]; casts still queued become [`NodeEvent::DeadLetter`]s. |
//! | reconnect | the node that called [`Node::connect`] reconnects with the configured [`Backoff`](crate::Backoff) until the peer (the node with that name) is back, then publishes `Up` again. The peer that accepted waits to be dialed. A reconnection attempt that fails its handshake publishes `Down` again with [`DownReason::HandshakeFailed`] (once per new reason). |
//! | ordering | casts and calls from one sender to one remote actor arrive in send order while the session lives; nothing is delivered twice. Delivery is at most once: frames already written to a connection that breaks may be lost; calls among them fail with `NodeDown`, casts are covered only by the `Down` event (casts still queued on this node become dead letters). The converse also holds: **a call that failed with `NodeDown` (or `Timeout`) may still have been handled** by the remote actor, whose answer then has nowhere to go. |
//! | replies | [`RemoteReply::send`] never fails the handler: it returns a [`Replied`] outcome (`Sent`, `CallerGone`, `Unencodable`), not a `Result`, and logs the last two (debug, warn), as Erlang's `gen_server:reply` always returns `ok`. A handler has nothing to propagate with `?`, so an exported actor is never stopped by a caller that went away. An answer that does not encode reaches the caller as [`Refusal::ReplyEncode`]; a port dropped unanswered as [`Refusal::ReplyDropped`]. |
//! | refusals | a message for a name nobody exports, or whose type tag differs from the exported actor's, is refused with a [`Refusal`]: a call fails with [`ClusterError::Refused`], a cast comes back as a [`NodeEvent::DeadLetter`]. The session stays up. |
//! | monitors | [`Node::monitor`] fires once (like Erlang's), when the actor ends (with ractor's exit reason), is unexported, or its node goes down. An export made with [`Node::export_child`] follows restarts, so its monitors fire only when it is unexported or its node goes down. |
//! | supervision | [`ChildSpec::remote`](crate::ChildSpec::remote) puts a remote actor under a local supervisor: a stand-in child that casts to it and exits abnormally when it (or its node) goes down, so restart types, intensity, backoff and escalation apply. [`Node::export_child`] goes the other way: an export that follows a supervised child across restarts. |
//! | duplicates | if two nodes dial each other at once, both keep the connection dialed by the smaller node name; a node dialing a peer whose session (dialed by the peer) is established keeps that session. A new connection from a restarted peer (new incarnation), or dialed again by the same side, replaces the old one. |
//! | panics | nothing read from the network panics or allocates beyond what the maximum frame size allows; a panic in a message type's `Deserialize` refuses that message; names and tags are 1 to 1024 bytes. |

mod config;
mod error;
mod events;
pub mod handshake;
mod message;
mod node;
mod peer;
pub mod phi;
mod registry;
mod remote_child;
mod remote_ref;
mod session;
pub mod wire;

pub use config::NodeConfig;
pub use error::{ClusterError, DownReason};
pub use events::{NodeEvent, NodeEvents, PeerInfo, PeerStatus, UndeliveredReason};
pub use handshake::HandshakeError;
pub use message::RemoteMessage;
pub use node::Node;
pub use remote_ref::{ActorDownReason, RemoteDown, RemoteMonitor, RemoteRef, RemoteReply, Replied};
pub use wire::{Refusal, WireError};
