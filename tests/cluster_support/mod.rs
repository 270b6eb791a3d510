//! Shared support for the cluster tests: fast-heartbeat node configs, a
//! probe actor to call and cast to, bounded waits on node events, and a
//! fault-injecting TCP proxy ([`proxy`]).
//!
//! Use it from a test file with `mod cluster_support;`. Not every test uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod proxy;

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::phi::{PhiConfig, PhiDetector};
use ractor_otp::cluster::{DownReason, Node, NodeConfig, NodeEvent, NodeEvents, RemoteReply};
use ractor_otp::Backoff;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Heartbeat interval of the test nodes.
pub const HEARTBEAT: Duration = Duration::from_millis(50);
/// Acceptable pause of the test nodes' failure detector.
pub const PAUSE: Duration = Duration::from_millis(100);
/// Minimum standard deviation of the test nodes' failure detector.
pub const MIN_STD: Duration = Duration::from_millis(20);
/// Phi threshold of the test nodes (the default).
pub const THRESHOLD: f64 = 8.0;
/// Handshake timeout of the test nodes: a reconnection attempt whose bytes
/// are dropped gives up this fast.
pub const HANDSHAKE: Duration = Duration::from_millis(300);

/// The test nodes' reconnection backoff: 50 ms doubling to 200 ms, no jitter.
pub fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(200))
}

/// A config for `name` with fast heartbeats (a silent peer is detected in
/// about [`time_to_detect`]), fast reconnection and a shared cookie.
pub fn fast_config(name: &str) -> NodeConfig {
    NodeConfig::new(name)
        .cookie("cluster test cookie")
        .heartbeat_interval(HEARTBEAT)
        .phi_threshold(THRESHOLD)
        .acceptable_pause(PAUSE)
        .min_std_dev(MIN_STD)
        .reconnect(backoff())
        .handshake_timeout(HANDSHAKE)
        .request_timeout(Duration::from_secs(2))
}

/// Starts a node with [`fast_config`].
pub async fn start_node(name: &str) -> Node {
    Node::start(fast_config(name))
        .await
        .expect("start a node on loopback")
}

/// How long after its last heartbeat a peer that falls silent is declared
/// down by a fresh detector with the test settings (about 254 ms).
pub fn time_to_detect() -> Duration {
    PhiDetector::new(PhiConfig {
        threshold: THRESHOLD,
        heartbeat_interval: HEARTBEAT,
        min_std_dev: MIN_STD,
        acceptable_pause: PAUSE,
        ..PhiConfig::default()
    })
    .time_to_threshold()
}

/// What the probe actor is told.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
pub enum Probe {
    /// Answer with the number.
    Echo(u64, RemoteReply<u64>),
    /// Remember the number.
    Record(u64),
    /// Answer with every number remembered, in arrival order.
    Recorded(RemoteReply<Vec<u64>>),
}

/// An actor that echoes and records numbers.
pub struct ProbeActor;

impl Actor for ProbeActor {
    type Msg = Probe;
    type State = Vec<u64>;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Probe>, _: ()) -> Result<Vec<u64>, ActorProcessingErr> {
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _: ActorRef<Probe>,
        msg: Probe,
        seen: &mut Vec<u64>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Probe::Echo(n, reply) => {
                reply.send(n);
            }
            Probe::Record(n) => seen.push(n),
            Probe::Recorded(reply) => {
                reply.send(seen.clone());
            }
        }
        Ok(())
    }
}

/// Spawns a probe and exports it on `node` as `name`.
pub async fn export_probe(node: &Node, name: &str) -> ActorRef<Probe> {
    let (probe, _) = Actor::spawn(None, ProbeActor, ())
        .await
        .expect("spawn a probe");
    node.export(name, probe.clone()).expect("export the probe");
    probe
}

/// The next `Up` or `Down` about `peer`, skipping every other event; panics
/// after `within`.
pub async fn next_link_event(events: &mut NodeEvents, peer: &str, within: Duration) -> NodeEvent {
    let deadline = Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no Up or Down about `{peer}` within {within:?}"))
            .expect("the node is running");
        match &event {
            NodeEvent::Up { peer: p } | NodeEvent::Down { peer: p, .. } if p == peer => {
                return event
            }
            _ => {}
        }
    }
}

/// Waits for `peer` to go down and returns why; panics if it comes up
/// first or nothing happens within `within`.
pub async fn expect_down(events: &mut NodeEvents, peer: &str, within: Duration) -> DownReason {
    match next_link_event(events, peer, within).await {
        NodeEvent::Down { reason, .. } => reason,
        other => panic!("expected `{peer}` to go down, got {other:?}"),
    }
}

/// Waits for `peer` to come up; returns the `Down`s published before it
/// (failed reconnection attempts). Panics after `within`.
pub async fn expect_up(events: &mut NodeEvents, peer: &str, within: Duration) -> Vec<DownReason> {
    let deadline = Instant::now() + within;
    let mut downs = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_link_event(events, peer, left).await {
            NodeEvent::Up { .. } => return downs,
            NodeEvent::Down { reason, .. } => downs.push(reason),
            _ => {}
        }
    }
}

/// Every event already published and not read yet.
pub fn drain(events: &mut NodeEvents) -> Vec<NodeEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}
