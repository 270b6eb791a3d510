//! Cases taken from OTP's `supervisor_SUITE` and Elixir's
//! `DynamicSupervisor` tests, where a restart that keeps failing meets
//! `terminate_child`, where a one-for-all group restart fails part way, and
//! where a nested supervisor restarts from its spec (DESIGN §3).

mod common;

use std::time::Duration;

use common::{
    children, ids, one_for_one, probe, send, spawn, spawn_dynamic, status, stop, stop_dynamic,
    wait_until, Cmd, Log, Probe,
};
use ractor_otp::{
    Backoff, ChildCounts, ChildLookupError, ChildSpec, ChildStatus, DynamicSpec, Strategy,
    SupervisorSpec,
};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// A probe child with its own log, so that its starts can be made to fail
/// without touching its siblings, retried every 100 ms while they do.
fn flaky(id: &str, own: &Log) -> ChildSpec {
    ChildSpec::new(id, Probe::new(id, own), || ()).backoff(Backoff::new(ms(100), ms(100)))
}

/// Makes every start of the probes logging to `log` fail from now on.
fn refuse_starts(log: &Log) {
    log.fail_next_starts(usize::MAX);
}

// ---------------------------------------------------------------------------
// hanging_restart_loop_rest_for_one

#[tokio::test(start_paused = true)]
async fn terminating_a_rest_for_one_child_stuck_restarting_leaves_the_children_after_it_down() {
    let log = Log::new();
    let b_log = Log::new();
    let sup = spawn(
        SupervisorSpec::new(Strategy::RestForOne)
            .intensity(100, secs(1))
            .child(probe("a", &log))
            .child(flaky("b", &b_log))
            .child(probe("c", &log)),
    )
    .await;

    refuse_starts(&b_log);
    send(&sup, "b", Cmd::Fail);
    wait_until("b has failed to restart twice", || async {
        b_log.count("start_failed:b") >= 2
    })
    .await;
    assert_eq!(status(&sup, "b").await, Some(ChildStatus::Restarting));
    assert_eq!(
        status(&sup, "c").await,
        Some(ChildStatus::Restarting),
        "c was stopped with b and waits for it"
    );

    sup.terminate_child("b")
        .await
        .expect("a child stuck restarting can be terminated");
    // Well past the pending retry of b.
    tokio::time::sleep(secs(2)).await;

    let statuses: Vec<(String, ChildStatus)> = children(&sup)
        .await
        .into_iter()
        .map(|c| (c.id, c.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("a".to_string(), ChildStatus::Running),
            ("b".to_string(), ChildStatus::Stopped),
            ("c".to_string(), ChildStatus::Stopped),
        ],
        "the restart under way is dropped: c does not run without b (OTP's hanging_restart_loop_rest_for_one)"
    );
    assert_eq!(log.count("start:c"), 1, "c was never started again");

    // Each comes back on request, in order.
    b_log.fail_next_starts(0);
    sup.restart_child("b").await.expect("b restarts on request");
    sup.restart_child("c").await.expect("c restarts on request");
    assert_eq!(status(&sup, "c").await, Some(ChildStatus::Running));
    stop(&sup).await;
}

#[tokio::test(start_paused = true)]
async fn terminating_a_rest_for_one_child_while_its_group_restarts_keeps_the_earlier_ones() {
    let log = Log::new();
    let c_log = Log::new();
    let sup = spawn(
        SupervisorSpec::new(Strategy::RestForOne)
            .intensity(100, secs(1))
            .child(probe("a", &log))
            .child(probe("b", &log))
            .child(flaky("c", &c_log))
            .child(probe("d", &log)),
    )
    .await;

    // b fails: b, c and d restart; c keeps failing to start.
    refuse_starts(&c_log);
    send(&sup, "b", Cmd::Fail);
    wait_until("c has failed to restart twice", || async {
        c_log.count("start_failed:c") >= 2
    })
    .await;
    sup.terminate_child("c").await.expect("c is terminated");
    tokio::time::sleep(secs(2)).await;

    let statuses: Vec<ChildStatus> = children(&sup).await.into_iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        vec![
            ChildStatus::Running,
            ChildStatus::Running,
            ChildStatus::Stopped,
            ChildStatus::Stopped
        ],
        "b (before c) runs again; d (after c) stays down"
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// hanging_restart_loop_simple, Elixir's "terminates restarting child"

#[tokio::test(start_paused = true)]
async fn a_dynamic_child_stuck_restarting_can_be_terminated_by_its_last_incarnation() {
    let log = Log::new();
    let sup = spawn_dynamic(DynamicSpec::new().intensity(100, secs(1))).await;
    let first = sup.start_child(flaky("w", &log)).await.expect("w starts");

    refuse_starts(&log);
    first
        .send_message(Cmd::Fail)
        .expect("w receives the command");
    wait_until("w has failed to restart twice", || async {
        log.count("start_failed:w") >= 2
    })
    .await;
    assert_eq!(
        sup.count_children().await.expect("counts"),
        ChildCounts {
            specs: 1,
            active: 0,
            supervisors: 0,
            workers: 1
        },
        "w is restarting"
    );

    sup.terminate_child(&first)
        .await
        .expect("the restarting child is found by the incarnation the caller holds");
    assert!(
        sup.which_children().await.expect("children").is_empty(),
        "the terminated child is gone"
    );
    assert_eq!(
        sup.count_children().await.expect("counts"),
        ChildCounts::default(),
        "zero counts"
    );
    let failed = log.count("start_failed:w");
    tokio::time::sleep(secs(2)).await;
    assert_eq!(
        log.count("start_failed:w"),
        failed,
        "no retry after terminate_child"
    );
    assert_eq!(log.count("start:w"), 1);
    stop_dynamic(&sup).await;
}

// ---------------------------------------------------------------------------
// one_for_all_other_child_fails_restart

#[tokio::test(start_paused = true)]
async fn a_one_for_all_child_that_fails_to_restart_makes_the_whole_group_start_over() {
    let log = Log::new();
    let c_log = Log::new();
    let sup = spawn(
        SupervisorSpec::new(Strategy::OneForAll)
            .intensity(100, secs(1))
            .child(probe("a", &log))
            .child(probe("b", &log))
            .child(ChildSpec::new("c", Probe::new("c", &c_log), || ())),
    )
    .await;

    // a fails; in the group restart, c's first start fails.
    c_log.fail_next_starts(1);
    send(&sup, "a", Cmd::Fail);
    wait_until("the group runs again", || async {
        children(&sup)
            .await
            .iter()
            .all(|c| c.status == ChildStatus::Running)
    })
    .await;

    assert_eq!(c_log.count("start_failed:c"), 1);
    assert_eq!(
        log.events(),
        [
            "start:a", "start:b", // initial
            "stop:b",  // group stop after a failed (a failed: no post_stop)
            "start:a", "start:b", // restart in order, then c fails to start
            "stop:b", "stop:a", // the restarted ones stop again, reverse order...
            "start:a", "start:b", // ...and the whole group starts over
        ],
        "OTP's one_for_all_other_child_fails_restart"
    );
    assert_eq!(
        c_log.count("start:c"),
        2,
        "c: initial start and the start-over"
    );
    stop(&sup).await;
}

// ---------------------------------------------------------------------------
// Handles below a nested supervisor that restarts from its spec

#[tokio::test(start_paused = true)]
async fn a_run_time_child_of_a_restarted_nested_supervisor_has_no_handle_and_old_handles_stay_empty(
) {
    let log = Log::new();
    let root = spawn(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(5, secs(5))
            .child(ChildSpec::supervisor(
                "inner",
                one_for_one(vec![probe("a", &log)]),
            )),
    )
    .await;
    let inner = root.supervisor_child("inner").expect("inner runs");
    inner
        .start_child(probe("extra", &log))
        .await
        .expect("extra is added at run time");
    let old = inner.child::<Cmd>("extra").expect("extra has a handle");
    assert!(old.current().is_some());

    let first = inner.cell().get_id();
    inner.cell().kill();
    wait_until("inner is back", || async {
        root.supervisor_child("inner")
            .is_some_and(|s| s.cell().get_id() != first)
    })
    .await;
    let inner = root.supervisor_child("inner").expect("inner runs");
    assert_eq!(
        ids(&inner).await,
        vec!["a".to_string()],
        "restarted from its spec"
    );
    assert_eq!(
        inner.child::<Cmd>("extra").map(|_| ()),
        Err(ChildLookupError::NotFound("extra".into())),
        "no handle for a child the supervisor does not have"
    );
    assert!(old.current().is_none(), "the old handle reaches nothing");

    inner
        .start_child(probe("extra", &log))
        .await
        .expect("a new extra is added");
    assert!(
        old.current().is_none(),
        "a new child under the same id is not reached through old handles"
    );
    let new = inner
        .child::<Cmd>("extra")
        .expect("the new extra has a handle");
    assert!(new.current().is_some());
    assert!(
        inner.child::<Cmd>("a").is_ok(),
        "spec children keep their handles"
    );
    stop(&root).await;
}

#[tokio::test]
async fn asking_for_a_child_with_the_wrong_message_type_says_so() {
    let log = Log::new();
    let sup = spawn(one_for_one(vec![probe("a", &log)])).await;
    let err = sup.child::<String>("a").map(|_| ()).unwrap_err();
    assert_eq!(
        err,
        ChildLookupError::WrongMessageType {
            id: "a".into(),
            expected: std::any::type_name::<String>(),
            found: std::any::type_name::<Cmd>(),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("alloc::string::String") && text.contains("common::Cmd"),
        "the error names both types: {text}"
    );
    assert_eq!(
        sup.child::<Cmd>("b").map(|_| ()),
        Err(ChildLookupError::NotFound("b".into())),
        "a missing id is a different error"
    );
    stop(&sup).await;
}
