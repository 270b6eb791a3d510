//! Network faults between two nodes, injected by a TCP proxy: silent and
//! one-way partitions (found by heartbeats, not by a closed socket), latency
//! below the detection bound (no false alarm), severed connections,
//! an unreachable peer (reconnection with backoff), bad bytes after the
//! handshake (that session closes, the node keeps serving its other peers),
//! and at-most-once delivery across a reconnection.
//!
//! Node `a` dials `b` through the proxy, so `a` is the side that
//! reconnects. Heartbeats every 50 ms detect a silent peer in about 0.25 s.

mod cluster_support;

use std::time::Duration;

use cluster_support::proxy::{Direction, Mode, Proxy};
use cluster_support::{
    backoff, drain, expect_down, expect_up, export_probe, fast_config, start_node, time_to_detect,
    Probe, HEARTBEAT, PAUSE, THRESHOLD,
};
use ractor::ActorRef;
use ractor_otp::cluster::{
    ActorDownReason, ClusterError, DownReason, Node, NodeEvent, NodeEvents, PeerStatus, RemoteRef,
};
use tokio::time::{timeout, Instant};

/// Generous bound for anything that should happen "soon" (a reconnection,
/// an event after a close).
const SOON: Duration = Duration::from_secs(2);

/// The longest a silent peer may take to be declared down: the detector's
/// delay after the last heartbeat, plus one interval for the last heartbeat
/// before the fault and one for the tick that notices, plus slack for a
/// busy machine. About 1.35 s.
fn detection_bound() -> Duration {
    time_to_detect() + 2 * HEARTBEAT + Duration::from_secs(1)
}

/// `a` connected to `b` through a proxy, `a` holding a reference to the
/// probe `b` exports.
struct Pair {
    a: Node,
    b: Node,
    proxy: Proxy,
    a_events: NodeEvents,
    b_events: NodeEvents,
    remote: RemoteRef<Probe>,
    probe: ActorRef<Probe>,
}

impl Pair {
    /// Lets traffic pass again: `a` reconnects by itself (its attempts
    /// during the partition failed in the handshake) and both sides see Up.
    async fn heal(&mut self) {
        self.proxy.set(Mode::Pass);
        let failed_attempts = expect_up(&mut self.a_events, "b", SOON).await;
        assert!(
            all_handshake_failures(&failed_attempts),
            "{failed_attempts:?}"
        );
        expect_up(&mut self.b_events, "a", SOON).await;
    }

    async fn start() -> Pair {
        let b = start_node("b").await;
        let probe = export_probe(&b, "probe").await;
        let proxy = Proxy::start(b.local_addr()).await;
        // b redials a through the proxy too (every member redials).
        let a = Node::start(fast_config("a").advertise(proxy.reverse_addr()))
            .await
            .expect("start a");
        proxy.set_reverse_target(a.local_addr());
        let mut a_events = a.subscribe();
        let mut b_events = b.subscribe();
        a.connect(proxy.addr())
            .await
            .expect("a connects to b through the proxy");
        expect_up(&mut a_events, "b", SOON).await;
        expect_up(&mut b_events, "a", SOON).await;
        let remote = a
            .lookup::<Probe>("b", "probe")
            .await
            .expect("b exports the probe");
        Pair {
            a,
            b,
            proxy,
            a_events,
            b_events,
            remote,
            probe,
        }
    }

    /// Calls the probe through the proxy and checks the echo.
    async fn echo(&self, n: u64) {
        let got = self
            .remote
            .call(|reply| Probe::Echo(n, reply), SOON)
            .await
            .expect("the call through the proxy succeeds");
        assert_eq!(got, n);
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        self.probe.stop(None);
    }
}

fn is_heartbeat_timeout(reason: &DownReason) -> bool {
    matches!(
        reason,
        DownReason::HeartbeatTimeout { phi, threshold, .. }
            if *phi >= *threshold && *threshold == THRESHOLD
    )
}

fn is_closed(reason: &DownReason) -> bool {
    matches!(
        reason,
        DownReason::ConnectionClosed | DownReason::ConnectionError(_)
    )
}

/// The reconnection attempts that failed before `Up` all failed in the
/// handshake (the proxy accepted them), nothing else.
fn all_handshake_failures(downs: &[DownReason]) -> bool {
    downs
        .iter()
        .all(|r| matches!(r, DownReason::HandshakeFailed(_)))
}

#[tokio::test]
async fn a_silent_partition_is_found_by_heartbeats_and_heals_by_itself() {
    let mut p = Pair::start().await;
    let monitor = p.a.monitor(&p.remote).expect("monitor the remote probe");
    p.echo(1).await;

    p.proxy.set(Mode::Drop);
    let cut = Instant::now();
    let remote = p.remote.clone();
    let pending = tokio::spawn(async move { remote.call(|r| Probe::Echo(2, r), SOON * 2).await });

    // Both sides see the silence; neither sees a socket close.
    let a_reason = expect_down(&mut p.a_events, "b", SOON).await;
    let detected = cut.elapsed();
    assert!(is_heartbeat_timeout(&a_reason), "a: {a_reason:?}");
    assert!(
        detected >= PAUSE && detected < detection_bound(),
        "declared down {detected:?} after the partition (bound {:?})",
        detection_bound()
    );
    let b_reason = expect_down(&mut p.b_events, "a", SOON).await;
    assert!(is_heartbeat_timeout(&b_reason), "b: {b_reason:?}");

    // The call pending on the lost session fails with the reason, before
    // its own timeout.
    let failed = timeout(SOON, pending)
        .await
        .expect("the pending call ends when b is declared down")
        .expect("the call task does not panic");
    assert!(
        matches!(
            &failed,
            Err(ClusterError::NodeDown { peer, reason }) if peer == "b" && is_heartbeat_timeout(reason)
        ),
        "{failed:?}"
    );
    let down = timeout(SOON, monitor).await.expect("the monitor fires");
    assert!(
        matches!(&down.reason, ActorDownReason::NodeDown(r) if is_heartbeat_timeout(r)),
        "{down:?}"
    );
    assert!(
        matches!(
            p.remote.cast(Probe::Record(0)).map_err(ClusterError::from),
            Err(ClusterError::NodeDown { .. })
        ),
        "a cast while b is down fails at once"
    );
    assert_eq!(p.a.peer("b").expect("a knows b").status, PeerStatus::Down);
    assert!(p.proxy.dropped(Direction::ToTarget) > 0);
    assert!(p.proxy.dropped(Direction::FromTarget) > 0);

    // Heal: a reconnects by itself (its attempts during the partition
    // timed out in the handshake), both sides see Up, the same reference
    // works again.
    p.heal().await;
    p.echo(3).await;
    p.stop().await;
}

#[tokio::test]
async fn a_one_way_partition_is_found_by_the_side_that_stops_hearing() {
    let mut p = Pair::start().await;
    p.proxy.set_dir(Direction::FromTarget, Mode::Drop);
    let cut = Instant::now();

    let a_reason = expect_down(&mut p.a_events, "b", SOON).await;
    assert!(is_heartbeat_timeout(&a_reason), "a: {a_reason:?}");
    assert!(cut.elapsed() < detection_bound(), "{:?}", cut.elapsed());
    // b kept hearing a; it learns of the break when a closes the session.
    let b_reason = expect_down(&mut p.b_events, "a", SOON).await;
    assert!(is_closed(&b_reason), "b: {b_reason:?}");

    p.heal().await;
    p.echo(1).await;
    p.stop().await;
}

#[tokio::test]
async fn latency_below_the_detection_bound_is_no_failure() {
    let mut p = Pair::start().await;
    let delay = Duration::from_millis(30);
    p.proxy.set(Mode::Delay(delay));

    let until = Instant::now() + Duration::from_secs(2);
    let mut calls = 0;
    let mut max_phi: f64 = 0.0;
    while Instant::now() < until {
        let sent = Instant::now();
        p.echo(calls).await;
        assert!(sent.elapsed() >= 2 * delay, "the proxy delays each way");
        calls += 1;
        for info in [p.a.peer("b"), p.b.peer("a")] {
            let info = info.expect("both nodes know each other");
            assert_ne!(info.status, PeerStatus::Down, "{info:?}");
            max_phi = max_phi.max(info.phi);
        }
    }
    assert!(calls >= 10, "only {calls} calls in 2 s");
    assert!(max_phi < THRESHOLD, "phi reached {max_phi}");
    let rtt = p.a.peer("b").and_then(|i| i.rtt).expect("a measured a rtt");
    assert!(rtt >= 2 * delay, "heartbeat rtt {rtt:?}");
    for events in [&mut p.a_events, &mut p.b_events] {
        let downs: Vec<_> = drain(events)
            .into_iter()
            .filter(|e| matches!(e, NodeEvent::Down { .. }))
            .collect();
        assert!(downs.is_empty(), "false alarm: {downs:?}");
    }
    p.stop().await;
}

#[tokio::test]
async fn a_severed_connection_is_down_at_once_and_reconnects() {
    let mut p = Pair::start().await;
    let cut = Instant::now();
    assert_eq!(p.proxy.sever(), 1);

    let a_reason = expect_down(&mut p.a_events, "b", SOON).await;
    let noticed = cut.elapsed();
    assert!(is_closed(&a_reason), "a: {a_reason:?}");
    // A close is news at once: no waiting for heartbeats.
    assert!(
        noticed < time_to_detect(),
        "{noticed:?} to notice a closed connection"
    );
    let b_reason = expect_down(&mut p.b_events, "a", SOON).await;
    assert!(is_closed(&b_reason), "b: {b_reason:?}");

    let failed_attempts = expect_up(&mut p.a_events, "b", SOON).await;
    assert!(failed_attempts.is_empty(), "{failed_attempts:?}");
    expect_up(&mut p.b_events, "a", SOON).await;
    p.echo(1).await;
    p.stop().await;
}

#[tokio::test]
async fn an_unreachable_peer_is_retried_with_backoff_until_it_is_back() {
    let mut p = Pair::start().await;
    p.proxy.refuse(true);
    let before = p.proxy.attempts().len();
    p.proxy.sever();
    let a_reason = expect_down(&mut p.a_events, "b", SOON).await;
    assert!(is_closed(&a_reason), "a: {a_reason:?}");

    // Four refused attempts: 50 + 100 + 200 + 200 ms of backoff.
    let wanted = 4;
    timeout(SOON, async {
        while p.proxy.attempts().len() < before + wanted {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a keeps trying to reconnect");
    let attempts = p.proxy.attempts()[before..].to_vec();
    for (i, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let delay = backoff().delay(i as u32 + 1, &mut rand::rng());
        assert!(
            gap >= delay.mul_f64(0.9),
            "attempts {i} and {} only {gap:?} apart (backoff {delay:?})",
            i + 1
        );
    }
    // Still down: every attempt failed in the handshake.
    assert_eq!(p.a.peer("b").expect("a knows b").status, PeerStatus::Down);
    for event in drain(&mut p.a_events) {
        match event {
            NodeEvent::Up { .. } => panic!("up while the proxy refuses"),
            NodeEvent::Down { reason, .. } => {
                assert!(
                    matches!(reason, DownReason::HandshakeFailed(_)),
                    "{reason:?}"
                )
            }
            _ => {}
        }
    }

    p.proxy.refuse(false);
    expect_up(&mut p.a_events, "b", SOON).await;
    expect_up(&mut p.b_events, "a", SOON).await;
    p.echo(1).await;
    p.stop().await;
}

/// What a bad-input case must do to `b`'s session with `a`.
enum Expect {
    ProtocolError,
    /// Any of a protocol error or a closed or failed connection.
    AnyClose,
}

#[tokio::test]
async fn bad_bytes_after_the_handshake_close_that_session_only() {
    let mut p = Pair::start().await;
    // c talks to b directly, both ways.
    let c = start_node("c").await;
    let c_probe = export_probe(&c, "probe").await;
    let mut c_events = c.subscribe();
    let mut b_watch = p.b.subscribe();
    c.connect(p.b.local_addr()).await.expect("c connects to b");
    let c_to_b = c
        .lookup::<Probe>("b", "probe")
        .await
        .expect("c finds b's probe");
    let b_to_c =
        p.b.lookup::<Probe>("c", "probe")
            .await
            .expect("b finds c's probe");
    let b_and_c_talk = |n: u64| {
        let (c_to_b, b_to_c) = (c_to_b.clone(), b_to_c.clone());
        async move {
            let there = c_to_b.call(|r| Probe::Echo(n, r), SOON).await;
            let back = b_to_c.call(|r| Probe::Echo(n, r), SOON).await;
            assert_eq!((there, back), (Ok(n), Ok(n)), "b and c still talk");
        }
    };
    b_and_c_talk(0).await;

    let cases: [(&str, &[u8], bool, Expect); 4] = [
        // Version 1, then frame variant 200: no such frame.
        (
            "garbage",
            &[0, 0, 0, 4, 1, 200, 200, 200],
            false,
            Expect::ProtocolError,
        ),
        // A length ~4 GiB: refused before anything is reserved.
        (
            "oversized length",
            &[0xFF, 0xFF, 0xFF, 0xF0],
            false,
            Expect::ProtocolError,
        ),
        (
            "unknown version",
            &[0, 0, 0, 1, 9],
            false,
            Expect::ProtocolError,
        ),
        // 4096 bytes announced, 2 sent, then the connection is cut.
        ("truncated", &[0, 0, 0x10, 0, 1, 9], true, Expect::AnyClose),
    ];
    for (n, (case, bytes, sever, expect)) in cases.into_iter().enumerate() {
        // Both sides redial after a failure: the losing connection of a
        // simultaneous redial closes right after the handshake.
        let deadline = Instant::now() + SOON;
        while p.proxy.live() != 1 {
            assert!(
                Instant::now() < deadline,
                "{case}: {} live connections",
                p.proxy.live()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let written = timeout(SOON, p.proxy.inject(Direction::ToTarget, bytes))
            .await
            .expect("the proxy writes the bytes");
        assert_eq!(written, 1, "{case}: one live connection");
        if sever {
            p.proxy.sever();
        }
        let b_reason = expect_down(&mut p.b_events, "a", SOON).await;
        match expect {
            Expect::ProtocolError => assert!(
                matches!(b_reason, DownReason::ProtocolError(_)),
                "{case}: b closed with {b_reason:?}"
            ),
            Expect::AnyClose => assert!(
                is_closed(&b_reason) || matches!(b_reason, DownReason::ProtocolError(_)),
                "{case}: b closed with {b_reason:?}"
            ),
        }
        let a_reason = expect_down(&mut p.a_events, "b", SOON).await;
        assert!(is_closed(&a_reason), "{case}: a saw {a_reason:?}");
        expect_up(&mut p.a_events, "b", SOON).await;
        expect_up(&mut p.b_events, "a", SOON).await;
        p.echo(n as u64).await;
        b_and_c_talk(n as u64).await;
    }

    let c_downs: Vec<_> = drain(&mut c_events)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Down { .. }))
        .collect();
    assert!(c_downs.is_empty(), "c saw {c_downs:?}");
    let b_c_downs: Vec<_> = drain(&mut b_watch)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Down { peer, .. } if peer == "c"))
        .collect();
    assert!(b_c_downs.is_empty(), "b saw {b_c_downs:?}");
    c.shutdown().await;
    c_probe.stop(None);
    p.stop().await;
}

#[tokio::test]
async fn nothing_is_delivered_twice_across_a_reconnection() {
    let mut p = Pair::start().await;
    let sever_at = 100;
    let after_up = 100;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let started = Instant::now();
    let (mut sent, mut failed, mut dead_letters, mut up_at) = (0_u64, 0_u64, 0_u64, None);
    while up_at.is_none_or(|at| sent < at + after_up) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no reconnection"
        );
        tick.tick().await;
        match p
            .remote
            .cast(Probe::Record(sent))
            .map_err(ClusterError::from)
        {
            Ok(()) => {}
            Err(ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }) => failed += 1,
            Err(e) => panic!("cast {sent}: {e}"),
        }
        sent += 1;
        if sent == sever_at {
            assert_eq!(p.proxy.sever(), 1);
        }
        for event in drain(&mut p.a_events) {
            match event {
                NodeEvent::DeadLetter { count, .. } => dead_letters += count,
                NodeEvent::Up { .. } if up_at.is_none() => up_at = Some(sent),
                _ => {}
            }
        }
    }

    // Casts and calls from one sender arrive in order: once this answers,
    // every cast sent on the new session has arrived.
    let got = p
        .remote
        .call(Probe::Recorded, SOON)
        .await
        .expect("the probe reports what it got");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "duplicated or reordered: {got:?}"
    );
    assert!(got.first().is_some_and(|&n| n < sever_at), "{got:?}");
    assert!(
        got.last().is_some_and(|&n| n == sent - 1),
        "the last cast is missing: {got:?}"
    );
    dead_letters += drain(&mut p.a_events)
        .iter()
        .map(|e| match e {
            NodeEvent::DeadLetter { count, .. } => *count,
            _ => 0,
        })
        .sum::<u64>();
    // Each cast arrived, failed, became a dead letter, or was lost in
    // flight: never two of these.
    assert!(
        got.len() as u64 + failed + dead_letters <= sent,
        "{} delivered + {failed} failed + {dead_letters} dead letters > {sent} sent",
        got.len()
    );
    p.stop().await;
}
