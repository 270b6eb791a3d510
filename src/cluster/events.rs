//! What a node reports about its peers: events and per-peer state.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::DownReason;
use super::wire::Refusal;

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
    /// A connection from `addr` failed the handshake and was closed.
    Rejected {
        /// Where it came from.
        addr: SocketAddr,
        /// Why it was refused.
        reason: String,
    },
    /// A cast to `actor` on `peer` could not be delivered there.
    DeadLetter {
        /// The peer's name.
        peer: String,
        /// The exported name the cast was for.
        actor: String,
        /// The message type's tag.
        tag: String,
        /// Why it was not delivered.
        reason: UndeliveredReason,
    },
    /// This subscriber fell behind and `missed` events were dropped for it.
    Lagged {
        /// How many events were skipped.
        missed: u64,
    },
}

/// A subscription to a node's events, from
/// [`Node::subscribe`](super::Node::subscribe).
#[derive(Debug)]
pub struct NodeEvents {
    pub(crate) rx: broadcast::Receiver<NodeEvent>,
    /// Cancelled when the node has finished shutting down.
    pub(crate) closed: CancellationToken,
}

impl NodeEvents {
    /// The next event; `None` once the node has shut down and every event
    /// published until then has been read. A subscriber that falls more
    /// than 1024 events behind gets one [`NodeEvent::Lagged`] saying how
    /// many it missed.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        let received = tokio::select! {
            biased;
            r = self.rx.recv() => r,
            _ = self.closed.cancelled() => return self.try_recv(),
        };
        match received {
            Ok(e) => Some(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(NodeEvent::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<NodeEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Some(NodeEvent::Lagged { missed })
            }
            Err(_) => None,
        }
    }
}

/// Capacity of the event channel per subscriber.
pub(crate) const EVENT_CAPACITY: usize = 1024;
