//! The administration calls of `SupervisorRef` and `DynamicSupervisorRef`,
//! as OTP's `which_children`, `start_child`, `terminate_child`, ...

use ractor::ActorCell;

use super::{start_error_text, ChildKey, Mode, State};
use crate::supervisor::actor::shutdown::stop_child;
use crate::supervisor::children::ChildState;
use crate::supervisor::error::SupervisorError;
use crate::supervisor::handle::{ChildCounts, ChildInfo};
use crate::supervisor::snapshot::{ChildSnapshot, TreeSnapshot};
use crate::supervisor::spec::{ChildKind, ChildSpec, Restart};

impl State {
    pub(super) fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|(_, child)| ChildInfo {
                id: child.spec.id.clone(),
                actor: match &child.state {
                    ChildState::Running(cell) => Some(cell.clone()),
                    _ => None,
                },
                status: child.status(),
                kind: child.spec.kind,
            })
            .collect()
    }

    pub(super) fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for (_, child) in self.children.iter() {
            counts.specs += 1;
            if matches!(child.state, ChildState::Running(_)) {
                counts.active += 1;
            }
            match child.spec.kind {
                ChildKind::Supervisor => counts.supervisors += 1,
                ChildKind::Worker => counts.workers += 1,
            }
        }
        counts
    }

    pub(super) fn inspect(&self) -> TreeSnapshot {
        TreeSnapshot {
            label: self.label.clone(),
            strategy: match self.mode {
                Mode::Static => format!("{:?}", self.strategy),
                Mode::Dynamic { .. } => "dynamic".to_string(),
            },
            children: self
                .children
                .iter()
                .map(|(_, child)| ChildSnapshot {
                    id: child.spec.id.clone(),
                    kind: child.spec.kind,
                    restart: child.spec.restart,
                    status: child.status(),
                    actor: child.cell().cloned(),
                    restarts: child.restarts,
                    last_exit: child.last_exit.clone(),
                    backoff_attempt: child.attempt,
                })
                .collect(),
        }
    }

    pub(super) fn describe(&self) -> String {
        match self.mode {
            Mode::Static => format!("{} ({:?})", self.label, self.strategy),
            Mode::Dynamic { max_children: None } => format!("{} (dynamic)", self.label),
            Mode::Dynamic {
                max_children: Some(max),
            } => format!("{} (dynamic, max {max})", self.label),
        }
    }

    pub(super) async fn start_child(
        &mut self,
        spec: ChildSpec,
    ) -> Result<ActorCell, SupervisorError> {
        let mut started = self.start_children(vec![spec]).await?;
        started
            .pop()
            .ok_or_else(|| SupervisorError::Spawn("no child was given to start".into()))
    }

    /// Adds `specs` at the end of the start order and starts them in order,
    /// all or none: every spec is checked before any starts, and if one
    /// fails to start, the ones this call started stop again (reverse
    /// order) and are removed.
    pub(super) async fn start_children(
        &mut self,
        specs: Vec<ChildSpec>,
    ) -> Result<Vec<ActorCell>, SupervisorError> {
        self.check_new_children(&specs)?;
        let mut started: Vec<(u64, ActorCell)> = Vec::with_capacity(specs.len());
        for spec in specs {
            let seq = self.add_child(spec);
            match self.start_incarnation(seq).await {
                Ok(cell) => started.push((seq, cell)),
                Err(err) => {
                    let id = self.child_id(seq);
                    self.remove_child(seq);
                    for (seq, cell) in started.into_iter().rev() {
                        let policy = self.children.get(seq).map(|c| c.spec.stop_policy());
                        // Forget it first: its exit event is stale.
                        self.remove_child(seq);
                        if let Some(policy) = policy {
                            stop_child(&cell, policy).await;
                        }
                    }
                    return Err(SupervisorError::FailedToStart {
                        id,
                        reason: start_error_text(&err),
                    });
                }
            }
        }
        Ok(started.into_iter().map(|(_, cell)| cell).collect())
    }

    /// OTP's refusals for adding `specs`: an invalid spec, an id already
    /// present or repeated (static), or more children than `max_children`
    /// (dynamic).
    fn check_new_children(&self, specs: &[ChildSpec]) -> Result<(), SupervisorError> {
        for spec in specs {
            spec.validate()?;
        }
        match self.mode {
            Mode::Static => {
                let mut batch = std::collections::HashSet::with_capacity(specs.len());
                for spec in specs {
                    if let Some(seq) = self.children.seq_of_id(&spec.id) {
                        return Err(match self.children.get(seq).map(|c| c.status()) {
                            Some(crate::ChildStatus::Running) => {
                                SupervisorError::Running(spec.id.clone())
                            }
                            _ => SupervisorError::AlreadyPresent(spec.id.clone()),
                        });
                    }
                    if !batch.insert(spec.id.as_str()) {
                        return Err(SupervisorError::DuplicateChildId(spec.id.clone()));
                    }
                }
                Ok(())
            }
            Mode::Dynamic {
                max_children: Some(max),
            } if self.children.len() + specs.len() > max => Err(SupervisorError::MaxChildren(max)),
            Mode::Dynamic { .. } => Ok(()),
        }
    }

    pub(super) async fn terminate_child(&mut self, key: ChildKey) -> Result<(), SupervisorError> {
        let seq = match &key {
            ChildKey::Id(id) => self.children.seq_of_id(id),
            // A restarting child is still known by its last incarnation
            // (OTP's `{restarting, Pid}`), so it can be terminated.
            ChildKey::Actor(cell) => self.children.seq_of_handle(cell.get_id()),
        };
        let Some(seq) = seq else {
            return Err(SupervisorError::NotFound(match key {
                ChildKey::Id(id) => id,
                ChildKey::Actor(cell) => format!("actor {}", cell.get_id()),
            }));
        };
        let Some(child) = self.children.get(seq) else {
            return Err(SupervisorError::NotFound(format!("#{seq}")));
        };
        let stopping = child
            .cell()
            .cloned()
            .map(|cell| (cell, child.spec.stop_policy()));
        let id = child.spec.id.clone();
        let temporary = child.spec.restart == Restart::Temporary;
        // A restart waiting to start this child is dropped from here on: the
        // children after it in that restart stay stopped, as OTP's
        // `hanging_restart_loop_rest_for_one`, so none runs without the
        // child it depends on.
        self.cancel_restart_from(seq);
        // Forget the incarnation before stopping it, so that its exit event,
        // which arrives after this call, is recognised as stale.
        self.children.set_state(seq, ChildState::Stopped);
        if let Some((cell, shutdown)) = stopping {
            stop_child(&cell, shutdown).await;
        }
        tracing::info!(supervisor = %self.label, child = %id, "child terminated");
        if temporary || matches!(self.mode, Mode::Dynamic { .. }) {
            self.remove_child(seq);
        }
        Ok(())
    }

    pub(super) async fn restart_child(&mut self, id: &str) -> Result<ActorCell, SupervisorError> {
        let seq = self.stopped_child(id)?;
        self.start_incarnation(seq)
            .await
            .map_err(|err| SupervisorError::FailedToStart {
                id: id.to_string(),
                reason: start_error_text(&err),
            })
    }

    pub(super) fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let seq = self.stopped_child(id)?;
        self.remove_child(seq);
        Ok(())
    }

    /// The child `id`, if it exists and is stopped (OTP's error cases).
    fn stopped_child(&self, id: &str) -> Result<u64, SupervisorError> {
        let seq = self
            .children
            .seq_of_id(id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_string()))?;
        match self.children.get(seq).map(|c| c.status()) {
            Some(crate::ChildStatus::Stopped) => Ok(seq),
            Some(crate::ChildStatus::Running) => Err(SupervisorError::Running(id.to_string())),
            Some(crate::ChildStatus::Restarting) => {
                Err(SupervisorError::Restarting(id.to_string()))
            }
            None => Err(SupervisorError::NotFound(id.to_string())),
        }
    }
}
