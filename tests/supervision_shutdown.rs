//! Stopping children and supervisors: reverse start order, `post_stop` of
//! gracefully stopped children, `Shutdown::Brutal` / `Timeout` / `Infinity`,
//! nested supervisors, and auto-shutdown on significant children
//! (DESIGN §3). Timing tests run on tokio's paused clock.

mod common;

use std::time::Duration;

use common::{probe, send, wait_until, Cmd, Log, Probe};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_otp::{
    AutoShutdown, ChildInfo, ChildSpec, ChildStatus, Restart, Shutdown, Strategy, Supervisor,
    SupervisorRef, SupervisorSpec,
};
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Helpers

fn spec_of(children: Vec<ChildSpec>) -> SupervisorSpec {
    children
        .into_iter()
        .fold(SupervisorSpec::new(Strategy::OneForOne), |spec, child| {
            spec.child(child)
        })
}

async fn spawn(spec: SupervisorSpec) -> SupervisorRef {
    Supervisor::spawn(None, spec)
        .await
        .expect("the supervisor starts")
        .0
}

/// Stops a supervisor and waits (bounded) until it has ended.
async fn stop(sup: &SupervisorRef) {
    tokio::time::timeout(
        Duration::from_secs(600),
        sup.cell().stop_and_wait(None, None),
    )
    .await
    .expect("the supervisor stops in bounded time")
    .expect("the supervisor stops");
}

/// A probe child whose `post_stop` takes `delay`.
fn slow(id: &str, log: &Log, delay: Duration) -> ChildSpec {
    ChildSpec::new(id, Probe::new(id, log).slow_stop(delay), || ())
}

async fn children(sup: &SupervisorRef) -> Vec<ChildInfo> {
    sup.which_children()
        .await
        .expect("the supervisor answers which_children")
}

async fn status(sup: &SupervisorRef, id: &str) -> Option<ChildStatus> {
    children(sup)
        .await
        .into_iter()
        .find(|c| c.id == id)
        .map(|c| c.status)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A parent for a supervisor under test: records how its children end as
/// `exit:<reason>` (`exit:normal` without a reason) or `failed:<error>`.
#[derive(Clone)]
struct Watcher {
    log: Log,
}

impl Actor for Watcher {
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
                .log
                .push(format!("exit:{}", reason.as_deref().unwrap_or("normal"))),
            SupervisionEvent::ActorFailed(_, err) => self.log.push(format!("failed:{err}")),
            _ => {}
        }
        Ok(())
    }
}

/// Spawns a supervisor linked to a fresh [`Watcher`]; returns both and the
/// watcher's log.
async fn spawn_watched(spec: SupervisorSpec) -> (SupervisorRef, ActorRef<()>, Log) {
    let exits = Log::new();
    let (watcher, _join) = Actor::spawn(None, Watcher { log: exits.clone() }, ())
        .await
        .expect("the watcher starts");
    let (sup, _join) = Supervisor::spawn_linked(None, spec, watcher.get_cell())
        .await
        .expect("the supervisor starts");
    (sup, watcher, exits)
}

/// Asserts that the supervisor is still running once every pending event
/// has been handled (under the paused clock, a sleep ends only when all
/// other tasks are idle).
async fn assert_still_running(sup: &SupervisorRef, exits: &Log, why: &str) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sup.which_children().await.is_ok(),
        "{why}: it still answers"
    );
    assert!(
        exits.events().is_empty(),
        "{why}: its parent saw no exit, got {:?}",
        exits.events()
    );
}

// ---------------------------------------------------------------------------
// Order and post_stop

#[tokio::test(start_paused = true)]
async fn stopping_the_supervisor_stops_children_in_reverse_start_order_running_each_post_stop() {
    let log = Log::new();
    // Stop delays increasing with start order: stopped in parallel, `a`
    // would finish first; stopped one by one in reverse, `c` finishes first.
    let sup = spawn(spec_of(vec![
        slow("a", &log, Duration::from_millis(10)),
        slow("b", &log, Duration::from_millis(20)),
        slow("c", &log, Duration::from_millis(30)),
    ]))
    .await;
    assert!(log.with_prefix("stop:").is_empty(), "nothing stopped yet");

    stop(&sup).await;

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:c", "stop:b", "stop:a"]),
        "children stop one at a time in reverse start order, each running post_stop"
    );
}

#[tokio::test]
async fn children_started_with_start_child_stop_before_the_earlier_ones() {
    let log = Log::new();
    let sup = spawn(spec_of(vec![probe("a", &log), probe("b", &log)])).await;
    sup.start_child(probe("c", &log)).await.expect("c starts");

    stop(&sup).await;

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:c", "stop:b", "stop:a"]),
        "an appended child is last in start order, so first to stop"
    );
}

// ---------------------------------------------------------------------------
// Shutdown::Brutal

#[tokio::test(start_paused = true)]
async fn a_brutal_child_is_killed_without_post_stop_when_the_supervisor_stops() {
    let log = Log::new();
    let sup = spawn(spec_of(vec![
        probe("a", &log),
        probe("x", &log).shutdown(Shutdown::Brutal),
        probe("c", &log),
    ]))
    .await;

    stop(&sup).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:c", "stop:a"]),
        "the brutal child's post_stop never ran; the others stopped gracefully in reverse order"
    );
}

#[tokio::test(start_paused = true)]
async fn terminate_child_kills_a_brutal_child_without_post_stop() {
    let log = Log::new();
    let sup = spawn(spec_of(vec![probe("x", &log).shutdown(Shutdown::Brutal)])).await;
    let incarnation = sup
        .child::<Cmd>("x")
        .and_then(|c| c.current())
        .expect("x runs");

    sup.terminate_child("x").await.expect("x is terminated");

    assert!(
        incarnation.get_status() == ractor::ActorStatus::Stopped,
        "terminate_child returns once the child has ended"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        log.count("stop:x"),
        0,
        "a brutally killed child runs no post_stop"
    );
    assert_eq!(status(&sup, "x").await, Some(ChildStatus::Stopped));
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// Shutdown::Timeout

#[tokio::test(start_paused = true)]
async fn a_child_slower_than_its_shutdown_timeout_is_killed_after_the_timeout() {
    let log = Log::new();
    let limit = Duration::from_secs(2);
    let sup = spawn(spec_of(vec![
        slow("x", &log, Duration::from_secs(60)).shutdown(Shutdown::Timeout(limit))
    ]))
    .await;

    let started = Instant::now();
    sup.terminate_child("x").await.expect("x is terminated");
    let elapsed = started.elapsed();

    assert!(
        elapsed >= limit && elapsed < limit + Duration::from_millis(100),
        "the child is killed once its shutdown timeout has passed, took {elapsed:?}"
    );
    tokio::time::sleep(Duration::from_secs(120)).await; // past the slow post_stop
    assert_eq!(
        log.count("stop:x"),
        0,
        "the killed child's post_stop was interrupted and never completed"
    );
    assert_eq!(status(&sup, "x").await, Some(ChildStatus::Stopped));
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_faster_than_its_shutdown_timeout_stops_gracefully() {
    let log = Log::new();
    let sup = spawn(spec_of(vec![slow("y", &log, Duration::from_millis(300))
        .shutdown(Shutdown::Timeout(Duration::from_secs(2)))]))
    .await;

    let started = Instant::now();
    sup.terminate_child("y").await.expect("y is terminated");
    let elapsed = started.elapsed();

    assert_eq!(
        log.count("stop:y"),
        1,
        "post_stop completed within the timeout"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "terminate_child waited for post_stop, not for the whole timeout, took {elapsed:?}"
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn on_supervisor_stop_each_child_gets_its_own_shutdown_timeout() {
    let log = Log::new();
    let limit = Duration::from_secs(1);
    let sup = spawn(spec_of(vec![
        slow("quick", &log, Duration::from_millis(500)).shutdown(Shutdown::Timeout(limit)),
        slow("stuck", &log, Duration::from_secs(60)).shutdown(Shutdown::Timeout(limit)),
    ]))
    .await;

    let started = Instant::now();
    stop(&sup).await;
    let elapsed = started.elapsed();

    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:quick"]),
        "the stuck child was killed (no post_stop); the quick one stopped gracefully"
    );
    let expected = limit + Duration::from_millis(500);
    assert!(
        elapsed >= expected && elapsed < expected + Duration::from_millis(100),
        "stop took the stuck child's timeout then the quick child's post_stop, took {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_busy_in_a_handler_longer_than_its_timeout_is_killed_after_the_timeout() {
    let log = Log::new();
    let limit = Duration::from_secs(1);
    let sup = spawn(spec_of(vec![
        probe("x", &log).shutdown(Shutdown::Timeout(limit))
    ]))
    .await;
    send(&sup, "x", Cmd::Sleep(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(1)).await; // x is now in its handler

    let started = Instant::now();
    sup.terminate_child("x").await.expect("x is terminated");
    let elapsed = started.elapsed();

    assert!(
        elapsed >= limit && elapsed < limit + Duration::from_millis(100),
        "a stop request is seen only between messages, so the busy child is killed after the timeout, took {elapsed:?}"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(log.count("stop:x"), 0, "a killed child runs no post_stop");
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// Shutdown::Infinity

#[tokio::test(start_paused = true)]
async fn an_infinity_child_is_waited_for_however_slow_its_post_stop() {
    let log = Log::new();
    // Far beyond the workers' default 5 s timeout, within `stop`'s bound.
    let delay = Duration::from_secs(300);
    let sup = spawn(spec_of(vec![
        probe("a", &log),
        slow("x", &log, delay).shutdown(Shutdown::Infinity),
    ]))
    .await;

    let started = Instant::now();
    stop(&sup).await;
    let elapsed = started.elapsed();

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:x", "stop:a"]),
        "the slow child's post_stop completed, and `a` stopped only after it"
    );
    assert!(
        elapsed >= delay,
        "the supervisor waited for the whole post_stop, took {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn terminate_child_waits_for_an_infinity_child() {
    let log = Log::new();
    let delay = Duration::from_secs(30);
    let sup = spawn(spec_of(vec![
        slow("x", &log, delay).shutdown(Shutdown::Infinity)
    ]))
    .await;

    let started = Instant::now();
    sup.terminate_child("x").await.expect("x is terminated");

    assert!(
        started.elapsed() >= delay,
        "terminate_child waited for post_stop"
    );
    assert_eq!(log.count("stop:x"), 1, "post_stop completed");
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_infinity_child_busy_in_a_handler_is_waited_for_and_then_runs_post_stop() {
    let log = Log::new();
    let busy = Duration::from_secs(30);
    let sup = spawn(spec_of(vec![probe("x", &log).shutdown(Shutdown::Infinity)])).await;
    send(&sup, "x", Cmd::Sleep(busy));
    tokio::time::sleep(Duration::from_millis(1)).await; // x is now in its handler

    let started = Instant::now();
    sup.terminate_child("x").await.expect("x is terminated");

    assert!(
        started.elapsed() >= busy - Duration::from_millis(1),
        "terminate_child waited for the handler to finish, took {:?}",
        started.elapsed()
    );
    assert_eq!(log.count("stop:x"), 1, "post_stop ran after the handler");
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// Nested supervisors

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_stops_its_children_in_order_before_the_parents_earlier_children() {
    let log = Log::new();
    // n1 takes longer to stop than n2: only a sequential, reverse-order
    // stop logs n2 before n1; and the parent must wait (Infinity) for both.
    let nested = spec_of(vec![
        slow("n1", &log, Duration::from_secs(3)),
        slow("n2", &log, Duration::from_secs(1)),
    ]);
    let sup = spawn(spec_of(vec![
        probe("a", &log),
        ChildSpec::supervisor("n", nested), // Shutdown::Infinity by default
        probe("b", &log),
    ]))
    .await;

    stop(&sup).await;

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:b", "stop:n2", "stop:n1", "stop:a"]),
        "the nested supervisor stops its children in reverse order before `a` stops"
    );
}

#[tokio::test(start_paused = true)]
async fn terminate_child_of_a_nested_supervisor_stops_its_children_in_reverse_order() {
    let log = Log::new();
    let nested = spec_of(vec![
        slow("n1", &log, Duration::from_secs(2)),
        slow("n2", &log, Duration::from_secs(1)),
    ]);
    let sup = spawn(spec_of(vec![
        probe("a", &log),
        ChildSpec::supervisor("n", nested),
    ]))
    .await;

    sup.terminate_child("n").await.expect("n is terminated");

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:n2", "stop:n1"]),
        "terminate_child waited for the nested supervisor's ordered shutdown; `a` is untouched"
    );
    assert_eq!(status(&sup, "n").await, Some(ChildStatus::Stopped));
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Running));
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_brutal_nested_supervisor_is_killed_with_its_subtree_without_post_stop() {
    let log = Log::new();
    let nested = spec_of(vec![probe("n1", &log), probe("n2", &log)]);
    let sup = spawn(spec_of(vec![
        probe("a", &log),
        ChildSpec::supervisor("n", nested).shutdown(Shutdown::Brutal),
    ]))
    .await;
    let grandchild = sup
        .supervisor_child("n")
        .and_then(|n| n.child::<Cmd>("n1"))
        .and_then(|c| c.current())
        .expect("n1 runs");

    stop(&sup).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:a"]),
        "killing a supervisor kills its subtree at once, without post_stop"
    );
    assert_eq!(
        grandchild.get_status(),
        ractor::ActorStatus::Stopped,
        "no grandchild outlives the killed supervisor"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_supervisor_stops_its_children_in_parallel() {
    let log = Log::new();
    let (dynamic, _join) =
        ractor_otp::DynamicSupervisor::spawn(None, ractor_otp::DynamicSpec::new())
            .await
            .expect("the dynamic supervisor starts");
    let delay = Duration::from_secs(1);
    for id in ["d1", "d2", "d3"] {
        dynamic
            .start_child(slow(id, &log, delay))
            .await
            .expect("a child starts");
    }

    let started = Instant::now();
    let cell = dynamic.cell().expect("the dynamic supervisor runs");
    tokio::time::timeout(Duration::from_secs(600), cell.stop_and_wait(None, None))
        .await
        .expect("the dynamic supervisor stops in bounded time")
        .expect("the dynamic supervisor stops");
    let elapsed = started.elapsed();

    assert_eq!(
        log.with_prefix("stop:").len(),
        3,
        "every child's post_stop ran"
    );
    assert!(
        elapsed >= delay && elapsed < 2 * delay,
        "three 1 s post_stops overlapped rather than ran one after another, took {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------
// Significant children and auto-shutdown

#[tokio::test(start_paused = true)]
async fn under_any_significant_a_significant_child_ending_normally_shuts_the_supervisor_down() {
    let log = Log::new();
    let spec = spec_of(vec![
        probe("a", &log),
        probe("s", &log)
            .restart(Restart::Transient)
            .significant(true),
        probe("b", &log),
    ])
    .auto_shutdown(AutoShutdown::AnySignificant);
    let (sup, watcher, exits) = spawn_watched(spec).await;

    send(&sup, "s", Cmd::Stop(None));

    wait_until("the supervisor's parent sees it end", || async {
        !exits.events().is_empty()
    })
    .await;
    assert_eq!(
        exits.events(),
        strings(&["exit:shutdown"]),
        "the supervisor stopped itself with reason shutdown (a normal exit for its parent)"
    );
    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:s", "stop:b", "stop:a"]),
        "the other children stopped gracefully in reverse start order"
    );
    assert_eq!(
        log.count("start:s"),
        1,
        "the significant child was not restarted"
    );
    watcher.stop(None);
}

#[tokio::test(start_paused = true)]
async fn under_any_significant_a_temporary_significant_child_that_fails_shuts_the_supervisor_down()
{
    let log = Log::new();
    let spec = spec_of(vec![
        probe("a", &log),
        probe("t", &log)
            .restart(Restart::Temporary)
            .significant(true),
    ])
    .auto_shutdown(AutoShutdown::AnySignificant);
    let (sup, watcher, exits) = spawn_watched(spec).await;

    send(&sup, "t", Cmd::Fail);

    wait_until("the supervisor's parent sees it end", || async {
        !exits.events().is_empty()
    })
    .await;
    assert_eq!(exits.events(), strings(&["exit:shutdown"]));
    assert_eq!(
        log.count("stop:a"),
        1,
        "the remaining child stopped gracefully"
    );
    watcher.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_significant_transient_child_that_fails_is_restarted_without_shutting_down() {
    let log = Log::new();
    let spec = spec_of(vec![
        probe("a", &log),
        probe("s", &log)
            .restart(Restart::Transient)
            .significant(true),
    ])
    .auto_shutdown(AutoShutdown::AnySignificant);
    let (sup, watcher, exits) = spawn_watched(spec).await;

    send(&sup, "s", Cmd::Fail);

    wait_until("s is restarted", || async { log.count("start:s") == 2 }).await;
    assert_still_running(
        &sup,
        &exits,
        "a restarted significant child has not ended for good",
    )
    .await;
    assert_eq!(status(&sup, "s").await, Some(ChildStatus::Running));
    stop(&sup).await;
    watcher.stop(None);
}

#[tokio::test(start_paused = true)]
async fn under_all_significant_the_supervisor_shuts_down_only_after_the_last_significant_child_ends(
) {
    let log = Log::new();
    let spec = spec_of(vec![
        probe("a", &log),
        probe("s1", &log)
            .restart(Restart::Transient)
            .significant(true),
        probe("s2", &log)
            .restart(Restart::Transient)
            .significant(true),
        probe("b", &log),
    ])
    .auto_shutdown(AutoShutdown::AllSignificant);
    let (sup, watcher, exits) = spawn_watched(spec).await;

    send(&sup, "s1", Cmd::Stop(None));
    wait_until("s1 has ended for good", || async {
        status(&sup, "s1").await == Some(ChildStatus::Stopped)
    })
    .await;
    assert_still_running(&sup, &exits, "one significant child is still running").await;
    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:s1"]),
        "no other child was stopped"
    );

    send(&sup, "s2", Cmd::Stop(None));
    wait_until("the supervisor's parent sees it end", || async {
        !exits.events().is_empty()
    })
    .await;
    assert_eq!(
        exits.events(),
        strings(&["exit:shutdown"]),
        "after the last significant child ended, the supervisor shut down"
    );
    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:s1", "stop:s2", "stop:b", "stop:a"]),
        "the remaining children stopped in reverse start order"
    );
    watcher.stop(None);
}

#[tokio::test(start_paused = true)]
async fn auto_shutdown_never_ignores_significant_children() {
    let log = Log::new();
    let spec = spec_of(vec![
        probe("a", &log),
        probe("s", &log)
            .restart(Restart::Transient)
            .significant(true),
    ]); // AutoShutdown::Never is the default
    let (sup, watcher, exits) = spawn_watched(spec).await;

    send(&sup, "s", Cmd::Stop(None));
    wait_until("s has ended for good", || async {
        status(&sup, "s").await == Some(ChildStatus::Stopped)
    })
    .await;

    assert_still_running(&sup, &exits, "AutoShutdown::Never ignores significance").await;
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Running));
    stop(&sup).await;
    watcher.stop(None);
}

#[tokio::test(start_paused = true)]
async fn terminate_child_of_a_significant_child_does_not_trigger_auto_shutdown() {
    let log = Log::new();
    let spec = spec_of(vec![
        probe("a", &log),
        probe("s", &log)
            .restart(Restart::Transient)
            .significant(true),
    ])
    .auto_shutdown(AutoShutdown::AnySignificant);
    let (sup, watcher, exits) = spawn_watched(spec).await;

    sup.terminate_child("s").await.expect("s is terminated");

    assert_still_running(&sup, &exits, "terminate_child never triggers auto-shutdown").await;
    assert_eq!(status(&sup, "s").await, Some(ChildStatus::Stopped));
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Running));
    stop(&sup).await;
    watcher.stop(None);
}
