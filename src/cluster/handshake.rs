//! Mutual authentication of two nodes before any session frame is accepted.
//!
//! Both nodes hold the same secret cookie. Each side sends a fresh random
//! nonce and proves it knows the cookie with an HMAC-SHA256 over both node
//! names and both nonces, labelled with its role so that a proof can never be
//! reflected back:
//!
//! ```text
//! dialer   -> Hello     { name_d, incarnation_d, nonce_d }
//! acceptor -> Challenge { name_a, incarnation_a, nonce_a,
//!                         proof_a = HMAC(cookie, "acceptor" | name_d | name_a | nonce_d | nonce_a) }
//! dialer   -> Response  { proof_d = HMAC(cookie, "dialer"   | name_d | name_a | nonce_d | nonce_a) }
//! acceptor -> Welcome                      (or Rejected { reason } at any step)
//! ```
//!
//! Proofs are checked in constant time (`hmac`'s `verify_slice`). The
//! protocol version is checked on every frame (see [`super::wire`]). The
//! cookie authenticates but does not encrypt: on an untrusted network use
//! the `tls` feature, and this handshake runs inside TLS (see
//! [`super::tls`]).
//!
//! ```
//! # // The handshake is internal; this shows what a wrong cookie looks like
//! # // from the outside.
//! use ractor_otp::cluster::{ClusterError, Node, NodeConfig};
//! # #[tokio::main] async fn main() -> Result<(), ClusterError> {
//! let a = Node::start(NodeConfig::new("a").cookie("one secret")).await?;
//! let b = Node::start(NodeConfig::new("b").cookie("another")).await?;
//! let err = b.connect(a.local_addr()).await.unwrap_err();
//! assert!(matches!(err, ClusterError::Handshake { .. }), "{err}");
//! # a.shutdown().await; b.shutdown().await; Ok(()) }
//! ```

use bytes::Bytes;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::wire::{self, Frame, WireError};

/// HMAC-SHA256 keyed with the cookie; built once per node and cloned per
/// handshake.
pub(crate) type CookieKey = Hmac<Sha256>;

/// Keys the MAC with a cookie. HMAC takes keys of any length; `None` is
/// unreachable in practice and reported as a configuration error.
pub(crate) fn cookie_key(cookie: &[u8]) -> Option<CookieKey> {
    <CookieKey as Mac>::new_from_slice(cookie).ok()
}

/// The largest handshake frame (names are at most 255 bytes; a rejection
/// reason is cut to 1 KiB).
const HANDSHAKE_FRAME: usize = 4096;

/// The reading half of a connection: a TCP socket's, or a TLS stream's.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;

/// The writing half of a connection: a TCP socket's, or a TLS stream's.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// The reading half of a connection, remembering when bytes last arrived.
pub(crate) struct Progress {
    inner: ReadHalf,
    last: tokio::time::Instant,
}

impl tokio::io::AsyncRead for Progress {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last = tokio::time::Instant::now();
        }
        polled
    }
}

/// The reading half of a connection, cut into frames.
pub(crate) struct Reader(FramedRead<Progress, LengthDelimitedCodec>);

impl Reader {
    /// When bytes last arrived, even inside a frame not complete yet: a
    /// large frame still arriving is a sign of life.
    pub(crate) fn last_progress(&self) -> tokio::time::Instant {
        self.0.get_ref().last
    }

    /// Reads the next frame and its payload; `Ok(None)` at a clean end of
    /// stream.
    pub(crate) async fn next(&mut self) -> Result<Option<(Frame, Bytes)>, ReadError> {
        let Some(body) = self.next_body().await? else {
            return Ok(None);
        };
        decode_body(body).map(Some)
    }

    /// Reads the next frame's body (version, header, payload), undecoded;
    /// `Ok(None)` at a clean end of stream.
    pub(crate) async fn next_body(&mut self) -> Result<Option<Bytes>, ReadError> {
        match self.0.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(match ReadError::from_io(&e) {
                // The codec reports a length prefix above the maximum as
                // `InvalidData`, before reserving anything (TLS reports
                // its errors with that kind too: they are told apart
                // first).
                ReadError::Io(text) if e.kind() == std::io::ErrorKind::InvalidData => {
                    ReadError::Protocol(text)
                }
                other => other,
            }),
            Some(Ok(body)) => Ok(Some(body.freeze())),
        }
    }
}

/// Decodes a frame body into its frame and payload.
pub(crate) fn decode_body(body: Bytes) -> Result<(Frame, Bytes), ReadError> {
    let (frame, payload) = wire::decode(&body).map_err(ReadError::Wire)?;
    let start = body.len() - payload.len();
    Ok((frame, body.slice(start..)))
}

/// A connection (plain TCP or TLS, see [`super::tls`]) cut into frames:
/// the reader decodes length-delimited bodies, the writer takes
/// pre-encoded frames.
pub(crate) struct Conn {
    pub(crate) read: Reader,
    pub(crate) write: WriteHalf,
}

impl Conn {
    /// Wraps a connected plain TCP stream.
    pub(crate) fn new(stream: tokio::net::TcpStream) -> Self {
        let (r, w) = stream.into_split();
        Conn::from_halves(Box::new(r), Box::new(w))
    }

    /// Wraps the two halves of a connected stream. Until
    /// [`authenticated`](Self::authenticated) it accepts only frames the
    /// size of handshake frames, so a peer without the cookie cannot make
    /// us buffer a large frame.
    pub(crate) fn from_halves(read: ReadHalf, write: WriteHalf) -> Self {
        Conn {
            read: Reader(FramedRead::new(
                Progress {
                    inner: read,
                    last: tokio::time::Instant::now(),
                },
                wire::codec(HANDSHAKE_FRAME),
            )),
            write,
        }
    }

    /// The handshake succeeded: accept frames up to `max` bytes.
    pub(crate) fn authenticated(&mut self, max: usize) {
        self.read.0.decoder_mut().set_max_frame_length(max);
    }

    /// Reads the next frame.
    pub(crate) async fn next(&mut self) -> Result<Option<(Frame, Bytes)>, ReadError> {
        self.read.next().await
    }

    /// Encodes and writes one payload-less frame.
    pub(crate) async fn send(&mut self, frame: &Frame) -> Result<(), HandshakeError> {
        let bytes = wire::encode_plain(frame, HANDSHAKE_FRAME).map_err(HandshakeError::Wire)?;
        self.write
            .write_all(&bytes)
            .await
            .map_err(|e| ReadError::from_io(&e).into())
    }
}

/// Why reading a frame failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// The socket failed, or the codec refused a length prefix above the
    /// maximum, or the stream ended inside a frame.
    #[error("{0}")]
    Io(String),
    /// The length prefix claimed more than the maximum frame size.
    #[error("{0}")]
    Protocol(String),
    /// The body was not a valid frame.
    #[error("{0}")]
    Wire(WireError),
    /// TLS failed: a certificate was refused, or the peer does not speak
    /// TLS (see [`super::tls`]).
    #[error("{0}")]
    Tls(String),
}

impl ReadError {
    /// Classifies a failed socket read or write: TLS failures get their
    /// own explanation, the rest is an i/o error.
    pub(crate) fn from_io(e: &std::io::Error) -> Self {
        match super::tls::explain(e) {
            Some(reason) => ReadError::Tls(reason),
            None => ReadError::Io(e.to_string()),
        }
    }
}

/// Why a handshake failed. Shown to users inside
/// [`ClusterError::Handshake`](super::ClusterError::Handshake) and
/// [`DownReason::HandshakeFailed`](super::DownReason::HandshakeFailed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(String),
    /// The peer closed the connection mid-handshake.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// Bad bytes: unknown version, malformed or oversized frame.
    #[error("{0}")]
    Wire(WireError),
    /// A frame other than the next handshake step arrived.
    #[error("expected a {expected} frame, got {got}")]
    Unexpected {
        /// The step we waited for.
        expected: &'static str,
        /// What came instead.
        got: String,
    },
    /// The peer's proof did not verify: the cookies differ.
    #[error("authentication failed: the peer's proof does not match our cookie; give both nodes the same cookie")]
    BadProof,
    /// The peer refused us, and said why.
    #[error("rejected by the peer: {0}")]
    Rejected(String),
    /// The peer's node name is empty, too long or has whitespace.
    #[error("the peer's node name {0:?} is invalid (1 to 255 bytes, no whitespace or control characters)")]
    BadName(String),
    /// Another node than the one we reconnect to answers at its address.
    #[error("node `{found}` answers at this address, not `{expected}`; if `{expected}` moved, connect to its new address")]
    WrongPeer {
        /// The node we reconnect to.
        expected: String,
        /// The node that answered.
        found: String,
    },
    /// Both nodes have the same name.
    #[error("the peer has our own name `{0}`; every node needs a distinct name")]
    SameName(String),
    /// The handshake did not finish in time.
    #[error("the handshake did not finish within {0:?}")]
    Timeout(std::time::Duration),
    /// A live member already holds the name, from another address.
    #[error("a live member named `{name}` listens at {live}; this node claims the name from another address: give every node a distinct name")]
    DuplicateName {
        /// The contested name.
        name: String,
        /// Where the live member listens.
        live: std::net::SocketAddr,
    },
    /// Both nodes dialed each other at once and the other connection won
    /// (the one dialed by the node with the smaller name); it carries the
    /// session.
    #[error("both nodes dialed each other at once (or a session with `{peer}` is up already); the other connection carries the session")]
    SimultaneousConnect {
        /// The other node's name.
        peer: String,
    },
    /// TLS could not be set up: one side uses TLS and the other does not,
    /// or a certificate was refused (the reason says which, and what to
    /// do).
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<ReadError> for HandshakeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(s) => HandshakeError::Io(s),
            ReadError::Protocol(s) => HandshakeError::Wire(WireError::Malformed(s)),
            ReadError::Wire(w) => HandshakeError::Wire(w),
            ReadError::Tls(s) => HandshakeError::Tls(s),
        }
    }
}

/// This node, as the handshake presents it.
pub(crate) struct Identity<'a> {
    pub(crate) name: &'a str,
    pub(crate) incarnation: u64,
    pub(crate) cookie: &'a CookieKey,
    pub(crate) max_frame: usize,
    /// Where this node listens for peers (told to them).
    pub(crate) listen: std::net::SocketAddr,
    /// When dialing: the node expected at the address (a reconnection);
    /// anyone else is refused before we prove anything.
    pub(crate) expect_peer: Option<&'a str>,
    /// When accepting: the last check of an authenticated dialer before
    /// it is welcomed (a name held by a live member elsewhere, a
    /// simultaneous connect this node's own dial wins).
    pub(crate) admit: Option<&'a Admit<'a>>,
}

/// The acceptor's last check of an authenticated dialer.
pub(crate) type Admit<'a> = dyn Fn(&PeerHello) -> Result<(), HandshakeError> + Sync + 'a;

/// The authenticated peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerHello {
    pub(crate) name: String,
    pub(crate) incarnation: u64,
    /// Where the peer listens for peers.
    pub(crate) listen: std::net::SocketAddr,
    /// The largest frame the peer accepts.
    pub(crate) max_frame: usize,
}

#[derive(Clone, Copy)]
enum Role {
    Dialer,
    Acceptor,
}

/// The MAC a side of the given role sends.
fn mac(
    cookie: &CookieKey,
    role: Role,
    dialer: &str,
    acceptor: &str,
    nonce_d: &[u8; 32],
    nonce_a: &[u8; 32],
) -> CookieKey {
    let mut m = cookie.clone();
    m.update(match role {
        Role::Dialer => b"ractor-otp/1 dialer",
        Role::Acceptor => b"ractor-otp/1 acceptor",
    });
    for name in [dialer, acceptor] {
        m.update(&(name.len() as u64).to_be_bytes());
        m.update(name.as_bytes());
    }
    m.update(nonce_d);
    m.update(nonce_a);
    m
}

fn proof(
    cookie: &CookieKey,
    role: Role,
    d: &str,
    a: &str,
    nd: &[u8; 32],
    na: &[u8; 32],
) -> [u8; 32] {
    mac(cookie, role, d, a, nd, na)
        .finalize()
        .into_bytes()
        .into()
}

/// Constant-time check of a proof.
fn verify(
    cookie: &CookieKey,
    role: Role,
    d: &str,
    a: &str,
    nd: &[u8; 32],
    na: &[u8; 32],
    given: &[u8; 32],
) -> bool {
    mac(cookie, role, d, a, nd, na).verify_slice(given).is_ok()
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    rand::rng().fill_bytes(&mut n);
    n
}

/// Whether `name` is a valid node name (as `NodeConfig` requires).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Refuses a peer name that is invalid or our own.
fn check_peer_name(name: &str, me: &Identity<'_>) -> Result<(), HandshakeError> {
    if !valid_name(name) {
        return Err(HandshakeError::BadName(name.to_string()));
    }
    if name == me.name {
        return Err(HandshakeError::SameName(name.to_string()));
    }
    Ok(())
}

fn clamp_frame(max: u32) -> usize {
    (max as usize).max(wire::MIN_MAX_FRAME_SIZE)
}

async fn expect_frame(conn: &mut Conn, expected: &'static str) -> Result<Frame, HandshakeError> {
    match conn.next().await? {
        None => Err(HandshakeError::Closed),
        Some((Frame::Rejected { reason }, _)) => Err(HandshakeError::Rejected(reason)),
        Some((Frame::NameTaken { name, live }, _)) => {
            Err(HandshakeError::DuplicateName { name, live })
        }
        Some((Frame::Duplicate, _)) => Err(HandshakeError::SimultaneousConnect {
            peer: String::new(),
        }),
        Some((frame, _)) => {
            if frame.kind() == expected {
                Ok(frame)
            } else {
                Err(HandshakeError::Unexpected {
                    expected,
                    got: frame.kind().to_string(),
                })
            }
        }
    }
}

/// Tells the peer why we give up (best effort), then returns the error.
async fn reject(conn: &mut Conn, err: HandshakeError) -> HandshakeError {
    if !matches!(
        err,
        HandshakeError::Io(_)
            | HandshakeError::Closed
            | HandshakeError::Rejected(_)
            | HandshakeError::DuplicateName { .. }
            | HandshakeError::SimultaneousConnect { .. }
            | HandshakeError::Tls(_)
    ) {
        let _ = conn
            .send(&Frame::Rejected {
                reason: wire::short_reason(err.to_string()),
            })
            .await;
    }
    err
}

/// Runs the dialer's side of the handshake.
pub(crate) async fn dial(conn: &mut Conn, me: &Identity<'_>) -> Result<PeerHello, HandshakeError> {
    match dial_steps(conn, me).await {
        Ok(peer) => Ok(peer),
        Err(e) => Err(reject(conn, e).await),
    }
}

async fn dial_steps(conn: &mut Conn, me: &Identity<'_>) -> Result<PeerHello, HandshakeError> {
    let nonce_d = nonce();
    conn.send(&Frame::Hello {
        name: me.name.to_string(),
        incarnation: me.incarnation,
        listen: me.listen,
        nonce: nonce_d,
        max_frame: u32::try_from(me.max_frame).unwrap_or(u32::MAX),
    })
    .await?;
    let Frame::Challenge {
        name,
        incarnation,
        listen,
        nonce: nonce_a,
        max_frame,
        proof: proof_a,
    } = expect_frame(conn, "Challenge").await?
    else {
        return Err(HandshakeError::Closed);
    };
    check_peer_name(&name, me)?;
    if let Some(expected) = me.expect_peer.filter(|e| *e != name) {
        return Err(HandshakeError::WrongPeer {
            expected: expected.to_string(),
            found: name,
        });
    }
    if !verify(
        me.cookie,
        Role::Acceptor,
        me.name,
        &name,
        &nonce_d,
        &nonce_a,
        &proof_a,
    ) {
        return Err(HandshakeError::BadProof);
    }
    let proof_d = proof(me.cookie, Role::Dialer, me.name, &name, &nonce_d, &nonce_a);
    conn.send(&Frame::Response { proof: proof_d }).await?;
    expect_frame(conn, "Welcome").await.map_err(|e| match e {
        // The answer names no one: it is the node we just authenticated.
        HandshakeError::SimultaneousConnect { .. } => {
            HandshakeError::SimultaneousConnect { peer: name.clone() }
        }
        other => other,
    })?;
    Ok(PeerHello {
        name,
        incarnation,
        listen,
        max_frame: clamp_frame(max_frame),
    })
}

/// Runs the acceptor's side of the handshake.
pub(crate) async fn accept(
    conn: &mut Conn,
    me: &Identity<'_>,
) -> Result<PeerHello, HandshakeError> {
    match accept_steps(conn, me).await {
        Ok(peer) => Ok(peer),
        Err(e) => Err(reject(conn, e).await),
    }
}

async fn accept_steps(conn: &mut Conn, me: &Identity<'_>) -> Result<PeerHello, HandshakeError> {
    let Frame::Hello {
        name,
        incarnation,
        listen,
        nonce: nonce_d,
        max_frame,
    } = expect_frame(conn, "Hello").await?
    else {
        return Err(HandshakeError::Closed);
    };
    check_peer_name(&name, me)?;
    let nonce_a = nonce();
    let proof_a = proof(
        me.cookie,
        Role::Acceptor,
        &name,
        me.name,
        &nonce_d,
        &nonce_a,
    );
    conn.send(&Frame::Challenge {
        name: me.name.to_string(),
        incarnation: me.incarnation,
        listen: me.listen,
        nonce: nonce_a,
        max_frame: u32::try_from(me.max_frame).unwrap_or(u32::MAX),
        proof: proof_a,
    })
    .await?;
    let Frame::Response { proof: proof_d } = expect_frame(conn, "Response").await? else {
        return Err(HandshakeError::Closed);
    };
    if !verify(
        me.cookie,
        Role::Dialer,
        &name,
        me.name,
        &nonce_d,
        &nonce_a,
        &proof_d,
    ) {
        return Err(HandshakeError::BadProof);
    }
    let peer = PeerHello {
        name,
        incarnation,
        listen,
        max_frame: clamp_frame(max_frame),
    };
    if let Some(admit) = me.admit {
        match admit(&peer) {
            Ok(()) => {}
            Err(HandshakeError::DuplicateName { name, live }) => {
                let _ = conn
                    .send(&Frame::NameTaken {
                        name: name.clone(),
                        live,
                    })
                    .await;
                return Err(HandshakeError::DuplicateName { name, live });
            }
            Err(HandshakeError::SimultaneousConnect { peer }) => {
                let _ = conn.send(&Frame::Duplicate).await;
                return Err(HandshakeError::SimultaneousConnect { peer });
            }
            Err(other) => return Err(other),
        }
    }
    conn.send(&Frame::Welcome).await?;
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_role_names_and_nonces() {
        let (nd, na) = ([1u8; 32], [2u8; 32]);
        let c = cookie_key(b"c").expect("key");
        let x = cookie_key(b"x").expect("key");
        let p = proof(&c, Role::Acceptor, "d", "a", &nd, &na);
        assert!(verify(&c, Role::Acceptor, "d", "a", &nd, &na, &p));
        // Another cookie, role, name order or nonce: no match.
        assert!(!verify(&x, Role::Acceptor, "d", "a", &nd, &na, &p));
        assert!(!verify(&c, Role::Dialer, "d", "a", &nd, &na, &p));
        assert!(!verify(&c, Role::Acceptor, "a", "d", &nd, &na, &p));
        assert!(!verify(&c, Role::Acceptor, "d", "a", &na, &nd, &p));
        // Names are length-prefixed: ("ab", "c") differs from ("a", "bc").
        let q = proof(&c, Role::Dialer, "ab", "c", &nd, &na);
        assert!(!verify(&c, Role::Dialer, "a", "bc", &nd, &na, &q));
    }
}
