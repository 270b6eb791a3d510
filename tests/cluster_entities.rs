//! Sharded entities and cluster singletons (issue 11): one live copy per
//! key, found from every node, started from its latest checkpoint when its
//! owner shuts down, leaves or changes with a join; keep-majority downing.

mod cluster_support;
#[path = "cluster_entities/regressions.rs"]
mod regressions;

use std::time::Duration;

use cluster_support::fast_config;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::checkpoint::CheckpointPolicy;
use ractor_otp::cluster::{ClusterError, EntitySpec, Node, NodeConfig, RemoteReply, SingletonSpec};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

const SOON: Duration = Duration::from_secs(10);
const CALL: Duration = Duration::from_secs(5);

/// A counter entity that says where it runs.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Counter {
    Add(u64, RemoteReply<u64>),
    Get(RemoteReply<u64>),
    Where(RemoteReply<String>),
    Bump(u64),
}

struct CounterActor {
    node: String,
}

impl Actor for CounterActor {
    type Msg = Counter;
    type State = u64;
    type Arguments = u64;
    async fn pre_start(&self, _: ActorRef<Counter>, start: u64) -> Result<u64, ActorProcessingErr> {
        Ok(start)
    }
    async fn handle(
        &self,
        _: ActorRef<Counter>,
        msg: Counter,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Counter::Add(k, r) => {
                *n += k;
                r.send(*n);
            }
            Counter::Get(r) => {
                r.send(*n);
            }
            Counter::Where(r) => {
                r.send(self.node.clone());
            }
            Counter::Bump(k) => *n += k,
        }
        Ok(())
    }
}

/// A node hosting `counters` (kind `counter`) with the default spec.
async fn host(config: NodeConfig) -> Node {
    host_with(config, |spec| spec).await
}

/// A node hosting `counters` (kind `counter`), its spec adjusted by `tune`.
async fn host_with(config: NodeConfig, tune: impl FnOnce(EntitySpec) -> EntitySpec) -> Node {
    let node = Node::start(config).await.expect("start");
    let name = node.name().to_string();
    node.register_kind("counter", move |_key: &str| CounterActor {
        node: name.clone(),
    })
    .expect("kind");
    let spec = EntitySpec::new("counters", "counter")
        .args(&0u64)
        .expect("args");
    node.entities(tune(spec)).await.expect("entities");
    node
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + SOON;
    while !done() {
        assert!(Instant::now() < deadline, "not within {SOON:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Nodes that all see each other's hosts.
async fn cluster(names: &[&str]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for name in names {
        let mut cfg = fast_config(name);
        if let Some(first) = nodes.first() {
            cfg = cfg.seeds([first.local_addr()]);
        }
        nodes.push(host(cfg).await);
    }
    settled(&nodes).await;
    nodes
}

/// Waits until every node's view of the counters' owner agrees.
async fn settled(nodes: &[Node]) {
    let n = nodes.len();
    for node in nodes {
        eventually("a full mesh", || {
            node.members().len() == n - 1 && node.peers().iter().all(|p| p.down_reason.is_none())
        })
        .await;
    }
    eventually("every host seen everywhere", || {
        (0..20).all(|k| {
            let owners: Vec<Option<String>> = nodes
                .iter()
                .map(|x| x.entity::<Counter>("counters", &format!("k{k}")).owner())
                .collect();
            owners.iter().all(|o| o.is_some() && *o == owners[0])
        }) && nodes.iter().all(|x| {
            // Every node's hosts are in every view.
            (0..40)
                .map(|k| x.entity::<Counter>("counters", &format!("k{k}")).owner())
                .collect::<std::collections::HashSet<_>>()
                .len()
                == n
        })
    })
    .await;
}

async fn add(node: &Node, key: &str, k: u64) -> Result<u64, ClusterError> {
    node.entity::<Counter>("counters", key)
        .call(|r| Counter::Add(k, r), CALL)
        .await
}

async fn get(node: &Node, key: &str) -> u64 {
    node.entity::<Counter>("counters", key)
        .call(Counter::Get, CALL)
        .await
        .expect("get")
}

async fn running_on(node: &Node, key: &str) -> String {
    node.entity::<Counter>("counters", key)
        .call(Counter::Where, CALL)
        .await
        .expect("where")
}

/// A key that `owner` owns in `node`'s view.
fn key_owned_by(node: &Node, owner: &str) -> String {
    (0..1000)
        .map(|k| format!("key-{k}"))
        .find(|k| node.entity::<Counter>("counters", k).owner().as_deref() == Some(owner))
        .expect("some key is owned by every node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_actor_per_key_reached_from_every_node() {
    let nodes = cluster(&["a", "b", "c"]).await;
    for k in 0..12 {
        let key = format!("k{k}");
        for node in &nodes {
            add(node, &key, 1).await.expect("add");
        }
        assert_eq!(
            get(&nodes[0], &key).await,
            3,
            "{key}: one copy took all three"
        );
        let owner = nodes[1]
            .entity::<Counter>("counters", &key)
            .owner()
            .expect("owner");
        assert_eq!(running_on(&nodes[2], &key).await, owner);
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_shuts_down_or_leaves_hands_its_keys_over_with_their_state() {
    let nodes = cluster(&["a", "b", "c"]).await;
    let on_c = key_owned_by(&nodes[0], "c");
    let on_b = key_owned_by(&nodes[0], "b");
    assert_eq!(add(&nodes[0], &on_c, 5).await.expect("add"), 5);
    assert_eq!(add(&nodes[0], &on_b, 7).await.expect("add"), 7);
    assert_eq!(running_on(&nodes[0], &on_c).await, "c");

    nodes[2].shutdown().await;
    for n in &nodes[..2] {
        eventually("c gone from the placement", || {
            n.entity::<Counter>("counters", &on_c).owner().as_deref() != Some("c")
        })
        .await;
    }
    assert_eq!(
        add(&nodes[1], &on_c, 1)
            .await
            .expect("add after c shut down"),
        6
    );
    assert_ne!(running_on(&nodes[0], &on_c).await, "c");

    nodes[1].leave().await;
    eventually("b gone from the placement", || {
        nodes[0]
            .entity::<Counter>("counters", &on_b)
            .owner()
            .as_deref()
            == Some("a")
    })
    .await;
    assert_eq!(add(&nodes[0], &on_b, 1).await.expect("add after b left"), 8);
    assert_eq!(get(&nodes[0], &on_c).await, 6);
    nodes[0].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_moves_about_a_third_of_the_keys_and_loses_no_state() {
    let two = cluster(&["a", "b"]).await;
    let keys: Vec<String> = (0..60).map(|k| format!("j{k}")).collect();
    for key in &keys {
        assert_eq!(add(&two[0], key, 1).await.expect("add"), 1);
    }
    let c = host(fast_config("c").seeds([two[0].local_addr()])).await;
    let all = vec![two[0].clone(), two[1].clone(), c.clone()];
    settled(&all).await;
    let mut moved = 0;
    for (i, key) in keys.iter().enumerate() {
        let from = &all[i % 3];
        assert_eq!(
            add(from, key, 1).await.expect("add after the join"),
            2,
            "{key}"
        );
        if running_on(from, key).await == "c" {
            moved += 1;
        }
    }
    assert!(
        (8..=32).contains(&moved),
        "{moved} of 60 keys moved to c (ideal 20)"
    );
    for n in all {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_singleton_runs_on_the_oldest_node_and_moves_with_its_state() {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut cfg = fast_config(name);
        if let Some(first) = nodes.first() {
            let first: &Node = first;
            cfg = cfg.seeds([first.local_addr()]);
        }
        let node = Node::start(cfg).await.expect("start");
        let me = name.to_string();
        node.register_kind("counter", move |_: &str| CounterActor { node: me.clone() })
            .expect("kind");
        node.singleton(SingletonSpec::new("leader", "counter", &100u64).expect("spec"))
            .await
            .expect("singleton");
        nodes.push(node);
        // Start times differ: a is the oldest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for n in &nodes {
        eventually("mesh", || n.members().len() == 2).await;
        eventually("every singleton host seen", || {
            n.singleton_ref::<Counter>("leader").owner().as_deref() == Some("a")
        })
        .await;
    }
    let leader = nodes[2].singleton_ref::<Counter>("leader");
    assert_eq!(leader.call(Counter::Where, CALL).await.expect("where"), "a");
    assert_eq!(
        leader
            .call(|r| Counter::Add(1, r), CALL)
            .await
            .expect("add"),
        101
    );
    assert_eq!(
        nodes[1]
            .singleton_ref::<Counter>("leader")
            .call(Counter::Get, CALL)
            .await
            .expect("get"),
        101
    );

    nodes[0].leave().await;
    eventually("b is the oldest now", || {
        leader.owner().as_deref() == Some("b")
    })
    .await;
    assert_eq!(leader.call(Counter::Where, CALL).await.expect("where"), "b");
    assert_eq!(
        leader
            .call(|r| Counter::Add(1, r), CALL)
            .await
            .expect("add"),
        102
    );
    for n in &nodes[1..] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_and_bad_arguments_are_clear_errors() {
    let a = Node::start(fast_config("a")).await.expect("start");
    let err = a
        .entities(EntitySpec::new("things", "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::UnknownKind { ref kind } if kind == "nope"),
        "{err}"
    );
    assert!(err.to_string().contains("register_kind"), "{err}");

    let me = "a".to_string();
    a.register_kind("counter", move |_: &str| CounterActor { node: me.clone() })
        .expect("kind");
    // The counter's arguments are a u64; these are a string.
    a.entities(
        EntitySpec::new("counters", "counter")
            .args(&"not a number")
            .expect("args"),
    )
    .await
    .expect("entities");
    let err = add(&a, "x", 1).await.unwrap_err();
    assert!(matches!(err, ClusterError::Refused { .. }), "{err}");
    let err = a
        .entities(EntitySpec::new("counters", "counter"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::AlreadyHosted(_)), "{err}");

    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_are_held_in_order_while_no_owner_is_reachable_then_delivered() {
    // Nobody hosts the type yet: casts are held by the handle (and its
    // clones), in order, up to the bound; past it they are handed back.
    let lonely = Node::start(fast_config("b")).await.expect("start");
    let x = lonely.entity::<Counter>("counters", "x");
    x.cast(Counter::Bump(1)).expect("held");
    x.clone().cast(Counter::Bump(2)).expect("held");
    for _ in 2..ractor_otp::cluster::MAX_HELD_CASTS {
        x.cast(Counter::Bump(0)).expect("held");
    }
    let err = x.cast(Counter::Bump(100)).unwrap_err();
    assert!(
        matches!(err.error(), ClusterError::EntityUnavailable { reason, .. } if reason.contains("already held")),
        "{}",
        err.error()
    );
    // A host appears: the held casts go to it, in order, once.
    lonely
        .register_kind("counter", |_: &str| CounterActor { node: "b".into() })
        .expect("kind");
    lonely
        .entities(
            EntitySpec::new("counters", "counter")
                .args(&0u64)
                .expect("args"),
        )
        .await
        .expect("entities");
    let deadline = Instant::now() + SOON;
    loop {
        if let Ok(n) = x.call(Counter::Get, CALL).await {
            if n == 3 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the held casts were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lonely.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_majority_a_node_alone_in_a_tie_without_the_smallest_name_stops_its_entities() {
    let nodes = cluster(&["a", "b"]).await;
    let on_b = key_owned_by(&nodes[0], "b");
    assert_eq!(add(&nodes[1], &on_b, 1).await.expect("add"), 1);

    // a goes away without leaving: b knows 2 members, reaches 1 and does
    // not hold the smallest name: it stops its entities and starts none.
    nodes[0].shutdown().await;
    eventually("b sees a down", || {
        nodes[1].peers().iter().all(|p| p.down_reason.is_some())
    })
    .await;
    let err = add(&nodes[1], &on_b, 1).await.unwrap_err();
    // Refused before the entity stopped (its save is refused) or after
    // (it is not started): either way the caller is told why, and about
    // the entity, not an internal name.
    use ractor_otp::cluster::Refusal;
    assert!(
        matches!(&err, ClusterError::Refused { refusal: Refusal::EntityUnavailable(why) | Refusal::NotSaved(why), actor, .. }
            if why.contains("minority") && actor == &format!("counters/{on_b}")),
        "{err}"
    );
    nodes[1].shutdown().await;

    // With a planned leave, the one left keeps the majority.
    let nodes = cluster(&["a", "b"]).await;
    let on_b = key_owned_by(&nodes[0], "b");
    assert_eq!(add(&nodes[1], &on_b, 1).await.expect("add"), 1);
    nodes[0].leave().await;
    eventually("a has left b's view", || {
        nodes[1]
            .members()
            .iter()
            .all(|m| m.status == ractor_otp::cluster::MemberStatus::Left)
    })
    .await;
    assert_eq!(add(&nodes[1], &on_b, 1).await.expect("add after a left"), 2);
    nodes[1].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_checkpoint_policies_save_on_handover() {
    // With a checkpoint only on request, a handover still carries the
    // state: the old owner saves when it stops.
    let mk = |name: &'static str, seed: Option<std::net::SocketAddr>| async move {
        let mut cfg = fast_config(name);
        if let Some(s) = seed {
            cfg = cfg.seeds([s]);
        }
        let node = Node::start(cfg).await.expect("start");
        node.register_kind("counter", move |_: &str| CounterActor { node: name.into() })
            .expect("kind");
        node.entities(
            EntitySpec::new("counters", "counter")
                .args(&0u64)
                .expect("args")
                .checkpoint(CheckpointPolicy::OnRequest),
        )
        .await
        .expect("entities");
        node
    };
    let a = mk("a", None).await;
    let b = mk("b", Some(a.local_addr())).await;
    settled(&[a.clone(), b.clone()]).await;
    let on_b = key_owned_by(&a, "b");
    for _ in 0..3 {
        add(&a, &on_b, 2).await.expect("add");
    }
    b.leave().await;
    eventually("b gone from a's placement", || {
        a.entity::<Counter>("counters", &on_b).owner().as_deref() == Some("a")
    })
    .await;
    assert_eq!(add(&a, &on_b, 1).await.expect("add after b left"), 7);
    a.shutdown().await;
}

/// An entity whose state grows on request.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Blob {
    Grow(usize, RemoteReply<usize>),
}

struct BlobActor;

impl Actor for BlobActor {
    type Msg = Blob;
    type State = Vec<u8>;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Blob>, _: ()) -> Result<Vec<u8>, ActorProcessingErr> {
        Ok(Vec::new())
    }
    async fn handle(
        &self,
        _: ActorRef<Blob>,
        msg: Blob,
        state: &mut Vec<u8>,
    ) -> Result<(), ActorProcessingErr> {
        let Blob::Grow(n, reply) = msg;
        state.resize(state.len() + n, 7);
        reply.send(state.len());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_larger_than_a_frame_is_refused_and_the_entity_keeps_its_saved_state() {
    let a = Node::start(fast_config("a").max_frame_size(64 * 1024))
        .await
        .expect("start");
    a.register_kind("blob", |_: &str| BlobActor).expect("kind");
    a.entities(EntitySpec::new("blobs", "blob"))
        .await
        .expect("entities");
    let blob = a.entity::<Blob>("blobs", "x");
    assert_eq!(
        blob.call(|r| Blob::Grow(10, r), CALL).await.expect("grow"),
        10
    );
    let err = blob
        .call(|r| Blob::Grow(100_000, r), CALL)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, ClusterError::Refused { refusal: ractor_otp::cluster::Refusal::NotSaved(why), .. } if why.contains("over the store's limit")),
        "{text}"
    );
    // The failed entity starts again from its last saved state (a call
    // that reached its mailbox as it failed is refused: retried).
    let mut answer = None;
    for _ in 0..20 {
        if let Ok(n) = blob.call(|r| Blob::Grow(5, r), CALL).await {
            answer = Some(n);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(answer, Some(15));
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_majority_stops_counting_a_member_down_long_enough_so_a_later_leave_keeps_it_serving() {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut cfg = fast_config(name).remove_down_after(Duration::from_millis(300));
        if let Some(first) = nodes.first() {
            let first: &Node = first;
            cfg = cfg.seeds([first.local_addr()]);
        }
        nodes.push(host(cfg).await);
    }
    settled(&nodes).await;
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.entity_hosts("counters").len())
            .collect::<Vec<_>>(),
        [3, 3, 3]
    );
    let on_c = key_owned_by(&nodes[0], "c");
    assert_eq!(add(&nodes[2], &on_c, 1).await.expect("add"), 1);

    // a goes away without leaving (a crash, as b and c see it), then b
    // leaves. Once a has been down for 300 ms, c and b no longer count it,
    // so c alone after b's leave is the whole cluster, not a minority.
    nodes[0].shutdown().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(add(&nodes[2], &on_c, 1).await.expect("add with a down"), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    nodes[1].leave().await;
    eventually("b has left c's view", || {
        nodes[2]
            .members()
            .iter()
            .any(|m| m.name == "b" && m.status == ractor_otp::cluster::MemberStatus::Left)
    })
    .await;
    assert_eq!(add(&nodes[2], &on_c, 1).await.expect("add after b left"), 3);
    nodes[2].shutdown().await;
}
