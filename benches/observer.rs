//! What an open observer costs the node it watches: cast throughput through
//! a `ChildRef` while clients refresh the observer's views, against the
//! same casts while they do not (see `BENCHMARKS.md`, "Observability").
//!
//! One round casts for [`ROUND`] in batches of [`BATCH`] (each batch ends
//! with a `call`, so every cast was handled) and counts the casts. Rounds
//! come in interleaved pairs: one with the refresher at work, one with it
//! idle, which goes first alternating; the median of the per-pair ratios is
//! reported. The refresher does what the page does — `GET /api/trees`,
//! `/api/pools` and `/api/cluster` — every [`REFRESH_EVERY`], four times
//! the page's rate (as if four browsers were open), and an event stream is
//! connected throughout.
//!
//! The tree is the observer tests' demo tree (a nested supervisor and a
//! pool of 3) with the benchmarked worker added at its root; a two-node
//! cluster is observed too. No metrics recorder is installed.
//!
//! Run with `cargo bench --features observer --bench observer`.

#![warn(clippy::missing_docs_in_private_items)]

// Only the runtime shape is shared here.
#[allow(dead_code)]
mod common;
#[path = "../tests/observer_support/mod.rs"]
mod observer_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::runtime;
use observer_support::{demo_tree, http};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::cluster::{Node, NodeConfig};
use ractor_otp::observer::Observer;
use ractor_otp::{ChildRef, ChildSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one round casts.
const ROUND: Duration = Duration::from_millis(250);
/// Casts between two `call`s.
const BATCH: u64 = 1_000;
/// Measured pairs of rounds (after [`WARM_UP`]).
const PAIRS: usize = 40;
/// Pairs run first and not counted.
const WARM_UP: usize = 4;
/// How often the refresher reads the views: 4x the page's once a second.
const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// Messages of the benchmarked worker.
enum Msg {
    /// Counted.
    Tick,
    /// Answers once every earlier tick was handled.
    Ping(RpcReplyPort<u64>),
}

/// The benchmarked worker: counts ticks.
#[derive(Clone)]
struct Ticker;

impl Actor for Ticker {
    type Msg = Msg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        ticks: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Tick => *ticks += 1,
            Msg::Ping(port) => {
                let _ = port.send(*ticks);
            }
        }
        Ok(())
    }
}

/// Casts for [`ROUND`]; casts per second.
async fn round(ticker: &ChildRef<Msg>) -> f64 {
    let started = Instant::now();
    let mut casts = 0u64;
    while started.elapsed() < ROUND {
        for _ in 0..BATCH {
            ticker.cast(Msg::Tick).expect("the ticker runs");
        }
        ticker
            .call(Msg::Ping, Some(Duration::from_secs(10)))
            .await
            .expect("the ticker answers");
        casts += BATCH;
    }
    casts as f64 / started.elapsed().as_secs_f64()
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a smoke run (`--test`) or listing
    // measures nothing.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rt = runtime();
    rt.block_on(async {
        tokio::spawn(async {
            let (sup, pool) = demo_tree().await;
            sup.start_child(ChildSpec::new("ticker", Ticker, || ()))
                .await
                .expect("the ticker starts");
            let ticker = sup.child::<Msg>("ticker").expect("ticker");
            let config = |name: &str| NodeConfig::new(name).cookie("observer bench");
            let a = Node::start(config("bench-a")).await.expect("node a");
            let b = Node::start(config("bench-b")).await.expect("node b");
            a.connect(b.local_addr()).await.expect("a reaches b");
            let observer = Observer::builder()
                .supervisor(&sup)
                .pool("hashers", &pool)
                .node(&a)
                .serve("127.0.0.1:0".parse().unwrap())
                .await
                .expect("the observer serves");
            let addr = observer.local_addr();

            // An event stream, open and read throughout.
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream
                .write_all(format!("GET /api/events/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                .await
                .expect("subscribe");
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });

            let refreshing = Arc::new(AtomicBool::new(false));
            let refreshes = Arc::new(AtomicU64::new(0));
            let (flag, count) = (refreshing.clone(), refreshes.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REFRESH_EVERY);
                loop {
                    tick.tick().await;
                    if flag.load(Ordering::Relaxed) {
                        for path in ["/api/trees", "/api/pools", "/api/cluster"] {
                            let (status, _) = http(addr, "GET", path, &[]).await;
                            assert_eq!(status, 200, "GET {path}");
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });

            let (mut ratios, mut with, mut without) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..WARM_UP + PAIRS {
                let mut pair = [0.0; 2];
                for side in [i % 2, 1 - i % 2] {
                    refreshing.store(side == 0, Ordering::Relaxed);
                    pair[side] = round(&ticker).await;
                }
                if i >= WARM_UP {
                    ratios.push(pair[0] / pair[1]);
                    with.push(pair[0]);
                    without.push(pair[1]);
                }
            }
            refreshing.store(false, Ordering::Relaxed);
            println!(
                "observer cost ({PAIRS} interleaved pairs of {ROUND:?} rounds, {} refreshes of trees+pools+cluster every {REFRESH_EVERY:?}): \
                 median ChildRef casts/s refreshing {:.0}, idle {:.0}; refreshing = {:.3} x idle (target >= 0.95)",
                refreshes.load(Ordering::Relaxed),
                median(with),
                median(without),
                median(ratios),
            );
            observer.shutdown().await;
            a.shutdown().await;
            b.shutdown().await;
            sup.stop(Some(Duration::from_secs(10))).await.expect("stop");
        })
        .await
        .expect("bench task")
    });
}
