//! Actors this node exports, by name.
//!
//! An export pairs a name with a local actor and its message type's tag.
//! Incoming messages are checked against the tag before anything of the
//! user's is decoded. The node watches every exported actor (ractor's
//! `monitors`): when one ends it is unexported and the peers monitoring it
//! are told why.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent,
};

use super::error::ClusterError;
use super::message::RemoteMessage;
use super::remote_ref::{decoding_from, drop_disarmed};
use super::session::Link;
use super::wire::{self, Frame, Refusal};
use crate::supervisor::{CastError, ChildRef};

type Deliver = Box<dyn Fn(&[u8], &Arc<Link>) -> Result<(), Refusal> + Send + Sync>;

/// Told the name of an export whose actor ended.
pub(crate) type EndedHook = Box<dyn Fn(&str) + Send + Sync>;

/// One exported actor.
pub(crate) struct Export {
    tag: &'static str,
    /// The actor, for an `ActorRef` export (watched, unexported when it
    /// ends); `None` for a supervised child, whose export follows restarts.
    cell: Option<ActorCell>,
    deliver: Deliver,
    /// Peers' monitors, until the export ends; then why it ended, so that
    /// a monitor that raced with the end is answered at once.
    watchers: Mutex<Watchers>,
}

/// The monitors of one export.
enum Watchers {
    /// The session to answer on and the monitor's id.
    Open(Vec<(Arc<Link>, u64)>),
    /// The export ended for this reason.
    Ended(Result<String, Refusal>),
}

impl Export {
    /// Decodes a message for this export and casts it to the actor.
    pub(crate) fn deliver(&self, payload: &[u8], link: &Arc<Link>) -> Result<(), Refusal> {
        (self.deliver)(payload, link)
    }

    /// Ends the export: every monitor, present or late, gets `reason`.
    fn notify(&self, reason: &Result<String, Refusal>) {
        let previous = std::mem::replace(
            &mut *lock!(self.watchers.lock()),
            Watchers::Ended(reason.clone()),
        );
        if let Watchers::Open(watchers) = previous {
            for (link, id) in watchers {
                link.send_plain(&Frame::ActorDown {
                    id,
                    reason: reason.clone(),
                });
            }
        }
    }

    /// Adds a monitor, or answers it at once if the export has ended.
    fn watch(&self, link: &Arc<Link>, id: u64) {
        let mut watchers = lock!(self.watchers.lock());
        match &mut *watchers {
            Watchers::Open(list) => list.push((link.clone(), id)),
            Watchers::Ended(reason) => {
                link.send_plain(&Frame::ActorDown {
                    id,
                    reason: reason.clone(),
                });
            }
        }
    }

    /// Removes the monitors `keep` rejects.
    fn retain(&self, keep: impl Fn(&(Arc<Link>, u64)) -> bool) {
        if let Watchers::Open(list) = &mut *lock!(self.watchers.lock()) {
            list.retain(keep);
        }
    }
}

/// How many ended exports the registry remembers, so that a monitor that
/// arrives just after its actor ended still learns the exit reason.
const REMEMBER_ENDED: usize = 256;

/// The exported actors of one node.
#[derive(Default)]
pub(crate) struct Registry {
    exports: RwLock<HashMap<String, Arc<Export>>>,
    /// Told the name of every export whose actor ended (the node releases
    /// the cluster-wide name or group membership behind it).
    ended_hook: Mutex<Option<EndedHook>>,
    /// Bumped under the write lock at every change of `exports`, so that a
    /// session may keep what it resolved for as long as this is unchanged.
    generation: AtomicU64,
    /// Recently ended exports: name and exit reason, oldest first.
    ended: Mutex<VecDeque<(String, String)>>,
    watcher: Mutex<Option<ActorCell>>,
}

impl Registry {
    /// Starts the actor that watches exported actors for this registry.
    pub(crate) async fn start_watcher(self: &Arc<Self>) -> Result<ActorCell, ClusterError> {
        let (watcher, _) = Actor::spawn(None, ExportWatcher, self.clone())
            .await
            .map_err(|e| {
                ClusterError::InvalidConfig(format!("could not start the export watcher: {e}"))
            })?;
        let cell = watcher.get_cell();
        *lock!(self.watcher.lock()) = Some(cell.clone());
        Ok(cell)
    }

    /// Exports `actor` as `name`. A name held by a stopped actor is reused.
    pub(crate) fn export<M: RemoteMessage>(
        &self,
        name: &str,
        actor: ActorRef<M>,
    ) -> Result<(), ClusterError> {
        let cell = actor.get_cell();
        self.insert::<M>(
            name,
            Some(cell.clone()),
            Box::new(move |bytes, link| {
                let msg = decode::<M>(bytes, link)?;
                actor.cast(msg).map_err(|e| {
                    drop_disarmed(e);
                    Refusal::ActorStopped
                })
            }),
        )?;
        if let Some(watcher) = lock!(self.watcher.lock()).as_ref() {
            watcher.monitor(cell.clone());
        }
        // It may have stopped before the monitor was in place.
        if matches!(
            cell.get_status(),
            ActorStatus::Stopped | ActorStatus::Stopping
        ) {
            self.actor_ended(cell.get_id(), "stopped before it was exported".into());
        }
        tracing::debug!(actor = name, tag = M::TAG, "exported");
        Ok(())
    }

    /// Exports a supervised child as `name`: messages reach whichever
    /// incarnation runs; while it restarts they are refused with
    /// [`Refusal::NotRunning`].
    pub(crate) fn export_child<M: RemoteMessage>(
        &self,
        name: &str,
        child: ChildRef<M>,
    ) -> Result<(), ClusterError> {
        self.insert::<M>(
            name,
            None,
            Box::new(move |bytes, link| {
                let msg = decode::<M>(bytes, link)?;
                child.cast(msg).map_err(|e| {
                    let refusal = match &e {
                        CastError::NotRunning(_) => Refusal::NotRunning,
                        CastError::Closed(_) | CastError::Lost => Refusal::ActorStopped,
                    };
                    drop_disarmed(e);
                    refusal
                })
            }),
        )?;
        tracing::debug!(actor = name, tag = M::TAG, "exported a supervised child");
        Ok(())
    }

    /// Exports a local pool as `name`: messages go through the pool's
    /// router; a stopped pool (or one with no worker left) refuses them
    /// with [`Refusal::NotRunning`].
    pub(crate) fn export_pool<M: RemoteMessage>(
        &self,
        name: &str,
        pool: crate::pool::PoolRef<M>,
    ) -> Result<(), ClusterError> {
        self.insert::<M>(
            name,
            None,
            Box::new(move |bytes, link| {
                let msg = decode::<M>(bytes, link)?;
                pool.cast(msg).map_err(|e| {
                    drop_disarmed(e.into_inner());
                    Refusal::NotRunning
                })
            }),
        )?;
        tracing::debug!(actor = name, tag = M::TAG, "exported a pool");
        Ok(())
    }

    /// Registers an export unless `name` is held by a live one.
    fn insert<M: RemoteMessage>(
        &self,
        name: &str,
        cell: Option<ActorCell>,
        deliver: Deliver,
    ) -> Result<(), ClusterError> {
        check_name(name)?;
        check_name(M::TAG)?;
        let replaced = {
            let mut exports = lock!(self.exports.write());
            if let Some(old) = exports.get(name) {
                let stopped = old
                    .cell
                    .as_ref()
                    .is_some_and(|c| c.get_status() == ActorStatus::Stopped);
                if !stopped {
                    return Err(ClusterError::AlreadyExported(name.to_string()));
                }
            }
            self.bump();
            exports.insert(
                name.to_string(),
                Arc::new(Export {
                    tag: M::TAG,
                    cell,
                    deliver,
                    watchers: Mutex::new(Watchers::Open(Vec::new())),
                }),
            )
        };
        // The stopped actor's exit may not have reached the watcher yet:
        // its monitors must not wait for an export that is gone.
        if let Some(old) = replaced {
            old.notify(&Ok("stopped".into()));
        }
        Ok(())
    }

    /// Unexports `name`; its remote monitors fire with "not exported".
    pub(crate) fn unexport(&self, name: &str) -> bool {
        let removed = {
            let mut exports = lock!(self.exports.write());
            self.bump();
            exports.remove(name)
        };
        match removed {
            Some(export) => {
                export.notify(&Err(Refusal::NotExported));
                true
            }
            None => false,
        }
    }

    /// Sets what to tell when an export's actor ends.
    pub(crate) fn on_ended(&self, hook: EndedHook) {
        *lock!(self.ended_hook.lock()) = Some(hook);
    }

    /// Marks a change of `exports` (called under its write lock).
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current generation: what was resolved at this generation is
    /// still what [`resolve`](Self::resolve) would answer.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The export for messages tagged `tag` to `name`, or why there is
    /// none, with the generation it holds for.
    pub(crate) fn resolve(&self, name: &str, tag: &str) -> (u64, Result<Arc<Export>, Refusal>) {
        let exports = lock!(self.exports.read());
        let generation = self.generation.load(Ordering::Acquire);
        let export = match exports.get(name) {
            None => Err(Refusal::NotExported),
            Some(e) if e.tag != tag => Err(Refusal::TagMismatch {
                expected: e.tag.to_string(),
                found: tag.to_string(),
            }),
            Some(e) => Ok(e.clone()),
        };
        (generation, export)
    }

    fn get(&self, name: &str) -> Result<Arc<Export>, Refusal> {
        lock!(self.exports.read())
            .get(name)
            .cloned()
            .ok_or(Refusal::NotExported)
    }

    fn get_typed(&self, name: &str, tag: &str) -> Result<Arc<Export>, Refusal> {
        self.resolve(name, tag).1
    }

    /// Whether `name` is exported for messages tagged `tag`.
    pub(crate) fn check(&self, name: &str, tag: &str) -> Result<(), Refusal> {
        self.get_typed(name, tag).map(|_| ())
    }

    /// Adds a peer's monitor on `name`; answers at once if it is not there
    /// (with the exit reason if it ended recently).
    pub(crate) fn watch(&self, name: &str, link: &Arc<Link>, id: u64) {
        match self.get(name) {
            Ok(export) => export.watch(link, id),
            Err(refusal) => {
                let ended = lock!(self.ended.lock())
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, reason)| reason.clone());
                link.send_plain(&Frame::ActorDown {
                    id,
                    reason: ended.ok_or(refusal),
                });
            }
        }
    }

    /// Removes a peer's monitor.
    pub(crate) fn unwatch(&self, session: u64, id: u64) {
        for export in lock!(self.exports.read()).values() {
            export.retain(|(l, i)| !(l.session == session && *i == id));
        }
    }

    /// Forgets the monitors of a session that ended.
    pub(crate) fn drop_session(&self, session: u64) {
        for export in lock!(self.exports.read()).values() {
            export.retain(|(l, _)| l.session != session);
        }
    }

    /// An exported actor ended: unexport it everywhere, tell its monitors.
    pub(crate) fn actor_ended(&self, id: ActorId, reason: String) {
        let reason = wire::short_reason(reason);
        let ended: Vec<(String, Arc<Export>)> = {
            let mut exports = lock!(self.exports.write());
            self.bump();
            let names: Vec<String> = exports
                .iter()
                .filter(|(_, e)| e.cell.as_ref().is_some_and(|c| c.get_id() == id))
                .map(|(n, _)| n.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|n| exports.remove(&n).map(|e| (n, e)))
                .collect()
        };
        for (name, export) in ended {
            tracing::debug!(actor = %name, %reason, "exported actor ended; unexported");
            export.notify(&Ok(reason.clone()));
            let mut remembered = lock!(self.ended.lock());
            if remembered.len() == REMEMBER_ENDED {
                remembered.pop_front();
            }
            remembered.push_back((name.clone(), reason.clone()));
            drop(remembered);
            if let Some(hook) = lock!(self.ended_hook.lock()).as_ref() {
                hook(&name);
            }
        }
    }

    /// Unexports everything (node shutdown).
    pub(crate) fn clear(&self) {
        let all: Vec<Arc<Export>> = {
            let mut exports = lock!(self.exports.write());
            self.bump();
            exports.drain().map(|(_, e)| e).collect()
        };
        if let Some(watcher) = lock!(self.watcher.lock()).as_ref() {
            for cell in all.iter().filter_map(|e| e.cell.clone()) {
                watcher.unmonitor(cell);
            }
        }
    }
}

/// Decodes a message, binding its reply ports to `link`. A panic in the
/// message type's `Deserialize` is a refusal, not the end of the session.
fn decode<M: RemoteMessage>(bytes: &[u8], link: &Arc<Link>) -> Result<M, Refusal> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoding_from(link, || wire::decode_payload_with::<M>(bytes, &link.limits))
    }));
    match decoded {
        Ok(result) => result.map_err(Refusal::Decode),
        Err(_) => Err(Refusal::Decode(format!("decoding a `{}` panicked", M::TAG))),
    }
}

/// The longest exported name (and message tag) the wire takes.
pub(crate) const MAX_NAME: usize = 1024;

/// Refuses names (and tags) the wire would not carry.
pub(crate) fn check_name(name: &str) -> Result<(), ClusterError> {
    // Exports behind cluster-wide names carry a short reserved prefix.
    let max = if name.starts_with('\u{1}') {
        MAX_NAME + 16
    } else {
        MAX_NAME
    };
    if name.is_empty() || name.len() > max {
        return Err(ClusterError::InvalidName(format!(
            "{} bytes: names and message tags must be 1 to {MAX_NAME} bytes long",
            name.len()
        )));
    }
    Ok(())
}

/// Receives the exported actors' exits (as a ractor monitor).
struct ExportWatcher;

impl Actor for ExportWatcher {
    type Msg = ();
    type State = Arc<Registry>;
    type Arguments = Arc<Registry>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        registry: Arc<Registry>,
    ) -> Result<Arc<Registry>, ActorProcessingErr> {
        Ok(registry)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        registry: &mut Arc<Registry>,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => registry.actor_ended(
                cell.get_id(),
                reason.unwrap_or_else(|| "stopped".to_string()),
            ),
            SupervisionEvent::ActorFailed(cell, err) => {
                registry.actor_ended(cell.get_id(), format!("failed: {err}"))
            }
            _ => {}
        }
        Ok(())
    }
}
