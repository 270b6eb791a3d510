//! Shared test support: a configurable probe actor, spawning and stopping
//! supervisors (alone or linked under a recording parent), asking them
//! about their children, and bounded waits.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_otp::{
    ChildInfo, ChildSpec, ChildStatus, DynamicSpec, DynamicSupervisor, DynamicSupervisorRef,
    Strategy, Supervisor, SupervisorRef, SupervisorSpec,
};

/// What a probe is told to do.
pub enum Cmd {
    /// Return `Err` from `handle` (a failure).
    Fail,
    /// Panic in `handle` (a failure).
    Panic,
    /// `myself.stop(reason)`.
    Stop(Option<String>),
    /// Reply with the incarnation's id.
    Ping(RpcReplyPort<ActorId>),
    /// Count a message.
    Work,
    /// Sleep in the handler (to hold the mailbox).
    Sleep(Duration),
}

/// Shared, inspectable record of what probes did.
#[derive(Clone, Default)]
pub struct Log {
    events: Arc<Mutex<Vec<String>>>,
    /// Starts that should fail before starting normally again.
    fail_starts: Arc<AtomicUsize>,
    pub worked: Arc<AtomicUsize>,
}

impl Log {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&self, event: impl Into<String>) {
        self.events.lock().unwrap().push(event.into());
    }
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    /// Events that start with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.starts_with(prefix))
            .collect()
    }
    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }
    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
    /// Makes the next `n` starts of probes sharing this log fail.
    pub fn fail_next_starts(&self, n: usize) {
        self.fail_starts.store(n, Ordering::SeqCst);
    }
}

/// A probe actor: logs `start:<name>` and `stop:<name>`, obeys [`Cmd`].
#[derive(Clone)]
pub struct Probe {
    pub name: String,
    pub log: Log,
    /// How long `post_stop` takes (to test shutdown timeouts).
    pub stop_delay: Duration,
}

impl Probe {
    pub fn new(name: &str, log: &Log) -> Self {
        Self {
            name: name.to_string(),
            log: log.clone(),
            stop_delay: Duration::ZERO,
        }
    }
    pub fn slow_stop(mut self, delay: Duration) -> Self {
        self.stop_delay = delay;
        self
    }
}

impl Actor for Probe {
    type Msg = Cmd;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Cmd>, _: ()) -> Result<(), ActorProcessingErr> {
        let failing = self
            .log
            .fail_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            self.log.push(format!("start_failed:{}", self.name));
            return Err(format!("{} refused to start", self.name).into());
        }
        self.log.push(format!("start:{}", self.name));
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<Cmd>, _: &mut ()) -> Result<(), ActorProcessingErr> {
        if !self.stop_delay.is_zero() {
            tokio::time::sleep(self.stop_delay).await;
        }
        self.log.push(format!("stop:{}", self.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Cmd>,
        cmd: Cmd,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match cmd {
            Cmd::Fail => return Err(format!("{} failed on purpose", self.name).into()),
            Cmd::Panic => panic!("{} panicked on purpose", self.name),
            Cmd::Stop(reason) => myself.stop(reason),
            Cmd::Ping(port) => {
                let _ = port.send(myself.get_id());
            }
            Cmd::Work => {
                self.log.worked.fetch_add(1, Ordering::SeqCst);
            }
            Cmd::Sleep(d) => tokio::time::sleep(d).await,
        }
        Ok(())
    }
}

/// A worker child spec running a [`Probe`] named like its id.
pub fn probe(id: &str, log: &Log) -> ChildSpec {
    ChildSpec::new(id, Probe::new(id, log), || ())
}

/// A [`probe`] child whose `post_stop` takes `delay`.
pub fn slow(id: &str, log: &Log, delay: Duration) -> ChildSpec {
    ChildSpec::new(id, Probe::new(id, log).slow_stop(delay), || ())
}

/// `items` as owned strings, to compare with [`Log`] events and child ids.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Spawning and stopping supervisors

/// A one-for-one spec with the given children, in start order.
pub fn one_for_one(children: Vec<ChildSpec>) -> SupervisorSpec {
    children
        .into_iter()
        .fold(SupervisorSpec::new(Strategy::OneForOne), |spec, child| {
            spec.child(child)
        })
}

/// Spawns an unnamed supervisor that must start.
pub async fn spawn(spec: SupervisorSpec) -> SupervisorRef {
    Supervisor::spawn(None, spec)
        .await
        .expect("the supervisor starts")
        .0
}

/// How long [`stop`] waits for a supervisor to end: beyond the slowest
/// `Shutdown::Infinity` child of the tests; under a paused clock waiting
/// costs no real time.
pub const STOP_BOUND: Duration = Duration::from_secs(600);

/// Stops a supervisor (and so its children) and waits, within
/// [`STOP_BOUND`], until it has ended.
pub async fn stop(sup: &SupervisorRef) {
    tokio::time::timeout(STOP_BOUND, sup.cell().stop_and_wait(None, None))
        .await
        .expect("the supervisor stops in bounded time")
        .expect("the supervisor stops");
}

/// Spawns an unnamed dynamic supervisor that must start.
pub async fn spawn_dynamic(spec: DynamicSpec) -> DynamicSupervisorRef {
    DynamicSupervisor::spawn(None, spec)
        .await
        .expect("the dynamic supervisor starts")
        .0
}

/// Stops a dynamic supervisor (and so its children) and waits, within
/// [`STOP_BOUND`], until it has ended.
pub async fn stop_dynamic(sup: &DynamicSupervisorRef) {
    let cell = sup.cell().expect("the dynamic supervisor runs");
    tokio::time::timeout(STOP_BOUND, cell.stop_and_wait(None, None))
        .await
        .expect("the dynamic supervisor stops in bounded time")
        .expect("the dynamic supervisor stops");
}

// ---------------------------------------------------------------------------
// A parent that records how the supervisor under test ends

/// A parent for a supervisor under test: records, in its [`Log`], how what
/// it links ends: `exit:<reason>` (`exit:normal` without a reason) or
/// `failed:<error>`.
#[derive(Clone)]
pub struct Parent {
    exits: Log,
}

impl Parent {
    /// A parent that records into `exits`.
    pub fn new(exits: &Log) -> Self {
        Self {
            exits: exits.clone(),
        }
    }
}

impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(_, _, reason) => self
                .exits
                .push(format!("exit:{}", reason.as_deref().unwrap_or("normal"))),
            SupervisionEvent::ActorFailed(_, err) => self.exits.push(format!("failed:{err}")),
            _ => {}
        }
        Ok(())
    }
}

/// A supervisor spawned linked under a fresh recording [`Parent`].
pub struct Linked {
    pub sup: SupervisorRef,
    /// The supervisor actor's join handle.
    pub join: JoinHandle<()>,
    pub parent: ActorRef<()>,
    exits: Log,
}

impl Linked {
    pub async fn spawn(spec: SupervisorSpec) -> Self {
        let exits = Log::new();
        let (parent, _) = Actor::spawn(
            None,
            Parent {
                exits: exits.clone(),
            },
            (),
        )
        .await
        .expect("the recording parent starts");
        let (sup, join) = Supervisor::spawn_linked(None, spec, parent.get_cell())
            .await
            .expect("the supervisor starts");
        Self {
            sup,
            join,
            parent,
            exits,
        }
    }

    /// How the supervisor ended, as its parent saw it (empty while it runs).
    pub fn exits(&self) -> Vec<String> {
        self.exits.events()
    }

    /// Waits until the parent sees the supervisor end, checks that it ended
    /// exactly once, and returns how (see [`Parent`]).
    pub async fn wait_exit(&self) -> String {
        wait_until("the supervisor's parent sees it end", || async {
            !self.exits().is_empty()
        })
        .await;
        let exits = self.exits();
        assert_eq!(
            exits.len(),
            1,
            "the supervisor ends exactly once: {exits:?}"
        );
        exits[0].clone()
    }

    /// Checks that the supervisor has not ended, then stops it and its
    /// parent.
    pub async fn stop(self) {
        assert!(
            self.exits().is_empty(),
            "the supervisor must not have exited: {:?}",
            self.exits()
        );
        stop(&self.sup).await;
        self.parent.stop(None);
    }
}

// ---------------------------------------------------------------------------
// Asking a supervisor about its children

/// `which_children`, which must answer.
pub async fn children(sup: &SupervisorRef) -> Vec<ChildInfo> {
    sup.which_children()
        .await
        .expect("the supervisor answers which_children")
}

/// The children's ids, in start order.
pub async fn ids(sup: &SupervisorRef) -> Vec<String> {
    children(sup).await.into_iter().map(|c| c.id).collect()
}

/// The status of child `id`, or `None` if it is not listed.
pub async fn status(sup: &SupervisorRef, id: &str) -> Option<ChildStatus> {
    children(sup)
        .await
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.status)
}

/// The actor id of child `id`'s running incarnation, if any.
pub async fn current_id(sup: &SupervisorRef, id: &str) -> Option<ActorId> {
    sup.which_children()
        .await
        .ok()?
        .into_iter()
        .find(|c| c.id == id)?
        .actor
        .map(|a| a.get_id())
}

// ---------------------------------------------------------------------------
// Waiting and sending

/// Waits (bounded: 2,000 polls of 5 ms, under a paused clock this costs no
/// real time) until `cond` holds; panics with `what` if it never does.
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..2_000 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Sends `cmd` to child `id` through its `ChildRef`.
pub fn send(sup: &SupervisorRef, id: &str, cmd: Cmd) {
    sup.child::<Cmd>(id)
        .unwrap_or_else(|err| panic!("no child `{id}` handling Cmd: {err}"))
        .cast(cmd)
        .unwrap_or_else(|_| panic!("child `{id}` is not running"));
}
