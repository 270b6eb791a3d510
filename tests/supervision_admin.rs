//! Administration of running supervisors: OTP's `start_child`,
//! `terminate_child`, `restart_child`, `delete_child`, `which_children` and
//! `count_children` with every error case, spec validation before anything
//! starts, failed starts at spawn time, `DynamicSupervisor`, `render_tree`
//! and handles to nested dynamic supervisors (DESIGN §3).

mod common;

use std::time::Duration;

use common::{
    children, current_id, ids, one_for_one, probe, send, spawn, spawn_dynamic, status, stop,
    stop_dynamic, strings, wait_until, Cmd, Log, Probe,
};
use ractor::{ActorCell, ActorRef};
use ractor_otp::{
    Backoff, ChildCounts, ChildKind, ChildSpec, ChildStatus, DynamicSpec, DynamicSupervisor,
    Restart, Supervisor, SupervisorError,
};

// ---------------------------------------------------------------------------
// Helpers

/// A probe child whose every start fails: its argument factory, which runs
/// right before its `pre_start`, arms the log's start failure.
fn refusing_probe(id: &str, log: &Log) -> ChildSpec {
    let arm = log.clone();
    ChildSpec::new(id, Probe::new(id, log), move || arm.fail_next_starts(1))
}

// ---------------------------------------------------------------------------
// start_child

#[tokio::test]
async fn start_child_starts_a_new_child_at_the_end_of_the_start_order() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;

    let cell = sup
        .start_child(probe("b", &log))
        .await
        .expect("a new id is accepted")
        .expect("start_child returns the started incarnation");

    assert_eq!(ids(&sup).await, strings(&["a", "b"]), "b is appended");
    assert_eq!(
        current_id(&sup, "b").await,
        Some(cell.get_id()),
        "which_children reports the incarnation start_child returned"
    );
    assert_eq!(log.count("start:b"), 1, "b started exactly once");
    assert!(sup.child::<Cmd>("b").is_ok(), "b can be reached by id");
    stop(&sup).await;
}

#[tokio::test]
async fn start_child_with_the_id_of_a_running_child_fails_with_running() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    let before = current_id(&sup, "a").await;

    let result = sup.start_child(probe("a", &log)).await;

    assert_eq!(result, Err(SupervisorError::Running("a".into())));
    assert_eq!(log.count("start:a"), 1, "no second `a` was started");
    assert_eq!(
        current_id(&sup, "a").await,
        before,
        "the running `a` is untouched"
    );
    stop(&sup).await;
}

#[tokio::test]
async fn start_child_with_the_id_of_a_stopped_child_fails_with_already_present() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    sup.terminate_child("a").await.expect("a is terminated");

    let result = sup.start_child(probe("a", &log)).await;

    assert_eq!(result, Err(SupervisorError::AlreadyPresent("a".into())));
    assert_eq!(log.count("start:a"), 1, "the stopped `a` was not started");
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Stopped));
    stop(&sup).await;
}

#[tokio::test]
async fn start_child_whose_pre_start_fails_reports_failed_to_start_and_keeps_no_spec() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;

    log.fail_next_starts(1);
    let result = sup.start_child(probe("x", &log)).await;

    match result {
        Err(SupervisorError::FailedToStart { id, reason }) => {
            assert_eq!(id, "x", "the error names the child that failed");
            assert!(
                reason.contains("x refused to start"),
                "the error carries the start error, got {reason:?}"
            );
        }
        other => panic!("expected FailedToStart, got {other:?}"),
    }
    assert_eq!(
        ids(&sup).await,
        strings(&["a"]),
        "the failed spec is not kept"
    );
    assert!(
        matches!(
            sup.child::<Cmd>("x"),
            Err(ractor_otp::ChildLookupError::NotFound(_))
        ),
        "no handle to a child that never was"
    );
    sup.start_child(probe("x", &log))
        .await
        .expect("the id is free again: the failed spec was not kept");
    assert_eq!(status(&sup, "x").await, Some(ChildStatus::Running));
    stop(&sup).await;
}

#[tokio::test]
async fn start_child_with_an_invalid_spec_is_refused_without_starting_it() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;

    let result = sup
        .start_child(probe("s", &log).significant(true)) // permanent by default
        .await;

    assert!(
        matches!(
            result,
            Err(SupervisorError::InvalidSpec {
                field: "significant",
                ..
            })
        ),
        "a significant permanent child is refused, got {result:?}"
    );
    assert_eq!(log.count("start:s"), 0, "the invalid child never started");
    assert_eq!(ids(&sup).await, strings(&["a"]));
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// terminate_child

#[tokio::test]
async fn terminate_child_stops_the_child_and_keeps_its_spec_as_stopped() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log), probe("b", &log)])).await;
    let handle = sup.child::<Cmd>("a").expect("a handle to a");

    sup.terminate_child("a").await.expect("a is terminated");

    assert_eq!(log.count("stop:a"), 1, "a's post_stop ran (graceful stop)");
    let a = children(&sup)
        .await
        .into_iter()
        .find(|c| c.id == "a")
        .expect("a terminated child keeps its spec");
    assert_eq!(a.status, ChildStatus::Stopped);
    assert_eq!(a.actor, None, "a stopped child has no incarnation");
    assert!(
        handle.current().is_none(),
        "the ChildRef sees no incarnation"
    );
    assert_eq!(
        status(&sup, "b").await,
        Some(ChildStatus::Running),
        "b is unaffected"
    );
    assert_eq!(
        log.count("start:a"),
        1,
        "a terminated child is not restarted"
    );
    sup.terminate_child("a")
        .await
        .expect("terminating a stopped child again is fine");
    stop(&sup).await;
}

#[tokio::test]
async fn terminate_child_of_an_unknown_id_fails_with_not_found() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;

    assert_eq!(
        sup.terminate_child("nope").await,
        Err(SupervisorError::NotFound("nope".into()))
    );
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Running));
    stop(&sup).await;
}

#[tokio::test]
async fn terminating_a_temporary_child_drops_its_spec() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![
        probe("a", &log),
        probe("t", &log).restart(Restart::Temporary),
    ]))
    .await;

    sup.terminate_child("t").await.expect("t is terminated");

    assert_eq!(log.count("stop:t"), 1, "t stopped gracefully");
    assert_eq!(
        ids(&sup).await,
        strings(&["a"]),
        "a temporary child's spec is dropped"
    );
    assert_eq!(
        sup.restart_child("t").await,
        Err(SupervisorError::NotFound("t".into())),
        "a dropped spec cannot be restarted"
    );
    assert!(matches!(
        sup.child::<Cmd>("t"),
        Err(ractor_otp::ChildLookupError::NotFound(_))
    ));
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// restart_child

#[tokio::test]
async fn restart_child_of_a_stopped_child_starts_a_new_incarnation() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    let first = current_id(&sup, "a").await.expect("a runs");
    let handle = sup.child::<Cmd>("a").expect("a handle to a");
    sup.terminate_child("a").await.expect("a is terminated");

    let cell = sup
        .restart_child("a")
        .await
        .expect("a stopped child restarts");

    assert_ne!(cell.get_id(), first, "a new incarnation");
    assert_eq!(current_id(&sup, "a").await, Some(cell.get_id()));
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Running));
    assert_eq!(log.count("start:a"), 2, "a started twice");
    assert_eq!(
        handle.current().map(|r| r.get_id()),
        Some(cell.get_id()),
        "an older ChildRef follows the new incarnation"
    );
    stop(&sup).await;
}

#[tokio::test]
async fn restart_child_of_a_running_child_fails_with_running() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    let first = current_id(&sup, "a").await;

    assert_eq!(
        sup.restart_child("a").await,
        Err(SupervisorError::Running("a".into()))
    );
    assert_eq!(
        current_id(&sup, "a").await,
        first,
        "the running `a` is untouched"
    );
    assert_eq!(log.count("start:a"), 1);
    stop(&sup).await;
}

#[tokio::test]
async fn restart_child_whose_pre_start_fails_reports_failed_to_start_and_keeps_the_child_stopped() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    sup.terminate_child("a").await.expect("a is terminated");

    log.fail_next_starts(1);
    let result = sup.restart_child("a").await.map(|_| ());

    assert_eq!(
        result,
        Err(SupervisorError::FailedToStart {
            id: "a".into(),
            reason: "a refused to start".into(),
        })
    );
    assert_eq!(
        status(&sup, "a").await,
        Some(ChildStatus::Stopped),
        "the spec is kept, still stopped"
    );
    sup.restart_child("a")
        .await
        .expect("a later restart_child works");
    assert_eq!(status(&sup, "a").await, Some(ChildStatus::Running));
    stop(&sup).await;
}

#[tokio::test]
async fn restart_child_and_delete_child_of_an_unknown_id_fail_with_not_found() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;

    assert_eq!(
        sup.restart_child("nope").await,
        Err(SupervisorError::NotFound("nope".into()))
    );
    assert_eq!(
        sup.delete_child("nope").await,
        Err(SupervisorError::NotFound("nope".into()))
    );
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn a_child_waiting_for_its_backoff_is_restarting_and_refuses_restart_delete_and_start() {
    let log = Log::new();
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
    let sup = spawn(one_for_one(vec![probe("r", &log).backoff(backoff)])).await;
    let first = current_id(&sup, "r").await.expect("r runs");

    send(&sup, "r", Cmd::Fail);
    wait_until("r waits for its backoff", || async {
        status(&sup, "r").await == Some(ChildStatus::Restarting)
    })
    .await;

    assert_eq!(
        sup.restart_child("r").await,
        Err(SupervisorError::Restarting("r".into())),
        "a child waiting for its backoff cannot be restarted by hand"
    );
    assert_eq!(
        sup.delete_child("r").await,
        Err(SupervisorError::Restarting("r".into())),
        "a restarting child cannot be deleted"
    );
    assert_eq!(
        sup.start_child(probe("r", &log)).await,
        Err(SupervisorError::AlreadyPresent("r".into())),
        "a restarting child's id is present"
    );
    assert_eq!(
        log.count("start:r"),
        1,
        "nothing started during the backoff"
    );

    wait_until("r is restarted after its backoff", || async {
        status(&sup, "r").await == Some(ChildStatus::Running)
    })
    .await;
    assert_ne!(
        current_id(&sup, "r").await,
        Some(first),
        "a new incarnation"
    );
    assert_eq!(log.count("start:r"), 2);
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn terminate_child_of_a_child_waiting_for_its_backoff_cancels_the_restart() {
    let log = Log::new();
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
    let sup = spawn(one_for_one(vec![probe("r", &log).backoff(backoff)])).await;

    send(&sup, "r", Cmd::Fail);
    wait_until("r waits for its backoff", || async {
        status(&sup, "r").await == Some(ChildStatus::Restarting)
    })
    .await;
    sup.terminate_child("r")
        .await
        .expect("a restarting child can be terminated");

    tokio::time::sleep(Duration::from_secs(10)).await; // well past the backoff
    assert_eq!(status(&sup, "r").await, Some(ChildStatus::Stopped));
    assert_eq!(log.count("start:r"), 1, "the pending restart was cancelled");
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// delete_child

#[tokio::test]
async fn delete_child_of_a_running_child_fails_with_running() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;

    assert_eq!(
        sup.delete_child("a").await,
        Err(SupervisorError::Running("a".into()))
    );
    assert_eq!(
        status(&sup, "a").await,
        Some(ChildStatus::Running),
        "a still runs"
    );
    stop(&sup).await;
}

#[tokio::test]
async fn delete_child_of_a_stopped_child_removes_it_from_which_children() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log), probe("b", &log)])).await;
    sup.terminate_child("a").await.expect("a is terminated");

    sup.delete_child("a")
        .await
        .expect("a stopped child can be deleted");

    assert_eq!(ids(&sup).await, strings(&["b"]), "a is no longer listed");
    assert_eq!(
        sup.restart_child("a").await,
        Err(SupervisorError::NotFound("a".into())),
        "a deleted child cannot be restarted"
    );
    sup.start_child(probe("a", &log))
        .await
        .expect("a deleted child's id can be used again");
    assert_eq!(
        ids(&sup).await,
        strings(&["b", "a"]),
        "a child added again goes to the end"
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// which_children, count_children

#[tokio::test]
async fn which_children_lists_children_in_start_order_including_appended_ones() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![
        probe("c", &log),
        probe("a", &log),
        probe("b", &log),
    ]))
    .await;
    assert_eq!(
        ids(&sup).await,
        strings(&["c", "a", "b"]),
        "spec order, not alphabetical"
    );
    assert_eq!(
        log.with_prefix("start:"),
        strings(&["start:c", "start:a", "start:b"]),
        "children started in spec order"
    );

    sup.start_child(probe("e", &log)).await.expect("e starts");
    sup.start_child(probe("d", &log)).await.expect("d starts");
    assert_eq!(ids(&sup).await, strings(&["c", "a", "b", "e", "d"]));

    sup.terminate_child("a").await.expect("a is terminated");
    sup.restart_child("a").await.expect("a restarts");
    assert_eq!(
        ids(&sup).await,
        strings(&["c", "a", "b", "e", "d"]),
        "a restarted child keeps its place"
    );
    assert!(
        children(&sup)
            .await
            .iter()
            .all(|c| c.status == ChildStatus::Running && c.actor.is_some()),
        "every child runs with an incarnation"
    );
    stop(&sup).await;
}

#[tokio::test]
async fn count_children_counts_specs_active_supervisors_and_workers() {
    let log = Log::new();
    let nested = one_for_one(vec![probe("n1", &log), probe("n2", &log)]);
    let sup = spawn(one_for_one(vec![
        probe("a", &log),
        probe("b", &log),
        ChildSpec::supervisor("n", nested),
    ]))
    .await;
    assert_eq!(
        sup.count_children().await,
        Ok(ChildCounts {
            specs: 3,
            active: 3,
            supervisors: 1,
            workers: 2,
        }),
        "direct children only; the nested supervisor's children are not counted"
    );

    sup.terminate_child("b").await.expect("b is terminated");

    assert_eq!(
        sup.count_children().await,
        Ok(ChildCounts {
            specs: 3,
            active: 2,
            supervisors: 1,
            workers: 2,
        }),
        "a stopped child counts as a spec and a worker but not as active"
    );
    let kinds: Vec<ChildKind> = children(&sup).await.into_iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![ChildKind::Worker, ChildKind::Worker, ChildKind::Supervisor]
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// Spec validation

#[tokio::test]
async fn a_spec_with_a_duplicate_child_id_is_refused_before_any_child_starts() {
    let log = Log::new();
    let spec = one_for_one(vec![probe("a", &log), probe("b", &log), probe("a", &log)]);

    let result = Supervisor::spawn(None, spec).await.map(|_| ());

    assert_eq!(result, Err(SupervisorError::DuplicateChildId("a".into())));
    assert!(
        log.events().is_empty(),
        "no child started: {:?}",
        log.events()
    );
}

#[tokio::test]
async fn a_spec_with_a_zero_period_is_refused_before_any_child_starts() {
    let log = Log::new();
    let spec = one_for_one(vec![probe("a", &log)]).intensity(3, Duration::ZERO);

    let result = Supervisor::spawn(None, spec).await.map(|_| ());

    assert!(
        matches!(
            result,
            Err(SupervisorError::InvalidSpec {
                child: None,
                field: "period",
                ..
            })
        ),
        "a zero period is refused, got {result:?}"
    );
    assert!(
        log.events().is_empty(),
        "no child started: {:?}",
        log.events()
    );
}

#[tokio::test]
async fn a_significant_permanent_child_is_refused_before_any_child_starts() {
    let log = Log::new();
    let spec = one_for_one(vec![
        probe("a", &log),
        probe("s", &log).significant(true), // permanent by default
    ]);

    let result = Supervisor::spawn(None, spec).await.map(|_| ());

    match result {
        Err(SupervisorError::InvalidSpec { child, field, .. }) => {
            assert_eq!(field, "significant");
            assert_eq!(child.as_deref(), Some("s"), "the error names the child");
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    assert!(
        log.events().is_empty(),
        "no child started: {:?}",
        log.events()
    );
}

#[tokio::test]
async fn a_dynamic_spec_with_a_zero_period_is_refused() {
    let result = DynamicSupervisor::spawn(None, DynamicSpec::new().intensity(1, Duration::ZERO))
        .await
        .map(|_| ());

    assert!(
        matches!(
            result,
            Err(SupervisorError::InvalidSpec {
                field: "period",
                ..
            })
        ),
        "a zero period is refused, got {result:?}"
    );
}

// ---------------------------------------------------------------------------
// Start failure at spawn

#[tokio::test]
async fn when_the_third_of_four_children_fails_to_start_spawn_fails_and_the_started_ones_stop_in_reverse(
) {
    let log = Log::new();
    let spec = one_for_one(vec![
        probe("a", &log),
        probe("b", &log),
        refusing_probe("c", &log),
        probe("d", &log),
    ]);

    let result = Supervisor::spawn(None, spec).await.map(|_| ());

    match result {
        Err(SupervisorError::FailedToStart { id, reason }) => {
            assert_eq!(id, "c", "the error names the child that failed");
            assert!(
                reason.contains("c refused to start"),
                "the error carries c's start error, got {reason:?}"
            );
        }
        other => panic!("expected FailedToStart, got {other:?}"),
    }
    assert_eq!(
        log.events(),
        strings(&["start:a", "start:b", "start_failed:c", "stop:b", "stop:a"]),
        "a and b started, c failed, then b and a stopped in reverse order; d never started"
    );
}

// ---------------------------------------------------------------------------
// DynamicSupervisor

#[tokio::test]
async fn a_dynamic_supervisor_starts_and_terminates_children_by_actor() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new()).await;

    let first = sup.start_child(probe("w", &log)).await.expect("w starts");
    let second = sup
        .start_child(probe("w", &log))
        .await
        .expect("ids need not be unique in a dynamic supervisor");
    assert_eq!(log.count("start:w"), 2);
    assert_eq!(
        sup.count_children().await.map(|c| (c.specs, c.active)),
        Ok((2, 2))
    );

    sup.terminate_child(&first)
        .await
        .expect("the first child is terminated");

    assert_eq!(
        log.count("stop:w"),
        1,
        "the terminated child stopped gracefully"
    );
    let left: Vec<_> = sup
        .which_children()
        .await
        .expect("which_children")
        .into_iter()
        .map(|c| c.actor.map(|a| a.get_id()))
        .collect();
    assert_eq!(
        left,
        vec![Some(second.get_id())],
        "a terminated dynamic child is removed; the other still runs"
    );
    assert_eq!(
        sup.terminate_child(&first).await,
        Err(SupervisorError::NotFound(format!(
            "actor {}",
            first.get_id()
        ))),
        "an incarnation that is no longer a child is not found"
    );
    stop_dynamic(&sup).await;
    assert_eq!(
        log.count("stop:w"),
        2,
        "the second child stopped with the supervisor"
    );
}

#[tokio::test]
async fn a_dynamic_supervisor_refuses_children_beyond_max_children() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new().max_children(2)).await;
    let first = sup.start_child(probe("w", &log)).await.expect("1st starts");
    sup.start_child(probe("w", &log)).await.expect("2nd starts");

    assert_eq!(
        sup.start_child(probe("w", &log)).await.map(|_| ()),
        Err(SupervisorError::MaxChildren(2))
    );
    assert_eq!(log.count("start:w"), 2, "the refused child never started");

    sup.terminate_child(&first)
        .await
        .expect("one is terminated");
    sup.start_child(probe("w", &log))
        .await
        .expect("below max_children again, a child can start");
    stop_dynamic(&sup).await;
}

#[tokio::test]
async fn a_permanent_dynamic_child_is_restarted_after_a_failure() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new()).await;
    let first = sup.start_child(probe("w", &log)).await.expect("w starts");

    ActorRef::<Cmd>::from(first.clone())
        .cast(Cmd::Fail)
        .expect("w receives the command");

    wait_until("w runs as a new incarnation", || async {
        let now = sup.which_children().await.expect("which_children");
        now.len() == 1
            && now[0].status == ChildStatus::Running
            && now[0]
                .actor
                .as_ref()
                .is_some_and(|a| a.get_id() != first.get_id())
    })
    .await;
    assert_eq!(log.count("start:w"), 2, "w was started again");
    stop_dynamic(&sup).await;
}

#[tokio::test]
async fn a_temporary_dynamic_child_is_removed_after_a_failure() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new()).await;
    let keep = sup
        .start_child(probe("keep", &log))
        .await
        .expect("keep starts");
    let temp = sup
        .start_child(probe("t", &log).restart(Restart::Temporary))
        .await
        .expect("t starts");

    ActorRef::<Cmd>::from(temp)
        .cast(Cmd::Fail)
        .expect("t receives the command");

    wait_until("t is removed", || async {
        sup.count_children().await.map(|c| c.specs) == Ok(1)
    })
    .await;
    let left = sup.which_children().await.expect("which_children");
    assert_eq!(
        left[0].actor.as_ref().map(|a| a.get_id()),
        Some(keep.get_id())
    );
    assert_eq!(
        log.count("start:t"),
        1,
        "a temporary child is never restarted"
    );
    stop_dynamic(&sup).await;
}

#[tokio::test]
async fn ten_thousand_dynamic_children_all_run_post_stop_when_the_supervisor_stops() {
    const N: usize = 10_000;
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new()).await;
    let spec = probe("w", &log).restart(Restart::Temporary);

    for _ in 0..N {
        sup.start_child(spec.clone()).await.expect("a child starts");
    }
    assert_eq!(
        sup.count_children().await.map(|c| c.active),
        Ok(N),
        "every child runs"
    );

    let cell: ActorCell = sup.cell().expect("the dynamic supervisor runs");
    tokio::time::timeout(Duration::from_secs(60), cell.stop_and_wait(None, None))
        .await
        .expect("the supervisor stops in bounded time")
        .expect("the supervisor stops");

    assert_eq!(log.count("start:w"), N);
    assert_eq!(
        log.with_prefix("stop:").len(),
        N,
        "every child's post_stop ran before the supervisor ended"
    );
}

// ---------------------------------------------------------------------------
// render_tree, nested handles

#[tokio::test]
async fn render_tree_indents_nested_supervisor_children_deeper() {
    let log = Log::new();
    let nested = one_for_one(vec![probe("leaf", &log)]);
    let spec = one_for_one(vec![
        probe("top", &log),
        ChildSpec::supervisor("branch", nested),
    ]);
    let (sup, _join) = Supervisor::spawn(Some("render-tree-root".into()), spec)
        .await
        .expect("the supervisor starts");

    let tree = sup.render_tree().await.expect("the tree renders");

    let indent_of = |needle: &str| -> usize {
        let line = tree
            .lines()
            .find(|l| l.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("no line for {needle:?} in\n{tree}"));
        line.len() - line.trim_start().len()
    };
    assert!(
        tree.lines()
            .next()
            .is_some_and(|l| l.starts_with("render-tree-root")),
        "the first line names the supervisor:\n{tree}"
    );
    assert!(indent_of("top ") > 0, "children are indented:\n{tree}");
    assert_eq!(
        indent_of("top "),
        indent_of("branch "),
        "siblings share an indent:\n{tree}"
    );
    assert!(
        indent_of("leaf ") > indent_of("branch "),
        "a nested supervisor's children are indented deeper:\n{tree}"
    );
    assert!(tree.contains("branch [supervisor] running"), "{tree}");
    assert!(tree.contains("leaf [worker] running"), "{tree}");
    stop(&sup).await;
}

#[tokio::test]
async fn dynamic_child_gives_a_handle_whose_start_child_works() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![
        probe("a", &log),
        ChildSpec::dynamic_supervisor("sessions", DynamicSpec::new()),
    ]))
    .await;
    assert!(
        sup.dynamic_child("a").is_none(),
        "a worker is not a dynamic supervisor"
    );
    assert!(sup.dynamic_child("nope").is_none(), "no such child");

    let sessions = sup
        .dynamic_child("sessions")
        .expect("a handle to the dynamic supervisor child");
    let cell = sessions
        .start_child(probe("s1", &log))
        .await
        .expect("start_child through the handle works");

    assert_eq!(log.count("start:s1"), 1);
    let listed = sessions.which_children().await.expect("which_children");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].actor.as_ref().map(|a| a.get_id()),
        Some(cell.get_id())
    );
    assert_eq!(
        status(&sup, "sessions").await,
        Some(ChildStatus::Running),
        "the dynamic supervisor is a running child of the parent"
    );
    stop(&sup).await;
    assert_eq!(
        log.count("stop:s1"),
        1,
        "stopping the tree stops the dynamic child too"
    );
}

#[tokio::test]
async fn a_dynamic_child_handle_follows_the_dynamic_supervisor_across_its_restart() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![ChildSpec::dynamic_supervisor(
        "sessions",
        DynamicSpec::new(),
    )]))
    .await;
    let sessions = sup.dynamic_child("sessions").expect("a handle");
    let first = sessions.cell().expect("the dynamic supervisor runs");

    first.kill(); // an abnormal exit: the permanent child is restarted

    wait_until(
        "the dynamic supervisor runs as a new incarnation",
        || async {
            sessions
                .cell()
                .is_ok_and(|cell| cell.get_id() != first.get_id())
        },
    )
    .await;
    sessions
        .start_child(probe("s1", &log))
        .await
        .expect("start_child reaches the new incarnation");
    assert_eq!(
        sessions.count_children().await.map(|c| c.active),
        Ok(1),
        "the new incarnation has the child started through the old handle"
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// start_children: many children in one round trip, all or none

#[tokio::test]
async fn start_children_starts_a_batch_in_order_in_one_call() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new()).await;
    let cells = sup
        .start_children(vec![probe("a", &log), probe("b", &log), probe("c", &log)])
        .await
        .expect("the batch starts");
    assert_eq!(cells.len(), 3);
    assert_eq!(log.events(), ["start:a", "start:b", "start:c"], "in order");
    let listed: Vec<_> = sup
        .which_children()
        .await
        .expect("children")
        .into_iter()
        .map(|c| c.actor.map(|a| a.get_id()))
        .collect();
    let returned: Vec<_> = cells.iter().map(|c| Some(c.get_id())).collect();
    assert_eq!(
        listed, returned,
        "the incarnations come back in start order"
    );
    stop_dynamic(&sup).await;
}

#[tokio::test]
async fn start_children_beyond_max_children_starts_none() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new().max_children(2)).await;
    assert_eq!(
        sup.start_children(vec![probe("a", &log), probe("b", &log), probe("c", &log)])
            .await,
        Err(SupervisorError::MaxChildren(2))
    );
    assert!(
        log.events().is_empty(),
        "nothing started: {:?}",
        log.events()
    );
    stop_dynamic(&sup).await;
}

#[tokio::test]
async fn start_children_with_a_child_that_fails_to_start_stops_the_started_ones_again() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    log.clear();
    let result = sup
        .start_children(vec![
            probe("b", &log),
            probe("c", &log),
            refusing_probe("d", &log),
            probe("e", &log),
        ])
        .await;
    assert_eq!(
        result.map(|_| ()),
        Err(SupervisorError::FailedToStart {
            id: "d".into(),
            reason: "d refused to start".into()
        })
    );
    assert_eq!(
        log.events(),
        ["start:b", "start:c", "start_failed:d", "stop:c", "stop:b"],
        "all or none: the started ones stop in reverse order, e never starts"
    );
    assert_eq!(
        ids(&sup).await,
        strings(&["a"]),
        "no spec of the batch is kept"
    );
    stop(&sup).await;
}

#[tokio::test]
async fn start_children_refuses_repeated_or_present_ids_before_starting_any() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    log.clear();
    assert_eq!(
        sup.start_children(vec![probe("b", &log), probe("b", &log)])
            .await
            .map(|_| ()),
        Err(SupervisorError::DuplicateChildId("b".into()))
    );
    assert_eq!(
        sup.start_children(vec![probe("b", &log), probe("a", &log)])
            .await
            .map(|_| ()),
        Err(SupervisorError::Running("a".into()))
    );
    assert!(
        log.events().is_empty(),
        "nothing started: {:?}",
        log.events()
    );
    stop(&sup).await;
}
