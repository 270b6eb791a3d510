//! The pool's routing choices side by side.
//!
//! Four workers, one of them slow (it sleeps 2 ms per job, the others
//! 0.2 ms). Each routing gets the same 400 jobs, arriving in waves; the table
//! shows how many jobs each worker handled and how long the batch took. Round robin feeds the slow worker as much as the
//! others and waits for it; least loaded and the shared queue route around
//! it; weighted gives worker 0 half the work; consistent hashing sends each
//! key to its own worker.
//!
//! Run it with `cargo run --example pool`.

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::prelude::*;

/// A job, or a request for "are you done" to wait for the batch.
enum Job {
    Work,
    Flush(RpcReplyPort<()>),
}

/// A worker; worker 3 is slow.
#[derive(Clone)]
struct Worker;

impl Actor for Worker {
    type Msg = Job;
    type State = usize;
    type Arguments = usize;

    async fn pre_start(&self, _: ActorRef<Job>, index: usize) -> Result<usize, ActorProcessingErr> {
        Ok(index)
    }

    async fn handle(
        &self,
        _: ActorRef<Job>,
        job: Job,
        index: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        match job {
            Job::Work if *index == 3 => tokio::time::sleep(Duration::from_millis(2)).await,
            Job::Work => tokio::time::sleep(Duration::from_micros(200)).await,
            Job::Flush(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

const JOBS: u64 = 400;
const WORKERS: usize = 4;

async fn run(name: &str, routing: Routing) -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder(Worker, |index| index)
        .size(WORKERS)
        .routing(routing)
        .spawn(None)
        .await?;
    let started = Instant::now();
    // Jobs arrive in waves of 8, a millisecond apart, as from a stream: the
    // routers that watch the load see the slow worker fall behind.
    for n in 0..JOBS {
        pool.cast_keyed(&(n % 16), Job::Work)
            .map_err(|_| "the pool stopped")?;
        if n % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // Wait until every job is done: the pool is idle when nothing is in
    // flight or waiting.
    for _ in 0..2_000 {
        let stats = pool.stats();
        if stats.waiting == 0 && stats.workers.iter().all(|w| w.in_flight == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let stats = pool.stats();
    let counts: Vec<String> = stats
        .workers
        .iter()
        .map(|w| format!("{:>4}", w.processed))
        .collect();
    println!(
        "{name:<28} {}   {:>6.1} ms",
        counts.join(" "),
        elapsed.as_secs_f64() * 1e3
    );
    // A call goes through the same routing.
    pool.call(Job::Flush, Some(Duration::from_secs(1))).await?;
    pool.stop().await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{JOBS} jobs over {WORKERS} workers; worker 3 is ten times slower\n");
    println!("{:<28}   w0   w1   w2   w3       batch", "routing");
    run("RoundRobin", Routing::RoundRobin).await?;
    run("Random", Routing::Random).await?;
    run("Weighted [4,2,1,1]", Routing::Weighted(vec![4, 2, 1, 1])).await?;
    run(
        "ConsistentHash (16 keys)",
        Routing::ConsistentHash {
            vnodes: 160,
            load_factor: 0.25,
        },
    )
    .await?;
    run("LeastLoaded (p2c)", Routing::LeastLoaded).await?;
    run("SharedQueue FIFO", Routing::SharedQueue(QueueOrder::Fifo)).await?;
    Ok(())
}
