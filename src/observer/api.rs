//! The observer's HTTP side: the page, the JSON API, the event stream and
//! the actions. Views are read on request from the supervisors (one
//! `Inspect` call each, bounded by [`INSPECT_TIMEOUT`]) and pools.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ractor::rpc::CallResult;
use ractor::ActorRef;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::hub::{Event, EventKind};
use super::{Actions, PoolView, INSPECT_TIMEOUT, PEER_HISTORY, RECENT_EVENTS};
use crate::supervisor::actor::{ChildKey, SupervisorMsg};
use crate::supervisor::snapshot::{ChildSnapshot, TreeSnapshot};
use crate::supervisor::{ChildKind, ChildStatus, Restart, SupervisorError};

/// The page: one file, no build step.
const PAGE: &str = include_str!("page.html");

/// Events kept for each live stream that has not sent them yet; past this
/// the stream lags (loses the oldest) and says so.
const STREAM_BUFFER: usize = 256;

/// The deepest tree shown (a guard against a cycle that cannot happen).
const MAX_DEPTH: usize = 32;

/// One sample of a peer, a second apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSample {
    pub(crate) at_ms: u64,
    pub(crate) phi: f64,
    pub(crate) rtt_ms: Option<f64>,
}

/// What the handlers share with the collector.
pub(crate) struct Shared {
    roots: Vec<ActorRef<SupervisorMsg>>,
    pools: Vec<(String, Arc<dyn PoolView>)>,
    #[cfg(feature = "cluster")]
    pub(crate) node: Option<crate::cluster::Node>,
    actions: Actions,
    /// The newest [`RECENT_EVENTS`] events, oldest first.
    recent: Mutex<VecDeque<Arc<Event>>>,
    /// Every event as it is recorded, to the live streams.
    live: broadcast::Sender<Arc<Event>>,
    /// Peer name → its samples, oldest first, at most [`PEER_HISTORY`].
    pub(crate) history: Mutex<HashMap<String, VecDeque<PeerSample>>>,
    /// Events the live streams dropped for slow clients.
    lagged: AtomicU64,
    /// Turns true when the observer stops: live streams end, so that the
    /// server's graceful shutdown is not held open by a browser.
    stop: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn new(
        roots: Vec<ActorRef<SupervisorMsg>>,
        pools: Vec<(String, Arc<dyn PoolView>)>,
        #[cfg(feature = "cluster")] node: Option<crate::cluster::Node>,
        actions: Actions,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            roots,
            pools,
            #[cfg(feature = "cluster")]
            node,
            actions,
            recent: Mutex::new(VecDeque::new()),
            live: broadcast::channel(STREAM_BUFFER).0,
            history: Mutex::new(HashMap::new()),
            lagged: AtomicU64::new(0),
            stop,
        }
    }

    /// Keeps an event for the page and pushes it to the live streams
    /// (never waits: a full stream loses its oldest).
    pub(crate) fn record(&self, event: Arc<Event>) {
        {
            let mut recent = lock!(self.recent.lock());
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.live.send(event);
    }

    /// Adds a sample of `peer`, dropping the oldest past [`PEER_HISTORY`].
    pub(crate) fn sample(&self, peer: &str, sample: PeerSample) {
        let mut history = lock!(self.history.lock());
        let samples = history.entry(peer.to_string()).or_default();
        if samples.len() == PEER_HISTORY {
            samples.pop_front();
        }
        samples.push_back(sample);
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/api", get(index))
        .route("/api/trees", get(trees))
        .route("/api/trees/{*path}", get(tree_at))
        .route("/api/pools", get(pools))
        .route("/api/pools/{name}", get(pool_named))
        .route("/api/cluster", get(cluster))
        .route("/api/nodes/{peer}/trees", get(node_trees))
        .route("/api/events", get(events))
        .route("/api/events/stream", get(stream))
        .route("/api/actions/{action}/{*path}", post(act))
        .fallback(not_found)
        .with_state(shared)
}

// ---------------------------------------------------------------------------
// Errors

/// An error answer: a status and `{"error": ..}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// An error answer, as a response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(status, message).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such page or API: {} (see GET /api)", uri.path()),
    )
}

// ---------------------------------------------------------------------------
// Page and index

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn index(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let actions = match &shared.actions {
        Actions::Off => "off",
        Actions::Loopback => "loopback",
        Actions::Token(_) => "token",
    };
    #[cfg(feature = "cluster")]
    let node = shared.node.as_ref().map(|n| n.name().to_string());
    #[cfg(not(feature = "cluster"))]
    let node: Option<String> = None;
    Json(json!({
        "crate": "ractor-otp",
        "version": env!("CARGO_PKG_VERSION"),
        "node": node,
        "trees": shared.roots.len(),
        "pools": shared.pools.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
        "actions": actions,
        "endpoints": [
            "GET /api/trees", "GET /api/trees/{path}", "GET /api/pools",
            "GET /api/pools/{name}", "GET /api/cluster", "GET /api/nodes/{peer}/trees", "GET /api/events",
            "GET /api/events/stream", "POST /api/actions/{kill|terminate|restart}/{path}"
        ],
    }))
}

// ---------------------------------------------------------------------------
// Trees

/// One `Inspect` round trip, bounded by [`INSPECT_TIMEOUT`].
async fn inspect(actor: &ActorRef<SupervisorMsg>) -> Option<TreeSnapshot> {
    match actor
        .call(SupervisorMsg::Inspect, Some(INSPECT_TIMEOUT))
        .await
    {
        Ok(CallResult::Success(snapshot)) => Some(snapshot),
        _ => None,
    }
}

/// A child's actor as a supervisor of ours, if it is one.
fn as_supervisor(child: &ChildSnapshot) -> Option<ActorRef<SupervisorMsg>> {
    let cell = child.actor.as_ref()?;
    (child.kind == ChildKind::Supervisor
        && cell.is_message_type_of::<SupervisorMsg>() == Some(true))
    .then(|| cell.clone().into())
}

fn status_name(status: ChildStatus) -> &'static str {
    match status {
        ChildStatus::Running => "running",
        ChildStatus::Restarting => "restarting",
        ChildStatus::Stopped => "stopped",
    }
}

fn restart_name(restart: Restart) -> &'static str {
    match restart {
        Restart::Permanent => "permanent",
        Restart::Transient => "transient",
        Restart::Temporary => "temporary",
    }
}

fn kind_name(kind: ChildKind) -> &'static str {
    match kind {
        ChildKind::Worker => "worker",
        ChildKind::Supervisor => "supervisor",
    }
}

/// The JSON of the tree below `actor`; `None` if it did not answer.
fn tree_json(
    actor: ActorRef<SupervisorMsg>,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Option<Value>> + Send>> {
    Box::pin(async move {
        let snapshot = inspect(&actor).await?;
        let mut children = Vec::with_capacity(snapshot.children.len());
        for child in &snapshot.children {
            let nested = match as_supervisor(child) {
                Some(sup) if depth < MAX_DEPTH => tree_json(sup, depth + 1).await,
                _ => None,
            };
            children.push(child_json(&snapshot.label, child, nested));
        }
        Some(json!({
            "path": snapshot.label,
            "strategy": snapshot.strategy,
            "actor": actor.get_id().to_string(),
            "children": children,
        }))
    })
}

fn child_json(parent: &str, child: &ChildSnapshot, nested: Option<Value>) -> Value {
    json!({
        "id": child.id,
        "path": format!("{parent}/{}", child.id),
        "kind": kind_name(child.kind),
        "restart": restart_name(child.restart),
        "status": status_name(child.status),
        "actor": child.actor.as_ref().map(|c| c.get_id().to_string()),
        "restarts": child.restarts,
        "last_exit": child.last_exit.as_ref().map(|r| r.to_string()),
        "backoff_attempt": child.backoff_attempt,
        "tree": nested,
    })
}

pub(crate) async fn all_trees(shared: &Shared) -> Vec<Value> {
    let mut out = Vec::with_capacity(shared.roots.len());
    for root in &shared.roots {
        match tree_json(root.clone(), 0).await {
            Some(tree) => out.push(tree),
            None => out.push(json!({
                "path": root.get_name().unwrap_or_else(|| format!("supervisor-{}", root.get_id())),
                "actor": root.get_id().to_string(),
                "error": "not answering (stopped, or busy for longer than the inspect timeout)",
                "children": [],
            })),
        }
    }
    out
}

async fn trees(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "trees": all_trees(&shared).await }))
}

/// Finds the supervisor or child at `path` in JSON trees.
fn find_in<'a>(nodes: impl Iterator<Item = &'a Value>, path: &str) -> Option<&'a Value> {
    for node in nodes {
        if node["path"] == path {
            return Some(node);
        }
        let prefix = node["path"].as_str().unwrap_or_default();
        if !path.starts_with(prefix) {
            continue;
        }
        let Some(children) = node["children"].as_array() else {
            continue;
        };
        for child in children {
            if child["path"] == path {
                return Some(child);
            }
            if let Some(found) = find_in(std::iter::once(&child["tree"]), path) {
                return Some(found);
            }
        }
    }
    None
}

async fn tree_at(State(shared): State<Arc<Shared>>, Path(path): Path<String>) -> Response {
    let path = path.trim_end_matches('/');
    let trees = all_trees(&shared).await;
    match find_in(trees.iter(), path) {
        Some(found) => Json(found.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no supervisor or child at path {path:?}"),
        ),
    }
}

/// A child found by path, with its supervisor.
struct Found {
    sup: ActorRef<SupervisorMsg>,
    child: ChildSnapshot,
}

fn find_child(
    actor: ActorRef<SupervisorMsg>,
    path: String,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Option<Found>> + Send>> {
    Box::pin(async move {
        let snapshot = inspect(&actor).await?;
        for child in snapshot.children {
            let child_path = format!("{}/{}", snapshot.label, child.id);
            if child_path == path {
                return Some(Found {
                    sup: actor.clone(),
                    child,
                });
            }
            let below = path
                .strip_prefix(child_path.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
            if below && depth < MAX_DEPTH {
                if let Some(sup) = as_supervisor(&child) {
                    return find_child(sup, path, depth + 1).await;
                }
            }
        }
        None
    })
}

// ---------------------------------------------------------------------------
// Pools

fn pool_json(name: &str, pool: &dyn PoolView) -> Value {
    let stats = pool.stats();
    let workers: Vec<Value> = stats
        .workers
        .iter()
        .map(|w| {
            json!({
                "index": w.index,
                "processed": w.processed,
                "in_flight": w.in_flight,
                "restarts": w.restarts,
                "status": status_name(w.status),
            })
        })
        .collect();
    json!({
        "name": name,
        "path": pool.path(),
        "waiting": stats.waiting,
        "dead_letters": stats.dead_letters,
        "processed": stats.workers.iter().map(|w| w.processed).sum::<u64>(),
        "workers": workers,
    })
}

async fn pools(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let pools: Vec<Value> = shared
        .pools
        .iter()
        .map(|(name, pool)| pool_json(name, pool.as_ref()))
        .collect();
    Json(json!({ "pools": pools }))
}

async fn pool_named(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.pools.iter().find(|(n, _)| *n == name) {
        Some((name, pool)) => Json(pool_json(name, pool.as_ref())).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no pool named {name:?}")),
    }
}

// ---------------------------------------------------------------------------
// Cluster

async fn cluster(State(shared): State<Arc<Shared>>) -> Json<Value> {
    #[cfg(feature = "cluster")]
    if let Some(node) = &shared.node {
        return Json(cluster_json(&shared, node));
    }
    let _ = &shared;
    Json(json!({ "enabled": false, "peers": [] }))
}

#[cfg(feature = "cluster")]
fn cluster_json(shared: &Shared, node: &crate::cluster::Node) -> Value {
    use crate::cluster::{MemberStatus, PeerStatus};
    let history = lock!(shared.history.lock());
    let peers: Vec<Value> = node
        .peers()
        .into_iter()
        .map(|p| {
            let samples: Vec<Value> = history
                .get(&p.name)
                .map(|h| {
                    h.iter()
                        .map(|s| json!([s.at_ms, finite(s.phi), s.rtt_ms]))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "name": p.name,
                "addr": p.addr.to_string(),
                "status": match p.status {
                    PeerStatus::Up => "up",
                    PeerStatus::Suspect => "suspect",
                    PeerStatus::Down => "down",
                },
                "phi": finite(p.phi),
                "rtt_ms": p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                "last_heartbeat_ms_ago": p.last_heartbeat.map(|t| t.elapsed().as_millis() as u64),
                "down_reason": p.down_reason.map(|r| r.to_string()),
                "history": samples,
            })
        })
        .collect();
    let members: Vec<Value> = node
        .members()
        .into_iter()
        .map(|m| {
            json!({
                "name": m.name,
                "addr": m.addr.to_string(),
                "status": match m.status {
                    MemberStatus::Joining => "joining",
                    MemberStatus::Up => "up",
                    MemberStatus::Suspect => "suspect",
                    MemberStatus::Down => "down",
                    MemberStatus::Leaving => "leaving",
                    MemberStatus::Left => "left",
                },
            })
        })
        .collect();
    json!({
        "enabled": true,
        "node": node.name(),
        "addr": node.local_addr().to_string(),
        "peers": peers,
        "members": members,
    })
}

/// JSON has no infinity: a phi past `f64::MAX` shows as the largest number.
#[cfg(feature = "cluster")]
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        f64::MAX
    }
}

#[cfg(feature = "cluster")]
use super::remote::trees as node_trees;

/// Without the cluster there are no other nodes.
#[cfg(not(feature = "cluster"))]
async fn node_trees(Path(peer): Path<String>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no peer named {peer:?}: built without the cluster feature"),
    )
}

// ---------------------------------------------------------------------------
// Events

/// Filters of the event endpoints.
#[derive(Debug, Default, Deserialize)]
struct EventQuery {
    /// Comma-separated kinds (`restart,exit`); all when absent.
    kind: Option<String>,
    /// Only events about this path or below it.
    path: Option<String>,
    /// The newest this many (default 200).
    limit: Option<usize>,
}

/// An [`EventQuery`] checked once, applied to each event.
struct Filter {
    kinds: Option<Vec<String>>,
    path: Option<String>,
}

impl Filter {
    fn new(query: &EventQuery) -> Result<Self, ApiError> {
        let kinds = match &query.kind {
            None => None,
            Some(list) => {
                let kinds: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = kinds.iter().find(|k| kind_of(k).is_none()) {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("unknown event kind {bad:?}; known: exit, restart, escalation, intensity_exceeded, dead_letter, up, down, node, action"),
                    ));
                }
                Some(kinds)
            }
        };
        Ok(Filter {
            kinds,
            path: query.path.clone().filter(|p| !p.is_empty()),
        })
    }

    fn keeps(&self, event: &Event) -> bool {
        let kind_ok = self
            .kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| kind_of(k) == Some(event.kind)));
        let path_ok = self.path.as_ref().is_none_or(|p| {
            event.path == *p
                || event
                    .path
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        kind_ok && path_ok
    }
}

fn kind_of(name: &str) -> Option<EventKind> {
    Some(match name {
        "exit" => EventKind::Exit,
        "restart" => EventKind::Restart,
        "escalation" => EventKind::Escalation,
        "intensity_exceeded" => EventKind::IntensityExceeded,
        "dead_letter" => EventKind::DeadLetter,
        "up" => EventKind::Up,
        "down" => EventKind::Down,
        "node" => EventKind::Node,
        "action" => EventKind::Action,
        _ => return None,
    })
}

async fn events(State(shared): State<Arc<Shared>>, Query(query): Query<EventQuery>) -> Response {
    let filter = match Filter::new(&query) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let limit = query.limit.unwrap_or(200).min(RECENT_EVENTS);
    let recent = lock!(shared.recent.lock());
    let mut kept: Vec<Arc<Event>> = recent
        .iter()
        .rev()
        .filter(|e| filter.keeps(e))
        .take(limit)
        .cloned()
        .collect();
    drop(recent);
    kept.reverse();
    let kept: Vec<&Event> = kept.iter().map(|e| &**e).collect();
    Json(json!({
        "events": kept,
        "lagged": shared.lagged.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn stream(State(shared): State<Arc<Shared>>, Query(query): Query<EventQuery>) -> Response {
    let filter = match Filter::new(&query) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let rx = shared.live.subscribe();
    let stop = shared.stop.clone();
    let events = futures::stream::unfold(
        (rx, filter, shared, stop),
        |(mut rx, filter, shared, mut stop)| async move {
            loop {
                let received = tokio::select! {
                    received = rx.recv() => received,
                    _ = stop.wait_for(|stopped| *stopped) => return None,
                };
                match received {
                    Ok(event) if filter.keeps(&event) => {
                        let data = serde_json::to_string(&*event).unwrap_or_default();
                        let sse = SseEvent::default().event("observed").data(data);
                        return Some((Ok::<_, Infallible>(sse), (rx, filter, shared, stop)));
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // This browser reads slower than events come: the
                        // oldest were dropped for it, never waited for.
                        shared.lagged.fetch_add(missed, Ordering::Relaxed);
                        #[cfg(feature = "metrics")]
                        ::metrics::counter!(crate::metrics::OBSERVER_LAGGED_EVENTS)
                            .increment(missed);
                        let sse = SseEvent::default()
                            .event("lagged")
                            .data(json!({ "missed": missed }).to_string());
                        return Some((Ok(sse), (rx, filter, shared, stop)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

// ---------------------------------------------------------------------------
// Actions

/// Whether this request may act.
fn allowed(actions: &Actions, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    match actions {
        Actions::Off => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "actions are disabled on this observer (ObserverBuilder::actions)",
        )),
        Actions::Loopback if peer.ip().is_loopback() => Ok(()),
        Actions::Loopback => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "actions are allowed from loopback only, not from {}",
                peer.ip()
            ),
        )),
        Actions::Token(token) => {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if constant_time_eq(sent.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "send the observer's token as `Authorization: Bearer <token>`",
                ))
            }
        }
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn act(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((action, path)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = allowed(&shared.actions, peer, &headers) {
        return refused.into_response();
    }
    if !matches!(action.as_str(), "kill" | "terminate" | "restart") {
        return error(
            StatusCode::NOT_FOUND,
            format!("no action {action:?}; actions are kill, terminate and restart"),
        );
    }
    let path = path.trim_end_matches('/').to_string();
    let mut found = None;
    for root in &shared.roots {
        found = find_child(root.clone(), path.clone(), 0).await;
        if found.is_some() {
            break;
        }
    }
    let Some(Found { sup, child }) = found else {
        return error(StatusCode::NOT_FOUND, format!("no child at path {path:?}"));
    };
    let outcome: Result<(), SupervisorError> = match action.as_str() {
        "kill" => match &child.actor {
            Some(cell) => {
                cell.kill();
                Ok(())
            }
            None => Err(SupervisorError::NotFound(format!(
                "{path} has no running incarnation to kill"
            ))),
        },
        "terminate" => {
            let key = match &child.actor {
                Some(cell) => ChildKey::Actor(cell.clone()),
                None => ChildKey::Id(child.id.clone()),
            };
            crate::supervisor::handle::call(&sup, |port| SupervisorMsg::TerminateChild(key, port))
                .await
                .and_then(|r| r)
        }
        _ => {
            let id = child.id.clone();
            crate::supervisor::handle::call(&sup, |port| SupervisorMsg::RestartChild(id, port))
                .await
                .and_then(|r| r.map(|_| ()))
        }
    };
    match outcome {
        Ok(()) => {
            tracing::info!(child = %path, %action, from = %peer, "observer action");
            shared.record(Arc::new(Event::new(
                EventKind::Action,
                path.clone(),
                format!("{action} from {}", peer.ip()),
            )));
            Json(json!({ "ok": true, "action": action, "path": path })).into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind, path.to_string(), String::new())
    }

    #[test]
    fn filters_keep_a_path_and_what_is_below_it_not_its_namesakes() {
        let query = EventQuery {
            kind: Some("restart, exit".into()),
            path: Some("app/storage".into()),
            limit: None,
        };
        let f = Filter::new(&query).expect("valid filter");
        let table = [
            (EventKind::Restart, "app/storage", true),
            (EventKind::Exit, "app/storage/db", true),
            (EventKind::Restart, "app/storage2", false),
            (EventKind::DeadLetter, "app/storage/db", false),
            (EventKind::Exit, "app", false),
        ];
        for (kind, path, kept) in table {
            assert_eq!(f.keeps(&event(kind, path)), kept, "{kind:?} {path}");
        }
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        let query = EventQuery {
            kind: Some("restart,bogus".into()),
            ..EventQuery::default()
        };
        assert!(Filter::new(&query).is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
