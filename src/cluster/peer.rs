//! One peer as this node sees it: its state, its current session's link,
//! the calls and monitors waiting on it.
//!
//! A `Peer` outlives its sessions: [`RemoteRef`](super::RemoteRef)s hold it,
//! so they keep working after a reconnection. Calls and monitors remember
//! the session they were sent on and fail with that session's reason when
//! it ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::{ClusterError, DownReason};
use super::events::{EventBus, NodeEvent, PeerInfo, PeerStatus, RemoteDeadLetter};
use super::outbox::Push;
use super::remote_ref::ActorDownReason;
use super::session::Link;
use super::wire::{Frame, Refusal};

/// A call or lookup waiting for its answer.
struct PendingCall {
    session: u64,
    actor: Arc<str>,
    tx: oneshot::Sender<Result<Bytes, ClusterError>>,
}

/// A monitor waiting for its actor to go down.
struct PendingMonitor {
    session: u64,
    tx: oneshot::Sender<ActorDownReason>,
}

/// Removes and returns the entries of `map` that belong to `session`.
fn take_session<V>(
    map: &Mutex<HashMap<u64, V>>,
    session: u64,
    session_of: impl Fn(&V) -> u64,
) -> Vec<V> {
    let mut map = lock!(map.lock());
    let ids: Vec<u64> = map
        .iter()
        .filter(|(_, v)| session_of(v) == session)
        .map(|(id, _)| *id)
        .collect();
    ids.iter().filter_map(|id| map.remove(id)).collect()
}

/// The mutable state shown in [`PeerInfo`].
pub(crate) struct PeerState {
    pub(crate) status: PeerStatus,
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u64,
    /// Whether this node dialed the current (or last) session.
    pub(crate) we_dialed: bool,
    pub(crate) session: u64,
    /// When the current session was installed.
    pub(crate) since: Instant,
    pub(crate) phi: f64,
    pub(crate) rtt: Option<Duration>,
    pub(crate) last_heartbeat: Option<Instant>,
    pub(crate) down_reason: Option<DownReason>,
}

/// A peer node.
pub(crate) struct Peer {
    name: String,
    events: Arc<EventBus>,
    link: RwLock<Option<Arc<Link>>>,
    pub(crate) state: Mutex<PeerState>,
    calls: Mutex<HashMap<u64, PendingCall>>,
    monitors: Mutex<HashMap<u64, PendingMonitor>>,
    next_id: AtomicU64,
    /// Where to reconnect: set when this node dialed the peer.
    pub(crate) dial_addr: Mutex<Option<SocketAddr>>,
    /// Serializes reconnection loops (at most one runs).
    pub(crate) reconnecting: tokio::sync::Mutex<()>,
    /// This peer's metric handles.
    pub(crate) metrics: crate::metrics::PeerMetrics,
}

impl Peer {
    pub(crate) fn new(name: String, addr: SocketAddr, events: Arc<EventBus>) -> Self {
        Peer {
            metrics: crate::metrics::PeerMetrics::new(&name),
            name,
            events,
            link: RwLock::new(None),
            state: Mutex::new(PeerState {
                status: PeerStatus::Down,
                addr,
                incarnation: 0,
                we_dialed: false,
                session: 0,
                since: Instant::now(),
                phi: 0.0,
                rtt: None,
                last_heartbeat: None,
                down_reason: None,
            }),
            calls: Mutex::new(HashMap::new()),
            monitors: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            dial_addr: Mutex::new(None),
            reconnecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The peer's node name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The current session's link, or the error that says why there is none.
    pub(crate) fn link(&self) -> Result<Arc<Link>, ClusterError> {
        // Lock order is `state` then `link`: release `link` before the
        // error path takes `state`.
        match self.current_link() {
            Some(l) if l.is_open() => Ok(l),
            _ => Err(self.not_connected_error()),
        }
    }

    /// The current session's link, open or not (never takes `state`).
    pub(crate) fn current_link(&self) -> Option<Arc<Link>> {
        lock!(self.link.read()).clone()
    }

    /// `NodeDown` with the reason if the peer went down, else `NotConnected`.
    pub(crate) fn not_connected_error(&self) -> ClusterError {
        match lock!(self.state.lock()).down_reason.clone() {
            // It is this node that is gone, not the peer.
            Some(DownReason::LocalShutdown) => ClusterError::Shutdown,
            Some(reason) => ClusterError::NodeDown {
                peer: self.name.clone(),
                reason,
            },
            None => ClusterError::NotConnected {
                peer: self.name.clone(),
            },
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        lock!(self.state.lock()).status != PeerStatus::Down
    }

    pub(crate) fn info(&self) -> PeerInfo {
        let st = lock!(self.state.lock());
        PeerInfo {
            name: self.name.clone(),
            addr: st.addr,
            status: st.status,
            phi: st.phi,
            rtt: st.rtt,
            last_heartbeat: st.last_heartbeat,
            down_reason: st.down_reason.clone(),
        }
    }

    pub(crate) fn emit(&self, event: NodeEvent) {
        self.events.emit(event);
    }

    /// Hands a cast that was not delivered to the dead-letter handler.
    pub(crate) fn dead_letter(&self, letter: RemoteDeadLetter) {
        self.events.dead_letter(letter);
    }

    /// Makes `link` the current session. The caller holds `state` and has
    /// already ended any previous session.
    pub(crate) fn install(&self, st: &mut PeerState, link: Arc<Link>) {
        st.status = PeerStatus::Up;
        st.session = link.session;
        st.since = Instant::now();
        st.down_reason = None;
        st.phi = 0.0;
        *lock!(self.link.write()) = Some(link);
    }

    /// Ends session `session` with `reason`: fails the calls and monitors
    /// sent on it. Returns whether it was the current session (the peer is
    /// now down and a `Down` event was published).
    pub(crate) fn end_session(&self, session: u64, reason: &DownReason) -> bool {
        let was_current = {
            let mut st = lock!(self.state.lock());
            let current = st.session == session && st.status != PeerStatus::Down;
            if current {
                self.metrics.down();
                st.status = PeerStatus::Down;
                st.down_reason = Some(reason.clone());
                let mut link = lock!(self.link.write());
                if link.as_ref().is_some_and(|l| l.session == session) {
                    *link = None;
                }
            }
            current
        };
        self.fail_session(session, reason);
        if was_current {
            self.emit(NodeEvent::Down {
                peer: self.name.clone(),
                reason: reason.clone(),
            });
        }
        was_current
    }

    /// Fails everything still waiting on `session`.
    fn fail_session(&self, session: u64, reason: &DownReason) {
        let calls = take_session(&self.calls, session, |c| c.session);
        for c in calls {
            let _ = c.tx.send(Err(ClusterError::NodeDown {
                peer: self.name.clone(),
                reason: reason.clone(),
            }));
        }
        let monitors = take_session(&self.monitors, session, |m| m.session);
        for m in monitors {
            let _ = m.tx.send(ActorDownReason::NodeDown(reason.clone()));
        }
    }

    /// The error of a send refused because the session's buffer is full.
    pub(crate) fn busy_error(&self, queued: usize, limit: usize) -> ClusterError {
        ClusterError::Busy {
            peer: self.name.clone(),
            queued,
            limit,
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request (a call or a lookup) on `link` — the frame `encode`
    /// builds around the request's id — and waits up to `timeout` for its
    /// answer. The pending entry is forgotten on every failure.
    pub(crate) async fn request(
        &self,
        link: &Link,
        actor: &Arc<str>,
        encode: impl FnOnce(u64) -> Result<Bytes, ClusterError>,
        timeout: Duration,
    ) -> Result<Bytes, ClusterError> {
        let (id, rx) = self.register_call(link.session, actor);
        let sent = encode(id).and_then(|bytes| match link.send_data(&bytes) {
            Push::Queued => Ok(()),
            Push::Busy { queued } => Err(self.busy_error(queued, link.outbox.limit())),
            Push::Overflow { .. } | Push::Closed => Err(self.not_connected_error()),
        });
        if let Err(e) = sent {
            self.forget_call(id);
            return Err(e);
        }
        let sent_at = Instant::now();
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ClusterError::Shutdown),
            Err(_) => {
                self.forget_call(id);
                Err(ClusterError::Timeout {
                    peer: self.name.clone(),
                    actor: actor.to_string(),
                    after: timeout,
                })
            }
        };
        self.metrics.request(sent_at.elapsed(), &answer);
        answer
    }

    /// Registers a call (or lookup) sent on `session` to `actor`.
    fn register_call(
        &self,
        session: u64,
        actor: &Arc<str>,
    ) -> (u64, oneshot::Receiver<Result<Bytes, ClusterError>>) {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        lock!(self.calls.lock()).insert(
            id,
            PendingCall {
                session,
                actor: actor.clone(),
                tx,
            },
        );
        (id, rx)
    }

    /// Forgets a call that timed out or was never sent.
    fn forget_call(&self, id: u64) {
        lock!(self.calls.lock()).remove(&id);
    }

    /// Answers call `id` with the reply's payload, or the peer's refusal.
    /// An id nobody waits for (the call timed out) is ignored.
    pub(crate) fn complete_call(&self, id: u64, result: Result<Bytes, Refusal>) {
        let Some(call) = lock!(self.calls.lock()).remove(&id) else {
            tracing::debug!(peer = %self.name, id, "reply for a call nobody waits for (timed out)");
            return;
        };
        let answer = result.map_err(|refusal| ClusterError::Refused {
            peer: self.name.clone(),
            actor: call.actor.to_string(),
            refusal,
        });
        let _ = call.tx.send(answer);
    }

    /// Registers a monitor sent on `session`.
    pub(crate) fn register_monitor(
        &self,
        session: u64,
    ) -> (u64, oneshot::Receiver<ActorDownReason>) {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        lock!(self.monitors.lock()).insert(id, PendingMonitor { session, tx });
        (id, rx)
    }

    /// Fires monitor `id`.
    pub(crate) fn fire_monitor(&self, id: u64, reason: ActorDownReason) {
        if let Some(m) = lock!(self.monitors.lock()).remove(&id) {
            let _ = m.tx.send(reason);
        }
    }

    /// Cancels monitor `id` (dropped unfired) and tells the peer.
    pub(crate) fn cancel_monitor(&self, id: u64) {
        if lock!(self.monitors.lock()).remove(&id).is_some() {
            if let Ok(link) = self.link() {
                link.send_plain(&Frame::Demonitor { id });
            }
        }
    }

    /// Records a heartbeat's arrival and the detector's current phi.
    pub(crate) fn observe(&self, session: u64, phi: f64, suspect: bool, beat: Option<Instant>) {
        let mut st = lock!(self.state.lock());
        if st.session != session || st.status == PeerStatus::Down {
            return;
        }
        st.phi = phi;
        self.metrics.phi(phi, suspect);
        let status = if suspect {
            PeerStatus::Suspect
        } else {
            PeerStatus::Up
        };
        if status != st.status {
            // Phi crossing half the threshold, either way.
            tracing::info!(peer = %self.name, phi, ?status, "peer suspicion changed");
            st.status = status;
        }
        if beat.is_some() {
            st.last_heartbeat = beat;
        }
    }

    /// Records a heartbeat round trip.
    pub(crate) fn observe_rtt(&self, session: u64, rtt: Duration) {
        let mut st = lock!(self.state.lock());
        if st.session == session {
            self.metrics.rtt(rtt);
            st.rtt = Some(rtt);
        }
    }
}
