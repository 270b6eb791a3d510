//! Stopping children and supervisors: reverse start order, `post_stop` of
//! gracefully stopped children, `Shutdown::Brutal` / `Timeout` / `Infinity`,
//! nested supervisors, and auto-shutdown on significant children
//! (DESIGN §3). Timing tests run on tokio's paused clock.

mod common;

use std::time::Duration;

use common::{
    one_for_one, probe, send, slow, spawn, spawn_dynamic, status, stop, stop_dynamic, strings,
    wait_until, Cmd, Linked, Log,
};
use ractor_otp::{
    AutoShutdown, ChildSpec, ChildStatus, DynamicSpec, Restart, Shutdown, SupervisorRef,
};
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Helpers

/// Terminates child `id` and returns how long `terminate_child` took.
async fn timed_terminate(sup: &SupervisorRef, id: &str) -> Duration {
    let started = Instant::now();
    sup.terminate_child(id)
        .await
        .unwrap_or_else(|e| panic!("{id} is terminated: {e:?}"));
    started.elapsed()
}

/// Stops the supervisor and returns how long stopping it took.
async fn timed_stop(sup: &SupervisorRef) -> Duration {
    let started = Instant::now();
    stop(sup).await;
    started.elapsed()
}

/// A transient child that is significant for auto-shutdown.
fn significant_transient(id: &str, log: &Log) -> ChildSpec {
    probe(id, log).restart(Restart::Transient).significant(true)
}

/// Asserts that the supervisor is still running once every pending event
/// has been handled (under the paused clock, a sleep ends only when all
/// other tasks are idle).
async fn assert_still_running(linked: &Linked, why: &str) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        linked.sup.which_children().await.is_ok(),
        "{why}: it still answers"
    );
    assert!(
        linked.exits().is_empty(),
        "{why}: its parent saw no exit, got {:?}",
        linked.exits()
    );
}

// ---------------------------------------------------------------------------
// Order and post_stop

#[tokio::test(start_paused = true)]
async fn stopping_the_supervisor_stops_children_in_reverse_start_order_running_each_post_stop() {
    let log = Log::new();
    // Stop delays increasing with start order: stopped in parallel, `a`
    // would finish first; stopped one by one in reverse, `c` finishes first.
    let sup = spawn(one_for_one(vec![
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
    let sup = spawn(one_for_one(vec![probe("a", &log), probe("b", &log)])).await;
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
    let sup = spawn(one_for_one(vec![
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
    let sup = spawn(one_for_one(vec![
        probe("x", &log).shutdown(Shutdown::Brutal)
    ]))
    .await;
    let incarnation = sup
        .child::<Cmd>("x")
        .ok()
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
    let sup = spawn(one_for_one(vec![
        slow("x", &log, Duration::from_secs(60)).shutdown(Shutdown::Timeout(limit))
    ]))
    .await;

    let elapsed = timed_terminate(&sup, "x").await;

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
    let limit = Duration::from_secs(2);
    let sup = spawn(one_for_one(vec![slow(
        "y",
        &log,
        Duration::from_millis(300),
    )
    .shutdown(Shutdown::Timeout(limit))]))
    .await;

    let elapsed = timed_terminate(&sup, "y").await;

    assert_eq!(
        log.count("stop:y"),
        1,
        "post_stop completed within the timeout"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < limit,
        "terminate_child waited for post_stop, not for the whole timeout, took {elapsed:?}"
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn on_supervisor_stop_each_child_gets_its_own_shutdown_timeout() {
    let log = Log::new();
    let limit = Duration::from_secs(1);
    let sup = spawn(one_for_one(vec![
        slow("quick", &log, Duration::from_millis(500)).shutdown(Shutdown::Timeout(limit)),
        slow("stuck", &log, Duration::from_secs(60)).shutdown(Shutdown::Timeout(limit)),
    ]))
    .await;

    let elapsed = timed_stop(&sup).await;

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
    let sup = spawn(one_for_one(vec![
        probe("x", &log).shutdown(Shutdown::Timeout(limit))
    ]))
    .await;
    send(&sup, "x", Cmd::Sleep(Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(1)).await; // x is now in its handler

    let elapsed = timed_terminate(&sup, "x").await;

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
    let sup = spawn(one_for_one(vec![
        probe("a", &log),
        slow("x", &log, delay).shutdown(Shutdown::Infinity),
    ]))
    .await;

    let elapsed = timed_stop(&sup).await;

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
    let sup = spawn(one_for_one(vec![
        slow("x", &log, delay).shutdown(Shutdown::Infinity)
    ]))
    .await;

    let elapsed = timed_terminate(&sup, "x").await;

    assert!(
        elapsed >= delay,
        "terminate_child waited for post_stop, took {elapsed:?}"
    );
    assert_eq!(log.count("stop:x"), 1, "post_stop completed");
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn an_infinity_child_busy_in_a_handler_is_waited_for_and_then_runs_post_stop() {
    let log = Log::new();
    let busy = Duration::from_secs(30);
    let sup = spawn(one_for_one(vec![
        probe("x", &log).shutdown(Shutdown::Infinity)
    ]))
    .await;
    send(&sup, "x", Cmd::Sleep(busy));
    tokio::time::sleep(Duration::from_millis(1)).await; // x is now in its handler

    let elapsed = timed_terminate(&sup, "x").await;

    assert!(
        elapsed >= busy - Duration::from_millis(1),
        "terminate_child waited for the handler to finish, took {elapsed:?}"
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
    let nested = one_for_one(vec![
        slow("n1", &log, Duration::from_secs(3)),
        slow("n2", &log, Duration::from_secs(1)),
    ]);
    let sup = spawn(one_for_one(vec![
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
    let nested = one_for_one(vec![
        slow("n1", &log, Duration::from_secs(2)),
        slow("n2", &log, Duration::from_secs(1)),
    ]);
    let sup = spawn(one_for_one(vec![
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
    let nested = one_for_one(vec![probe("n1", &log), probe("n2", &log)]);
    let sup = spawn(one_for_one(vec![
        probe("a", &log),
        ChildSpec::supervisor("n", nested).shutdown(Shutdown::Brutal),
    ]))
    .await;
    let grandchild = sup
        .supervisor_child("n")
        .and_then(|n| n.child::<Cmd>("n1").ok())
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
    let dynamic = spawn_dynamic(DynamicSpec::new()).await;
    let delay = Duration::from_secs(1);
    for id in ["d1", "d2", "d3"] {
        dynamic
            .start_child(slow(id, &log, delay))
            .await
            .expect("a child starts");
    }

    let started = Instant::now();
    stop_dynamic(&dynamic).await;
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
    let spec = one_for_one(vec![
        probe("a", &log),
        significant_transient("s", &log),
        probe("b", &log),
    ])
    .auto_shutdown(AutoShutdown::AnySignificant);
    let linked = Linked::spawn(spec).await;

    send(&linked.sup, "s", Cmd::Stop(None));

    assert_eq!(
        linked.wait_exit().await,
        "exit:shutdown",
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
    linked.parent.stop(None);
}

#[tokio::test(start_paused = true)]
async fn under_any_significant_a_temporary_significant_child_that_fails_shuts_the_supervisor_down()
{
    let log = Log::new();
    let spec = one_for_one(vec![
        probe("a", &log),
        probe("t", &log)
            .restart(Restart::Temporary)
            .significant(true),
    ])
    .auto_shutdown(AutoShutdown::AnySignificant);
    let linked = Linked::spawn(spec).await;

    send(&linked.sup, "t", Cmd::Fail);

    assert_eq!(linked.wait_exit().await, "exit:shutdown");
    assert_eq!(
        log.count("stop:a"),
        1,
        "the remaining child stopped gracefully"
    );
    linked.parent.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_significant_transient_child_that_fails_is_restarted_without_shutting_down() {
    let log = Log::new();
    let spec = one_for_one(vec![probe("a", &log), significant_transient("s", &log)])
        .auto_shutdown(AutoShutdown::AnySignificant);
    let linked = Linked::spawn(spec).await;

    send(&linked.sup, "s", Cmd::Fail);

    wait_until("s is restarted", || async { log.count("start:s") == 2 }).await;
    assert_still_running(
        &linked,
        "a restarted significant child has not ended for good",
    )
    .await;
    assert_eq!(status(&linked.sup, "s").await, Some(ChildStatus::Running));
    linked.stop().await;
}

#[tokio::test(start_paused = true)]
async fn under_all_significant_the_supervisor_shuts_down_only_after_the_last_significant_child_ends(
) {
    let log = Log::new();
    let spec = one_for_one(vec![
        probe("a", &log),
        significant_transient("s1", &log),
        significant_transient("s2", &log),
        probe("b", &log),
    ])
    .auto_shutdown(AutoShutdown::AllSignificant);
    let linked = Linked::spawn(spec).await;
    let sup = &linked.sup;

    send(sup, "s1", Cmd::Stop(None));
    wait_until("s1 has ended for good", || async {
        status(sup, "s1").await == Some(ChildStatus::Stopped)
    })
    .await;
    assert_still_running(&linked, "one significant child is still running").await;
    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:s1"]),
        "no other child was stopped"
    );

    send(sup, "s2", Cmd::Stop(None));
    assert_eq!(
        linked.wait_exit().await,
        "exit:shutdown",
        "after the last significant child ended, the supervisor shut down"
    );
    assert_eq!(
        log.with_prefix("stop:"),
        strings(&["stop:s1", "stop:s2", "stop:b", "stop:a"]),
        "the remaining children stopped in reverse start order"
    );
    linked.parent.stop(None);
}

#[tokio::test(start_paused = true)]
async fn auto_shutdown_never_ignores_significant_children() {
    let log = Log::new();
    let spec = one_for_one(vec![probe("a", &log), significant_transient("s", &log)]);
    // AutoShutdown::Never is the default
    let linked = Linked::spawn(spec).await;
    let sup = &linked.sup;

    send(sup, "s", Cmd::Stop(None));
    wait_until("s has ended for good", || async {
        status(sup, "s").await == Some(ChildStatus::Stopped)
    })
    .await;

    assert_still_running(&linked, "AutoShutdown::Never ignores significance").await;
    assert_eq!(status(sup, "a").await, Some(ChildStatus::Running));
    linked.stop().await;
}

#[tokio::test(start_paused = true)]
async fn terminate_child_of_a_significant_child_does_not_trigger_auto_shutdown() {
    let log = Log::new();
    let spec = one_for_one(vec![probe("a", &log), significant_transient("s", &log)])
        .auto_shutdown(AutoShutdown::AnySignificant);
    let linked = Linked::spawn(spec).await;
    let sup = &linked.sup;

    sup.terminate_child("s").await.expect("s is terminated");

    assert_still_running(&linked, "terminate_child never triggers auto-shutdown").await;
    assert_eq!(status(sup, "s").await, Some(ChildStatus::Stopped));
    assert_eq!(status(sup, "a").await, Some(ChildStatus::Running));
    linked.stop().await;
}
