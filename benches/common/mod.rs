//! Shared by the benches: one runtime shape for every variant and baseline,
//! and rounds of a variant and its baseline measured as interleaved pairs.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;

/// The runtime of every bench: multi-thread, 2 workers (the machine's cores).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `rounds` as a task on `rt` and returns what it measured.
pub fn on_runtime<F>(rt: &Runtime, rounds: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move { tokio::spawn(rounds).await.expect("bench task panicked") })
}

/// The median of `values`.
#[allow(dead_code)] // not every bench pairs its rounds
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Medians over `pairs` of the time of `a`, the time of `b` and their ratio
/// `a / b`, each pair run back to back (which variant goes first
/// alternates), after `warm_up` pairs.
#[allow(dead_code)]
pub async fn paired_ratio<A, AF, B, BF>(
    pairs: usize,
    warm_up: usize,
    mut a: A,
    mut b: B,
) -> (Duration, Duration, f64)
where
    A: FnMut() -> AF,
    AF: Future<Output = Duration>,
    B: FnMut() -> BF,
    BF: Future<Output = Duration>,
{
    let mut ratios = Vec::with_capacity(pairs);
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for i in 0..warm_up + pairs {
        let (ta, tb) = if i % 2 == 0 {
            let ta = a().await;
            (ta, b().await)
        } else {
            let tb = b().await;
            (a().await, tb)
        };
        if i >= warm_up {
            ratios.push(ta.as_secs_f64() / tb.as_secs_f64());
            times_a.push(ta.as_secs_f64());
            times_b.push(tb.as_secs_f64());
        }
    }
    (
        Duration::from_secs_f64(median(times_a)),
        Duration::from_secs_f64(median(times_b)),
        median(ratios),
    )
}
