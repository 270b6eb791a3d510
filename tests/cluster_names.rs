//! Cluster-wide names (Erlang's `global`) and process groups (`pg`): read
//! from each node's replicated view, released with their actor or node,
//! conflicts after a partition settled alike on every node (two nodes, and
//! three split 2–1 with every dial crossing a fault proxy), groups routed
//! over the members of every node.

mod cluster_support;

use std::collections::HashMap;
use std::time::Duration;

use cluster_support::proxy::{Mode, Proxy};
use cluster_support::{expect_down, expect_up, fast_config};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{ClusterError, GroupRouting, Node, NodeEvent, NodeEvents, RemoteReply};
use ractor_otp::Pool;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const SOON: Duration = Duration::from_secs(5);

/// What the tag actor gets: a number to report with its tag.
#[derive(Debug, Clone, Serialize, Deserialize, ractor_otp::RemoteMessage)]
struct Hit(u64);

/// Reports every hit to the test with its own label.
#[derive(Clone)]
struct Tagger;

impl Actor for Tagger {
    type Msg = Hit;
    type State = (String, mpsc::UnboundedSender<(String, u64)>);
    type Arguments = (String, mpsc::UnboundedSender<(String, u64)>);
    async fn pre_start(
        &self,
        _: ActorRef<Hit>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }
    async fn handle(
        &self,
        _: ActorRef<Hit>,
        Hit(n): Hit,
        (label, tx): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = tx.send((label.clone(), n));
        Ok(())
    }
}

async fn tagger(label: &str, tx: &mpsc::UnboundedSender<(String, u64)>) -> ActorRef<Hit> {
    Actor::spawn(None, Tagger, (label.to_string(), tx.clone()))
        .await
        .expect("spawn")
        .0
}

/// Three nodes in a mesh (b and c join through a).
async fn mesh() -> (Node, Node, Node) {
    let a = Node::start(fast_config("a")).await.expect("a");
    let b = Node::start(fast_config("b").seeds([a.local_addr()]))
        .await
        .expect("b");
    let c = Node::start(fast_config("c").seeds([a.local_addr()]))
        .await
        .expect("c");
    for n in [&a, &b, &c] {
        eventually(|| n.members().len() == 2 && n.peers().iter().all(|p| p.down_reason.is_none()))
            .await;
    }
    (a, b, c)
}

/// Waits (bounded) until `done` holds.
async fn eventually(done: impl Fn() -> bool) {
    let deadline = Instant::now() + SOON;
    while !done() {
        assert!(Instant::now() < deadline, "not within {SOON:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<(String, u64)>) -> (String, u64) {
    timeout(SOON, rx.recv())
        .await
        .expect("a hit within the bound")
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_seen_everywhere_reached_from_anywhere_and_held_once() {
    let (a, b, c) = mesh().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let actor = tagger("on-a", &tx).await;
    a.register("db", actor.clone()).expect("free");
    eventually(|| b.whereis("db").is_some() && c.whereis("db").is_some()).await;
    assert_eq!(c.whereis("db").as_deref(), Some("a"));
    c.named::<Hit>("db").cast(Hit(1)).expect("reaches a");
    assert_eq!(recv(&mut rx).await, ("on-a".into(), 1));
    a.named::<Hit>("db").cast(Hit(2)).expect("local holder");
    assert_eq!(recv(&mut rx).await, ("on-a".into(), 2));
    // Held once.
    let other = tagger("on-b", &tx).await;
    let taken = b.register("db", other.clone());
    assert!(
        matches!(&taken, Err(ClusterError::NameTaken { name, node }) if name == "db" && node == "a"),
        "{taken:?}"
    );
    // Bad names.
    for bad in [String::new(), "x".repeat(1025)] {
        assert!(matches!(
            b.register(&bad, other.clone()),
            Err(ClusterError::InvalidName(_))
        ));
    }
    // The actor ends: the name is released everywhere; a NamedRef follows
    // a re-registration on another node.
    let named = c.named::<Hit>("db");
    actor.stop(None);
    eventually(|| b.whereis("db").is_none() && c.whereis("db").is_none()).await;
    let back = named.cast(Hit(3)).expect_err("nobody holds it");
    assert!(matches!(back.error(), ClusterError::NotRegistered { .. }));
    assert!(matches!(back.into_message(), Hit(3)), "handed back");
    b.register("db", other).expect("free again");
    eventually(|| c.whereis("db").as_deref() == Some("b")).await;
    named.cast(Hit(4)).expect("follows to b");
    assert_eq!(recv(&mut rx).await, ("on-b".into(), 4));
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_names_and_group_members_vanish_when_it_goes_down() {
    let (a, b, c) = mesh().await;
    let (tx, _rx) = mpsc::unbounded_channel();
    c.register("svc", tagger("c", &tx).await).expect("free");
    c.join_group("g", tagger("c", &tx).await).expect("join");
    a.join_group("g", tagger("a", &tx).await).expect("join");
    eventually(|| b.whereis("svc").is_some() && b.group::<Hit>("g").members().len() == 2).await;
    c.shutdown().await;
    eventually(|| b.whereis("svc").is_none() && b.group::<Hit>("g").members().len() == 1).await;
    eventually(|| a.whereis("svc").is_none() && a.group::<Hit>("g").members().len() == 1).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_route_over_every_nodes_members() {
    let (a, b, c) = mesh().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (node, label) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        node.join_group("workers", tagger(label, &tx).await)
            .expect("join");
    }
    let g = b.group::<Hit>("workers");
    eventually(|| g.members().len() == 3).await;
    // Round robin: every member gets its share.
    for i in 0..30 {
        g.cast(Hit(i)).expect("routed");
    }
    let mut per: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        *per.entry(recv(&mut rx).await.0).or_default() += 1;
    }
    assert_eq!(
        per.values().copied().collect::<Vec<_>>(),
        vec![10; 3],
        "{per:?}"
    );
    // Keyed: the same key always reaches the same member.
    for _ in 0..5 {
        g.cast_keyed("user-42", Hit(7)).expect("routed");
    }
    let first = recv(&mut rx).await.0;
    for _ in 0..4 {
        assert_eq!(recv(&mut rx).await.0, first);
    }
    // Broadcast reaches all; random routes too.
    assert_eq!(g.broadcast(Hit(9)), 3);
    for _ in 0..3 {
        recv(&mut rx).await;
    }
    g.clone()
        .routing(GroupRouting::Random)
        .cast(Hit(1))
        .expect("routed");
    recv(&mut rx).await;
    // An empty group hands the message back.
    let none = b
        .group::<Hit>("nobody")
        .cast(Hit(1))
        .expect_err("no member");
    assert!(matches!(none.error(), ClusterError::NoGroupMember { .. }));
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

async fn conflict(events: &mut NodeEvents) -> NodeEvent {
    let deadline = Instant::now() + SOON;
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .expect("a NameConflict within the bound")
            .expect("open");
        if matches!(e, NodeEvent::NameConflict { .. }) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_on_both_sides_of_a_partition_is_settled_alike_when_it_heals() {
    let b = Node::start(fast_config("b")).await.expect("b");
    let proxy = Proxy::start(b.local_addr()).await;
    let a = Node::start(fast_config("a").advertise(proxy.reverse_addr()))
        .await
        .expect("a");
    proxy.set_reverse_target(a.local_addr());
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();
    a.connect(proxy.addr()).await.expect("connect");
    expect_up(&mut on_a, "b", SOON).await;
    expect_up(&mut on_b, "a", SOON).await;
    proxy.set(Mode::Drop);
    expect_down(&mut on_a, "b", SOON).await;
    expect_down(&mut on_b, "a", SOON).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    a.register("leader", tagger("a", &tx).await)
        .expect("free on a");
    tokio::time::sleep(Duration::from_millis(20)).await;
    b.register("leader", tagger("b", &tx).await)
        .expect("free on b");
    proxy.set(Mode::Pass);
    let want = NodeEvent::NameConflict {
        name: "leader".into(),
        winner: "a".into(),
        loser: "b".into(),
    };
    assert_eq!(conflict(&mut on_a).await, want);
    assert_eq!(conflict(&mut on_b).await, want);
    eventually(|| {
        a.whereis("leader").as_deref() == Some("a") && b.whereis("leader").as_deref() == Some("a")
    })
    .await;
    b.named::<Hit>("leader")
        .cast(Hit(5))
        .expect("reaches the winner");
    assert_eq!(recv(&mut rx).await, ("a".into(), 5));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_exported_into_a_group_form_a_cluster_pool() {
    let (a, b, c) = mesh().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (node, label) in [(&a, "pool-a"), (&b, "pool-b")] {
        let tx = tx.clone();
        let pool = Pool::builder(Tagger, move |_| (label.to_string(), tx.clone()))
            .size(2)
            .spawn(None)
            .await
            .expect("a pool");
        node.export_pool("jobs", &pool).expect("exported");
    }
    let jobs = c.group::<Hit>("jobs");
    eventually(|| jobs.members().len() == 2).await;
    for i in 0..20 {
        jobs.cast(Hit(i)).expect("routed to a pool");
    }
    let mut per: HashMap<String, usize> = HashMap::new();
    for _ in 0..20 {
        *per.entry(recv(&mut rx).await.0).or_default() += 1;
    }
    assert_eq!(per.get("pool-a"), Some(&10), "{per:?}");
    assert_eq!(per.get("pool-b"), Some(&10), "{per:?}");
    // A node that goes down takes its pool out of the group at once.
    b.shutdown().await;
    eventually(|| jobs.members().len() == 1).await;
    for i in 0..5 {
        jobs.cast(Hit(i)).expect("the remaining pool");
    }
    for _ in 0..5 {
        assert_eq!(recv(&mut rx).await.0, "pool-a");
    }
    a.shutdown().await;
    c.shutdown().await;
}

/// Asks for twice a number.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
struct Ask(u64, RemoteReply<u64>);

struct Doubler;

impl Actor for Doubler {
    type Msg = Ask;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Ask>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<Ask>,
        Ask(n, reply): Ask,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        reply.send(2 * n);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_groups_are_called_on_this_node_and_across_nodes_alike() {
    let (a, b, c) = mesh().await;
    let (doubler, _) = Actor::spawn(None, Doubler, ()).await.expect("spawn");
    a.register("dbl", doubler.clone()).expect("free");
    a.join_group("doublers", doubler).expect("join");
    let (other, _) = Actor::spawn(None, Doubler, ()).await.expect("spawn");
    b.join_group("doublers", other).expect("join");
    eventually(|| c.whereis("dbl").is_some() && a.group::<Ask>("doublers").members().len() == 2)
        .await;
    // The holder's own node calls it as any other node does.
    for node in [&a, &c] {
        let got = node.named::<Ask>("dbl").call(|r| Ask(21, r), SOON).await;
        assert_eq!(got, Ok(42), "from {}", node.name());
    }
    // Group calls reach the local and the remote member.
    let g = a.group::<Ask>("doublers");
    for n in 0..4 {
        assert_eq!(g.call(|r| Ask(n, r), SOON).await, Ok(2 * n));
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_routing_follows_the_members_weights() {
    let (a, b, c) = mesh().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    a.join_group_weighted("w", tagger("a", &tx).await, 1)
        .expect("join");
    b.join_group_weighted("w", tagger("b", &tx).await, 1)
        .expect("join");
    c.join_group_weighted("w", tagger("c", &tx).await, 8)
        .expect("join");
    let g = a.group::<Hit>("w").routing(GroupRouting::Weighted);
    eventually(|| g.members().len() == 3).await;
    for i in 0..500 {
        g.cast(Hit(i)).expect("routed");
    }
    let mut per: HashMap<String, usize> = HashMap::new();
    for _ in 0..500 {
        *per.entry(recv(&mut rx).await.0).or_default() += 1;
    }
    // c's expected share is 8/10 (400); 300 is more than 7 standard
    // deviations below it.
    assert!(per.get("c").copied().unwrap_or(0) > 300, "{per:?}");
    assert!(
        per.get("a").copied().unwrap_or(0) > 0 && per.get("b").copied().unwrap_or(0) > 0,
        "{per:?}"
    );
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// A node whose advertised address is its own fault proxy: every dial to
/// it (gossip-driven ones included) crosses the proxy, so faulting the
/// proxy cuts every session dialed to this node.
async fn behind_proxy(name: &str) -> (Node, Proxy) {
    // Only the proxy's reverse listener is used: it leads to the node.
    let unused: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
    let proxy = Proxy::start(unused).await;
    let node = Node::start(fast_config(name).advertise(proxy.reverse_addr()))
        .await
        .expect("start a node");
    proxy.set_reverse_target(node.local_addr());
    (node, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_split_two_to_one_converges_when_it_heals() {
    let (a, pa) = behind_proxy("a").await;
    let (b, pb) = behind_proxy("b").await;
    let (c, pc) = behind_proxy("c").await;
    // a and b talk directly (b dialed a's listener, not its proxy), so the
    // proxies carry exactly the sessions with c: c dials a through a's
    // proxy, learns b from a's member list and dials it at b's advertised
    // address, its proxy (or b dials c's proxy; either way a proxy).
    b.connect(a.local_addr()).await.expect("b joins a");
    c.join(pa.reverse_addr()).await.expect("c joins through a");
    for n in [&a, &b, &c] {
        eventually(|| {
            n.members().len() == 2
                && n.peers()
                    .iter()
                    .all(|p| p.status == ractor_otp::cluster::PeerStatus::Up)
        })
        .await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.register("before", tagger("b", &tx).await)
        .expect("free everywhere");
    eventually(|| c.whereis("before").as_deref() == Some("b")).await;
    let mut on_a = a.subscribe();
    let mut on_b = b.subscribe();
    let mut on_c = c.subscribe();
    // A second subscription: waiting for one peer's events skips others'.
    let mut on_c2 = c.subscribe();

    // Partition {a, b} | {c}: bytes vanish, new connections are refused.
    for p in [&pa, &pb, &pc] {
        p.refuse(true);
        p.set(Mode::Drop);
    }
    for (events, peer) in [
        (&mut on_a, "c"),
        (&mut on_b, "c"),
        (&mut on_c, "a"),
        (&mut on_c2, "b"),
    ] {
        expect_down(events, peer, SOON).await;
    }
    assert!(
        a.peers()
            .iter()
            .any(|p| p.name == "b" && p.status == ractor_otp::cluster::PeerStatus::Up),
        "a and b stay connected"
    );
    // Each side registers "leader" (c first: the earlier registration) and
    // adds a member to group "g".
    let c_leader = tagger("c", &tx).await;
    c.register("leader", c_leader.clone())
        .expect("free on c's side");
    c.join_group("g", tagger("c", &tx).await)
        .expect("c joins g");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let a_leader = tagger("a", &tx).await;
    a.register("leader", a_leader.clone())
        .expect("free on a's side");
    a.join_group("g", tagger("a", &tx).await)
        .expect("a joins g");
    eventually(|| b.whereis("leader").as_deref() == Some("a")).await;
    assert_eq!(c.whereis("before"), None, "b's names vanished on c's side");

    // Heal.
    for p in [&pa, &pb, &pc] {
        p.set(Mode::Pass);
        p.refuse(false);
    }
    for (events, peer) in [
        (&mut on_a, "c"),
        (&mut on_b, "c"),
        (&mut on_c, "a"),
        (&mut on_c2, "b"),
    ] {
        expect_up(events, peer, SOON).await;
    }
    // Settled by the rule on both sides of the partition: c registered
    // first, so a gives the name up (its actor keeps running).
    let want = NodeEvent::NameConflict {
        name: "leader".into(),
        winner: "c".into(),
        loser: "a".into(),
    };
    assert_eq!(conflict(&mut on_a).await, want);
    assert_eq!(conflict(&mut on_c).await, want);
    for n in [&a, &b, &c] {
        eventually(|| {
            n.whereis("leader").as_deref() == Some("c")
                && n.whereis("before").as_deref() == Some("b")
                && n.group::<Hit>("g").members().len() == 2
        })
        .await;
    }
    assert_eq!(
        a_leader.get_status(),
        ractor::ActorStatus::Running,
        "the loser is unregistered, not killed"
    );
    a.named::<Hit>("leader")
        .cast(Hit(1))
        .expect("the name reaches the winner");
    assert_eq!(recv(&mut rx).await, ("c".into(), 1));
    b.named::<Hit>("before")
        .cast(Hit(2))
        .expect("a name from before the partition still works");
    assert_eq!(recv(&mut rx).await, ("b".into(), 2));
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
