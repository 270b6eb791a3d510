//! Handles to actors on other nodes: [`RemoteRef`], the serializable reply
//! port [`RemoteReply`], and [`RemoteMonitor`].
//!
//! A `RemoteRef<M>` names an exported actor on a peer. It follows the peer
//! across reconnections: while the session is down, sends fail at once with
//! [`ClusterError::NodeDown`]; after the reconnection they work again.
//!
//! See [`RemoteRef`] for an example.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use super::error::{ClusterError, DownReason, RemoteCastError};
use super::message::RemoteMessage;
use super::outbox::Push;
use super::peer::Peer;
use super::session::Link;
use super::wire::{self, Frame, Refusal};

thread_local! {
    /// The session a message is being decoded from, so that the reply ports
    /// inside it know where to answer.
    static INBOUND: RefCell<Option<Arc<Link>>> = const { RefCell::new(None) };
    /// Set while a message that could not be delivered is dropped: its
    /// reply ports stay silent, because the refusal answers the caller.
    static DISARMED: Cell<bool> = const { Cell::new(false) };
    /// Set while a message is dropped for a known reason: its reply ports
    /// answer their callers with it instead of `ReplyDropped`.
    static DROP_REFUSAL: RefCell<Option<Refusal>> = const { RefCell::new(None) };
}

/// Drops `value`, its reply ports answering their callers with `refusal`.
pub(crate) fn drop_refusing<T>(value: T, refusal: Refusal) {
    /// Clears the reason even if a drop panics.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            DROP_REFUSAL.with(|r| *r.borrow_mut() = None);
        }
    }
    DROP_REFUSAL.with(|r| *r.borrow_mut() = Some(refusal));
    let _clear = Clear;
    drop(value);
}

/// Runs `f` (which decodes a message) with `link` as the session reply
/// ports bind to. Reply ports dropped by a failed decode stay silent: the
/// refusal answers the caller.
pub(crate) fn decoding_from<R>(link: &Arc<Link>, f: impl FnOnce() -> R) -> R {
    /// Restores the previous session even if `f` panics.
    struct Restore(Option<Arc<Link>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            INBOUND.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(INBOUND.with(|c| c.replace(Some(link.clone()))));
    disarmed(f)
}

fn disarmed<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag even if `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DISARMED.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DISARMED.with(|d| d.replace(true)));
    f()
}

/// Drops `value` without letting the reply ports inside it answer.
pub(crate) fn drop_disarmed<T>(value: T) {
    disarmed(|| drop(value));
}

/// A handle to an actor exported on another node.
///
/// Cheap to clone. It follows the peer across reconnections: while the
/// session is down, sends fail at once with [`ClusterError::NodeDown`];
/// after the reconnection they work again. Messages from one sender to one
/// remote actor arrive in the order they were sent while the session lives;
/// a message is never delivered twice.
///
/// ```
/// use std::time::Duration;
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::cluster::{Node, NodeConfig, RemoteReply};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
/// enum Greeter {
///     Greet(String, RemoteReply<String>),
/// }
///
/// struct GreeterActor;
/// impl Actor for GreeterActor {
///     type Msg = Greeter;
///     type State = ();
///     type Arguments = ();
///     async fn pre_start(&self, _: ActorRef<Greeter>, _: ()) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
///     async fn handle(&self, _: ActorRef<Greeter>, msg: Greeter, _: &mut ()) -> Result<(), ActorProcessingErr> {
///         let Greeter::Greet(name, reply) = msg;
///         reply.send(format!("hello, {name}"));
///         Ok(())
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = Node::start(NodeConfig::new("a").cookie("secret")).await?;
/// let b = Node::start(NodeConfig::new("b").cookie("secret")).await?;
/// let (greeter, _) = Actor::spawn(None, GreeterActor, ()).await?;
/// a.export("greeter", greeter)?;
///
/// b.connect(a.local_addr()).await?;
/// let remote = b.lookup::<Greeter>("a", "greeter").await?;
/// let answer = remote
///     .call(|reply| Greeter::Greet("b".into(), reply), Duration::from_secs(1))
///     .await?;
/// assert_eq!(answer, "hello, b");
/// # b.shutdown().await; a.shutdown().await; Ok(()) }
/// ```
pub struct RemoteRef<M> {
    peer: Arc<Peer>,
    actor: Arc<str>,
    /// The cast frame's header, encoded once (names are validated, so it
    /// always encodes; `None` falls back to encoding per cast).
    cast_header: Option<Bytes>,
    _msg: PhantomData<fn(M)>,
}

impl<M> Clone for RemoteRef<M> {
    fn clone(&self) -> Self {
        RemoteRef {
            peer: self.peer.clone(),
            actor: self.actor.clone(),
            cast_header: self.cast_header.clone(),
            _msg: PhantomData,
        }
    }
}

impl<M: RemoteMessage> fmt::Debug for RemoteRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteRef")
            .field("peer", &self.peer.name())
            .field("actor", &self.actor)
            .field("tag", &M::TAG)
            .finish()
    }
}

impl<M: RemoteMessage> RemoteRef<M> {
    pub(crate) fn new(peer: Arc<Peer>, actor: &str) -> Self {
        RemoteRef {
            peer,
            actor: Arc::from(actor),
            cast_header: wire::cast_header(actor, M::TAG).ok(),
            _msg: PhantomData,
        }
    }

    /// The peer's node name.
    pub fn peer(&self) -> &str {
        self.peer.name()
    }

    /// The actor's exported name.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub(crate) fn peer_handle(&self) -> &Arc<Peer> {
        &self.peer
    }

    /// Sends `msg` without waiting for an answer.
    ///
    /// # Errors
    ///
    /// Fails at once, handing `msg` back inside the error, if the peer is
    /// not connected ([`ClusterError::NotConnected`],
    /// [`ClusterError::NodeDown`]), the message does not encode or fit in
    /// a frame ([`ClusterError::Encode`]), or the session's send buffer is
    /// full ([`ClusterError::Busy`]: the peer or the network is slower
    /// than this node's senders; retry later or use
    /// [`cast_wait`](Self::cast_wait)). If the peer cannot deliver it (the
    /// actor stopped, or was unexported), or the session ends before it is
    /// written, it is a dead letter: counted in a
    /// [`NodeEvent::DeadLetter`](super::NodeEvent::DeadLetter) and handed
    /// to the dead-letter handler.
    pub fn cast(&self, msg: M) -> Result<(), RemoteCastError<M>> {
        thread_local! {
            /// One encoding buffer per thread, reused by every cast.
            static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        /// A buffer grown past this by a large message is given back.
        const KEEP: usize = 64 * 1024;
        let link = match self.peer.link() {
            Ok(link) => link,
            Err(e) => return Err(RemoteCastError::new(e, msg)),
        };
        let pushed = match &self.cast_header {
            // The buffer is busy only if a `Serialize` impl casts from
            // inside a cast: then encode into a fresh one.
            // `try_with`: a cast from a thread-local's destructor still
            // works, through a fresh buffer.
            Some(header) => SCRATCH
                .try_with(|scratch| match scratch.try_borrow_mut() {
                    Ok(mut buf) => {
                        let pushed =
                            wire::encode_with_header_into(&mut buf, header, &msg, link.max_frame)
                                .map(|()| link.send_data(&buf));
                        if buf.capacity() > KEEP {
                            *buf = Vec::new();
                        }
                        Some(pushed)
                    }
                    Err(_) => None,
                })
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    wire::encode_with_header(header, &msg, link.max_frame)
                        .map(|bytes| link.send_data(&bytes))
                }),
            None => wire::encode(&self.send_frame(None), Some(&msg), link.max_frame)
                .map(|bytes| link.send_data(&bytes)),
        };
        let pushed = match pushed {
            Ok(pushed) => pushed,
            Err(reason) => {
                let e = ClusterError::Encode {
                    actor: self.actor.to_string(),
                    reason,
                };
                return Err(RemoteCastError::new(e, msg));
            }
        };
        match pushed {
            Push::Queued => Ok(()),
            Push::Busy { queued } => Err(RemoteCastError::new(
                self.peer.busy_error(queued, link.outbox.limit()),
                msg,
            )),
            Push::Overflow { .. } | Push::Closed => {
                Err(RemoteCastError::new(self.peer.not_connected_error(), msg))
            }
        }
    }

    /// Sends `msg` without waiting for an answer, waiting for room in the
    /// session's send buffer for as long as the session lives.
    ///
    /// # Errors
    ///
    /// As [`cast`](Self::cast), except that a full buffer is waited out:
    /// it fails (handing `msg` back) only if the message does not encode,
    /// or there is no session, or the session ends while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while waiting, nothing was sent.
    pub async fn cast_wait(&self, msg: M) -> Result<(), RemoteCastError<M>> {
        let (link, bytes) = match self.encode_cast(&msg) {
            Ok(ready) => ready,
            Err(e) => return Err(RemoteCastError::new(e, msg)),
        };
        loop {
            match link.send_data(&bytes) {
                Push::Queued => return Ok(()),
                Push::Busy { queued } => link.outbox.room(queued).await,
                Push::Overflow { .. } | Push::Closed => {
                    return Err(RemoteCastError::new(self.peer.not_connected_error(), msg))
                }
            }
        }
    }

    /// The current session and `msg` encoded as a cast for it.
    fn encode_cast(&self, msg: &M) -> Result<(Arc<Link>, Bytes), ClusterError> {
        let link = self.peer.link()?;
        let encoded = match &self.cast_header {
            Some(header) => wire::encode_with_header(header, msg, link.max_frame),
            None => wire::encode(&self.send_frame(None), Some(msg), link.max_frame),
        };
        let bytes = encoded.map_err(|reason| ClusterError::Encode {
            actor: self.actor.to_string(),
            reason,
        })?;
        Ok((link, bytes))
    }

    fn send_frame(&self, reply: Option<u64>) -> Frame {
        Frame::Send {
            actor: self.actor.to_string(),
            tag: M::TAG.to_string(),
            reply,
        }
    }

    /// Sends the message built by `build` around a reply port and waits up
    /// to `timeout` for the handler's `reply.send(value)`.
    ///
    /// Fails with [`ClusterError::NodeDown`] if the peer goes down first,
    /// [`ClusterError::Refused`] if the peer cannot deliver the message or
    /// the handler drops the port without answering,
    /// [`ClusterError::Busy`] at once if the session's send buffer is full
    /// (nothing was sent; retry later), and [`ClusterError::Timeout`]
    /// otherwise (the handler may still run).
    pub async fn call<T, F>(&self, build: F, timeout: Duration) -> Result<T, ClusterError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce(RemoteReply<T>) -> M,
    {
        let link = self.peer.link()?;
        let encode = |id| {
            let msg = build(RemoteReply::outgoing(id));
            wire::encode(&self.send_frame(Some(id)), Some(&msg), link.max_frame).map_err(|reason| {
                ClusterError::Encode {
                    actor: self.actor.to_string(),
                    reason,
                }
            })
        };
        let bytes = self
            .peer
            .request(&link, &self.actor, encode, timeout)
            .await?;
        wire::decode_payload_with(&bytes, &link.limits).map_err(|reason| ClusterError::Decode {
            peer: self.peer.name().to_string(),
            actor: self.actor.to_string(),
            reason,
        })
    }
}

/// A reply port that crosses the network: put one in a message variant and
/// answer it with [`send`](Self::send), as with ractor's `RpcReplyPort`.
///
/// Created by [`RemoteRef::call`]; on the receiving node it is bound to the
/// session the message came from. Dropping it unanswered tells the caller
/// at once ([`Refusal::ReplyDropped`]) instead of letting it time out.
///
/// # Answering a caller that has gone away
///
/// As with Erlang's `gen_server:reply/2`, answering never fails the
/// handler: [`send`](Self::send) returns a [`Replied`] outcome, not a
/// `Result`, so there is nothing to propagate with `?`. A caller can vanish
/// at any time (its call timed out, its node stopped, or the session broke
/// and its call failed with [`ClusterError::NodeDown`]) while the message
/// is still waiting in this node's socket or mailbox; the handler then runs
/// anyway and its answer has nowhere to go. That is the caller's outcome to
/// handle, not the replier's, so an exported actor keeps serving the
/// callers that are still there.
///
/// The other side of this: **a call that failed with
/// [`ClusterError::NodeDown`] (or [`ClusterError::Timeout`]) may still have
/// been handled** on the remote node. Delivery is at most once, not
/// exactly once; make calls that change state idempotent (a request id, a
/// version) if a retry must not apply them twice.
///
/// ```
/// # use ractor_otp::cluster::RemoteReply;
/// fn answer(reply: RemoteReply<u64>, n: u64) {
///     // Nothing to propagate: the outcome is logged (debug for a caller
///     // gone, warn for an answer that did not encode).
///     reply.send(n);
/// }
///
/// fn answer_and_count(reply: RemoteReply<u64>, n: u64, unanswered: &mut u64) {
///     if !reply.send(n).is_sent() {
///         *unanswered += 1;
///     }
/// }
/// ```
pub struct RemoteReply<T> {
    id: u64,
    link: Option<Arc<Link>>,
    /// For a call to an actor on this node (through a cluster-wide name or
    /// group): the encoded answer goes straight back to the caller.
    local: Option<oneshot::Sender<Result<Bytes, Refusal>>>,
    _value: PhantomData<fn(T)>,
}

impl<T> RemoteReply<T> {
    fn outgoing(id: u64) -> Self {
        RemoteReply {
            id,
            link: None,
            local: None,
            _value: PhantomData,
        }
    }

    /// A port answering a caller on this node through `tx`.
    pub(crate) fn local(tx: oneshot::Sender<Result<Bytes, Refusal>>) -> Self {
        RemoteReply {
            id: 0,
            link: None,
            local: Some(tx),
            _value: PhantomData,
        }
    }

    /// Whether the caller can still be answered (the session it came over
    /// is alive). A handler may skip expensive work when it is not; `send`
    /// needs no such check.
    pub fn is_connected(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.is_open())
            || self.local.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

impl<T: Serialize> RemoteReply<T> {
    /// Answers the caller, and says what became of the answer.
    ///
    /// Never fails the handler, and needs no `?`: a caller that has gone
    /// away ([`Replied::CallerGone`]) is logged at debug level, an answer
    /// that does not encode or exceeds the caller's frame limit
    /// ([`Replied::Unencodable`]; the caller then gets
    /// [`Refusal::ReplyEncode`] instead of timing out) at warn level. Look
    /// at the outcome only if you want to count or react to it.
    ///
    /// [`Replied::Sent`] means the answer is queued on the live session to
    /// the caller; like any frame, it is lost if that connection breaks
    /// before it is written (the caller's call then fails with
    /// [`ClusterError::NodeDown`]).
    pub fn send(mut self, value: T) -> Replied {
        if let Some(tx) = self.local.take() {
            return match wire::encode_payload(&value) {
                Ok(bytes) => hold_or_deliver(Held(Some(Answer::Local { tx, bytes }))),
                Err(reason) => {
                    let _ = tx.send(Err(Refusal::ReplyEncode(reason.to_string())));
                    Replied::Unencodable(reason)
                }
            };
        }
        let Some(link) = self.link.take() else {
            tracing::debug!(
                call = self.id,
                "reply not sent: the port was not received from a node"
            );
            return Replied::CallerGone;
        };
        let frame = Frame::Reply {
            id: self.id,
            result: Ok(()),
        };
        match wire::encode(&frame, Some(&value), link.max_frame) {
            Ok(bytes) => hold_or_deliver(Held(Some(Answer::Remote {
                link,
                id: self.id,
                bytes,
            }))),
            Err(reason) => {
                tracing::warn!(
                    call = self.id,
                    session = link.session,
                    error = %reason,
                    "reply not sent: it did not encode; the caller gets a ReplyEncode refusal"
                );
                link.refuse(self.id, Refusal::ReplyEncode(reason.to_string()));
                Replied::Unencodable(reason)
            }
        }
    }
}

/// An encoded answer, sent at once or held for a checkpoint.
enum Answer {
    Local {
        tx: oneshot::Sender<Result<Bytes, Refusal>>,
        bytes: Bytes,
    },
    Remote {
        link: Arc<Link>,
        id: u64,
        bytes: Bytes,
    },
}

impl Answer {
    fn deliver(self) -> Replied {
        match self {
            Answer::Local { tx, bytes } => match tx.send(Ok(bytes)) {
                Ok(()) => Replied::Sent,
                Err(_) => Replied::CallerGone,
            },
            Answer::Remote { link, id, bytes } => match link.send(bytes) {
                Ok(()) => Replied::Sent,
                Err(()) => {
                    tracing::debug!(
                        call = id,
                        session = link.session,
                        "reply not sent: the caller's session has ended (its call failed with NodeDown)"
                    );
                    Replied::CallerGone
                }
            },
        }
    }

    fn refuse(self, refusal: Refusal) {
        match self {
            Answer::Local { tx, .. } => {
                let _ = tx.send(Err(refusal));
            }
            Answer::Remote { link, id, .. } => link.refuse(id, refusal),
        }
    }
}

/// An answer waiting for its checkpoint. Dropped unreleased (the handler
/// was killed or panicked before the save), it refuses its caller rather
/// than leave it waiting for its timeout.
struct Held(Option<Answer>);

impl Held {
    fn deliver(mut self) -> Replied {
        match self.0.take() {
            Some(a) => a.deliver(),
            None => Replied::CallerGone,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.refuse(Refusal::NotSaved(
                "the handler ended before its state was saved".into(),
            ));
        }
    }
}

impl crate::checkpoint::HeldReply for Held {
    fn release(mut self: Box<Self>, saved: Result<(), &crate::checkpoint::CheckpointError>) {
        let Some(answer) = self.0.take() else {
            return;
        };
        match saved {
            Ok(()) => {
                answer.deliver();
            }
            // Stored or not, nobody can tell: the caller must not take it
            // as not done.
            Err(e @ crate::checkpoint::CheckpointError::Unconfirmed { .. }) => {
                answer.refuse(Refusal::SaveUncertain(e.to_string()))
            }
            Err(e) => answer.refuse(Refusal::NotSaved(e.to_string())),
        }
    }
}

/// Holds `held` when the handler runs inside a [`Checkpointed`](crate::checkpoint::Checkpointed)
/// actor that acknowledges after its save; sends it otherwise.
fn hold_or_deliver(held: Held) -> Replied {
    match crate::checkpoint::defer_reply(held) {
        Ok(()) => Replied::Held,
        Err(held) => held.deliver(),
    }
}

/// What became of an answer given with [`RemoteReply::send`].
///
/// Deliberately not a `Result`: answering a caller that has gone away is
/// an ordinary event in a distributed system (Erlang's `gen_server:reply`
/// always returns `ok`), not a reason for the replying actor to fail. Both
/// outcomes other than [`Sent`](Self::Sent) are already logged by `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replied {
    /// The answer is queued on the live session to the caller.
    Sent,
    /// The handler runs in a [`Checkpointed`](crate::checkpoint::Checkpointed)
    /// actor that acknowledges after saving: the answer is sent once the
    /// checkpoint of this message is saved, or refused with
    /// [`Refusal::NotSaved`] if the save fails.
    Held,
    /// The caller cannot be answered: the session its call came over has
    /// ended (the call already failed on its side with
    /// [`ClusterError::NodeDown`]), or the port was never received from a
    /// node.
    CallerGone,
    /// The answer did not encode, or is larger than the caller's maximum
    /// frame size; the caller got [`Refusal::ReplyEncode`] instead.
    Unencodable(wire::WireError),
}

impl Replied {
    /// Whether the answer is on its way to the caller.
    pub fn is_sent(&self) -> bool {
        matches!(self, Replied::Sent | Replied::Held)
    }
}

impl fmt::Display for Replied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replied::Sent => f.write_str("sent"),
            Replied::Held => f.write_str("held until the checkpoint is saved"),
            Replied::CallerGone => f.write_str("not sent: the caller has gone away"),
            Replied::Unencodable(e) => write!(f, "not sent: {e}"),
        }
    }
}

impl<T> Drop for RemoteReply<T> {
    fn drop(&mut self) {
        if DISARMED.with(|d| d.get()) {
            return;
        }
        let refusal = || {
            DROP_REFUSAL
                .with(|r| r.borrow().clone())
                .unwrap_or(Refusal::ReplyDropped)
        };
        if let Some(tx) = self.local.take() {
            let _ = tx.send(Err(refusal()));
        }
        if let Some(link) = self.link.take() {
            link.refuse(self.id, refusal());
        }
    }
}

impl<T> fmt::Debug for RemoteReply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteReply")
            .field("id", &self.id)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl<T> Serialize for RemoteReply<T> {
    /// Only a port created by [`RemoteRef::call`] travels; a received one
    /// cannot be forwarded to a third node (its answer would reach the wrong
    /// caller): answer it where it arrived.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.link.is_some() || self.local.is_some() {
            return Err(serde::ser::Error::custom(
                "a received RemoteReply cannot be forwarded to another node; answer it here",
            ));
        }
        s.serialize_u64(self.id)
    }
}

impl<'de, T> Deserialize<'de> for RemoteReply<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(d)?;
        Ok(RemoteReply {
            id,
            link: INBOUND.with(|c| c.borrow().clone()),
            local: None,
            _value: PhantomData,
        })
    }
}

/// Why a monitored remote actor is gone, from [`RemoteMonitor`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ActorDownReason {
    /// The actor stopped or failed; the text is ractor's exit reason or the
    /// failure.
    Exited(String),
    /// Nothing is exported under that name (any more).
    NotExported,
    /// The actor's node went down; the actor may still be running there.
    NodeDown(DownReason),
}

impl fmt::Display for ActorDownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorDownReason::Exited(r) => write!(f, "the actor exited: {r}"),
            ActorDownReason::NotExported => write!(f, "no actor is exported under that name"),
            ActorDownReason::NodeDown(r) => write!(f, "its node went down: {r}"),
        }
    }
}

/// What a [`RemoteMonitor`] resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteDown {
    /// The peer's node name.
    pub peer: String,
    /// The actor's exported name.
    pub actor: String,
    /// Why it is gone.
    pub reason: ActorDownReason,
}

/// A one-shot monitor of a remote actor, from
/// [`Node::monitor`](super::Node::monitor): a future that resolves once,
/// when the actor ends or its node goes down (as Erlang's monitors, it
/// fires once; monitor again after a reconnection). Dropping it cancels the
/// monitor.
pub struct RemoteMonitor {
    pub(crate) rx: oneshot::Receiver<ActorDownReason>,
    pub(crate) peer: Arc<Peer>,
    pub(crate) actor: String,
    pub(crate) id: u64,
    pub(crate) done: bool,
}

impl fmt::Debug for RemoteMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteMonitor")
            .field("peer", &self.peer.name())
            .field("actor", &self.actor)
            .finish()
    }
}

impl Future for RemoteMonitor {
    type Output = RemoteDown;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RemoteDown> {
        let reason = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(reason)) => reason,
            Poll::Ready(Err(_)) => ActorDownReason::NodeDown(DownReason::LocalShutdown),
        };
        self.done = true;
        Poll::Ready(RemoteDown {
            peer: self.peer.name().to_string(),
            actor: self.actor.clone(),
            reason,
        })
    }
}

impl Drop for RemoteMonitor {
    fn drop(&mut self) {
        if !self.done {
            self.peer.cancel_monitor(self.id);
        }
    }
}
