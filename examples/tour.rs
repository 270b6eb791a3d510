//! A tour of ractor-otp's supervision: a small application tree that fails
//! on purpose and recovers, narrated on stdout.
//!
//! ```text
//! app (OneForOne)
//!   cache            worker, permanent
//!   storage (RestForOne)
//!     db             worker, permanent
//!     writer         worker, permanent, depends on db
//!   sessions         DynamicSupervisor of temporary sessions
//!   flaky            worker, transient, restarts with backoff
//!   hashers          a pool of 3 workers, least loaded, redelivery on
//! ```
//!
//! The last part is a cluster: two nodes in this process, a counter
//! exported on one and used from the other, then a simulated network
//! partition (a small TCP relay between them that starts dropping every
//! byte), its detection by the heartbeats, and the reconnection once it
//! heals.
//!
//! Run it with `cargo run --example tour`. Set `TOUR_TRACE=1` to also see
//! the supervisors' structured tracing events.
//!
//! Options:
//!
//! - `--observe 127.0.0.1:4000` (feature `observer`): after step 7 the tree
//!   keeps running, with a pool that keeps working and two nodes, and the
//!   observer's page is served there until Ctrl-C:
//!   `cargo run --example tour --features observer -- --observe 127.0.0.1:4000`
//! - `--metrics 127.0.0.1:9000` (feature `prometheus`): serves the metrics
//!   for Prometheus to scrape.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::cluster::phi::{PhiConfig, PhiDetector};
use ractor_otp::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Messages every actor in the tour understands.
enum Msg {
    /// Fail with a panic: the supervisor sees an abnormal exit.
    Crash,
    /// Answer with this incarnation's id and its handled-message count.
    Hello(RpcReplyPort<(ActorId, u64)>),
    /// Stop normally (a transient child is not restarted after this).
    Finish,
}

/// A pool worker that hashes job numbers; the first time it sees job 42 it
/// fails (a transient fault), so the pool restarts it and redelivers the job.
#[derive(Clone)]
struct Hasher {
    fault: Arc<AtomicBool>,
    hashed: Arc<AtomicU64>,
}

impl Actor for Hasher {
    type Msg = u64;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<u64>,
        job: u64,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if job == 42 && !self.fault.swap(true, Ordering::SeqCst) {
            return Err(format!("transient fault in {} on job {job}", myself.get_id()).into());
        }
        let _digest = job.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        self.hashed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A worker that narrates its own lifecycle.
#[derive(Clone)]
struct Worker {
    name: &'static str,
}

impl Actor for Worker {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        println!("    [{}] started as {}", self.name, myself.get_id());
        Ok(0)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Msg>,
        _: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        println!("    [{}] {} stopped gracefully", self.name, myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        handled: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *handled += 1;
        match msg {
            Msg::Crash => panic!("{} crashed on purpose", self.name),
            Msg::Hello(reply) => {
                let _ = reply.send((myself.get_id(), *handled));
            }
            Msg::Finish => myself.stop(None),
        }
        Ok(())
    }
}

fn worker(name: &'static str) -> ChildSpec {
    ChildSpec::new(name, Worker { name }, || ())
}

/// Waits (at most ~2 s) until `child` answers from an incarnation other than
/// `old`, and returns the new id.
async fn new_incarnation(child: &ChildRef<Msg>, old: ActorId) -> Result<ActorId, String> {
    for _ in 0..400 {
        if let Ok((id, _)) = child
            .call(Msg::Hello, Some(Duration::from_millis(100)))
            .await
        {
            if id != old {
                return Ok(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!("{} did not come back", child.id()))
}

async fn hello(child: &ChildRef<Msg>) -> Result<ActorId, Box<dyn std::error::Error>> {
    Ok(child
        .call(Msg::Hello, Some(Duration::from_secs(1)))
        .await?
        .0)
}

/// The storage supervisor's restart intensity: at most this many restarts
/// in any [`STORAGE_PERIOD`]; one more and it gives up (step 7).
const STORAGE_INTENSITY: u32 = 2;
const STORAGE_PERIOD: Duration = Duration::from_secs(5);

fn step(title: &str) {
    println!("\n== {title}");
}

/// A child's or a worker's status in one word.
fn status_word(status: ChildStatus) -> &'static str {
    match status {
        ChildStatus::Running => "running",
        ChildStatus::Restarting => "restarting",
        ChildStatus::Stopped => "stopped",
    }
}

/// How many of a dynamic supervisor's children run, in words.
fn sessions_running(counts: ChildCounts) -> String {
    match counts.active {
        1 => "1 session running".to_string(),
        n => format!("{n} sessions running"),
    }
}

/// The tree below `app`, with each pool worker's load and restarts after
/// its line (`worker-N` under `hashers`).
async fn tree(app: &SupervisorRef, pool: &PoolRef<u64>) -> Result<String, SupervisorError> {
    let workers = pool.stats().workers;
    let mut out = String::new();
    // The indentation of the `hashers` line while inside its block.
    let mut in_pool: Option<usize> = None;
    for line in app.render_tree().await?.lines() {
        let indent = line.len() - line.trim_start().len();
        if in_pool.is_some_and(|pool_indent| indent <= pool_indent) {
            in_pool = None;
        }
        out.push_str(line);
        if in_pool.is_some() {
            let index = line
                .trim_start()
                .strip_prefix("worker-")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(w) = index.and_then(|i| workers.iter().find(|w| w.index == i)) {
                out.push_str(&format!(
                    ", processed {}, restarts {}",
                    w.processed, w.restarts
                ));
            }
        }
        if line.trim_start().starts_with("hashers ") {
            in_pool = Some(indent);
        }
        out.push('\n');
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse()?;
    if let Some(addr) = options.metrics {
        serve_metrics(addr)?;
    }
    if std::env::var_os("TOUR_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_target(false)
            .compact()
            .init();
    }
    // Panics in actors are caught by ractor and become supervision events;
    // keep the default hook from printing a backtrace banner for each.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        println!("    !! panic: {text}");
    }));

    step("1. Start the tree: children start in order, each fully before the next");
    let storage = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(STORAGE_INTENSITY, STORAGE_PERIOD)
        .child(worker("db"))
        .child(worker("writer"));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .child(worker("cache"))
        .child(ChildSpec::supervisor("storage", storage))
        .child(ChildSpec::dynamic_supervisor(
            "sessions",
            DynamicSpec::new().max_children(100),
        ))
        .child(
            worker("flaky")
                .restart(Restart::Transient)
                .backoff(Backoff::new(
                    Duration::from_millis(100),
                    Duration::from_secs(1),
                )),
        );
    // A pool of 3 hashers in the same tree, with redelivery on.
    let fault = Arc::new(AtomicBool::new(false));
    let hashed = Arc::new(AtomicU64::new(0));
    let hashers = Pool::builder(
        Hasher {
            fault: fault.clone(),
            hashed: hashed.clone(),
        },
        |_index| (),
    )
    .size(3)
    .routing(Routing::LeastLoaded)
    .redelivery(true);
    let (hashers_spec, hashers) = ChildSpec::pool("hashers", hashers)?;
    let spec = spec.child(hashers_spec);
    let (app, _join) = Supervisor::spawn(Some("app".into()), spec).await?;
    print!("{}", tree(&app, &hashers).await?);

    step("2. One-for-one: the cache crashes, only the cache restarts");
    let cache = app.child::<Msg>("cache")?;
    let before = hello(&cache).await?;
    cache.cast(Msg::Crash).map_err(|e| e.to_string())?;
    let after = new_incarnation(&cache, before).await?;
    println!("  cache was {before}, now {after}; the same ChildRef reaches it");

    step("3. Rest-for-one: the db crashes, so the writer that depends on it restarts too");
    print!("{}", tree(&app, &hashers).await?);
    // Reach the grandchildren through the storage supervisor's own handle.
    let (db, writer) = storage_handles(&app).await?;
    let (db0, writer0) = (hello(&db).await?, hello(&writer).await?);
    db.cast(Msg::Crash).map_err(|e| e.to_string())?;
    // Storage's first restart: it counts towards its intensity (step 7).
    let first_storage_restart = Instant::now();
    let db1 = new_incarnation(&db, db0).await?;
    let writer1 = new_incarnation(&writer, writer0).await?;
    println!("  db {db0} -> {db1}, writer {writer0} -> {writer1} (stopped in reverse, restarted in order)");

    step("4. A dynamic supervisor of sessions: started at run time, temporary");
    let sessions = app.dynamic_child("sessions").ok_or("no sessions child")?;
    let mut session_refs = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let cell = sessions
            .start_child(ChildSpec::new(name, Worker { name }, || ()).restart(Restart::Temporary))
            .await?;
        session_refs.push(ActorRef::<Msg>::from(cell));
    }
    println!(
        "  alice, bob and carol started: {}",
        sessions_running(sessions.count_children().await?)
    );
    session_refs[1]
        .cast(Msg::Crash)
        .map_err(|_| "bob's session is gone")?;
    for _ in 0..400 {
        if sessions.count_children().await?.specs == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "  bob's session crashed and, being temporary, was not restarted: {}",
        sessions_running(sessions.count_children().await?)
    );

    step("5. Backoff: flaky crashes and waits before it restarts; the supervisor keeps answering");
    let flaky = app.child::<Msg>("flaky")?;
    let flaky0 = hello(&flaky).await?;
    flaky.cast(Msg::Crash).map_err(|e| e.to_string())?;
    for _ in 0..100 {
        let status = app
            .which_children()
            .await?
            .into_iter()
            .find(|c| c.id == "flaky")
            .map(|c| c.status);
        if status == Some(ChildStatus::Restarting) {
            println!("  flaky is restarting (waiting out its backoff); a cast now comes back instead of being lost:");
            if let Err(err) = flaky.cast(Msg::Finish) {
                println!("    cast refused: {err}");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let flaky1 = new_incarnation(&flaky, flaky0).await?;
    println!("  flaky is back as {flaky1} after its backoff");
    flaky.cast(Msg::Finish).map_err(|e| e.to_string())?;
    for _ in 0..400 {
        if flaky.current().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("  flaky finished normally; being transient it stays stopped");

    step("6. A pool: one worker hits a transient fault mid-stream");
    for job in 0..100u64 {
        hashers.cast(job).map_err(|_| "the pool stopped")?;
    }
    for _ in 0..400 {
        if hashed.load(Ordering::SeqCst) == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = hashers.stats();
    println!(
        "  {} of 100 jobs hashed; the faulty worker restarted in place and its job went to another worker",
        hashed.load(Ordering::SeqCst)
    );
    for w in &stats.workers {
        println!(
            "    worker {}: {}, processed {}, restarts {}",
            w.index,
            status_word(w.status),
            w.processed,
            w.restarts
        );
    }
    println!("    dead letters: {}", stats.dead_letters);

    step("7. Escalation: the db crash-loops beyond storage's intensity (2 restarts in 5 s)");
    let storage_before = storage_id(&app).await?;
    let (db, _) = storage_handles(&app).await?;
    // Storage's restarts within its 5 s window: step 3's, if still inside.
    let mut restarts = u32::from(first_storage_restart.elapsed() < STORAGE_PERIOD);
    println!("  storage has restarted {restarts} time(s) in the last 5 s (step 3)");
    while restarts <= STORAGE_INTENSITY {
        let old = hello(&db).await?;
        restarts += 1;
        db.cast(Msg::Crash).map_err(|e| e.to_string())?;
        if restarts <= STORAGE_INTENSITY {
            println!(
                "  db {old} crashes: storage's restart #{restarts} in 5 s, within its intensity of {STORAGE_INTENSITY}"
            );
        } else {
            println!(
                "  db {old} crashes: that would be storage's restart #{restarts} in 5 s, one more than its intensity of {STORAGE_INTENSITY}:"
            );
            println!(
                "  storage gives up: it stops its other child (writer) and fails, an abnormal exit for app"
            );
        }
        new_incarnation(&db, old).await?;
    }
    let storage_after = storage_id(&app).await?;
    println!(
        "  app (one-for-one) restarted storage: {storage_before} -> {storage_after}, with a fresh restart count;"
    );
    println!(
        "  the db ChildRef taken before still reaches the new db {}:",
        hello(&db).await?
    );
    print!("{}", tree(&app, &hashers).await?);

    if let Some(addr) = options.observe {
        return observe(addr, &app, &hashers).await;
    }

    step("8. Graceful shutdown: children stop in reverse start order");
    app.cell()
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await?;
    cluster().await?;
    println!("\nThe tour is over.");
    Ok(())
}

/// The command line: `--observe ADDR`, `--metrics ADDR`.
#[derive(Default)]
struct Options {
    observe: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

impl Options {
    fn parse() -> Result<Options, Box<dyn std::error::Error>> {
        let mut options = Options::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--observe" => &mut options.observe,
                "--metrics" => &mut options.metrics,
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; options: --observe ADDR, --metrics ADDR"
                    )
                    .into())
                }
            };
            let addr = args
                .next()
                .ok_or_else(|| format!("{arg} needs an address, such as 127.0.0.1:4000"))?;
            *slot = Some(addr.parse().map_err(|e| format!("{arg} {addr}: {e}"))?);
        }
        if options.observe.is_some() && cfg!(not(feature = "observer")) {
            return Err("--observe needs the `observer` feature: cargo run --example tour --features observer -- --observe 127.0.0.1:4000".into());
        }
        Ok(options)
    }
}

/// Serves the metrics for Prometheus on `addr`.
#[cfg(feature = "prometheus")]
fn serve_metrics(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    ractor_otp::metrics::install_prometheus(addr)?;
    println!("metrics for Prometheus at http://{addr}/metrics");
    Ok(())
}

#[cfg(not(feature = "prometheus"))]
fn serve_metrics(_: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    Err("--metrics needs the `prometheus` feature: cargo run --example tour --features prometheus -- --metrics 127.0.0.1:9000".into())
}

/// Keeps the tree running and observable at `addr` until Ctrl-C: the pool
/// keeps hashing, two nodes heartbeat each other, and children can be
/// killed, terminated and restarted from the page (on this machine).
#[cfg(feature = "observer")]
async fn observe(
    addr: SocketAddr,
    app: &SupervisorRef,
    hashers: &PoolRef<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    use ractor_otp::observer::{Actions, Observer};
    step("8. Observe: the tree keeps running, with a pool at work and a two-node cluster");
    let alpha = Node::start(fast_node("alpha")).await?;
    let beta = Node::start(fast_node("beta")).await?;
    alpha.connect(beta.local_addr()).await?;
    // Beta runs a small tree of its own and an observer of it (on any
    // port): alpha's page shows beta's tree as beta reports it.
    let edge = SupervisorSpec::new(Strategy::OneForOne)
        .child(worker("gateway"))
        .child(worker("sessions-cache"));
    let (edge, _) = Supervisor::spawn(Some("edge".into()), edge).await?;
    let on_beta = Observer::builder()
        .supervisor(&edge)
        .node(&beta)
        .serve("127.0.0.1:0".parse()?)
        .await?;
    let observer = Observer::builder()
        .supervisor(app)
        .pool("hashers", hashers)
        .node(&alpha)
        .actions(Actions::Loopback)
        .serve(addr)
        .await?;
    println!("  open {} to watch it live", observer.url());
    println!("  (kill, terminate or restart children from the page; Ctrl-C stops the tour)");
    let jobs = hashers.clone();
    let traffic = tokio::spawn(async move {
        for job in 1000u64.. {
            if jobs.cast(job).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::signal::ctrl_c().await?;
    traffic.abort();
    observer.shutdown().await;
    on_beta.shutdown().await;
    edge.stop(Some(Duration::from_secs(5))).await?;
    step("9. Graceful shutdown: children stop in reverse start order");
    app.cell()
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await?;
    alpha.shutdown().await;
    beta.shutdown().await;
    println!("\nThe tour is over.");
    Ok(())
}

#[cfg(not(feature = "observer"))]
async fn observe(
    _: SocketAddr,
    _: &SupervisorRef,
    _: &PoolRef<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    Err("--observe needs the `observer` feature".into())
}

/// The actor id of the storage supervisor's running incarnation.
async fn storage_id(app: &SupervisorRef) -> Result<ActorId, Box<dyn std::error::Error>> {
    for _ in 0..400 {
        if let Some(storage) = app.supervisor_child("storage") {
            return Ok(storage.cell().get_id());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err("the storage supervisor did not come back".into())
}

/// The db and writer handles, through the storage supervisor's current
/// incarnation.
async fn storage_handles(
    app: &SupervisorRef,
) -> Result<(ChildRef<Msg>, ChildRef<Msg>), Box<dyn std::error::Error>> {
    for _ in 0..400 {
        if let Some(storage) = app.supervisor_child("storage") {
            if let (Ok(db), Ok(writer)) =
                (storage.child::<Msg>("db"), storage.child::<Msg>("writer"))
            {
                if db.current().is_some() && writer.current().is_some() {
                    return Ok((db, writer));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err("the storage supervisor did not come back".into())
}

// ---------------------------------------------------------------------------
// The cluster part: remote actors, failure detection, reconnection.

/// The counter's messages: a serde type with a stable tag, so they can
/// cross the network.
#[derive(Serialize, Deserialize, RemoteMessage)]
enum Counter {
    Add(u64),
    Get(RemoteReply<u64>),
}

/// A counter supervised and exported on node alpha, used from node beta.
#[derive(Clone)]
struct CounterActor;

impl Actor for CounterActor {
    type Msg = Counter;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Counter>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<Counter>,
        msg: Counter,
        total: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Counter::Add(n) => *total += n,
            // Never fails the counter: a caller that has gone away (its
            // call failed with NodeDown) is logged, not raised.
            Counter::Get(reply) => {
                reply.send(*total);
            }
        }
        Ok(())
    }
}

/// The tour's tuned heartbeats: every 50 ms, 100 ms of acceptable pause,
/// 20 ms minimum deviation (the defaults: 200 ms, 500 ms, 100 ms).
const TUNED: PhiConfig = PhiConfig {
    threshold: 8.0,
    heartbeat_interval: Duration::from_millis(50),
    min_std_dev: Duration::from_millis(20),
    acceptable_pause: Duration::from_millis(100),
    max_samples: 200,
};

/// A node with the [`TUNED`] heartbeats (a silent peer is down after about
/// 0.3 s instead of 1.4 s) and quick reconnections.
fn fast_node(name: &str) -> NodeConfig {
    NodeConfig::new(name)
        .cookie("tour cookie")
        .heartbeat_interval(TUNED.heartbeat_interval)
        .acceptable_pause(TUNED.acceptable_pause)
        .min_std_dev(TUNED.min_std_dev)
        .phi_threshold(TUNED.threshold)
        .reconnect(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
        ))
}

/// A TCP relay standing for the network between two nodes. Cut, it drops
/// every byte both ways while keeping the connections open (no reset, no
/// close: a partition, not a crash) and leaves new connections waiting in
/// its listen backlog, as unanswered packets would; healed, it forwards
/// again.
struct Relay {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Relay {
    /// Listens on an ephemeral port and forwards each connection to `to`.
    async fn start(to: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, mut cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                if cut_rx.wait_for(|cut| !cut).await.is_err() {
                    return; // the relay was dropped
                }
                let inbound = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = cut_rx.wait_for(|cut| *cut) => continue,
                };
                let Ok(outbound) = TcpStream::connect(to).await else {
                    continue; // dropping `inbound` closes it: the dialer retries
                };
                // As the nodes do: no Nagle delay on small frames.
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pipe(in_read, out_write, cut_rx.clone()));
                tokio::spawn(pipe(out_read, in_write, cut_rx.clone()));
            }
        });
        Ok(Relay { addr, cut })
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// Copies bytes one way, dropping them while the link is cut.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut cut: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let open = !*cut.borrow();
        if open && to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // A close does not cross a cut link either: hold `to` open until it
    // heals (dropping it sends the close on).
    let _ = cut.wait_for(|cut| !cut).await;
}

/// The next `Up` or `Down` event, waiting at most 3 s.
async fn up_or_down(events: &mut NodeEvents) -> Result<NodeEvent, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e @ (NodeEvent::Up { .. } | NodeEvent::Down { .. }))) => return Ok(e),
            Ok(Some(_)) => continue,
            Ok(None) => return Err("the node shut down".into()),
            Err(_) => return Err("no Up or Down event within 3 s".into()),
        }
    }
}

/// A down reason in a few words, with the heartbeat timeout's figures.
fn why(reason: &DownReason) -> String {
    match reason {
        DownReason::HeartbeatTimeout {
            phi,
            threshold,
            silence,
        } => format!(
            "heartbeat timeout (phi {phi:.1} above {threshold} after {} ms of silence)",
            silence.as_millis()
        ),
        other => other.to_string(),
    }
}

/// An event as one line.
fn describe(event: &NodeEvent) -> String {
    match event {
        NodeEvent::Up { peer } => format!("Up {peer}"),
        NodeEvent::Down { peer, reason } => format!("Down {peer}: {}", why(reason)),
        other => format!("{other:?}"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn cluster() -> Result<(), Box<dyn std::error::Error>> {
    step("9. A cluster: two nodes in this process; alpha exports a counter, beta uses it");
    let alpha = Node::start(fast_node("alpha")).await?;
    // The counter runs under alpha's own supervisor; the export follows it
    // across restarts.
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::new(
        "counter",
        CounterActor,
        || (),
    ));
    let (alpha_sup, _) = Supervisor::spawn(Some("alpha".into()), spec).await?;
    let counter = alpha_sup.child::<Counter>("counter")?;
    alpha.export_child("counter", counter)?;
    // Beta reaches alpha through the relay, the "network" we cut below.
    let relay = Relay::start(alpha.local_addr()).await?;
    let beta = Node::start(fast_node("beta")).await?;
    let mut alpha_events = alpha.subscribe();
    let mut beta_events = beta.subscribe();
    beta.connect(relay.addr).await?;
    println!(
        "  alpha listens on {}, beta dials it through the relay on {}",
        alpha.local_addr(),
        relay.addr
    );
    println!("  beta: {}", describe(&up_or_down(&mut beta_events).await?));
    println!(
        "  alpha: {}",
        describe(&up_or_down(&mut alpha_events).await?)
    );

    let remote = beta.lookup::<Counter>("alpha", "counter").await?;
    remote.cast(Counter::Add(2))?;
    remote.cast(Counter::Add(3))?;
    let started = Instant::now();
    let total = remote.call(Counter::Get, Duration::from_secs(1)).await?;
    println!(
        "  beta casts Add(2), Add(3), then calls Get: {total} in {} (round trip)",
        ms(started.elapsed())
    );
    // The heartbeats measure the round trip too, and keep phi low.
    let mut peer = beta.peer("alpha").ok_or("beta forgot alpha")?;
    for _ in 0..100 {
        if peer.rtt.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        peer = beta.peer("alpha").ok_or("beta forgot alpha")?;
    }
    let status = match peer.status {
        PeerStatus::Up => "up",
        PeerStatus::Suspect => "suspect",
        PeerStatus::Down => "down",
    };
    println!(
        "  beta's view of alpha: {status}, heartbeat rtt {}, phi {:.2}",
        peer.rtt.map_or("n/a".into(), ms),
        peer.phi
    );
    let monitor = beta.monitor(&remote)?;
    println!("  beta monitors alpha's counter");

    step("10. A network partition: the relay silently drops every byte, both ways");
    // When phi crosses the threshold after a silence, for a steady peer;
    // phi is judged at each heartbeat tick, so detection is at the next one.
    let crossing = |config: PhiConfig| PhiDetector::new(config).time_to_threshold();
    let defaults = PhiConfig::default();
    println!(
        "  these nodes use tuned heartbeats (every {} ms, {} ms of acceptable pause): phi crosses 8",
        TUNED.heartbeat_interval.as_millis(),
        TUNED.acceptable_pause.as_millis()
    );
    println!(
        "  after {} ms of silence and the next heartbeat tick declares the peer down. With the defaults",
        crossing(TUNED).as_millis()
    );
    println!(
        "  (every {} ms, {} ms of pause) phi crosses 8 after {} ms: a silent peer is down about 1.4 s",
        defaults.heartbeat_interval.as_millis(),
        defaults.acceptable_pause.as_millis(),
        crossing(defaults.clone()).as_millis()
    );
    println!("  after its last heartbeat");
    relay.set_cut(true);
    let cut_at = Instant::now();
    let in_flight = {
        let remote = remote.clone();
        tokio::spawn(async move { remote.call(Counter::Get, Duration::from_secs(3)).await })
    };
    println!("  no close, no error: only the heartbeats stop; a call is in flight");
    let down = up_or_down(&mut beta_events).await?;
    println!(
        "  beta after {:.2} s: {}",
        cut_at.elapsed().as_secs_f64(),
        describe(&down)
    );
    let NodeEvent::Down { reason: cause, .. } = down else {
        return Err(format!("expected beta to see alpha down, got {down:?}").into());
    };
    let down = up_or_down(&mut alpha_events).await?;
    println!(
        "  alpha after {:.2} s: {}",
        cut_at.elapsed().as_secs_f64(),
        describe(&down)
    );
    // Everything waiting on the session fails with the reason it ended.
    let same = |reason: &DownReason| {
        if *reason == cause {
            "the same reason".to_string()
        } else {
            why(reason)
        }
    };
    match in_flight.await? {
        Err(ClusterError::NodeDown { reason, .. }) => {
            println!("  the call in flight failed: NodeDown, {}", same(&reason))
        }
        other => return Err(format!("the call in flight should fail, got {other:?}").into()),
    }
    let fired = tokio::time::timeout(Duration::from_secs(1), monitor).await?;
    match &fired.reason {
        ActorDownReason::NodeDown(reason) => {
            println!("  the monitor fired: NodeDown, {}", same(reason))
        }
        other => println!("  the monitor fired: {other}"),
    }
    let started = Instant::now();
    match remote.call(Counter::Get, Duration::from_secs(1)).await {
        Err(ClusterError::NodeDown { reason, .. }) => println!(
            "  a new call fails at once ({} µs): NodeDown, {}",
            started.elapsed().as_micros(),
            same(&reason)
        ),
        other => return Err(format!("a call during the partition got {other:?}").into()),
    }

    step("11. The partition heals: beta reconnects, and the same RemoteRef works again");
    relay.set_cut(false);
    let healed_at = Instant::now();
    let up = up_or_down(&mut beta_events).await?;
    println!(
        "  beta after {:.2} s: {} (it dialed alpha, so it redials)",
        healed_at.elapsed().as_secs_f64(),
        describe(&up)
    );
    // A new monitor (one fires once), in place before the call below:
    // frames from one sender arrive in order.
    let monitor = beta.monitor(&remote)?;
    let started = Instant::now();
    let total = remote.call(Counter::Get, Duration::from_secs(1)).await?;
    println!(
        "  Get through the same RemoteRef: {total} in {}; alpha's counter kept its state",
        ms(started.elapsed())
    );
    alpha.unexport("counter");
    let fired = tokio::time::timeout(Duration::from_secs(1), monitor).await?;
    println!(
        "  alpha withdraws the counter's export; beta's new monitor fires: {}",
        fired.reason
    );
    alpha_sup.cell().stop_and_wait(None, None).await?;
    alpha.shutdown().await;
    println!(
        "  alpha shuts down; beta: {}",
        describe(&up_or_down(&mut beta_events).await?)
    );
    beta.shutdown().await;
    Ok(())
}
