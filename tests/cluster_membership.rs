//! Membership: nodes that join through one seed form a full mesh; two
//! nodes dialing each other at once settle on one session without a flap;
//! a planned leave is no failure, and reaches a member the leaving node
//! had no session with; a member heard of but never reached is forgotten
//! and no longer dialed; a second node claiming a live member's name from
//! another address is refused and the live session untouched.

mod cluster_support;

use std::time::Duration;

use cluster_support::{drain, export_probe, fast_config, Probe};
use ractor_otp::cluster::{
    ClusterError, DownReason, HandshakeError, MemberStatus, Node, NodeEvent, NodeEvents,
};
use tokio::time::{timeout, Instant};

/// Generous bound for the mesh to form and events to arrive.
const SOON: Duration = Duration::from_secs(5);

async fn start(name: &str) -> Node {
    Node::start(fast_config(name)).await.expect("start a node")
}

/// Waits until `node` sees `n` members `Up`.
async fn until_up_members(node: &Node, n: usize) {
    let deadline = Instant::now() + SOON;
    loop {
        let up = node
            .members()
            .iter()
            .filter(|m| m.status == MemberStatus::Up)
            .count();
        if up == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} sees {up} members up, not {n}: {:?}",
            node.name(),
            node.members()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event matching `pick` within `SOON`.
async fn next(events: &mut NodeEvents, what: &str, pick: impl Fn(&NodeEvent) -> bool) -> NodeEvent {
    let deadline = Instant::now() + SOON;
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {SOON:?}"))
            .expect("the node runs");
        if pick(&e) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_joining_through_one_seed_form_a_full_mesh() {
    let seed = start("seed").await;
    let mut joined_at_seed = seed.subscribe();
    let mut nodes = Vec::new();
    for i in 0..4 {
        let node = Node::start(fast_config(&format!("n{i}")).seeds([seed.local_addr()]))
            .await
            .expect("start with a seed");
        nodes.push(node);
    }
    for node in nodes.iter().chain(std::iter::once(&seed)) {
        until_up_members(node, 4).await;
    }
    for _ in 0..4 {
        next(&mut joined_at_seed, "MemberJoined", |e| {
            matches!(e, NodeEvent::MemberJoined { .. })
        })
        .await;
    }
    // Each member is known by where it listens.
    let n0 = nodes[0]
        .members()
        .into_iter()
        .find(|m| m.name == "seed")
        .expect("n0 knows the seed");
    assert_eq!(n0.addr, seed.local_addr());
    // Every pair can talk: n3 reaches n0 without anyone calling connect.
    let _probe = export_probe(&nodes[0], "probe").await;
    let remote = nodes[3]
        .lookup::<Probe>("n0", "probe")
        .await
        .expect("n3 reaches n0 through the mesh");
    assert_eq!(
        remote
            .call(|r| Probe::Echo(5, r), SOON)
            .await
            .expect("call"),
        5
    );
    for node in nodes.iter().chain(std::iter::once(&seed)) {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dialing_each_other_at_once_settle_on_one_session_without_a_flap() {
    for round in 0..10 {
        let a = start("a").await;
        let b = start("b").await;
        let _probe_a = export_probe(&a, "probe").await;
        let _probe_b = export_probe(&b, "probe").await;
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        let (ra, rb) = tokio::join!(a.connect(b.local_addr()), b.connect(a.local_addr()));
        ra.expect("a's connect returns the session");
        rb.expect("b's connect returns the session");
        // A call right after connect returns never meets a closed session.
        let (la, lb) = tokio::join!(
            a.lookup::<Probe>("b", "probe"),
            b.lookup::<Probe>("a", "probe")
        );
        let (la, lb) = (la.expect("lookup from a"), lb.expect("lookup from b"));
        let (x, y) = tokio::join!(
            la.call(|r| Probe::Echo(1, r), SOON),
            lb.call(|r| Probe::Echo(2, r), SOON)
        );
        assert_eq!((x, y), (Ok(1), Ok(2)), "round {round}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (events, peer) in [(&mut on_a, "b"), (&mut on_b, "a")] {
            let link: Vec<NodeEvent> = drain(events)
                .into_iter()
                .filter(|e| matches!(e, NodeEvent::Up { .. } | NodeEvent::Down { .. }))
                .collect();
            assert_eq!(
                link,
                vec![NodeEvent::Up { peer: peer.into() }],
                "round {round}: exactly one Up, no Down"
            );
        }
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_leave_is_no_failure_and_is_not_redialed() {
    let a = start("a").await;
    let b = Node::start(fast_config("b").seeds([a.local_addr()]))
        .await
        .expect("start b");
    let c = Node::start(fast_config("c").seeds([a.local_addr()]))
        .await
        .expect("start c");
    until_up_members(&a, 2).await;
    until_up_members(&b, 2).await;
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();
    c.leave().await;
    for events in [&mut on_a, &mut on_b] {
        let e = next(events, "MemberLeft", |e| {
            matches!(e, NodeEvent::MemberLeft { .. })
        })
        .await;
        assert_eq!(e, NodeEvent::MemberLeft { member: "c".into() });
    }
    // No failure reason, and nobody dials c again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (node, events) in [(&a, &mut on_a), (&b, &mut on_b)] {
        let downs: Vec<NodeEvent> = drain(events)
            .into_iter()
            .filter(
                |e| matches!(e, NodeEvent::Down { reason, .. } if *reason != DownReason::PeerLeft),
            )
            .collect();
        assert_eq!(downs, vec![], "a leave is no failure");
        let left = node
            .members()
            .into_iter()
            .find(|m| m.name == "c")
            .expect("c is remembered");
        assert_eq!(left.status, MemberStatus::Left);
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_claiming_a_live_members_name_is_refused() {
    let a = start("a").await;
    let b = start("b").await;
    b.connect(a.local_addr()).await.expect("b joins a");
    let _probe = export_probe(&b, "probe").await;
    let remote = a.lookup::<Probe>("b", "probe").await.expect("lookup");
    let mut on_a = a.subscribe();

    let impostor = start("b").await;
    let err = impostor
        .connect(a.local_addr())
        .await
        .expect_err("a live member holds the name");
    assert!(
        matches!(
            &err,
            ClusterError::Handshake { reason: HandshakeError::DuplicateName { name, live }, .. }
                if name == "b" && *live == b.local_addr()
        ),
        "{err}"
    );
    // The live session is untouched.
    assert_eq!(
        remote
            .call(|r| Probe::Echo(3, r), SOON)
            .await
            .expect("call"),
        3
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !drain(&mut on_a)
            .iter()
            .any(|e| matches!(e, NodeEvent::Down { .. })),
        "the live session was not disturbed"
    );
    impostor.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_goes_down_is_redialed_by_the_side_that_accepted() {
    let a = start("a").await;
    let b = start("b").await;
    a.connect(b.local_addr()).await.expect("a dials b");
    let mut on_b = b.subscribe();
    // a shuts down; a new "a" starts on the same address: only b, which
    // knows where a listens, can bring the session back.
    let addr = a.local_addr();
    a.shutdown().await;
    next(
        &mut on_b,
        "Down of a",
        |e| matches!(e, NodeEvent::Down { peer, .. } if peer == "a"),
    )
    .await;
    let a2 = Node::start(fast_config("a").listen(addr))
        .await
        .expect("a again on its address");
    next(
        &mut on_b,
        "Up of a",
        |e| matches!(e, NodeEvent::Up { peer } if peer == "a"),
    )
    .await;
    a2.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_list_naming_an_unreachable_node_never_blocks_the_join() {
    use cluster_support::proxy::{Mode, Proxy};
    let a = start("a").await;
    // x reaches a through a proxy; then the proxy drops everything and x
    // stops: a still lists x as a member for a moment.
    let proxy = Proxy::start(a.local_addr()).await;
    let x = Node::start(fast_config("x").advertise(proxy.reverse_addr()))
        .await
        .expect("x");
    proxy.set_reverse_target(x.local_addr());
    x.connect(proxy.addr()).await.expect("x joins a");
    until_up_members(&a, 1).await;
    proxy.set(Mode::Drop);
    proxy.refuse(true);
    x.shutdown().await;
    // b joins through a now and hears of x, which nobody can reach.
    let b = start("b").await;
    let started = Instant::now();
    b.join(a.local_addr()).await.expect("b joins a");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the join did not wait"
    );
    let _probe = export_probe(&a, "probe").await;
    let remote = b.lookup::<Probe>("a", "probe").await.expect("lookup");
    assert_eq!(
        remote
            .call(|r| Probe::Echo(8, r), SOON)
            .await
            .expect("call"),
        8
    );
    // b tried x (or never heard of it, if a noticed first): either way x is
    // not Up, and b's session with a never went down.
    let seen_x = b.members().into_iter().find(|m| m.name == "x");
    assert!(
        seen_x.as_ref().is_none_or(|m| m.status != MemberStatus::Up),
        "{seen_x:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_another_form_of_a_connected_peers_address_returns_the_session() {
    let a = Node::start(fast_config("a").listen("0.0.0.0:0".parse().expect("an address")))
        .await
        .expect("a on the wildcard address");
    let b = start("b").await;
    let mut on_b = b.subscribe();
    a.connect(b.local_addr()).await.expect("a dials b");
    until_up_members(&b, 1).await;
    // b reaches a by 127.0.0.1, while a advertises 0.0.0.0: the session a
    // dialed is kept and b's connect returns it.
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], a.local_addr().port()));
    let info = b.connect(loopback).await.expect("the session is returned");
    assert_eq!(info.name, "a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let downs: Vec<NodeEvent> = drain(&mut on_b)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Down { .. }))
        .collect();
    assert_eq!(downs, vec![], "no flap");
    a.shutdown().await;
    b.shutdown().await;
}

/// A node that advertises a proxy refusing every connection: members that
/// learn of it from a list cannot reach it (nor it them) until the proxy
/// lets connections through.
async fn behind_refusing_proxy(name: &str) -> (Node, cluster_support::proxy::Proxy) {
    let unused: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
    let proxy = cluster_support::proxy::Proxy::start(unused).await;
    proxy.refuse(true);
    let node = Node::start(fast_config(name).advertise(proxy.reverse_addr()))
        .await
        .expect("start a node");
    proxy.set_reverse_target(node.local_addr());
    (node, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_reaches_a_member_it_had_no_session_with() {
    let a = start("a").await;
    // b and c both reach a directly, but each advertises a proxy that
    // refuses connections: they hear of each other and cannot connect.
    let (b, pb) = behind_refusing_proxy("b").await;
    let (c, _pc) = behind_refusing_proxy("c").await;
    b.connect(a.local_addr()).await.expect("b joins a");
    c.connect(a.local_addr()).await.expect("c joins a");
    until_up_members(&a, 2).await;
    let deadline = Instant::now() + SOON;
    // Each hears of the other from a's member list (c must know b to tell
    // it goodbye).
    while !b.members().iter().any(|m| m.name == "c") || !c.members().iter().any(|m| m.name == "b") {
        assert!(
            Instant::now() < deadline,
            "b and c hear of each other from a"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c_on_b = b.members().into_iter().find(|m| m.name == "c").expect("c");
    assert_eq!(c_on_b.status, MemberStatus::Joining, "b cannot reach c");
    let mut on_b = b.subscribe();
    // b becomes reachable; c leaves at once, before any redial of its own.
    pb.refuse(false);
    c.leave().await;
    next(
        &mut on_b,
        "MemberLeft of c",
        |e| matches!(e, NodeEvent::MemberLeft { member } if member == "c"),
    )
    .await;
    let c_on_b = b.members().into_iter().find(|m| m.name == "c").expect("c");
    assert_eq!(
        c_on_b.status,
        MemberStatus::Left,
        "told, though it had no session"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_heard_of_but_never_reached_is_forgotten_and_no_longer_dialed() {
    let a = start("a").await;
    let (b, _pb) = behind_refusing_proxy("b").await;
    let (x, px) = behind_refusing_proxy("x").await;
    x.connect(a.local_addr()).await.expect("x joins a");
    b.connect(a.local_addr()).await.expect("b joins a");
    // b hears of x from a, dials it (refused every time), and after 16
    // attempts (half a second apart with the test settings) forgets it.
    let bound = Duration::from_secs(30);
    let deadline = Instant::now() + bound;
    while !b.members().iter().any(|m| m.name == "x") {
        assert!(Instant::now() < deadline, "b hears of x");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while b.members().iter().any(|m| m.name == "x") {
        assert!(
            Instant::now() < deadline,
            "b still lists x after {bound:?}: {:?}",
            b.members()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tried = px.reverse_attempts().len();
    assert!(tried >= 16, "b dialed x {tried} times before forgetting it");
    // Forgotten: no more dials (x's own dials to b cross b's proxy).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        px.reverse_attempts().len(),
        tried,
        "a forgotten member is not dialed again"
    );
    assert!(
        a.members()
            .iter()
            .any(|m| m.name == "x" && m.status == MemberStatus::Up),
        "x is still a member for a, which reaches it"
    );
    for n in [a, b, x] {
        n.shutdown().await;
    }
}

// A leaving node closes its sockets with the peer's casts still unread, so
// the peer's writer can fail (broken pipe) before its reader has seen the
// leave: the leave must still be read and be no failure. The race is won
// in some rounds only (about 1 in 10 before the fix), hence the rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_under_the_peers_writes_is_still_a_leave() {
    for round in 0..20 {
        let a = start("a").await;
        let b = start("b").await;
        let _probe = export_probe(&a, "probe").await;
        b.connect(a.local_addr()).await.expect("b joins a");
        let remote = b.lookup::<Probe>("a", "probe").await.expect("lookup");
        let mut on_b = b.subscribe();
        let writing = tokio_util::sync::CancellationToken::new();
        let caster = tokio::spawn({
            let writing = writing.clone();
            async move {
                let mut n = 0u64;
                while !writing.is_cancelled() {
                    let _ = remote.cast(Probe::Record(n));
                    n += 1;
                    if n % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.leave().await;
        let end = next(&mut on_b, "MemberLeft or Down of a", |e| {
            matches!(e, NodeEvent::MemberLeft { .. })
                || matches!(e, NodeEvent::Down { reason, .. } if *reason != DownReason::PeerLeft)
        })
        .await;
        writing.cancel();
        caster.await.expect("the caster ends");
        assert_eq!(
            end,
            NodeEvent::MemberLeft { member: "a".into() },
            "round {round}: a leave, not a failure"
        );
        b.shutdown().await;
    }
}

// Sixteen nodes joining through one seed dial each other at once about a
// hundred times per join (every node dials every member it hears of):
// each crossing pair settles inside the handshake, so no node ever sees a
// `Down` while the mesh forms (a flap was seen in about 1 join in 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_nodes_joining_through_one_seed_never_flap() {
    const NODES: usize = 16;
    for round in 0..10 {
        let seed = Node::start(ractor_otp::cluster::NodeConfig::new("n00").cookie("flap"))
            .await
            .expect("the seed");
        let mut watched = vec![seed.subscribe()];
        let addr = seed.local_addr();
        let mut nodes = vec![seed];
        for i in 1..NODES {
            let config = ractor_otp::cluster::NodeConfig::new(format!("n{i:02}"))
                .cookie("flap")
                .seeds([addr]);
            let node = Node::start(config).await.expect("a node");
            watched.push(node.subscribe());
            nodes.push(node);
        }
        for node in &nodes {
            until_up_members(node, NODES - 1).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (node, events) in nodes.iter().zip(&mut watched) {
            let downs: Vec<NodeEvent> = drain(events)
                .into_iter()
                .filter(|e| matches!(e, NodeEvent::Down { .. }))
                .collect();
            assert_eq!(downs, vec![], "round {round}: {} saw a flap", node.name());
        }
        for node in &nodes {
            node.leave().await;
        }
    }
}
