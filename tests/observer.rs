//! The observer's JSON API and event stream, over real HTTP on loopback:
//! tree shape and restart counts after a crash, pool counters, peers with
//! phi and RTT, 404s as JSON, actions gated, and a slow stream client that
//! never slows the node.

mod observer_support;

use std::time::Duration;

use observer_support::{demo_tree, get_json, http, wait_json, LIMIT};
use ractor_otp::cluster::{Node, NodeConfig};
use ractor_otp::observer::{Actions, Observer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The child at `path` in `/api/trees/{path}`'s answer.
fn restarts(child: &Value) -> u64 {
    child["restarts"].as_u64().expect("restarts is a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_shows_nested_supervisors_and_a_restart_with_its_reason() {
    let (sup, _pool) = demo_tree().await;
    let observer = Observer::builder()
        .supervisor(&sup)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the observer serves");
    let addr = observer.local_addr();
    let root = sup.cell().get_name().expect("the demo root is named");

    let trees = get_json(addr, "/api/trees").await;
    let tree = &trees["trees"][0];
    assert_eq!(
        tree["path"],
        root.as_str(),
        "the root is named by its registered name"
    );
    assert_eq!(tree["strategy"], "OneForOne");
    let ids: Vec<&str> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["cache", "storage", "hashers"],
        "children in start order"
    );
    let storage = &tree["children"][1];
    assert_eq!(storage["kind"], "supervisor");
    assert_eq!(
        storage["tree"]["path"],
        format!("{root}/storage"),
        "a nested supervisor is named by its path"
    );
    assert_eq!(storage["tree"]["strategy"], "RestForOne");
    let db = &storage["tree"]["children"][0];
    assert_eq!(db["path"], format!("{root}/storage/db"));
    assert_eq!((db["status"].as_str(), restarts(db)), (Some("running"), 0));
    let hashers = &tree["children"][2]["tree"];
    assert_eq!(
        hashers["children"].as_array().map(Vec::len),
        Some(3),
        "the pool's workers are its children"
    );

    let db_ref = sup
        .supervisor_child("storage")
        .expect("storage runs")
        .child::<String>("db")
        .expect("db is a String actor");
    db_ref.cast("crash:disk on fire".into()).expect("db runs");

    let path = format!("/api/trees/{root}/storage/db");
    let db = wait_json(addr, &path, "db restarted once", |c| {
        restarts(c) == 1 && c["status"] == "running"
    })
    .await;
    assert!(
        db["last_exit"]
            .as_str()
            .is_some_and(|r| r.contains("disk on fire")),
        "the last exit names the failure: {db}"
    );
    // Rest for one: the writer after db was restarted with it, but not counted as failing.
    let writer = get_json(addr, &format!("/api/trees/{root}/storage/writer")).await;
    assert_eq!(restarts(&writer), 1, "the writer started again with db");
    let cache = get_json(addr, &format!("/api/trees/{root}/cache")).await;
    assert_eq!(
        restarts(&cache),
        0,
        "one for one at the root: cache untouched"
    );

    let events = wait_json(
        addr,
        &format!("/api/events?path={root}/storage/db"),
        "db's exit and restart",
        |v| {
            let kinds: Vec<&str> = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["kind"].as_str())
                .collect();
            kinds.contains(&"exit") && kinds.contains(&"restart")
        },
    )
    .await;
    for event in events["events"].as_array().unwrap() {
        assert_eq!(
            event["path"],
            format!("{root}/storage/db"),
            "the path filter keeps db's events only"
        );
    }

    observer.shutdown().await;
    sup.stop(Some(LIMIT)).await.expect("the tree stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_counters_show_per_worker_processed_counts() {
    let (sup, pool) = demo_tree().await;
    let observer = Observer::builder()
        .supervisor(&sup)
        .pool("hashers", &pool)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the observer serves");
    let addr = observer.local_addr();
    for n in 0..30 {
        pool.cast(n).expect("the pool takes it");
    }
    let view = wait_json(addr, "/api/pools/hashers", "30 processed", |p| {
        p["processed"] == 30
    })
    .await;
    let root = sup.cell().get_name().unwrap();
    assert_eq!(
        view["path"],
        format!("{root}/hashers"),
        "a pool is named by its path in the tree"
    );
    let workers = view["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 3);
    let sum: u64 = workers
        .iter()
        .map(|w| w["processed"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 30, "per-worker counts add up");
    assert!(workers
        .iter()
        .all(|w| w["status"] == "running" && w["in_flight"] == 0));
    let all = get_json(addr, "/api/pools").await;
    assert_eq!(all["pools"][0]["name"], "hashers");

    observer.shutdown().await;
    sup.stop(Some(LIMIT)).await.expect("the tree stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_show_status_phi_and_round_trip_with_a_history() {
    let config = |name: &str| {
        NodeConfig::new(name)
            .cookie("observer test")
            .heartbeat_interval(Duration::from_millis(50))
    };
    let a = Node::start(config("obs-a")).await.expect("node a");
    let b = Node::start(config("obs-b")).await.expect("node b");
    a.connect(b.local_addr()).await.expect("a reaches b");
    let observer = Observer::builder()
        .node(&a)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the observer serves");
    let addr = observer.local_addr();

    let view = wait_json(
        addr,
        "/api/cluster",
        "b up with an RTT and two samples",
        |c| {
            let peer = &c["peers"][0];
            peer["status"] == "up"
                && peer["rtt_ms"].is_number()
                && peer["history"].as_array().is_some_and(|h| h.len() >= 2)
        },
    )
    .await;
    assert_eq!(view["enabled"], true);
    assert_eq!(view["node"], "obs-a");
    let peer = &view["peers"][0];
    assert_eq!(peer["name"], "obs-b");
    let phi = peer["phi"].as_f64().expect("phi is a number");
    assert!(
        (0.0..8.0).contains(&phi),
        "a healthy peer's phi is below the threshold: {phi}"
    );
    let sample = &peer["history"][0];
    assert!(
        sample[0].is_u64() && sample[1].is_number(),
        "samples are [time_ms, phi, rtt_ms]: {sample}"
    );
    assert!(view["members"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["name"] == "obs-b")));

    b.shutdown().await;
    let down = wait_json(addr, "/api/events?kind=down", "b's down event", |v| {
        v["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["path"] == "obs-b"))
    })
    .await;
    assert_eq!(down["events"][0]["kind"], "down");
    observer.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_bad_filters_answer_json_errors() {
    let (sup, _pool) = demo_tree().await;
    let observer = Observer::builder()
        .supervisor(&sup)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the observer serves");
    let addr = observer.local_addr();
    let root = sup.cell().get_name().unwrap();
    for (path, status) in [
        ("/nope".to_string(), 404),
        ("/api/nope".to_string(), 404),
        (format!("/api/trees/{root}/nope"), 404),
        (format!("/api/trees/{root}/storage/db/deeper"), 404),
        ("/api/pools/nope".to_string(), 404),
        ("/api/events?kind=bogus".to_string(), 400),
    ] {
        let (got, body) = http(addr, "GET", &path, &[]).await;
        assert_eq!(got, status, "GET {path}: {body}");
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: JSON error body ({e}): {body}"));
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "GET {path} says what is wrong: {body}"
        );
    }
    let (status, page) = http(addr, "GET", "/", &[]).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>ractor-otp observer</title>"),
        "the page is served"
    );
    observer.shutdown().await;
    sup.stop(Some(LIMIT)).await.expect("the tree stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_refused_unless_enabled_and_a_kill_is_restarted() {
    let (sup, _pool) = demo_tree().await;
    let root = sup.cell().get_name().unwrap();
    let kill = format!("/api/actions/kill/{root}/cache");

    let read_only = Observer::builder()
        .supervisor(&sup)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, body) = http(read_only.local_addr(), "POST", &kill, &[]).await;
    assert_eq!(status, 403, "read-only by default: {body}");
    read_only.shutdown().await;

    let with_token = Observer::builder()
        .supervisor(&sup)
        .actions(Actions::Token("s3cret".into()))
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, _) = http(
        with_token.local_addr(),
        "POST",
        &kill,
        &[("Authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(status, 401, "a wrong token is refused");
    with_token.shutdown().await;

    let loopback = Observer::builder()
        .supervisor(&sup)
        .actions(Actions::Loopback)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = loopback.local_addr();
    let (status, body) = http(addr, "POST", &kill, &[]).await;
    assert_eq!(status, 200, "loopback may act: {body}");
    let cache = wait_json(
        addr,
        &format!("/api/trees/{root}/cache"),
        "cache restarted after the kill",
        |c| c["restarts"] == 1 && c["status"] == "running",
    )
    .await;
    assert_eq!(cache["last_exit"], "killed", "a kill is an abnormal exit");
    let (status, body) = http(
        addr,
        "POST",
        &format!("/api/actions/terminate/{root}/cache"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cache = get_json(addr, &format!("/api/trees/{root}/cache")).await;
    assert_eq!(
        cache["status"], "stopped",
        "terminated children stay stopped"
    );
    let (status, body) = http(
        addr,
        "POST",
        &format!("/api/actions/restart/{root}/cache"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(
        addr,
        "POST",
        &format!("/api/actions/restart/{root}/cache"),
        &[],
    )
    .await;
    assert_eq!(status, 409, "restarting a running child is a conflict");
    let (status, _) = http(
        addr,
        "POST",
        &format!("/api/actions/explode/{root}/cache"),
        &[],
    )
    .await;
    assert_eq!(status, 404, "unknown actions are not found");
    let (status, _) = http(
        addr,
        "POST",
        &format!("/api/actions/kill/{root}/ghost"),
        &[],
    )
    .await;
    assert_eq!(status, 404, "unknown children are not found");
    loopback.shutdown().await;
    sup.stop(Some(LIMIT)).await.expect("the tree stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_client_that_never_reads_never_slows_the_node() {
    let (sup, _pool) = demo_tree().await;
    let observer = Observer::builder()
        .supervisor(&sup)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the observer serves");
    let addr = observer.local_addr();

    // A client with a tiny receive window that subscribes and then stops reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr).await.expect("connect");
    stuck
        .write_all(format!("GET /api/events/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stuck.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the stream is open");

    // Thousands of crash-and-restart events, each carrying 8 KiB of reason.
    let cache = sup.child::<String>("cache").expect("cache");
    let reason = format!("crash:{}", "x".repeat(8192));
    const CRASHES: u64 = 800; // under the demo tree's intensity (1000 a second)
    let started = tokio::time::Instant::now();
    for _ in 0..CRASHES {
        // One crash per incarnation, so that every crash counts.
        let deadline = tokio::time::Instant::now() + LIMIT;
        let before = loop {
            if let Some(current) = cache.current() {
                break current.get_id();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cache came back within the limit"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        cache.cast(reason.clone()).expect("cache runs");
        while cache
            .current()
            .map(|c| c.get_id())
            .is_none_or(|id| id == before)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "cache restarted within the limit"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let took = started.elapsed();
    let counts = tokio::time::timeout(LIMIT, sup.count_children())
        .await
        .expect("the supervisor answers")
        .unwrap();
    assert_eq!(counts.active, 3, "the tree is whole");
    // The stuck client's stream lagged: when it reads again, it is told
    // how many events it missed.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !String::from_utf8_lossy(&seen).contains("event: lagged") {
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout_at(deadline, stuck.read(&mut buf))
            .await
            .expect("a lagged notice within the limit")
            .unwrap();
        assert!(n > 0, "the stream stays open");
        seen.extend_from_slice(&buf[..n]);
        if seen.len() > 1 << 20 {
            seen.drain(..seen.len() - 4096);
        }
    }
    // The drop was counted (never waited for).
    let events = wait_json(addr, "/api/events?limit=1", "the lag counted", |v| {
        v["lagged"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert!(events["lagged"].as_u64().unwrap() > 0);
    eprintln!("{CRASHES} crash/restart cycles with a stuck stream client took {took:?}");
    // Stopping the observer does not wait for the client either.
    tokio::time::timeout(LIMIT, observer.shutdown())
        .await
        .expect("the observer stops with a stuck client connected");
    drop(stuck);
    sup.stop(Some(LIMIT)).await.expect("the tree stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_answer_for_their_own_trees_through_the_cluster() {
    let config = |name: &str| NodeConfig::new(name).cookie("observer test");
    let a = Node::start(config("trees-a")).await.expect("node a");
    let b = Node::start(config("trees-b")).await.expect("node b");
    let c = Node::start(config("trees-c")).await.expect("node c");
    a.connect(b.local_addr()).await.expect("a reaches b");
    a.connect(c.local_addr()).await.expect("a reaches c");
    let (b_tree, _pool) = demo_tree().await;
    let b_root = b_tree.cell().get_name().unwrap();
    // b runs an observer of its own tree; c runs none.
    let on_b = Observer::builder()
        .supervisor(&b_tree)
        .node(&b)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("b's observer");
    let on_a = Observer::builder()
        .node(&a)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("a's observer");
    let addr = on_a.local_addr();

    let answer = get_json(addr, "/api/nodes/trees-b/trees").await;
    assert_eq!(answer["node"], "trees-b");
    assert_eq!(
        answer["trees"][0]["path"],
        b_root.as_str(),
        "b answers with its own tree"
    );
    assert_eq!(
        answer["trees"][0]["children"][1]["tree"]["path"],
        format!("{b_root}/storage")
    );

    let (status, body) = http(addr, "GET", "/api/nodes/trees-c/trees", &[]).await;
    assert_eq!(
        status, 502,
        "a peer without an observer cannot answer: {body}"
    );
    assert!(
        body.contains("no observer"),
        "and the error says why: {body}"
    );
    let (status, _) = http(addr, "GET", "/api/nodes/nobody/trees", &[]).await;
    assert_eq!(status, 404, "an unknown peer is not found");

    on_a.shutdown().await;
    on_b.shutdown().await;
    b_tree.stop(Some(LIMIT)).await.expect("b's tree stops");
    for node in [a, b, c] {
        node.shutdown().await;
    }
}
