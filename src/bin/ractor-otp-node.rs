//! `ractor-otp-node`: one cluster node in its own process.
//!
//! This is the node program the cross-process tests
//! (`tests/cluster_process.rs`) start, freeze (SIGSTOP) and kill (SIGKILL),
//! so that failure detection is exercised against a real, separate
//! operating-system process rather than a task in the test's runtime. It is
//! also handy for manual experiments: start two or three in terminals, type
//! commands, and `kill -STOP` one of them.
//!
//! ```text
//! ractor-otp-node --name N --cookie C [--listen ADDR] [--connect ADDR ...]
//!                 [--seed ADDR ...] [--heartbeat-ms N] [--pause-ms N]
//!                 [--min-std-ms N] [--entities TYPE] [--advertise ADDR]
//! ```
//!
//! `--advertise` is the address peers are told to dial (a fault proxy in
//! front of the node, in the tests); it defaults to the listening address.
//!
//! `--listen` defaults to `127.0.0.1:0`; the heartbeat options default to the
//! library's defaults (200 ms, 500 ms, 100 ms). `--connect` and `--seed` may
//! be repeated.
//!
//! The node exports one actor, `echo`, taking [`NodeMsg`]: `Echo` answers
//! with its text, `Whoami` with the node's name, `Slow` with its text after
//! a wait, and `Job` (a cast) is only counted (see `received`). It is deliberately not supervised: if anything
//! ever stopped it (answering a caller that has gone away, say), its export
//! would disappear and the tests would see it. It counts what became of its
//! answers (see `replies`). The same actor is what `register` puts under a
//! cluster-wide name and `join-group` adds to a group.
//!
//! With `--entities TYPE` the node registers the kind `counter` (an
//! idempotent counter, [`Counter`]) and hosts entities of type `TYPE`
//! ([`Node::entities`], default spec: a replicated checkpoint after every
//! message). Each live copy prints `ENTITY-UP TYPE KEY` when it is built
//! and `ENTITY-DOWN TYPE KEY` once it has ended; a lost checkpoint prints
//! `CHECKPOINT-LOST TYPE KEY SEQ`.
//!
//! The `--seed` addresses become [`NodeConfig::seeds`]: the node joins the
//! cluster through them in the background (with backoff, until one session
//! is up) and dials the members it learns of, so `READY` does not wait for
//! the cluster; poll `members` for that. The node then dials every
//! `--connect` address in order (this node reconnects to them with backoff
//! whenever the session goes down).
//!
//! # Output
//!
//! One line per event on stdout, flushed at once, words separated by single
//! spaces; free text (error messages, reasons) only ever comes last and has
//! its line breaks replaced by spaces:
//!
//! ```text
//! LISTENING 127.0.0.1:40123
//! CONNECTED 127.0.0.1:40999 a          a --connect succeeded, a is the peer's name
//! READY                                start-up done, commands are read from now on
//! UP a
//! DOWN a HeartbeatTimeout phi=9.12 threshold=8.00 silence_ms=1230
//! DOWN a ConnectionClosed              (or ConnectionError <msg>, HandshakeFailed <msg>,
//!                                       ProtocolError <msg>, PeerShutdown <msg>,
//!                                       PeerRestarted, Replaced, LocalShutdown)
//! REJECTED 127.0.0.1:51000 <reason>
//! DEADLETTER <peer> <actor> <tag> <reason>
//! LAGGED <missed>
//! ```
//!
//! # Commands
//!
//! Read from stdin, one per line, answered in order (a command finishes
//! before the next one is read):
//!
//! | command | answer |
//! |---|---|
//! | `call <peer> <text>` | looks up `echo` on `<peer>` and calls it: `REPLY <text>`, or `ERROR <msg>` |
//! | `whoami <peer>` | the same with `Whoami`: `REPLY <peer's name>`, or `ERROR <msg>` |
//! | `peers` | `PEERS <n>`, then `n` lines `PEER <name> <Up\|Suspect\|Down> <phi> <rtt_ms\|->` |
//! | `replies` | `REPLIES sent=<n> gone=<n> unencodable=<n>`: what became of the `echo` actor's answers so far ([`Replied`]) |
//! | `members` | `MEMBERS <n>`, then `n` lines `MEMBER <name> <Joining\|Up\|Suspect\|Down\|Leaving\|Left> <addr> <incarnation>`: the membership view ([`Node::members`]), this node left out |
//! | `register <name>` | registers `echo` under the cluster-wide `<name>` ([`Node::register`]): `REGISTERED <name>`, or `ERROR <msg>` |
//! | `whereis <name>` | `WHEREIS <name> <node>`, or `WHEREIS <name> -` when nobody holds it, from this node's replicated view ([`Node::whereis`]) |
//! | `join-group <group>` | adds `echo` to `<group>` ([`Node::join_group`]): `JOINED <group> <id>`, or `ERROR <msg>` |
//! | `group-members <group>` | `GROUP <group> <n>`, then `n` lines `GROUP-MEMBER <node> <id>`, in the group's order (the same on every node) |
//! | `group-cast <group> <n>` | casts `n` `Job`s to `<group>`, routed round robin over its members as this node sees them when each is sent, starting from the first member at each command: `CAST <group> sent=<n> failed=<n>`, then the first failure's message if any failed |
//! | `received` | `RECEIVED <n>`: how many `Job`s this node's `echo` actor has handled |
//! | `quit` | shuts the node down (peers get a goodbye), prints `BYE`, exits with 0 |
//!
//! Anything else prints `ERROR unknown command ...`. When stdin reaches its
//! end the node **keeps running** until it is killed: a test can drop the
//! pipe without stopping the node. Nothing but `quit` or a signal stops it.
//!
//! # Exit codes
//!
//! 0 after `quit` (or `--help`); 1 when the node cannot start (bad
//! configuration, address in use, a `--connect` that fails), after an
//! `ERROR <msg>` line; 2 for bad command-line arguments, after an
//! `ERROR <msg>` line and the usage on stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{
    ClusterError, DownReason, GroupRouting, Member, MemberStatus, Node, NodeConfig, NodeEvent,
    PeerInfo, PeerStatus, RemoteReply, Replied,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// How long `call` and `whoami` wait for the answer (the lookup before
/// them waits as long).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The name the echo actor is exported under.
const ECHO: &str = "echo";

/// The longest a `Slow` message keeps the `echo` actor busy.
const MAX_SLOW: Duration = Duration::from_secs(10);

/// The most `Job`s one `group-cast` sends: enough for any test, and a typo
/// cannot flood the cluster.
const MAX_CAST: u64 = 1_000_000;

const USAGE: &str =
    "usage: ractor-otp-node --name N --cookie C [--listen ADDR] [--connect ADDR ...] \
[--seed ADDR ...] [--heartbeat-ms N] [--pause-ms N] [--min-std-ms N] [--entities TYPE] \
[--advertise ADDR]";

/// The messages the exported `echo` actor takes. Other programs talking to
/// it must declare the same enum (same variants in the same order) with the
/// same tag.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "ractor-otp-node.NodeMsg")]
enum NodeMsg {
    /// Answers with the text.
    Echo(String, RemoteReply<String>),
    /// Answers with this node's name.
    Whoami(RemoteReply<String>),
    /// A job routed over a group: only counted (see `received`). The number
    /// is its place in the `group-cast` that sent it.
    Job(u64),
    /// Answers with the text after waiting the milliseconds given (at most
    /// [`MAX_SLOW`]): keeps the actor busy, as a slow handler would.
    Slow(u64, String, RemoteReply<String>),
}

/// What the `echo` actor did: what became of its answers, for the
/// `replies` command, and how many jobs it handled, for `received`.
#[derive(Default)]
struct ReplyCounts {
    sent: AtomicU64,
    gone: AtomicU64,
    unencodable: AtomicU64,
    jobs: AtomicU64,
}

impl ReplyCounts {
    fn record(&self, outcome: &Replied) {
        let counter = match outcome {
            Replied::Sent => &self.sent,
            Replied::CallerGone => &self.gone,
            // `Unencodable`, and any outcome a later version adds.
            _ => &self.unencodable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        format!(
            "REPLIES sent={} gone={} unencodable={}",
            self.sent.load(Ordering::Relaxed),
            self.gone.load(Ordering::Relaxed),
            self.unencodable.load(Ordering::Relaxed)
        )
    }
}

/// The exported actor: answers [`NodeMsg`]s. Its state is the node's name
/// and the reply counts.
struct EchoActor;

impl Actor for EchoActor {
    type Msg = NodeMsg;
    type State = (String, Arc<ReplyCounts>);
    type Arguments = (String, Arc<ReplyCounts>);

    async fn pre_start(
        &self,
        _: ActorRef<NodeMsg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<NodeMsg>,
        msg: NodeMsg,
        (name, counts): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A caller that has gone away is no failure of this actor: the
        // outcome is only counted.
        let outcome = match msg {
            NodeMsg::Echo(text, reply) => reply.send(text),
            NodeMsg::Whoami(reply) => reply.send(name.clone()),
            NodeMsg::Slow(ms, text, reply) => {
                tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLOW)).await;
                reply.send(text)
            }
            NodeMsg::Job(_) => {
                counts.jobs.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        counts.record(&outcome);
        Ok(())
    }
}

/// The message type of the `counter` kind: an idempotent counter. Each
/// `Add` carries an operation id, applied at most once however often it is
/// retried, and answers with the value after it. Programs talking to it
/// declare the same enum with the same tag.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "ractor-otp-node.Counter")]
enum Counter {
    /// Adds 1 unless operation `op` was applied before; answers the value.
    Add(u64, RemoteReply<u64>),
    /// Answers the value.
    Get(RemoteReply<u64>),
}

/// One live copy of a counter entity. It prints `ENTITY-UP <type> <key>`
/// when it is built (right before it starts) and `ENTITY-DOWN <type> <key>`
/// when it is dropped (after it ended, killed included), so that a test can
/// see where copies lived and when.
struct CounterActor {
    ty: String,
    key: String,
}

impl CounterActor {
    fn new(ty: &str, key: &str) -> Self {
        emit(format!("ENTITY-UP {ty} {key}"));
        CounterActor {
            ty: ty.to_string(),
            key: key.to_string(),
        }
    }
}

impl Drop for CounterActor {
    fn drop(&mut self) {
        emit(format!("ENTITY-DOWN {} {}", self.ty, self.key));
    }
}

impl Actor for CounterActor {
    type Msg = Counter;
    /// The value and the operations applied.
    type State = (u64, std::collections::BTreeSet<u64>);
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Counter>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((0, std::collections::BTreeSet::new()))
    }

    async fn handle(
        &self,
        _: ActorRef<Counter>,
        msg: Counter,
        (value, applied): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Counter::Add(op, reply) => {
                if applied.insert(op) {
                    *value += 1;
                }
                reply.send(*value);
            }
            Counter::Get(reply) => {
                reply.send(*value);
            }
        }
        Ok(())
    }
}

/// The parsed command line.
#[derive(Debug)]
struct Args {
    name: String,
    cookie: String,
    listen: Option<SocketAddr>,
    connect: Vec<SocketAddr>,
    seeds: Vec<SocketAddr>,
    heartbeat: Option<Duration>,
    pause: Option<Duration>,
    min_std: Option<Duration>,
    entities: Option<String>,
    advertise: Option<SocketAddr>,
}

impl Args {
    /// Parses the arguments (without the program name). `Ok(None)` for
    /// `--help`.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
        let mut name = None;
        let mut cookie = None;
        let mut parsed = Args {
            name: String::new(),
            cookie: String::new(),
            listen: None,
            connect: Vec::new(),
            seeds: Vec::new(),
            heartbeat: None,
            pause: None,
            min_std: None,
            entities: None,
            advertise: None,
        };
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--name" => name = Some(value),
                "--cookie" => cookie = Some(value),
                "--listen" => parsed.listen = Some(addr(&flag, &value)?),
                "--connect" => parsed.connect.push(addr(&flag, &value)?),
                "--seed" => parsed.seeds.push(addr(&flag, &value)?),
                "--heartbeat-ms" => parsed.heartbeat = Some(millis(&flag, &value)?),
                "--pause-ms" => parsed.pause = Some(millis(&flag, &value)?),
                "--min-std-ms" => parsed.min_std = Some(millis(&flag, &value)?),
                "--entities" => parsed.entities = Some(value),
                "--advertise" => parsed.advertise = Some(addr(&flag, &value)?),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        parsed.name = name.ok_or("--name is required")?;
        parsed.cookie = cookie.ok_or("--cookie is required")?;
        Ok(Some(parsed))
    }

    /// The node's configuration; the library validates it.
    fn config(&self) -> NodeConfig {
        let mut config = NodeConfig::new(self.name.clone())
            .cookie(&self.cookie)
            .request_timeout(CALL_TIMEOUT)
            .seeds(self.seeds.iter().copied());
        if let Some(addr) = self.listen {
            config = config.listen(addr);
        }
        if let Some(addr) = self.advertise {
            config = config.advertise(addr);
        }
        if let Some(every) = self.heartbeat {
            config = config.heartbeat_interval(every);
        }
        if let Some(pause) = self.pause {
            config = config.acceptable_pause(pause);
        }
        if let Some(min) = self.min_std {
            config = config.min_std_dev(min);
        }
        config
    }
}

fn addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|e| format!("{flag} {value:?} is not an address like 127.0.0.1:4000: {e}"))
}

fn millis(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{flag} {value:?} is not a number of milliseconds: {e}"))
}

/// Prints one line on stdout and flushes it. A closed stdout is ignored:
/// the node keeps serving its peers.
fn emit(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// Free text as the last field of a line: on one line.
fn one_line(text: impl ToString) -> String {
    text.to_string().replace(['\n', '\r'], " ")
}

/// `<Kind>` or `<Kind> <details>` for a `DOWN` line.
fn down_reason(reason: &DownReason) -> String {
    match reason {
        DownReason::HeartbeatTimeout {
            phi,
            threshold,
            silence,
        } => format!(
            "HeartbeatTimeout phi={phi:.2} threshold={threshold:.2} silence_ms={}",
            silence.as_millis()
        ),
        DownReason::ConnectionClosed => "ConnectionClosed".into(),
        DownReason::ConnectionError(e) => format!("ConnectionError {}", one_line(e)),
        DownReason::HandshakeFailed(e) => format!("HandshakeFailed {}", one_line(e)),
        DownReason::ProtocolError(e) => format!("ProtocolError {}", one_line(e)),
        DownReason::PeerShutdown(e) => format!("PeerShutdown {}", one_line(e)),
        DownReason::PeerRestarted => "PeerRestarted".into(),
        DownReason::Replaced => "Replaced".into(),
        DownReason::LocalShutdown => "LocalShutdown".into(),
        other => format!("Other {}", one_line(other)),
    }
}

/// The output line for an event.
fn event_line(event: &NodeEvent) -> String {
    match event {
        NodeEvent::Up { peer } => format!("UP {peer}"),
        NodeEvent::Down { peer, reason } => format!("DOWN {peer} {}", down_reason(reason)),
        NodeEvent::Rejected {
            addr,
            reason,
            count,
        } => format!("REJECTED {addr} {count} {}", one_line(reason)),
        NodeEvent::DeadLetter {
            peer,
            actor,
            tag,
            reason,
            count,
        } => format!(
            "DEADLETTER {peer} {actor} {tag} {count} {}",
            one_line(reason)
        ),
        NodeEvent::CheckpointLost { ty, key, last_seq } => {
            format!("CHECKPOINT-LOST {ty} {key} {last_seq}")
        }
        other => format!("EVENT {}", one_line(format!("{other:?}"))),
    }
}

/// The output line for a peer, for `peers`.
fn peer_line(peer: &PeerInfo) -> String {
    let status = match peer.status {
        PeerStatus::Up => "Up",
        PeerStatus::Suspect => "Suspect",
        PeerStatus::Down => "Down",
    };
    let rtt = match peer.rtt {
        Some(rtt) => format!("{:.3}", rtt.as_secs_f64() * 1000.0),
        None => "-".into(),
    };
    format!("PEER {} {status} {:.2} {rtt}", peer.name, peer.phi)
}

/// Looks up `echo` on `peer` and sends it one request.
async fn ask(
    node: &Node,
    peer: &str,
    build: impl FnOnce(RemoteReply<String>) -> NodeMsg,
) -> Result<String, ClusterError> {
    let echo = node.lookup::<NodeMsg>(peer, ECHO).await?;
    echo.call(build, CALL_TIMEOUT).await
}

/// The output line for a member, for `members`.
fn member_line(member: &Member) -> String {
    let status = match member.status {
        MemberStatus::Joining => "Joining",
        MemberStatus::Up => "Up",
        MemberStatus::Suspect => "Suspect",
        MemberStatus::Down => "Down",
        MemberStatus::Leaving => "Leaving",
        MemberStatus::Left => "Left",
    };
    format!(
        "MEMBER {} {status} {} {}",
        member.name, member.addr, member.incarnation
    )
}

/// What the commands act on: the node, its `echo` actor and the counts.
struct Program {
    node: Node,
    echo: ActorRef<NodeMsg>,
    counts: Arc<ReplyCounts>,
}

impl Program {
    /// Runs one command line; returns `false` for `quit`.
    async fn command(&self, line: &str) -> bool {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut words = line.splitn(3, ' ');
        match (words.next().unwrap_or(""), words.next(), words.next()) {
            ("call", Some(peer), text) if !peer.is_empty() => {
                let text = text.unwrap_or("").to_string();
                answer(ask(&self.node, peer, |reply| NodeMsg::Echo(text, reply)).await);
            }
            ("whoami", Some(peer), None) if !peer.is_empty() => {
                answer(ask(&self.node, peer, NodeMsg::Whoami).await);
            }
            ("peers", None, None) => {
                let peers = self.node.peers();
                emit(format!("PEERS {}", peers.len()));
                for p in &peers {
                    emit(peer_line(p));
                }
            }
            ("members", None, None) => {
                let members = self.node.members();
                emit(format!("MEMBERS {}", members.len()));
                for m in &members {
                    emit(member_line(m));
                }
            }
            ("replies", None, None) => emit(self.counts.line()),
            ("received", None, None) => emit(format!(
                "RECEIVED {}",
                self.counts.jobs.load(Ordering::Relaxed)
            )),
            ("register", Some(name), None) if !name.is_empty() => {
                match self.node.register(name, self.echo.clone()) {
                    Ok(()) => emit(format!("REGISTERED {name}")),
                    Err(e) => emit(format!("ERROR {}", one_line(e))),
                }
            }
            ("whereis", Some(name), None) if !name.is_empty() => {
                let holder = self.node.whereis(name);
                emit(format!("WHEREIS {name} {}", holder.as_deref().unwrap_or("-")));
            }
            ("join-group", Some(group), None) if !group.is_empty() => {
                match self.node.join_group(group, self.echo.clone()) {
                    Ok(id) => emit(format!("JOINED {group} {id}")),
                    Err(e) => emit(format!("ERROR {}", one_line(e))),
                }
            }
            ("group-members", Some(group), None) if !group.is_empty() => {
                let members = self.node.group::<NodeMsg>(group).members();
                emit(format!("GROUP {group} {}", members.len()));
                for m in &members {
                    emit(format!("GROUP-MEMBER {} {}", m.node, m.id));
                }
            }
            ("group-cast", Some(group), Some(n)) if !group.is_empty() => {
                match n.parse::<u64>() {
                    Ok(n) if n <= MAX_CAST => self.group_cast(group, n),
                    _ => emit(format!(
                        "ERROR group-cast {group} {n:?}: the count must be a number from 0 to {MAX_CAST}"
                    )),
                }
            }
            ("quit", None, None) => return false,
            ("", None, None) => {}
            _ => emit(format!(
                "ERROR unknown command {line:?}: use `call <peer> <text>`, `whoami <peer>`, \
                 `peers`, `replies`, `members`, `register <name>`, `whereis <name>`, \
                 `join-group <group>`, `group-members <group>`, `group-cast <group> <n>`, \
                 `received` or `quit`"
            )),
        }
        true
    }

    /// Casts `n` jobs to `group`, round robin, and reports how many went.
    fn group_cast(&self, group: &str, n: u64) {
        let to = self
            .node
            .group::<NodeMsg>(group)
            .routing(GroupRouting::RoundRobin);
        let mut failed = 0u64;
        let mut first_error = None;
        for i in 0..n {
            if let Err(e) = to.cast(NodeMsg::Job(i)) {
                failed += 1;
                first_error.get_or_insert_with(|| one_line(e.error()));
            }
        }
        let sent = n - failed;
        match first_error {
            None => emit(format!("CAST {group} sent={sent} failed=0")),
            Some(e) => emit(format!("CAST {group} sent={sent} failed={failed} {e}")),
        }
    }
}

/// Prints a `call`/`whoami` outcome.
fn answer(outcome: Result<String, ClusterError>) {
    match outcome {
        Ok(text) => emit(format!("REPLY {}", one_line(text))),
        Err(e) => emit(format!("ERROR {}", one_line(e))),
    }
}

/// Reads stdin lines on a plain thread (blocking reads have no place on
/// the runtime) and hands them over. The channel closes at end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts the node, then serves commands until `quit`.
async fn run(args: Args) -> ExitCode {
    let node = match Node::start(args.config()).await {
        Ok(node) => node,
        Err(e) => {
            emit(format!("ERROR {}", one_line(e)));
            return ExitCode::FAILURE;
        }
    };
    let mut events = node.subscribe();
    emit(format!("LISTENING {}", node.local_addr()));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            emit(event_line(&event));
        }
    });

    let counts = Arc::new(ReplyCounts::default());
    let exported = match Actor::spawn(None, EchoActor, (args.name.clone(), counts.clone())).await {
        Ok((echo, _)) => node
            .export(ECHO, echo.clone())
            .map(|()| echo)
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("the echo actor did not start: {e}")),
    };
    let echo = match exported {
        Ok(echo) => echo,
        Err(e) => {
            emit(format!("ERROR {}", one_line(e)));
            node.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    if let Some(ty) = &args.entities {
        let hosted = async {
            let kind_ty = ty.clone();
            node.register_kind("counter", move |key: &str| CounterActor::new(&kind_ty, key))?;
            node.entities(ractor_otp::cluster::EntitySpec::new(ty.clone(), "counter"))
                .await
        };
        if let Err(e) = hosted.await {
            emit(format!("ERROR {}", one_line(e)));
            node.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    for addr in &args.connect {
        match node.connect(*addr).await {
            Ok(peer) => emit(format!("CONNECTED {addr} {}", peer.name)),
            Err(e) => {
                emit(format!("ERROR {}", one_line(e)));
                node.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
    }
    emit("READY");

    let program = Program { node, echo, counts };
    let mut lines = stdin_lines();
    while let Some(line) = lines.recv().await {
        if !program.command(&line).await {
            program.node.shutdown().await;
            emit("BYE");
            return ExitCode::SUCCESS;
        }
    }
    // End of input: keep serving peers until killed.
    std::future::pending::<ExitCode>().await
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            emit(format!("ERROR {}", one_line(e)));
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A single thread is plenty for one node, and needs no more of tokio
    // than the library itself enables.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            emit(format!(
                "ERROR could not start the tokio runtime: {}",
                one_line(e)
            ));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}
