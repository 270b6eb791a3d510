//! Benchmarks of the cluster layer: two nodes in one process over loopback
//! TCP, default configuration except the cookie, each next to a local
//! baseline measured in the same run (see `BENCHMARKS.md`):
//!
//! 1. `cluster_cast_throughput` (criterion): [`CASTS`] casts of a `u64`
//!    newtype from node `b` to an actor exported on node `a`, timed until
//!    the actor has received the last one, vs the same casts to the actor's
//!    local `ActorRef`;
//! 2. `cluster_call_latency` (criterion): one remote `call` round trip vs a
//!    local ractor `call` and vs a bare tokio TCP ping-pong over loopback
//!    (the floor under any remote call);
//! 3. `cluster_cast_paired`, `cluster_call_distribution` (custom, printed):
//!    the throughput ratio measured as interleaved pairs of rounds (with the
//!    process's CPU per message in each kind of round, from `getrusage`),
//!    and the percentiles of individually timed calls (local ones, then
//!    remote ones);
//! 4. `cluster_detection` (custom, printed): time from the moment a relay
//!    between the nodes starts dropping every byte silently to the dialing
//!    node's `NodeEvent::Down { reason: HeartbeatTimeout }`, over
//!    [`DETECTION_RUNS`] fresh pairs of nodes, each switched after
//!    `CLUSTER_DETECTION_WARM_UP_SECS` (default
//!    [`DEFAULT_DETECTION_WARM_UP_SECS`]) plus a random phase of the
//!    heartbeat period;
//! 5. `cluster_soak` (custom, printed): casts and calls in both directions
//!    at full speed for `CLUSTER_SOAK_SECS` seconds (default
//!    [`DEFAULT_SOAK_SECS`]), counting `Down` events (expected: none);
//! 6. `cluster_two_process` (custom, printed): the bench binary starts
//!    itself again as a receiver process (`CLUSTER_BENCH_ROLE=receiver`)
//!    exporting a counter; this process casts `CLUSTER_TWO_PROCESS_ROUNDS`
//!    (default [`DEFAULT_TWO_PROCESS_ROUNDS`]) rounds of [`CASTS`] casts to
//!    it, each timed until the receiver confirms the count with a call, and
//!    prints the median throughput and each process's CPU per message (the
//!    receiver's from `/proc/<pid>/stat`, in clock ticks; this process's from
//!    `getrusage`). The receiver also runs two tokio workers: the two
//!    processes share the machine's 2 cores with 4 workers.
//!
//! The global allocator is the system's (glibc `malloc`), or jemalloc when
//! built with `RUSTFLAGS="--cfg bench_jemalloc"` (which also brings in the
//! `tikv-jemallocator` dev-dependency); the library itself never chooses
//! one. The printed custom figures name the allocator.

//! 7. with `--features tls` only: `cluster_tls_cast_throughput` and
//!    `cluster_tls_call_latency` (criterion): the remote casts of (1) and the
//!    remote call of (2) over a TLS pair of nodes next to the plain pair, in
//!    the same run; `cluster_tls_paired` (custom, printed): the TLS / plain
//!    ratios of cast throughput and of calls per second, as interleaved
//!    pairs of rounds (`cargo bench --features tls --bench cluster --
//!    cluster_tls`).
//!
//! 8. `cluster_mesh` (custom, printed; issue 10): N = 2, 8, 16 in-process
//!    nodes, `n01`… each with `n00` as its only seed
//!    ([`NodeConfig::seeds`]), started one after another; timed from
//!    starting the seed until every node's [`Node::members`] shows N − 1
//!    members `Up` (looked at after each node event and every [`POLL`]), then from one node's
//!    `join_group` until every node's `GroupRef::members` lists it (polled
//!    between yields to the runtime);
//!    `CLUSTER_MESH_ROUNDS` (default [`DEFAULT_MESH_ROUNDS`]) interleaved
//!    rounds of the three sizes, medians;
//! 9. `cluster_whereis` (criterion): `Node::whereis` from the local view
//!    for a name held on the other node (one of [`WHEREIS_NAMES`]) vs a
//!    plain `HashMap<String, String>` of as many names (`get`, and `get`
//!    cloning the holder's name, as `whereis` returns it);
//! 10. `cluster_group_cast` (custom, printed): a `GroupRef` routed cast
//!     (round robin) to one member on another node vs a `RemoteRef` cast to
//!     the same actor, and a group with members on 2 remote nodes vs the two
//!     `RemoteRef`s taken in turn, as interleaved pairs of rounds of
//!     [`CASTS`] casts (as `cluster_cast_paired`), with the time of the
//!     casting loop alone (the sender's cost, routing included) and the
//!     process's CPU per message;
//! 11. `cluster_heartbeat_cpu` (custom, printed): the process's CPU time
//!     (`getrusage`) over `CLUSTER_HEARTBEAT_SECS` (default
//!     [`DEFAULT_HEARTBEAT_SECS`]) of idling with no node (the baseline),
//!     one node alone, and N = 2, 8, 16 idle nodes in a full mesh, interleaved
//!     [`HEARTBEAT_ROUNDS`] times; per node and per heartbeat.
//!
//! Every bench runs on one multi-thread tokio runtime with 2 workers, and the
//! measured code runs as a task on that runtime (not on the bench thread),
//! baselines included; both nodes live on that runtime.
//!
//! Run with `cargo bench --bench cluster`; one part only with a filter, e.g.
//! `cargo bench --bench cluster -- cluster_detection`, and the long soak with
//! `CLUSTER_SOAK_SECS=60 cargo bench --bench cluster -- soak`. The custom
//! parts run when their name contains the filter (the criterion groups
//! follow criterion's own filtering).

#![warn(clippy::missing_docs_in_private_items)]

mod common;

/// jemalloc for the whole bench process, only when asked for (see the
/// module docs).
#[cfg(bench_jemalloc)]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use common::{on_runtime, runtime};
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
#[cfg(feature = "tls")]
use ractor_otp::cluster::TlsConfig;
use ractor_otp::cluster::{
    DownReason, GroupRouting, MemberStatus, Node, NodeConfig, NodeEvent, RemoteRef, RemoteReply,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

/// Casts per round of the throughput bench.
const CASTS: u64 = 10_000;
/// The cookie of every node.
const COOKIE: &str = "bench-cookie";
/// Bound on every wait for a round, a reply or an event.
const WAIT: Duration = Duration::from_secs(30);
/// Fresh node pairs measured by the detection bench.
const DETECTION_RUNS: usize = 5;
/// Seconds of heartbeats before the relay goes silent, when
/// `CLUSTER_DETECTION_WARM_UP_SECS` is not set (plus a random 0–200 ms, so
/// that the switch falls anywhere between two heartbeats).
const DEFAULT_DETECTION_WARM_UP_SECS: u64 = 1;
/// Soak length when `CLUSTER_SOAK_SECS` is not set.
const DEFAULT_SOAK_SECS: u64 = 5;
/// Casts the soak keeps in flight at most (sent, not yet received).
const SOAK_WINDOW: u64 = 50_000;
/// The soak's counter wakes the caster every this many messages.
const SOAK_NOTIFY_EVERY: u64 = 1_000;
/// Interleaved pairs of rounds in the paired throughput check.
const PAIRS: usize = 30;
/// Calls of each kind in the call distribution.
const TIMED_CALLS: usize = 5_000;

// ---------------------------------------------------------------------------
// Messages and actors

/// The cast of the throughput bench: a `u64` newtype.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
struct Tick(u64);

/// The remote echo of the call bench.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Echo {
    /// Answers with the number it carries.
    Ping(u64, RemoteReply<u64>),
}

/// The local echo of the call baseline (a ractor reply port).
enum LocalEcho {
    /// Answers with the number it carries.
    Ping(u64, RpcReplyPort<u64>),
}

/// What a [`Counter`] shares with the bench.
#[derive(Clone, Default)]
struct Progress {
    /// Messages received so far.
    received: Arc<AtomicU64>,
    /// The count at which to wake the bench (set before a round's casts).
    target: Arc<AtomicU64>,
    /// Woken at `target`, and every `every` messages if `every > 0`.
    done: Arc<Notify>,
}

/// Counts [`Tick`]s and wakes the bench when a round is complete.
struct Counter {
    /// Shared with the bench.
    progress: Progress,
    /// Also wake the bench every this many messages (0: only at `target`).
    every: u64,
}

impl Actor for Counter {
    type Msg = Tick;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Tick>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<Tick>,
        _: Tick,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *count += 1;
        let p = &self.progress;
        p.received.store(*count, Ordering::Release);
        if *count == p.target.load(Ordering::Acquire)
            || (self.every > 0 && *count % self.every == 0)
        {
            p.done.notify_one();
        }
        Ok(())
    }
}

/// Answers every [`Echo::Ping`].
struct EchoActor;

impl Actor for EchoActor {
    type Msg = Echo;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Echo>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Echo>,
        msg: Echo,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Echo::Ping(n, reply) = msg;
        reply.send(n);
        Ok(())
    }
}

/// Answers every [`LocalEcho::Ping`].
struct LocalEchoActor;

impl Actor for LocalEchoActor {
    type Msg = LocalEcho;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<LocalEcho>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<LocalEcho>,
        msg: LocalEcho,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let LocalEcho::Ping(n, port) = msg;
        let _ = port.send(n);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Setup

/// A node with the default configuration and the bench's cookie.
async fn node(name: &str) -> Node {
    start_node(NodeConfig::new(name)).await
}

/// A node with this configuration and the bench's cookie.
async fn start_node(config: NodeConfig) -> Node {
    Node::start(config.cookie(COOKIE))
        .await
        .expect("node starts")
}

/// Waits for the next `Up` on `events`.
async fn wait_up(events: &mut ractor_otp::cluster::NodeEvents) {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(NodeEvent::Up { .. }) => return,
                Some(_) => {}
                None => panic!("the node shut down before the peer came up"),
            }
        }
    })
    .await
    .expect("the peer comes up");
}

/// A [`Counter`] spawned locally, its shared progress and its ref.
async fn spawn_counter(every: u64) -> (ActorRef<Tick>, Progress) {
    let progress = Progress::default();
    let (actor, _) = Actor::spawn(
        None,
        Counter {
            progress: progress.clone(),
            every,
        },
        (),
    )
    .await
    .expect("counter");
    (actor, progress)
}

/// Two connected nodes: `a` exports a counter and an echo, `b` holds
/// remote refs to them; local baselines live on `a`'s side of the process.
struct Pair {
    /// The node that exports the actors (accepts the connection).
    a: Node,
    /// The node that casts and calls (dials `a`).
    b: Node,
    /// `a`'s events, to check that nothing went down during the benches.
    a_events: ractor_otp::cluster::NodeEvents,
    /// `b`'s events, likewise.
    b_events: ractor_otp::cluster::NodeEvents,
    /// The counter's local ref (baseline).
    counter: ActorRef<Tick>,
    /// What the counter shares with the bench.
    progress: Progress,
    /// `b`'s remote ref to the counter.
    remote_counter: RemoteRef<Tick>,
    /// The local echo (baseline).
    local_echo: ActorRef<LocalEcho>,
    /// `b`'s remote ref to `a`'s echo.
    remote_echo: RemoteRef<Echo>,
}

impl Pair {
    /// Starts and connects two plain nodes, spawns and exports the actors.
    async fn start() -> Pair {
        Pair::start_with(NodeConfig::new("a"), NodeConfig::new("b")).await
    }

    /// Starts and connects nodes with these configurations (the bench's
    /// cookie added), spawns and exports the actors.
    async fn start_with(a: NodeConfig, b: NodeConfig) -> Pair {
        let a = start_node(a).await;
        let b = start_node(b).await;
        let a_events = a.subscribe();
        let mut b_events = b.subscribe();
        let (counter, progress) = spawn_counter(0).await;
        a.export("counter", counter.clone())
            .expect("export counter");
        let (echo, _) = Actor::spawn(None, EchoActor, ()).await.expect("echo");
        a.export("echo", echo).expect("export echo");
        let (local_echo, _) = Actor::spawn(None, LocalEchoActor, ())
            .await
            .expect("local echo");
        b.connect(a.local_addr()).await.expect("b connects to a");
        wait_up(&mut b_events).await;
        let remote_counter = b.lookup::<Tick>("a", "counter").await.expect("lookup");
        let remote_echo = b.lookup::<Echo>("a", "echo").await.expect("lookup");
        Pair {
            a,
            b,
            a_events,
            b_events,
            counter,
            progress,
            remote_counter,
            local_echo,
            remote_echo,
        }
    }

    /// Counts the `Down` events either node saw, shuts both down.
    async fn finish(mut self) -> usize {
        let mut downs = 0;
        for events in [&mut self.a_events, &mut self.b_events] {
            while let Some(event) = events.try_recv() {
                if let NodeEvent::Down { peer, reason } = event {
                    eprintln!("unexpected Down of {peer} during the benches: {reason}");
                    downs += 1;
                }
            }
        }
        self.b.shutdown().await;
        self.a.shutdown().await;
        self.counter.stop(None);
        self.local_echo.stop(None);
        downs
    }
}

// ---------------------------------------------------------------------------
// 1. Cast throughput

/// One round: [`CASTS`] casts through `cast`, timed until the counter has
/// received the last one.
async fn cast_round<C: Fn(Tick)>(progress: &Progress, cast: &C) -> Duration {
    let start = Instant::now();
    let target = progress.received.load(Ordering::Acquire) + CASTS;
    progress.target.store(target, Ordering::Release);
    for i in 0..CASTS {
        cast(Tick(i));
    }
    wait_for(progress, target).await;
    start.elapsed()
}

/// Waits until the counter has received `target` casts in all.
async fn wait_for(progress: &Progress, target: u64) {
    tokio::time::timeout(WAIT, async {
        while progress.received.load(Ordering::Acquire) < target {
            progress.done.notified().await;
        }
    })
    .await
    .expect("every cast of the round arrives");
}

/// Casts to the local `ActorRef`.
fn local_cast(counter: &ActorRef<Tick>) -> impl Fn(Tick) + '_ {
    move |t| counter.cast(t).expect("local cast")
}

/// Casts through the `RemoteRef`.
fn remote_cast(remote: &RemoteRef<Tick>) -> impl Fn(Tick) + '_ {
    move |t| remote.cast(t).expect("remote cast")
}

/// `iters` rounds to the local ref.
async fn local_rounds(counter: ActorRef<Tick>, progress: Progress, iters: u64) -> Duration {
    let cast = local_cast(&counter);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += cast_round(&progress, &cast).await;
    }
    total
}

/// `iters` rounds through the remote ref.
async fn remote_rounds(remote: RemoteRef<Tick>, progress: Progress, iters: u64) -> Duration {
    let cast = remote_cast(&remote);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += cast_round(&progress, &cast).await;
    }
    total
}

/// Bench 1: remote casts vs local casts to the same actor.
fn bench_cast_throughput(c: &mut Criterion, rt: &Runtime, pair: &Pair) {
    let mut group = c.benchmark_group("cluster_cast_throughput");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(CASTS));
    group.bench_function(BenchmarkId::new("local_actor_ref", CASTS), |b| {
        b.iter_custom(|iters| {
            on_runtime(
                rt,
                local_rounds(pair.counter.clone(), pair.progress.clone(), iters),
            )
        });
    });
    group.bench_function(BenchmarkId::new("remote_ref", CASTS), |b| {
        b.iter_custom(|iters| {
            on_runtime(
                rt,
                remote_rounds(pair.remote_counter.clone(), pair.progress.clone(), iters),
            )
        });
    });
    group.finish();
}

/// The paired check: [`PAIRS`] pairs of rounds, local and remote back to
/// back (alternating which goes first); prints the median of each and of the
/// per-pair ratios.
async fn cast_paired(
    counter: ActorRef<Tick>,
    remote: RemoteRef<Tick>,
    progress: Progress,
    pairs: usize,
) {
    let local = local_cast(&counter);
    let remote = remote_cast(&remote);
    // Warm-up.
    for _ in 0..3 {
        cast_round(&progress, &local).await;
        cast_round(&progress, &remote).await;
    }
    let (mut l, mut r, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut l_cpu, mut r_cpu) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        let ((lt, lc), (rt, rc)) = if i % 2 == 0 {
            let lt = cpu_round(&progress, &local).await;
            (lt, cpu_round(&progress, &remote).await)
        } else {
            let rt = cpu_round(&progress, &remote).await;
            (cpu_round(&progress, &local).await, rt)
        };
        l.push(lt.as_secs_f64());
        r.push(rt.as_secs_f64());
        l_cpu.push(lc.as_secs_f64());
        r_cpu.push(rc.as_secs_f64());
        // Throughput ratio remote / local = time local / time remote.
        ratio.push(lt.as_secs_f64() / rt.as_secs_f64());
    }
    let (lm, rm) = (median(&mut l), median(&mut r));
    let ns_per_cast = |v: &mut Vec<f64>| median(v) * 1e9 / CASTS as f64;
    println!(
        "cluster_cast_paired: {pairs} pairs of {CASTS} casts ({}): median round local {} ({:.2} M msg/s), remote {} ({:.3} M msg/s); remote = {:.3}x local throughput (median of per-pair ratios); process CPU per message (median of rounds): local {:.0} ns, remote {:.0} ns",
        allocator(),
        fmt_secs(lm),
        CASTS as f64 / lm / 1e6,
        fmt_secs(rm),
        CASTS as f64 / rm / 1e6,
        median(&mut ratio),
        ns_per_cast(&mut l_cpu),
        ns_per_cast(&mut r_cpu),
    );
}

/// [`cast_round`], with the CPU time the whole process used meanwhile.
async fn cpu_round<C: Fn(Tick)>(progress: &Progress, cast: &C) -> (Duration, Duration) {
    let cpu = self_cpu();
    let wall = cast_round(progress, cast).await;
    (wall, self_cpu().saturating_sub(cpu))
}

/// The send buffer's cost: [`PAIRS`] pairs of remote rounds, through a
/// pair of nodes with the default send buffer and through one whose buffer
/// is so large it never refuses (alternating which goes first).
async fn send_buffer_paired(pairs: usize) {
    let bounded = Pair::start().await;
    let unbounded = Pair::start_with(
        NodeConfig::new("a").send_buffer(1 << 40),
        NodeConfig::new("b").send_buffer(1 << 40),
    )
    .await;
    let (b_cast, u_cast) = (
        remote_cast(&bounded.remote_counter),
        remote_cast(&unbounded.remote_counter),
    );
    for _ in 0..3 {
        cast_round(&bounded.progress, &b_cast).await;
        cast_round(&unbounded.progress, &u_cast).await;
    }
    let (mut bt, mut ut, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (b, u) = if i % 2 == 0 {
            let b = cast_round(&bounded.progress, &b_cast).await;
            (b, cast_round(&unbounded.progress, &u_cast).await)
        } else {
            let u = cast_round(&unbounded.progress, &u_cast).await;
            (cast_round(&bounded.progress, &b_cast).await, u)
        };
        bt.push(b.as_secs_f64());
        ut.push(u.as_secs_f64());
        ratio.push(u.as_secs_f64() / b.as_secs_f64());
    }
    let (bm, um) = (median(&mut bt), median(&mut ut));
    println!(
        "cluster_send_buffer: {pairs} pairs of {CASTS} remote casts: default 4 MiB buffer {:.3} M msg/s, unbounded (1 TiB) {:.3} M msg/s; default = {:.3}x unbounded throughput (median of per-pair ratios)",
        CASTS as f64 / bm / 1e6,
        CASTS as f64 / um / 1e6,
        median(&mut ratio),
    );
    drop((b_cast, u_cast));
    let downs = bounded.finish().await + unbounded.finish().await;
    assert_eq!(downs, 0, "a node went down during the send-buffer check");
}

// ---------------------------------------------------------------------------
// 2. Call latency

/// One local call round trip.
async fn local_call(echo: &ActorRef<LocalEcho>, n: u64) {
    match echo
        .call(|port| LocalEcho::Ping(n, port), Some(WAIT))
        .await
        .expect("local call")
    {
        CallResult::Success(m) => assert_eq!(m, n),
        _ => panic!("the local echo did not answer"),
    }
}

/// One remote call round trip.
async fn remote_call(echo: &RemoteRef<Echo>, n: u64) {
    let m = echo
        .call(|reply| Echo::Ping(n, reply), WAIT)
        .await
        .expect("remote call");
    assert_eq!(m, n);
}

/// A loopback TCP echo of 8-byte messages, the floor of a remote call:
/// returns the client's stream (the server runs as a task).
async fn tcp_echo() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let _ = s.set_nodelay(true);
        let mut buf = [0u8; 8];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// One 8-byte ping-pong over `s`.
async fn tcp_ping(s: &mut TcpStream, n: u64) {
    s.write_all(&n.to_le_bytes()).await.expect("write");
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).await.expect("read");
    assert_eq!(u64::from_le_bytes(buf), n);
}

/// Bench 2: a remote call round trip vs a local call and a TCP ping-pong.
fn bench_call_latency(c: &mut Criterion, rt: &Runtime, pair: &Pair) {
    let tcp = Arc::new(tokio::sync::Mutex::new(rt.block_on(tcp_echo())));
    let mut group = c.benchmark_group("cluster_call_latency");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("local_call", |b| {
        b.iter_custom(|iters| {
            let echo = pair.local_echo.clone();
            on_runtime(rt, async move {
                let start = Instant::now();
                for i in 0..iters {
                    local_call(&echo, i).await;
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("tcp_ping_pong", |b| {
        b.iter_custom(|iters| {
            let tcp = tcp.clone();
            on_runtime(rt, async move {
                let mut s = tcp.lock().await;
                let start = Instant::now();
                for i in 0..iters {
                    tcp_ping(&mut s, i).await;
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("remote_call", |b| {
        b.iter_custom(|iters| {
            let echo = pair.remote_echo.clone();
            on_runtime(rt, async move {
                let start = Instant::now();
                for i in 0..iters {
                    remote_call(&echo, i).await;
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

/// Times `calls` local calls one by one, then `calls` remote calls, and
/// prints percentiles of each.
async fn call_distribution(local: ActorRef<LocalEcho>, remote: RemoteRef<Echo>, calls: usize) {
    let (mut l, mut r) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for i in 0..1_000 {
        local_call(&local, i).await;
    }
    for i in 0..calls as u64 {
        let t = Instant::now();
        local_call(&local, i).await;
        l.push(t.elapsed().as_secs_f64());
    }
    for i in 0..1_000 {
        remote_call(&remote, i).await;
    }
    for i in 0..calls as u64 {
        let t = Instant::now();
        remote_call(&remote, i).await;
        r.push(t.elapsed().as_secs_f64());
    }
    for (name, v) in [("local_call", &mut l), ("remote_call", &mut r)] {
        v.sort_by(f64::total_cmp);
        println!(
            "cluster_call_distribution: {name}, {calls} calls timed one by one: p50 {}, p90 {}, p99 {}, max {}",
            fmt_secs(percentile(v, 0.50)),
            fmt_secs(percentile(v, 0.90)),
            fmt_secs(percentile(v, 0.99)),
            fmt_secs(v[v.len() - 1]),
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Detection of a silent peer

/// A TCP relay that forwards both ways until it is told to go silent; then
/// it keeps every connection open, reads everything and forwards nothing.
struct Relay {
    /// Where the relay listens.
    addr: SocketAddr,
    /// Set: drop everything.
    silent: Arc<AtomicBool>,
    /// The accept loop; it owns the pumps (aborted with it).
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay to `target`.
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        let task = tokio::spawn(async move {
            let mut pumps = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                pumps.spawn(pump(ir, ow, flag.clone()));
                pumps.spawn(pump(or, iw, flag.clone()));
            }
        });
        Relay { addr, silent, task }
    }

    /// From now on, drop every byte in both directions.
    fn go_silent(&self) {
        self.silent.store(true, Ordering::Release);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either ends, dropping bytes while `silent`.
/// Once silent it never closes `to` (dropping a write half sends a FIN): a
/// partitioned peer's close does not cross the partition either.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !silent.load(Ordering::Acquire) && to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if silent.load(Ordering::Acquire) {
        // Hold `to` open until the relay is dropped (which aborts this).
        std::future::pending::<()>().await;
    }
    let _ = to.shutdown().await;
}

/// What one detection run measured.
struct Detection {
    /// From the switch to the `Down` event.
    after_switch: Duration,
    /// The silence the detector reported (since the last heartbeat).
    silence: Duration,
    /// Phi when it fired.
    phi: f64,
}

/// One detection run on fresh nodes: `a` dials `b` through a relay, the
/// relay goes silent after `warm_up` plus a random fraction of a heartbeat
/// interval, and the time until `a` publishes `Down` is measured.
async fn detection_run(warm_up: Duration) -> Result<Detection, String> {
    let a = node("a").await;
    let b = node("b").await;
    let relay = Relay::start(b.local_addr()).await;
    let mut events = a.subscribe();
    a.connect(relay.addr).await.map_err(|e| e.to_string())?;
    wait_up(&mut events).await;
    // Steady heartbeats first (the deliberate warm-up of the measurement),
    // then switch at a random phase of the 200 ms heartbeat period.
    let phase = Duration::from_micros(rand::random_range(0..200_000));
    tokio::time::sleep(warm_up + phase).await;
    relay.go_silent();
    let switched = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(NodeEvent::Down { reason, .. }) => return Ok(reason),
                Some(_) => {}
                None => return Err("the node shut down".to_string()),
            }
        }
    })
    .await;
    let after_switch = switched.elapsed();
    a.shutdown().await;
    b.shutdown().await;
    drop(relay);
    match outcome {
        Err(_) => Err("no Down within 10 s".into()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(DownReason::HeartbeatTimeout { phi, silence, .. })) => Ok(Detection {
            after_switch,
            silence,
            phi,
        }),
        Ok(Ok(other)) => Err(format!("Down for another reason: {other}")),
    }
}

/// Bench 3: [`detection_run`] `runs` times; prints median, min and max.
async fn detection(runs: usize, warm_up: Duration) {
    let mut after = Vec::new();
    let mut silence = Vec::new();
    for run in 1..=runs {
        match detection_run(warm_up).await {
            Ok(d) => {
                println!(
                    "cluster_detection: run {run}: Down(HeartbeatTimeout) {} after the switch (silence {}, phi {:.1})",
                    fmt_secs(d.after_switch.as_secs_f64()),
                    fmt_secs(d.silence.as_secs_f64()),
                    d.phi,
                );
                after.push(d.after_switch.as_secs_f64());
                silence.push(d.silence.as_secs_f64());
            }
            Err(e) => println!("cluster_detection: run {run}: FAILED: {e}"),
        }
    }
    if after.is_empty() {
        return;
    }
    after.sort_by(f64::total_cmp);
    println!(
        "cluster_detection: {} of {runs} runs ({}s warm-up): after the switch median {}, min {}, max {}; reported silence median {} (target: within 2 s)",
        after.len(),
        warm_up.as_secs(),
        fmt_secs(median(&mut after)),
        fmt_secs(after[0]),
        fmt_secs(after[after.len() - 1]),
        fmt_secs(median(&mut silence)),
    );
}

// ---------------------------------------------------------------------------
// 4. Soak: no false Down under load

/// What a node's event watcher counted during the soak.
#[derive(Default, Debug)]
struct EventCounts {
    /// `Down` events (expected: none).
    downs: u64,
    /// `DeadLetter` events.
    dead_letters: u64,
}

/// Counts `events` until `stop` fires.
async fn count_events(
    mut events: ractor_otp::cluster::NodeEvents,
    mut stop: watch::Receiver<bool>,
) -> EventCounts {
    let mut counts = EventCounts::default();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            event = events.recv() => match event {
                Some(NodeEvent::Down { peer, reason }) => {
                    println!("cluster_soak: Down of {peer}: {reason}");
                    counts.downs += 1;
                }
                Some(NodeEvent::DeadLetter { count, .. }) => counts.dead_letters += count,
                Some(_) => {}
                None => break,
            },
        }
    }
    counts
}

/// Calls `echo` back to back until `deadline`; returns (answered, failed).
async fn call_loop(echo: RemoteRef<Echo>, deadline: Instant) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    let mut i = 0;
    while Instant::now() < deadline {
        i += 1;
        match echo.call(|r| Echo::Ping(i, r), WAIT).await {
            Ok(n) if n == i => ok += 1,
            _ => failed += 1,
        }
    }
    (ok, failed)
}

/// Casts to `remote` until `deadline`, keeping at most [`SOAK_WINDOW`]
/// in flight; returns how many were sent.
async fn cast_loop(remote: RemoteRef<Tick>, progress: Progress, deadline: Instant) -> u64 {
    let mut sent = 0;
    while Instant::now() < deadline {
        while sent - progress.received.load(Ordering::Acquire) > SOAK_WINDOW {
            if tokio::time::timeout(WAIT, progress.done.notified())
                .await
                .is_err()
            {
                println!("cluster_soak: the casts stalled");
                return sent;
            }
        }
        for _ in 0..SOAK_NOTIFY_EVERY {
            if remote.cast(Tick(sent)).is_err() {
                return sent;
            }
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    sent
}

/// Bench 4: casts b→a and calls both ways at full speed for `secs`, on
/// fresh nodes with the default configuration; prints what moved and how
/// many `Down` events either node saw, and the highest phi observed.
async fn soak(secs: u64) {
    let a = node("a").await;
    let b = node("b").await;
    let (stop_tx, stop) = watch::channel(false);
    let mut b_up = b.subscribe();
    let a_events = tokio::spawn(count_events(a.subscribe(), stop.clone()));
    let b_events = tokio::spawn(count_events(b.subscribe(), stop.clone()));
    let (counter, progress) = spawn_counter(SOAK_NOTIFY_EVERY).await;
    a.export("counter", counter.clone()).expect("export");
    let (echo_a, _) = Actor::spawn(None, EchoActor, ()).await.expect("echo");
    a.export("echo", echo_a.clone()).expect("export");
    let (echo_b, _) = Actor::spawn(None, EchoActor, ()).await.expect("echo");
    b.export("echo", echo_b.clone()).expect("export");
    b.connect(a.local_addr()).await.expect("connect");
    wait_up(&mut b_up).await;
    let remote_counter = b.lookup::<Tick>("a", "counter").await.expect("lookup");
    let b_to_a = b.lookup::<Echo>("a", "echo").await.expect("lookup");
    let a_to_b = a.lookup::<Echo>("b", "echo").await.expect("lookup");

    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let casts = tokio::spawn(cast_loop(remote_counter, progress.clone(), deadline));
    let calls_ab = tokio::spawn(call_loop(a_to_b, deadline));
    let calls_ba = tokio::spawn(call_loop(b_to_a, deadline));
    // Sample both sides' phi while it runs.
    let mut max_phi: f64 = 0.0;
    let mut suspect = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for info in a.peers().into_iter().chain(b.peers()) {
            max_phi = max_phi.max(info.phi);
            if info.status != ractor_otp::cluster::PeerStatus::Up {
                suspect += 1;
            }
        }
    }
    let sent = casts.await.expect("cast loop");
    let (ab_ok, ab_failed) = calls_ab.await.expect("call loop");
    let (ba_ok, ba_failed) = calls_ba.await.expect("call loop");
    // Let the last casts land (bounded), then stop counting events.
    let _ = tokio::time::timeout(WAIT, async {
        while progress.received.load(Ordering::Acquire) < sent {
            progress.done.notified().await;
        }
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let received = progress.received.load(Ordering::Acquire);
    let _ = stop_tx.send(true);
    let a_counts = a_events.await.expect("event counter");
    let b_counts = b_events.await.expect("event counter");
    b.shutdown().await;
    a.shutdown().await;
    for actor in [echo_a, echo_b] {
        actor.stop(None);
    }
    counter.stop(None);

    println!(
        "cluster_soak: {secs} s at full speed: {sent} casts b->a sent, {received} received ({:.0} k/s); calls a->b {ab_ok} answered, {ab_failed} failed; calls b->a {ba_ok} answered, {ba_failed} failed",
        received as f64 / elapsed / 1e3,
    );
    println!(
        "cluster_soak: Down events: {} on a, {} on b (expected 0); dead letters {}; highest phi sampled {max_phi:.2}; samples not Up: {suspect}",
        a_counts.downs,
        b_counts.downs,
        a_counts.dead_letters + b_counts.dead_letters,
    );
}

// ---------------------------------------------------------------------------
// 6. Two processes

/// Set to [`RECEIVER_ROLE`] in the environment of the bench binary that the
/// two-process part starts as its receiver.
const ROLE_VAR: &str = "CLUSTER_BENCH_ROLE";
/// The value of [`ROLE_VAR`] that makes the binary a receiver.
const RECEIVER_ROLE: &str = "receiver";
/// What the receiver prints before its listening address.
const RECEIVER_READY: &str = "cluster-bench-receiver";
/// Rounds of [`CASTS`] casts measured across two processes, when
/// `CLUSTER_TWO_PROCESS_ROUNDS` is not set (about 1 s at 2 M/s).
const DEFAULT_TWO_PROCESS_ROUNDS: usize = 200;

/// Asks the receiver to answer once its counter has received a number of
/// casts.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Await {
    /// Answers with the count once it reaches the number.
    Count(u64, RemoteReply<u64>),
}

/// Answers each [`Await::Count`] once the counter it watches gets there
/// (from a task, so that several may wait).
struct Waiter {
    /// The counter's progress.
    progress: Progress,
}

impl Actor for Waiter {
    type Msg = Await;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Await>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Await>,
        msg: Await,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Await::Count(n, reply) = msg;
        let p = self.progress.clone();
        p.target.store(n, Ordering::Release);
        tokio::spawn(async move {
            // The sender's call times out after `WAIT` as well.
            let _ = tokio::time::timeout(WAIT, async {
                while p.received.load(Ordering::Acquire) < n {
                    p.done.notified().await;
                }
            })
            .await;
            let _ = reply.send(p.received.load(Ordering::Acquire));
        });
        Ok(())
    }
}

/// The receiver process: a node `r` exporting a counter and a waiter,
/// its address printed on stdout; it stops when its stdin closes (the
/// parent ended or dropped it).
fn receiver() {
    let rt = runtime();
    rt.block_on(async {
        let node = node("r").await;
        let (counter, progress) = spawn_counter(0).await;
        node.export("counter", counter.clone())
            .expect("export counter");
        let (waiter, _) = Actor::spawn(None, Waiter { progress }, ())
            .await
            .expect("waiter");
        node.export("waiter", waiter.clone())
            .expect("export waiter");
        println!("{RECEIVER_READY} {}", node.local_addr());
        std::io::Write::flush(&mut std::io::stdout()).expect("stdout");
        let _ = tokio::task::spawn_blocking(|| {
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
        })
        .await;
        node.shutdown().await;
        counter.stop(None);
        waiter.stop(None);
    });
}

/// The receiver process, seen from the parent. Dropping it (also while
/// unwinding from a panic) kills and reaps the process.
struct ReceiverProcess {
    /// The process.
    child: std::process::Child,
    /// Where its node listens.
    addr: SocketAddr,
}

impl ReceiverProcess {
    /// Starts this bench binary again as a receiver and reads its address
    /// (waiting at most [`WAIT`]).
    fn start() -> ReceiverProcess {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().expect("the bench binary's path");
        let child = Command::new(exe)
            .env(ROLE_VAR, RECEIVER_ROLE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver process starts");
        let mut receiver = ReceiverProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let stdout = receiver.child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(WAIT)
            .expect("the receiver prints its address");
        receiver.addr = line
            .trim()
            .strip_prefix(RECEIVER_READY)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("the receiver printed {line:?}, not its address"));
        receiver
    }

    /// The path of the receiver's `/proc/<pid>/stat`.
    fn stat(&self) -> String {
        format!("/proc/{}/stat", self.child.id())
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of the process whose `/proc/<pid>/stat` is
/// at `stat`, in clock ticks of `sysconf(_SC_CLK_TCK)` (10 ms at the usual
/// 100 per second).
fn process_cpu(stat: &str) -> Duration {
    let text = std::fs::read_to_string(stat).unwrap_or_else(|e| panic!("{stat}: {e}"));
    // The fields after the command name (which may hold spaces): state is
    // field 3, utime 14 and stime 15.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> u64 {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("{stat}: no field {i}"))
    };
    // SAFETY: sysconf only reads a system constant.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_sec = u64::try_from(per_sec)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(100);
    Duration::from_nanos((ticks(14) + ticks(15)) * 1_000_000_000 / per_sec)
}

/// CPU time (user + system) this process has used so far, from
/// `getrusage` (microseconds, where `/proc/self/stat` counts 10 ms ticks).
fn self_cpu() -> Duration {
    // SAFETY: `rusage` is plain integers, valid when zeroed; `getrusage`
    // only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the pointer is to a live, writable `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.unsigned_abs())
            + Duration::from_micros(t.tv_usec.unsigned_abs())
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Bench 6: `rounds` rounds of [`CASTS`] casts from this process to the
/// counter of a receiver process, each timed until the receiver's waiter
/// confirms the count (one call round trip per round); prints the median
/// throughput and the CPU per message on each side.
async fn two_process(addr: SocketAddr, receiver_stat: String, rounds: usize) {
    let s = node("s").await;
    let mut events = s.subscribe();
    s.connect(addr).await.expect("connect to the receiver");
    wait_up(&mut events).await;
    let counter = s.lookup::<Tick>("r", "counter").await.expect("lookup");
    let waiter = s.lookup::<Await>("r", "waiter").await.expect("lookup");
    let mut sent = 0;
    let mut round = async || {
        let start = Instant::now();
        for i in 0..CASTS {
            if let Err(e) = counter.cast(Tick(i)) {
                assert!(e.is_busy(), "remote cast: {}", e.error());
                counter
                    .cast_wait(e.into_message())
                    .await
                    .unwrap_or_else(|e| panic!("remote cast: {}", e.error()));
            }
        }
        sent += CASTS;
        let count = waiter
            .call(|r| Await::Count(sent, r), WAIT)
            .await
            .expect("the receiver answers");
        assert_eq!(count, sent, "every cast of the round arrives");
        start.elapsed()
    };
    for _ in 0..3 {
        round().await;
    }
    let (r0, s0) = (process_cpu(&receiver_stat), self_cpu());
    let start = Instant::now();
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        times.push(round().await.as_secs_f64());
    }
    let wall = start.elapsed().as_secs_f64();
    let (r1, s1) = (process_cpu(&receiver_stat), self_cpu());
    let msgs = (rounds as u64 * CASTS) as f64;
    let per_msg = |d: Duration| d.as_secs_f64() * 1e9 / msgs;
    let m = median(&mut times);
    let rate = |t: f64| CASTS as f64 / t / 1e6;
    println!(
        "cluster_two_process: {rounds} rounds of {CASTS} casts to another process ({}): median round {} ({:.3} M msg/s; rounds p10-p90 {:.3}-{:.3} M msg/s; {:.3} M msg/s over all {:.2} s); CPU per message: receiver {:.0} ns, sender {:.0} ns",
        allocator(),
        fmt_secs(m),
        rate(m),
        rate(percentile(&times, 0.9)),
        rate(percentile(&times, 0.1)),
        msgs / wall / 1e6,
        wall,
        per_msg(r1.saturating_sub(r0)),
        per_msg(s1.saturating_sub(s0)),
    );
    let mut downs = 0;
    while let Some(event) = events.try_recv() {
        if let NodeEvent::Down { peer, reason } = event {
            eprintln!("unexpected Down of {peer} during the two-process bench: {reason}");
            downs += 1;
        }
    }
    s.shutdown().await;
    assert_eq!(downs, 0, "the receiver went down during the bench");
}

// ---------------------------------------------------------------------------
// Helpers

/// The global allocator of this build, as printed with the figures.
fn allocator() -> &'static str {
    if cfg!(bench_jemalloc) {
        "jemalloc"
    } else {
        "system allocator"
    }
}

/// The median of `v` (sorts it).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(v, 0.5)
}

/// The `q` quantile of sorted `v` (nearest rank).
fn percentile(v: &[f64], q: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Seconds as a short human-readable figure.
fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.2} µs", s * 1e6)
    }
}

/// Runs `f` to completion as a task on `rt`.
fn run<F>(rt: &Runtime, f: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    on_runtime(rt, async move {
        f.await;
        Duration::ZERO
    });
}

// ---------------------------------------------------------------------------
// 6. TLS vs plain (feature `tls`)

/// Throwaway TLS configurations for nodes `a` and `b`: a CA made now, and
/// a certificate it signs for each node.
#[cfg(feature = "tls")]
fn tls_configs() -> (TlsConfig, TlsConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let node = |name: &str| {
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("node certificate");
        TlsConfig::from_pem(cert.pem(), key.serialize_pem(), ca.pem()).expect("TLS config")
    };
    (node("a"), node("b"))
}

/// Bench 6 (criterion): remote casts and calls over TLS next to the same
/// over plain TCP, two pairs of nodes in the same run.
#[cfg(feature = "tls")]
fn bench_tls(c: &mut Criterion, rt: &Runtime, plain: &Pair, tls: &Pair) {
    let mut group = c.benchmark_group("cluster_tls_cast_throughput");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(CASTS));
    for (name, pair) in [("plain", plain), ("tls", tls)] {
        group.bench_function(BenchmarkId::new(name, CASTS), |b| {
            b.iter_custom(|iters| {
                on_runtime(
                    rt,
                    remote_rounds(pair.remote_counter.clone(), pair.progress.clone(), iters),
                )
            });
        });
    }
    group.finish();
    let mut group = c.benchmark_group("cluster_tls_call_latency");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (name, pair) in [("plain", plain), ("tls", tls)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let echo = pair.remote_echo.clone();
                on_runtime(rt, async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        remote_call(&echo, i).await;
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// The paired TLS check: [`PAIRS`] pairs of cast rounds, plain and TLS back
/// to back (alternating which goes first), then as many pairs of 1,000
/// calls; prints the medians and the median of the per-pair ratios.
#[cfg(feature = "tls")]
async fn tls_paired(plain: Arc<PairRefs>, tls: Arc<PairRefs>, pairs: usize) {
    /// Calls per round of the call comparison.
    const CALLS: u64 = 1_000;
    let casts = |refs: Arc<PairRefs>| async move {
        cast_round(&refs.progress, &remote_cast(&refs.counter)).await
    };
    let calls = |refs: Arc<PairRefs>| async move {
        let start = Instant::now();
        for i in 0..CALLS {
            remote_call(&refs.echo, i).await;
        }
        start.elapsed()
    };
    for _ in 0..3 {
        casts(plain.clone()).await;
        casts(tls.clone()).await;
        calls(plain.clone()).await;
        calls(tls.clone()).await;
    }
    let mut cast_times = (Vec::new(), Vec::new(), Vec::new());
    let mut call_times = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        for (times, calls_round) in [(&mut cast_times, false), (&mut call_times, true)] {
            let round = |refs: &Arc<PairRefs>| {
                let refs = refs.clone();
                async move {
                    if calls_round {
                        calls(refs).await
                    } else {
                        casts(refs).await
                    }
                }
            };
            let (p, t) = if i % 2 == 0 {
                let p = round(&plain).await;
                (p, round(&tls).await)
            } else {
                let t = round(&tls).await;
                (round(&plain).await, t)
            };
            times.0.push(p.as_secs_f64());
            times.1.push(t.as_secs_f64());
            // TLS speed relative to plain = time plain / time TLS.
            times.2.push(p.as_secs_f64() / t.as_secs_f64());
        }
    }
    let (pm, tm) = (median(&mut cast_times.0), median(&mut cast_times.1));
    println!(
        "cluster_tls_paired: {pairs} pairs of {CASTS} remote casts: median round plain {} ({:.3} M msg/s), TLS {} ({:.3} M msg/s); TLS = {:.3}x plain throughput (median of per-pair ratios)",
        fmt_secs(pm),
        CASTS as f64 / pm / 1e6,
        fmt_secs(tm),
        CASTS as f64 / tm / 1e6,
        median(&mut cast_times.2),
    );
    let (pm, tm) = (median(&mut call_times.0), median(&mut call_times.1));
    println!(
        "cluster_tls_paired: {pairs} pairs of {CALLS} remote calls one after another: median call plain {}, TLS {}; TLS = {:.3}x plain calls per second (median of per-pair ratios)",
        fmt_secs(pm / CALLS as f64),
        fmt_secs(tm / CALLS as f64),
        median(&mut call_times.2),
    );
}

/// What the paired TLS check needs of a [`Pair`].
#[cfg(feature = "tls")]
struct PairRefs {
    /// `b`'s remote ref to the counter.
    counter: RemoteRef<Tick>,
    /// What the counter shares with the bench.
    progress: Progress,
    /// `b`'s remote ref to the echo.
    echo: RemoteRef<Echo>,
}

#[cfg(feature = "tls")]
impl Pair {
    /// The refs the paired TLS check uses.
    fn refs(&self) -> Arc<PairRefs> {
        Arc::new(PairRefs {
            counter: self.remote_counter.clone(),
            progress: self.progress.clone(),
            echo: self.remote_echo.clone(),
        })
    }
}

/// Runs the TLS benches (criterion's `cluster_tls_*` groups and the paired
/// check) on a plain pair and a TLS pair; fails if a node went down.
#[cfg(feature = "tls")]
fn tls_benches(c: &mut Criterion, rt: &Runtime, how: &Invocation, plain: &Pair) {
    let (a, b) = tls_configs();
    let tls = rt.block_on(Pair::start_with(
        NodeConfig::new("a").tls(a),
        NodeConfig::new("b").tls(b),
    ));
    bench_tls(c, rt, plain, &tls);
    if how.runs("cluster_tls_paired") {
        let pairs = if how.test { 2 } else { PAIRS };
        run(rt, tls_paired(plain.refs(), tls.refs(), pairs));
    }
    let downs = rt.block_on(tls.finish());
    assert_eq!(downs, 0, "a TLS node went down during the benches");
}

// ---------------------------------------------------------------------------
// 8. Membership, cluster-wide names and groups (issue 10)

/// Interleaved rounds of each cluster size in the mesh part, when
/// `CLUSTER_MESH_ROUNDS` is not set.
const DEFAULT_MESH_ROUNDS: usize = 10;
/// Interleaved rounds of each cluster size in the heartbeat CPU part.
const HEARTBEAT_ROUNDS: usize = 5;
/// Seconds of idling measured per round of the heartbeat CPU part, when
/// `CLUSTER_HEARTBEAT_SECS` is not set.
const DEFAULT_HEARTBEAT_SECS: u64 = 3;
/// The cluster sizes of the mesh and heartbeat parts.
const MESH_SIZES: [usize; 3] = [2, 8, 16];
/// Names registered on the holder node of the `whereis` bench (and keys of
/// its `HashMap` baseline).
const WHEREIS_NAMES: usize = 1_000;
/// The benches of the `cluster_whereis` group.
const WHEREIS_IDS: [&str; 3] = ["hashmap_get", "hashmap_get_clone", "whereis"];
/// How often the mesh part looks at every node's view.
const POLL: Duration = Duration::from_millis(1);

/// Counts [`Tick`]s into a [`Progress`] it may share with other counters
/// (on other nodes of this process): the round is complete when all of
/// them together have received its casts.
struct SharedCounter {
    /// Shared with the bench and the other counters.
    progress: Progress,
}

impl Actor for SharedCounter {
    type Msg = Tick;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Tick>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Tick>,
        _: Tick,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let p = &self.progress;
        let n = p.received.fetch_add(1, Ordering::AcqRel) + 1;
        if n == p.target.load(Ordering::Acquire) {
            p.done.notify_one();
        }
        Ok(())
    }
}

/// A [`SharedCounter`] spawned locally on `progress`.
async fn spawn_shared_counter(progress: &Progress) -> ActorRef<Tick> {
    let (actor, _) = Actor::spawn(
        None,
        SharedCounter {
            progress: progress.clone(),
        },
        (),
    )
    .await
    .expect("shared counter");
    actor
}

/// Polls `done` every [`POLL`] until it holds, at most [`WAIT`].
async fn poll_until(what: &str, done: impl FnMut() -> bool) {
    poll_with(what, done, || tokio::time::sleep(POLL)).await
}

/// Polls `done` until it holds, at most [`WAIT`], yielding to the runtime
/// between two looks (a resolution of microseconds, where a sleep rounds
/// up to the timer's 1 ms; for waits of a few milliseconds only).
async fn spin_until(what: &str, done: impl FnMut() -> bool) {
    poll_with(what, done, tokio::task::yield_now).await
}

/// Polls `done` until it holds, at most [`WAIT`], awaiting `pause()`
/// between two looks.
async fn poll_with<F: Future<Output = ()>>(
    what: &str,
    mut done: impl FnMut() -> bool,
    pause: impl Fn() -> F,
) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            pause().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within {WAIT:?}"));
}

/// Whether `node` sees `n - 1` members, all `Up`.
fn sees_full_mesh(node: &Node, n: usize) -> bool {
    let members = node.members();
    members.len() == n - 1 && members.iter().all(|m| m.status == MemberStatus::Up)
}

/// `n` in-process nodes joined through one seed (`n00`).
struct Mesh {
    /// The nodes, the seed first.
    nodes: Vec<Node>,
    /// From starting the seed until each node first saw a full mesh.
    full: Vec<Duration>,
}

impl Mesh {
    /// Starts the seed and `n - 1` nodes with it as their only seed, one
    /// after another, and looks at every node's [`Node::members`] until
    /// each shows `n - 1` members `Up`: after every event of any node, and
    /// every [`POLL`] (for what happened before a node's subscription).
    async fn start(n: usize) -> Mesh {
        let start = Instant::now();
        let event = Arc::new(Notify::new());
        let watch = |node: &Node| {
            let mut events = node.subscribe();
            let event = event.clone();
            // Ends when the node shuts down.
            tokio::spawn(async move {
                while events.recv().await.is_some() {
                    event.notify_one();
                }
            });
        };
        let seed = node("n00").await;
        watch(&seed);
        let addr = seed.local_addr();
        let mut nodes = vec![seed];
        for i in 1..n {
            let node = start_node(NodeConfig::new(format!("n{i:02}")).seeds([addr])).await;
            watch(&node);
            nodes.push(node);
        }
        let mut full: Vec<Option<Duration>> = vec![None; n];
        let look = || {
            for (node, seen) in nodes.iter().zip(&mut full) {
                if seen.is_none() && sees_full_mesh(node, n) {
                    *seen = Some(start.elapsed());
                }
            }
            full.iter().all(Option::is_some)
        };
        let next_event = || {
            let event = event.clone();
            async move {
                tokio::select! {
                    _ = event.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        };
        poll_with("every node sees a full mesh", look, next_event).await;
        Mesh {
            nodes,
            full: full.into_iter().flatten().collect(),
        }
    }

    /// When the first and the last node saw a full mesh.
    fn first_last(&self) -> (Duration, Duration) {
        let first = self.full.iter().min().copied().unwrap_or_default();
        let last = self.full.iter().max().copied().unwrap_or_default();
        (first, last)
    }

    /// Every node leaves (planned: nobody redials anybody).
    async fn leave(self) {
        for node in &self.nodes {
            node.leave().await;
        }
    }
}

/// One mesh run: the full-mesh times (first, last node), then the time
/// from the last node's `join_group` until every node lists the member.
async fn mesh_run(n: usize) -> (Duration, Duration, Duration) {
    let mesh = Mesh::start(n).await;
    let (first, last) = mesh.first_last();
    let (counter, _) = spawn_counter(0).await;
    let groups: Vec<_> = mesh
        .nodes
        .iter()
        .map(|node| node.group::<Tick>("mesh-group"))
        .collect();
    let joined = Instant::now();
    mesh.nodes[n - 1]
        .join_group("mesh-group", counter.clone())
        .expect("join_group");
    spin_until("every node lists the group member", || {
        groups.iter().all(|g| g.members().len() == 1)
    })
    .await;
    let visible = joined.elapsed();
    mesh.leave().await;
    counter.stop(None);
    (first, last, visible)
}

/// Bench 8 (`cluster_mesh`): `rounds` rounds, each one [`mesh_run`] per
/// cluster size in [`MESH_SIZES`] (interleaved); prints the medians.
async fn mesh(rounds: usize) {
    let mut times: Vec<[Vec<f64>; 3]> = MESH_SIZES.iter().map(|_| Default::default()).collect();
    for _ in 0..rounds {
        for (i, &n) in MESH_SIZES.iter().enumerate() {
            let (first, last, visible) = mesh_run(n).await;
            for (v, d) in times[i].iter_mut().zip([first, last, visible]) {
                v.push(d.as_secs_f64());
            }
            // Let the nodes that left finish closing.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (n, [first, last, visible]) in MESH_SIZES.iter().zip(&mut times) {
        let mut sorted = last.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "cluster_mesh: {n} nodes joined through one seed, {rounds} round(s): full mesh seen by the first node after {}, by every node (the last one) after {} (median; range {}-{}) (target for 16: 1 s); a join_group visible on every node after {} (median; max {}) (target: 50 ms)",
            fmt_secs(median(first)),
            fmt_secs(median(last)),
            fmt_secs(sorted[0]),
            fmt_secs(sorted[sorted.len() - 1]),
            fmt_secs(median(visible)),
            fmt_secs(visible.iter().copied().fold(0.0, f64::max)),
        );
    }
}

/// Bench 9 (`cluster_whereis`, criterion): `whereis` on node `b` for a
/// name held on node `a` (one of [`WHEREIS_NAMES`] registered there), vs
/// a `HashMap<String, String>` of as many names: a plain `get`, and a
/// `get` that clones the holder's name (what `whereis` returns).
fn bench_whereis(c: &mut Criterion, rt: &Runtime) {
    let (a, b, actor) = rt.block_on(async {
        let a = node("a").await;
        let b = start_node(NodeConfig::new("b").seeds([a.local_addr()])).await;
        let (actor, _) = spawn_counter(0).await;
        for i in 0..WHEREIS_NAMES {
            a.register(&format!("name-{i:04}"), actor.clone())
                .expect("register");
        }
        let last = format!("name-{:04}", WHEREIS_NAMES - 1);
        poll_until("b sees a's names", || b.whereis(&last).is_some()).await;
        (a, b, actor)
    });
    let map: std::collections::HashMap<String, String> = (0..WHEREIS_NAMES)
        .map(|i| (format!("name-{i:04}"), "a".to_string()))
        .collect();
    let name = format!("name-{:04}", WHEREIS_NAMES / 2);
    let mut group = c.benchmark_group("cluster_whereis");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function(WHEREIS_IDS[0], |bench| {
        bench.iter(|| map.get(black_box(name.as_str())).map(String::len))
    });
    group.bench_function(WHEREIS_IDS[1], |bench| {
        bench.iter(|| map.get(black_box(name.as_str())).cloned())
    });
    group.bench_function(WHEREIS_IDS[2], |bench| {
        bench.iter(|| b.whereis(black_box(name.as_str())))
    });
    group.finish();
    assert_eq!(b.whereis(&name).as_deref(), Some("a"));
    rt.block_on(async {
        b.leave().await;
        a.leave().await;
    });
    actor.stop(None);
}

/// What one round of [`split_round`] measured, in seconds.
#[derive(Clone, Copy)]
struct Split {
    /// The whole round, until the last cast arrived.
    round: f64,
    /// The casting loop alone: the sender's own cost, routing included.
    sending: f64,
    /// The process's CPU time during the round.
    cpu: f64,
}

/// [`cast_round`], also timing the casting loop alone and the process's
/// CPU.
async fn split_round<C: Fn(Tick)>(progress: &Progress, cast: &C) -> Split {
    let cpu = self_cpu();
    let start = Instant::now();
    let target = progress.received.load(Ordering::Acquire) + CASTS;
    progress.target.store(target, Ordering::Release);
    for i in 0..CASTS {
        cast(Tick(i));
    }
    let sending = start.elapsed().as_secs_f64();
    wait_for(progress, target).await;
    Split {
        round: start.elapsed().as_secs_f64(),
        sending,
        cpu: self_cpu().saturating_sub(cpu).as_secs_f64(),
    }
}

/// `pairs` pairs of [`split_round`]s, `direct` and `routed` back to back
/// (alternating which goes first), after 3 warm-up pairs.
async fn routed_vs_direct<D: Fn(Tick), R: Fn(Tick)>(
    progress: &Progress,
    direct: &D,
    routed: &R,
    pairs: usize,
) -> (Vec<Split>, Vec<Split>) {
    for _ in 0..3 {
        cast_round(progress, direct).await;
        cast_round(progress, routed).await;
    }
    let (mut d, mut r) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        if i % 2 == 0 {
            d.push(split_round(progress, direct).await);
            r.push(split_round(progress, routed).await);
        } else {
            r.push(split_round(progress, routed).await);
            d.push(split_round(progress, direct).await);
        }
    }
    (d, r)
}

/// Prints one comparison of [`routed_vs_direct`]: medians of the rounds,
/// and of the per-pair throughput ratios.
fn print_routed(what: &str, (direct, routed): (Vec<Split>, Vec<Split>)) {
    let pairs = direct.len();
    // Throughput ratio routed / direct = time direct / time routed.
    let mut ratio: Vec<f64> = direct
        .iter()
        .zip(&routed)
        .map(|(d, r)| d.round / r.round)
        .collect();
    let med = |v: &[Split], f: fn(&Split) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    let ns = |v: &[Split], f: fn(&Split) -> f64| med(v, f) * 1e9 / CASTS as f64;
    let (dm, rm) = (med(&direct, |s| s.round), med(&routed, |s| s.round));
    println!(
        "cluster_group_cast: {what}, {pairs} pairs of {CASTS} casts ({}): median round direct {} ({:.3} M msg/s), group {} ({:.3} M msg/s); group = {:.3}x direct throughput (median of per-pair ratios; target 0.8x); casting loop per message (median of rounds): direct {:.0} ns, group {:.0} ns; process CPU per message: direct {:.0} ns, group {:.0} ns",
        allocator(),
        fmt_secs(dm),
        CASTS as f64 / dm / 1e6,
        fmt_secs(rm),
        CASTS as f64 / rm / 1e6,
        median(&mut ratio),
        ns(&direct, |s| s.sending),
        ns(&routed, |s| s.sending),
        ns(&direct, |s| s.cpu),
        ns(&routed, |s| s.cpu),
    );
}

/// Bench 10 (`cluster_group_cast`): nodes `a` and `c` each run a counter
/// (one shared progress), `b` casts. A `GroupRef` (round robin) over one
/// member (`a`'s counter) vs `b`'s `RemoteRef` to the same actor; then a
/// group of both counters vs the two `RemoteRef`s taken in turn.
async fn group_cast(pairs: usize) {
    let a = node("a").await;
    let c = start_node(NodeConfig::new("c").seeds([a.local_addr()])).await;
    let b = start_node(NodeConfig::new("b").seeds([a.local_addr()])).await;
    let mut events = b.subscribe();
    poll_until("b sees a full mesh", || sees_full_mesh(&b, 3)).await;
    let progress = Progress::default();
    let on_a = spawn_shared_counter(&progress).await;
    let on_c = spawn_shared_counter(&progress).await;
    a.export("counter", on_a.clone()).expect("export");
    c.export("counter", on_c.clone()).expect("export");
    a.join_group("one", on_a.clone()).expect("join_group");
    a.join_group("two", on_a.clone()).expect("join_group");
    c.join_group("two", on_c.clone()).expect("join_group");
    let one = b.group::<Tick>("one").routing(GroupRouting::RoundRobin);
    let two = b.group::<Tick>("two").routing(GroupRouting::RoundRobin);
    poll_until("b lists the groups", || {
        one.members().len() == 1 && two.members().len() == 2
    })
    .await;
    let to_a = b.lookup::<Tick>("a", "counter").await.expect("lookup");
    let to_c = b.lookup::<Tick>("c", "counter").await.expect("lookup");

    let direct = remote_cast(&to_a);
    let routed = |t| one.cast(t).expect("group cast");
    print_routed(
        "one remote member",
        routed_vs_direct(&progress, &direct, &routed, pairs).await,
    );

    let turn = AtomicU64::new(0);
    let direct = |t| {
        let to = if turn.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            &to_a
        } else {
            &to_c
        };
        to.cast(t).expect("remote cast")
    };
    let routed = |t| two.cast(t).expect("group cast");
    print_routed(
        "members on 2 remote nodes (direct: the two RemoteRefs in turn)",
        routed_vs_direct(&progress, &direct, &routed, pairs).await,
    );

    let mut downs = 0;
    while let Some(event) = events.try_recv() {
        if let NodeEvent::Down { peer, reason } = event {
            eprintln!("unexpected Down of {peer} during the group casts: {reason}");
            downs += 1;
        }
    }
    for n in [&b, &c, &a] {
        n.leave().await;
    }
    on_a.stop(None);
    on_c.stop(None);
    assert_eq!(downs, 0, "a node went down during the group casts");
}

/// Bench 11 (`cluster_heartbeat_cpu`): `rounds` rounds, each idling for
/// `idle` with no node (the baseline: the bench process itself), with one
/// node alone, and with each cluster size of [`MESH_SIZES`] in a full mesh (interleaved,
/// fresh nodes every time, 1 s after the mesh formed); prints the process
/// CPU (`getrusage`) per second of idling, per node and per heartbeat.
async fn heartbeat_cpu(rounds: usize, idle: Duration) {
    /// Process CPU per second of idling with `n` nodes (0: none).
    async fn idle_cpu(n: usize, idle: Duration) -> f64 {
        let mesh = if n == 0 {
            None
        } else {
            Some(Mesh::start(n).await)
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu = self_cpu();
        tokio::time::sleep(idle).await;
        let used = self_cpu().saturating_sub(cpu);
        if let Some(mesh) = mesh {
            mesh.leave().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        used.as_secs_f64() / idle.as_secs_f64()
    }
    // No node (the baseline), one node alone (no peer), then the meshes.
    let sizes: Vec<usize> = [0, 1].into_iter().chain(MESH_SIZES).collect();
    let mut per_sec: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    for _ in 0..rounds {
        for (v, &n) in per_sec.iter_mut().zip(&sizes) {
            v.push(idle_cpu(n, idle).await);
        }
    }
    let medians: Vec<f64> = per_sec.iter_mut().map(|v| median(v)).collect();
    let base = medians[0];
    let alone = (medians[1] - base).max(0.0);
    println!(
        "cluster_heartbeat_cpu: {rounds} rounds of {:.1} s idling: no node (baseline) {:.3} ms of process CPU per s; one node alone (no peer) {:.1} µs per s above it",
        idle.as_secs_f64(),
        base * 1e3,
        alone * 1e6,
    );
    // The default heartbeat interval, 200 ms: 5 a second to each peer.
    let beats_per_peer = 5.0;
    let per_node = |total: f64, n: usize| (total - base).max(0.0) / n as f64;
    let at_2 = per_node(medians[2], 2);
    for (&total, &n) in medians.iter().zip(&sizes).skip(2) {
        let node = per_node(total, n);
        // Each node sends `n - 1` heartbeat streams and receives as many.
        let beats = beats_per_peer * (n - 1) as f64;
        println!(
            "cluster_heartbeat_cpu: {n} idle nodes in a full mesh: process {:.3} ms CPU per s (median of rounds, {:.1} µs above the baseline); per node {:.1} µs CPU per s ({:.4}% of a core; {:.2}x the per-node cost at 2 nodes); above a lone node's cost, {:.1} µs per heartbeat sent and received ({beats:.0} each way per node per s)",
            total * 1e3,
            (total - base) * 1e6,
            node * 1e6,
            node * 100.0,
            node / at_2,
            (node - alone) * 1e6 / beats,
        );
    }
}

/// How this process was invoked: criterion's mode and the name filter, as
/// far as the custom measurements need them.
struct Invocation {
    /// `cargo test --benches` (no `--bench`, or `--test`): run each part
    /// briefly.
    test: bool,
    /// `--list`: name the parts, run nothing.
    list: bool,
    /// The positional filter, if any.
    filter: Option<String>,
}

impl Invocation {
    /// Reads the process arguments the way criterion does, roughly.
    fn from_args() -> Invocation {
        /// criterion's options that take a value.
        const VALUED: [&str; 17] = [
            "--color",
            "-c",
            "--save-baseline",
            "-s",
            "--baseline",
            "-b",
            "--baseline-lenient",
            "--load-baseline",
            "--sample-size",
            "--warm-up-time",
            "--measurement-time",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--profile-time",
            "--plotting-backend",
        ];
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |flag: &str| args.iter().any(|a| a == flag);
        let mut filter = None;
        let mut skip = false;
        for arg in &args {
            if skip {
                skip = false;
            } else if arg.starts_with('-') {
                skip =
                    VALUED.contains(&arg.as_str()) || arg == "--output-format" || arg == "--format";
            } else if filter.is_none() {
                filter = Some(arg.clone());
            }
        }
        Invocation {
            test: !has("--bench") || has("--test"),
            list: has("--list"),
            filter,
        }
    }

    /// Whether the custom part `name` runs (and says so in list mode).
    fn runs(&self, name: &str) -> bool {
        let selected = self.filter.as_deref().is_none_or(|f| name.contains(f));
        if self.list {
            if selected {
                println!("{name}: benchmark");
            }
            return false;
        }
        selected
    }
}

/// The parts of issue 10 (membership, names, groups): `cluster_mesh`,
/// `cluster_whereis` (criterion), `cluster_group_cast` and
/// `cluster_heartbeat_cpu`, each briefly under `cargo test --benches`.
fn issue_10_benches(c: &mut Criterion, rt: &Runtime, how: &Invocation) {
    if how.runs("cluster_mesh") {
        let rounds = match std::env::var("CLUSTER_MESH_ROUNDS") {
            Ok(s) => s.parse().expect("CLUSTER_MESH_ROUNDS: a number"),
            Err(_) if how.test => 1,
            Err(_) => DEFAULT_MESH_ROUNDS,
        };
        run(rt, mesh(rounds));
    }
    // The nodes and names are set up only when criterion will run (or
    // list) one of the group's benches.
    let whereis_ids = WHEREIS_IDS.map(|id| format!("cluster_whereis/{id}"));
    if how.list
        || how
            .filter
            .as_deref()
            .is_none_or(|f| whereis_ids.iter().any(|id| id.contains(f)))
    {
        bench_whereis(c, rt);
    }
    if how.runs("cluster_group_cast") {
        run(rt, group_cast(if how.test { 2 } else { PAIRS }));
    }
    if how.runs("cluster_heartbeat_cpu") {
        let rounds = if how.test { 1 } else { HEARTBEAT_ROUNDS };
        let idle = match std::env::var("CLUSTER_HEARTBEAT_SECS") {
            Ok(s) => Duration::from_secs(s.parse().expect("CLUSTER_HEARTBEAT_SECS: whole seconds")),
            Err(_) if how.test => Duration::from_millis(500),
            Err(_) => Duration::from_secs(DEFAULT_HEARTBEAT_SECS),
        };
        run(rt, heartbeat_cpu(rounds, idle));
    }
}

/// Runs the criterion groups, then the custom measurements (or, started
/// by the two-process part, the receiver).
fn main() {
    if std::env::var_os(ROLE_VAR).is_some_and(|r| r == RECEIVER_ROLE) {
        receiver();
        return;
    }
    let how = Invocation::from_args();
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();

    let pair = rt.block_on(Pair::start());
    bench_cast_throughput(&mut c, &rt, &pair);
    bench_call_latency(&mut c, &rt, &pair);
    if how.runs("cluster_cast_paired") {
        let pairs = if how.test { 2 } else { PAIRS };
        let (counter, remote, progress) = (
            pair.counter.clone(),
            pair.remote_counter.clone(),
            pair.progress.clone(),
        );
        run(&rt, cast_paired(counter, remote, progress, pairs));
    }
    if how.runs("cluster_call_distribution") {
        let calls = if how.test { 100 } else { TIMED_CALLS };
        let (local, remote) = (pair.local_echo.clone(), pair.remote_echo.clone());
        run(&rt, call_distribution(local, remote, calls));
    }
    #[cfg(feature = "tls")]
    tls_benches(&mut c, &rt, &how, &pair);
    let downs = rt.block_on(pair.finish());
    assert_eq!(downs, 0, "a node went down during the benches");
    if how.runs("cluster_send_buffer") {
        run(&rt, send_buffer_paired(if how.test { 2 } else { PAIRS }));
    }

    if how.runs("cluster_detection") {
        let runs = if how.test { 1 } else { DETECTION_RUNS };
        let warm_up = match std::env::var("CLUSTER_DETECTION_WARM_UP_SECS") {
            Ok(s) => s
                .parse()
                .expect("CLUSTER_DETECTION_WARM_UP_SECS: whole seconds"),
            Err(_) => DEFAULT_DETECTION_WARM_UP_SECS,
        };
        run(&rt, detection(runs, Duration::from_secs(warm_up)));
    }
    if how.runs("cluster_two_process") {
        let rounds = match std::env::var("CLUSTER_TWO_PROCESS_ROUNDS") {
            Ok(s) => s.parse().expect("CLUSTER_TWO_PROCESS_ROUNDS: a number"),
            Err(_) if how.test => 5,
            Err(_) => DEFAULT_TWO_PROCESS_ROUNDS,
        };
        let receiver = ReceiverProcess::start();
        run(&rt, two_process(receiver.addr, receiver.stat(), rounds));
        drop(receiver);
    }
    if how.runs("cluster_soak") {
        let secs = match std::env::var("CLUSTER_SOAK_SECS") {
            Ok(s) => s.parse().expect("CLUSTER_SOAK_SECS: whole seconds"),
            Err(_) if how.test => 1,
            Err(_) => DEFAULT_SOAK_SECS,
        };
        run(&rt, soak(secs));
    }
    issue_10_benches(&mut c, &rt, &how);
    c.final_summary();
}
