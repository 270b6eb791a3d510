//! The metrics the library records, read back through a small recorder of
//! our own: supervision restarts and exits named by tree path, the
//! children-running gauge, pool counters and per-peer cluster metrics.

mod observer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use observer_support::{demo_tree, LIMIT};
use ractor_otp::cluster::{Node, NodeConfig};

/// Every handle registered, by `name{label=value,...}`.
#[derive(Default)]
struct Recorded {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

/// How many values a histogram got.
#[derive(Default)]
struct Samples(AtomicU64);

impl metrics::HistogramFn for Samples {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn id(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for &'static Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(
            self.counters
                .lock()
                .unwrap()
                .entry(id(key))
                .or_default()
                .clone(),
        )
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(
            self.gauges
                .lock()
                .unwrap()
                .entry(id(key))
                .or_default()
                .clone(),
        )
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(
            self.histograms
                .lock()
                .unwrap()
                .entry(id(key))
                .or_default()
                .clone(),
        )
    }
}

/// The process's recorder, installed once for every test here (before any
/// supervisor, pool or node of these tests starts).
fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<&'static Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let recorded: &'static Recorded = Box::leak(Box::default());
        metrics::set_global_recorder(recorded).expect("no other recorder in this test binary");
        // As the docs ask after installing a recorder: help texts, and
        // timings of pool messages.
        ractor_otp::metrics::describe_all();
        recorded
    })
}

fn counter(name: &str) -> u64 {
    recorded()
        .counters
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

fn gauge(name: &str) -> Option<f64> {
    recorded()
        .gauges
        .lock()
        .unwrap()
        .get(name)
        .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
}

/// Every counter whose id starts with `prefix`, summed.
fn counters_sum(prefix: &str) -> u64 {
    recorded()
        .counters
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, c)| c.load(Ordering::Relaxed))
        .sum()
}

/// Waits until `check` holds, within [`LIMIT`].
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_counted_under_the_supervisors_path_with_the_reason_kind() {
    recorded();
    let (sup, _pool) = demo_tree().await;
    let root = sup.cell().get_name().unwrap();
    let storage = format!("{root}/storage");
    assert_eq!(
        gauge(&format!(
            "ractor_otp_supervisor_children_running{{supervisor={storage}}}"
        )),
        Some(2.0),
        "storage runs db and writer"
    );
    let db = sup
        .supervisor_child("storage")
        .unwrap()
        .child::<String>("db")
        .unwrap();
    db.cast("crash:boom".into()).unwrap();
    let restarts = format!(
        "ractor_otp_supervisor_restarts_total{{supervisor={storage},child=db,reason=failed}}"
    );
    until("db's restart counted", || counter(&restarts) == 1).await;
    assert_eq!(
        counter(&format!("ractor_otp_supervisor_child_exits_total{{supervisor={storage},child=db,reason=failed}}")),
        1,
        "one exit of db, named by the supervisor's path"
    );
    assert_eq!(
        counter(&format!("ractor_otp_supervisor_child_exits_total{{supervisor={storage},child=writer,reason=shutdown}}")),
        0,
        "the writer's stop for the group restart is not an exit"
    );
    until("both running again", || {
        gauge(&format!(
            "ractor_otp_supervisor_children_running{{supervisor={storage}}}"
        )) == Some(2.0)
    })
    .await;
    sup.stop(Some(LIMIT)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_messages_are_counted_per_worker_and_timed() {
    recorded();
    let (sup, pool) = demo_tree().await;
    let root = sup.cell().get_name().unwrap();
    for n in 0..30 {
        pool.cast(n).unwrap();
    }
    let prefix = format!("ractor_otp_pool_processed_total{{pool={root}/hashers,worker=");
    until("30 processed", || counters_sum(&prefix) == 30).await;
    let timed = recorded()
        .histograms
        .lock()
        .unwrap()
        .get(&format!(
            "ractor_otp_pool_message_duration_seconds{{pool={root}/hashers}}"
        ))
        .map_or(0, |h| h.0.load(Ordering::Relaxed));
    assert_eq!(timed, 30, "every message's handling is timed");
    sup.stop(Some(LIMIT)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_report_frames_phi_status_and_round_trips() {
    recorded();
    let config = |name: &str| {
        NodeConfig::new(name)
            .cookie("metrics test")
            .heartbeat_interval(Duration::from_millis(50))
    };
    let a = Node::start(config("m-a")).await.unwrap();
    let b = Node::start(config("m-b")).await.unwrap();
    a.connect(b.local_addr()).await.unwrap();
    until("a sees b's round trip", || {
        gauge("ractor_otp_cluster_peer_rtt_seconds{peer=m-b}").is_some_and(|s| s > 0.0)
    })
    .await;
    until("b is up at a heartbeat tick", || {
        gauge("ractor_otp_cluster_peer_status{peer=m-b}") == Some(2.0)
    })
    .await;
    assert!(
        counter("ractor_otp_remote_frames_received_total{peer=m-b}") > 0,
        "heartbeats are frames"
    );
    assert!(
        counter("ractor_otp_remote_bytes_sent_total{peer=m-b}") > 0,
        "and bytes"
    );
    assert!(gauge("ractor_otp_cluster_peer_phi{peer=m-b}").is_some_and(|phi| phi < 8.0));
    assert_eq!(
        counter("ractor_otp_cluster_events_total{node=m-a,event=up}"),
        1
    );
    b.shutdown().await;
    until("b down", || {
        gauge("ractor_otp_cluster_peer_status{peer=m-b}") == Some(0.0)
    })
    .await;
    a.shutdown().await;
}
