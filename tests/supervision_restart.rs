//! Restart semantics of static supervisors (DESIGN §3), ported from OTP's
//! `supervisor_SUITE` where it has meaning here:
//!
//! - restart type × exit reason (which children restart, which specs stay);
//! - `OneForOne` / `OneForAll` / `RestForOne`: who restarts, stop and start
//!   order, and escalation to a parent when the intensity is exceeded;
//! - failed restarts (`*_other_child_fails_restart`), the sliding intensity
//!   window (`multiple_restarts`), temporary bystanders, group restarts
//!   counted once, escalation through a nested tree;
//! - backoff and `ChildRef` across restarts.
//!
//! Every test runs on a paused tokio clock (it advances on its own when the
//! runtime is idle), and every wait is bounded by `wait_until` or a timeout.

mod common;

use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{ActorId, ActorStatus};
use ractor_otp::{
    Backoff, CastError, ChildRef, ChildSpec, ChildStatus, GroupStop, Restart, Strategy,
    SupervisorError, SupervisorRef, SupervisorSpec,
};
use tokio::time::Instant;

use common::{
    current_id, ids, probe, send, slow, spawn, status, stop, wait_until, Cmd, Linked, Log,
};

// ---------------------------------------------------------------------------
// Helpers

const SECOND: Duration = Duration::from_secs(1);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// A supervisor with three probes `a`, `b`, `c` sharing `log`.
fn abc(strategy: Strategy, max_restarts: u32, period: Duration, log: &Log) -> SupervisorSpec {
    SupervisorSpec::new(strategy)
        .intensity(max_restarts, period)
        .child(probe("a", log))
        .child(probe("b", log))
        .child(probe("c", log))
}

/// The running incarnation of child `id`; panics if it is not running.
async fn running_id(sup: &SupervisorRef, id: &str) -> ActorId {
    current_id(sup, id)
        .await
        .unwrap_or_else(|| panic!("child `{id}` should be running"))
}

/// Waits until child `id` runs as an incarnation other than `old`.
async fn wait_restarted(sup: &SupervisorRef, id: &str, old: &ActorId) {
    wait_until(
        &format!("`{id}` runs as a new incarnation"),
        || async move { current_id(sup, id).await.is_some_and(|now| now != *old) },
    )
    .await;
}

/// Waits until every child named runs as an incarnation other than its old
/// one.
async fn wait_all_restarted(sup: &SupervisorRef, old: &[(&str, ActorId)]) {
    for (id, old_id) in old {
        wait_restarted(sup, id, old_id).await;
    }
}

/// Waits until every child named runs (a group restart is over).
async fn wait_all_running(sup: &SupervisorRef, ids: &[&str]) {
    for id in ids {
        wait_until(&format!("`{id}` runs"), || async move {
            current_id(sup, id).await.is_some()
        })
        .await;
    }
}

/// Current incarnations of the named children.
async fn incarnations<'a>(sup: &SupervisorRef, ids: &[&'a str]) -> Vec<(&'a str, ActorId)> {
    let mut out = Vec::new();
    for id in ids {
        out.push((*id, running_id(sup, id).await));
    }
    out
}

/// Asserts that child `id` still runs as the incarnation `old` it had before,
/// untouched by any restart.
async fn assert_untouched(sup: &SupervisorRef, (id, old): &(&str, ActorId)) {
    assert_eq!(current_id(sup, id).await, Some(*old), "{id} is untouched");
}

/// Kills child `id`'s running incarnation (an abnormal exit).
fn kill(sup: &SupervisorRef, id: &str) {
    sup.child::<Cmd>(id)
        .ok()
        .and_then(|c| c.current())
        .unwrap_or_else(|| panic!("child `{id}` should be running to be killed"))
        .kill();
}

/// Awaits a supervisor's join handle, bounded.
async fn joined(join: JoinHandle<()>) {
    tokio::time::timeout(secs(60), join)
        .await
        .expect("the supervisor actor ends")
        .expect("the supervisor task does not panic");
}

// ---------------------------------------------------------------------------
// Escalation to the recording parent

impl Linked {
    /// Waits until the parent saw the supervisor fail with "max restart
    /// intensity", and returns that failure's record.
    async fn wait_escalated(&self) -> String {
        let exit = self.wait_exit().await;
        assert!(
            exit.starts_with("failed:") && exit.contains("max restart intensity"),
            "an exceeded intensity is an abnormal exit naming the cause, got {exit:?}"
        );
        exit
    }

    /// Checks that the supervisor is gone after escalating.
    async fn assert_supervisor_gone(self) {
        assert!(
            matches!(
                self.sup.which_children().await,
                Err(SupervisorError::NotRunning)
            ),
            "an escalated supervisor no longer answers calls"
        );
        joined(self.join).await;
        self.parent.stop(None);
    }
}

// ---------------------------------------------------------------------------
// Restart type × exit reason

/// How a test makes a child end.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `stop(None)`: normal.
    Normal,
    /// `stop(Some("shutdown"))`: shutdown.
    Shutdown,
    /// `stop(Some("shutdown: maintenance"))`: shutdown with a reason.
    ShutdownWithReason,
    /// `stop(Some("bye"))`: abnormal, as Erlang's `exit(bye)`.
    OtherReason,
    /// `Err` from a handler.
    Fail,
    /// A panic in a handler.
    Panic,
    /// ractor's `kill()`.
    Kill,
}

/// What the supervisor does with the child afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A new incarnation runs.
    Restarted,
    /// Still listed, `ChildStatus::Stopped`, not running.
    StaysStopped,
    /// Gone from `which_children`.
    Dropped,
}

fn end_child(sup: &SupervisorRef, id: &str, end: End) {
    match end {
        End::Normal => send(sup, id, Cmd::Stop(None)),
        End::Shutdown => send(sup, id, Cmd::Stop(Some("shutdown".into()))),
        End::ShutdownWithReason => send(sup, id, Cmd::Stop(Some("shutdown: maintenance".into()))),
        End::OtherReason => send(sup, id, Cmd::Stop(Some("bye".into()))),
        End::Fail => send(sup, id, Cmd::Fail),
        End::Panic => send(sup, id, Cmd::Panic),
        End::Kill => kill(sup, id),
    }
}

/// For each row, a fresh one-for-one supervisor with `w` (of type
/// `restart`) and a permanent `peer`: end `w` as the row says and check the
/// outcome, and that `peer` is left alone.
async fn check_restart_table(restart: Restart, table: &[(End, Outcome)]) {
    for &(end, expected) in table {
        let log = Log::new();
        let sup = spawn(
            SupervisorSpec::new(Strategy::OneForOne)
                .intensity(10, secs(5))
                .child(probe("w", &log).restart(restart))
                .child(probe("peer", &log)),
        )
        .await;
        let old = running_id(&sup, "w").await;
        let peer = running_id(&sup, "peer").await;

        end_child(&sup, "w", end);
        let case = format!("{restart:?} child after {end:?}");
        match expected {
            Outcome::Restarted => wait_restarted(&sup, "w", &old).await,
            Outcome::StaysStopped => {
                wait_until(&format!("{case} is reported stopped"), || async {
                    status(&sup, "w").await == Some(ChildStatus::Stopped)
                })
                .await;
            }
            Outcome::Dropped => {
                wait_until(&format!("{case} is dropped"), || async {
                    !ids(&sup).await.contains(&"w".to_string())
                })
                .await;
            }
        }
        // Let anything that would wrongly follow happen.
        tokio::time::sleep(ms(100)).await;

        let starts = log.count("start:w");
        match expected {
            Outcome::Restarted => {
                assert_eq!(starts, 2, "{case}: restarted exactly once");
                assert_eq!(
                    status(&sup, "w").await,
                    Some(ChildStatus::Running),
                    "{case}: the new incarnation runs"
                );
            }
            Outcome::StaysStopped => {
                assert_eq!(starts, 1, "{case}: not restarted");
                let info = sup
                    .which_children()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|c| c.id == "w")
                    .unwrap_or_else(|| panic!("{case}: its spec stays listed"));
                assert_eq!(info.status, ChildStatus::Stopped, "{case}: stays stopped");
                assert!(info.actor.is_none(), "{case}: no incarnation is reported");
                assert!(
                    sup.child::<Cmd>("w").is_ok_and(|c| c.current().is_none()),
                    "{case}: its ChildRef exists but reaches nothing"
                );
            }
            Outcome::Dropped => {
                assert_eq!(starts, 1, "{case}: not restarted");
                assert_eq!(
                    ids(&sup).await,
                    vec!["peer".to_string()],
                    "{case}: its spec is dropped"
                );
                assert!(
                    matches!(
                        sup.child::<Cmd>("w"),
                        Err(ractor_otp::ChildLookupError::NotFound(_))
                    ),
                    "{case}: no ChildRef for a dropped child"
                );
            }
        }
        assert_eq!(
            current_id(&sup, "peer").await,
            Some(peer),
            "{case}: a one-for-one sibling is left alone"
        );
        stop(&sup).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_child_is_restarted_after_every_kind_of_exit() {
    use End::*;
    use Outcome::*;
    check_restart_table(
        Restart::Permanent,
        &[
            (Normal, Restarted),
            (Shutdown, Restarted),
            (ShutdownWithReason, Restarted),
            (OtherReason, Restarted),
            (Fail, Restarted),
            (Panic, Restarted),
            (Kill, Restarted),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_transient_child_is_restarted_only_after_an_abnormal_exit_and_otherwise_stays_listed_as_stopped(
) {
    use End::*;
    use Outcome::*;
    check_restart_table(
        Restart::Transient,
        &[
            (Normal, StaysStopped),
            (Shutdown, StaysStopped),
            (ShutdownWithReason, StaysStopped),
            (OtherReason, Restarted),
            (Fail, Restarted),
            (Panic, Restarted),
            (Kill, Restarted),
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_is_never_restarted_and_its_spec_is_dropped() {
    use End::*;
    use Outcome::*;
    check_restart_table(
        Restart::Temporary,
        &[
            (Normal, Dropped),
            (Shutdown, Dropped),
            (ShutdownWithReason, Dropped),
            (OtherReason, Dropped),
            (Fail, Dropped),
            (Panic, Dropped),
            (Kill, Dropped),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------
// Strategies

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let log = Log::new();
    let sup = spawn(abc(Strategy::OneForOne, 3, secs(5), &log)).await;
    let before = incarnations(&sup, &["a", "b", "c"]).await;
    log.clear();

    send(&sup, "b", Cmd::Fail);
    wait_restarted(&sup, "b", &before[1].1).await;

    assert_untouched(&sup, &before[0]).await;
    assert_untouched(&sup, &before[2]).await;
    assert_eq!(log.events(), ["start:b"], "only b is started again");
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_the_siblings_in_reverse_order_and_restarts_all_in_forward_order() {
    let log = Log::new();
    let sup = spawn(abc(Strategy::OneForAll, 3, secs(5), &log)).await;
    let before = incarnations(&sup, &["a", "b", "c"]).await;
    log.clear();

    send(&sup, "b", Cmd::Panic);
    wait_all_restarted(&sup, &before).await;

    assert_eq!(
        log.events(),
        ["stop:c", "stop:a", "start:a", "start:b", "start:c"],
        "siblings stop gracefully in reverse start order, then all start in start order"
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_with_a_parallel_group_stop_stops_the_siblings_at_once_then_starts_in_order() {
    let log = Log::new();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .intensity(3, secs(5))
        .group_stop(GroupStop::Parallel)
        .child(probe("a", &log))
        .child(slow("b", &log, ms(30)))
        .child(slow("c", &log, ms(10)))
        .child(slow("d", &log, ms(20)));
    let sup = spawn(spec).await;
    let before = incarnations(&sup, &["a", "b", "c", "d"]).await;
    log.clear();

    let t0 = Instant::now();
    send(&sup, "a", Cmd::Panic);
    wait_all_restarted(&sup, &before).await;
    let took = t0.elapsed();

    assert_eq!(
        log.events(),
        ["stop:c", "stop:d", "stop:b", "start:a", "start:b", "start:c", "start:d"],
        "the siblings stop together (the quickest first), then all start in start order"
    );
    // Together: about the slowest stop (30 ms), not their sum (60 ms).
    assert!(took < ms(50), "{took:?}");
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let log = Log::new();
    let sup = spawn(abc(Strategy::RestForOne, 3, secs(5), &log)).await;
    let before = incarnations(&sup, &["a", "b", "c"]).await;
    log.clear();

    kill(&sup, "b");
    wait_all_restarted(&sup, &before[1..]).await;

    // a, started before b, is untouched.
    assert_untouched(&sup, &before[0]).await;
    assert_eq!(
        log.events(),
        ["stop:c", "start:b", "start:c"],
        "c stops, then b and c start in start order"
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_only_the_last_child_when_the_last_fails() {
    let log = Log::new();
    let sup = spawn(abc(Strategy::RestForOne, 3, secs(5), &log)).await;
    let before = incarnations(&sup, &["a", "b", "c"]).await;
    log.clear();

    send(&sup, "c", Cmd::Fail);
    wait_restarted(&sup, "c", &before[2].1).await;

    assert_untouched(&sup, &before[0]).await;
    assert_untouched(&sup, &before[1]).await;
    assert_eq!(log.events(), ["start:c"], "only c is started again");
    stop(&sup).await;
}

/// Intensity 1: the first failure of `b` restarts (as the strategy says),
/// the second escalates: the remaining children stop in reverse order and the
/// parent sees the supervisor fail.
async fn check_escalation(strategy: Strategy, first_restart: &[&str]) {
    let log = Log::new();
    let linked = Linked::spawn(abc(strategy, 1, secs(5), &log)).await;
    let sup = &linked.sup;
    let before = incarnations(sup, &["a", "b", "c"]).await;
    log.clear();

    send(sup, "b", Cmd::Fail);
    wait_restarted(sup, "b", &before[1].1).await;
    wait_all_running(sup, &["a", "b", "c"]).await;
    assert_eq!(
        log.events(),
        first_restart,
        "{strategy:?}: the first failure is within the intensity and restarts as the strategy says"
    );
    assert!(
        linked.exits().is_empty(),
        "{strategy:?}: one restart in 5 s is allowed"
    );

    let last = sup.which_children().await.expect("the supervisor is alive");
    log.clear();
    send(sup, "b", Cmd::Fail);
    let failure = linked.wait_escalated().await;
    assert!(
        failure.contains("`b`"),
        "{strategy:?}: the failure names the child that was one restart too many: {failure}"
    );
    assert_eq!(
        log.events(),
        ["stop:c", "stop:a"],
        "{strategy:?}: escalating stops the remaining children in reverse start order, without restarting any"
    );
    for child in last {
        let cell = child.actor.expect("every child was running");
        assert_eq!(
            cell.get_status(),
            ActorStatus::Stopped,
            "{strategy:?}: `{}` is stopped when its supervisor has escalated",
            child.id
        );
    }
    linked.assert_supervisor_gone().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_one_escalates_to_its_parent_when_the_intensity_is_exceeded() {
    check_escalation(Strategy::OneForOne, &["start:b"]).await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_escalates_to_its_parent_when_the_intensity_is_exceeded() {
    check_escalation(
        Strategy::OneForAll,
        &["stop:c", "stop:a", "start:a", "start:b", "start:c"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_escalates_to_its_parent_when_the_intensity_is_exceeded() {
    check_escalation(Strategy::RestForOne, &["stop:c", "start:b", "start:c"]).await;
}

#[tokio::test(start_paused = true)]
async fn a_group_restart_counts_once_against_the_intensity() {
    // OTP: the siblings' exits caused by a group restart are not failures.
    let log = Log::new();
    let linked = Linked::spawn(abc(Strategy::OneForAll, 1, secs(5), &log)).await;
    let sup = &linked.sup;
    let before = incarnations(sup, &["a", "b", "c"]).await;

    send(sup, "b", Cmd::Fail);
    wait_all_restarted(sup, &before).await;
    tokio::time::sleep(ms(100)).await;
    assert!(
        linked.exits().is_empty(),
        "stopping a and c for b's restart must not count as two more restarts: {:?}",
        linked.exits()
    );

    // Exactly one restart was counted: a second failure is one too many.
    send(sup, "a", Cmd::Fail);
    let failure = linked.wait_escalated().await;
    assert!(failure.contains("`a`"), "the failure names a: {failure}");
    linked.assert_supervisor_gone().await;
}

#[tokio::test(start_paused = true)]
async fn a_group_restart_starts_no_new_incarnation_before_the_old_ones_stopped_and_keeps_answering()
{
    let log = Log::new();
    let sup = spawn(
        SupervisorSpec::new(Strategy::OneForAll)
            .intensity(3, secs(5))
            .child(slow("a", &log, secs(2)))
            .child(probe("b", &log))
            .child(probe("c", &log)),
    )
    .await;
    let before = incarnations(&sup, &["a", "b", "c"]).await;
    log.clear();

    send(&sup, "c", Cmd::Fail);
    tokio::time::sleep(SECOND).await;
    let during = sup
        .which_children()
        .await
        .expect("the supervisor answers while a sibling takes its time to stop");
    for child in &during {
        assert_eq!(
            child.status,
            ChildStatus::Restarting,
            "`{}` is reported restarting during the group restart",
            child.id
        );
    }
    assert_eq!(
        log.events(),
        ["stop:b"],
        "a is still stopping, nothing has started"
    );

    wait_all_restarted(&sup, &before).await;
    assert_eq!(
        log.events(),
        ["stop:b", "stop:a", "start:a", "start:b", "start:c"],
        "new incarnations start only after every old one has stopped"
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_bystander_of_a_one_for_all_restart_is_stopped_and_dropped() {
    let log = Log::new();
    let sup = spawn(
        SupervisorSpec::new(Strategy::OneForAll)
            .intensity(3, secs(5))
            .child(probe("a", &log))
            .child(probe("t", &log).restart(Restart::Temporary))
            .child(probe("b", &log)),
    )
    .await;
    let a = running_id(&sup, "a").await;
    let b = running_id(&sup, "b").await;
    log.clear();

    send(&sup, "a", Cmd::Fail);
    wait_restarted(&sup, "a", &a).await;
    wait_restarted(&sup, "b", &b).await;

    assert_eq!(
        ids(&sup).await,
        ["a", "b"],
        "the temporary sibling's spec is dropped"
    );
    assert!(
        matches!(
            sup.child::<Cmd>("t"),
            Err(ractor_otp::ChildLookupError::NotFound(_))
        ),
        "no ChildRef for the dropped sibling"
    );
    assert_eq!(
        log.events(),
        ["stop:b", "stop:t", "start:a", "start:b"],
        "the temporary sibling is stopped gracefully in order and not started again"
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// Failed restarts (OTP's *_other_child_fails_restart)

#[tokio::test(start_paused = true)]
async fn one_for_one_recovers_when_a_failed_restart_stays_within_the_intensity() {
    let log = Log::new();
    let linked = Linked::spawn(abc(Strategy::OneForOne, 2, secs(5), &log)).await;
    let sup = &linked.sup;
    let b = running_id(sup, "b").await;
    log.clear();

    log.fail_next_starts(1);
    send(sup, "b", Cmd::Fail);
    wait_restarted(sup, "b", &b).await;

    assert_eq!(
        log.events(),
        ["start_failed:b", "start:b"],
        "a failed restart is retried"
    );
    linked.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_one_escalates_when_failed_restarts_exceed_the_intensity() {
    let log = Log::new();
    let linked = Linked::spawn(abc(Strategy::OneForOne, 2, secs(5), &log)).await;
    let sup = &linked.sup;
    log.clear();

    // The exit counts once, each failed start once more: 1 + 2 > 2.
    log.fail_next_starts(100);
    send(sup, "b", Cmd::Fail);
    let failure = linked.wait_escalated().await;

    assert!(failure.contains("`b`"), "the failure names b: {failure}");
    assert_eq!(
        log.events(),
        ["start_failed:b", "start_failed:b", "stop:c", "stop:a"],
        "failed starts count against the intensity; then the others stop in reverse order"
    );
    linked.assert_supervisor_gone().await;
}

/// Spawns `a`, `b`, `c` (intensity `max_restarts` in 5 s) linked under a
/// recording parent, with child `own` logging to a log of its own so that
/// only its starts fail. Returns the supervisor, the others' log and `own`'s
/// log, both cleared of the first starts.
async fn spawn_with_own_log(
    strategy: Strategy,
    max_restarts: u32,
    own: &str,
) -> (Linked, Log, Log) {
    let (log, own_log) = (Log::new(), Log::new());
    let log_of = |id: &str| if id == own { &own_log } else { &log };
    let linked = Linked::spawn(
        SupervisorSpec::new(strategy)
            .intensity(max_restarts, secs(5))
            .child(probe("a", log_of("a")))
            .child(probe("b", log_of("b")))
            .child(probe("c", log_of("c"))),
    )
    .await;
    log.clear();
    own_log.clear();
    (linked, log, own_log)
}

#[tokio::test(start_paused = true)]
async fn one_for_all_starts_the_group_over_when_another_child_fails_to_restart_within_the_intensity(
) {
    let (linked, log, b_log) = spawn_with_own_log(Strategy::OneForAll, 2, "b").await;
    let sup = &linked.sup;
    let before = incarnations(sup, &["a", "b", "c"]).await;

    b_log.fail_next_starts(1);
    send(sup, "a", Cmd::Fail);
    wait_all_restarted(sup, &before).await;

    assert_eq!(
        b_log.events(),
        ["stop:b", "start_failed:b", "start:b"],
        "b's failed restart is retried"
    );
    assert_eq!(
        log.events(),
        ["stop:c", "start:a", "stop:a", "start:a", "start:c"],
        "as OTP (one_for_all_other_child_fails_restart): a, restarted before b failed, stops again and the whole group starts over"
    );
    linked.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_escalates_when_another_child_fails_to_restart_beyond_the_intensity() {
    let (linked, log, b_log) = spawn_with_own_log(Strategy::OneForAll, 1, "b").await;
    let sup = &linked.sup;

    // a's exit counts once, b's failed start once more: 2 > 1.
    b_log.fail_next_starts(100);
    send(sup, "a", Cmd::Fail);
    let failure = linked.wait_escalated().await;

    assert!(
        failure.contains("`b`"),
        "the failure names b, whose start failed: {failure}"
    );
    assert_eq!(
        b_log.events(),
        ["stop:b", "start_failed:b"],
        "b failed to start once"
    );
    assert_eq!(
        log.events(),
        ["stop:c", "start:a", "stop:a"],
        "the restarted a is stopped again; c, not yet started, is not"
    );
    linked.assert_supervisor_gone().await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_recovers_when_another_child_fails_to_restart_within_the_intensity() {
    let (linked, log, c_log) = spawn_with_own_log(Strategy::RestForOne, 2, "c").await;
    let sup = &linked.sup;
    let before = incarnations(sup, &["a", "b", "c"]).await;

    c_log.fail_next_starts(1);
    send(sup, "b", Cmd::Fail);
    wait_all_restarted(sup, &before[1..]).await;

    assert_untouched(sup, &before[0]).await;
    assert_eq!(
        c_log.events(),
        ["stop:c", "start_failed:c", "start:c"],
        "c's failed restart is retried"
    );
    assert_eq!(log.events(), ["start:b"], "b restarts once");
    linked.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_escalates_when_another_child_fails_to_restart_beyond_the_intensity() {
    let (linked, log, c_log) = spawn_with_own_log(Strategy::RestForOne, 1, "c").await;
    let sup = &linked.sup;

    c_log.fail_next_starts(100);
    send(sup, "b", Cmd::Fail);
    let failure = linked.wait_escalated().await;

    assert!(
        failure.contains("`c`"),
        "the failure names c, whose start failed: {failure}"
    );
    assert_eq!(
        c_log.events(),
        ["stop:c", "start_failed:c"],
        "c failed to start once"
    );
    assert_eq!(
        log.events(),
        ["start:b", "stop:b", "stop:a"],
        "then the running children stop in reverse start order"
    );
    linked.assert_supervisor_gone().await;
}

// ---------------------------------------------------------------------------
// The intensity window (OTP's multiple_restarts)

/// Fails `w` and waits for its next incarnation.
async fn fail_and_wait_restart(sup: &SupervisorRef) {
    let old = running_id(sup, "w").await;
    send(sup, "w", Cmd::Fail);
    wait_restarted(sup, "w", &old).await;
}

fn single(max_restarts: u32, period: Duration, log: &Log) -> SupervisorSpec {
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(max_restarts, period)
        .child(probe("w", log))
}

#[tokio::test(start_paused = true)]
async fn failures_further_apart_than_the_period_never_exceed_the_intensity() {
    let log = Log::new();
    let linked = Linked::spawn(single(1, secs(5), &log)).await;
    for _ in 0..5 {
        fail_and_wait_restart(&linked.sup).await;
        tokio::time::sleep(secs(6)).await;
    }
    assert_eq!(log.count("start:w"), 6, "every failure was restarted");
    linked.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_failures_within_the_period_exceed_an_intensity_of_one() {
    let log = Log::new();
    let linked = Linked::spawn(single(1, secs(5), &log)).await;
    fail_and_wait_restart(&linked.sup).await;
    tokio::time::sleep(secs(4)).await;

    send(&linked.sup, "w", Cmd::Fail);
    linked.wait_escalated().await;
    assert_eq!(
        log.count("start:w"),
        2,
        "the second failure is not restarted"
    );
    linked.assert_supervisor_gone().await;
}

#[tokio::test(start_paused = true)]
async fn the_intensity_window_slides_instead_of_resetting_every_period() {
    // Intensity 2 in 10 s, failures at 0, 9, 11 and 12 s. Fixed 10 s buckets
    // ([0, 10), [10, 20)) or a counter reset 10 s after its first restart
    // would allow all four; the window (2 s, 12 s] holds three.
    let log = Log::new();
    let linked = Linked::spawn(single(2, secs(10), &log)).await;
    let t0 = Instant::now();

    fail_and_wait_restart(&linked.sup).await;
    tokio::time::sleep_until(t0 + secs(9)).await;
    fail_and_wait_restart(&linked.sup).await;
    tokio::time::sleep_until(t0 + secs(11)).await;
    fail_and_wait_restart(&linked.sup).await;
    assert!(
        linked.exits().is_empty(),
        "the restart at 0 s left the window before the one at 11 s"
    );
    tokio::time::sleep_until(t0 + secs(12)).await;

    send(&linked.sup, "w", Cmd::Fail);
    linked.wait_escalated().await;
    linked.assert_supervisor_gone().await;
}

// ---------------------------------------------------------------------------
// Nested supervisors

fn tree(root_intensity: u32, log: &Log) -> SupervisorSpec {
    let mid = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, secs(5))
        .child(probe("leaf", log));
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(root_intensity, secs(5))
        .child(ChildSpec::supervisor("mid", mid))
        .child(probe("peer", log))
}

/// A `ChildRef` to `leaf`, taken through the running `mid`.
fn leaf_of(root: &SupervisorRef) -> ChildRef<Cmd> {
    root.supervisor_child("mid")
        .expect("mid is a running nested supervisor")
        .child::<Cmd>("leaf")
        .expect("leaf is a Cmd child of mid")
}

/// Fails the leaf twice (its supervisor allows one restart in 5 s), so that
/// `mid` escalates.
async fn fail_leaf_twice(leaf: &ChildRef<Cmd>) {
    for round in 0..2 {
        wait_until("the leaf runs", || {
            let running = leaf.current().is_some();
            async move { running }
        })
        .await;
        let old = leaf.current().expect("running").get_id();
        leaf.cast(Cmd::Fail).expect("the leaf is running");
        if round == 0 {
            wait_until("the leaf is restarted by mid", || {
                let restarted = leaf.current().is_some_and(|l| l.get_id() != old);
                async move { restarted }
            })
            .await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_that_escalates_is_restarted_by_its_parent_with_its_children() {
    let log = Log::new();
    let root = spawn(tree(5, &log)).await;
    let mid = running_id(&root, "mid").await;
    let peer = running_id(&root, "peer").await;
    let leaf = leaf_of(&root);

    fail_leaf_twice(&leaf).await;
    wait_restarted(&root, "mid", &mid).await;

    let new_mid = root.supervisor_child("mid").expect("mid runs again");
    let leaf_now = running_id(&new_mid, "leaf").await;
    let pinged = leaf
        .call(Cmd::Ping, Some(SECOND))
        .await
        .expect("the leaf ChildRef taken before mid's restart reaches the new leaf");
    assert_eq!(
        pinged, leaf_now,
        "the ChildRef follows the leaf into the new mid"
    );
    assert_eq!(
        log.count("start:leaf"),
        3,
        "leaf started by the first mid, restarted once by it, then started by the new mid"
    );
    assert_eq!(
        current_id(&root, "peer").await,
        Some(peer),
        "root is one-for-one: peer is untouched"
    );
    stop(&root).await;
}

#[tokio::test(start_paused = true)]
async fn repeated_grandchild_failures_escalate_through_two_levels_to_the_roots_parent() {
    let log = Log::new();
    let linked = Linked::spawn(tree(1, &log)).await;
    let root = &linked.sup;
    let leaf = leaf_of(root);

    // First escalation of mid: root restarts it (1 restart in 5 s is allowed).
    let mid = running_id(root, "mid").await;
    fail_leaf_twice(&leaf).await;
    wait_restarted(root, "mid", &mid).await;
    assert!(
        linked.exits().is_empty(),
        "root absorbs mid's first escalation"
    );

    // Second escalation within 5 s: one restart too many for root.
    log.clear();
    fail_leaf_twice(&leaf).await;
    let failure = linked.wait_escalated().await;
    assert!(
        failure.contains("`mid`") && failure.contains("`leaf`"),
        "root's failure names mid, whose failure names leaf: {failure}"
    );
    assert_eq!(
        log.with_prefix("stop:"),
        ["stop:peer"],
        "root stops its remaining child before failing"
    );
    linked.assert_supervisor_gone().await;
}

// ---------------------------------------------------------------------------
// Backoff

fn with_backoff(log: &Log) -> SupervisorSpec {
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, secs(60))
        .child(probe("w", log).backoff(Backoff::new(ms(100), SECOND)))
}

/// Fails `w` and returns how long it took until a new incarnation ran.
async fn time_to_restart(sup: &SupervisorRef) -> Duration {
    let old = running_id(sup, "w").await;
    let failed_at = Instant::now();
    send(sup, "w", Cmd::Fail);
    wait_restarted(sup, "w", &old).await;
    failed_at.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_child_waiting_for_its_backoff_is_reported_restarting_and_runs_again_after_the_delay() {
    let log = Log::new();
    let sup = spawn(with_backoff(&log)).await;
    let old = running_id(&sup, "w").await;
    let failed_at = Instant::now();

    send(&sup, "w", Cmd::Fail);
    tokio::time::sleep(ms(50)).await;
    let during = sup
        .which_children()
        .await
        .expect("the supervisor answers while the child waits for its backoff");
    assert_eq!(during.len(), 1);
    assert_eq!(
        during[0].status,
        ChildStatus::Restarting,
        "a child waiting for its backoff is reported restarting"
    );
    assert!(
        during[0].actor.is_none(),
        "no incarnation runs during the backoff"
    );
    assert_eq!(log.count("start:w"), 1, "not restarted before the delay");

    wait_restarted(&sup, "w", &old).await;
    assert!(
        failed_at.elapsed() >= ms(100),
        "the restart waits at least the minimum backoff, took {:?}",
        failed_at.elapsed()
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_backoff_delay_starts_at_its_minimum_and_doubles_on_consecutive_failures() {
    let log = Log::new();
    let sup = spawn(with_backoff(&log)).await;
    let mut delays = Vec::new();
    for _ in 0..4 {
        delays.push(time_to_restart(&sup).await);
    }
    // Each restart is seen within one 5 ms poll of its due time.
    for (n, (got, expected)) in delays.iter().zip([100, 200, 400, 800]).enumerate() {
        assert!(
            *got >= ms(expected) && *got < ms(expected + 50),
            "consecutive restart #{n} waits min·2^{n} = {expected} ms, got {got:?} (all: {delays:?})"
        );
    }
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn the_backoff_delay_is_capped_at_its_maximum_and_resets_after_a_healthy_run() {
    let log = Log::new();
    let sup = spawn(with_backoff(&log)).await;
    let mut last = Duration::ZERO;
    for _ in 0..6 {
        last = time_to_restart(&sup).await;
    }
    assert!(
        last >= SECOND && last < SECOND + ms(50),
        "the delay never exceeds max = 1 s, got {last:?}"
    );

    // Running for `reset_after` (by default max = 1 s) starts over at min.
    tokio::time::sleep(secs(2)).await;
    let after_rest = time_to_restart(&sup).await;
    assert!(
        after_rest >= ms(100) && after_rest < ms(150),
        "after a healthy run the delay is back to min = 100 ms, got {after_rest:?}"
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// ChildRef across restarts

#[tokio::test(start_paused = true)]
async fn a_child_ref_reaches_the_new_incarnation_after_a_restart() {
    let log = Log::new();
    let sup = spawn(single(3, secs(5), &log)).await;
    let w = sup.child::<Cmd>("w").expect("w is a Cmd child");
    let first = w
        .call(Cmd::Ping, Some(SECOND))
        .await
        .expect("the first incarnation answers");

    w.cast(Cmd::Fail).expect("the first incarnation runs");
    wait_restarted(&sup, "w", &first).await;

    let second = w
        .call(Cmd::Ping, Some(SECOND))
        .await
        .expect("the same ChildRef reaches the restarted child");
    assert_ne!(second, first, "the answer comes from a new incarnation");
    assert_eq!(
        Some(second),
        current_id(&sup, "w").await,
        "the one the supervisor runs"
    );
    w.cast(Cmd::Work)
        .expect("a cast after the restart is delivered");
    wait_until("the new incarnation handles the cast", || async {
        log.worked.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_cast_while_the_child_waits_for_its_backoff_hands_the_message_back() {
    let log = Log::new();
    let sup = spawn(with_backoff(&log)).await;
    let w = sup.child::<Cmd>("w").expect("w is a Cmd child");
    let old = running_id(&sup, "w").await;

    w.cast(Cmd::Fail).expect("w runs");
    wait_until("w is restarting", || async {
        status(&sup, "w").await == Some(ChildStatus::Restarting)
    })
    .await;
    match w.cast(Cmd::Work) {
        Err(CastError::NotRunning(Cmd::Work)) => {}
        Err(other) => panic!("a cast during the backoff is refused as NotRunning, got {other:?}"),
        Ok(()) => panic!("a cast during the backoff cannot be delivered to anyone"),
    }
    assert!(
        matches!(w.call(Cmd::Ping, Some(SECOND)).await, Err(ractor_otp::CallError::NotRunning(id)) if id == "w"),
        "a call during the backoff is refused naming the child"
    );

    wait_restarted(&sup, "w", &old).await;
    w.cast(Cmd::Work)
        .expect("after the backoff the cast is delivered");
    wait_until("the new incarnation handles the cast", || async {
        log.worked.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    stop(&sup).await;
}

/// A child that keeps the reply port of every request somewhere else (as a
/// handler that passes it on would) and stops itself without answering.
#[derive(Clone)]
struct Keeper(std::sync::Arc<std::sync::Mutex<Vec<ractor::RpcReplyPort<()>>>>);

impl ractor::Actor for Keeper {
    type Msg = ractor::RpcReplyPort<()>;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ractor::ActorRef<Self::Msg>,
        (): (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        myself: ractor::ActorRef<Self::Msg>,
        port: Self::Msg,
        _: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        self.0.lock().expect("kept ports").push(port);
        myself.stop(None);
        Ok(())
    }
}

// A call with no timeout waits as long as the incarnation lives, not as
// long as its reply port does: a request that outlives its incarnation
// (kept elsewhere, or, in a race of ractor's mailbox with the actor's
// exit, left in a channel that the caller's own reference keeps alive)
// ends the call with `NoReply` once the incarnation has ended.
#[tokio::test(start_paused = true)]
async fn a_call_without_timeout_ends_when_the_incarnation_ends_without_answering() {
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::new("keeper", Keeper(kept.clone()), || ()).restart(Restart::Transient));
    let sup = spawn(spec).await;
    let keeper = sup
        .child::<ractor::RpcReplyPort<()>>("keeper")
        .expect("a keeper child");
    let answer = tokio::time::timeout(secs(60), keeper.call(|port| port, None))
        .await
        .expect("the call ends with the incarnation, not never");
    assert!(
        matches!(answer, Err(ractor_otp::CallError::NoReply(ref id)) if id == "keeper"),
        "no answer, named as such: {answer:?}"
    );
    assert_eq!(
        kept.lock().expect("kept ports").len(),
        1,
        "the port is still held"
    );
    stop(&sup).await;
}
