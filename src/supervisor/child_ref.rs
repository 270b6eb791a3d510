//! [`ChildRef`]: a handle to a supervised child that survives its restarts.
//!
//! A restarted ractor actor is a new actor with a new `ActorRef`, so a raw
//! reference goes stale at the first crash. A `ChildRef` reads the current
//! incarnation from a slot that the supervisor updates on every start and
//! clears on every exit.
//!
//! A message cast through a `ChildRef` is either enqueued in the mailbox of a
//! running incarnation or handed back inside the error ([`CastError`]); it is
//! never dropped silently. As in Erlang, a message already in the mailbox of
//! an incarnation that then crashes dies with it: use a `call` when the
//! caller must know the message was handled.
//!
//! ```
//! # use ractor::{Actor, ActorProcessingErr, ActorRef};
//! # use ractor_otp::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
//! # #[derive(Clone)] struct Echo;
//! # impl Actor for Echo {
//! #     type Msg = u32; type State = (); type Arguments = ();
//! #     async fn pre_start(&self, _: ActorRef<u32>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
//! # }
//! # #[tokio::main] async fn main() {
//! let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::new("echo", Echo, || ()));
//! let (sup, _join) = Supervisor::spawn(None, spec).await.unwrap();
//! let echo = sup.child::<u32>("echo").expect("a child `echo` handling u32");
//! echo.cast(7).expect("echo is running");
//! # sup.cell().stop_and_wait(None, None).await.unwrap();
//! # }
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, Message, MessagingErr, RpcReplyPort};

/// The type-erased side of a [`Slot`], as the supervisor sees it.
pub(crate) trait ErasedSlot: Send + Sync + 'static {
    /// Forgets the current incarnation (it ended).
    fn clear(&self);
    /// For downcasting to the typed slot.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// The message type of the child behind the slot.
    fn message_type(&self) -> TypeId;
    /// Its name, for errors.
    fn message_type_name(&self) -> &'static str;
}

/// The current incarnation of one child, shared by the supervisor (writer)
/// and every `ChildRef` (readers).
pub(crate) struct Slot<M: Message> {
    /// `Some` while an incarnation is running; written only by the
    /// supervisor's start and exit paths, so writes never race each other.
    current: RwLock<Option<ActorRef<M>>>,
}

impl<M: Message> Slot<M> {
    pub(crate) fn new_erased() -> Arc<dyn ErasedSlot> {
        Arc::new(Self {
            current: RwLock::new(None),
        })
    }

    pub(crate) fn set(&self, actor: ActorRef<M>) {
        // A poisoned lock only means a reader panicked; the Option is
        // always valid, so recover the guard.
        *lock!(self.current.write()) = Some(actor);
    }

    fn get(&self) -> Option<ActorRef<M>> {
        lock!(self.current.read()).clone()
    }
}

impl<M: Message> ErasedSlot for Slot<M> {
    fn clear(&self) {
        *lock!(self.current.write()) = None;
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn message_type(&self) -> TypeId {
        TypeId::of::<M>()
    }

    fn message_type_name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

/// A handle that always reaches the current incarnation of a supervised
/// child. Get one with [`SupervisorRef::child`](crate::SupervisorRef::child).
#[must_use]
pub struct ChildRef<M: Message> {
    id: Arc<str>,
    slot: Arc<Slot<M>>,
}

impl<M: Message> Clone for ChildRef<M> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl<M: Message> fmt::Debug for ChildRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildRef")
            .field("id", &self.id)
            .field("current", &self.slot.get().map(|a| a.get_id()))
            .finish()
    }
}

impl<M: Message> ChildRef<M> {
    pub(crate) fn new(id: &str, slot: Arc<Slot<M>>) -> Self {
        Self {
            id: id.into(),
            slot,
        }
    }

    /// The child's id in its supervisor.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The running incarnation, or `None` while the child is restarting,
    /// stopped or deleted.
    #[must_use]
    pub fn current(&self) -> Option<ActorRef<M>> {
        self.slot.get()
    }

    /// Sends `message` to the running incarnation without waiting.
    ///
    /// # Errors
    ///
    /// Hands the message back: [`CastError::NotRunning`] while no
    /// incarnation runs, [`CastError::Closed`] if the incarnation was
    /// already stopping when the message arrived.
    pub fn cast(&self, message: M) -> Result<(), CastError<M>> {
        let guard = lock!(self.slot.current.read());
        match guard.as_ref() {
            None => Err(CastError::NotRunning(message)),
            Some(actor) => actor.cast(message).map_err(|err| match err {
                MessagingErr::SendErr(message) => CastError::Closed(message),
                // A typed ActorRef cannot have the wrong type and ractor
                // reports a closed mailbox with the message; neither arm
                // carries it back, so say the child was gone.
                MessagingErr::ChannelClosed | MessagingErr::InvalidActorType => CastError::Lost,
            }),
        }
    }

    /// Sends a request built around a reply port and waits for the answer,
    /// like ractor's `ActorRef::call`; `timeout: None` waits as long as the
    /// incarnation lives.
    ///
    /// # Errors
    ///
    /// [`CallError::NotRunning`] while no incarnation runs,
    /// [`CallError::Closed`] if it was stopping, [`CallError::NoReply`] if it
    /// ended (or dropped the port) before answering, [`CallError::Timeout`].
    pub async fn call<T, F>(&self, build: F, timeout: Option<Duration>) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> M,
    {
        let Some(actor) = self.current() else {
            return Err(CallError::NotRunning(self.id.to_string()));
        };
        match call_while_alive(&actor, build, timeout).await {
            Ok(CallResult::Success(value)) => Ok(value),
            Ok(CallResult::Timeout) => Err(CallError::Timeout(self.id.to_string())),
            Ok(CallResult::SenderError) => Err(CallError::NoReply(self.id.to_string())),
            Err(_) => Err(CallError::Closed(self.id.to_string())),
        }
    }
}

/// ractor's `call`, ended with `SenderError` when the actor exits first.
///
/// A request enqueued at the very moment the actor stops can outlive its
/// mailbox: the mailbox is drained when the actor ends, but a send already
/// admitted may land in the channel just after that drain, where it stays
/// until the last reference to the actor is dropped. The caller holds one,
/// so without this guard a call with no timeout would wait forever (seen
/// in one-for-all restarts: a call to a sibling being stopped). The reply
/// is polled first, so an answer sent before the exit is never lost.
pub(crate) async fn call_while_alive<M, T, F>(
    actor: &ActorRef<M>,
    build: F,
    timeout: Option<Duration>,
) -> Result<CallResult<T>, MessagingErr<M>>
where
    M: Message,
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<T>) -> M,
{
    tokio::select! {
        biased;
        answer = actor.call(build, timeout) => answer,
        _ = actor.wait(None) => Ok(CallResult::SenderError),
    }
}

/// A cast that could not be enqueued; the message comes back to the caller.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum CastError<M> {
    /// No incarnation is running (restarting, stopped or deleted).
    #[error("the child is not running (restarting, stopped or deleted); the message is returned")]
    NotRunning(M),
    /// The incarnation was stopping and refused the message.
    #[error("the child was stopping and refused the message; the message is returned")]
    Closed(M),
    /// The incarnation's mailbox was gone and ractor did not return the
    /// message.
    #[error("the child's mailbox was closed and the message was lost with it")]
    Lost,
}

impl<M> CastError<M> {
    /// The message that was not delivered, if it came back.
    pub fn into_inner(self) -> Option<M> {
        match self {
            Self::NotRunning(m) | Self::Closed(m) => Some(m),
            Self::Lost => None,
        }
    }
}

impl<M> fmt::Debug for CastError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRunning(_) => f.write_str("NotRunning(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
            Self::Lost => f.write_str("Lost"),
        }
    }
}

/// A call through a [`ChildRef`] that got no answer; each variant names the
/// child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No incarnation is running.
    #[error("child `{0}` is not running (restarting, stopped or deleted)")]
    NotRunning(String),
    /// The incarnation was stopping and refused the request.
    #[error("child `{0}` was stopping and refused the request")]
    Closed(String),
    /// The incarnation ended or dropped the reply port without answering.
    #[error("child `{0}` ended or dropped the reply port before answering")]
    NoReply(String),
    /// No answer within the timeout.
    #[error("child `{0}` did not answer within the timeout")]
    Timeout(String),
}
