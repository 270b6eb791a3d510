//! The trees of other nodes: each node's observer answers for its own
//! trees, through the cluster.
//!
//! An observer given a [`Node`] exports a small actor under [`EXPORT`] that
//! answers [`ObserverQuery::Trees`] with the JSON of the trees it observes.
//! Another node's observer asks it (`GET /api/nodes/{peer}/trees`) with a
//! remote call bounded by [`INSPECT_TIMEOUT`]: a peer with no observer
//! answers "not exported", one that is down or slow answers nothing, and
//! the page says so.

use std::sync::{Arc, Weak};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{all_trees, error, Shared};
use super::INSPECT_TIMEOUT;
use crate::cluster::{ClusterError, Node, RemoteMessage, RemoteReply};

/// The name every observer exports its answering actor under.
pub(crate) const EXPORT: &str = "ractor_otp.observer";

/// What one observer asks another, through the cluster.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ObserverQuery {
    /// The JSON of the trees the observer shows (as `GET /api/trees`).
    Trees(RemoteReply<String>),
}

impl RemoteMessage for ObserverQuery {
    const TAG: &'static str = "ractor_otp.ObserverQuery.v1";
}

/// Answers peers' queries from the observer's views; holds them weakly, so
/// that a stopped observer answers nothing.
struct Answerer;

impl Actor for Answerer {
    type Msg = ObserverQuery;
    type State = Weak<Shared>;
    type Arguments = Weak<Shared>;

    async fn pre_start(
        &self,
        _: ActorRef<ObserverQuery>,
        shared: Weak<Shared>,
    ) -> Result<Weak<Shared>, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle(
        &self,
        _: ActorRef<ObserverQuery>,
        query: ObserverQuery,
        shared: &mut Weak<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        match query {
            ObserverQuery::Trees(reply) => {
                let Some(shared) = shared.upgrade() else {
                    return Ok(()); // dropping the reply tells the caller
                };
                // Answered from a task: a slow tree never holds up the
                // next query.
                tokio::spawn(async move {
                    let trees = Value::Array(all_trees(&shared).await);
                    let _ = reply.send(trees.to_string());
                });
            }
        }
        Ok(())
    }
}

/// Exports the answering actor on `node`; `None` (logged) if it could not
/// be: another observer on this node answers already.
pub(crate) async fn export(node: &Node, shared: &Arc<Shared>) -> Option<ActorRef<ObserverQuery>> {
    let (actor, _join) = Actor::spawn(None, Answerer, Arc::downgrade(shared))
        .await
        .map_err(
            |e| tracing::warn!(error = %e, "the observer could not start its cluster answerer"),
        )
        .ok()?;
    match node.export(EXPORT, actor.clone()) {
        Ok(()) => Some(actor),
        Err(e) => {
            tracing::warn!(error = %e, "another observer answers for this node's trees already");
            actor.stop(None);
            None
        }
    }
}

/// `GET /api/nodes/{peer}/trees`: the trees `peer`'s observer shows.
pub(crate) async fn trees(State(shared): State<Arc<Shared>>, Path(peer): Path<String>) -> Response {
    let Some(node) = shared.node.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "this observer watches no node (ObserverBuilder::node)",
        );
    };
    if peer == node.name() {
        return Json(json!({ "node": peer, "trees": all_trees(&shared).await })).into_response();
    }
    if node.peer(&peer).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no peer named {peer:?}"));
    }
    let asked = async {
        let remote = node.lookup::<ObserverQuery>(&peer, EXPORT).await?;
        remote.call(ObserverQuery::Trees, INSPECT_TIMEOUT).await
    };
    match tokio::time::timeout(INSPECT_TIMEOUT * 2, asked).await {
        Ok(Ok(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(trees) => Json(json!({ "node": peer, "trees": trees })).into_response(),
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                format!("{peer} answered trees that are not JSON: {e}"),
            ),
        },
        Ok(Err(ClusterError::Refused { .. })) => error(
            StatusCode::BAD_GATEWAY,
            format!("{peer} runs no observer with this node's cluster (ObserverBuilder::node)"),
        ),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, format!("{peer}: {e}")),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{peer} did not answer within {:?}", INSPECT_TIMEOUT * 2),
        ),
    }
}
