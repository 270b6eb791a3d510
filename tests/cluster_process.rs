//! Nodes in separate processes: a frozen process (SIGSTOP) is detected by
//! the heartbeats and comes back after SIGCONT, a killed one (SIGKILL) by
//! its closed socket at once, and the survivors keep serving each other.
//! Three processes joined through one seed form a cluster that routes a
//! process group; when one is killed, its group members and cluster-wide
//! names vanish on the survivors, which keep routing the group and can take
//! the name over.
//!
//! The processes run the `ractor-otp-node` program (`src/bin/`), driven
//! through its stdin and read through its stdout, one line per event. The
//! survivor is either a `Node` inside the test or another process. Every
//! process is wrapped in a [`NodeProcess`] whose `Drop` resumes and kills
//! it, so a failing test leaves nothing behind (no stopped process either).
//!
//! Unix only: signals are sent with the `kill` program.
#![cfg(all(feature = "cluster", unix))]

mod cluster_support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_otp::cluster::phi::{PhiConfig, PhiDetector};
use ractor_otp::cluster::{
    ClusterError, DownReason, Node, NodeConfig, NodeEvent, NodeEvents, PeerStatus, RemoteRef,
    RemoteReply,
};
use ractor_otp::Backoff;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const COOKIE: &str = "cluster-process-test";

/// The failure detector of every node in these tests, processes included:
/// heartbeats every 100 ms, 300 ms of acceptable pause, 50 ms minimum
/// standard deviation, threshold 8 (the default).
const HEARTBEAT: Duration = Duration::from_millis(100);
const PAUSE: Duration = Duration::from_millis(300);
const MIN_STD: Duration = Duration::from_millis(50);
const THRESHOLD: f64 = 8.0;

/// On top of the detector's own delay: one heartbeat tick, scheduling on a
/// loaded two-core machine, reading the event.
const DETECTION_SLACK: Duration = Duration::from_secs(2);
/// A closed socket is seen at once; this only absorbs a loaded machine.
const CLOSED_SOCKET_BOUND: Duration = Duration::from_millis(1500);
/// Start-up of a node process, reconnection after SIGCONT, a call.
const START: Duration = Duration::from_secs(10);
const RECONNECT: Duration = Duration::from_secs(6);
const CALL: Duration = Duration::from_secs(2);
/// Three processes joined through one seed reach a full mesh; a group
/// change or a registration reaches every node (milliseconds on an idle
/// machine, loaded two-core machines are slower).
const CONVERGE: Duration = Duration::from_secs(5);
/// Jobs cast to a group are all handled.
const DELIVERY: Duration = Duration::from_secs(5);
/// Between two polls of a node's state.
const POLL: Duration = Duration::from_millis(20);

/// The node program's message type, declared again here: same variants,
/// same order, same tag, as a program talking to it would.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "ractor-otp-node.NodeMsg")]
enum NodeMsg {
    Echo(String, RemoteReply<String>),
    Whoami(RemoteReply<String>),
    Job(u64),
    Slow(u64, String, RemoteReply<String>),
}

/// How long a silent peer takes to be declared down, from phi: about
/// 661 ms with these settings (mean 100 + 300 ms pause, std 50 ms,
/// y ≈ 5.226 for phi 8).
fn detection_delay() -> Duration {
    PhiDetector::new(PhiConfig {
        threshold: THRESHOLD,
        heartbeat_interval: HEARTBEAT,
        min_std_dev: MIN_STD,
        acceptable_pause: PAUSE,
        ..PhiConfig::default()
    })
    .time_to_threshold()
}

/// The most a frozen peer may take to be reported down.
fn detection_bound() -> Duration {
    let bound = detection_delay() + DETECTION_SLACK;
    assert!(
        bound < Duration::from_secs(3),
        "the detection bound {bound:?} should stay under 3 s"
    );
    bound
}

/// An in-process node with the same detector as the processes, which
/// reconnects quickly and gives up a handshake with a frozen peer after 1 s.
fn survivor_config(name: &str) -> NodeConfig {
    NodeConfig::new(name)
        .cookie(COOKIE)
        .heartbeat_interval(HEARTBEAT)
        .acceptable_pause(PAUSE)
        .min_std_dev(MIN_STD)
        .phi_threshold(THRESHOLD)
        .handshake_timeout(Duration::from_secs(1))
        .request_timeout(CALL)
        .reconnect(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(400),
        ))
}

async fn echo(to: &RemoteRef<NodeMsg>, text: &str) -> Result<String, ClusterError> {
    to.call(|reply| NodeMsg::Echo(text.to_string(), reply), CALL)
        .await
}

/// Sends `signal` (`STOP`, `CONT`) to `pid` with the `kill` program.
fn send_signal(pid: u32, signal: &str) -> std::io::Result<ExitStatus> {
    Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
}

/// A `ractor-otp-node` process. Dropping it resumes and kills it.
struct NodeProcess {
    name: String,
    addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    /// Stdout lines, from a reader thread; closed when the process exits.
    lines: mpsc::UnboundedReceiver<String>,
    /// Lines received but not yet matched by [`expect`](Self::expect).
    unread: VecDeque<String>,
    /// Every line received, for failure messages.
    seen: Vec<String>,
    /// `ENTITY-UP`/`ENTITY-DOWN` lines with the time they were read.
    entity_log: Arc<Mutex<Vec<(std::time::Instant, String)>>>,
}

impl NodeProcess {
    /// Starts the node `name` with the test's detector settings, dialing
    /// `connect`, and waits until it is ready for commands.
    async fn start(name: &str, connect: &[SocketAddr]) -> NodeProcess {
        let dials: Vec<_> = connect.iter().map(|a| ("--connect", *a)).collect();
        NodeProcess::launch(name, &dials).await
    }

    /// Starts the node `name` joining the cluster through `seed`, and waits
    /// until it is ready for commands (not until it has joined: poll
    /// [`members`](Self::members) for that).
    async fn join(name: &str, seed: SocketAddr) -> NodeProcess {
        NodeProcess::launch(name, &[("--seed", seed)]).await
    }

    /// Starts the node `name` with the test's detector settings and the
    /// address options `dials` (`--connect` or `--seed`).
    async fn launch(name: &str, dials: &[(&str, SocketAddr)]) -> NodeProcess {
        NodeProcess::launch_with(name, dials, &[]).await
    }

    /// [`launch`](Self::launch) with more options for the program.
    async fn launch_with(name: &str, dials: &[(&str, SocketAddr)], extra: &[&str]) -> NodeProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ractor-otp-node"));
        cmd.args(extra);
        cmd.args(["--name", name, "--cookie", COOKIE])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--heartbeat-ms", &HEARTBEAT.as_millis().to_string()])
            .args(["--pause-ms", &PAUSE.as_millis().to_string()])
            .args(["--min-std-ms", &MIN_STD.as_millis().to_string()]);
        for (option, addr) in dials {
            cmd.args([*option, &addr.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ractor-otp-node program should start");
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => (stdin, stdout),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("stdin and stdout were asked to be piped");
            }
        };
        let (tx, lines) = mpsc::unbounded_channel();
        let entity_log = Arc::new(Mutex::new(Vec::new()));
        let log = entity_log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ENTITY-") {
                    log.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((std::time::Instant::now(), line.clone()));
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = NodeProcess {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            stdin,
            lines,
            unread: VecDeque::new(),
            seen: Vec::new(),
            entity_log,
        };
        let listening = node
            .expect("LISTENING <addr>", START, |l| l.starts_with("LISTENING "))
            .await;
        node.addr = listening["LISTENING ".len()..]
            .parse()
            .expect("LISTENING is followed by the address");
        node.expect("READY", START, |l| l == "READY").await;
        node
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (or stopped), i.e. its pid is
    /// still its own.
    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Writes one command line.
    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("{}: could not send {command:?}: {e}", self.name));
    }

    /// The first line, in output order and not matched before, for which
    /// `matches` holds, waiting up to `within` for it.
    async fn expect(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(i) = self.unread.iter().position(|l| matches(l)) {
            return self.unread.remove(i).unwrap_or_default();
        }
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                    self.unread.push_back(line);
                }
                Ok(None) => {
                    let status = self.child.try_wait();
                    panic!(
                        "{}: the process ended ({status:?}) before printing {what}; its output: {:#?}",
                        self.name, self.seen
                    );
                }
                Err(_) => panic!(
                    "{}: no {what} within {within:?}; its output: {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Sends a command and returns its `REPLY ...` or `ERROR ...` line.
    async fn ask(&mut self, command: &str) -> String {
        self.send(command);
        let what = format!("an answer to {command:?}");
        // The program answers within its own call timeout (2 s, after a
        // lookup of up to 2 s); leave room for a loaded machine.
        self.expect(&what, CALL * 3, |l| {
            l.starts_with("REPLY ") || l.starts_with("ERROR ")
        })
        .await
    }

    /// Sends a command and returns its answer: the line starting with
    /// `head` (then a space), and when `item` is given, the `<n>` lines
    /// starting with `item` that follow a head line ending in `<n>`. An
    /// `ERROR` answer fails the test.
    async fn query(
        &mut self,
        command: &str,
        head: &str,
        item: Option<&str>,
    ) -> (String, Vec<String>) {
        self.send(command);
        let what = format!("the answer to {command:?}");
        let head_prefix = format!("{head} ");
        let line = self
            .expect(&what, CALL, |l| {
                l.starts_with(&head_prefix) || l.starts_with("ERROR ")
            })
            .await;
        assert!(
            line.starts_with(&head_prefix),
            "{}: {command:?} failed: {line}",
            self.name
        );
        let Some(item) = item else {
            return (line, Vec::new());
        };
        let n: usize = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: {line:?} ends with a count", self.name));
        let item_prefix = format!("{item} ");
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let what = format!("{item} lines after {line:?}");
            items.push(
                self.expect(&what, CALL, |l| l.starts_with(&item_prefix))
                    .await,
            );
        }
        (line, items)
    }

    /// Asks the same question until `done` holds of the answer, for up to
    /// `within`; returns that answer.
    async fn poll<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        within: Duration,
        ask: impl AsyncFn(&mut NodeProcess) -> T,
        done: impl Fn(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            let answer = ask(self).await;
            if done(&answer) {
                return answer;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: not {what} within {within:?}; last answer: {answer:?}; its output: {:#?}",
                    self.name, self.seen
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The membership view: each member's name and status.
    async fn members(&mut self) -> Vec<(String, String)> {
        let (_, items) = self.query("members", "MEMBERS", Some("MEMBER")).await;
        items
            .iter()
            .map(|l| {
                let mut words = l.split(' ').skip(1);
                let name = words.next().unwrap_or_default().to_string();
                let status = words.next().unwrap_or_default().to_string();
                (name, status)
            })
            .collect()
    }

    /// Waits until the membership view is exactly `want` (name, status).
    async fn await_members(&mut self, want: &[(&str, &str)], within: Duration) {
        let what = format!("members {want:?}");
        self.poll(&what, within, NodeProcess::members, |got| {
            got.len() == want.len()
                && got
                    .iter()
                    .zip(want)
                    .all(|((n, s), (wn, ws))| n == wn && s == ws)
        })
        .await;
    }

    /// The members of `group`, as `<node> <id>`, in the group's order.
    async fn group_members(&mut self, group: &str) -> Vec<String> {
        let command = format!("group-members {group}");
        let (_, items) = self.query(&command, "GROUP", Some("GROUP-MEMBER")).await;
        items
            .iter()
            .map(|l| l["GROUP-MEMBER ".len()..].to_string())
            .collect()
    }

    /// Waits until `group` has `n` members; returns them.
    async fn await_group(&mut self, group: &str, n: usize, within: Duration) -> Vec<String> {
        let what = format!("{n} members in {group}");
        let group = group.to_string();
        self.poll(
            &what,
            within,
            async move |p: &mut NodeProcess| p.group_members(&group).await,
            |got| got.len() == n,
        )
        .await
    }

    /// Who holds `name` in this node's view.
    async fn whereis(&mut self, name: &str) -> Option<String> {
        let (line, _) = self
            .query(&format!("whereis {name}"), &format!("WHEREIS {name}"), None)
            .await;
        match line.rsplit(' ').next() {
            Some("-") | None => None,
            Some(node) => Some(node.to_string()),
        }
    }

    /// Waits until this node's view says `holder` holds `name`.
    async fn await_holder(&mut self, name: &str, holder: Option<&str>, within: Duration) {
        let what = format!("{name} held by {holder:?}");
        let name = name.to_string();
        self.poll(
            &what,
            within,
            async move |p: &mut NodeProcess| p.whereis(&name).await,
            |got| got.as_deref() == holder,
        )
        .await;
    }

    /// How many jobs this node's `echo` actor has handled.
    async fn received(&mut self) -> u64 {
        let (line, _) = self.query("received", "RECEIVED", None).await;
        line["RECEIVED ".len()..]
            .parse()
            .unwrap_or_else(|_| panic!("{}: RECEIVED is followed by a count: {line}", self.name))
    }

    /// Casts `n` jobs to `group` from this node; all of them must go.
    async fn group_cast(&mut self, group: &str, n: u64) {
        let (line, _) = self
            .query(&format!("group-cast {group} {n}"), "CAST", None)
            .await;
        assert_eq!(
            line,
            format!("CAST {group} sent={n} failed=0"),
            "{}: every job was cast",
            self.name
        );
    }

    /// Sends a command whose answer is one line starting with `head`.
    async fn answer(&mut self, command: &str, head: &str) -> String {
        self.query(command, head, None).await.0
    }

    /// Freezes the process (SIGSTOP).
    fn stop(&mut self) {
        self.signal("STOP");
    }

    /// Resumes the process (SIGCONT).
    fn resume(&mut self) {
        self.signal("CONT");
    }

    fn signal(&mut self, signal: &str) {
        assert!(
            self.is_running(),
            "{}: SIG{signal} for a process that has exited; its output: {:#?}",
            self.name,
            self.seen
        );
        match send_signal(self.pid(), signal) {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("`kill -{signal} {}` failed: {status}", self.pid()),
            Err(e) => panic!(
                "could not run the `kill` program to send SIG{signal} (these tests need it, \
                 e.g. from procps or util-linux): {e}"
            ),
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    fn kill(&mut self) {
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("{}: SIGKILL failed: {e}", self.name));
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("{}: could not reap the process: {e}", self.name));
    }

    /// Waits for the process to exit by itself.
    async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => panic!(
                    "{}: still running {within:?} later; its output: {:#?}",
                    self.name, self.seen
                ),
                Err(e) => panic!("{}: could not wait for the process: {e}", self.name),
            }
        }
    }

    /// Whether any line printed so far satisfies `matches`.
    fn printed(&mut self, matches: impl Fn(&str) -> bool) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line.clone());
            self.unread.push_back(line);
        }
        self.seen.iter().any(|l| matches(l))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // Only while the pid is still ours (not reaped): a stopped process
        // is resumed, then killed either way.
        if self.is_running() {
            let _ = send_signal(self.pid(), "CONT");
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A `DOWN <peer> <Kind> ...` line: the kind and the `key=value` fields.
fn down_line(line: &str) -> (String, Vec<(String, String)>) {
    let mut words = line.split(' ').skip(2);
    let kind = words.next().unwrap_or_default().to_string();
    let fields = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (kind, fields)
}

fn field(fields: &[(String, String)], key: &str) -> f64 {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("the DOWN line has a numeric {key}=: {fields:?}"))
}

/// The in-process node's events, all kept for later checks.
struct Watch {
    events: NodeEvents,
    log: Vec<NodeEvent>,
}

impl Watch {
    fn new(events: NodeEvents) -> Self {
        Watch {
            events,
            log: Vec::new(),
        }
    }

    /// The next event for which `matches` holds, waiting up to `within`.
    async fn until(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&NodeEvent) -> bool,
    ) -> NodeEvent {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.log.push(event.clone());
                    if matches(&event) {
                        return event;
                    }
                }
                Ok(None) => panic!("the node shut down before {what}; events: {:#?}", self.log),
                Err(_) => panic!("no {what} within {within:?}; events: {:#?}", self.log),
            }
        }
    }

    /// Reads the events already published.
    fn drain(&mut self) {
        while let Some(event) = self.events.try_recv() {
            self.log.push(event);
        }
    }

    fn went_down(&self, peer: &str) -> bool {
        self.log
            .iter()
            .any(|e| matches!(e, NodeEvent::Down { peer: p, .. } if p == peer))
    }
}

fn is_up(peer: &str) -> impl Fn(&NodeEvent) -> bool + '_ {
    move |e| matches!(e, NodeEvent::Up { peer: p } if p == peer)
}

fn is_down(peer: &str) -> impl Fn(&NodeEvent) -> bool + '_ {
    move |e| matches!(e, NodeEvent::Down { peer: p, .. } if p == peer)
}

/// Starts the in-process survivor `s`, connected to `p` and `q`, with
/// references to both echo actors.
async fn survivor_of(
    config: NodeConfig,
    p: &NodeProcess,
    q: &NodeProcess,
) -> (Node, Watch, RemoteRef<NodeMsg>, RemoteRef<NodeMsg>) {
    let s = Node::start(config).await.expect("the survivor starts");
    let mut watch = Watch::new(s.subscribe());
    for (name, addr) in [(&p.name, p.addr), (&q.name, q.addr)] {
        let info = timeout(START, s.connect(addr))
            .await
            .expect("connect is bounded by the handshake timeout")
            .unwrap_or_else(|e| panic!("the survivor connects to {name}: {e}"));
        assert_eq!(&info.name, name, "the process at {addr} is {name}");
        watch.until(&format!("Up {name}"), START, is_up(name)).await;
    }
    let to_p = s.lookup("p", "echo").await.expect("p exports echo");
    let to_q = s.lookup("q", "echo").await.expect("q exports echo");
    (s, watch, to_p, to_q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_call_each_other_and_say_goodbye_on_quit() {
    let mut a = NodeProcess::start("a", &[]).await;
    let mut b = NodeProcess::start("b", &[a.addr]).await;
    a.expect("UP b", START, |l| l == "UP b").await;
    b.expect("UP a", START, |l| l == "UP a").await;
    assert!(b.printed(|l| l == format!("CONNECTED {} a", a.addr)));

    // Both ways: from the dialer and from the acceptor.
    assert_eq!(
        b.ask("call a hello across processes").await,
        "REPLY hello across processes"
    );
    assert_eq!(b.ask("whoami a").await, "REPLY a");
    assert_eq!(a.ask("call b ping").await, "REPLY ping");
    let unknown = a.ask("call nobody ping").await;
    assert!(
        unknown.starts_with("ERROR ") && unknown.contains("nobody"),
        "a call to an unknown node is an error naming it: {unknown}"
    );

    b.send("peers");
    b.expect("PEERS 1", CALL, |l| l == "PEERS 1").await;
    let peer = b.expect("PEER a", CALL, |l| l.starts_with("PEER a ")).await;
    let words: Vec<&str> = peer.split(' ').collect();
    assert_eq!(words.len(), 5, "PEER name status phi rtt_ms: {peer}");
    assert!(
        words[2] == "Up" || words[2] == "Suspect",
        "a is connected: {peer}"
    );
    assert!(words[3].parse::<f64>().is_ok(), "phi is a number: {peer}");

    // quit: goodbye to the peer, exit code 0.
    b.send("quit");
    b.expect("BYE", CALL * 2, |l| l == "BYE").await;
    let status = b.exit_status(CALL * 2).await;
    assert!(status.success(), "quit exits with 0, got {status}");
    let down = a
        .expect("DOWN b", CALL * 2, |l| l.starts_with("DOWN b "))
        .await;
    assert_eq!(down_line(&down).0, "PeerShutdown", "{down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_process_is_declared_down_by_heartbeats_and_back_after_sigcont() {
    let mut p = NodeProcess::start("p", &[]).await;
    let mut q = NodeProcess::start("q", &[]).await;
    let (s, mut watch, to_p, to_q) = survivor_of(survivor_config("s"), &p, &q).await;
    assert_eq!(echo(&to_p, "before").await, Ok("before".to_string()));
    p.expect("UP s", START, |l| l == "UP s").await;

    // Frozen: the socket stays open, only the heartbeats stop.
    p.stop();
    let frozen_at = Instant::now();
    let bound = detection_bound();
    let down = watch.until("Down p", bound, is_down("p")).await;
    let took = frozen_at.elapsed();
    match down {
        NodeEvent::Down {
            reason:
                DownReason::HeartbeatTimeout {
                    phi,
                    threshold,
                    silence,
                },
            ..
        } => {
            assert_eq!(threshold, THRESHOLD);
            assert!(phi >= threshold, "down at phi {phi} >= {threshold}");
            assert!(
                silence >= PAUSE,
                "phi only reaches 8 after more than the acceptable pause of silence: {silence:?}"
            );
        }
        other => panic!("a frozen process is detected by heartbeats, not {other:?}"),
    }
    assert!(
        took < bound,
        "detected after {took:?}, expected about {:?}",
        detection_delay()
    );

    // While p is frozen: q is served, and calls to p fail at once.
    for i in 0..3 {
        let text = format!("q while p is frozen {i}");
        assert_eq!(echo(&to_q, &text).await, Ok(text));
    }
    let asked = Instant::now();
    let err = echo(&to_p, "frozen").await.expect_err("p is down");
    assert!(
        matches!(
            err,
            ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }
        ),
        "a call to a down peer fails with node-down: {err:?}"
    );
    assert!(
        asked.elapsed() < CALL / 2,
        "a call to a down peer fails at once, not after its timeout"
    );

    // Resumed: the survivor dialed p, so it reconnects; p takes it back.
    p.resume();
    watch
        .until("Up p after SIGCONT", RECONNECT, is_up("p"))
        .await;
    assert_eq!(echo(&to_p, "after").await, Ok("after".to_string()));
    p.expect("UP s again", RECONNECT, |l| l == "UP s").await;
    // s exports nothing: the refusal comes from s, over p's new session.
    let refused = p.ask("whoami s").await;
    assert!(
        refused.starts_with("ERROR ") && refused.contains("refused"),
        "p reaches s again after SIGCONT: {refused}"
    );

    watch.drain();
    assert!(!watch.went_down("q"), "q was never down: {:#?}", watch.log);
    assert_eq!(s.peer("q").map(|i| i.status), Some(PeerStatus::Up));
    assert!(
        !q.printed(|l| l.starts_with("DOWN s")),
        "q never lost s: {:#?}",
        q.seen
    );
    timeout(START, s.shutdown())
        .await
        .expect("shutdown is bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_is_declared_down_at_once_by_its_closed_socket() {
    let mut p = NodeProcess::start("p", &[]).await;
    let q = NodeProcess::start("q", &[]).await;
    // A detector this slow cannot be what notices the kill within
    // CLOSED_SOCKET_BOUND: only the closed socket can.
    let slow = survivor_config("s").acceptable_pause(Duration::from_secs(5));
    let (s, mut watch, to_p, to_q) = survivor_of(slow, &p, &q).await;
    assert_eq!(echo(&to_p, "before").await, Ok("before".to_string()));

    p.kill();
    let killed_at = Instant::now();
    let down = watch
        .until("Down p", CLOSED_SOCKET_BOUND, is_down("p"))
        .await;
    let took = killed_at.elapsed();
    match down {
        NodeEvent::Down {
            reason: DownReason::ConnectionClosed | DownReason::ConnectionError(_),
            ..
        } => {}
        other => panic!("a killed process is detected by its closed socket, not {other:?}"),
    }
    assert!(took < CLOSED_SOCKET_BOUND, "detected after {took:?}");

    for i in 0..3 {
        let text = format!("q after p was killed {i}");
        assert_eq!(echo(&to_q, &text).await, Ok(text));
    }
    let err = echo(&to_p, "dead").await.expect_err("p is dead");
    assert!(
        matches!(
            err,
            ClusterError::NodeDown { .. } | ClusterError::NotConnected { .. }
        ),
        "a call to a dead peer fails with node-down: {err:?}"
    );

    watch.drain();
    assert!(!watch.went_down("q"), "q was never down: {:#?}", watch.log);
    assert_eq!(s.peer("q").map(|i| i.status), Some(PeerStatus::Up));
    timeout(START, s.shutdown())
        .await
        .expect("shutdown is bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_detect_a_frozen_then_a_killed_peer_process() {
    let mut a = NodeProcess::start("a", &[]).await;
    let mut b = NodeProcess::start("b", &[a.addr]).await;
    let mut c = NodeProcess::start("c", &[a.addr]).await;
    a.expect("UP b", START, |l| l == "UP b").await;
    a.expect("UP c", START, |l| l == "UP c").await;
    b.expect("UP a", START, |l| l == "UP a").await;

    // Frozen b: a prints the heartbeat timeout with phi and the silence.
    b.stop();
    let frozen_at = Instant::now();
    let bound = detection_bound();
    let down = a
        .expect("DOWN b", bound, |l| l.starts_with("DOWN b "))
        .await;
    let took = frozen_at.elapsed();
    let (kind, fields) = down_line(&down);
    assert_eq!(kind, "HeartbeatTimeout", "a frozen process: {down}");
    assert!(field(&fields, "phi") >= THRESHOLD, "{down}");
    assert_eq!(field(&fields, "threshold"), THRESHOLD, "{down}");
    assert!(
        field(&fields, "silence_ms") >= PAUSE.as_millis() as f64,
        "more than the acceptable pause of silence: {down}"
    );
    assert!(took < bound, "detected after {took:?}: {down}");
    assert_eq!(
        a.ask("call c while b is frozen").await,
        "REPLY while b is frozen"
    );

    // Resumed b dialed a, so it reconnects.
    b.resume();
    a.expect("UP b after SIGCONT", RECONNECT, |l| l == "UP b")
        .await;
    b.expect("UP a after SIGCONT", RECONNECT, |l| l == "UP a")
        .await;
    assert_eq!(b.ask("call a back").await, "REPLY back");

    // Killed b: a sees the closed socket.
    b.kill();
    let killed_at = Instant::now();
    let down = a
        .expect("DOWN b after SIGKILL", CLOSED_SOCKET_BOUND, |l| {
            l.starts_with("DOWN b ")
        })
        .await;
    let took = killed_at.elapsed();
    let (kind, _) = down_line(&down);
    assert!(
        kind == "ConnectionClosed" || kind == "ConnectionError",
        "a killed process is detected by its closed socket: {down}"
    );
    assert!(
        took < CLOSED_SOCKET_BOUND,
        "detected after {took:?}: {down}"
    );

    assert_eq!(a.ask("call c after b died").await, "REPLY after b died");
    assert_eq!(c.ask("whoami a").await, "REPLY a");
    assert!(
        !a.printed(|l| l.starts_with("DOWN c")),
        "a never lost c: {:#?}",
        a.seen
    );
    assert!(
        !c.printed(|l| l.starts_with("DOWN a")),
        "c never lost a: {:#?}",
        c.seen
    );
}

/// How many calls are written to a frozen process's socket in the test
/// below.
const IN_FLIGHT: usize = 5;
/// How long the one slow call among them keeps the resumed actor busy
/// before it answers: far longer than the resumed process takes to read
/// the end of the old connection, so that answer always finds its caller
/// gone, however the process's tasks are scheduled.
const SLOW_REPLY: Duration = Duration::from_millis(500);

/// `REPLIES sent=<n> gone=<n> unencodable=<n>` from the node program.
fn reply_counts(line: &str) -> (u64, u64, u64) {
    let count = |key: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(key)?.parse().ok())
            .unwrap_or_else(|| panic!("the REPLIES line has a numeric {key}: {line}"))
    };
    (count("sent="), count("gone="), count("unencodable="))
}

/// The issue this guards against: pings that waited in a frozen process's
/// socket are handled when it resumes, after their callers have failed
/// with `NodeDown`; answering them must not stop the (unsupervised)
/// exported actor, or no ping is ever answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_waited_in_a_frozen_process_do_not_stop_its_exported_actor() {
    let mut p = NodeProcess::start("p", &[]).await;
    let s = Node::start(survivor_config("s"))
        .await
        .expect("the survivor starts");
    let mut watch = Watch::new(s.subscribe());
    timeout(START, s.connect(p.addr))
        .await
        .expect("connect is bounded by the handshake timeout")
        .expect("the survivor connects to p");
    watch.until("Up p", START, is_up("p")).await;
    let to_p: RemoteRef<NodeMsg> = s.lookup("p", "echo").await.expect("p exports echo");
    assert_eq!(echo(&to_p, "before").await, Ok("before".to_string()));
    p.expect("UP s", START, |l| l == "UP s").await;

    // Frozen with calls in flight: the session is still up on s's side,
    // so they are written to p's socket, where they wait.
    p.stop();
    // One of them slow: whether a quick answer finds the old session
    // still open on p's side depends on which of p's tasks runs first on
    // resume; the slow one's answer, given after SLOW_REPLY, never does.
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let to_p = to_p.clone();
            tokio::spawn(async move {
                let text = format!("in flight {i}");
                if i == 0 {
                    let ms = SLOW_REPLY.as_millis() as u64;
                    to_p.call(|reply| NodeMsg::Slow(ms, text, reply), CALL)
                        .await
                } else {
                    echo(&to_p, &text).await
                }
            })
        })
        .collect();
    watch.until("Down p", detection_bound(), is_down("p")).await;
    for call in calls {
        let result = timeout(CALL * 2, call)
            .await
            .expect("a call is bounded by its timeout")
            .expect("the call task does not panic");
        assert!(
            matches!(result, Err(ClusterError::NodeDown { .. })),
            "a call in flight to a frozen peer fails with NodeDown, got {result:?}"
        );
    }

    // Resumed: the pings are answered again, by the same actor.
    p.resume();
    watch
        .until("Up p after SIGCONT", RECONNECT, is_up("p"))
        .await;
    for i in 0..3 {
        let text = format!("after SIGCONT {i}");
        assert_eq!(echo(&to_p, &text).await, Ok(text));
    }
    p.send("replies");
    let line = p
        .expect("REPLIES", CALL, |l| l.starts_with("REPLIES "))
        .await;
    let (sent, gone, unencodable) = reply_counts(&line);
    assert_eq!(unencodable, 0, "{line}");
    assert!(
        gone >= 1,
        "the calls that waited in p's socket were handled on resume, after their callers \
         had failed with NodeDown (a NodeDown call may still have been handled): {line}"
    );
    assert!(
        sent >= 4,
        "the call before the freeze and the three after it were answered: {line}"
    );
    assert!(
        sent + gone <= 4 + IN_FLIGHT as u64,
        "no call is handled twice: {line}"
    );
    timeout(START, s.shutdown())
        .await
        .expect("shutdown is bounded");
}

/// Starts `n1`, then `n2` and `n3` joining through it as their only seed,
/// and waits until each sees the other two `Up` (`n2` and `n3` find each
/// other through `n1`'s member list).
async fn three_joined_through_one_seed() -> [NodeProcess; 3] {
    let n1 = NodeProcess::start("n1", &[]).await;
    let n2 = NodeProcess::join("n2", n1.addr).await;
    let n3 = NodeProcess::join("n3", n1.addr).await;
    let mut nodes = [n1, n2, n3];
    let names = ["n1", "n2", "n3"];
    for (i, node) in nodes.iter_mut().enumerate() {
        let others: Vec<(&str, &str)> = names
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, name)| (*name, "Up"))
            .collect();
        node.await_members(&others, CONVERGE).await;
    }
    nodes
}

/// What each node's `echo` actor has received, waiting until they add up
/// to `total`.
async fn received_adding_up_to(nodes: &mut [&mut NodeProcess], total: u64) -> Vec<u64> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let mut counts = Vec::with_capacity(nodes.len());
        for node in nodes.iter_mut() {
            counts.push(node.received().await);
        }
        let sum: u64 = counts.iter().sum();
        assert!(sum <= total, "more jobs received than cast: {counts:?}");
        if sum == total {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "jobs lost: {counts:?} received, {total} cast, after {DELIVERY:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The survivors' view of `killed` after a SIGKILL: its session ends at once
/// (closed socket), and it is a `Down` member.
async fn sees_killed(node: &mut NodeProcess, killed: &str, others: &[(&str, &str)]) {
    let prefix = format!("DOWN {killed} ");
    let down = node
        .expect(&format!("DOWN {killed}"), CLOSED_SOCKET_BOUND, |l| {
            l.starts_with(&prefix)
        })
        .await;
    let (kind, _) = down_line(&down);
    assert!(
        kind == "ConnectionClosed" || kind == "ConnectionError",
        "{}: a killed process is detected by its closed socket: {down}",
        node.name
    );
    node.await_members(others, CLOSED_SOCKET_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_route_a_group_and_the_two_left_keep_routing_it_after_a_sigkill() {
    let mut nodes = three_joined_through_one_seed().await;
    for node in nodes.iter_mut() {
        let joined = node.answer("join-group g", "JOINED g").await;
        assert!(joined.split(' ').nth(2).is_some(), "an id: {joined}");
    }
    // Every node sees the three members, in the same order.
    let mut views = Vec::new();
    for node in nodes.iter_mut() {
        views.push(node.await_group("g", 3, CONVERGE).await);
    }
    assert!(
        views.iter().all(|v| v == &views[0]),
        "the group's order is the same on every node: {views:?}"
    );
    let holders: Vec<&str> = views[0]
        .iter()
        .map(|m| m.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(holders, ["n1", "n2", "n3"], "one member per node");

    // Round robin over a stable list of three: 100 jobs each, counted by
    // each node's actor (n1's own member is reached locally).
    nodes[0].group_cast("g", 300).await;
    let mut all: Vec<&mut NodeProcess> = nodes.iter_mut().collect();
    let counts = received_adding_up_to(&mut all, 300).await;
    assert_eq!(counts, [100, 100, 100], "round robin over three members");

    // n3 dies holding a group member.
    nodes[2].kill();
    let killed_at = Instant::now();
    let [n1, n2, n3] = &mut nodes;
    sees_killed(n1, "n3", &[("n2", "Up"), ("n3", "Down")]).await;
    sees_killed(n2, "n3", &[("n1", "Up"), ("n3", "Down")]).await;
    for node in [&mut *n1, &mut *n2] {
        let left = node.await_group("g", 2, CLOSED_SOCKET_BOUND).await;
        assert!(
            left.iter().all(|m| !m.starts_with("n3 ")),
            "{}: n3's member is gone: {left:?}",
            node.name
        );
    }
    let took = killed_at.elapsed();
    assert!(
        took < CLOSED_SOCKET_BOUND * 2,
        "the group shrank on both survivors {took:?} after the kill"
    );

    // Cast once the group shows two members: nothing is lost, and the
    // two survivors share the jobs evenly, from either of them.
    n1.group_cast("g", 200).await;
    let counts = received_adding_up_to(&mut [&mut *n1, &mut *n2], 400).await;
    assert_eq!(counts, [200, 200], "200 more jobs, half to each survivor");
    n2.group_cast("g", 100).await;
    let counts = received_adding_up_to(&mut [&mut *n1, &mut *n2], 500).await;
    assert_eq!(counts, [250, 250], "100 more jobs from n2, half to each");

    // The survivors never lost each other.
    assert!(
        !n1.printed(|l| l.starts_with("DOWN n2 ")),
        "n1 never lost n2: {:#?}",
        n1.seen
    );
    assert!(
        !n2.printed(|l| l.starts_with("DOWN n1 ")),
        "n2 never lost n1: {:#?}",
        n2.seen
    );
    assert!(!n3.is_running(), "n3 was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_name_holder_loses_its_name_on_the_survivors_and_another_takes_it() {
    let mut nodes = three_joined_through_one_seed().await;
    let [n1, n2, n3] = &mut nodes;
    assert_eq!(
        n3.answer("register leader", "REGISTERED").await,
        "REGISTERED leader"
    );
    n3.answer("join-group workers", "JOINED workers").await;
    n1.answer("join-group workers", "JOINED workers").await;
    for node in [&mut *n1, &mut *n2, &mut *n3] {
        node.await_holder("leader", Some("n3"), CONVERGE).await;
        node.await_group("workers", 2, CONVERGE).await;
    }
    // Taken while n3 holds it.
    n2.send("register leader");
    let taken = n2
        .expect("an answer to register", CALL, |l| {
            l.starts_with("REGISTERED ") || l.starts_with("ERROR ")
        })
        .await;
    assert!(
        taken.starts_with("ERROR ") && taken.contains("n3"),
        "a name held on n3 cannot be registered on n2: {taken}"
    );

    n3.kill();
    let killed_at = Instant::now();
    let bound = detection_bound();
    for node in [&mut *n1, &mut *n2] {
        node.await_holder("leader", None, bound).await;
    }
    let took = killed_at.elapsed();
    assert!(
        took < bound,
        "the name left both survivors' views {took:?} after the kill"
    );
    for node in [&mut *n1, &mut *n2] {
        let left = node.await_group("workers", 1, CLOSED_SOCKET_BOUND).await;
        assert!(
            left[0].starts_with("n1 "),
            "{}: only n1's member is left: {left:?}",
            node.name
        );
    }

    // The name is free: n2 takes it, and n1 sees the new holder.
    assert_eq!(
        n2.answer("register leader", "REGISTERED").await,
        "REGISTERED leader"
    );
    n1.await_holder("leader", Some("n2"), CONVERGE).await;
    n2.await_holder("leader", Some("n2"), CALL).await;

    // The group still routes: n2's jobs reach n1's member, all of them.
    n2.group_cast("workers", 10).await;
    let got = n1
        .poll("given 10 jobs", DELIVERY, NodeProcess::received, |n| {
            *n >= 10
        })
        .await;
    assert_eq!(got, 10, "every job reached the one member left");
}

/// The node program's counter entity, declared again here.
#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
#[remote(tag = "ractor-otp-node.Counter")]
enum Counter {
    Add(u64, RemoteReply<u64>),
    Get(RemoteReply<u64>),
}

/// One live copy of a key on one process: from `ENTITY-UP` to
/// `ENTITY-DOWN` (or the process's death).
#[derive(Debug, Clone)]
struct Copy {
    process: String,
    key: String,
    from: std::time::Instant,
    to: std::time::Instant,
}

/// The copies a process's log shows; a copy still up ends at `end`.
fn copies(process: &str, node: &NodeProcess, end: std::time::Instant) -> Vec<Copy> {
    let log = node
        .entity_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut open: std::collections::HashMap<String, std::time::Instant> = Default::default();
    let mut out = Vec::new();
    for (at, line) in log {
        let mut words = line.split(' ');
        let (Some(kind), Some(_ty), Some(key)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        match kind {
            "ENTITY-UP" => {
                open.insert(key.to_string(), at);
            }
            "ENTITY-DOWN" => {
                if let Some(from) = open.remove(key) {
                    out.push(Copy {
                        process: process.into(),
                        key: key.into(),
                        from,
                        to: at,
                    });
                }
            }
            _ => {}
        }
    }
    for (key, from) in open {
        out.push(Copy {
            process: process.into(),
            key,
            from,
            to: end,
        });
    }
    out
}

/// A Jepsen-style consistency test: three processes host counter entities
/// (a replicated checkpoint after every message, replies only once it is
/// replicated); clients send increments, each with an id the counter
/// applies at most once, retried until acknowledged. Meanwhile one process
/// is killed (SIGKILL) and started again, killed again while its keys are
/// being handed back to it, and started again; another is frozen (SIGSTOP)
/// and resumed; a third is cut off from the others through fault proxies
/// and healed. At the end every counter equals the number of increments
/// acknowledged for it (none lost, none doubled), and no key ever had two
/// live copies on healthy processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_increments_survive_kills_a_partition_and_a_freeze_with_one_copy_per_key() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const KEYS: u64 = 8;
    const WRITERS: u64 = 4;
    const ENTITIES: [&str; 2] = ["--entities", "counters"];
    /// The longest one increment may take to be acknowledged, retries
    /// included (a freeze is detected in well under 1 s here).
    const ACK_BOUND: Duration = Duration::from_secs(15);

    // Every node advertises its own fault proxy, so every dial to it
    // crosses that proxy; a and b (and the client) talk directly, so the
    // proxies carry exactly the sessions with c (until b is frozen, last).
    use cluster_support::proxy::{Mode, Proxy};
    let unused: SocketAddr = ([127, 0, 0, 1], 9).into();
    let (pa, pb, pc) = (
        Proxy::start(unused).await,
        Proxy::start(unused).await,
        Proxy::start(unused).await,
    );
    let behind = |p: &Proxy| -> [String; 4] {
        [
            ENTITIES[0].to_string(),
            ENTITIES[1].to_string(),
            "--advertise".to_string(),
            p.reverse_addr().to_string(),
        ]
    };
    let launch_c = |pa: SocketAddr, extra: [String; 4]| async move {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        NodeProcess::launch_with("c", &[("--seed", pa)], &extra).await
    };
    let extra = behind(&pa);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut a = NodeProcess::launch_with("a", &[], &extra).await;
    pa.set_reverse_target(a.addr);
    let extra = behind(&pb);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut b = NodeProcess::launch_with("b", &[("--seed", a.addr)], &extra).await;
    pb.set_reverse_target(b.addr);
    let mut c = launch_c(pa.reverse_addr(), behind(&pc)).await;
    pc.set_reverse_target(c.addr);
    a.await_members(&[("b", "Up"), ("c", "Up")], CONVERGE).await;
    b.await_members(&[("a", "Up"), ("c", "Up")], CONVERGE).await;
    c.await_members(&[("a", "Up"), ("b", "Up")], CONVERGE).await;

    let client = Node::start(survivor_config("client").seeds([a.addr]))
        .await
        .expect("client");
    let owners = |client: &Node| -> std::collections::HashSet<Option<String>> {
        (0..KEYS * 4)
            .map(|k| {
                client
                    .entity::<Counter>("counters", &format!("key{k}"))
                    .owner()
            })
            .collect()
    };
    let deadline = Instant::now() + CONVERGE;
    while owners(&client).len() != 3 || owners(&client).contains(&None) {
        assert!(
            Instant::now() < deadline,
            "the client never saw the three hosts"
        );
        tokio::time::sleep(POLL).await;
    }

    // Writers: each increment retried with the same id until acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let next_op = Arc::new(AtomicU64::new(1));
    let acked: Arc<Mutex<std::collections::HashMap<String, u64>>> = Default::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, stop, next_op, acked) =
            (client.clone(), stop.clone(), next_op.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut retries = 0u64;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let op = next_op.fetch_add(1, Ordering::Relaxed);
                let key = format!("key{}", i % KEYS);
                i += 1;
                let entity = client.entity::<Counter>("counters", &key);
                let give_up = Instant::now() + ACK_BOUND;
                loop {
                    match entity
                        .call(|r| Counter::Add(op, r), Duration::from_millis(800))
                        .await
                    {
                        Ok(_) => break,
                        Err(e) => {
                            assert!(
                                Instant::now() < give_up,
                                "increment {op} of {key} not acknowledged within {ACK_BOUND:?}: {e}"
                            );
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                *acked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key)
                    .or_default() += 1;
            }
            retries
        }));
    }

    // Faults, one at a time, each while increments flow.
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.kill();
    let killed_at = std::time::Instant::now();
    let c_old = copies("c", &c, killed_at);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The restarted c takes its keys back (hand-overs from a and b) and is
    // killed again while those are under way, then comes back for good.
    let mut c2 = launch_c(pa.reverse_addr(), behind(&pc)).await;
    pc.set_reverse_target(c2.addr);
    c2.await_members(&[("a", "Up"), ("b", "Up"), ("client", "Up")], CONVERGE)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c2.kill();
    let c2_killed_at = std::time::Instant::now();
    let c2_copies = copies("c2", &c2, c2_killed_at);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c3 = launch_c(pa.reverse_addr(), behind(&pc)).await;
    pc.set_reverse_target(c3.addr);
    c3.await_members(&[("a", "Up"), ("b", "Up"), ("client", "Up")], CONVERGE)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    // c is cut off through the proxies: {a, b} | {c}. c, in the minority,
    // stops its copies; a and b take its keys over from the replicas.
    for p in [&pa, &pb, &pc] {
        p.refuse(true);
        p.set(Mode::Drop);
    }
    let cut_at = std::time::Instant::now();
    for peer in ["a", "b"] {
        let prefix = format!("DOWN {peer} ");
        c3.expect(&format!("c cut off from {peer}"), detection_bound(), |l| {
            l.starts_with(&prefix)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    for p in [&pa, &pb, &pc] {
        p.set(Mode::Pass);
        p.refuse(false);
    }
    let healed_at = std::time::Instant::now();
    c3.await_members(&[("a", "Up"), ("b", "Up"), ("client", "Up")], RECONNECT)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    b.stop();
    let frozen_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.resume();
    let resumed_at = std::time::Instant::now();
    b.await_members(&[("a", "Up"), ("c", "Up"), ("client", "Up")], RECONNECT)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    stop.store(true, Ordering::Relaxed);
    let mut retries = 0;
    for w in writers {
        retries += timeout(ACK_BOUND * 2, w)
            .await
            .expect("writers finish")
            .expect("a writer failed");
    }

    // Every counter equals its acknowledged increments.
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let total: u64 = acked.values().sum();
    assert!(total > 50, "too few increments to mean anything: {total}");
    for (key, n) in &acked {
        let value = client
            .entity::<Counter>("counters", key)
            .call(Counter::Get, Duration::from_secs(5))
            .await
            .expect("final read");
        assert_eq!(
            value, *n,
            "{key}: {n} increments acknowledged, value {value}"
        );
    }

    // One live copy per key among healthy processes. A frozen process is
    // unhealthy from its freeze until its copies can have been stopped
    // after it resumed (detection plus slack); a killed one until its end.
    let end = std::time::Instant::now();
    let unhealthy = [
        ("b", frozen_at, resumed_at + detection_bound()),
        ("c3", cut_at, healed_at + detection_bound()),
    ];
    let mut all = c_old;
    all.extend(copies("a", &a, end));
    all.extend(copies("b", &b, end));
    all.extend(c2_copies);
    all.extend(copies("c3", &c3, end));
    let tolerance = Duration::from_millis(150);
    for x in &all {
        for y in &all {
            if x.process >= y.process || x.key != y.key {
                continue;
            }
            let from = x.from.max(y.from);
            let to = x.to.min(y.to);
            if to <= from + tolerance {
                continue;
            }
            let excused = unhealthy.iter().any(|(p, start, end)| {
                (x.process == *p || y.process == *p) && from < *end && to > *start
            });
            if excused {
                continue;
            }
            panic!(
                "two live copies of {} on {} and {} for {:?}",
                x.key,
                x.process,
                y.process,
                to - from
            );
        }
    }
    eprintln!(
        "consistency: {total} increments acknowledged over {KEYS} keys, {retries} retries, {} copies seen",
        all.len()
    );
    client.shutdown().await;
}

/// The owner of a key and the only replica of its checkpoint are killed
/// together: the survivors report the checkpoint lost and do not start the
/// key from scratch; a key that kept a replica carries on with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_owner_and_replica_die_together_is_reported_lost_not_restarted_empty() {
    const ENTITIES: [&str; 2] = ["--entities", "counters"];
    let mut a = NodeProcess::launch_with("a", &[], &ENTITIES).await;
    let mut b = NodeProcess::launch_with("b", &[("--seed", a.addr)], &ENTITIES).await;
    let mut c = NodeProcess::launch_with("c", &[("--seed", a.addr)], &ENTITIES).await;
    let mut d = NodeProcess::launch_with("d", &[("--seed", a.addr)], &ENTITIES).await;
    a.await_members(&[("b", "Up"), ("c", "Up"), ("d", "Up")], CONVERGE)
        .await;
    let client = Node::start(survivor_config("client").seeds([a.addr]))
        .await
        .expect("client");
    let deadline = Instant::now() + CONVERGE;
    let order = |key: &str| client.entity::<Counter>("counters", key).hosts_in_order();
    while order("probe").len() != 4 {
        assert!(
            Instant::now() < deadline,
            "the client never saw the four hosts"
        );
        tokio::time::sleep(POLL).await;
    }
    let on = |first: &[&str]| -> String {
        (0..10_000)
            .map(|k| format!("key{k}"))
            .find(|k| {
                let o = order(k);
                o.len() == 4 && first.contains(&o[0].as_str()) && first.contains(&o[1].as_str())
            })
            .expect("such a key")
    };
    let doomed = on(&["c", "d"]);
    let kept = (0..10_000)
        .map(|k| format!("key{k}"))
        .find(|k| {
            let o = order(k);
            o.len() == 4 && o[0] == "c" && (o[1] == "a" || o[1] == "b")
        })
        .expect("a key on c with its replica on a or b");
    for key in [&doomed, &kept] {
        let v = client
            .entity::<Counter>("counters", key)
            .call(|r| Counter::Add(1, r), CALL)
            .await
            .expect("first increment");
        assert_eq!(v, 1);
    }
    c.kill();
    d.kill();
    a.await_members(
        &[("b", "Up"), ("c", "Down"), ("client", "Up"), ("d", "Down")],
        CLOSED_SOCKET_BOUND * 2,
    )
    .await;
    let deadline = Instant::now() + RECONNECT;
    loop {
        let o = order(&kept);
        if !o.iter().any(|n| n == "c" || n == "d") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "c and d still hosts in the client's view: {o:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let v = client
        .entity::<Counter>("counters", &kept)
        .call(|r| Counter::Add(2, r), CALL)
        .await
        .expect("the key with a surviving replica carries on");
    assert_eq!(v, 2);
    let lost = client
        .entity::<Counter>("counters", &doomed)
        .call(|r| Counter::Add(2, r), CALL)
        .await;
    assert!(
        lost.is_err(),
        "a lost key must not start from scratch: {lost:?}"
    );
    let new_owner = order(&doomed)[0].clone();
    let reporter = if new_owner == "a" { &mut a } else { &mut b };
    let line = format!("CHECKPOINT-LOST counters {doomed} 1");
    reporter.expect(&line, CALL, |l| l == line).await;
    client.shutdown().await;
}
