//! A replicated key-value store: every node holds the whole map, serves
//! reads locally, and replicates its writes to every peer.
//!
//! Each process is a node running a one-for-one `Supervisor` over a store
//! actor, exported to the cluster as "kv" (it follows the store across
//! restarts). A write gets a version (a millisecond clock that never goes
//! backwards, then the node's name: the last writer wins), is applied
//! locally and cast to every peer's "kv". When a peer comes up, each side
//! sends the other its whole map, so a node that was down catches up; a
//! store that crashed restarts empty and starts from its peers' maps.
//!
//! Nodes join the cluster through a seed (`--seed ADDR`, any one live
//! member is enough): each learns the other members from its seed's member
//! list and dials them, so the mesh forms by itself. Three terminals:
//!
//! ```text
//! cargo run --example kv_store -- --name a --listen 127.0.0.1:7101
//! cargo run --example kv_store -- --name b --listen 127.0.0.1:7102 --seed 127.0.0.1:7101
//! cargo run --example kv_store -- --name c --listen 127.0.0.1:7103 --seed 127.0.0.1:7101
//! ```
//!
//! (`c` names only `a`, yet connects to `b` too.) Then type `put k v`,
//! `get k`, `members`, `dump`, `crash` (the store fails; its supervisor
//! restarts it and it catches up), `help` or `quit` at the `kv a>` prompt
//! of any of them. Versions print as the UTC time of the write and the
//! node that made it. `--help` lists the options.
//! Kill one (Ctrl-C): the others print `Down` and keep serving, and redial
//! it; start it again with the same command and it catches up. `quit`
//! leaves the cluster for good: the others mark it `Left` and do not
//! redial it.
//!
//! `cargo run --example kv_store -- --demo` runs a scripted version with
//! three nodes in one process and exits 0 if every step worked.
//! `--cookie SECRET` sets the cluster's secret (default: a demo value).

use std::collections::BTreeMap;
use std::error::Error;
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::cluster::MemberStatus;
use ractor_otp::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The default cookie: a demo value, use your own secret anywhere else.
const DEMO_COOKIE: &str = "ractor-otp-kv-demo";
const TIMEOUT: Duration = Duration::from_secs(2);

/// A write's version; versions compare by time, then node name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    millis: u64,
    node: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Entry {
    value: String,
    version: Version,
}

/// What the "kv" actor understands. Clients on any node write with `Put`;
/// stores use the others among themselves.
#[derive(Serialize, Deserialize, RemoteMessage)]
enum Kv {
    Put {
        key: String,
        value: String,
        reply: RemoteReply<Version>,
    },
    /// A write made on another node.
    Replicate { key: String, entry: Entry },
    /// Another node's whole map.
    Sync { from: String, map: Map },
    /// Cast your whole map to this peer (with `Sync`).
    SyncTo(String),
    /// Answer with your whole map.
    Snapshot(RemoteReply<Map>),
    /// Requests from this process (its console), answered on a local
    /// reply port; `skip` keeps them off the wire.
    #[serde(skip)]
    Local(Local),
}

type Map = BTreeMap<String, Entry>;

enum Local {
    Put(String, String, RpcReplyPort<Version>),
    Read(RpcReplyPort<Map>),
    Crash,
}

/// The peers' "kv" actors, kept up to date from the node's events.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<BTreeMap<String, RemoteRef<Kv>>>>);

impl Peers {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RemoteRef<Kv>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn all(&self) -> Vec<RemoteRef<Kv>> {
        self.map().values().cloned().collect()
    }
}

/// The store actor. Each incarnation starts from a clone of this; the
/// event watcher and the console share it too.
#[derive(Clone)]
struct Store {
    node: Node,
    peers: Peers,
    /// Prefixes every line this node prints (the demo runs three).
    log: String,
}

struct State {
    map: Map,
    clock: u64,
}

impl State {
    /// Applies `entry` if it is newer than what we hold; returns whether.
    fn merge(&mut self, key: String, entry: Entry) -> bool {
        self.clock = self.clock.max(entry.version.millis);
        let newer = self
            .map
            .get(&key)
            .is_none_or(|old| entry.version > old.version);
        if newer {
            self.map.insert(key, entry);
        }
        newer
    }

    /// Merges a peer's map, saying so if it taught us anything.
    fn merge_all(&mut self, from: &str, map: Map, out: &Store) {
        let mut newer = 0;
        for (key, entry) in map {
            newer += usize::from(self.merge(key, entry));
        }
        if newer > 0 {
            out.say(format_args!("caught up from {from}: {newer} newer entries"));
        }
    }
}

impl Store {
    /// Prints a line about this node, as things happen. At an interactive
    /// console (no prefix, a terminal) it replaces the waiting prompt and
    /// prints the prompt again after it.
    fn say(&self, line: std::fmt::Arguments<'_>) {
        if self.log.is_empty() && std::io::stdout().is_terminal() {
            print!("\r\x1b[K{line}\n");
            prompt(self.node.name());
        } else {
            println!("{}{line}", self.log);
        }
    }

    /// A local write: version it, apply it, cast it to every peer. A peer
    /// that misses it gets it with our whole map when it is back.
    fn put(&self, st: &mut State, key: String, value: String) -> Version {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        st.clock = now.map_or(0, |d| d.as_millis() as u64).max(st.clock + 1);
        let version = Version {
            millis: st.clock,
            node: self.node.name().to_string(),
        };
        let entry = Entry { value, version };
        for peer in self.peers.all() {
            let (key, entry) = (key.clone(), entry.clone());
            let _ = peer.cast(Kv::Replicate { key, entry });
        }
        st.merge(key, entry.clone());
        entry.version
    }
}

impl Actor for Store {
    type Msg = Kv;
    type State = State;
    type Arguments = ();

    /// A (re)started store begins with the peers' maps.
    async fn pre_start(&self, _: ActorRef<Kv>, _: ()) -> Result<State, ActorProcessingErr> {
        let mut st = State {
            map: Map::new(),
            clock: 0,
        };
        for peer in self.peers.all() {
            if let Ok(map) = peer.call(Kv::Snapshot, TIMEOUT).await {
                st.merge_all(peer.peer(), map, self);
            }
        }
        Ok(st)
    }

    async fn handle(
        &self,
        _: ActorRef<Kv>,
        msg: Kv,
        st: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // Answers never fail the store: a remote caller that went away is
        // logged by `RemoteReply::send`, a local one is simply gone.
        match msg {
            Kv::Put { key, value, reply } => {
                reply.send(self.put(st, key, value));
            }
            Kv::Replicate { key, entry } => drop(st.merge(key, entry)),
            Kv::Sync { from, map } => st.merge_all(&from, map, self),
            Kv::SyncTo(peer) => {
                if let Some(target) = self.peers.map().get(&peer) {
                    let from = self.node.name().to_string();
                    let _ = target.cast(Kv::Sync {
                        from,
                        map: st.map.clone(),
                    });
                }
            }
            Kv::Snapshot(reply) => {
                reply.send(st.map.clone());
            }
            Kv::Local(Local::Put(key, value, reply)) => drop(reply.send(self.put(st, key, value))),
            Kv::Local(Local::Read(reply)) => drop(reply.send(st.map.clone())),
            Kv::Local(Local::Crash) => return Err("the store was asked to crash".into()),
        }
        Ok(())
    }
}

/// One process's worth: a node, the supervisor of its store, the store.
struct KvNode {
    ctx: Store,
    sup: SupervisorRef,
    store: ChildRef<Kv>,
}

impl KvNode {
    /// Starts the node (joining the cluster through `seeds`, in the
    /// background), the supervised store (exported as "kv") and the event
    /// watcher.
    async fn start(
        name: &str,
        listen: SocketAddr,
        seeds: &[SocketAddr],
        cookie: &str,
        log: &str,
    ) -> Result<KvNode, Box<dyn Error>> {
        // Redial seeds and members that went down within a second (the
        // default backs off up to 5 s).
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let config = NodeConfig::new(name)
            .listen(listen)
            .cookie(cookie)
            .seeds(seeds.iter().copied())
            .reconnect(backoff);
        let node = Node::start(config).await?;
        let events = node.subscribe();
        let ctx = Store {
            node,
            peers: Peers::default(),
            log: log.to_string(),
        };
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(3, Duration::from_secs(10))
            .child(ChildSpec::new("store", ctx.clone(), || ()));
        let (sup, _) = Supervisor::spawn(None, spec).await?;
        let store = sup.child::<Kv>("store")?;
        ctx.node.export_child("kv", store.clone())?;
        println!("{log}node {name} listening on {}", ctx.node.local_addr());
        tokio::spawn(watch_peers(ctx.clone(), events, store.clone()));
        Ok(KvNode { ctx, sup, store })
    }

    fn addr(&self) -> SocketAddr {
        self.ctx.node.local_addr()
    }

    async fn put(&self, key: &str, value: &str) -> Result<Version, CallError> {
        let (key, value) = (key.to_string(), value.to_string());
        let put = |reply| Kv::Local(Local::Put(key, value, reply));
        self.store.call(put, Some(TIMEOUT)).await
    }

    async fn read(&self) -> Result<Map, CallError> {
        let read = |reply| Kv::Local(Local::Read(reply));
        self.store.call(read, Some(TIMEOUT)).await
    }

    /// Whether the store reads `value` for `key`, and has `len` keys.
    async fn holds(&self, key: &str, value: &str, len: usize) -> bool {
        let map = self.read().await.unwrap_or_default();
        map.len() == len && map.get(key).is_some_and(|e| e.value == value)
    }

    /// Leaves the cluster (the members mark this node `Left` and do not
    /// redial it), then the store stops.
    async fn stop(self) {
        self.ctx.node.leave().await;
        let _ = self.sup.cell().stop_and_wait(None, Some(TIMEOUT)).await;
    }
}

/// Tracks the peers' "kv" actors: on `Up`, looks the peer's up and sends
/// it our map; on `Down`, forgets it; when a message to one is refused (its
/// store was restarting), sends it our map again a moment later.
async fn watch_peers(ctx: Store, mut events: NodeEvents, store: ChildRef<Kv>) {
    while let Some(event) = events.recv().await {
        match event {
            NodeEvent::Up { peer } => {
                ctx.say(format_args!("Up {peer}"));
                // Its store may still be starting: retry for a few seconds.
                for _ in 0..30 {
                    match ctx.node.lookup::<Kv>(&peer, "kv").await {
                        Ok(kv) => {
                            ctx.peers.map().insert(peer.clone(), kv);
                            let _ = store.cast(Kv::SyncTo(peer));
                            break;
                        }
                        Err(ClusterError::Refused { .. }) => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Err(e) => {
                            ctx.say(format_args!("no kv on {peer}: {e}"));
                            break;
                        }
                    }
                }
            }
            NodeEvent::Down { peer, reason } => {
                ctx.peers.map().remove(&peer);
                // A member that leaves is reported by `MemberLeft`.
                if !matches!(reason, DownReason::LocalShutdown | DownReason::PeerLeft) {
                    ctx.say(format_args!("Down {peer} ({reason})"));
                }
            }
            NodeEvent::MemberJoined { member } => {
                ctx.say(format_args!("{member} joined the cluster"))
            }
            NodeEvent::MemberLeft { member } => ctx.say(format_args!("{member} left the cluster")),
            NodeEvent::Rejected { addr, reason, .. } => {
                ctx.say(format_args!("refused a connection with {addr}: {reason}"))
            }
            NodeEvent::DeadLetter { peer, reason, .. } => {
                ctx.say(format_args!(
                    "{peer} missed a message ({reason}); resending our map"
                ));
                let store = store.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = store.cast(Kv::SyncTo(peer));
                });
            }
            _ => {}
        }
    }
}

/// A version as people read it: `2026-12-01 08:31:12.345 UTC on b`.
fn when(v: &Version) -> String {
    format!("{} on {}", utc(v.millis), v.node)
}

/// Milliseconds since the Unix epoch as a UTC date and time, to the
/// millisecond (the civil-from-days conversion of Howard Hinnant's
/// `chrono`-compatible date algorithms).
fn utc(millis: u64) -> String {
    let (days, ms_of_day) = ((millis / 86_400_000) as i64, millis % 86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (sec, ms) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{sec:02}.{ms:03} UTC")
}

fn show(key: &str, e: &Entry) -> String {
    format!("{key} = {} (written {})", e.value, when(&e.version))
}

const COMMANDS: &str = "commands:
  put KEY VALUE   write VALUE under KEY here; it is replicated to every peer
  get KEY         read KEY from this node's copy
  dump            every key this node holds
  members         the other members of the cluster, with their status
  crash           make this node's store fail (its supervisor restarts it)
  help            this list
  quit            leave the cluster (the members do not redial this node)";

/// Prints the prompt, `kv NAME> `, without a line break.
fn prompt(name: &str) {
    print!("kv {name}> ");
    let _ = std::io::stdout().flush();
}

/// The console: one command per line on stdin, until `quit` or the end.
async fn console(kv: &KvNode) -> Result<(), Box<dyn Error>> {
    let name = kv.ctx.node.name().to_string();
    println!("{COMMANDS}");
    prompt(&name);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["put", key, value @ ..] if !value.is_empty() => {
                match kv.put(key, &value.join(" ")).await {
                    Ok(v) => println!("ok, {key} written {}", when(&v)),
                    Err(e) => println!("error: {e}"),
                }
            }
            ["get", key] => match kv.read().await.map(|mut map| map.remove(*key)) {
                Ok(Some(entry)) => println!("{}", show(key, &entry)),
                Ok(None) => println!("{key} is not set"),
                Err(e) => println!("error: {e}"),
            },
            ["dump"] => match kv.read().await {
                Ok(map) => map.iter().for_each(|(k, e)| println!("{}", show(k, e))),
                Err(e) => println!("error: {e}"),
            },
            ["members"] => {
                let stores = kv.ctx.peers.map();
                let members = kv.ctx.node.members();
                if members.is_empty() {
                    println!("no other members yet");
                }
                for m in members {
                    let status = match m.status {
                        MemberStatus::Joining => "joining (being dialed)",
                        MemberStatus::Up => "up",
                        MemberStatus::Suspect => "suspect (heartbeats late)",
                        MemberStatus::Down => "down (redialed)",
                        MemberStatus::Leaving => "leaving",
                        MemberStatus::Left => "left",
                    };
                    let connected = matches!(m.status, MemberStatus::Up | MemberStatus::Suspect);
                    let peer = kv.ctx.node.peer(&m.name).filter(|_| connected);
                    let health = peer.map_or(String::new(), |p| {
                        let rtt = p.rtt.map_or("n/a".to_string(), |d| {
                            format!("{:.2} ms", d.as_secs_f64() * 1e3)
                        });
                        format!(", rtt {rtt}, phi {:.2}", p.phi)
                    });
                    let store = if stores.contains_key(&m.name) {
                        "its store replicates with ours"
                    } else {
                        "its store is not reachable"
                    };
                    println!("{} at {}: {status}{health}; {store}", m.name, m.addr);
                }
            }
            ["crash"] => match kv.store.cast(Kv::Local(Local::Crash)) {
                Ok(()) => println!(
                    "the store fails; its supervisor restarts it, empty, and it catches up"
                ),
                Err(e) => println!("error: {e}"),
            },
            ["help"] => println!("{COMMANDS}"),
            ["quit"] => break,
            [] => {}
            _ => println!("unknown command {:?}\n{COMMANDS}", line.trim()),
        }
        prompt(&name);
    }
    Ok(())
}

/// Polls `check` every 10 ms for up to 3 s.
async fn eventually<F: Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> Result<(), String> {
    for _ in 0..300 {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("timed out waiting until {what}"))
}

/// The scripted demo: three nodes in this process, each started as the
/// commands in the module docs start them: `b` and `c` name only `a` as
/// their seed.
async fn demo(cookie: &str) -> Result<(), Box<dyn Error>> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let a = KvNode::start("a", any, &[], cookie, "  [a] ").await?;
    let b = KvNode::start("b", any, &[a.addr()], cookie, "  [b] ").await?;
    let c = KvNode::start("c", any, &[a.addr()], cookie, "  [c] ").await?;
    let c_addr = c.addr();
    let meshed = |kvs: &[&KvNode]| {
        kvs.iter()
            .all(|kv| kv.ctx.peers.map().len() == kvs.len() - 1)
    };
    eventually("all know each other", || async { meshed(&[&a, &b, &c]) }).await?;

    println!("\n== puts on different nodes");
    a.put("color", "red").await?;
    b.put("fruit", "apple").await?;
    // A client on c writes through b's "kv", over the network.
    let b_kv = c.ctx.node.lookup::<Kv>("b", "kv").await?;
    let (key, value) = ("city".to_string(), "paris".to_string());
    let v = b_kv
        .call(|reply| Kv::Put { key, value, reply }, TIMEOUT)
        .await?;
    println!("  c wrote city=paris through b's kv: version {}", when(&v));
    for kv in [&a, &b, &c] {
        eventually("all hold 3 keys", || kv.holds("city", "paris", 3)).await?;
        let map = kv.read().await?;
        let pairs: Vec<String> = map
            .iter()
            .map(|(k, e)| format!("{k}={}", e.value))
            .collect();
        println!("  {} holds {}", kv.ctx.node.name(), pairs.join(", "));
    }

    println!("\n== c leaves; a and b keep serving");
    c.stop().await;
    eventually("a and b saw c go", || async { meshed(&[&a, &b]) }).await?;
    a.put("color", "blue").await?;
    eventually("b reads color=blue", || b.holds("color", "blue", 3)).await?;
    println!("  a wrote color=blue; b reads color = blue");

    println!("\n== c starts again (seed: b) and catches up");
    let c = KvNode::start("c", c_addr, &[b.addr()], cookie, "  [c] ").await?;
    eventually("all know each other", || async { meshed(&[&a, &b, &c]) }).await?;
    eventually("c reads color=blue", || c.holds("color", "blue", 3)).await?;
    let entry = c.read().await?.remove("color").ok_or("c lost color")?;
    println!("  c reads {}", show("color", &entry));

    println!("\n== b's store crashes; its supervisor restarts it, empty, and it catches up");
    b.store
        .cast(Kv::Local(Local::Crash))
        .map_err(|e| format!("{e:?}"))?;
    eventually("b caught up", || b.holds("color", "blue", 3)).await?;
    println!("  b holds {} keys again", b.read().await?.len());

    for kv in [a, b, c] {
        kv.stop().await;
    }
    println!("\nThe demo is over.");
    Ok(())
}

const USAGE: &str = "usage: kv_store --name NAME [--listen ADDR] [--seed ADDR]... [--cookie SECRET]
       kv_store --demo
A replicated key-value store: every node holds the whole map and replicates
its writes to its peers (the last writer wins).
  --name NAME      this node's name, unique in the cluster (required)
  --listen ADDR    listen for peers on ADDR (default 127.0.0.1:0, any free port)
  --seed ADDR      join the cluster through the member listening on ADDR; it
                   tells this node the other members, which it dials too.
                   Repeat for several seeds: any one live member is enough
  --cookie SECRET  the cluster's shared secret (default: a demo value)
  --demo           three nodes in this process, scripted; exits 0 if all worked
  -h, --help       this text
Then type commands at the `kv NAME>` prompt (`help` lists them).";

/// Parses the command line by hand, then runs the demo or a node.
async fn run() -> Result<(), Box<dyn Error>> {
    let (mut demo_mode, mut name, mut seeds) = (false, None, Vec::new());
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut cookie = DEMO_COOKIE.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        if flag == "--demo" {
            demo_mode = true;
            continue;
        }
        if !["--name", "--listen", "--seed", "--cookie"].contains(&flag.as_str()) {
            return Err(format!("unknown option {flag}\n{USAGE}").into());
        }
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let addr = || value.parse().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--name" => name = Some(value.clone()),
            "--listen" => listen = addr()?,
            "--seed" => seeds.push(addr()?),
            _ => cookie = value.clone(),
        }
    }
    if demo_mode {
        let within = Duration::from_secs(20);
        return tokio::time::timeout(within, demo(&cookie))
            .await
            .map_err(|_| "the demo took over 20 s")?;
    }
    let name = name.ok_or(format!("--name is required\n{USAGE}"))?;
    let kv = KvNode::start(&name, listen, &seeds, &cookie, "").await?;
    let done = console(&kv).await;
    kv.stop().await;
    done
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv_store: {e}");
            ExitCode::FAILURE
        }
    }
}
