//! What can go wrong between nodes, and why a peer went down.

use std::net::SocketAddr;
use std::time::Duration;

use super::handshake::HandshakeError;
use super::wire::{Refusal, WireError};

/// Why a peer is considered down. Carried by
/// [`NodeEvent::Down`](super::NodeEvent::Down), by monitors and by the
/// errors of calls that were pending when it happened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DownReason {
    /// The phi-accrual detector's suspicion crossed the threshold: the peer
    /// (or the network to it) went silent without closing the connection.
    #[error("heartbeat timeout: phi {phi:.1} above the threshold {threshold:.1} after {} ms of silence", silence.as_millis())]
    HeartbeatTimeout {
        /// The suspicion level when the peer was declared down.
        phi: f64,
        /// The configured threshold.
        threshold: f64,
        /// Time since the last heartbeat.
        silence: Duration,
    },
    /// The connection was closed by the peer or the operating system.
    #[error("connection closed")]
    ConnectionClosed,
    /// Reading or writing the socket failed.
    #[error("connection error: {0}")]
    ConnectionError(String),
    /// A reconnection attempt failed to authenticate.
    #[error("handshake failed: {0}")]
    HandshakeFailed(HandshakeError),
    /// The peer sent bytes that break the protocol; the session was closed.
    #[error("protocol error: {0}")]
    ProtocolError(String),
    /// The peer said goodbye: it is shutting down.
    #[error("peer shut down: {0}")]
    PeerShutdown(String),
    /// The peer restarted (a new incarnation connected under its name).
    #[error("the peer restarted")]
    PeerRestarted,
    /// A newer connection to the same peer replaced this one.
    #[error("replaced by a newer connection to the same peer")]
    Replaced,
    /// This node is shutting down.
    #[error("this node shut down")]
    LocalShutdown,
    /// The peer left the cluster (planned, not a failure; it is not
    /// redialed).
    #[error("the peer left the cluster")]
    PeerLeft,
    /// The peer stopped reading: the replies and answers this node owes it
    /// passed twice the send buffer plus two of its largest frames, so the
    /// session was closed rather than let memory grow.
    #[error("the peer does not read: {queued} bytes waited for it, past twice the send buffer of {limit} bytes plus two of its largest frames")]
    PeerNotReading {
        /// Bytes waiting for the peer when the session was closed.
        queued: usize,
        /// The send buffer ([`NodeConfig::send_buffer`](super::NodeConfig::send_buffer)).
        limit: usize,
    },
}

/// Errors of the cluster API. Every variant says what happened and, where
/// there is one, what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration is invalid.
    #[error("invalid node configuration: {0}")]
    InvalidConfig(String),
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}: {reason}; pick a free address or port 0")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// A TCP connection to the peer could not be opened.
    #[error("could not connect to {addr}: {reason}; is a node listening there?")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// The peer could not be authenticated (or did not authenticate us).
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The peer's address.
        addr: SocketAddr,
        /// What went wrong.
        reason: HandshakeError,
    },
    /// There is no live session with that peer.
    #[error("not connected to node `{peer}`: connect to it first, or wait for the reconnection")]
    NotConnected {
        /// The peer's name.
        peer: String,
    },
    /// The peer went down while the request was pending.
    #[error("node `{peer}` went down: {reason}; retry once it is up again (NodeEvent::Up)")]
    NodeDown {
        /// The peer's name.
        peer: String,
        /// Why it is considered down.
        reason: DownReason,
    },
    /// The peer refused the request or could not deliver the message.
    #[error("node `{peer}` refused the message for `{actor}`: {refusal}")]
    Refused {
        /// The peer's name.
        peer: String,
        /// The target actor's exported name.
        actor: String,
        /// The peer's reason.
        refusal: Refusal,
    },
    /// No answer within the timeout. The request may still have been
    /// processed by the peer.
    #[error("no answer from `{actor}` on node `{peer}` within {after:?} (it may still run there); raise the timeout or check the peer's load")]
    Timeout {
        /// The peer's name.
        peer: String,
        /// The target actor's exported name.
        actor: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// A message or reply could not be encoded, or does not fit in a frame.
    #[error("could not send to `{actor}`: {reason}")]
    Encode {
        /// The target actor's exported name.
        actor: String,
        /// What went wrong.
        reason: WireError,
    },
    /// A reply did not decode as the expected type.
    #[error("the reply from `{actor}` on node `{peer}` did not decode: {reason}; run compatible builds of the reply type on both nodes")]
    Decode {
        /// The peer's name.
        peer: String,
        /// The target actor's exported name.
        actor: String,
        /// What went wrong.
        reason: String,
    },
    /// An actor name or message tag is empty or too long for the wire.
    #[error("invalid actor name or message tag ({0})")]
    InvalidName(String),
    /// A name is already exported on this node.
    #[error("an actor is already exported as `{0}`: unexport it first or pick another name")]
    AlreadyExported(String),
    /// The node has been shut down.
    #[error("the node has shut down; start a new Node")]
    Shutdown,
    /// A cluster-wide name is held by a node (this one or another).
    #[error("the name `{name}` is held on node `{node}`; unregister it there first or pick another name")]
    NameTaken {
        /// The name.
        name: String,
        /// The node holding it.
        node: String,
    },
    /// Nobody holds that cluster-wide name (in this node's view).
    #[error("no node holds the name `{name}`; register it first (or wait for its holder's node to be up)")]
    NotRegistered {
        /// The name.
        name: String,
    },
    /// The group has no member taking this message type.
    #[error("the group `{group}` has no member taking this message type; join actors to it first")]
    NoGroupMember {
        /// The group.
        group: String,
    },
    /// No kind of that name is registered on this node
    /// ([`Node::register_kind`](super::Node::register_kind)).
    #[error("no kind `{kind}` is registered on this node; call register_kind(\"{kind}\", ...) before using it")]
    UnknownKind {
        /// The kind's name.
        kind: String,
    },
    /// This node already hosts entities of that type (or that singleton).
    #[error("this node already hosts `{0}`; call entities/singleton once per node")]
    AlreadyHosted(String),
    /// The entity type (or singleton) is hosted on no reachable node, or
    /// the message type does not match the kind's.
    #[error("entity `{ty}`/`{key}` cannot be reached: {reason}")]
    EntityUnavailable {
        /// The entity type or singleton name.
        ty: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The session's send buffer is full: the peer (or the network to it)
    /// is slower than this node's senders. Nothing was sent.
    #[error("the send buffer to node `{peer}` is full ({queued} of {limit} bytes waiting): the peer or the network is slow; retry later, wait for room with `cast_wait`, or raise NodeConfig::send_buffer")]
    Busy {
        /// The peer's name.
        peer: String,
        /// Bytes waiting to be written to it.
        queued: usize,
        /// The send buffer's limit.
        limit: usize,
    },
}

/// A cast that failed, with the message handed back.
///
/// Converts into its [`ClusterError`] with `?`.
pub struct RemoteCastError<M> {
    error: ClusterError,
    message: M,
}

impl<M> RemoteCastError<M> {
    pub(crate) fn new(error: ClusterError, message: M) -> Self {
        RemoteCastError { error, message }
    }

    /// Why the cast failed.
    pub fn error(&self) -> &ClusterError {
        &self.error
    }

    /// Whether it failed only because the send buffer was full (the
    /// session is up: try again later, or use `cast_wait`).
    pub fn is_busy(&self) -> bool {
        matches!(self.error, ClusterError::Busy { .. })
    }

    /// The message that was not sent.
    pub fn into_message(self) -> M {
        self.message
    }

    /// The error and the message.
    pub fn into_parts(self) -> (ClusterError, M) {
        (self.error, self.message)
    }
}

impl<M> std::fmt::Debug for RemoteCastError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCastError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<M> std::fmt::Display for RemoteCastError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cast not sent (the message is handed back): {}",
            self.error
        )
    }
}

impl<M> std::error::Error for RemoteCastError<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<M> From<RemoteCastError<M>> for ClusterError {
    fn from(e: RemoteCastError<M>) -> Self {
        e.error
    }
}
