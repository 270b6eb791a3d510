//! How a node is configured.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::error::ClusterError;
use super::events::{DeadLetterHandler, RemoteDeadLetter};
use super::phi::PhiConfig;
use super::wire::DecodeLimits;
use super::wire::{DEFAULT_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE};
use crate::supervisor::Backoff;

/// A node's configuration: its name, where it listens, its cookie, and the
/// failure detector's and transport's settings.
///
/// The defaults detect a silent peer about 1.4 s after its last heartbeat
/// (phi crosses the threshold at 1.22 s and is judged at the next 200 ms
/// tick: 1.22–1.42 s, measured 1.40–1.41 s on loopback; heartbeat every 200 ms,
/// phi threshold 8, acceptable pause 500 ms, minimum standard deviation
/// 100 ms) and reconnect with backoff from 100 ms to 5 s.
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::cluster::NodeConfig;
///
/// let config = NodeConfig::new("billing@10.0.0.7")
///     .listen("127.0.0.1:0".parse().unwrap())
///     .cookie("shared secret")
///     .heartbeat_interval(Duration::from_millis(100));
/// assert_eq!(config.name(), "billing@10.0.0.7");
/// ```
#[derive(Clone)]
pub struct NodeConfig {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    pub(crate) cookie: Vec<u8>,
    pub(crate) phi: PhiConfig,
    pub(crate) max_frame_size: usize,
    pub(crate) reconnect: Backoff,
    pub(crate) handshake_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) remove_down_after: Option<Duration>,
    pub(crate) send_buffer: usize,
    pub(crate) on_dead_letter: Option<DeadLetterHandler>,
    pub(crate) seeds: Vec<SocketAddr>,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) decode_limits: DecodeLimits,
    /// TLS under the cookie handshake; `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<super::tls::TlsConfig>,
}

/// Default bound of each session's outgoing buffer, in bytes (4 MiB).
pub const DEFAULT_SEND_BUFFER: usize = 4 * 1024 * 1024;

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("cookie", &"<redacted>")
            .field("phi", &self.phi)
            .field("max_frame_size", &self.max_frame_size)
            .field("reconnect", &self.reconnect)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("remove_down_after", &self.remove_down_after)
            .field("send_buffer", &self.send_buffer)
            .field("on_dead_letter", &self.on_dead_letter.is_some())
            .field("seeds", &self.seeds)
            .field("advertise", &self.advertise)
            .field("decode_limits", &self.decode_limits)
            .field("tls", &self.uses_tls())
            .finish()
    }
}

impl NodeConfig {
    /// A configuration for the node `name`, listening on `127.0.0.1:0` (an
    /// ephemeral port: read it back with [`Node::local_addr`]), with no
    /// cookie yet: [`Node::start`] refuses to start without one.
    ///
    /// [`Node::local_addr`]: super::Node::local_addr
    /// [`Node::start`]: super::Node::start
    pub fn new(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            cookie: Vec::new(),
            phi: PhiConfig::default(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            reconnect: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            handshake_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            remove_down_after: None,
            send_buffer: DEFAULT_SEND_BUFFER,
            on_dead_letter: None,
            seeds: Vec::new(),
            advertise: None,
            decode_limits: DecodeLimits::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The node's name, unique in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where to listen for peers (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The shared secret every node of the cluster must hold. It
    /// authenticates peers; it does not encrypt traffic (on untrusted
    /// networks add `NodeConfig::tls`, feature `tls`). Use a long random
    /// secret (say 32 random bytes): a peer can try guesses of a weak cookie
    /// offline against one handshake.
    pub fn cookie(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.cookie = secret.as_ref().to_vec();
        self
    }

    /// How often each session sends a heartbeat (default 200 ms). The
    /// failure detector also bootstraps its estimate from this.
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.phi.heartbeat_interval = every;
        self
    }

    /// The phi level above which a peer is down (default 8: a heartbeat
    /// that late would arrive with probability 10⁻⁸).
    pub fn phi_threshold(mut self, threshold: f64) -> Self {
        self.phi.threshold = threshold;
        self
    }

    /// Silence tolerated on top of the usual heartbeat interval before phi
    /// climbs (default 500 ms): raise it for peers that pause (GC, busy
    /// hosts), lower it to detect failures sooner.
    pub fn acceptable_pause(mut self, pause: Duration) -> Self {
        self.phi.acceptable_pause = pause;
        self
    }

    /// The floor of the heartbeat intervals' standard deviation (default
    /// 100 ms), so that very regular heartbeats do not make phi jumpy.
    pub fn min_std_dev(mut self, min: Duration) -> Self {
        self.phi.min_std_dev = min;
        self
    }

    /// The largest frame this node accepts (default 8 MiB, at least
    /// 4 KiB, so that any one name or group entry fits). Both sides tell each other their limit in the handshake, and
    /// a message that would exceed the receiver's limit fails at the sender.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// The delays between reconnection attempts to a peer this node
    /// connected to (default 100 ms doubling up to 5 s).
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = backoff;
        self
    }

    /// How long a handshake may take before the connection is dropped
    /// (default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long [`Node::lookup`](super::Node::lookup) waits for the peer's
    /// answer (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Lets keep-majority downing stop counting a member that has been
    /// `Down` for `after`, as seen from the majority side (off by default).
    ///
    /// By default a crashed member counts among the members this node
    /// knows until it is back or forgotten, so a second loss can leave the
    /// survivors in the minority (safe, not available). With this option
    /// the majority side shrinks to the members it reaches after `after`.
    /// **Only safe if a node that lost the cluster for that long never
    /// comes back without a restart** (for instance, your orchestrator
    /// kills it): a removed node that reappears with the same incarnation
    /// on the other side of a later partition could let both sides think
    /// they are the majority. A minority side never removes anyone.
    pub fn remove_down_after(mut self, after: Duration) -> Self {
        self.remove_down_after = Some(after);
        self
    }

    /// The most bytes each session holds for its peer (default 4 MiB,
    /// as Erlang's `dist_buf_busy_limit` bounds a distribution channel):
    /// frames queued and not yet written.
    ///
    /// Past it, [`RemoteRef::cast`](super::RemoteRef::cast) and
    /// [`call`](super::RemoteRef::call) fail at once with
    /// [`ClusterError::Busy`] (a cast hands its message back), and
    /// [`RemoteRef::cast_wait`](super::RemoteRef::cast_wait) waits for room.
    /// Replies and answers this node owes the peer may take up to twice the
    /// limit plus two of the peer's largest frames; past that the peer is
    /// not reading and the session is closed
    /// ([`DownReason::PeerNotReading`](super::DownReason::PeerNotReading)).
    /// A frame that finds the buffer empty always passes, so a message up
    /// to the peer's frame limit is never refused for its size alone.
    /// Heartbeats have their own small queue and never wait behind data.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes;
        self
    }

    /// Where undelivered casts go: each one, with the message when this
    /// node still had it ([`RemoteDeadLetter::message`]). Called on the
    /// session's task: keep it quick (count, log, or hand the letter to a
    /// channel). Without a handler, dead letters are only counted in
    /// [`NodeEvent::DeadLetter`](super::NodeEvent::DeadLetter) events and
    /// logged (coalesced per peer and second).
    pub fn on_dead_letter(
        mut self,
        handler: impl Fn(RemoteDeadLetter) + Send + Sync + 'static,
    ) -> Self {
        self.on_dead_letter = Some(std::sync::Arc::new(handler));
        self
    }

    /// Members to join through at start: the node dials each (with the
    /// reconnection backoff, in the background, until one session is up)
    /// and learns the rest of the cluster from their member lists. Any one
    /// live member is enough; its own address in the list is skipped. The
    /// same as calling [`Node::join`](super::Node::join) after start.
    pub fn seeds(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds = addrs.into_iter().collect();
        self
    }

    /// The address other members dial to reach this node (default: the
    /// address it listens on). Set it when the node listens on a wildcard
    /// address (`0.0.0.0`) or behind a forwarded port.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// The deepest nesting a received message or reply may have (default
    /// 128, as `serde_json`): deeper payloads are refused, so that no frame
    /// can overflow the reading task's stack. Raise it for honest deeply
    /// nested types (each level costs about 1 KiB of stack in a debug
    /// build).
    pub fn max_decode_depth(mut self, depth: usize) -> Self {
        self.decode_limits.max_depth = depth;
        self
    }

    /// How many sequence and map elements a received payload may claim
    /// beyond one per byte it carries (default 2^20): only elements that
    /// take no bytes (`()`, unit structs) count against it, so a 9-byte
    /// payload cannot claim 2^64 of them.
    pub fn max_decode_elements(mut self, elements: usize) -> Self {
        self.decode_limits.max_elements = elements;
        self
    }

    /// Encrypts every connection with TLS 1.3 and authenticates peers by
    /// certificate (both sides present one, and each must chain to the
    /// other's trusted roots) before the cookie handshake, which still runs
    /// inside TLS (feature `tls`). Use it on untrusted networks: without
    /// it the cookie authenticates but does not encrypt. Every node of the
    /// cluster needs it; a TLS node and a plain node refuse each other with
    /// [`HandshakeError::Tls`](super::HandshakeError::Tls). Certificates
    /// need not name the host: see the [`tls` module](super::tls) for what
    /// is checked.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ractor_otp::cluster::{Node, NodeConfig, TlsConfig};
    ///
    /// let tls = TlsConfig::from_pem(
    ///     std::fs::read("node-a.pem")?, // this node's certificate, then intermediates
    ///     std::fs::read("node-a.key")?, // its private key
    ///     std::fs::read("cluster-ca.pem")?, // the roots that sign the cluster's nodes
    /// )?;
    /// let a = Node::start(NodeConfig::new("a").cookie("secret").tls(tls)).await?;
    /// # let _ = a; Ok(()) }
    /// ```
    ///
    /// A runnable version that makes its certificates with `rcgen` is
    /// `examples/cluster_tls.rs`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: super::tls::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Whether connections use TLS (`NodeConfig::tls`, feature `tls`).
    pub(crate) fn uses_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// Checks every setting, saying what to change.
    pub(crate) fn validate(&self) -> Result<(), ClusterError> {
        let bad = |s: String| Err(ClusterError::InvalidConfig(s));
        if self.name.is_empty() || self.name.len() > 255 {
            return bad("the node name must be 1 to 255 bytes long".into());
        }
        if self
            .name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(format!(
                "the node name {:?} contains whitespace or control characters",
                self.name
            ));
        }
        if self.cookie.is_empty() {
            return bad(
                "no cookie: call NodeConfig::cookie(secret) with the same secret on every node"
                    .into(),
            );
        }
        if self.max_frame_size < MIN_MAX_FRAME_SIZE || self.max_frame_size > u32::MAX as usize {
            return bad(format!(
                "max_frame_size {} is outside {MIN_MAX_FRAME_SIZE}..={}",
                self.max_frame_size,
                u32::MAX
            ));
        }
        if self.send_buffer < MIN_MAX_FRAME_SIZE {
            return bad(format!(
                "send_buffer {} is below {MIN_MAX_FRAME_SIZE} bytes",
                self.send_buffer
            ));
        }
        if self.handshake_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("handshake and request timeouts must be above zero".into());
        }
        self.phi
            .validate()
            .map_err(|e| ClusterError::InvalidConfig(e.to_string()))
    }
}
