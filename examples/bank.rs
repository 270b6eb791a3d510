//! A bank over a cluster: every account is a sharded, checkpointed actor
//! that runs on one node at a time and survives that node's death with
//! its balance.
//!
//! Each node registers the kind `account` and hosts the entity type
//! `accounts` (`node.register_kind`, `node.entities`); any member reaches
//! an account with `node.entity::<Account>("accounts", name)`, wherever
//! it runs. The owner of an account is computed alike by every node
//! (rendezvous hashing over the hosts); it starts the account on its
//! first message, from its latest checkpoint. An account asks for a
//! checkpoint (`checkpoint::request`) after every change, and its answer
//! to the caller is held until that checkpoint is on a second node (one
//! replica): an acknowledged deposit is never lost. Reads (`balance`)
//! change nothing and cost no checkpoint. When a node dies (`kill -9`),
//! the next message for one of its accounts starts the account on the
//! next owner from the replica, with the same balance.
//!
//! Operations carry an id, and an account remembers the answers it gave
//! to its last 256 operations (in its checkpoint, so the record moves with
//! it). An operation whose answer was lost (the owner died after applying
//! it, or the network dropped the answer) is simply sent again with the
//! same id: if it was applied, the recorded answer comes back and nothing
//! is applied twice; if not, it is applied now. Refusals are recorded too,
//! so a retry always gets the first answer.
//!
//! A transfer is three such steps, run by the teller (the node where the
//! command is typed) with ids derived from the transfer's id: withdraw
//! from the payer (`ID/debit`), deposit to the payee (`ID/credit`) and,
//! only if the payee declines (no such account), deposit back to the
//! payer (`ID/refund`). Each step is retried with its own id until it is
//! answered, so a step is applied once however often it is sent, and a
//! transfer interrupted midway (the teller dies, or the cluster is
//! unreachable for longer than the retries last) is finished by running
//! it again with the same id (`transfer FROM TO AMOUNT ID`). We chose this
//! over a two-phase commit because every step is one account's own
//! decision, checkpointed before it is acknowledged: no lock is held
//! across nodes, and recovery is only ever the same retry. The cost: the
//! money of a transfer is in flight between its debit and its credit (an
//! audit taken meanwhile misses it), and if the teller dies there it stays
//! in flight until someone runs the transfer again. A checkpointed
//! transfer entity driving the same steps would finish by itself; the
//! teller keeps this example short.
//!
//! A cluster singleton, the `auditor` (`node.singleton`), keeps the list
//! of open accounts and totals their balances on request. It runs on the
//! oldest node; when that node dies it starts on the next oldest from its
//! checkpoint, with the list.
//!
//! Three terminals:
//!
//! ```text
//! cargo run --example bank -- --name a --listen 127.0.0.1:7301
//! cargo run --example bank -- --name b --listen 127.0.0.1:7302 --seed 127.0.0.1:7301
//! cargo run --example bank -- --name c --listen 127.0.0.1:7303 --seed 127.0.0.1:7301
//! ```
//!
//! Then type `open alice 100`, `open bob 20`, `transfer alice bob 30`,
//! `balance bob`, `audit` or `help` at the `bank a>` prompt of any of
//! them. `kill -9` one of them (the pid it printed): the others keep
//! answering for every account, those it held included.
//!
//! With three nodes, one may die: the two others still hold the majority
//! of the members they know. After a second loss (even a `quit`), the
//! last one is on the minority side and serves no account until another
//! node is back (keep-majority downing: it cannot tell a dead node from a
//! partition that runs the same accounts; `NodeConfig::remove_down_after`
//! changes that where a cut-off node never returns unrestarted).
//!
//! `cargo run --example bank -- --demo` starts the three nodes as separate
//! processes (this program, run again) and joins them as a fourth member,
//! the teller, which hosts nothing. It opens accounts and moves money,
//! kills the node running the auditor with SIGKILL and checks that its
//! accounts answer from the other nodes with the same balances; starts it
//! again (it takes its accounts back); kills another node while four
//! streams of transfers run, and checks that every balance is what the
//! answered transfers imply and that no money was made or lost. It exits
//! 0 only if every check passed, in about a second.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::error::Error;
use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::checkpoint::{self, CheckpointPolicy};
use ractor_otp::cluster::{EntityRef, EntitySpec, SingletonSpec};
use ractor_otp::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;

/// The default cookie: a demo value, use your own secret anywhere else.
const DEMO_COOKIE: &str = "ractor-otp-bank-demo";
/// The entity type of accounts, and the kind every node registers for it.
const ACCOUNTS: &str = "accounts";
const ACCOUNT_KIND: &str = "account";
/// The auditor singleton, and its kind.
const AUDITOR: &str = "auditor";
const AUDITOR_KIND: &str = "auditor";
/// How many operations' answers an account remembers: a retry must come
/// within that many operations on the account to be recognised.
const RECENT_OPS: usize = 256;
/// One call to an account or the auditor.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a step is retried (with the same id) before the teller gives
/// up and reports it unfinished.
const RETRY_FOR: Duration = Duration::from_secs(10);
/// An audit reads every account (each read retried as a call is).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// An account: its messages, its state and its rules

/// What can be done to an account.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Open,
    Deposit(u64),
    Withdraw(u64),
}

/// Why an account declined an operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
enum Declined {
    NoSuchAccount,
    AlreadyOpen,
    InsufficientFunds {
        balance: u64,
    },
    ZeroAmount,
    /// The balance would pass `u64::MAX`.
    Overflow,
}

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Declined::NoSuchAccount => write!(f, "no such account"),
            Declined::AlreadyOpen => write!(f, "the account is open already"),
            Declined::InsufficientFunds { balance } => {
                write!(f, "insufficient funds (balance {balance})")
            }
            Declined::ZeroAmount => write!(f, "the amount must be more than 0"),
            Declined::Overflow => write!(f, "the balance would overflow"),
        }
    }
}

/// What an operation did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Done { balance: u64 },
    Declined(Declined),
}

/// An account's answer to an operation.
#[derive(Serialize, Deserialize)]
struct Answer {
    outcome: Outcome,
    /// The node the account runs on.
    node: String,
    /// The operation's id had been applied before: this is the recorded
    /// answer, and nothing was applied now.
    replayed: bool,
}

/// An account's balance, and where it runs.
#[derive(Serialize, Deserialize)]
struct Statement {
    open: bool,
    balance: u64,
    node: String,
}

/// The messages of an account.
#[derive(Serialize, Deserialize, RemoteMessage)]
enum Account {
    /// Applies `op` once per `id`.
    Apply {
        id: String,
        op: Op,
        reply: RemoteReply<Answer>,
    },
    Statement(RemoteReply<Statement>),
}

/// An account's state: what its checkpoints hold.
#[derive(Serialize, Deserialize, Default, Debug)]
struct Ledger {
    open: bool,
    balance: u64,
    /// The answers to the last `RECENT_OPS` operations, oldest first.
    recent: VecDeque<(String, Outcome)>,
}

impl Ledger {
    /// The recorded answer to operation `id`, if it was applied.
    fn recorded(&self, id: &str) -> Option<&Outcome> {
        self.recent.iter().find(|(i, _)| i == id).map(|(_, o)| o)
    }

    /// The bank's rules: applies `op` and says what it did.
    fn apply(&mut self, op: Op) -> Outcome {
        let declined = |d| Outcome::Declined(d);
        match op {
            Op::Open if self.open => return declined(Declined::AlreadyOpen),
            Op::Open => self.open = true,
            _ if !self.open => return declined(Declined::NoSuchAccount),
            Op::Deposit(0) | Op::Withdraw(0) => return declined(Declined::ZeroAmount),
            Op::Deposit(n) => match self.balance.checked_add(n) {
                Some(b) => self.balance = b,
                None => return declined(Declined::Overflow),
            },
            Op::Withdraw(n) => match self.balance.checked_sub(n) {
                Some(b) => self.balance = b,
                None => {
                    return declined(Declined::InsufficientFunds {
                        balance: self.balance,
                    })
                }
            },
        }
        Outcome::Done {
            balance: self.balance,
        }
    }

    /// Remembers the answer to `id`, forgetting the oldest past the limit.
    fn record(&mut self, id: String, outcome: Outcome) {
        self.recent.push_back((id, outcome));
        while self.recent.len() > RECENT_OPS {
            self.recent.pop_front();
        }
    }
}

/// The account actor; the node hosting the key builds one per start.
struct AccountActor {
    name: String,
    node: String,
    out: Out,
}

impl Actor for AccountActor {
    type Msg = Account;
    type State = Ledger;
    type Arguments = ();

    /// Only for an account never saved: a saved one starts from its
    /// latest checkpoint instead.
    async fn pre_start(&self, _: ActorRef<Account>, _: ()) -> Result<Ledger, ActorProcessingErr> {
        Ok(Ledger::default())
    }

    async fn post_start(
        &self,
        _: ActorRef<Account>,
        ledger: &mut Ledger,
    ) -> Result<(), ActorProcessingErr> {
        // Open means it came from a checkpoint: it ran elsewhere before.
        if ledger.open {
            self.out.say(format_args!(
                "account {} runs here now, from its checkpoint: balance {}",
                self.name, ledger.balance
            ));
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Account>,
        msg: Account,
        ledger: &mut Ledger,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Account::Apply { id, op, reply } => {
                let (outcome, replayed) = match ledger.recorded(&id) {
                    Some(outcome) => (outcome.clone(), true),
                    None => {
                        let outcome = ledger.apply(op);
                        ledger.record(id, outcome.clone());
                        // Saved (and replicated) before the answer leaves.
                        checkpoint::request();
                        if op == Op::Open && matches!(outcome, Outcome::Done { .. }) {
                            self.out
                                .say(format_args!("account {} opened here", self.name));
                        }
                        (outcome, false)
                    }
                };
                reply.send(Answer {
                    outcome,
                    node: self.node.clone(),
                    replayed,
                });
            }
            Account::Statement(reply) => {
                reply.send(Statement {
                    open: ledger.open,
                    balance: ledger.balance,
                    node: self.node.clone(),
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The auditor singleton

/// The messages of the auditor.
#[derive(Serialize, Deserialize, RemoteMessage)]
enum Auditor {
    /// Adds an account to the audit; answers with how many there are.
    Enrol(String, RemoteReply<usize>),
    Audit(RemoteReply<Audit>),
}

/// Every enrolled account's balance, as the auditor read it.
#[derive(Serialize, Deserialize)]
struct Audit {
    /// The node the auditor runs on.
    node: String,
    /// Each account's balance, or why it could not be read.
    balances: Vec<(String, Result<u64, String>)>,
}

impl Audit {
    /// The total, if every balance was read.
    fn total(&self) -> Option<u64> {
        self.balances.iter().map(|(_, b)| b.as_ref().ok()).sum()
    }
}

/// The auditor: its state is the set of enrolled accounts.
struct AuditorActor {
    teller: Teller,
    out: Out,
}

impl Actor for AuditorActor {
    type Msg = Auditor;
    type State = BTreeSet<String>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<Auditor>,
        _: (),
    ) -> Result<BTreeSet<String>, ActorProcessingErr> {
        Ok(BTreeSet::new())
    }

    async fn post_start(
        &self,
        _: ActorRef<Auditor>,
        accounts: &mut BTreeSet<String>,
    ) -> Result<(), ActorProcessingErr> {
        self.out.say(format_args!(
            "the auditor runs here now ({} accounts enrolled)",
            accounts.len()
        ));
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Auditor>,
        msg: Auditor,
        accounts: &mut BTreeSet<String>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Auditor::Enrol(name, reply) => {
                if accounts.insert(name) {
                    checkpoint::request();
                }
                reply.send(accounts.len());
            }
            Auditor::Audit(reply) => {
                let reads = accounts.iter().map(|name| async move {
                    let read = self.teller.statement(name).await.map(|s| s.balance);
                    (name.clone(), read)
                });
                let balances = futures::future::join_all(reads).await;
                reply.send(Audit {
                    node: self.teller.node.name().to_string(),
                    balances,
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The teller: a client of the accounts, on any member

/// How a transfer ended.
#[derive(Debug, PartialEq, Eq)]
enum Transfer {
    /// The money moved: the payer's balance after the debit, the payee's
    /// after the credit.
    Done { from: u64, to: u64 },
    /// The payer declined the debit: nothing moved.
    Declined(Declined),
    /// The payee declined the credit: the payer got the money back.
    Reversed(Declined),
}

/// Runs operations on accounts from one node, retrying each with its id.
#[derive(Clone)]
struct Teller {
    node: Node,
    /// Operation ids made here: `NODE-STARTMS-N`, unique across the
    /// cluster and across restarts of this node.
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
    /// Calls sent again after a failure (for the demo's narration).
    retries: Arc<AtomicU64>,
    /// Operations answered from an account's record (sent before).
    replays: Arc<AtomicU64>,
}

impl Teller {
    fn new(node: &Node) -> Teller {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Teller {
            node: node.clone(),
            prefix: format!("{}-{started}", node.name()).into(),
            next: Arc::new(AtomicU64::new(1)),
            retries: Arc::new(AtomicU64::new(0)),
            replays: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A fresh operation or transfer id.
    fn new_id(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn account(&self, name: &str) -> EntityRef<Account> {
        self.node.entity::<Account>(ACCOUNTS, name)
    }

    /// Calls `target` with the message `build` makes, and again after a
    /// failure (the owner died, is moving, the answer was lost), for up to
    /// `RETRY_FOR`. Only for messages that are safe to repeat.
    async fn call<M: RemoteMessage, T>(
        &self,
        target: &EntityRef<M>,
        timeout: Duration,
        build: impl Fn(RemoteReply<T>) -> M,
    ) -> Result<T, String>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        let deadline = Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(25);
        loop {
            match target.call(&build, timeout).await {
                Ok(answer) => return Ok(answer),
                Err(e) if Instant::now() + pause >= deadline => {
                    return Err(format!("{} gave no answer: {e}", target.key()))
                }
                Err(_) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(400));
                }
            }
        }
    }

    /// Applies `op` to the account `name` under the operation id `id`.
    async fn apply(&self, name: &str, id: impl Into<String>, op: Op) -> Result<Answer, String> {
        let id = id.into();
        let answer = self
            .call(&self.account(name), CALL_TIMEOUT, |reply| Account::Apply {
                id: id.clone(),
                op,
                reply,
            })
            .await?;
        if answer.replayed {
            self.replays.fetch_add(1, Ordering::Relaxed);
        }
        Ok(answer)
    }

    async fn statement(&self, name: &str) -> Result<Statement, String> {
        self.call(&self.account(name), CALL_TIMEOUT, Account::Statement)
            .await
    }

    /// Opens `name` (operation `ID/open`), enrols it with the auditor, and
    /// deposits `amount` (`ID/deposit`) if it is more than 0.
    async fn open(&self, name: &str, amount: u64) -> Result<Answer, String> {
        let id = self.new_id();
        let opened = self.apply(name, format!("{id}/open"), Op::Open).await?;
        if matches!(opened.outcome, Outcome::Declined(_)) {
            return Ok(opened);
        }
        let auditor = self.node.singleton_ref::<Auditor>(AUDITOR);
        self.call(&auditor, CALL_TIMEOUT, |r| {
            Auditor::Enrol(name.to_string(), r)
        })
        .await?;
        if amount == 0 {
            return Ok(opened);
        }
        self.apply(name, format!("{id}/deposit"), Op::Deposit(amount))
            .await
    }

    /// Moves `amount` from `from` to `to` as the transfer `id`: debit,
    /// credit, and a refund if the credit is declined; each step is
    /// retried with its own id, so running the same transfer again
    /// finishes it without repeating a step.
    async fn transfer(
        &self,
        id: &str,
        from: &str,
        to: &str,
        amount: u64,
    ) -> Result<Transfer, String> {
        if from == to {
            return Err(format!("{from} cannot pay itself"));
        }
        let debit = self.apply(from, format!("{id}/debit"), Op::Withdraw(amount));
        let from_balance = match debit.await?.outcome {
            Outcome::Done { balance } => balance,
            Outcome::Declined(d) => return Ok(Transfer::Declined(d)),
        };
        let unfinished = |step: &str, e: String| {
            format!(
                "transfer {id}: {amount} was taken from {from}, but the {step} did not finish \
                 ({e}); run `transfer {from} {to} {amount} {id}` to finish it"
            )
        };
        let credit = self.apply(to, format!("{id}/credit"), Op::Deposit(amount));
        let declined = match credit.await.map_err(|e| unfinished("credit", e))?.outcome {
            Outcome::Done { balance } => {
                return Ok(Transfer::Done {
                    from: from_balance,
                    to: balance,
                })
            }
            Outcome::Declined(d) => d,
        };
        let refund = self.apply(from, format!("{id}/refund"), Op::Deposit(amount));
        match refund.await.map_err(|e| unfinished("refund", e))?.outcome {
            Outcome::Done { .. } => Ok(Transfer::Reversed(declined)),
            Outcome::Declined(d) => Err(format!(
                "transfer {id}: {to} declined ({declined}) and the refund to {from} too ({d})"
            )),
        }
    }

    async fn audit(&self) -> Result<Audit, String> {
        let auditor = self.node.singleton_ref::<Auditor>(AUDITOR);
        self.call(&auditor, AUDIT_TIMEOUT, Auditor::Audit).await
    }
}

// ---------------------------------------------------------------------------
// A bank node

/// Where a node prints: a line prefix, and the prompt to show again after
/// a line printed while the console waits (at a terminal only).
#[derive(Clone)]
struct Out {
    prefix: String,
    prompt: Option<String>,
}

impl Out {
    fn say(&self, line: fmt::Arguments<'_>) {
        match &self.prompt {
            Some(prompt) => {
                print!("\r\x1b[K{line}\n{prompt}");
                let _ = std::io::stdout().flush();
            }
            None => println!("{}{line}", self.prefix),
        }
    }
}

/// Starts a node that hosts accounts and the auditor.
async fn start_bank_node(
    name: &str,
    listen: SocketAddr,
    seeds: &[SocketAddr],
    cookie: &str,
    out: &Out,
) -> Result<Node, Box<dyn Error>> {
    // Redial seeds and members that went down within a second.
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let config = NodeConfig::new(name)
        .listen(listen)
        .cookie(cookie)
        .seeds(seeds.iter().copied())
        .reconnect(backoff);
    let node = Node::start(config).await?;
    let (here, o) = (name.to_string(), out.clone());
    node.register_kind(ACCOUNT_KIND, move |key: &str| AccountActor {
        name: key.to_string(),
        node: here.clone(),
        out: o.clone(),
    })?;
    let (teller, o) = (Teller::new(&node), out.clone());
    node.register_kind(AUDITOR_KIND, move |_: &str| AuditorActor {
        teller: teller.clone(),
        out: o.clone(),
    })?;
    // A checkpoint when a handler asks (every change), replicated to one
    // other host before the answer is sent.
    let accounts = EntitySpec::new(ACCOUNTS, ACCOUNT_KIND)
        .checkpoint(CheckpointPolicy::OnRequest)
        .replicas(1);
    node.entities(accounts).await?;
    let auditor =
        SingletonSpec::new(AUDITOR, AUDITOR_KIND, &())?.checkpoint(CheckpointPolicy::OnRequest);
    node.singleton(auditor).await?;
    out.say(format_args!(
        "node {name} listening on {} (pid {})",
        node.local_addr(),
        std::process::id()
    ));
    narrate_events(&node, out);
    Ok(node)
}

/// Prints the membership and session events of `node`.
fn narrate_events(node: &Node, out: &Out) {
    let (mut events, out) = (node.subscribe(), out.clone());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NodeEvent::MemberJoined { member } => {
                    out.say(format_args!("{member} joined the cluster"))
                }
                NodeEvent::MemberLeft { member } => {
                    out.say(format_args!("{member} left the cluster"))
                }
                // A member that leaves is reported by `MemberLeft`.
                NodeEvent::Down { peer, reason }
                    if !matches!(reason, DownReason::LocalShutdown | DownReason::PeerLeft) =>
                {
                    out.say(format_args!("Down {peer} ({reason})"))
                }
                NodeEvent::Rejected { addr, reason, .. } => {
                    out.say(format_args!("refused a connection with {addr}: {reason}"))
                }
                _ => {}
            }
        }
    });
}

/// An operation's answer as a line.
fn show(what: &str, name: &str, answer: &Answer) -> String {
    let again = if answer.replayed {
        " (applied before: the recorded answer, nothing applied now)"
    } else {
        ""
    };
    match &answer.outcome {
        Outcome::Done { balance } => format!(
            "{what} {name}: balance {balance}, on {}{again}",
            answer.node
        ),
        Outcome::Declined(d) => format!("{what} {name}: declined, {d}{again}"),
    }
}

/// A transfer's result as a line.
fn show_transfer(from: &str, to: &str, amount: u64, t: &Transfer) -> String {
    let head = format!("transfer {amount} from {from} to {to}");
    match t {
        Transfer::Done { from: f, to: t } => format!("{head}: done; {from} {f}, {to} {t}"),
        Transfer::Declined(d) => format!("{head}: declined by {from}, {d}; nothing moved"),
        Transfer::Reversed(d) => {
            format!("{head}: declined by {to}, {d}; {from} got the money back")
        }
    }
}

const COMMANDS: &str = "commands:
  open NAME [AMOUNT]          open an account, with a first deposit
  deposit NAME AMOUNT         add money
  withdraw NAME AMOUNT        take money out (never below 0)
  balance NAME                the balance, and the node the account runs on
  transfer FROM TO AMOUNT [ID]
                              move money; with the ID of an unfinished
                              transfer, finish it (no step runs twice)
  audit                       every account and the total, from the auditor
  members                     the other members and their status
  help                        this list
  quit                        leave the cluster (its accounts move on)";

/// Runs one console line; `false` on `quit`.
async fn command(teller: &Teller, line: &str) -> bool {
    let amount = |s: &str| s.parse::<u64>().map_err(|e| format!("amount {s}: {e}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let said = match words.as_slice() {
        ["open", name, rest @ ..] if rest.len() <= 1 => {
            match rest.first().map_or(Ok(0), |a| amount(a)) {
                Ok(n) => teller.open(name, n).await.map(|a| show("open", name, &a)),
                Err(e) => Err(e),
            }
        }
        [op @ ("deposit" | "withdraw"), name, n] => match amount(n) {
            Ok(n) => {
                let op = if *op == "deposit" {
                    Op::Deposit(n)
                } else {
                    Op::Withdraw(n)
                };
                let id = teller.new_id();
                let what = words[0];
                teller
                    .apply(name, &id, op)
                    .await
                    .map(|a| show(what, name, &a))
            }
            Err(e) => Err(e),
        },
        ["balance", name] => teller.statement(name).await.map(|s| {
            if s.open {
                format!("{name}: balance {}, on {}", s.balance, s.node)
            } else {
                format!("{name}: no such account")
            }
        }),
        ["transfer", from, to, n, id @ ..] if id.len() <= 1 => match amount(n) {
            Ok(n) => {
                let id = id
                    .first()
                    .map_or_else(|| teller.new_id(), |i| i.to_string());
                let replays = teller.replays.load(Ordering::Relaxed);
                teller.transfer(&id, from, to, n).await.map(|t| {
                    let again = teller.replays.load(Ordering::Relaxed) - replays;
                    let again = match again {
                        0 => String::new(),
                        n => format!("; {n} of its steps ran before: their recorded answers, nothing applied again"),
                    };
                    format!("{} (transfer {id}{again})", show_transfer(from, to, n, &t))
                })
            }
            Err(e) => Err(e),
        },
        ["audit"] => teller.audit().await.map(|audit| {
            let mut lines: Vec<String> = audit
                .balances
                .iter()
                .map(|(name, b)| match b {
                    Ok(b) => format!("  {name}: {b}"),
                    Err(e) => format!("  {name}: not read ({e})"),
                })
                .collect();
            lines.push(match audit.total() {
                Some(t) => format!("total {t} (audited on {})", audit.node),
                None => format!(
                    "total unknown: some accounts were not read (audited on {})",
                    audit.node
                ),
            });
            lines.join("\n")
        }),
        ["members"] => {
            let members = teller.node.members();
            let lines: Vec<String> = members
                .iter()
                .map(|m| {
                    let status = match m.status {
                        MemberStatus::Joining => "joining (being dialed)",
                        MemberStatus::Up => "up",
                        MemberStatus::Suspect => "suspect (heartbeats late)",
                        MemberStatus::Down => "down (redialed)",
                        MemberStatus::Leaving => "leaving",
                        MemberStatus::Left => "left",
                    };
                    format!("{} at {}: {status}", m.name, m.addr)
                })
                .collect();
            Ok(if lines.is_empty() {
                "no other members yet".to_string()
            } else {
                lines.join("\n")
            })
        }
        ["help"] => Ok(COMMANDS.to_string()),
        ["quit"] => return false,
        [] => return true,
        _ => Err(format!("unknown command {:?}\n{COMMANDS}", line.trim())),
    };
    match said {
        Ok(line) => println!("{line}"),
        Err(e) => println!("error: {e}"),
    }
    true
}

/// A node from the command line: a console on stdin until `quit`, the end
/// of input or Ctrl-C, then a planned leave (its accounts move on).
async fn node_main(
    name: &str,
    listen: SocketAddr,
    seeds: &[SocketAddr],
    cookie: &str,
) -> Result<(), Box<dyn Error>> {
    // The prompt only for a person at a terminal (not when driven by the
    // demo through a pipe).
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let prompt = format!("bank {name}> ");
    let out = Out {
        prefix: String::new(),
        prompt: interactive.then(|| prompt.clone()),
    };
    let node = start_bank_node(name, listen, seeds, cookie, &out).await?;
    let teller = Teller::new(&node);
    if interactive {
        println!("{COMMANDS}");
    }
    let console = async {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        loop {
            if interactive {
                print!("{prompt}");
                let _ = std::io::stdout().flush();
            }
            match lines.next_line().await {
                Ok(Some(line)) if command(&teller, &line).await => {}
                _ => return,
            }
        }
    };
    tokio::select! {
        () = console => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    out.say(format_args!("leaving the cluster"));
    node.leave().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// The demo: three node processes and a teller

/// A node process of the demo: this program, run with `--name`. Dropped,
/// it is killed (`kill_on_drop`), so no path leaves one behind; its stdin
/// is a pipe from us, so it also leaves when this process dies.
struct NodeProcess {
    name: String,
    child: tokio::process::Child,
    addr: SocketAddr,
    pid: u32,
}

impl NodeProcess {
    /// Starts node `name` on `listen` (joining through `seed`) and waits for the
    /// address it listens on. Its output is printed as `  [name] ...`.
    async fn spawn(
        name: &str,
        listen: SocketAddr,
        seed: Option<SocketAddr>,
        cookie: &str,
    ) -> Result<NodeProcess, Box<dyn Error>> {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        let listen = listen.to_string();
        cmd.args(["--name", name, "--listen", &listen, "--cookie", cookie]);
        if let Some(seed) = seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().ok_or("the node process ended at once")?;
        let stdout = child.stdout.take().ok_or("no stdout from the node")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(relay(stdout, format!("  [{name}] "), tx));
        let addr = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| format!("node {name} did not start within 10 s"))?
            .map_err(|_| format!("node {name} ended before it listened"))?;
        Ok(NodeProcess {
            name: name.to_string(),
            child,
            addr,
            pid,
        })
    }

    /// `kill -9`: the process ends at once, without leaving the cluster.
    async fn kill(&mut self) -> Result<(), Box<dyn Error>> {
        self.child.start_kill()?;
        tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .map_err(|_| format!("node {} did not die within 5 s", self.name))??;
        Ok(())
    }

    /// A planned stop: closes its stdin (the end of its console), so it
    /// leaves the cluster; killed if it takes over 5 s.
    async fn quit(mut self) {
        drop(self.child.stdin.take());
        let waited = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        if !matches!(waited, Ok(Ok(status)) if status.success()) {
            println!("  node {} did not leave cleanly; killed", self.name);
            let _ = self.child.kill().await;
        }
    }
}

/// Prints a node process's lines with its prefix, and sends the address
/// from its `listening on ADDR` line.
async fn relay(
    stdout: impl AsyncRead + Unpin,
    prefix: String,
    tx: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    let mut tx = Some(tx);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        if let Some(addr) = addr {
            if let Some(tx) = tx.take() {
                let _ = tx.send(addr);
            }
        }
        println!("{prefix}{line}");
    }
}

/// Polls `check` every 10 ms for up to 10 s.
async fn eventually(what: &str, check: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting until {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// What the demo expects of the bank: each account's balance, booked
/// from the answers the teller got.
struct Books {
    teller: Teller,
    balances: BTreeMap<String, u64>,
}

impl Books {
    /// Opens `name` with `amount`; returns the node it runs on.
    async fn open(&mut self, name: &str, amount: u64) -> Result<String, Box<dyn Error>> {
        let answer = self.teller.open(name, amount).await?;
        match answer.outcome {
            Outcome::Done { balance } if balance == amount => {
                self.balances.insert(name.to_string(), amount);
                Ok(answer.node)
            }
            Outcome::Done { balance } => {
                Err(format!("{name} opened with {amount} shows {balance}").into())
            }
            Outcome::Declined(d) => Err(format!("opening {name}: {d}").into()),
        }
    }

    fn total(&self) -> u64 {
        self.balances.values().sum()
    }

    /// Books the effect of a transfer.
    fn book(&mut self, from: &str, to: &str, amount: u64, t: &Transfer) -> Result<(), String> {
        if let Transfer::Done { .. } = t {
            let payer = self.balances.entry(from.to_string()).or_default();
            *payer = payer
                .checked_sub(amount)
                .ok_or(format!("{from} was overdrawn"))?;
            *self.balances.entry(to.to_string()).or_default() += amount;
        }
        Ok(())
    }

    /// Runs a transfer alone, prints it, books it, and checks the balances
    /// it reports.
    async fn transfer(
        &mut self,
        from: &str,
        to: &str,
        amount: u64,
    ) -> Result<Transfer, Box<dyn Error>> {
        let id = self.teller.new_id();
        let t = self.teller.transfer(&id, from, to, amount).await?;
        println!("  {}", show_transfer(from, to, amount, &t));
        self.book(from, to, amount, &t)?;
        if let Transfer::Done { from: f, to: t } = t {
            let booked = (self.balances[from], self.balances[to]);
            if booked != (f, t) {
                return Err(format!(
                    "after a transfer {from} has {f} and {to} {t}; booked {booked:?}"
                )
                .into());
            }
        }
        Ok(t)
    }

    /// Each account's balance as its owner reads it, checked against the
    /// books; prints the accounts in `names` with the node that answered.
    async fn check(&self, names: &[String], not_on: &str) -> Result<(), Box<dyn Error>> {
        for name in names {
            let s = self.teller.statement(name).await?;
            println!("  {name}: balance {}, answered by {}", s.balance, s.node);
            if s.node == not_on || s.balance != self.balances[name] {
                return Err(format!(
                    "{name} should hold {} and not run on {not_on}",
                    self.balances[name]
                )
                .into());
            }
        }
        Ok(())
    }

    /// Audits the bank: every account as booked, the total as expected;
    /// returns the node the auditor ran on.
    async fn audit(&self, total: u64) -> Result<String, Box<dyn Error>> {
        let audit = self.teller.audit().await?;
        let read: BTreeMap<String, u64> = audit
            .balances
            .iter()
            .map(|(n, b)| b.clone().map(|b| (n.clone(), b)))
            .collect::<Result<_, _>>()?;
        if read != self.balances || audit.total() != Some(total) {
            return Err(format!(
                "the audit on {} read {read:?}; the books say {:?} (total {total})",
                audit.node, self.balances
            )
            .into());
        }
        println!(
            "  audit by the auditor on {}: {} accounts, total {total}, every balance as booked",
            audit.node,
            read.len()
        );
        Ok(audit.node)
    }

    /// The accounts `node` owns in the teller's view.
    fn held_by(&self, node: &str) -> Vec<String> {
        self.balances
            .keys()
            .filter(|name| self.teller.account(name).owner().as_deref() == Some(node))
            .cloned()
            .collect()
    }
}

/// The accounts the demo opens, with their first deposits.
const OPENING: [(&str, u64); 7] = [
    ("alice", 100),
    ("bob", 50),
    ("carol", 75),
    ("dave", 20),
    ("erin", 60),
    ("olivia", 40),
    ("rupert", 30),
];

/// The scripted demo (see the module docs). The node processes are
/// dropped, so killed, on every path out of here.
async fn demo(cookie: &str) -> Result<(), Box<dyn Error>> {
    println!("== three node processes, a, b and c, host the accounts and the auditor");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let a = NodeProcess::spawn("a", any, None, cookie).await?;
    let b = NodeProcess::spawn("b", any, Some(a.addr), cookie).await?;
    let c = NodeProcess::spawn("c", any, Some(a.addr), cookie).await?;
    let mut nodes = vec![a, b, c];
    let config = NodeConfig::new("teller")
        .cookie(cookie)
        .seeds([nodes[0].addr])
        .reconnect(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ));
    let node = Node::start(config).await?;
    let teller = Teller::new(&node);
    let result = script(&teller, &mut nodes, cookie).await;
    if result.is_ok() {
        println!("\n== the nodes leave");
        for n in nodes {
            n.quit().await;
        }
    } else {
        println!("\n== a check failed: the nodes are killed");
        for mut n in nodes {
            let _ = n.kill().await;
        }
    }
    node.shutdown().await;
    if result.is_ok() {
        println!("\nThe demo is over: every check passed.");
    }
    result
}

/// Waits until the teller sees `n` members up, each hosting accounts.
async fn settled(teller: &Teller, n: usize) -> Result<(), String> {
    eventually("the teller sees every node host accounts", || {
        let members = teller.node.members();
        let up = members.iter().filter(|m| m.status == MemberStatus::Up);
        let hosts: BTreeSet<String> = (0..100)
            .filter_map(|k| teller.account(&format!("k{k}")).owner())
            .collect();
        up.count() == n && hosts.len() == n
    })
    .await
}

async fn script(
    teller: &Teller,
    nodes: &mut Vec<NodeProcess>,
    cookie: &str,
) -> Result<(), Box<dyn Error>> {
    settled(teller, 3).await?;
    let auditor = teller.node.singleton_ref::<Auditor>(AUDITOR);
    eventually("the teller places the auditor on a, the oldest", || {
        auditor.owner().as_deref() == Some("a")
    })
    .await?;
    println!("  this process joined as `teller`, a member that hosts nothing");

    println!("\n== open {} accounts", OPENING.len());
    let mut books = Books {
        teller: teller.clone(),
        balances: BTreeMap::new(),
    };
    for (name, amount) in OPENING {
        let on = books.open(name, amount).await?;
        println!("  {name} opened with {amount}, runs on {on}");
    }
    let mut total = books.total();
    println!("  money in the bank: {total}");

    println!("\n== move money");
    books.transfer("alice", "olivia", 30).await?;
    let overdraft = teller
        .apply("dave", teller.new_id(), Op::Withdraw(50))
        .await?;
    println!("  {}", show("withdraw 50 from", "dave", &overdraft));
    let short = Declined::InsufficientFunds { balance: 20 };
    if overdraft.outcome != Outcome::Declined(short.clone()) {
        return Err("dave's overdraft was not declined".into());
    }
    if books.transfer("dave", "carol", 25).await? != Transfer::Declined(short) {
        return Err("dave's transfer was not declined".into());
    }
    if books.transfer("carol", "zed", 10).await? != Transfer::Reversed(Declined::NoSuchAccount) {
        return Err("the transfer to zed was not reversed".into());
    }
    // A retry after a lost answer: the same operation id twice.
    let id = teller.new_id();
    let first = teller.apply("erin", &*id, Op::Withdraw(15)).await?;
    let again = teller.apply("erin", &*id, Op::Withdraw(15)).await?;
    println!(
        "  {} (operation {id})",
        show("withdraw 15 from", "erin", &first)
    );
    println!(
        "  {}",
        show(
            "the same operation again, as after a lost answer:",
            "erin",
            &again
        )
    );
    if first.outcome != (Outcome::Done { balance: 45 })
        || again.outcome != first.outcome
        || !again.replayed
    {
        return Err("a repeated withdrawal was applied twice".into());
    }
    books.balances.insert("erin".into(), 45);
    total -= 15;
    println!("  money in the bank, less erin's 15 in cash: {total}");
    let audited_on = books.audit(total).await?;

    // The node running the auditor dies with the accounts it holds.
    settled(teller, 3).await?;
    let victim = nodes
        .iter()
        .position(|n| n.name == audited_on)
        .ok_or("the auditor runs on no node of ours")?;
    let held = books.held_by(&audited_on);
    if held.is_empty() {
        return Err(format!("{audited_on} holds no account; open others").into());
    }
    let listed: Vec<String> = held
        .iter()
        .map(|n| format!("{n} {}", books.balances[n]))
        .collect();
    let mut dead = nodes.remove(victim);
    println!(
        "\n== kill -9 node {} (pid {}): it runs the auditor and holds {}",
        dead.name,
        dead.pid,
        listed.join(", ")
    );
    dead.kill().await?;
    books.check(&held, &dead.name).await?;
    books.audit(total).await?;

    println!(
        "\n== {} starts again at its address and takes its accounts back",
        dead.name
    );
    let back = NodeProcess::spawn(&dead.name, dead.addr, Some(nodes[0].addr), cookie).await?;
    nodes.push(back);
    settled(teller, 3).await?;
    let held = books.held_by(&dead.name);
    for name in &held {
        let s = teller.statement(name).await?;
        println!("  {name}: balance {}, answered by {}", s.balance, s.node);
        if s.node != dead.name || s.balance != books.balances[name] {
            return Err(
                format!("{name} did not move back to {} with its balance", dead.name).into(),
            );
        }
    }

    // Four tellers' worth of transfers flow while another node is killed.
    let auditor_on = auditor.owner().unwrap_or_default();
    let victim = nodes
        .iter()
        .position(|n| n.name != auditor_on && n.name != dead.name)
        .ok_or("no node left to kill")?;
    let mut dead = nodes.remove(victim);
    println!(
        "\n== 40 transfers in four streams; node {} (pid {}) is killed after the 8th",
        dead.name, dead.pid
    );
    let (retried, replayed) = (
        teller.retries.load(Ordering::Relaxed),
        teller.replays.load(Ordering::Relaxed),
    );
    let names: Vec<String> = books.balances.keys().cloned().collect();
    let finished = Arc::new(AtomicU64::new(0));
    let streams: Vec<_> = (0..4)
        .map(|stream| {
            let (teller, names, finished) = (teller.clone(), names.clone(), finished.clone());
            tokio::spawn(async move {
                let n = names.len();
                let mut done = Vec::new();
                for i in 0..10 {
                    let k = stream * 10 + i;
                    let from = names[k % n].clone();
                    let to = names[(k + 1 + stream) % n].clone();
                    let amount = 1 + (k % 7) as u64;
                    let t = teller
                        .transfer(&teller.new_id(), &from, &to, amount)
                        .await?;
                    finished.fetch_add(1, Ordering::Relaxed);
                    done.push((from, to, amount, t));
                }
                Ok::<_, String>(done)
            })
        })
        .collect();
    eventually("8 transfers are done", || {
        finished.load(Ordering::Relaxed) >= 8
    })
    .await?;
    dead.kill().await?;
    let (mut moved, mut declined) = (0, 0);
    for stream in streams {
        for (from, to, amount, t) in stream.await?? {
            books.book(&from, &to, amount, &t)?;
            match t {
                Transfer::Done { .. } => moved += 1,
                _ => declined += 1,
            }
        }
    }
    println!("  {moved} transfers done, {declined} declined");
    println!(
        "  calls sent again after a failure: {}; of those, already applied and answered \
         from the record: {}",
        teller.retries.load(Ordering::Relaxed) - retried,
        teller.replays.load(Ordering::Relaxed) - replayed,
    );
    books.check(&names, &dead.name).await?;
    books.audit(total).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The command line

const USAGE: &str = "usage: bank --name NAME [--listen ADDR] [--seed ADDR]... [--cookie SECRET]
       bank --demo
A bank over a cluster: accounts are sharded actors checkpointed to a second
node, so they keep their balances when the node running them dies.
  --name NAME      this node's name, unique in the cluster (required)
  --listen ADDR    listen for peers on ADDR (default 127.0.0.1:0, any free port)
  --seed ADDR      join the cluster through the member listening on ADDR;
                   repeat for several seeds: any one live member is enough
  --cookie SECRET  the cluster's shared secret (default: a demo value)
  --demo           three node processes and a teller, scripted, one node
                   killed with SIGKILL; exits 0 if every check passed
  -h, --help       this text
Then type commands at the `bank NAME>` prompt (`help` lists them).";

/// Parses the command line by hand, then runs the demo or a node.
async fn run() -> Result<(), Box<dyn Error>> {
    let (mut demo_mode, mut name, mut seeds) = (false, None, Vec::new());
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut cookie = DEMO_COOKIE.to_string();
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
            "--name" | "--listen" | "--seed" | "--cookie" => {}
            _ => return Err(format!("unknown option {flag}\n{USAGE}").into()),
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
        let within = Duration::from_secs(45);
        return tokio::time::timeout(within, demo(&cookie))
            .await
            .map_err(|_| "the demo took over 45 s")?;
    }
    let name = name.ok_or(format!("--name is required\n{USAGE}"))?;
    node_main(&name, listen, &seeds, &cookie).await
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank: {e}");
            ExitCode::FAILURE
        }
    }
}
