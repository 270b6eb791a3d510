//! Nodes in one process over loopback TCP (DESIGN §5): casts and calls,
//! per-sender ordering, lookups and their refusals, three nodes and a relay,
//! node events through shutdown and reconnection, remote monitors, reply
//! ports that are dropped or never answered, dead letters, export rules,
//! bytes that break the protocol before the handshake, and configuration
//! errors.
//!
//! Every wait is bounded; events are awaited rather than slept for. The
//! nodes beat every 50 ms (so round-trip times show up quickly) but tolerate
//! a long pause: no test here relies on the failure detector, and a busy
//! test machine must not make a peer look dead.

#![cfg(all(feature = "macros", feature = "cluster"))]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{HandshakeError, WireError};
use ractor_otp::{
    ActorDownReason, Backoff, ClusterError, DownReason, Node, NodeConfig, NodeEvent, NodeEvents,
    PeerStatus, Refusal, RemoteMessage, RemoteRef, RemoteReply, UndeliveredReason,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Settings and waiting

const COOKIE: &str = "cluster-nodes-test-cookie";

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(3);

/// The timeout of calls that are expected to be answered.
const CALL: Duration = Duration::from_secs(2);

/// Well under every timeout in play: what "promptly" means here.
const PROMPT: Duration = Duration::from_secs(1);

/// A node configuration with fast heartbeats, a patient failure detector
/// and quick reconnection.
fn config(name: &str) -> NodeConfig {
    NodeConfig::new(name)
        .cookie(COOKIE)
        .heartbeat_interval(Duration::from_millis(50))
        .acceptable_pause(Duration::from_secs(1))
        .min_std_dev(Duration::from_millis(50))
        .reconnect(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
        .request_timeout(CALL)
}

async fn start(name: &str) -> Node {
    start_with(config(name)).await
}

async fn start_with(config: NodeConfig) -> Node {
    let name = config.name().to_string();
    Node::start(config)
        .await
        .unwrap_or_else(|e| panic!("node {name} starts: {e}"))
}

/// `fut`, or a failure saying what did not happen within [`WAIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"))
}

/// The next event matching `pred`, skipping the others; fails after
/// [`WAIT`] listing what was skipped.
async fn next_event(
    events: &mut NodeEvents,
    what: &str,
    pred: impl Fn(&NodeEvent) -> bool,
) -> NodeEvent {
    let mut skipped = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(e) if pred(&e) => return Some(e),
                Some(e) => skipped.push(e),
                None => return None,
            }
        }
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the events ended before {what}; skipped {skipped:?}"),
        Err(_) => panic!("no {what} within {WAIT:?}; skipped {skipped:?}"),
    }
}

/// Fails if a `Down` event for `peer` has been published so far.
fn assert_no_down(events: &mut NodeEvents, peer: &str) {
    while let Some(e) = events.try_recv() {
        if let NodeEvent::Down { peer: p, reason } = &e {
            assert_ne!(
                p, peer,
                "the session with {peer} must stay up, went down: {reason}"
            );
        }
    }
}

/// Polls `cond` every 10 ms until it holds; fails after [`WAIT`]. For
/// state that no event announces (round-trip times, heartbeats).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_up(peer: &str) -> impl Fn(&NodeEvent) -> bool + '_ {
    move |e| matches!(e, NodeEvent::Up { peer: p } if p == peer)
}

fn is_down(peer: &str) -> impl Fn(&NodeEvent) -> bool + '_ {
    move |e| matches!(e, NodeEvent::Down { peer: p, .. } if p == peer)
}

/// Connects `dialer` to `acceptor` and waits for `Up` on both sides.
async fn connect(dialer: &Node, acceptor: &Node) {
    let mut d = dialer.subscribe();
    let mut a = acceptor.subscribe();
    let info = within("connect", dialer.connect(acceptor.local_addr()))
        .await
        .unwrap_or_else(|e| panic!("{} connects to {}: {e}", dialer.name(), acceptor.name()));
    assert_eq!(info.name, acceptor.name());
    assert_eq!(info.status, PeerStatus::Up);
    next_event(&mut d, "Up on the dialer", is_up(acceptor.name())).await;
    next_event(&mut a, "Up on the acceptor", is_up(dialer.name())).await;
}

/// Two nodes, `a` connected to `b`.
async fn pair() -> (Node, Node) {
    let a = start("a").await;
    let b = start("b").await;
    connect(&a, &b).await;
    (a, b)
}

// ---------------------------------------------------------------------------
// Actors

/// The store's messages: it remembers the numbers it is given.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Msg {
    /// Remember a number.
    Put(u64),
    /// Every number remembered, in arrival order.
    Get(RemoteReply<Vec<u64>>),
    /// Answers `2 * n`.
    Echo(u64, RemoteReply<u64>),
    /// Keeps the reply port and never answers.
    Hold(RemoteReply<()>),
    /// Drops the reply port unanswered.
    DropReply(RemoteReply<()>),
    /// A payload of any size; ignored.
    Blob(Vec<u8>),
    /// Answers with `n` bytes (the send's failure is ignored).
    Big(usize, RemoteReply<Vec<u8>>),
    /// Stops the actor with the reason "asked to stop".
    Stop,
}

const STOP_REASON: &str = "asked to stop";

#[derive(Default)]
struct StoreState {
    seen: Vec<u64>,
    held: Vec<RemoteReply<()>>,
}

#[derive(Clone)]
struct Store;

impl Actor for Store {
    type Msg = Msg;
    type State = StoreState;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<StoreState, ActorProcessingErr> {
        Ok(StoreState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut StoreState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Put(n) => state.seen.push(n),
            Msg::Get(reply) => {
                reply.send(state.seen.clone());
            }
            Msg::Echo(n, reply) => {
                reply.send(2 * n);
            }
            Msg::Hold(reply) => state.held.push(reply),
            Msg::DropReply(reply) => drop(reply),
            Msg::Blob(_) => {}
            Msg::Big(n, reply) => {
                reply.send(vec![1; n]);
            }
            Msg::Stop => myself.stop(Some(STOP_REASON.into())),
        }
        Ok(())
    }
}

async fn spawn_store() -> ActorRef<Msg> {
    Actor::spawn(None, Store, ())
        .await
        .expect("the store starts")
        .0
}

/// Another message type, with an explicit tag, for type mismatches.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "test.Other.v1")]
enum Other {
    Ping(RemoteReply<String>),
}

struct OtherActor;

impl Actor for OtherActor {
    type Msg = Other;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Other>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Other>,
        msg: Other,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Other::Ping(reply) = msg;
        reply.send("pong".to_string());
        Ok(())
    }
}

async fn spawn_other() -> ActorRef<Other> {
    Actor::spawn(None, OtherActor, ())
        .await
        .expect("the other actor starts")
        .0
}

/// Relays to a store on another node, then reports what that store holds.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Fwd {
    Relay(u64, RemoteReply<Vec<u64>>),
}

struct Forwarder;

impl Actor for Forwarder {
    type Msg = Fwd;
    type State = RemoteRef<Msg>;
    type Arguments = RemoteRef<Msg>;

    async fn pre_start(
        &self,
        _: ActorRef<Fwd>,
        target: RemoteRef<Msg>,
    ) -> Result<RemoteRef<Msg>, ActorProcessingErr> {
        Ok(target)
    }

    async fn handle(
        &self,
        _: ActorRef<Fwd>,
        msg: Fwd,
        target: &mut RemoteRef<Msg>,
    ) -> Result<(), ActorProcessingErr> {
        let Fwd::Relay(n, reply) = msg;
        target.cast(Msg::Put(n))?;
        let seen = target.call(Msg::Get, CALL).await?;
        reply.send(seen);
        Ok(())
    }
}

/// `b` exports a fresh store as `store`; `a` looks it up.
async fn exported_store(a: &Node, b: &Node) -> (ActorRef<Msg>, RemoteRef<Msg>) {
    let store = spawn_store().await;
    b.export("store", store.clone()).expect("`store` is free");
    let remote = within("lookup", a.lookup::<Msg>(b.name(), "store"))
        .await
        .expect("`store` is exported for Msg");
    (store, remote)
}

async fn seen(remote: &RemoteRef<Msg>) -> Vec<u64> {
    remote.call(Msg::Get, CALL).await.expect("Get is answered")
}

// ---------------------------------------------------------------------------
// 1. Casts and calls

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_returns_the_handlers_reply_and_casts_arrive() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    assert_eq!(remote.peer(), "b");
    assert_eq!(remote.actor(), "store");

    assert_eq!(remote.call(|r| Msg::Echo(21, r), CALL).await, Ok(42));
    remote.cast(Msg::Put(7)).expect("cast is sent");
    assert_eq!(seen(&remote).await, vec![7]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_and_calls_from_one_sender_arrive_in_order_exactly_once() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    for n in 0..1_000 {
        remote.cast(Msg::Put(n)).expect("cast is sent");
    }
    // The call travels behind the casts on the same session.
    let got = seen(&remote).await;
    assert_eq!(
        got,
        (0..1_000).collect::<Vec<u64>>(),
        "every cast arrives once, in send order, before the later call"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_concurrent_tasks_each_get_their_own_answer() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let remote = remote.clone();
            tokio::spawn(async move {
                for i in 0..25u64 {
                    let n = t * 1_000 + i;
                    let got = remote.call(|r| Msg::Echo(n, r), CALL).await;
                    assert_eq!(got, Ok(2 * n), "task {t}, call {i}");
                }
            })
        })
        .collect();
    for task in tasks {
        within("concurrent calls", task)
            .await
            .expect("a calling task panicked");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_above_the_callers_frame_limit_is_refused_not_lost() {
    let a = start_with(config("a").max_frame_size(4096)).await;
    let b = start("b").await;
    connect(&a, &b).await;
    let (_store, remote) = exported_store(&a, &b).await;
    let started = Instant::now();
    let got = remote
        .call(|r| Msg::Big(10_000, r), Duration::from_secs(5))
        .await;
    assert!(
        matches!(
            &got,
            Err(ClusterError::Refused {
                refusal: Refusal::ReplyEncode(_),
                ..
            })
        ),
        "{got:?}"
    );
    assert!(started.elapsed() < PROMPT, "not by timeout");
    let small = remote.call(|r| Msg::Big(100, r), CALL).await;
    assert_eq!(small, Ok(vec![1; 100]));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dialing_each_other_at_once_keep_one_session() {
    let a = start("a").await;
    let b = start("b").await;
    let (to_b, to_a) = within("both connects", async {
        tokio::join!(a.connect(b.local_addr()), b.connect(a.local_addr()))
    })
    .await;
    to_b.expect("a connects to b");
    to_a.expect("b connects to a");
    // Both sides settle on the connection dialed by the smaller name, "a".
    wait_until("both sides keep the session a dialed", || {
        let on_a = a.peer("b").expect("a knows b");
        let on_b = b.peer("a").expect("b knows a");
        on_a.status == PeerStatus::Up
            && on_a.addr == b.local_addr()
            && on_b.status == PeerStatus::Up
            && on_b.addr != a.local_addr()
    })
    .await;
    let (_s1, on_b) = exported_store(&a, &b).await;
    let (_s2, on_a) = exported_store(&b, &a).await;
    for n in 0..20 {
        assert_eq!(on_b.call(|r| Msg::Echo(n, r), CALL).await, Ok(2 * n));
        assert_eq!(on_a.call(|r| Msg::Echo(n, r), CALL).await, Ok(2 * n));
    }
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_again_to_a_connected_peer_keeps_the_session() {
    let (a, b) = pair().await;
    let mut on_a = a.subscribe();
    let (_store, remote) = exported_store(&a, &b).await;
    let mut pending = Box::pin(remote.call(Msg::Hold, Duration::from_millis(500)));
    tokio::select! {
        biased;
        r = &mut pending => panic!("Hold is never answered: {r:?}"),
        () = std::future::ready(()) => {}
    }
    let info = within("connect again", a.connect(b.local_addr()))
        .await
        .expect("connecting again succeeds");
    assert_eq!(info.status, PeerStatus::Up);
    assert_eq!(remote.call(|r| Msg::Echo(3, r), CALL).await, Ok(6));
    let held = pending.await;
    assert!(
        matches!(held, Err(ClusterError::Timeout { .. })),
        "a call pending on the session is not failed by connecting again: {held:?}"
    );
    assert_no_down(&mut on_a, "b");
    a.shutdown().await;
    b.shutdown().await;
}

/// `b` dialed `a`; `a` now connects to `b` too (a seed list). The smaller
/// name connecting would win a simultaneous dial, but these did not cross:
/// the established session stays, nothing pending on it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_back_to_a_peer_that_dialed_us_keeps_the_session() {
    let a = start("a").await;
    let b = start("b").await;
    connect(&b, &a).await;
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();
    // `a`'s store, called from `b`, with a call held open.
    let (_store, remote) = exported_store(&b, &a).await;
    let mut pending = Box::pin(remote.call(Msg::Hold, Duration::from_millis(500)));
    tokio::select! {
        biased;
        r = &mut pending => panic!("Hold is never answered: {r:?}"),
        () = std::future::ready(()) => {}
    }
    let info = within("connect back", a.connect(b.local_addr()))
        .await
        .expect("connecting back succeeds");
    assert_eq!((info.name.as_str(), info.status), ("b", PeerStatus::Up));
    let held = pending.await;
    assert!(
        matches!(held, Err(ClusterError::Timeout { .. })),
        "the held call is still pending on the same session: {held:?}"
    );
    assert_eq!(remote.call(|r| Msg::Echo(4, r), CALL).await, Ok(8));
    assert_no_down(&mut on_a, "b");
    assert_no_down(&mut on_b, "a");
    a.shutdown().await;
    b.shutdown().await;
}

/// An event stream ends (`None`) once its node has shut down, after the
/// events published until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_end_after_shutdown() {
    let (a, b) = pair().await;
    let mut events = a.subscribe();
    a.shutdown().await;
    let mut seen = Vec::new();
    while let Some(e) = within("the stream to end", events.recv()).await {
        seen.push(e);
    }
    assert!(
        seen.iter().any(|e| matches!(
            e,
            NodeEvent::Down { peer, reason: DownReason::LocalShutdown } if peer == "b"
        )),
        "the local shutdown's Down comes before the end: {seen:?}"
    );
    b.shutdown().await;
}

/// Re-exporting a name right after its actor stopped still tells the
/// peers that monitored the old actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_exporting_a_stopped_name_fires_the_old_monitors() {
    let (a, b) = pair().await;
    let (store, remote) = exported_store(&a, &b).await;
    let monitor = a.monitor(&remote).expect("b is up");
    // The monitor is registered on b once a call after it is answered.
    assert_eq!(remote.call(|r| Msg::Echo(1, r), CALL).await, Ok(2));
    store.stop(None);
    within("the old store to stop", async {
        while store.get_status() != ractor::ActorStatus::Stopped {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    b.export("store", spawn_store().await)
        .expect("a stopped actor's name is free");
    let down = within("the old monitor", monitor).await;
    assert!(
        matches!(down.reason, ActorDownReason::Exited(_)),
        "{down:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Names and tags the wire would not carry are refused where they are given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_or_empty_names_are_refused_locally() {
    let (a, b) = pair().await;
    let long = "n".repeat(2000);
    assert!(matches!(
        b.export(&long, spawn_store().await),
        Err(ClusterError::InvalidName(_))
    ));
    assert!(matches!(
        b.export("", spawn_store().await),
        Err(ClusterError::InvalidName(_))
    ));
    assert!(matches!(
        a.lookup::<Msg>("b", &long).await,
        Err(ClusterError::InvalidName(_))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_clearly_without_a_listener_or_with_the_same_name() {
    let a = start("a").await;
    // A port nobody listens on any more.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let err = a.connect(free).await.expect_err("nobody listens");
    assert!(
        matches!(&err, ClusterError::Connect { addr, .. } if *addr == free),
        "{err:?}"
    );
    let twin = start("a").await;
    let err = a.connect(twin.local_addr()).await.expect_err("same name");
    assert!(
        matches!(
            &err,
            ClusterError::Handshake {
                reason: HandshakeError::SameName(_) | HandshakeError::Rejected(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(a.peers().is_empty(), "no peer was added");
    a.shutdown().await;
    twin.shutdown().await;
}

// ---------------------------------------------------------------------------
// 2. Lookup

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_refuses_unknown_names_and_other_message_types() {
    let (a, b) = pair().await;
    let (_store, _remote) = exported_store(&a, &b).await;

    let err = a
        .lookup::<Msg>("b", "nobody")
        .await
        .expect_err("not exported");
    assert_eq!(
        err,
        ClusterError::Refused {
            peer: "b".into(),
            actor: "nobody".into(),
            refusal: Refusal::NotExported,
        }
    );

    let err = a
        .lookup::<Other>("b", "store")
        .await
        .expect_err("wrong type");
    assert_eq!(
        err,
        ClusterError::Refused {
            peer: "b".into(),
            actor: "store".into(),
            refusal: Refusal::TagMismatch {
                expected: "Msg".into(),
                found: "test.Other.v1".into(),
            },
        }
    );
    assert_eq!(<Msg as RemoteMessage>::TAG, "Msg");

    let err = a
        .lookup::<Msg>("z", "store")
        .await
        .expect_err("no such peer");
    assert_eq!(err, ClusterError::NotConnected { peer: "z".into() });
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. Three nodes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_see_each_other_and_relay_a_message() {
    let a = start("a").await;
    let b = start("b").await;
    let c = start("c").await;
    connect(&a, &b).await;
    connect(&a, &c).await;
    connect(&b, &c).await;

    for (node, others) in [(&a, ["b", "c"]), (&b, ["a", "c"]), (&c, ["a", "b"])] {
        let peers = node.peers();
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, others, "{} knows the other two, sorted", node.name());
        wait_until("every peer up with a round trip and a heartbeat", || {
            node.peers().iter().all(|p| {
                p.status == PeerStatus::Up
                    && p.rtt.is_some()
                    && p.last_heartbeat.is_some()
                    && p.down_reason.is_none()
            })
        })
        .await;
    }

    // a → b's forwarder → c's store, and c's answer back along the chain.
    let store = spawn_store().await;
    c.export("store", store).expect("free name");
    let on_c = b
        .lookup::<Msg>("c", "store")
        .await
        .expect("b finds c's store");
    let (fwd, _) = Actor::spawn(None, Forwarder, on_c)
        .await
        .expect("the forwarder starts");
    b.export("fwd", fwd).expect("free name");
    let relay = a
        .lookup::<Fwd>("b", "fwd")
        .await
        .expect("a finds b's forwarder");
    let got = relay.call(|r| Fwd::Relay(42, r), CALL).await;
    assert_eq!(got, Ok(vec![42]), "c's store saw what a sent through b");
    let direct = a
        .lookup::<Msg>("c", "store")
        .await
        .expect("a finds c's store");
    assert_eq!(seen(&direct).await, vec![42]);

    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

// ---------------------------------------------------------------------------
// 4. Events

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_peer_shutdown_there_and_local_shutdown_here() {
    let (a, b) = pair().await;
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();
    b.shutdown().await;
    assert!(b.is_shut_down());

    let e = next_event(&mut on_a, "Down on a", is_down("b")).await;
    assert!(
        matches!(
            &e,
            NodeEvent::Down {
                reason: DownReason::PeerShutdown(_),
                ..
            }
        ),
        "a hears b's goodbye: {e:?}"
    );
    let e = next_event(&mut on_b, "Down on b", is_down("a")).await;
    assert_eq!(
        e,
        NodeEvent::Down {
            peer: "a".into(),
            reason: DownReason::LocalShutdown,
        }
    );
    let info = a.peer("b").expect("a still knows b");
    assert_eq!(info.status, PeerStatus::Down);
    assert!(matches!(
        info.down_reason,
        Some(DownReason::PeerShutdown(_))
    ));
    b.shutdown().await; // idempotent
    a.shutdown().await;
}

/// Starts a node on `addr`, retrying while the previous owner of the port
/// lets go of it.
async fn restart_on(config: NodeConfig) -> Node {
    let deadline = Instant::now() + WAIT;
    loop {
        match Node::start(config.clone()).await {
            Ok(node) => return node,
            Err(ClusterError::Bind { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the node restarts on its old address: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_reconnects_to_a_restarted_peer_and_remote_refs_follow() {
    let (a, b) = pair().await;
    let addr = b.local_addr();
    let mut on_a = a.subscribe();
    let (store, remote) = exported_store(&a, &b).await;
    remote.cast(Msg::Put(1)).expect("cast is sent");
    assert_eq!(seen(&remote).await, vec![1]);

    // A call pending when the peer goes away fails with NodeDown. Its
    // first poll sends it; the store holds its port once a later call on
    // the session is answered.
    let mut pending = Box::pin(remote.call(Msg::Hold, Duration::from_secs(10)));
    tokio::select! {
        biased;
        r = &mut pending => panic!("Hold is never answered: {r:?}"),
        () = std::future::ready(()) => {}
    }
    assert_eq!(seen(&remote).await, vec![1]);
    b.shutdown().await;
    store.stop(None);

    let started = Instant::now();
    let failed = within("the pending call fails", pending).await;
    assert!(
        matches!(
            &failed,
            Err(ClusterError::NodeDown { peer, reason: DownReason::PeerShutdown(_) }) if peer == "b"
        ),
        "a call pending across the shutdown fails with NodeDown: {failed:?}"
    );
    assert!(
        started.elapsed() < PROMPT,
        "it fails when b leaves, not by timeout"
    );
    next_event(&mut on_a, "Down on a", is_down("b")).await;
    assert!(
        matches!(
            remote.cast(Msg::Put(2)).map_err(ClusterError::from),
            Err(ClusterError::NodeDown { .. })
        ),
        "casts fail at once while b is down"
    );
    assert!(matches!(
        a.lookup::<Msg>("b", "store").await,
        Err(ClusterError::NodeDown { .. })
    ));

    // b comes back on the same address; a dials it again by itself.
    let new_store = spawn_store().await;
    let b2 = restart_on(config("b").listen(addr)).await;
    b2.export("store", new_store)
        .expect("free name on the new b");
    next_event(&mut on_a, "Up again on a", is_up("b")).await;
    assert_eq!(a.peer("b").map(|p| p.status), Some(PeerStatus::Up));

    // The old RemoteRef reaches the new incarnation.
    remote
        .cast(Msg::Put(3))
        .expect("cast after the reconnection");
    assert_eq!(
        seen(&remote).await,
        vec![3],
        "the new store got the new cast only"
    );
    let again = a
        .lookup::<Msg>("b", "store")
        .await
        .expect("lookup works again");
    assert_eq!(again.call(|r| Msg::Echo(4, r), CALL).await, Ok(8));
    a.shutdown().await;
    b2.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5. Monitors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_fires_when_the_remote_actor_stops() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    let monitor = a.monitor(&remote).expect("b is connected");
    // The Monitor frame is handled before this call on the same session.
    seen(&remote).await;
    remote.cast(Msg::Stop).expect("cast is sent");
    let down = within("the monitor fires", monitor).await;
    assert_eq!(down.peer, "b");
    assert_eq!(down.actor, "store");
    assert!(
        matches!(&down.reason, ActorDownReason::Exited(r) if r.contains(STOP_REASON)),
        "the actor's exit reason comes through: {:?}",
        down.reason
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_fires_not_exported_on_unexport_or_when_nothing_is_exported() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    let monitor = a.monitor(&remote).expect("b is connected");
    seen(&remote).await;
    assert!(b.unexport("store"));
    let down = within("the monitor fires", monitor).await;
    assert_eq!(down.reason, ActorDownReason::NotExported);

    // Monitoring a name nobody exports any more fires at once.
    let monitor = a.monitor(&remote).expect("b is connected");
    let down = within("the monitor fires", monitor).await;
    assert_eq!(down.reason, ActorDownReason::NotExported);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_fires_node_down_when_the_peer_shuts_down() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    let monitor = a.monitor(&remote).expect("b is connected");
    b.shutdown().await;
    let down = within("the monitor fires", monitor).await;
    assert!(
        matches!(
            down.reason,
            ActorDownReason::NodeDown(DownReason::PeerShutdown(_))
        ),
        "{:?}",
        down.reason
    );
    assert!(
        matches!(a.monitor(&remote), Err(ClusterError::NodeDown { .. })),
        "no monitor without a session"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_monitor_is_cancelled_quietly() {
    let (a, b) = pair().await;
    let mut on_a = a.subscribe();
    let (_store, remote) = exported_store(&a, &b).await;
    let other = spawn_store().await;
    b.export("other", other).expect("free name");
    let other_remote = a.lookup::<Msg>("b", "other").await.expect("exported");

    let dropped = a.monitor(&remote).expect("b is connected");
    let kept = a.monitor(&other_remote).expect("b is connected");
    drop(dropped);
    // The Demonitor frame is handled before this call.
    seen(&remote).await;
    remote.cast(Msg::Stop).expect("cast is sent");
    assert!(b.unexport("other"));
    let down = within("the kept monitor fires", kept).await;
    assert_eq!(down.actor, "other");
    assert_eq!(down.reason, ActorDownReason::NotExported);

    assert_no_down(&mut on_a, "b");
    assert_eq!(a.peer("b").map(|p| p.status), Some(PeerStatus::Up));
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// 6. Reply semantics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reply_port_fails_the_call_at_once() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    let started = Instant::now();
    let got = remote.call(Msg::DropReply, Duration::from_secs(5)).await;
    assert_eq!(
        got,
        Err(ClusterError::Refused {
            peer: "b".into(),
            actor: "store".into(),
            refusal: Refusal::ReplyDropped,
        })
    );
    assert!(
        started.elapsed() < PROMPT,
        "not by timeout: {:?}",
        started.elapsed()
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_reply_port_times_the_call_out() {
    let (a, b) = pair().await;
    let (_store, remote) = exported_store(&a, &b).await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let got = remote.call(Msg::Hold, timeout).await;
    assert_eq!(
        got,
        Err(ClusterError::Timeout {
            peer: "b".into(),
            actor: "store".into(),
            after: timeout,
        })
    );
    assert!(started.elapsed() >= timeout);
    // The session is still fine.
    assert_eq!(remote.call(|r| Msg::Echo(1, r), CALL).await, Ok(2));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_stopped_actor_fails_fast() {
    let (a, b) = pair().await;
    let (store, remote) = exported_store(&a, &b).await;
    store
        .stop_and_wait(None, Some(WAIT))
        .await
        .expect("the store stops");
    let started = Instant::now();
    let got = remote.call(Msg::Get, Duration::from_secs(5)).await;
    assert!(
        matches!(
            &got,
            Err(ClusterError::Refused {
                refusal: Refusal::NotExported | Refusal::ActorStopped,
                ..
            })
        ),
        "{got:?}"
    );
    assert!(
        started.elapsed() < PROMPT,
        "not by timeout: {:?}",
        started.elapsed()
    );
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// 7. Dead letters

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_to_an_unexported_actor_is_a_dead_letter_and_the_session_lives() {
    let (a, b) = pair().await;
    let mut on_a = a.subscribe();
    let (_store, remote) = exported_store(&a, &b).await;
    let other = spawn_other().await;
    b.export("other", other).expect("free name");
    let other_remote = a.lookup::<Other>("b", "other").await.expect("exported");

    assert!(b.unexport("store"));
    remote.cast(Msg::Put(1)).expect("the cast leaves a");
    let e = next_event(&mut on_a, "a dead letter", |e| {
        matches!(e, NodeEvent::DeadLetter { .. })
    })
    .await;
    assert_eq!(
        e,
        NodeEvent::DeadLetter {
            peer: "b".into(),
            actor: "store".into(),
            tag: "Msg".into(),
            reason: UndeliveredReason::Refused(Refusal::NotExported),
            count: 1,
        }
    );
    assert_eq!(
        other_remote.call(Other::Ping, CALL).await,
        Ok("pong".to_string())
    );
    assert_no_down(&mut on_a, "b");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_whose_type_no_longer_matches_is_a_dead_letter() {
    let (a, b) = pair().await;
    let mut on_a = a.subscribe();
    let (_store, remote) = exported_store(&a, &b).await;

    assert!(b.unexport("store"));
    b.export("store", spawn_other().await)
        .expect("the name is free again");
    remote.cast(Msg::Put(1)).expect("the cast leaves a");
    let e = next_event(&mut on_a, "a dead letter", |e| {
        matches!(e, NodeEvent::DeadLetter { .. })
    })
    .await;
    assert_eq!(
        e,
        NodeEvent::DeadLetter {
            peer: "b".into(),
            actor: "store".into(),
            tag: "Msg".into(),
            reason: UndeliveredReason::Refused(Refusal::TagMismatch {
                expected: "test.Other.v1".into(),
                found: "Msg".into(),
            }),
            count: 1,
        }
    );
    // The new actor answers under the old name.
    let retyped = a
        .lookup::<Other>("b", "store")
        .await
        .expect("exported as Other");
    assert_eq!(
        retyped.call(Other::Ping, CALL).await,
        Ok("pong".to_string())
    );
    assert_no_down(&mut on_a, "b");
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// 8. Export rules

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_exported_once_freed_when_its_actor_stops_and_closed_at_shutdown() {
    let (a, b) = pair().await;
    let first = spawn_store().await;
    let second = spawn_store().await;
    b.export("s", first.clone()).expect("free name");
    assert_eq!(
        b.export("s", second.clone()),
        Err(ClusterError::AlreadyExported("s".into()))
    );

    first
        .stop_and_wait(None, Some(WAIT))
        .await
        .expect("the first store stops");
    b.export("s", second.clone())
        .expect("the name of a stopped actor can be reused");
    let remote = a.lookup::<Msg>("b", "s").await.expect("exported");
    remote.cast(Msg::Put(5)).expect("cast is sent");
    assert_eq!(seen(&remote).await, vec![5], "the second store answers");

    b.shutdown().await;
    assert_eq!(b.export("t", second), Err(ClusterError::Shutdown));
    a.shutdown().await;
}

// ---------------------------------------------------------------------------
// 9. Bad input before the handshake

/// A node `t` with an exported store, a peer `p` with an established
/// session to it, and `t`'s events.
struct Target {
    node: Node,
    events: NodeEvents,
    peer: Node,
    remote: RemoteRef<Msg>,
    _store: ActorRef<Msg>,
}

impl Target {
    async fn new(handshake_timeout: Duration) -> Target {
        let node = start_with(config("t").handshake_timeout(handshake_timeout)).await;
        let peer = start("p").await;
        connect(&peer, &node).await;
        let (store, remote) = exported_store(&peer, &node).await;
        Target {
            events: node.subscribe(),
            node,
            peer,
            remote,
            _store: store,
        }
    }

    /// Opens a raw connection, writes `bytes` (then half-closes if
    /// `then_eof`), and checks that `t` closes it within `bound` and
    /// publishes `Rejected` for it. Returns what `t` wrote back and the
    /// rejection's reason.
    async fn send_raw(
        &mut self,
        bytes: &[u8],
        then_eof: bool,
        bound: Duration,
    ) -> (Vec<u8>, String) {
        let mut raw = TcpStream::connect(self.node.local_addr())
            .await
            .expect("raw connect");
        let from = raw.local_addr().expect("raw local address");
        if !bytes.is_empty() {
            raw.write_all(bytes).await.expect("raw write");
        }
        if then_eof {
            raw.shutdown().await.expect("raw half-close");
        }
        let back = closed_within(&mut raw, bound).await;
        let e = next_event(
            &mut self.events,
            "Rejected",
            |e| matches!(e, NodeEvent::Rejected { addr, .. } if *addr == from),
        )
        .await;
        let NodeEvent::Rejected { reason, .. } = e else {
            unreachable!("the predicate matched Rejected");
        };
        (back, reason)
    }

    /// The established session still works, and a new peer gets in.
    async fn still_serves(self) {
        assert_eq!(self.remote.call(|r| Msg::Echo(5, r), CALL).await, Ok(10));
        let q = start("q").await;
        connect(&q, &self.node).await;
        let store = within("lookup from q", q.lookup::<Msg>("t", "store"))
            .await
            .expect("q finds the store");
        assert_eq!(store.call(|r| Msg::Echo(6, r), CALL).await, Ok(12));
        let mut names: Vec<String> = self.node.peers().into_iter().map(|p| p.name).collect();
        names.sort();
        assert_eq!(
            names,
            ["p", "q"],
            "no phantom peer from the bad connections"
        );
        q.shutdown().await;
        self.peer.shutdown().await;
        self.node.shutdown().await;
    }
}

/// Reads until the other side closes (EOF or reset); fails if it is still
/// open after `bound`. Returns the bytes received.
async fn closed_within(raw: &mut TcpStream, bound: Duration) -> Vec<u8> {
    let mut back = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => back.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(bound, read_all)
        .await
        .unwrap_or_else(|_| panic!("the node did not close the connection within {bound:?}"));
    back
}

/// A frame: length prefix, then `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A `Hello` body, encoded by hand: version, variant 0, name, incarnation,
/// listen address, nonce, max_frame (bincode 2 standard: varints, little
/// endian).
fn hello(version: u8, name: &str) -> Vec<u8> {
    let mut b = vec![version, 0];
    b.push(name.len() as u8);
    b.extend_from_slice(name.as_bytes());
    b.push(7); // incarnation
    b.extend_from_slice(&[0, 127, 0, 0, 1, 9]); // V4, 127.0.0.1, port 9
    b.extend_from_slice(&[0x42; 32]); // nonce
    b.push(252); // a u32 follows
    b.extend_from_slice(&65_536u32.to_le_bytes());
    b
}

/// Splits the first frame off `bytes`: (body, rest).
fn first_frame(bytes: &[u8]) -> (&[u8], &[u8]) {
    assert!(bytes.len() >= 4, "a frame came back: {bytes:?}");
    let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert!(bytes.len() >= 4 + len, "a whole frame came back: {bytes:?}");
    (&bytes[4..4 + len], &bytes[4 + len..])
}

/// The reason of a `Rejected` frame body (version 2, variant 4, string).
fn rejected_reason(body: &[u8]) -> String {
    assert_eq!(body.first(), Some(&2), "protocol version 2");
    assert_eq!(body.get(1), Some(&4), "a Rejected frame: {body:?}");
    let len = usize::from(body[2]);
    let text = if len < 251 {
        &body[3..3 + len]
    } else {
        assert_eq!(len, 251, "a reason under 64 KiB");
        let len = usize::from(u16::from_le_bytes([body[3], body[4]]));
        &body[5..5 + len]
    };
    String::from_utf8(text.to_vec()).expect("a UTF-8 reason")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_fails_the_handshake_on_both_sides() {
    let mut t = Target::new(Duration::from_secs(5)).await;
    let intruder = start_with(config("intruder").cookie("not the cookie")).await;
    let err = intruder
        .connect(t.node.local_addr())
        .await
        .expect_err("a wrong cookie is refused");
    assert!(
        matches!(
            &err,
            ClusterError::Handshake {
                addr,
                reason: HandshakeError::BadProof | HandshakeError::Rejected(_),
            } if *addr == t.node.local_addr()
        ),
        "{err:?}"
    );
    next_event(&mut t.events, "Rejected", |e| {
        matches!(e, NodeEvent::Rejected { .. })
    })
    .await;
    assert!(intruder
        .peers()
        .iter()
        .all(|p| p.status == PeerStatus::Down));
    intruder.shutdown().await;
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_the_handshake_is_rejected() {
    let mut t = Target::new(Duration::from_secs(5)).await;
    // Someone speaks HTTP to the port: "GET " is a length far above the max.
    t.send_raw(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", false, PROMPT)
        .await;
    // A plausible length, then bytes that are no frame (variant 238).
    let mut junk = vec![1u8, 238];
    junk.extend((0u8..30).map(|i| i.wrapping_mul(97)));
    t.send_raw(&frame(&junk), false, PROMPT).await;
    // An empty frame.
    t.send_raw(&frame(&[]), false, PROMPT).await;
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_length_prefix_is_refused_without_waiting_for_the_body() {
    let mut t = Target::new(Duration::from_secs(5)).await;
    let started = Instant::now();
    let mut bytes = 0xFFFF_FFF0u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 0, 0, 0]);
    t.send_raw(&bytes, false, PROMPT).await;
    assert!(started.elapsed() < PROMPT);
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_then_eof_is_rejected() {
    let mut t = Target::new(Duration::from_secs(5)).await;
    let whole = frame(&hello(2, "raw"));
    t.send_raw(&whole[..whole.len() / 2], true, PROMPT).await;
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_protocol_version_is_rejected_with_a_reason() {
    let mut t = Target::new(Duration::from_secs(5)).await;
    let (back, reason) = t.send_raw(&frame(&hello(3, "raw")), false, PROMPT).await;
    assert!(reason.contains("version 3"), "the event says why: {reason}");
    let (body, rest) = first_frame(&back);
    let told = rejected_reason(body);
    assert!(told.contains("version 3"), "the peer is told why: {told}");
    assert!(rest.is_empty(), "nothing after Rejected: {rest:?}");
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_step_out_of_order_is_rejected_with_a_reason() {
    let mut t = Target::new(Duration::from_secs(5)).await;
    // A well-formed Hello gets a Challenge (this checks the hand encoding)...
    let mut raw = TcpStream::connect(t.node.local_addr())
        .await
        .expect("raw connect");
    let from = raw.local_addr().expect("raw local address");
    raw.write_all(&frame(&hello(2, "raw")))
        .await
        .expect("write");
    let mut len = [0u8; 4];
    within("the challenge", raw.read_exact(&mut len))
        .await
        .expect("a challenge comes back");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    within("the challenge", raw.read_exact(&mut body))
        .await
        .expect("a whole challenge");
    assert_eq!(&body[..2], &[2, 1], "version 2, Challenge");
    // ...and a Heartbeat instead of the Response gets Rejected.
    raw.write_all(&frame(&[2, 5, 0])).await.expect("write");
    let back = closed_within(&mut raw, PROMPT).await;
    let told = rejected_reason(first_frame(&back).0);
    assert!(
        told.contains("Response") && told.contains("Heartbeat"),
        "{told}"
    );
    let e = next_event(
        &mut t.events,
        "Rejected",
        |e| matches!(e, NodeEvent::Rejected { addr, .. } if *addr == from),
    )
    .await;
    assert!(matches!(e, NodeEvent::Rejected { reason, .. } if reason.contains("Heartbeat")));
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let timeout = Duration::from_millis(300);
    let mut t = Target::new(timeout).await;
    let started = Instant::now();
    let (back, reason) = t.send_raw(&[], false, Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert!(
        took >= timeout - Duration::from_millis(50),
        "not before the handshake timeout: {took:?}"
    );
    assert!(
        back.is_empty() || rejected_reason(first_frame(&back).0).contains("300ms"),
        "{back:?}"
    );
    assert!(reason.contains("did not finish"), "{reason}");
    t.still_serves().await;
}

/// Connections that never authenticate are bounded per address: past 32
/// pending handshakes from one address, each newcomer from there evicts
/// that address's oldest (closed at once, long before the handshake
/// timeout); other addresses' handshakes and the sessions are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_evicts_only_its_own_oldest() {
    let timeout = Duration::from_secs(30);
    let t = Target::new(timeout).await;
    let from = |ip: [u8; 4]| {
        let addr = t.node.local_addr();
        async move {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket
                .bind(SocketAddr::from((ip, 0)))
                .expect("bind a loopback source address");
            socket.connect(addr).await.expect("raw connect")
        }
    };
    let mut honest = from([127, 0, 0, 3]).await;
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(from([127, 0, 0, 2]).await);
    }
    // The 68 oldest from 127.0.0.2 are closed at once.
    for raw in silent.iter_mut().take(68) {
        closed_within(raw, PROMPT).await;
    }
    // The honest pending handshake from another address is still open.
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), honest.read(&mut buf))
            .await
            .is_err(),
        "the other address's handshake was evicted"
    );
    // The existing session never noticed, and newcomers are served.
    assert_eq!(t.remote.call(|r| Msg::Echo(6, r), CALL).await, Ok(12));
    drop(silent);
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// 10. Configuration and frame limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configurations_are_refused_before_anything_starts() {
    let no_cookie = Node::start(NodeConfig::new("x")).await;
    assert!(
        matches!(&no_cookie, Err(ClusterError::InvalidConfig(m)) if m.contains("cookie")),
        "{no_cookie:?}"
    );
    let empty = Node::start(config("")).await;
    assert!(
        matches!(empty, Err(ClusterError::InvalidConfig(_))),
        "{empty:?}"
    );
    let small = Node::start(config("x").max_frame_size(4095)).await;
    assert!(
        matches!(small, Err(ClusterError::InvalidConfig(_))),
        "{small:?}"
    );
    let smallest = start_with(config("x").max_frame_size(4096)).await;
    smallest.shutdown().await;

    let taken = start("taken").await;
    let addr: SocketAddr = taken.local_addr();
    let clash = Node::start(config("y").listen(addr)).await;
    assert!(
        matches!(&clash, Err(ClusterError::Bind { addr: a, .. }) if *a == addr),
        "{clash:?}"
    );
    taken.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_above_the_receivers_frame_limit_fails_at_the_sender() {
    let a = start("a").await;
    let b = start_with(config("b").max_frame_size(4096)).await;
    connect(&a, &b).await;
    let mut on_a = a.subscribe();
    let (_store, remote) = exported_store(&a, &b).await;

    let err = remote
        .cast(Msg::Blob(vec![7; 10_000]))
        .expect_err("too large for b");
    assert!(
        matches!(err.into_message(), Msg::Blob(v) if v.len() == 10_000),
        "the message is handed back"
    );
    let err = remote
        .cast(Msg::Blob(vec![7; 10_000]))
        .map_err(ClusterError::from)
        .expect_err("too large for b");
    assert!(
        matches!(
            &err,
            ClusterError::Encode {
                actor,
                reason: WireError::TooLarge { max: 4096, .. },
            } if actor == "store"
        ),
        "{err:?}"
    );
    let err = remote
        .call(|_: RemoteReply<()>| Msg::Blob(vec![7; 10_000]), CALL)
        .await
        .expect_err("too large for b");
    assert!(matches!(err, ClusterError::Encode { .. }), "{err:?}");

    // Smaller messages still go through on the same session.
    remote.cast(Msg::Blob(vec![7; 1_000])).expect("fits");
    remote.cast(Msg::Put(9)).expect("fits");
    assert_eq!(seen(&remote).await, vec![9]);
    assert_no_down(&mut on_a, "b");
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Supervised exports

/// An exported supervised child keeps its name across restarts: the same
/// `RemoteRef` reaches the new incarnation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_child_is_reached_across_its_restarts() {
    use ractor_otp::{ChildSpec, Strategy, Supervisor, SupervisorSpec};

    let (a, b) = pair().await;
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(ChildSpec::new("store", Store, || ()));
    let (sup, _join) = Supervisor::spawn(None, spec)
        .await
        .expect("supervisor starts");
    let child = sup.child::<Msg>("store").expect("store is a child");
    b.export_child("store", child).expect("`store` is free");
    let remote = within("lookup", a.lookup::<Msg>("b", "store"))
        .await
        .expect("the child is exported for Msg");

    remote.cast(Msg::Put(1)).expect("cast is sent");
    assert_eq!(seen(&remote).await, vec![1]);
    remote.cast(Msg::Stop).expect("cast is sent");

    // The supervisor restarts it (fresh state); meanwhile calls may be
    // refused (NotRunning), or dropped with the stopping incarnation's
    // mailbox (ReplyDropped), never lost or hung.
    let deadline = Instant::now() + WAIT;
    let after = loop {
        match remote.call(Msg::Get, CALL).await {
            Ok(seen) => break seen,
            Err(ClusterError::Refused {
                refusal: Refusal::NotRunning | Refusal::ActorStopped | Refusal::ReplyDropped,
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the restarted child should answer: {e}"),
        }
    };
    assert_eq!(after, Vec::<u64>::new(), "a new incarnation answered");
    assert!(b.unexport("store"));
    sup.cell()
        .stop_and_wait(None, None)
        .await
        .expect("supervisor stops");
    a.shutdown().await;
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Shutdown and user code that panics

/// A shutdown whose caller gives up half way still completes: the node
/// ends its sessions and its event streams end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_shutdown_still_completes() {
    let (a, b) = pair().await;
    let mut on_b = b.subscribe();
    let mut on_a = a.subscribe();
    // Give up on the first call at once; a second call waits for the end.
    let abandoned = tokio::time::timeout(Duration::from_millis(1), a.shutdown()).await;
    drop(abandoned);
    within("a second shutdown", a.shutdown()).await;
    assert!(a.is_shut_down());
    next_event(&mut on_b, "b hears a leave", is_down("a")).await;
    while within("a's stream to end", on_a.recv()).await.is_some() {}
    b.shutdown().await;
}

/// A message whose `Deserialize` panics.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "test.Fragile")]
enum Fragile {
    Value(#[serde(deserialize_with = "panic_on_13")] u64),
    Echo(u64, RemoteReply<u64>),
}

fn panic_on_13<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    assert_ne!(n, 13, "this test's Deserialize panics on 13");
    Ok(n)
}

struct FragileActor;

impl Actor for FragileActor {
    type Msg = Fragile;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Fragile>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<Fragile>,
        msg: Fragile,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let Fragile::Echo(n, reply) = msg {
            reply.send(n);
        }
        Ok(())
    }
}

/// A panic while decoding a message refuses that message (a dead letter
/// for the sender) and nothing else: the session stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_refuses_only_that_message() {
    let (a, b) = pair().await;
    let mut on_a = a.subscribe();
    let (fragile, _) = Actor::spawn(None, FragileActor, ())
        .await
        .expect("the actor starts");
    b.export("fragile", fragile).expect("`fragile` is free");
    let remote = within("lookup", a.lookup::<Fragile>("b", "fragile"))
        .await
        .expect("exported");
    remote.cast(Fragile::Value(13)).expect("cast is sent");
    let e = next_event(&mut on_a, "the dead letter", |e| {
        matches!(e, NodeEvent::DeadLetter { .. })
    })
    .await;
    assert!(
        matches!(
            &e,
            NodeEvent::DeadLetter { reason: UndeliveredReason::Refused(Refusal::Decode(m)), .. }
                if m.contains("panicked")
        ),
        "{e:?}"
    );
    assert_eq!(remote.call(|r| Fragile::Echo(7, r), CALL).await, Ok(7));
    assert_no_down(&mut on_a, "b");
    a.shutdown().await;
    b.shutdown().await;
}

/// A remote actor supervised from another node: the stand-in child
/// forwards casts, exits when the remote actor goes down, and its
/// supervisor restarts it (with backoff) until the actor is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_remote_child_follows_its_remote_actor_down_and_back() {
    use ractor_otp::{ChildSpec, Strategy, Supervisor, SupervisorSpec};

    let (a, b) = pair().await;
    let (store, remote) = exported_store(&a, &b).await;
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(100, Duration::from_secs(10))
        .child(
            ChildSpec::remote::<Msg>("store", &a, "b", "store").backoff(Backoff::new(
                Duration::from_millis(20),
                Duration::from_millis(50),
            )),
        );
    let (sup, _join) = Supervisor::spawn(None, spec)
        .await
        .expect("supervisor starts");
    let child = sup.child::<Msg>("store").expect("a child");
    let first = child.current().expect("the stand-in runs").get_id();
    child.cast(Msg::Put(1)).expect("the stand-in takes it");
    wait_until_async("the cast to reach b's store", || async {
        seen(&remote).await == vec![1]
    })
    .await;

    // The remote actor stops: the stand-in exits abnormally and is
    // restarted; while nothing is exported its starts fail, with backoff.
    store.stop(None);
    wait_until("the stand-in to exit", || {
        child.current().is_none_or(|c| c.get_id() != first)
    })
    .await;

    // Exported again: the stand-in comes back and reaches the new actor.
    b.export("store", spawn_store().await)
        .expect("a stopped actor's name is free");
    let remote = within("lookup the new store", a.lookup::<Msg>("b", "store"))
        .await
        .expect("exported again");
    wait_until_async("a cast through a restarted stand-in", || async {
        if child.cast(Msg::Put(2)).is_err() {
            return false;
        }
        seen(&remote).await.contains(&2)
    })
    .await;
    assert_ne!(child.current().map(|c| c.get_id()), Some(first));
    sup.cell()
        .stop_and_wait(None, None)
        .await
        .expect("supervisor stops");
    a.shutdown().await;
    b.shutdown().await;
}

/// Like [`wait_until`], for conditions that need to await.
async fn wait_until_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
