//! Shared by the benches: one runtime shape for every variant and baseline.

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

/// Runs `rounds` as a task on `rt` and returns the time it measured.
pub fn on_runtime<F>(rt: &Runtime, rounds: F) -> Duration
where
    F: Future<Output = Duration> + Send + 'static,
{
    rt.block_on(async move { tokio::spawn(rounds).await.expect("bench task panicked") })
}
