//! A job queue over a cluster: every node runs a pool of supervised
//! workers and exports it into the group `jobs`; a producer on any node
//! load-balances its jobs over the pools of all of them.
//!
//! Nodes join through a seed (`--seed ADDR`, any one live member): the mesh
//! forms by itself. Each node starts a `Pool` of workers (the pool restarts
//! a worker that fails) and calls `node.export_pool("jobs", &pool)`. A
//! producer sends with `node.group::<Job>("jobs").cast(job)`: round robin
//! over the pools of every node, its own included, and each pool routes
//! among its workers. A worker sends the result to the producer's collector,
//! registered cluster-wide as `results/NODE` (`node.register_child`,
//! reached with `node.named`).
//!
//! When a node goes away its pool leaves the group at once on every other
//! node, so new jobs go to the rest. On Ctrl-C a node first takes its pool
//! out of the group and finishes the jobs it holds, then leaves. Killed
//! (`kill -9`, a crash), the jobs it held are lost with it (delivery is at
//! most once): the producer sends a job again when its result is late
//! (1 s), so every job is done at least once and a job's result counts
//! once.
//!
//! Three terminals (`c` produces 200 jobs, one every 100 ms; stop `b` with
//! Ctrl-C while it runs and watch its share move to `a` and `c`):
//!
//! ```text
//! cargo run --example job_queue -- --name a --listen 127.0.0.1:7201
//! cargo run --example job_queue -- --name b --listen 127.0.0.1:7202 --seed 127.0.0.1:7201
//! cargo run --example job_queue -- --name c --listen 127.0.0.1:7203 --seed 127.0.0.1:7201 --produce 200
//! ```
//!
//! `cargo run --example job_queue -- --demo` runs three nodes in one
//! process, shuts one down while jobs flow, and exits 0 when every job was
//! done. `--help` lists the options.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{GroupRef, MemberStatus};
use ractor_otp::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

/// The default cookie: a demo value, use your own secret anywhere else.
const DEMO_COOKIE: &str = "ractor-otp-jobs-demo";
/// The group every node's pool joins.
const GROUP: &str = "jobs";
/// A job whose result has not come back after this long is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(1);

/// A job: count the Collatz steps of `n`. `producer` names the node whose
/// collector gets the result.
#[derive(Serialize, Deserialize, RemoteMessage)]
struct Job {
    id: u64,
    n: u64,
    producer: String,
}

/// A job's result, cast to the producer's collector.
#[derive(Serialize, Deserialize, RemoteMessage)]
struct Done {
    id: u64,
    /// The node and pool worker that ran it.
    node: String,
    worker: usize,
    steps: u64,
}

/// The cluster-wide name of `node`'s collector.
fn results_name(node: &str) -> String {
    format!("results/{node}")
}

/// The steps the Collatz map takes from `n` down to 1.
fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n > 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

/// A pool worker: it runs jobs and casts each result to its producer's
/// collector, wherever it runs.
#[derive(Clone)]
struct Worker {
    node: Node,
    /// How long a job takes (it sleeps, standing in for real work).
    work: Duration,
    /// Print each job it runs (not in the demo: the producer narrates).
    verbose: bool,
    log: String,
}

impl Actor for Worker {
    type Msg = Job;
    /// The worker's index in its pool.
    type State = usize;
    type Arguments = usize;

    async fn pre_start(&self, _: ActorRef<Job>, index: usize) -> Result<usize, ActorProcessingErr> {
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Job>,
        job: Job,
        index: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        tokio::time::sleep(self.work).await;
        let steps = collatz_steps(job.n);
        let done = Done {
            id: job.id,
            node: self.node.name().to_string(),
            worker: *index,
            steps,
        };
        let (log, id, from) = (&self.log, job.id, &job.producer);
        // A result that cannot be sent is no failure of this worker: the
        // producer sends the job again when the result is late.
        match self.node.named::<Done>(&results_name(from)).cast(done) {
            // The producer prints its own jobs' results.
            Ok(()) if self.verbose && from != self.node.name() => {
                println!("{log}job {id} from {from}: {steps} steps")
            }
            Ok(()) => {}
            Err(e) => println!("{log}job {id} ran, but its result cannot reach {from}: {e}"),
        }
        Ok(())
    }
}

/// Receives results for this node's producer; supervised and registered
/// as `results/NODE`.
#[derive(Clone)]
struct Collector {
    tx: mpsc::UnboundedSender<Done>,
}

impl Actor for Collector {
    type Msg = Done;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Done>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Done>,
        done: Done,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        // The producer has stopped listening only when it is finished.
        let _ = self.tx.send(done);
        Ok(())
    }
}

/// The command line's settings for one node.
struct Settings {
    listen: SocketAddr,
    seeds: Vec<SocketAddr>,
    cookie: String,
    workers: usize,
    work: Duration,
    verbose: bool,
    /// Prefixes every line this node prints (the demo runs three).
    log: String,
}

/// One process's worth: a node, its exported pool, and the supervised
/// collector of its producer's results.
struct JobNode {
    node: Node,
    pool: PoolRef<Job>,
    /// The pool's membership in `jobs`.
    member: u64,
    sup: SupervisorRef,
    results: mpsc::UnboundedReceiver<Done>,
    log: String,
}

impl JobNode {
    /// Starts the node (joining through the seeds, in the background), the
    /// pool exported into `jobs`, and the collector registered as
    /// `results/NAME`.
    async fn start(name: &str, s: &Settings) -> Result<JobNode, Box<dyn Error>> {
        // Redial seeds and members that went down within a second.
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let config = NodeConfig::new(name)
            .listen(s.listen)
            .cookie(&s.cookie)
            .seeds(s.seeds.iter().copied())
            .reconnect(backoff);
        let node = Node::start(config).await?;
        let worker = Worker {
            node: node.clone(),
            work: s.work,
            verbose: s.verbose,
            log: s.log.clone(),
        };
        let pool = Pool::builder(worker, |index| index)
            .size(s.workers)
            .spawn(None)
            .await?;
        let member = node.export_pool(GROUP, &pool)?;
        let (tx, results) = mpsc::unbounded_channel();
        let spec = SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::new(
            "collector",
            Collector { tx },
            || (),
        ));
        let (sup, _) = Supervisor::spawn(None, spec).await?;
        let collector = sup.child::<Done>("collector")?;
        node.register_child(&results_name(name), collector)?;
        println!(
            "{}node {name} listening on {}, {} workers in group {GROUP}",
            s.log,
            node.local_addr(),
            s.workers
        );
        Ok(JobNode {
            node,
            pool,
            member,
            sup,
            results,
            log: s.log.clone(),
        })
    }

    /// A graceful stop: takes the pool out of the group (producers stop
    /// choosing it), lets its workers finish the jobs they hold (their
    /// results still reach the producers), then leaves the cluster and
    /// stops the collector.
    async fn stop(self) {
        self.node.leave_group(self.member);
        let _ = self.pool.stop().await;
        self.node.leave().await;
        let _ = self.sup.cell().stop_and_wait(None, None).await;
    }
}

/// Prints the membership and session events of `node`, prefixed by `log`.
fn narrate_events(node: &Node, log: &str) {
    let (mut events, log) = (node.subscribe(), log.to_string());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NodeEvent::MemberJoined { member } => println!("{log}{member} joined the cluster"),
                NodeEvent::MemberLeft { member } => println!("{log}{member} left the cluster"),
                // A member that leaves is reported by `MemberLeft`.
                NodeEvent::Down { peer, reason }
                    if !matches!(reason, DownReason::LocalShutdown | DownReason::PeerLeft) =>
                {
                    println!("{log}Down {peer} ({reason})")
                }
                NodeEvent::Rejected { addr, reason, .. } => {
                    println!("{log}refused a connection with {addr}: {reason}")
                }
                _ => {}
            }
        }
    });
}

/// Sends jobs over the group and collects their results, sending a job
/// again when its result is late.
struct Producer {
    name: String,
    jobs: GroupRef<Job>,
    /// Jobs sent and not done: id → when last sent.
    pending: BTreeMap<u64, Instant>,
    /// Jobs done: id → the node that ran it.
    done: BTreeMap<u64, String>,
    resent: u64,
    verbose: bool,
    log: String,
}

impl Producer {
    fn new(node: &Node, verbose: bool, log: &str) -> Producer {
        Producer {
            name: node.name().to_string(),
            jobs: node.group::<Job>(GROUP),
            pending: BTreeMap::new(),
            done: BTreeMap::new(),
            resent: 0,
            verbose,
            log: log.to_string(),
        }
    }

    /// Casts job `id` to a pool chosen by the group's round robin. If no
    /// pool takes it, it stays pending and is sent again when it is late.
    fn send(&mut self, id: u64) {
        let n = id * 7_919 % 100_000 + 1;
        let job = Job {
            id,
            n,
            producer: self.name.clone(),
        };
        if let Err(e) = self.jobs.cast(job) {
            println!("{}job {id} not sent ({e}); it is retried", self.log);
        }
        self.pending.insert(id, Instant::now());
    }

    fn receive(&mut self, done: Done) {
        // A job sent twice may be answered twice: count it once.
        if self.pending.remove(&done.id).is_some() {
            if self.verbose {
                println!(
                    "{}job {} done on {} (worker {}): {} steps",
                    self.log, done.id, done.node, done.worker, done.steps
                );
            }
            self.done.insert(done.id, done.node);
        }
    }

    /// Sends every late job again.
    fn resend_late(&mut self) {
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, sent)| sent.elapsed() >= RESEND_AFTER)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            println!(
                "{}job {id}: no result after {} ms, sent again",
                self.log,
                RESEND_AFTER.as_millis()
            );
            self.resent += 1;
            self.send(id);
        }
    }

    /// Sends the jobs `ids`, one every `every`, handling results as they
    /// come; then, if `finish`, waits until every job sent is done. Ends
    /// early when `stop` turns true.
    async fn run(
        &mut self,
        ids: RangeInclusive<u64>,
        every: Duration,
        finish: bool,
        results: &mut mpsc::UnboundedReceiver<Done>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let mut ids = ids.peekable();
        let mut send = tokio::time::interval(every);
        let mut check = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = send.tick(), if ids.peek().is_some() => {
                    if let Some(id) = ids.next() {
                        self.send(id);
                    }
                }
                Some(done) = results.recv() => self.receive(done),
                _ = check.tick() => self.resend_late(),
                _ = stop.wait_for(|stop| *stop) => return,
            }
            if ids.peek().is_none() && (!finish || self.pending.is_empty()) {
                return;
            }
        }
    }

    /// How many of the jobs `ids` each node ran, as `a 10, b 9, c 11`.
    fn tally(&self, ids: RangeInclusive<u64>) -> String {
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for node in self.done.range(ids).map(|(_, node)| node) {
            *per.entry(node).or_default() += 1;
        }
        let parts: Vec<String> = per.iter().map(|(n, k)| format!("{n} {k}")).collect();
        parts.join(", ")
    }
}

/// Polls `check` every 10 ms for up to 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) -> Result<(), String> {
    for _ in 0..500 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("timed out waiting until {what}"))
}

/// The scripted demo: three nodes in this process, joined through `a`; a
/// producer on `a`; `c` goes away while jobs flow.
async fn demo(cookie: &str) -> Result<(), Box<dyn Error>> {
    let settings = |seeds: Vec<SocketAddr>, log: &str| Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        seeds,
        cookie: cookie.to_string(),
        workers: 2,
        work: Duration::from_millis(100),
        verbose: false,
        log: log.to_string(),
    };
    let mut a = JobNode::start("a", &settings(vec![], "  [a] ")).await?;
    narrate_events(&a.node, &a.log);
    let seed = vec![a.node.local_addr()];
    let b = JobNode::start("b", &settings(seed.clone(), "  [b] ")).await?;
    let c = JobNode::start("c", &settings(seed, "  [c] ")).await?;
    let mut producer = Producer::new(&a.node, false, &a.log);
    let pools = |p: &Producer| {
        let nodes: Vec<String> = p.jobs.members().into_iter().map(|m| m.node).collect();
        nodes.join(", ")
    };
    // Ready when every node sees the other two up, a sees the three pools,
    // and b and c see a's collector.
    let collector = results_name("a");
    eventually("the cluster is formed", || {
        let meshed = [&a, &b, &c].iter().all(|n| {
            let members = n.node.members();
            members.len() == 2 && members.iter().all(|m| m.status == MemberStatus::Up)
        });
        meshed
            && producer.jobs.members().len() == 3
            && [&b, &c]
                .iter()
                .all(|n| n.node.whereis(&collector).is_some())
    })
    .await?;
    println!("  b and c named only a as their seed; the mesh formed by itself.");
    println!("  group {GROUP} on a: pools on {}", pools(&producer));

    let (_stop_tx, mut stop) = watch::channel(false);
    println!("\n== a sends jobs 1-30, one every 20 ms; each pool runs 2 at a time, 100 ms each");
    let every = Duration::from_millis(20);
    producer
        .run(1..=30, every, true, &mut a.results, &mut stop)
        .await;
    println!("  all done; ran on: {}", producer.tally(1..=30));

    println!("\n== jobs 31-60; c shuts down after job 40 is sent, with jobs of its own running");
    producer
        .run(31..=40, every, false, &mut a.results, &mut stop)
        .await;
    // In-process stand-in for Ctrl-C or `kill -9`: c's sessions close,
    // while its pool still runs the jobs it holds.
    c.node.shutdown().await;
    eventually("c's pool left the group on a", || {
        producer.jobs.members().len() == 2
    })
    .await?;
    println!("  group {GROUP} on a: pools on {}", pools(&producer));
    producer
        .run(41..=60, every, true, &mut a.results, &mut stop)
        .await;
    println!(
        "  all done; ran on: {} ({} sent again: their results were lost with c)",
        producer.tally(31..=60),
        producer.resent
    );
    let after: Vec<&String> = producer.done.range(41..=60).map(|(_, n)| n).collect();
    if after.iter().any(|n| n.as_str() == "c") || producer.done.len() != 60 {
        return Err(format!("unexpected results: {:?}", producer.done).into());
    }
    println!("  jobs 41-60 ran only on a and b");

    let _ = c.pool.stop().await;
    let _ = c.sup.cell().stop_and_wait(None, None).await;
    b.stop().await;
    a.stop().await;
    println!("\nThe demo is over.");
    Ok(())
}

const USAGE: &str = "usage: job_queue --name NAME [--listen ADDR] [--seed ADDR]... [--workers N]
                 [--work MS] [--produce N] [--every MS] [--cookie SECRET]
       job_queue --demo
A job queue over a cluster: every node exports a pool of workers into the
group `jobs`; a producer load-balances its jobs over the pools of all nodes.
  --name NAME      this node's name, unique in the cluster (required)
  --listen ADDR    listen for peers on ADDR (default 127.0.0.1:0, any free port)
  --seed ADDR      join the cluster through the member listening on ADDR;
                   repeat for several seeds: any one live member is enough
  --workers N      workers in this node's pool (default 2)
  --work MS        how long each job takes (default 200)
  --produce N      send N jobs over the group, print where each ran, then
                   leave; without it the node serves until Ctrl-C
  --every MS       time between jobs sent (default 100)
  --cookie SECRET  the cluster's shared secret (default: a demo value)
  --demo           three nodes in this process, scripted; exits 0 if all worked
  -h, --help       this text";

/// A node from the command line: it serves jobs until Ctrl-C, or produces
/// `produce` jobs and leaves.
async fn node_main(
    name: &str,
    s: Settings,
    produce: Option<u64>,
    every: Duration,
) -> Result<(), Box<dyn Error>> {
    // Ctrl-C stops gracefully (see `JobNode::stop`).
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => stop_tx.send_replace(true),
            // No handler: Ctrl-C keeps its default effect; never stop.
            Err(_) => std::future::pending().await,
        };
    });
    let mut jn = JobNode::start(name, &s).await?;
    narrate_events(&jn.node, &s.log);
    match produce {
        Some(count) => {
            let mut producer = Producer::new(&jn.node, true, &s.log);
            println!("producing {count} jobs, one every {} ms", every.as_millis());
            producer
                .run(1..=count, every, true, &mut jn.results, &mut stop)
                .await;
            println!(
                "{} of {count} jobs done; ran on: {} ({} sent again)",
                producer.done.len(),
                producer.tally(1..=count),
                producer.resent
            );
        }
        None => {
            println!("serving jobs; Ctrl-C to leave");
            let _ = stop.wait_for(|stop| *stop).await;
        }
    }
    jn.stop().await;
    Ok(())
}

/// Parses the command line by hand, then runs the demo or a node.
async fn run() -> Result<(), Box<dyn Error>> {
    let (mut demo_mode, mut name, mut produce) = (false, None, None);
    let mut s = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        seeds: Vec::new(),
        cookie: DEMO_COOKIE.to_string(),
        workers: 2,
        work: Duration::from_millis(200),
        verbose: true,
        log: String::new(),
    };
    let mut every = Duration::from_millis(100);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--demo" => {
                demo_mode = true;
                continue;
            }
            "--name" | "--listen" | "--seed" | "--workers" | "--work" | "--produce" | "--every"
            | "--cookie" => {}
            _ => return Err(format!("unknown option {flag}\n{USAGE}").into()),
        }
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        let number = || value.parse::<u64>().map_err(|e| bad(&e));
        let addr = || value.parse::<SocketAddr>().map_err(|e| bad(&e));
        match flag.as_str() {
            "--name" => name = Some(value.clone()),
            "--listen" => s.listen = addr()?,
            "--seed" => s.seeds.push(addr()?),
            "--workers" => s.workers = value.parse().map_err(|e| bad(&e))?,
            "--work" => s.work = Duration::from_millis(number()?),
            "--produce" => produce = Some(number()?),
            "--every" => every = Duration::from_millis(number()?),
            _ => s.cookie = value.clone(),
        }
    }
    if demo_mode {
        let within = Duration::from_secs(15);
        return tokio::time::timeout(within, demo(&s.cookie))
            .await
            .map_err(|_| "the demo took over 15 s")?;
    }
    let name = name.ok_or(format!("--name is required\n{USAGE}"))?;
    node_main(&name, s, produce, every).await
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("job_queue: {e}");
            ExitCode::FAILURE
        }
    }
}
