//! The life of a root supervisor and of an application: an ordered
//! `SupervisorRef::stop` within a timeout, the root's `ExitReason` awaited
//! through `SupervisorExit`, `Application` stopping on request or when the
//! root gives up, its deadline and hooks, and supervisors named by their
//! path in the tree.

mod common;

use std::time::Duration;

use common::{one_for_one, probe, send, slow, wait_until, Cmd, Log};
use ractor_otp::{
    Application, ChildSpec, ExitReason, Shutdown, Strategy, Supervisor, SupervisorError,
    SupervisorSpec,
};

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// Bounds every wait on a whole stop; under the paused clock it costs no
/// real time.
const BOUND: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// SupervisorRef::stop and SupervisorExit

#[tokio::test(start_paused = true)]
async fn stop_stops_the_children_in_reverse_order_and_the_root_reports_shutdown() {
    let log = Log::new();
    let (sup, exit) = Supervisor::spawn(
        None,
        one_for_one(vec![probe("a", &log), probe("b", &log), probe("c", &log)]),
    )
    .await
    .expect("the supervisor starts");
    assert_eq!(exit.exit_reason(), None, "it runs");

    sup.stop(Some(secs(10))).await.expect("it stops in time");
    assert_eq!(log.with_prefix("stop:"), ["stop:c", "stop:b", "stop:a"]);
    let reason = tokio::time::timeout(BOUND, exit.clone())
        .await
        .expect("the exit is reported");
    assert_eq!(reason, ExitReason::Shutdown(None));
    assert!(reason.is_normal());
    assert_eq!(exit.exit_reason(), Some(ExitReason::Shutdown(None)));
    sup.stop(None)
        .await
        .expect("stopping a stopped supervisor returns at once");
}

#[tokio::test(start_paused = true)]
async fn stop_kills_a_tree_that_overruns_its_timeout() {
    let log = Log::new();
    let (sup, exit) = Supervisor::spawn(
        None,
        one_for_one(vec![
            probe("a", &log),
            slow("stuck", &log, secs(3600)).shutdown(Shutdown::Infinity),
        ]),
    )
    .await
    .expect("the supervisor starts");

    let result = tokio::time::timeout(BOUND, sup.stop(Some(secs(2))))
        .await
        .expect("stop returns once the tree is killed");
    assert_eq!(result, Err(SupervisorError::StopTimeout(secs(2))));
    assert_eq!(exit.await, ExitReason::Killed, "the root was killed");
    assert!(
        log.with_prefix("stop:").is_empty(),
        "killed children run no post_stop: {:?}",
        log.events()
    );
}

#[tokio::test(start_paused = true)]
async fn a_root_that_exceeds_its_intensity_reports_the_failure_naming_the_child() {
    let log = Log::new();
    let (sup, exit) = Supervisor::spawn(
        None,
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1, secs(5))
            .child(probe("w", &log)),
    )
    .await
    .expect("the supervisor starts");

    send(&sup, "w", Cmd::Fail);
    wait_until("w runs again", || async { log.count("start:w") == 2 }).await;
    send(&sup, "w", Cmd::Fail);

    let reason = tokio::time::timeout(BOUND, exit)
        .await
        .expect("the root ends");
    let ExitReason::Failed(text) = &reason else {
        panic!("a root that gave up fails, got {reason:?}");
    };
    assert!(
        text.contains("max restart intensity") && text.contains("`w`"),
        "the failure names the cause: {text}"
    );
    assert_eq!(reason.exit_code(), std::process::ExitCode::FAILURE);
}

// ---------------------------------------------------------------------------
// Application

#[tokio::test(start_paused = true)]
async fn an_application_stops_the_tree_in_order_then_runs_its_hooks_in_order() {
    let log = Log::new();
    let (first, second) = (log.clone(), log.clone());
    let app = Application::start(
        "app-stops-on-request",
        one_for_one(vec![probe("a", &log), probe("b", &log)]),
    )
    .await
    .expect("the application starts")
    .on_shutdown("first", move || async move { first.push("hook:first") })
    .on_shutdown("second", move || async move { second.push("hook:second") });
    assert!(
        app.root().child::<Cmd>("a").is_ok(),
        "the tree is reachable"
    );

    let (request, requested) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until(async move {
        let _ = requested.await;
    }));
    tokio::time::sleep(secs(1)).await;
    assert!(log.with_prefix("stop:").is_empty(), "runs until asked");
    request.send(()).expect("the application listens");

    let reason = tokio::time::timeout(BOUND, run)
        .await
        .expect("the application stops")
        .expect("run does not panic");
    assert_eq!(reason, ExitReason::Shutdown(None));
    assert_eq!(
        log.events()[2..],
        ["stop:b", "stop:a", "hook:first", "hook:second"],
        "the tree stops in reverse start order, then the hooks run in order"
    );
}

#[tokio::test(start_paused = true)]
async fn an_application_whose_root_gives_up_returns_the_failure_after_its_hooks() {
    let log = Log::new();
    let hook_log = log.clone();
    let app = Application::start(
        "app-root-gives-up",
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(0, secs(5))
            .child(probe("w", &log)),
    )
    .await
    .expect("the application starts")
    .on_shutdown("node", move || async move { hook_log.push("hook:node") });
    send(app.root(), "w", Cmd::Fail);

    let reason = tokio::time::timeout(BOUND, app.run_until(std::future::pending()))
        .await
        .expect("run returns when the root ends on its own");
    assert!(
        matches!(&reason, ExitReason::Failed(text) if text.contains("max restart intensity")),
        "the root's failure is returned: {reason:?}"
    );
    assert_eq!(log.with_prefix("hook:"), ["hook:node"], "hooks still run");
}

#[tokio::test(start_paused = true)]
async fn an_application_kills_a_tree_that_overruns_the_deadline_and_skips_late_hooks() {
    let log = Log::new();
    let hook_log = log.clone();
    let app = Application::start(
        "app-overruns",
        one_for_one(vec![
            slow("stuck", &log, secs(3600)).shutdown(Shutdown::Infinity)
        ]),
    )
    .await
    .expect("the application starts")
    .shutdown_timeout(secs(5))
    .on_shutdown("late", move || async move { hook_log.push("hook:late") });

    let started = tokio::time::Instant::now();
    let reason = tokio::time::timeout(BOUND, app.run_until(async {}))
        .await
        .expect("the deadline bounds the stop");
    assert_eq!(
        reason,
        ExitReason::Killed,
        "the tree was killed at the deadline"
    );
    assert_eq!(started.elapsed(), secs(5), "stopped at the deadline");
    assert!(
        log.with_prefix("hook:").is_empty(),
        "no time was left for the hook"
    );
}

#[tokio::test(start_paused = true)]
async fn an_application_gives_its_hooks_what_is_left_of_the_deadline() {
    let log = Log::new();
    let hook_log = log.clone();
    let app = Application::start("app-slow-hook", one_for_one(vec![probe("a", &log)]))
        .await
        .expect("the application starts")
        .shutdown_timeout(secs(5))
        .on_shutdown("slow", move || async move {
            tokio::time::sleep(secs(3600)).await;
            hook_log.push("hook:slow");
        });

    let started = tokio::time::Instant::now();
    let reason = tokio::time::timeout(BOUND, app.run_until(async {}))
        .await
        .expect("the deadline bounds the hooks");
    assert_eq!(reason, ExitReason::Shutdown(None));
    assert_eq!(
        started.elapsed(),
        secs(5),
        "the hook was abandoned at the deadline"
    );
    assert!(log.with_prefix("hook:").is_empty());
}

#[tokio::test]
async fn an_application_that_cannot_start_says_which_child_failed() {
    let log = Log::new();
    log.fail_next_starts(1);
    let err = Application::start("app-cannot-start", one_for_one(vec![probe("db", &log)]))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, SupervisorError::FailedToStart { id, .. } if id == "db"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Names

#[tokio::test]
async fn nested_supervisors_are_named_by_their_path_in_the_tree() {
    let log = Log::new();
    let storage = one_for_one(vec![probe("db", &log)]);
    let (root, _exit) = Supervisor::spawn(
        Some("path-root".into()),
        one_for_one(vec![ChildSpec::supervisor(
            "storage",
            SupervisorSpec::new(Strategy::OneForAll).child(ChildSpec::supervisor("shard", storage)),
        )]),
    )
    .await
    .expect("the tree starts");

    let storage = root.supervisor_child("storage").expect("storage runs");
    let shard = storage.supervisor_child("shard").expect("shard runs");
    let tree = storage.render_tree().await.expect("storage renders");
    assert!(
        tree.starts_with("path-root/storage (OneForAll)\n"),
        "a nested supervisor is named by its path: {tree}"
    );
    let tree = shard.render_tree().await.expect("shard renders");
    assert!(
        tree.starts_with("path-root/storage/shard (OneForOne)\n"),
        "paths nest: {tree}"
    );
    root.stop(None).await.expect("the tree stops");
}
