//! Supervising a remote actor: [`ChildSpec::remote`].
//!
//! A remote child is a small local actor that stands for an actor exported
//! on another node. It looks the actor up when it starts, monitors it, and
//! forwards what it receives. When the remote actor ends or its node goes
//! down, the stand-in exits abnormally, so its supervisor acts on it as on
//! any failed child: restart under its restart type, intensity, backoff and
//! escalation. While the remote actor is unreachable, each restart fails to
//! start (the lookup fails), so give the child a [`Backoff`] that spans
//! the outages you expect, or the supervisor's intensity will be exceeded.
//!
//! [`Backoff`]: crate::Backoff

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::message::RemoteMessage;
use super::node::Node;
use super::remote_ref::RemoteRef;
use crate::supervisor::ChildSpec;

impl ChildSpec {
    /// A child that stands for the actor exported as `actor` on the node
    /// `peer`, reached through `node`. Messages sent to the child (through
    /// its [`ChildRef<M>`](crate::ChildRef)) are cast to the remote actor;
    /// the child exits abnormally — and its supervisor restarts it — when
    /// the remote actor ends, is unexported or its node goes down, or when a
    /// cast cannot be sent. Starting fails while the remote actor cannot be
    /// looked up.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use ractor::{Actor, ActorProcessingErr, ActorRef};
    /// # use ractor_otp::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize, RemoteMessage)]
    /// enum Log {
    ///     Line(String),
    /// }
    /// # struct Sink;
    /// # impl Actor for Sink {
    /// #     type Msg = Log; type State = (); type Arguments = ();
    /// #     async fn pre_start(&self, _: ActorRef<Log>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
    /// # }
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let b = Node::start(NodeConfig::new("b").cookie("secret")).await?;
    /// # let (sink, _) = Actor::spawn(None, Sink, ()).await?;
    /// # b.export("log", sink)?;
    /// let a = Node::start(NodeConfig::new("a").cookie("secret")).await?;
    /// a.connect(b.local_addr()).await?;
    ///
    /// // "log" on node b, supervised from node a: restarted when b goes down
    /// // and comes back, with backoff in between.
    /// let spec = SupervisorSpec::new(Strategy::OneForOne).child(
    ///     ChildSpec::remote::<Log>("log", &a, "b", "log")
    ///         .backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(5))),
    /// );
    /// let (sup, _) = Supervisor::spawn(None, spec).await?;
    /// let log = sup.child::<Log>("log").expect("a child");
    /// log.cast(Log::Line("hello from a".into()))?;
    /// # sup.cell().stop_and_wait(None, None).await?; a.shutdown().await; b.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn remote<M: RemoteMessage>(
        id: impl Into<String>,
        node: &Node,
        peer: impl Into<String>,
        actor: impl Into<String>,
    ) -> ChildSpec {
        let stand_in = RemoteStandIn::<M> {
            node: node.clone(),
            peer: Arc::from(peer.into()),
            actor: Arc::from(actor.into()),
            _msg: PhantomData,
        };
        ChildSpec::new(id, stand_in, || ())
    }
}

/// The local actor standing for a remote one.
struct RemoteStandIn<M> {
    node: Node,
    peer: Arc<str>,
    actor: Arc<str>,
    _msg: PhantomData<fn(M)>,
}

impl<M> Clone for RemoteStandIn<M> {
    fn clone(&self) -> Self {
        RemoteStandIn {
            node: self.node.clone(),
            peer: self.peer.clone(),
            actor: self.actor.clone(),
            _msg: PhantomData,
        }
    }
}

/// The stand-in's state: the remote actor, and the task that waits for it
/// to go down.
struct StandIn<M> {
    remote: RemoteRef<M>,
    watch: tokio::task::JoinHandle<()>,
}

impl<M: RemoteMessage> Actor for RemoteStandIn<M> {
    type Msg = M;
    type State = StandIn<M>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<M>,
        _: (),
    ) -> Result<StandIn<M>, ActorProcessingErr> {
        let remote = self.node.lookup::<M>(&self.peer, &self.actor).await?;
        let monitor = self.node.monitor(&remote)?;
        let cell = myself.get_cell();
        let watch = tokio::spawn(async move {
            // Ends with the stand-in, whichever goes first (dropping the
            // monitor cancels it on the peer).
            let down = tokio::select! {
                down = monitor => down,
                _ = cell.wait(None) => return,
            };
            tracing::warn!(peer = %down.peer, actor = %down.actor, reason = %down.reason, "supervised remote actor is down");
            myself.stop(Some(format!(
                "remote actor `{}` on node `{}` is down: {}",
                down.actor, down.peer, down.reason
            )));
        });
        Ok(StandIn { remote, watch })
    }

    async fn handle(
        &self,
        _: ActorRef<M>,
        msg: M,
        state: &mut StandIn<M>,
    ) -> Result<(), ActorProcessingErr> {
        // A full send buffer is waited out: the stand-in's mailbox is the
        // back-pressure; only a session that ends fails it.
        state
            .remote
            .cast_wait(msg)
            .await
            .map_err(super::ClusterError::from)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<M>,
        state: &mut StandIn<M>,
    ) -> Result<(), ActorProcessingErr> {
        state.watch.abort();
        Ok(())
    }
}
