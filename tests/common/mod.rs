//! Shared test support: a configurable probe actor and bounded waits.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::{ChildSpec, SupervisorRef};

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
        .unwrap_or_else(|| panic!("no child `{id}` handling Cmd"))
        .cast(cmd)
        .unwrap_or_else(|_| panic!("child `{id}` is not running"));
}
