//! Exits and restarts: the restart decision, group restarts that stop
//! siblings without blocking the supervisor, backoff, retries of failed
//! starts, escalation and auto-shutdown.

use ractor::ActorCell;
use tokio::task::JoinHandle;

use super::{now, Exit, Mode, RestartOp, State, SupervisorMsg};
use crate::exit::ExitReason;
use crate::supervisor::actor::shutdown::stop_child;
use crate::supervisor::children::ChildState;
use crate::supervisor::error::SupervisorError;
use crate::supervisor::spec::{AutoShutdown, GroupStop, Restart, StopPolicy};
use crate::supervisor::strategy::{affected, should_restart, Strategy};

impl State {
    pub(super) async fn child_exited(
        &mut self,
        cell: &ActorCell,
        reason: ExitReason,
    ) -> Result<(), Exit> {
        let Some(seq) = self.children.seq_of_actor(cell.get_id()) else {
            // An incarnation we already forgot: terminated, or replaced.
            tracing::trace!(supervisor = %self.label, actor = %cell.get_id(), %reason, "exit of a stale incarnation ignored");
            return Ok(());
        };
        let Some(child) = self.children.get(seq) else {
            return Ok(());
        };
        if matches!(child.state, ChildState::Stopping(_)) {
            // Stopped by a group restart: expected, not counted.
            tracing::debug!(supervisor = %self.label, child = %child.spec.id, %reason, "child stopped for a group restart");
            self.finish_induced_stop(seq);
            return Ok(());
        }
        let id = child.spec.id.clone();
        let restart = child.spec.restart;
        let significant = child.spec.significant;
        let ran_for = child
            .started_at
            .map(|t| now().saturating_duration_since(t))
            .unwrap_or_default();
        if reason.is_abnormal() {
            tracing::warn!(supervisor = %self.label, child = %id, %reason, "child exited");
        } else {
            tracing::info!(supervisor = %self.label, child = %id, %reason, "child exited");
        }

        if !should_restart(restart, &reason) {
            let on_ended = child.spec.on_ended.clone();
            if restart == Restart::Temporary || matches!(self.mode, Mode::Dynamic { .. }) {
                self.remove_child(seq);
            } else {
                self.children.set_state(seq, ChildState::Stopped);
            }
            if let Some(on_ended) = on_ended {
                on_ended();
            }
            return self.check_auto_shutdown(significant);
        }

        self.count_restart(&id, &reason)?;
        if let Some(child) = self.children.get_mut(seq) {
            if child
                .spec
                .backoff
                .is_some_and(|b| b.is_healthy_run(ran_for))
            {
                child.attempt = 0;
            }
        }
        self.children.set_state(seq, ChildState::Restarting);
        if self.op.is_some() {
            tracing::debug!(supervisor = %self.label, child = %id, "restart queued behind the one in progress");
            self.queued.push_back(seq);
            return Ok(());
        }
        self.begin_restart(seq).await
    }

    /// Records a restart attempt; `Err` when it is one too many.
    fn count_restart(&mut self, id: &str, reason: &ExitReason) -> Result<(), Exit> {
        self.metrics.restarting(id, reason);
        self.window.add_restart(now()).map_err(|exceeded| {
            Exit::Escalate(SupervisorError::IntensityExceeded {
                child: id.to_string(),
                reason: reason.clone(),
                max_restarts: exceeded.max_restarts,
                period: exceeded.period,
            })
        })
    }

    /// A sibling stopped by a group restart has ended: it waits for the
    /// restart, unless that restart no longer includes it (cancelled by
    /// `terminate_child`), or it is temporary.
    fn finish_induced_stop(&mut self, seq: u64) {
        let temporary = self
            .children
            .get(seq)
            .is_some_and(|c| c.spec.restart == Restart::Temporary);
        if temporary {
            self.remove_child(seq);
        } else if self.awaits_restart(seq) {
            self.children.set_state(seq, ChildState::Restarting);
        } else {
            self.children.set_state(seq, ChildState::Stopped);
        }
    }

    /// Whether the restart in progress still holds child `seq`, a sibling
    /// it stopped: unless `terminate_child` cut the restart short before it.
    /// O(1) in the usual case (nothing dropped), since every sibling of a
    /// group of thousands asks once.
    fn awaits_restart(&self, seq: u64) -> bool {
        self.op
            .as_ref()
            .is_some_and(|op| !op.dropped.contains(&seq))
    }

    /// `terminate_child(seq)`: if the restart in progress is still to start
    /// `seq`, it stops there. The children after `seq` in that restart stay
    /// stopped (a `restart_child` brings each back), as in OTP, where the
    /// pending `try_again_restart` of a terminated child is dropped.
    pub(super) fn cancel_restart_from(&mut self, seq: u64) {
        let Some(op) = self.op.as_mut() else {
            return;
        };
        let next = op.next.min(op.group.len());
        let Some(at) = op.group[next..].iter().position(|s| *s == seq) else {
            return;
        };
        let dropped = op.group.split_off(next + at);
        op.dropped.extend(dropped.iter().copied());
        for later in dropped.into_iter().filter(|s| *s != seq) {
            let waiting = self
                .children
                .get(later)
                .is_some_and(|c| matches!(c.state, ChildState::Restarting));
            // A sibling still stopping ends as stopped in
            // `finish_induced_stop`, since the restart no longer holds it.
            if waiting {
                tracing::info!(supervisor = %self.label, child = %self.child_id(later), after = %self.child_id(seq), "restart cancelled: the child it depends on was terminated");
                self.children.set_state(later, ChildState::Stopped);
            }
        }
    }

    /// Starts the restart of `cause` and the siblings its strategy names.
    async fn begin_restart(&mut self, cause: u64) -> Result<(), Exit> {
        let strategy = match self.mode {
            Mode::Static => self.strategy,
            Mode::Dynamic { .. } => Strategy::OneForOne,
        };
        let Some(position) = self.children.position(cause) else {
            return Ok(());
        };
        let seqs = self.children.seqs();
        let range = affected(strategy, position, seqs.len());
        let mut group = Vec::new();
        let mut stopping = Vec::new();
        for &seq in &seqs[range] {
            let Some(child) = self.children.get(seq) else {
                continue;
            };
            match &child.state {
                ChildState::Running(cell) => {
                    let cell = cell.clone();
                    if child.spec.restart != Restart::Temporary {
                        group.push(seq);
                    }
                    stopping.push(seq);
                    self.children.set_state(seq, ChildState::Stopping(cell));
                }
                ChildState::Stopping(_) | ChildState::Restarting => group.push(seq),
                // Terminated by the operator or ended for good: stays so.
                ChildState::Stopped => {}
            }
        }
        // Queued failures inside this group are restarted by it.
        self.queued.retain(|seq| !group.contains(seq));
        let token = self.next_token;
        self.next_token += 1;
        tracing::info!(supervisor = %self.label, child = %self.child_id(cause), strategy = ?strategy, group = group.len(), "restarting");
        let any_to_stop = !stopping.is_empty();
        self.op = Some(RestartOp {
            token,
            cause,
            stopping,
            group,
            next: 0,
            dropped: Vec::new(),
        });
        if !any_to_stop {
            return self.group_stopped(token).await;
        }
        self.stop_op_siblings(token);
        Ok(())
    }

    /// Stops the children in `op.stopping` (already marked `Stopping`) in
    /// reverse start order, in a task that reports `GroupStopped`, so that
    /// the supervisor keeps answering meanwhile.
    fn stop_op_siblings(&mut self, token: u64) {
        let Some(op) = self.op.as_ref() else {
            return;
        };
        let to_stop: Vec<(ActorCell, StopPolicy)> = op
            .stopping
            .iter()
            .rev()
            .filter_map(|seq| {
                let child = self.children.get(*seq)?;
                Some((child.cell()?.clone(), child.spec.stop_policy()))
            })
            .collect();
        let myself = self.myself.clone();
        let parallel = self.group_stop == GroupStop::Parallel;
        self.set_pending(tokio::spawn(async move {
            // Unlinked first: its exit would only wake the supervisor to be
            // told what `group_stopped` settles for every sibling at once
            // (about 5% of a 100-child group restart).
            if parallel {
                for (cell, _) in &to_stop {
                    cell.unlink(myself.get_cell());
                }
                futures::future::join_all(
                    to_stop
                        .iter()
                        .map(|(cell, shutdown)| stop_child(cell, *shutdown)),
                )
                .await;
            } else {
                for (cell, shutdown) in to_stop {
                    cell.unlink(myself.get_cell());
                    stop_child(&cell, shutdown).await;
                }
            }
            let _ = myself.cast(SupervisorMsg::GroupStopped { token });
        }));
    }

    /// One-for-all, after child `failed` of the group failed to start: the
    /// children of the group started before it stop again (reverse order)
    /// and the whole group starts over, as OTP does
    /// (`one_for_all_other_child_fails_restart`). `false` if none had
    /// started, so only the failed child is retried.
    fn restart_whole_group(&mut self, token: u64) -> bool {
        if self.mode != Mode::Static || self.strategy != Strategy::OneForAll {
            return false;
        }
        let Some(op) = self.op.as_ref().filter(|op| op.token == token) else {
            return false;
        };
        let started: Vec<(u64, ActorCell)> = op.group[..op.next.min(op.group.len())]
            .iter()
            .filter_map(|&seq| match &self.children.get(seq)?.state {
                ChildState::Running(cell) => Some((seq, cell.clone())),
                _ => None,
            })
            .collect();
        if started.is_empty() {
            return false;
        }
        let mut stopping = Vec::with_capacity(started.len());
        for (seq, cell) in started {
            self.children.set_state(seq, ChildState::Stopping(cell));
            stopping.push(seq);
        }
        tracing::info!(supervisor = %self.label, restarted = stopping.len(), "a child of the group failed to restart; stopping the group to start it over");
        if let Some(op) = self.op.as_mut() {
            op.stopping = stopping;
            op.next = 0;
        }
        self.stop_op_siblings(token);
        true
    }

    fn set_pending(&mut self, task: JoinHandle<()>) {
        if let Some(old) = self.pending.replace(task) {
            old.abort();
        }
    }

    /// The group of restart `token` has stopped: wait for the backoff, or
    /// start the group.
    pub(super) async fn group_stopped(&mut self, token: u64) -> Result<(), Exit> {
        let Some(op) = self.op.as_mut().filter(|op| op.token == token) else {
            return Ok(());
        };
        let stopping = std::mem::take(&mut op.stopping);
        let cause = op.cause;
        for seq in stopping {
            if self
                .children
                .get(seq)
                .is_some_and(|c| matches!(c.state, ChildState::Stopping(_)))
            {
                self.finish_induced_stop(seq);
            }
        }
        if self.schedule_backoff(cause, token) {
            return Ok(());
        }
        self.continue_restart().await
    }

    /// Schedules `RestartDue` after child `seq`'s backoff; `false` if it has
    /// no backoff (restart at once).
    /// Each scheduled delay moves the child one attempt further, so that
    /// consecutive restarts wait `min`, `2·min`, `4·min`, ...
    fn schedule_backoff(&mut self, seq: u64, token: u64) -> bool {
        let Some(child) = self.children.get_mut(seq) else {
            return false;
        };
        let Some(backoff) = child.spec.backoff else {
            return false;
        };
        let delay = backoff.delay(child.attempt, &mut rand::rng());
        child.attempt = child.attempt.saturating_add(1);
        if delay.is_zero() {
            return false;
        }
        tracing::info!(supervisor = %self.label, child = %child.spec.id, attempt = child.attempt, delay_ms = delay.as_millis() as u64, "waiting before restart (backoff)");
        let myself = self.myself.clone();
        self.set_pending(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = myself.cast(SupervisorMsg::RestartDue { token });
        }));
        true
    }

    pub(super) async fn restart_due(&mut self, token: u64) -> Result<(), Exit> {
        if self.op.as_ref().is_some_and(|op| op.token == token) {
            self.continue_restart().await
        } else {
            Ok(())
        }
    }

    /// Starts the rest of the current group in order, then the next queued
    /// restart. A failed start counts as a restart and is retried later.
    async fn continue_restart(&mut self) -> Result<(), Exit> {
        while let Some(op) = self.op.as_ref() {
            let token = op.token;
            let Some(&seq) = op.group.get(op.next) else {
                // The group is running again.
                self.op = None;
                if let Some(next) = self.next_queued() {
                    // Boxed: begin_restart may finish synchronously and come
                    // back here for the next queued restart.
                    Box::pin(self.begin_restart(next)).await?;
                }
                return Ok(());
            };
            let waiting = self
                .children
                .get(seq)
                .is_some_and(|c| matches!(c.state, ChildState::Restarting));
            if !waiting {
                // Terminated or removed meanwhile.
                self.advance(token);
                continue;
            }
            match self.start_incarnation(seq).await {
                Ok(cell) => {
                    tracing::info!(supervisor = %self.label, child = %self.child_id(seq), actor = %cell.get_id(), "child restarted");
                    self.advance(token);
                }
                Err(err) => {
                    let id = self.child_id(seq);
                    let reason = ExitReason::from_spawn_err(&err);
                    tracing::warn!(supervisor = %self.label, child = %id, %reason, "restart failed; will retry");
                    self.count_restart(&id, &reason)?;
                    if let Some(op) = self.op.as_mut() {
                        op.cause = seq;
                    }
                    if self.restart_whole_group(token) {
                        // `group_stopped` applies the backoff, then starts
                        // the group from its first child.
                        return Ok(());
                    }
                    if !self.schedule_backoff(seq, token) {
                        // Retry through the mailbox so calls are answered in
                        // between, as OTP's `try_again_restart`.
                        let _ = self.myself.cast(SupervisorMsg::RestartDue { token });
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, token: u64) {
        if let Some(op) = self.op.as_mut().filter(|op| op.token == token) {
            op.next += 1;
        }
    }

    fn next_queued(&mut self) -> Option<u64> {
        while let Some(seq) = self.queued.pop_front() {
            if self
                .children
                .get(seq)
                .is_some_and(|c| matches!(c.state, ChildState::Restarting))
            {
                return Some(seq);
            }
        }
        None
    }

    /// After a significant child ended for good.
    fn check_auto_shutdown(&self, significant: bool) -> Result<(), Exit> {
        if !significant {
            return Ok(());
        }
        match self.auto_shutdown {
            AutoShutdown::Never => Ok(()),
            AutoShutdown::AnySignificant => Err(Exit::AutoShutdown),
            AutoShutdown::AllSignificant => {
                let any_left = self
                    .children
                    .iter()
                    .any(|(_, c)| c.spec.significant && !matches!(c.state, ChildState::Stopped));
                if any_left {
                    Ok(())
                } else {
                    Err(Exit::AutoShutdown)
                }
            }
        }
    }
}
