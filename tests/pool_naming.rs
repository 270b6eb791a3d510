//! A pool's name in tracing: its path in the supervision tree. Alone in
//! its file: tracing caches which call sites are of interest per process,
//! so a subscriber set for one thread must not race other tests' events.

mod pool_support;

use std::sync::Arc;
use std::time::Duration;

use pool_support::{eventually, Book, Job, Jobber};
use ractor_otp::Pool;

/// Collects what a `tracing_subscriber::fmt` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_pool_in_a_tree_is_named_by_its_path_in_tracing() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let book = Book::default();
    let builder = Pool::builder(Jobber(book.clone()), |i| i).size(1);
    let (child, pool) = ractor_otp::ChildSpec::pool("hashers", builder).expect("a valid pool");
    let root_name = format!("root-{}", std::process::id());
    let (root, _join) = ractor_otp::Supervisor::spawn(
        Some(root_name.clone()),
        ractor_otp::SupervisorSpec::new(ractor_otp::Strategy::OneForOne).child(child),
    )
    .await
    .expect("the tree starts");
    pool.cast(Job::Fail).expect("the pool runs");
    pool.cast(Job::Work(1)).expect("the pool runs");
    eventually("the worker restarted and handled the next job", || {
        book.count() == 1
    })
    .await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).expect("utf-8 logs");
    let failed = text
        .lines()
        .find(|line| line.contains("pool worker failed"))
        .unwrap_or_else(|| panic!("the failure is logged: {text}"));
    assert!(
        failed.contains(&format!("pool={root_name}/hashers")),
        "the pool is named by its path in the tree: {failed}"
    );
    root.cell()
        .stop_and_wait(None, Some(Duration::from_secs(60)))
        .await
        .expect("the tree stops");
}
