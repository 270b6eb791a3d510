//! The sender's memory stays bounded when its peer stops reading: casts
//! past the send buffer are handed back (`Busy`), so 50 MiB of attempted
//! casts grow the process by about the buffer, not by what was attempted.
//!
//! Alone in its file: it reads the process's resident memory, which other
//! tests running in the same process would disturb.

mod cluster_support;

use std::time::Duration;

use cluster_support::proxy::{Direction, Mode, Proxy};
use cluster_support::{expect_up, fast_config};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::Node;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
struct Blob(Vec<u8>);

struct Sink;

impl Actor for Sink {
    type Msg = Blob;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Blob>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<Blob>,
        _: Blob,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// This process's resident memory in bytes (Linux), if readable.
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_costs_the_sender_about_its_send_buffer() {
    const BUFFER: usize = 1 << 20;
    const BLOB: usize = 64 * 1024;
    const ATTEMPTS: usize = 800; // 50 MiB of casts
    let b = Node::start(fast_config("b").acceptable_pause(Duration::from_secs(60)))
        .await
        .expect("b");
    let (sink, _) = Actor::spawn(None, Sink, ()).await.expect("spawn");
    b.export("sink", sink).expect("export");
    let proxy = Proxy::start(b.local_addr()).await;
    let a = Node::start(
        fast_config("a")
            .acceptable_pause(Duration::from_secs(60))
            .send_buffer(BUFFER)
            .advertise(proxy.reverse_addr()),
    )
    .await
    .expect("a");
    proxy.set_reverse_target(a.local_addr());
    let mut on_a = a.subscribe();
    a.connect(proxy.addr()).await.expect("connect");
    expect_up(&mut on_a, "b", Duration::from_secs(3)).await;
    let remote = a.lookup::<Blob>("b", "sink").await.expect("lookup");
    // The peer stops reading: the sockets' buffers fill, then the outbox.
    proxy.set_dir(Direction::ToTarget, Mode::Stall);
    let before = resident().expect("/proc/self/statm is readable");
    let (mut sent, mut busy) = (0, 0);
    for _ in 0..ATTEMPTS {
        match remote.cast(Blob(vec![7; BLOB])) {
            Ok(()) => sent += 1,
            Err(e) => {
                assert!(e.is_busy(), "{e}");
                busy += 1;
            }
        }
        if (sent + busy) % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let after = resident().expect("/proc/self/statm is readable");
    let grown = after.saturating_sub(before);
    eprintln!(
        "reliability: {ATTEMPTS} casts of 64 KiB to a peer that stopped reading: {sent} queued or written, {busy} handed back Busy; resident memory grew {} KiB (send buffer {} KiB)",
        grown / 1024,
        BUFFER / 1024
    );
    assert!(busy > ATTEMPTS / 2, "the buffer refused most: {busy} Busy");
    // The buffer, one frame, and a constant for the allocator and the
    // runtime; 50 MiB were attempted.
    assert!(
        grown < (BUFFER + BLOB) as u64 + 24 * 1024 * 1024,
        "resident memory grew by {} KiB",
        grown / 1024
    );
    a.shutdown().await;
    b.shutdown().await;
}
