//! What a node reports about its peers: events and per-peer state.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::DownReason;
use super::handshake::HandshakeError;
use super::message::RemoteMessage;
use super::tally::{Hit, Summary, Tally};
use super::wire::{self, Refusal};

/// Why a cast to a remote actor was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UndeliveredReason {
    /// The peer received it and refused it.
    #[error("refused by the peer: {0}")]
    Refused(Refusal),
    /// It was still queued on this node when the session closed.
    #[error("still queued when the session closed: {0}")]
    SessionClosed(DownReason),
    /// It was held for an entity or singleton that could not be started
    /// (the text says why: minority side, lost checkpoint, too many held).
    #[error("its entity could not be started: {0}")]
    EntityUnavailable(String),
}

/// A peer's state as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// Connected, heartbeats arriving.
    Up,
    /// Connected, but phi is above half the threshold: heartbeats are late.
    Suspect,
    /// Not connected (down, or reconnecting).
    Down,
}

/// A snapshot of one peer, from [`Node::peers`](super::Node::peers) and
/// [`Node::connect`](super::Node::connect).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// The peer's node name.
    pub name: String,
    /// The peer's address (the one we dialed, or the one it came from).
    pub addr: SocketAddr,
    /// Up, suspect or down.
    pub status: PeerStatus,
    /// The failure detector's current suspicion level (0 when fresh).
    pub phi: f64,
    /// The last measured heartbeat round-trip time.
    pub rtt: Option<Duration>,
    /// When the last heartbeat arrived.
    pub last_heartbeat: Option<Instant>,
    /// Why the peer is down, when it is.
    pub down_reason: Option<DownReason>,
}

/// Something that happened to this node's peers. Subscribe with
/// [`Node::subscribe`](super::Node::subscribe).
///
/// Every subscriber gets every lifecycle event (`Up`, `Down`, members,
/// name conflicts), in order, none dropped: they are never lost behind a
/// flood. Floods are coalesced before they
/// reach the stream: of the dead letters for one peer and reason, and of
/// the rejected connections from one address for one reason, the first in
/// each one-second window is an event at once (`count: 1`), and the rest
/// of that window come as one event with their `count` when it closes. A
/// subscriber that leaves 4,096 events unread stops getting these reports
/// (a warning is logged) until it catches up, so a flood of connections
/// from many addresses cannot grow a forgotten subscription without bound.
/// Each undelivered message itself goes to the dead-letter handler
/// ([`NodeConfig::on_dead_letter`](super::NodeConfig::on_dead_letter)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A session with `peer` was established (first time or after a
    /// reconnection).
    Up {
        /// The peer's name.
        peer: String,
    },
    /// The session with `peer` ended.
    Down {
        /// The peer's name.
        peer: String,
        /// Why.
        reason: DownReason,
    },
    /// A node became a member of the cluster as this node sees it: its
    /// first session came up (or it came back after leaving).
    MemberJoined {
        /// The member's name.
        member: String,
    },
    /// A member left the cluster (a planned [`Node::leave`](super::Node::leave),
    /// not a failure): it is not redialed.
    MemberLeft {
        /// The member's name.
        member: String,
    },
    /// A name was registered on two nodes (after a partition healed); the
    /// earlier registration keeps it (ties: the smaller node name), the
    /// other is unregistered (its actor keeps running).
    NameConflict {
        /// The name.
        name: String,
        /// The node that keeps it.
        winner: String,
        /// The node that gave it up.
        loser: String,
    },
    /// An entity or singleton could not be started because every copy of
    /// its checkpoint is gone (its owner and the replicas holding it died
    /// together). It is not started from scratch unless its spec allows
    /// ([`EntitySpec::fresh_when_lost`](super::EntitySpec::fresh_when_lost));
    /// its messages are dead letters.
    CheckpointLost {
        /// The entity type (or `\u{1}singleton:<name>`).
        ty: String,
        /// The key.
        key: String,
        /// The last checkpoint number known to have been saved.
        last_seq: u64,
    },
    /// Connections from `addr` failed the handshake and were closed.
    Rejected {
        /// Where it came from (the latest, for a summary).
        addr: SocketAddr,
        /// Why it was refused (the latest, for a summary).
        reason: String,
        /// How many: 1 for the first in a window, else the rest of the
        /// window.
        count: u64,
    },
    /// Casts to actors on `peer` could not be delivered there. The
    /// messages themselves went to the dead-letter handler.
    DeadLetter {
        /// The peer's name.
        peer: String,
        /// The exported name the cast was for (the latest, for a summary).
        actor: String,
        /// The message type's tag (the latest, for a summary).
        tag: String,
        /// Why it was not delivered (the latest, for a summary).
        reason: UndeliveredReason,
        /// How many: 1 for the first in a window, else the rest of the
        /// window.
        count: u64,
    },
}

/// A cast that could not be delivered, handed to the dead-letter handler
/// ([`NodeConfig::on_dead_letter`](super::NodeConfig::on_dead_letter)).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteDeadLetter {
    /// The peer's name.
    pub peer: String,
    /// The exported name the cast was for.
    pub actor: String,
    /// The message type's tag.
    pub tag: String,
    /// Why it was not delivered.
    pub reason: UndeliveredReason,
    /// The encoded message, when this node still had it (it was queued
    /// and never sent); `None` when the peer refused it.
    payload: Option<Bytes>,
}

impl RemoteDeadLetter {
    pub(crate) fn new(
        peer: &str,
        actor: String,
        tag: String,
        reason: UndeliveredReason,
        payload: Option<Bytes>,
    ) -> Self {
        RemoteDeadLetter {
            peer: peer.to_string(),
            actor,
            tag,
            reason,
            payload,
        }
    }

    /// The message, decoded as `M`, when this node still had it and it is
    /// an `M` (its tag is `M::TAG`). `None` when the peer refused it (the
    /// peer does not send it back) or it is another type; `Some(Err)` if
    /// it does not decode.
    pub fn message<M: RemoteMessage>(&self) -> Option<Result<M, String>> {
        if self.tag != M::TAG {
            return None;
        }
        let bytes = self.payload.as_ref()?;
        Some(wire::decode_payload(bytes))
    }

    /// The encoded message, when this node still had it.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The event that reports it.
    fn event(&self, count: u64) -> NodeEvent {
        NodeEvent::DeadLetter {
            peer: self.peer.clone(),
            actor: self.actor.clone(),
            tag: self.tag.clone(),
            reason: self.reason.clone(),
            count,
        }
    }
}

/// What the dead-letter handler is.
pub(crate) type DeadLetterHandler = Arc<dyn Fn(RemoteDeadLetter) + Send + Sync>;

/// A subscription to a node's events, from
/// [`Node::subscribe`](super::Node::subscribe).
#[derive(Debug)]
pub struct NodeEvents {
    rx: mpsc::UnboundedReceiver<NodeEvent>,
    /// Events queued and not read yet (shared with the bus).
    queued: Arc<AtomicUsize>,
}

impl NodeEvents {
    /// The next event; `None` once the node has shut down and every event
    /// published until then has been read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is never lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        let event = self.rx.recv().await;
        self.took(event)
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<NodeEvent> {
        let event = self.rx.try_recv().ok();
        self.took(event)
    }

    fn took(&self, event: Option<NodeEvent>) -> Option<NodeEvent> {
        if event.is_some() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        event
    }
}

/// The most events a subscriber may leave unread before reports (dead
/// letters, rejections) are no longer queued for it; lifecycle events
/// (`Up`, `Down`, members, name conflicts) are always queued.
pub(crate) const REPORT_BACKLOG: usize = 4096;

/// One subscription, as the bus holds it.
struct Subscriber {
    tx: mpsc::UnboundedSender<NodeEvent>,
    queued: Arc<AtomicUsize>,
    /// Whether skipping a report was logged already.
    warned: bool,
}

/// How long a coalescing window of dead letters and rejections lasts.
pub(crate) const REPORT_WINDOW: Duration = Duration::from_secs(1);

/// What a coalesced report is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReportKey {
    /// Dead letters for a peer, for one kind of reason.
    DeadLetter(String, std::mem::Discriminant<UndeliveredReason>),
    /// Rejected connections from an address, for one kind of reason.
    Rejected(IpAddr, std::mem::Discriminant<HandshakeError>),
}

/// A coalesced report's latest value.
#[derive(Debug)]
enum Report {
    DeadLetter(RemoteDeadLetter),
    Rejected(SocketAddr, String),
}

impl Report {
    fn event(self, count: u64) -> NodeEvent {
        match self {
            Report::DeadLetter(letter) => letter.event(count),
            Report::Rejected(addr, reason) => NodeEvent::Rejected {
                addr,
                reason,
                count,
            },
        }
    }
}

/// Where a node's events go: every subscriber's own queue (lifecycle
/// events are never dropped; reports stop being queued for a subscriber
/// that leaves [`REPORT_BACKLOG`] events unread), after floods are
/// coalesced; and the dead-letter handler.
pub(crate) struct EventBus {
    node: String,
    /// Open subscriptions; closed ones are dropped on the next publish.
    /// `None` once the node has shut down.
    subscribers: Mutex<Option<Vec<Subscriber>>>,
    tally: Mutex<Tally<ReportKey, Report>>,
    on_dead_letter: Option<DeadLetterHandler>,
}

impl EventBus {
    pub(crate) fn new(node: &str, on_dead_letter: Option<DeadLetterHandler>) -> Self {
        EventBus {
            node: node.to_string(),
            subscribers: Mutex::new(Some(Vec::new())),
            tally: Mutex::new(Tally::new(REPORT_WINDOW)),
            on_dead_letter,
        }
    }

    /// A new subscription (already ended if the node has shut down).
    pub(crate) fn subscribe(&self) -> NodeEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        if let Some(subs) = lock!(self.subscribers.lock()).as_mut() {
            subs.push(Subscriber {
                tx,
                queued: queued.clone(),
                warned: false,
            });
        }
        NodeEvents { rx, queued }
    }

    /// Publishes an event to every subscriber.
    pub(crate) fn emit(&self, event: NodeEvent) {
        crate::metrics::node_event(&self.node, &event);
        // Reports come at most once per key and second, but keys can be
        // many (one per address a flood comes from): a subscriber that does
        // not read stops getting them past a backlog. Lifecycle events are
        // few (one per session change, paced by authentication and the
        // reconnection backoff) and always queued.
        let report = matches!(
            event,
            NodeEvent::DeadLetter { .. } | NodeEvent::Rejected { .. }
        );
        if let Some(subs) = lock!(self.subscribers.lock()).as_mut() {
            subs.retain_mut(|s| {
                if report && s.queued.load(Ordering::Relaxed) >= REPORT_BACKLOG {
                    if !s.warned {
                        s.warned = true;
                        tracing::warn!(node = %self.node, backlog = REPORT_BACKLOG, "a NodeEvents subscriber does not read: dead-letter and rejection reports are no longer queued for it until it catches up");
                    }
                    return !s.tx.is_closed();
                }
                s.warned = false;
                s.queued.fetch_add(1, Ordering::Relaxed);
                s.tx.send(event.clone()).is_ok()
            });
        }
    }

    /// A cast that was not delivered: to the handler, and counted.
    pub(crate) fn dead_letter(&self, letter: RemoteDeadLetter) {
        crate::metrics::remote_dead_letter(&letter.peer, &letter.reason);
        let key =
            ReportKey::DeadLetter(letter.peer.clone(), std::mem::discriminant(&letter.reason));
        let hit =
            lock!(self.tally.lock()).hit(&key, Report::DeadLetter(letter.clone()), Instant::now());
        if hit == Hit::Report {
            tracing::warn!(node = %self.node, peer = %letter.peer, actor = %letter.actor, tag = %letter.tag, reason = %letter.reason, "cast not delivered (dead letter); more in the next second are counted");
            self.emit(letter.event(1));
        }
        if let Some(handler) = &self.on_dead_letter {
            handler(letter);
        }
    }

    /// An incoming connection failed its handshake.
    pub(crate) fn rejected(&self, addr: SocketAddr, reason: &HandshakeError) {
        let key = ReportKey::Rejected(addr.ip(), std::mem::discriminant(reason));
        let text = reason.to_string();
        let hit = lock!(self.tally.lock()).hit(
            &key,
            Report::Rejected(addr, text.clone()),
            Instant::now(),
        );
        if hit == Hit::Report {
            tracing::warn!(node = %self.node, %addr, reason = %text, "incoming connection rejected; more from there in the next second are counted");
            self.emit(NodeEvent::Rejected {
                addr,
                reason: text,
                count: 1,
            });
        }
    }

    /// Publishes the summaries of the windows that closed by now.
    pub(crate) fn flush(&self) {
        let due = lock!(self.tally.lock()).due(Instant::now());
        self.publish(due);
    }

    fn publish(&self, (summaries, overflow): (Vec<Summary<ReportKey, Report>>, u64)) {
        for (_, report, count) in summaries {
            let event = report.event(count);
            tracing::warn!(node = %self.node, ?event, "repeated reports in the last window");
            self.emit(event);
        }
        if overflow > 0 {
            tracing::warn!(node = %self.node, overflow, "reports about too many distinct peers and addresses; counted only");
        }
    }

    /// Publishes every count still open and ends every subscription (the
    /// node has shut down): subscribers read what was published, then
    /// `None`.
    pub(crate) fn close(&self) {
        let open = lock!(self.tally.lock()).drain();
        self.publish(open);
        lock!(self.subscribers.lock()).take();
    }
}

/// Publishes the coalesced summaries every window until `stop`.
pub(crate) async fn flush_loop(bus: Arc<EventBus>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REPORT_WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => bus.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(n: u8) -> NodeEvent {
        NodeEvent::Rejected {
            addr: SocketAddr::from(([127, 0, 0, n], 1)),
            reason: "x".into(),
            count: 1,
        }
    }

    #[test]
    fn an_unread_subscriber_keeps_every_lifecycle_event_and_a_bounded_backlog_of_reports() {
        let bus = EventBus::new("n", None);
        let mut events = bus.subscribe();
        for i in 0..(REPORT_BACKLOG + 100) {
            bus.emit(rejected((i % 200) as u8));
        }
        bus.emit(NodeEvent::Down {
            peer: "p".into(),
            reason: DownReason::ConnectionClosed,
        });
        bus.emit(NodeEvent::Up { peer: "p".into() });
        let seen: Vec<NodeEvent> = std::iter::from_fn(|| events.try_recv()).collect();
        assert_eq!(
            seen.len(),
            REPORT_BACKLOG + 2,
            "reports stop at the backlog"
        );
        assert!(matches!(seen[REPORT_BACKLOG], NodeEvent::Down { .. }));
        assert!(matches!(seen[REPORT_BACKLOG + 1], NodeEvent::Up { .. }));
        // Caught up: reports are queued again.
        bus.emit(rejected(1));
        assert_eq!(events.try_recv(), Some(rejected(1)));
    }
}
