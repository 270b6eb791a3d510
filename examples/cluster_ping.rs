//! Two processes, one cluster: a node that answers pings and a node that
//! sends them, narrating round-trip times, heartbeats and failures.
//!
//! In one terminal, start the listening node:
//!
//! ```text
//! cargo run --example cluster_ping -- --listen 127.0.0.1:7000
//! ```
//!
//! In another, the node that connects to it and pings it every 500 ms
//! (`--count N` stops after N pings; it exits 0 if all were answered):
//!
//! ```text
//! cargo run --example cluster_ping -- --connect 127.0.0.1:7000
//! ```
//!
//! Each reply is printed with the call's round-trip time, and the session's
//! heartbeat round-trip time and phi (the failure detector's suspicion)
//! from `Node::peers`. Both sides print node events with their reasons. Try:
//!
//! - Ctrl-C either side: it says goodbye, the other prints
//!   `Down (peer shut down)`.
//! - `kill -9` the listener: the pinger prints `Down (connection closed)`,
//!   its calls fail, and when you start the listener again it reconnects
//!   (`Up`) and the replies resume.
//! - `kill -STOP <pid>` the listener from a third terminal (and later
//!   `kill -CONT <pid>`): the pinger prints `Down (heartbeat timeout, phi
//!   ...)` about 1.4 s after the listener's last heartbeat, then `Up` and
//!   replies again once it resumes. The pings that waited in the frozen
//!   listener's socket are handled on resume and printed as not answered:
//!   their callers already failed with `NodeDown`.
//!
//! Options: `--name NAME` (default `pong` when listening only, else `ping`),
//! `--cookie SECRET` (default `ractor-otp-demo-cookie`: a demo value, pick
//! your own secret outside demos), `--count N`, `--interval MS`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The cookie both sides use unless `--cookie` says otherwise. A demo
/// value: anyone who knows it can join the cluster.
const DEMO_COOKIE: &str = "ractor-otp-demo-cookie";

const USAGE: &str = "usage: cluster_ping [--listen ADDR] [--connect ADDR] [--count N] \
[--interval MS] [--name NAME] [--cookie SECRET]
  --listen ADDR    listen for peers on ADDR (default 127.0.0.1:0)
  --connect ADDR   connect to the node at ADDR and ping it
  --count N        stop after N pings (default: until Ctrl-C)
  --interval MS    time between pings (default 500)
  --name NAME      this node's name (default pong, or ping with --connect)
  --cookie SECRET  the cluster's shared secret (default ractor-otp-demo-cookie)";

/// A ping, answered with the name of the node that handled it.
#[derive(Serialize, Deserialize, RemoteMessage)]
struct Ping {
    seq: u64,
    from: String,
    reply: RemoteReply<String>,
}

/// Answers pings; supervised, and exported as "ping" on every node of this
/// example.
#[derive(Clone)]
struct Ponger {
    node: String,
}

impl Actor for Ponger {
    type Msg = Ping;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Ping>,
        ping: Ping,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        // Pings that waited in the socket while this process was frozen
        // (`kill -STOP`) come from calls that have already failed: their
        // answer has nowhere to go, which is no failure of this actor.
        match ping.reply.send(self.node.clone()) {
            Replied::Sent => println!("ping #{} from {}", ping.seq, ping.from),
            unanswered => println!("ping #{} from {}: {unanswered}", ping.seq, ping.from),
        }
        Ok(())
    }
}

/// The command line.
struct Args {
    listen: SocketAddr,
    connect: Option<SocketAddr>,
    count: Option<u64>,
    interval: Duration,
    name: String,
    cookie: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let (mut connect, mut count, mut name) = (None, None, None);
    let mut interval = Duration::from_millis(500);
    let mut cookie = DEMO_COOKIE.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        const FLAGS: [&str; 6] = [
            "--listen",
            "--connect",
            "--count",
            "--interval",
            "--name",
            "--cookie",
        ];
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown option {flag}\n{USAGE}"));
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => listen = value.parse().map_err(|e| bad(&e))?,
            "--connect" => connect = Some(value.parse().map_err(|e| bad(&e))?),
            "--count" => count = Some(value.parse().map_err(|e| bad(&e))?),
            "--interval" => interval = Duration::from_millis(value.parse().map_err(|e| bad(&e))?),
            "--name" => name = Some(value),
            _ => cookie = value,
        }
    }
    let name = name.unwrap_or_else(|| if connect.is_some() { "ping" } else { "pong" }.into());
    Ok(Args {
        listen,
        connect,
        count,
        interval,
        name,
        cookie,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Why a peer went down, with the failure detector's figures.
fn why(reason: &DownReason) -> String {
    match reason {
        DownReason::HeartbeatTimeout {
            phi,
            threshold,
            silence,
        } => format!(
            "heartbeat timeout: phi {phi:.1} above {threshold} after {} of silence",
            ms(*silence)
        ),
        other => other.to_string(),
    }
}

/// Prints one node event, with the time since start.
fn print_event(start: Instant, event: &NodeEvent) {
    let t = start.elapsed().as_secs_f64();
    match event {
        NodeEvent::Up { peer } => println!("[{t:7.2}s] Up {peer}"),
        NodeEvent::Down { peer, reason } => println!("[{t:7.2}s] Down {peer} ({})", why(reason)),
        NodeEvent::Rejected { addr, reason, .. } => {
            println!("[{t:7.2}s] rejected a connection from {addr} ({reason})")
        }
        NodeEvent::DeadLetter { actor, reason, .. } => {
            println!("[{t:7.2}s] a message for {actor} was not delivered ({reason})")
        }
        other => println!("[{t:7.2}s] {other:?}"),
    }
}

/// Connects to `addr`, retrying for a few seconds while nothing listens
/// there yet (the other side may still be compiling). A failed handshake
/// (a wrong cookie, say) is final.
async fn connect(node: &Node, addr: SocketAddr) -> Result<PeerInfo, ClusterError> {
    let mut attempts = 0;
    loop {
        match node.connect(addr).await {
            Err(ClusterError::Connect { .. }) if attempts < 40 => {
                if attempts == 0 {
                    println!("waiting for a node to listen on {addr}...");
                }
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            result => return result,
        }
    }
}

/// Pings `peer` every `interval`, `count` times or until `stop`; returns
/// how many pings were not answered.
async fn ping_loop(
    node: &Node,
    peer: &str,
    args: &Args,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, ClusterError> {
    let remote = node.lookup::<Ping>(peer, "ping").await?;
    let mut ticks = tokio::time::interval(args.interval);
    // After a call that waited for a timeout, carry on at the usual pace.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut failed = 0;
    for seq in 1.. {
        if args.count.is_some_and(|n| seq > n) {
            break;
        }
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        let sent = Instant::now();
        let from = node.name().to_string();
        let result = remote
            .call(|reply| Ping { seq, from, reply }, Duration::from_secs(2))
            .await;
        let rtt = sent.elapsed();
        match result {
            Ok(by) => {
                let (hb_rtt, phi) = node
                    .peer(peer)
                    .map(|p| (p.rtt, p.phi))
                    .unwrap_or((None, 0.0));
                println!(
                    "pong #{seq} from {by}: call {} | heartbeat rtt {} | phi {phi:.2}",
                    ms(rtt),
                    hb_rtt.map_or("n/a".into(), ms),
                );
            }
            Err(e) => {
                failed += 1;
                let e = match e {
                    ClusterError::NodeDown { peer, reason } => {
                        format!("{peer} is down ({})", why(&reason))
                    }
                    other => other.to_string(),
                };
                println!("ping #{seq} failed after {}: {e}", ms(rtt));
            }
        }
    }
    Ok(failed)
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let start = Instant::now();
    // Ctrl-C stops either side gracefully: its peers hear a goodbye.
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => stop_tx.send_replace(true),
            // No handler: Ctrl-C keeps its default effect; never stop.
            Err(_) => std::future::pending().await,
        };
    });
    let config = NodeConfig::new(args.name.clone())
        .listen(args.listen)
        .cookie(&args.cookie)
        // Redial a restarted peer within a second (the default backs off
        // up to 5 s).
        .reconnect(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ));
    let node = Node::start(config).await?;
    let mut events = node.subscribe();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            print_event(start, &event);
        }
    });
    // The ponger runs under a supervisor; the export follows its restarts.
    let ponger = Ponger {
        node: args.name.clone(),
    };
    let spec =
        SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::new("ponger", ponger, || ()));
    // The application runs the tree until Ctrl-C or SIGTERM, then stops it
    // in order and shuts the node down (peers hear a goodbye).
    let app = Application::start(format!("cluster_ping-{}", args.name), spec)
        .await?
        .on_shutdown("node", {
            let node = node.clone();
            move || async move { node.shutdown().await }
        });
    let ponger = app.root().child::<Ping>("ponger")?;
    node.export_child("ping", ponger)?;
    println!(
        "node {} listening on {} (pid {})",
        node.name(),
        node.local_addr(),
        std::process::id()
    );

    let code = match args.connect {
        Some(addr) => {
            let peer = connect(&node, addr).await?;
            println!("connected to {} at {addr}", peer.name);
            let failed = ping_loop(&node, &peer.name, &args, stop).await?;
            app.stop().await;
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                println!("{failed} ping(s) were not answered");
                ExitCode::FAILURE
            }
        }
        None => {
            drop(stop);
            println!("waiting for pings; Ctrl-C (or SIGTERM) to stop");
            let reason = app.run().await;
            println!("stopped: {reason}");
            reason.exit_code()
        }
    };
    // Let the event printer show the last events.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(code)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("cluster_ping: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cluster_ping: {e}");
            ExitCode::FAILURE
        }
    }
}
