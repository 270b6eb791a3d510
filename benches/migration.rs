//! Benchmarks of entities, singletons and checkpoints (issue 11), each next
//! to its baseline in the same run (see `BENCHMARKS.md`):
//!
//! 1. `migration_call` (criterion): from node `b`, a `RemoteRef` call to an
//!    actor exported on node `a` (the baseline) vs an `EntityRef` call to
//!    an entity owned by `a` without a checkpoint per message
//!    (`CheckpointPolicy::OnRequest`) vs with one replicated to `b` after
//!    every message (the default; the reply waits for the replica).
//! 2. `migration_rebalance` (printed): the share of keys that move when a
//!    node joins N − 1 others, vs the ideal 1/N, over 100,000 keys.
//! 3. `migration_failover` (printed; three node processes of the
//!    `ractor-otp-node` program with default failure detection, and this
//!    process as a client): the time from a SIGKILL of a key's owner to the
//!    first answer from its new owner, and the same from a SIGSTOP
//!    (detection included), `MIGRATION_FAILOVER_ROUNDS` (default 5) rounds
//!    each, medians and maxima.
//!
//! `cargo bench --bench migration` runs all three;
//! `cargo bench --bench migration -- migration_failover` runs only (3).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::checkpoint::CheckpointPolicy;
use ractor_otp::cluster::{EntitySpec, Node, NodeConfig, RemoteRef, RemoteReply};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

mod common;
use common::{on_runtime, runtime};

const COOKIE: &str = "migration-bench";

#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Echo {
    Call(u64, RemoteReply<u64>),
}

/// Answers with the sum so far (a state worth checkpointing).
struct Summer;

impl Actor for Summer {
    type Msg = Echo;
    type State = u64;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Echo>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }
    async fn handle(
        &self,
        _: ActorRef<Echo>,
        msg: Echo,
        sum: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        let Echo::Call(n, reply) = msg;
        *sum = sum.wrapping_add(n);
        reply.send(*sum);
        Ok(())
    }
}

async fn start(name: &str, seed: Option<SocketAddr>) -> Node {
    let mut cfg = NodeConfig::new(name).cookie(COOKIE);
    if let Some(s) = seed {
        cfg = cfg.seeds([s]);
    }
    let node = Node::start(cfg).await.expect("node");
    node.register_kind("summer", |_: &str| Summer)
        .expect("kind");
    node.entities(EntitySpec::new("plain", "summer").checkpoint(CheckpointPolicy::OnRequest))
        .await
        .expect("entities");
    node.entities(EntitySpec::new("replicated", "summer"))
        .await
        .expect("entities");
    node
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "bench setup: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn bench_calls(c: &mut Criterion, rt: &Runtime) {
    let (a, b, remote, key) = rt.block_on(async {
        let a = start("a", None).await;
        let b = start("b", Some(a.local_addr())).await;
        let (summer, _) = Actor::spawn(None, Summer, ()).await.expect("spawn");
        a.export("summer", summer).expect("export");
        until("b sees a's hosts", || {
            (0..50).any(|k| {
                b.entity::<Echo>("plain", &format!("k{k}"))
                    .owner()
                    .as_deref()
                    == Some("a")
            })
        })
        .await;
        let key = (0..1000)
            .map(|k| format!("k{k}"))
            .find(|k| {
                b.entity::<Echo>("plain", k).owner().as_deref() == Some("a")
                    && b.entity::<Echo>("replicated", k).owner().as_deref() == Some("a")
            })
            .expect("a key owned by a");
        let remote: RemoteRef<Echo> = b.lookup("a", "summer").await.expect("lookup");
        (a, b, remote, key)
    });
    let timeout = Duration::from_secs(5);
    let mut group = c.benchmark_group("migration_call");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    /// Times `iters` calls made one after another by `call`.
    fn timed<F, Fut>(rt: &Runtime, iters: u64, call: F) -> Duration
    where
        F: Fn(u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        on_runtime(rt, async move {
            let start = Instant::now();
            for i in 0..iters {
                call(i).await;
            }
            start.elapsed()
        })
    }
    group.bench_function("remote_ref_call", |bench| {
        bench.iter_custom(|iters| {
            let remote = remote.clone();
            timed(rt, iters, move |i| {
                let remote = remote.clone();
                async move {
                    remote
                        .call(|r| Echo::Call(i, r), timeout)
                        .await
                        .expect("call");
                }
            })
        })
    });
    for (id, ty) in [
        ("entity_call_no_checkpoint", "plain"),
        ("entity_call_replicated_checkpoint", "replicated"),
    ] {
        let entity = b.entity::<Echo>(ty, &key);
        group.bench_function(id, |bench| {
            bench.iter_custom(|iters| {
                let entity = entity.clone();
                timed(rt, iters, move |i| {
                    let entity = entity.clone();
                    async move {
                        entity
                            .call(|r| Echo::Call(i, r), timeout)
                            .await
                            .expect("call");
                    }
                })
            })
        });
    }
    group.finish();
    rt.block_on(async {
        b.shutdown().await;
        a.shutdown().await;
    });
}

/// Share of keys moved to a joining node, measured through the same
/// placement the entities use (each node's view of the owner).
fn rebalance(rt: &Runtime) {
    rt.block_on(async {
        const KEYS: usize = 100_000;
        let mut nodes = vec![start("n0", None).await];
        println!("migration_rebalance: share of {KEYS} keys that move when the Nth node joins");
        for n in 2..=6usize {
            let before: Vec<Option<String>> = (0..KEYS)
                .map(|k| nodes[0].entity::<Echo>("plain", &k.to_string()).owner())
                .collect();
            let seed = nodes[0].local_addr();
            nodes.push(start(&format!("n{}", n - 1), Some(seed)).await);
            let first = nodes[0].clone();
            until("the new host is seen", || {
                (0..200)
                    .map(|k| first.entity::<Echo>("plain", &k.to_string()).owner())
                    .collect::<std::collections::HashSet<_>>()
                    .len()
                    == n
            })
            .await;
            let moved = (0..KEYS)
                .filter(|&k| nodes[0].entity::<Echo>("plain", &k.to_string()).owner() != before[k])
                .count();
            let share = moved as f64 / KEYS as f64;
            println!(
                "  N = {n}: {:.2}% moved, ideal {:.2}% ({:.3} x ideal)",
                share * 100.0,
                100.0 / n as f64,
                share * n as f64
            );
        }
        for n in nodes {
            n.shutdown().await;
        }
    });
}

// ---------------------------------------------------------------------------
// Failover across processes

/// The node program's counter, declared again (same variants, same tag).
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "ractor-otp-node.Counter")]
enum Counter {
    Add(u64, RemoteReply<u64>),
    Get(RemoteReply<u64>),
}

/// A node process hosting counters; killed on drop.
struct Proc {
    name: String,
    child: Child,
    addr: SocketAddr,
}

impl Proc {
    fn start(name: &str, seed: Option<SocketAddr>) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ractor-otp-node"));
        cmd.args([
            "--name",
            name,
            "--cookie",
            COOKIE,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--entities", "counters"]);
        if let Some(s) = seed {
            cmd.args(["--seed", &s.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ractor-otp-node");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("node output").expect("a line");
            if let Some(a) = line.strip_prefix("LISTENING ") {
                break a.parse().expect("address");
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Proc {
            name: name.to_string(),
            child,
            addr,
        }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls `key` until an answer comes; returns when it did.
async fn answered(client: &Node, key: &str, op: u64) -> Instant {
    let entity = client.entity::<Counter>("counters", key);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if entity
            .call(|r| Counter::Add(op, r), Duration::from_millis(50))
            .await
            .is_ok()
        {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "no answer for {key} within 20 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn mesh_of(client: &Node, n: usize) {
    until("the client sees every host", || {
        (0..64)
            .map(|k| {
                client
                    .entity::<Counter>("counters", &format!("f{k}"))
                    .owner()
            })
            .collect::<std::collections::HashSet<_>>()
            .len()
            == n
            && client
                .members()
                .iter()
                .filter(|m| m.status == ractor_otp::cluster::MemberStatus::Up)
                .count()
                >= n
    })
    .await;
}

fn failover(rt: &Runtime, rounds: usize) {
    rt.block_on(async {
        let a = Proc::start("a", None);
        let mut procs = [
            Proc::start("b", Some(a.addr)),
            Proc::start("c", Some(a.addr)),
        ];
        let client = Node::start(NodeConfig::new("client").cookie(COOKIE).seeds([a.addr]))
            .await
            .expect("client");
        mesh_of(&client, 3).await;
        let mut op = 1u64;
        let mut kills = Vec::new();
        let mut freezes = Vec::new();
        for round in 0..rounds * 2 {
            let freeze = round % 2 == 1;
            let victim = round % procs.len();
            let name = procs[victim].name.clone();
            let key = (0..10_000)
                .map(|k| format!("f{round}-{k}"))
                .find(|k| client.entity::<Counter>("counters", k).owner().as_deref() == Some(&name))
                .expect("a key owned by the victim");
            op += 1;
            answered(&client, &key, op).await;
            let t0 = Instant::now();
            if freeze {
                procs[victim].signal("STOP");
            } else {
                procs[victim].signal("KILL");
            }
            op += 1;
            let t1 = answered(&client, &key, op).await;
            let took = t1 - t0;
            if freeze {
                freezes.push(took);
            } else {
                kills.push(took);
            }
            // Bring the cluster back to three for the next round.
            if freeze {
                procs[victim].signal("CONT");
            } else {
                procs[victim] = Proc::start(&name, Some(a.addr));
            }
            let back = name.clone();
            until("the victim is back", || {
                client
                    .members()
                    .iter()
                    .any(|m| m.name == back && m.status == ractor_otp::cluster::MemberStatus::Up)
            })
            .await;
            mesh_of(&client, 3).await;
        }
        let report = |what: &str, v: &mut Vec<Duration>| {
            v.sort();
            println!(
                "migration_failover: {what}: median {:.1} ms, max {:.1} ms over {} rounds",
                v[v.len() / 2].as_secs_f64() * 1e3,
                v[v.len() - 1].as_secs_f64() * 1e3,
                v.len()
            );
        };
        report(
            "SIGKILL of the owner -> first answer from the new owner",
            &mut kills,
        );
        report(
            "SIGSTOP of the owner -> first answer from the new owner (detection included)",
            &mut freezes,
        );
        client.shutdown().await;
        drop(a);
    });
}

fn main() {
    let rt = runtime();
    let args: Vec<String> = std::env::args().collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let runs = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut c = Criterion::default().configure_from_args();
    if runs("migration_call") {
        bench_calls(&mut c, &rt);
    }
    if runs("migration_rebalance") && !test_mode {
        rebalance(&rt);
    }
    if runs("migration_failover") && !test_mode {
        let rounds = std::env::var("MIGRATION_FAILOVER_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5);
        failover(&rt, rounds);
    }
    c.final_summary();
}
