//! Hostile and overloaded peers: a slow link, a stall behind a large frame,
//! a peer that does not read its answers, floods of dead letters and of
//! failed handshakes, a flood of connections that never authenticate, and
//! a partition that heals while a reconnection attempt is still pending.
//!
//! Each test puts the fault proxy (or raw sockets) between real nodes on
//! loopback; every wait is bounded.

mod cluster_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_support::proxy::{Direction, Mode, Proxy};
use cluster_support::{drain, expect_down, expect_up, fast_config, Probe};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{
    ClusterError, DownReason, Node, NodeConfig, NodeEvent, NodeEvents, RemoteDeadLetter, RemoteRef,
    RemoteReply, UndeliveredReason,
};
use ractor_otp::Backoff;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout, Instant};

/// Generous bound for anything that should happen "soon".
const SOON: Duration = Duration::from_secs(3);

/// What the bulk actor is told.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Bulk {
    /// A large message, remembered by its length.
    Blob(Vec<u8>),
    /// Remember the number.
    Record(u64),
    /// Answer with every number remembered (blob lengths too), in order.
    Recorded(RemoteReply<Vec<u64>>),
    /// Answer with that many bytes.
    Fetch(u32, RemoteReply<Vec<u8>>),
}

struct BulkActor;

impl Actor for BulkActor {
    type Msg = Bulk;
    type State = Vec<u64>;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Bulk>, _: ()) -> Result<Vec<u64>, ActorProcessingErr> {
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _: ActorRef<Bulk>,
        msg: Bulk,
        seen: &mut Vec<u64>,
    ) -> Result<(), ActorProcessingErr> {
        // An answer to a caller that is gone is not this actor's failure.
        match msg {
            Bulk::Blob(b) => seen.push(b.len() as u64),
            Bulk::Record(n) => seen.push(n),
            Bulk::Recorded(reply) => {
                let _ = reply.send(seen.clone());
            }
            Bulk::Fetch(n, reply) => {
                let _ = reply.send(vec![1; n as usize]);
            }
        }
        Ok(())
    }
}

/// `a` dialing `b` through a proxy; `b` exports a bulk actor.
struct Pair {
    a: Node,
    b: Node,
    proxy: Proxy,
    a_events: NodeEvents,
    b_events: NodeEvents,
    remote: RemoteRef<Bulk>,
}

impl Pair {
    async fn start(a: NodeConfig, b: NodeConfig) -> Pair {
        let b = Node::start(b).await.expect("start b");
        let (bulk, _) = Actor::spawn(None, BulkActor, ())
            .await
            .expect("spawn the bulk actor");
        b.export("bulk", bulk).expect("export");
        let proxy = Proxy::start(b.local_addr()).await;
        // b redials a through the proxy too (every member redials).
        let a = Node::start(a.advertise(proxy.reverse_addr()))
            .await
            .expect("start a");
        proxy.set_reverse_target(a.local_addr());
        let mut a_events = a.subscribe();
        let mut b_events = b.subscribe();
        a.connect(proxy.addr()).await.expect("a connects to b");
        expect_up(&mut a_events, "b", SOON).await;
        expect_up(&mut b_events, "a", SOON).await;
        let remote = a.lookup::<Bulk>("b", "bulk").await.expect("lookup");
        Pair {
            a,
            b,
            proxy,
            a_events,
            b_events,
            remote,
        }
    }

    /// What b got, asked once the send buffer has room for the call.
    async fn recorded(&self) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .remote
                .call(Bulk::Recorded, Duration::from_secs(10))
                .await
            {
                Err(ClusterError::Busy { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other.expect("b reports what it got"),
            }
        }
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

/// A node config with the default failure detector (about 1.4 s), quick
/// reconnection and a small send buffer.
fn default_detector(name: &str, send_buffer: usize) -> NodeConfig {
    NodeConfig::new(name)
        .cookie("cluster test cookie")
        .send_buffer(send_buffer)
}

fn no_downs(events: &mut NodeEvents) -> Vec<NodeEvent> {
    drain(events)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Down { .. }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_gets_busy_and_every_cast_is_delivered_or_handed_back() {
    let limit = 64 * 1024;
    let mut p = Pair::start(default_detector("a", limit), default_detector("b", limit)).await;
    p.proxy
        .set_dir(Direction::ToTarget, Mode::Throttle(200_000));
    let (mut sent, mut busy, mut handed_back_ok) = (0u64, 0u64, true);
    let until = Instant::now() + Duration::from_secs(2);
    let mut n = 0u64;
    while Instant::now() < until {
        match p.remote.cast(Bulk::Record(n)) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert!(e.is_busy(), "only Busy while the session lives: {e}");
                busy += 1;
                handed_back_ok &= matches!(e.into_message(), Bulk::Record(m) if m == n);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        n += 1;
    }
    assert!(busy > 0, "a 200 KB/s link never filled a 64 KiB buffer");
    assert!(
        handed_back_ok,
        "a Busy cast hands back the message it refused"
    );
    p.proxy.set_dir(Direction::ToTarget, Mode::Pass);
    let got = p.recorded().await;
    assert_eq!(
        got.len() as u64,
        sent,
        "sent = delivered exactly (busy {busy}, attempts {n})"
    );
    assert_eq!(sent + busy, n, "every attempt is sent or handed back");
    eprintln!("reliability: slow link 200 KB/s, 64 KiB buffer: {n} casts tried, {sent} delivered, {busy} handed back Busy, 0 lost");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    assert_eq!(
        no_downs(&mut p.a_events),
        vec![],
        "a slow link is no failure"
    );
    assert_eq!(
        no_downs(&mut p.b_events),
        vec![],
        "a slow link is no failure"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_wait_waits_for_room_and_loses_nothing() {
    let limit = 16 * 1024;
    let p = Pair::start(default_detector("a", limit), default_detector("b", limit)).await;
    p.proxy
        .set_dir(Direction::ToTarget, Mode::Throttle(500_000));
    let total = 20_000u64;
    for n in 0..total {
        timeout(SOON, p.remote.cast_wait(Bulk::Record(n)))
            .await
            .expect("room comes")
            .expect("the session lives");
    }
    p.proxy.set_dir(Direction::ToTarget, Mode::Pass);
    let got = p.recorded().await;
    assert_eq!(got, (0..total).collect::<Vec<_>>());
    eprintln!("reliability: cast_wait over a 500 KB/s link, 16 KiB buffer: {total} casts, {total} delivered in order, 0 lost");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_while_a_large_frame_is_written_is_no_false_down() {
    let mut p = Pair::start(
        default_detector("a", 8 << 20),
        default_detector("b", 8 << 20),
    )
    .await;
    // A 6 MiB frame over a 4 MB/s link takes about 1.6 s; casts and
    // heartbeats queue behind it; a second in, when the last heartbeat b
    // got is a second old, the link stalls for 500 ms.
    p.proxy
        .set_dir(Direction::ToTarget, Mode::Throttle(4_000_000));
    p.remote
        .cast(Bulk::Blob(vec![9; 6 << 20]))
        .expect("the blob is queued");
    for n in 0..10_000 {
        p.remote.cast(Bulk::Record(n)).expect("queued behind it");
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    p.proxy.set_dir(Direction::ToTarget, Mode::Stall);
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.proxy.set_dir(Direction::ToTarget, Mode::Pass);
    let got = p.recorded().await;
    assert_eq!(no_downs(&mut p.b_events), vec![], "b declared a down");
    assert_eq!(got.len(), 10_001, "the blob and every cast arrived");
    assert_eq!(got[0], 6 << 20);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cast_not_written_when_a_session_ends_is_a_dead_letter_with_its_message() {
    let letters: Arc<Mutex<Vec<RemoteDeadLetter>>> = Arc::default();
    let sink = letters.clone();
    let a = default_detector("a", 64 * 1024).on_dead_letter(move |l| {
        sink.lock().expect("not poisoned").push(l);
    });
    // b is patient: a stalled link is not a failure for it here.
    let b = default_detector("b", 64 * 1024).acceptable_pause(Duration::from_secs(30));
    let mut p = Pair::start(a, b).await;
    p.proxy.set_dir(Direction::ToTarget, Mode::Stall);
    // Cast until the buffer stays full: the sockets' buffers are full
    // too, so the writer is blocked and what is queued is still here.
    let (mut sent, mut busy_in_a_row) = (0u64, 0);
    while busy_in_a_row < 20 {
        match p.remote.cast(Bulk::Record(sent)) {
            Ok(()) => {
                sent += 1;
                busy_in_a_row = 0;
                assert!(sent < 10_000_000, "the buffer never filled");
            }
            Err(e) => {
                assert!(e.is_busy(), "{e}");
                busy_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert_eq!(p.proxy.sever(), 1);
    // b goes down, and the events count the dead letters: the first at
    // once, the rest in one summary when the one-second window closes.
    let (mut counted, mut summaries, mut down) = (0, 0, false);
    let deadline = Instant::now() + SOON;
    while summaries == 0 || !down {
        match timeout(deadline - Instant::now(), p.a_events.recv()).await {
            Ok(Some(NodeEvent::DeadLetter { count, .. })) => {
                counted += count;
                summaries += u64::from(count > 1);
            }
            Ok(Some(NodeEvent::Down { peer, .. })) if peer == "b" => down = true,
            Ok(Some(_)) => {}
            other => panic!("no Down or no dead-letter summary; counted {counted}: {other:?}"),
        }
    }
    let letters = std::mem::take(&mut *letters.lock().expect("not poisoned"));
    assert!(
        letters.len() > 1000,
        "the full buffer became dead letters: {}",
        letters.len()
    );
    let numbers: Vec<u64> = letters
        .iter()
        .map(|l| match l.message::<Bulk>() {
            Some(Ok(Bulk::Record(n))) => n,
            other => panic!("not a decodable Record: {other:?}"),
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] + 1 == w[1]),
        "in order, none skipped"
    );
    assert_eq!(
        numbers.last(),
        Some(&(sent - 1)),
        "the last cast is among them"
    );
    assert!(letters
        .iter()
        .all(|l| matches!(l.reason, UndeliveredReason::SessionClosed(_)) && l.actor == "bulk"));
    assert_eq!(counted, letters.len() as u64);
    eprintln!("reliability: session cut with a full buffer: {sent} casts accepted, {} never written became dead letters with their message (counted in events: {counted}); the rest were in the sockets' buffers when the connection was cut (at most once: the Down event covers them)", letters.len());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_its_answers_is_disconnected() {
    // a does not judge b by heartbeats here (b's cannot get out), so b is
    // the one to act: its answers to a pile up past twice its buffer.
    let a = fast_config("a").acceptable_pause(Duration::from_secs(60));
    let b = fast_config("b").send_buffer(256 * 1024);
    let mut p = Pair::start(a, b).await;
    p.proxy.set_dir(Direction::FromTarget, Mode::Stall);
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let remote = p.remote.clone();
            tokio::spawn(async move {
                remote
                    .call(|r| Bulk::Fetch(1 << 20, r), Duration::from_secs(20))
                    .await
            })
        })
        .collect();
    let reason = expect_down(&mut p.b_events, "a", Duration::from_secs(20)).await;
    assert!(
        matches!(reason, DownReason::PeerNotReading { limit, .. } if limit == 256 * 1024),
        "{reason}"
    );
    p.proxy.set_dir(Direction::FromTarget, Mode::Pass);
    for call in calls {
        let _ = timeout(Duration::from_secs(25), call).await;
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_and_up_reach_a_subscriber_that_reads_late_after_floods() {
    let b = Node::start(fast_config("b")).await.expect("start b");
    let proxy = Proxy::start(b.local_addr()).await;
    let a = Node::start(fast_config("a").advertise(proxy.reverse_addr()))
        .await
        .expect("start a");
    proxy.set_reverse_target(a.local_addr());
    let (probe, _) = Actor::spawn(None, cluster_support::ProbeActor, ())
        .await
        .expect("spawn");
    b.export("probe", probe).expect("export");
    let mut late_a = a.subscribe();
    let mut late_b = b.subscribe();
    a.connect(proxy.addr()).await.expect("connect");
    let remote = a.lookup::<Probe>("b", "probe").await.expect("lookup");
    // 20,000 casts to a frozen peer, then it is declared down.
    proxy.set(Mode::Stall);
    let mut queued = 0;
    for n in 0..20_000 {
        if remote.cast(Probe::Record(n)).is_ok() {
            queued += 1;
        }
    }
    assert!(queued > 0);
    // A wrong-cookie flood at b from an unauthenticated client.
    let intruder = Node::start(fast_config("x").cookie("wrong"))
        .await
        .expect("start x");
    for _ in 0..300 {
        let _ = intruder.connect(b.local_addr()).await;
    }
    proxy.sever();
    proxy.set(Mode::Pass);
    // Only now do the subscribers read: nothing was dropped.
    let a_seen: Vec<NodeEvent> = collect_until_up(&mut late_a, "b").await;
    let downs = a_seen
        .iter()
        .filter(|e| matches!(e, NodeEvent::Down { peer, .. } if peer == "b"))
        .count();
    assert!(downs >= 1, "a's Down of b was lost: {a_seen:?}");
    assert!(
        a_seen.len() < 100,
        "dead letters are coalesced, not one event each: {} events",
        a_seen.len()
    );
    let b_seen = collect_until_up(&mut late_b, "a").await;
    assert!(b_seen
        .iter()
        .any(|e| matches!(e, NodeEvent::Down { peer, .. } if peer == "a")));
    let rejected: Vec<u64> = b_seen
        .iter()
        .filter_map(|e| match e {
            NodeEvent::Rejected { count, .. } => Some(*count),
            _ => None,
        })
        .collect();
    assert!(
        !rejected.is_empty() && rejected.len() < 20,
        "rejections are coalesced: {rejected:?}"
    );
    intruder.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Every event up to and including the first `Up` of `peer` after a
/// `Down` of it.
async fn collect_until_up(events: &mut NodeEvents, peer: &str) -> Vec<NodeEvent> {
    let mut seen = Vec::new();
    let mut down = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no Down then Up of {peer}; saw {seen:?}"))
            .expect("the node runs");
        match &e {
            NodeEvent::Down { peer: p, .. } if p == peer => down = true,
            NodeEvent::Up { peer: p } if p == peer && down => {
                seen.push(e);
                return seen;
            }
            _ => {}
        }
        seen.push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_peers_join_during_a_flood_of_connections_that_never_authenticate() {
    let seed = Node::start(fast_config("seed").handshake_timeout(Duration::from_secs(2)))
        .await
        .expect("start the seed");
    let addr = seed.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let opened = Arc::new(AtomicU64::new(0));
    // Eight attackers from 200 loopback addresses: each connection sends a
    // byte every 100 ms (a slow drip) and is reopened when dropped.
    let attackers: Vec<_> = (0..8u8)
        .map(|k| {
            let stop = stop.clone();
            let opened = opened.clone();
            tokio::spawn(async move {
                let mut i: u32 = 0;
                let mut held = Vec::new();
                while !stop.is_cancelled() {
                    i += 1;
                    let ip = [127, 0, 1 + k, (i % 25) as u8 + 2];
                    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                        continue;
                    };
                    if socket.bind(SocketAddr::from((ip, 0))).is_err() {
                        continue;
                    }
                    if let Ok(Ok(s)) =
                        timeout(Duration::from_millis(200), socket.connect(addr)).await
                    {
                        opened.fetch_add(1, Ordering::Relaxed);
                        held.push(s);
                    }
                    if held.len() > 100 {
                        held.remove(0);
                    }
                    for s in held.iter_mut().step_by(10) {
                        let _ = s.try_write(&[0]);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                for mut s in held {
                    let _ = s.shutdown().await;
                }
            })
        })
        .collect();
    // The flood is under way (hundreds of connections) before anyone joins.
    let deadline = Instant::now() + Duration::from_secs(10);
    while opened.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "the flood did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut joined = 0;
    for j in 0..10 {
        let node = Node::start(fast_config(&format!("n{j}")))
            .await
            .expect("start a joiner");
        if let Ok(Ok(_)) = timeout(SOON, node.connect(addr)).await {
            joined += 1;
        }
        node.shutdown().await;
    }
    stop.cancel();
    for a in attackers {
        let _ = timeout(SOON, a).await;
    }
    let flood = opened.load(Ordering::Relaxed);
    assert!(flood >= 300, "the flood opened only {flood} connections");
    assert_eq!(joined, 10, "joins during a flood of {flood} connections");
    eprintln!("reliability: {joined}/10 joins during a flood of {flood} unauthenticated connections from 200 addresses");
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partition_heals_the_session_is_back_within_one_backoff_step() {
    let step = Duration::from_millis(400);
    let cfg = |name: &str| {
        fast_config(name)
            .handshake_timeout(Duration::from_secs(5))
            .reconnect(Backoff::new(Duration::from_millis(50), step))
    };
    let mut p = Pair::start(cfg("a"), cfg("b")).await;
    p.proxy.set(Mode::Drop);
    expect_down(&mut p.a_events, "b", SOON).await;
    // Long enough for attempts to start inside the partition and hang in
    // their handshake (the proxy accepts, then drops every byte).
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.proxy.set(Mode::Pass);
    let healed = Instant::now();
    expect_up(&mut p.a_events, "b", Duration::from_secs(6)).await;
    let took = healed.elapsed();
    // One step (at least the 500 ms an attempt always gets), the
    // handshake, and slack for a busy machine; the handshake timeout (5 s)
    // would be the bound if a pending attempt held the next one up.
    assert!(took < Duration::from_millis(1_800), "back after {took:?}");
    eprintln!("reliability: session back {took:?} after a 2 s silent partition healed (backoff step 400 ms)");
    p.stop().await;
}
