//! Criterion benchmarks of what a checkpoint costs per message, each next
//! to a baseline measured in the same run (see `BENCHMARKS.md`,
//! "Checkpoints (issue 11)"):
//!
//! 1. `checkpoint_store_save`: one save of a small state (an 8-byte total
//!    and a 16-byte name, 18 bytes encoded) straight into each store —
//!    [`MemoryStore`], [`DiskStore`] vs a bare redb write transaction (the
//!    same table shape, the same reads and writes, the same durability: a
//!    commit with `fsync`; run in a row on a plain thread, and once per hop
//!    to tokio's blocking pool as the store does), and [`PostgresStore`] vs
//!    a bare `INSERT … ON CONFLICT` round trip with tokio-postgres over its
//!    own connection;
//! 2. `checkpoint_per_message`: a call to a counter actor that saves after
//!    every message ([`CheckpointPolicy::EveryMessage`]), on each store, vs
//!    the same call to the same actor without checkpoints;
//! 3. a paired check at the end: each store's save against its bare
//!    baseline, and the call to a checkpointed counter against a plain
//!    call, in interleaved rounds (the time of an `fsync` on a shared
//!    machine drifts between criterion's separate windows by more than the
//!    differences measured).
//!
//! The PostgreSQL server is a real one, started by the test support
//! (`tests/checkpoint_support/postgres.rs`: `initdb` + `pg_ctl` in a
//! temporary directory, on a loopback port, `fsync` on as by default); the
//! redb files live in a temporary directory. Both are removed at the end.
//!
//! Run with `cargo bench --features disk,postgres --bench checkpoint`.

#![warn(clippy::missing_docs_in_private_items)]

mod common;

#[path = "../tests/checkpoint_support/postgres.rs"]
mod pg_support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{on_runtime, paired_ratio, runtime};
use criterion::{Criterion, SamplingMode};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::checkpoint::{
    Checkpoint, CheckpointPolicy, CheckpointStore, Checkpointed, DiskStore, MemoryStore,
    PostgresStore,
};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, Statement};

use pg_support::PgServer;

/// The bare redb baseline's table: the same shape as the store's.
const BARE: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("bare");

/// The bare PostgreSQL baseline's statement: the store's save, by hand.
const BARE_INSERT: &str = "INSERT INTO bare AS stored (id, seq, bytes) VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, bytes = excluded.bytes \
     WHERE stored.seq < excluded.seq";

// ---------------------------------------------------------------------------
// The actor

/// The small state of the benched counter.
#[derive(Clone, Serialize, Deserialize)]
struct Tally {
    /// What was added.
    total: u64,
    /// A short name, so the state is not just a number.
    name: String,
}

/// A fresh state.
fn tally() -> Tally {
    Tally {
        total: 0,
        name: "counter/bench-01".into(),
    }
}

/// The encoded bytes of a small state, as the wrapper saves them.
fn small_state() -> Vec<u8> {
    bincode::serde::encode_to_vec(tally(), bincode::config::standard()).expect("encodes")
}

/// Adds one and answers the total.
struct Add(RpcReplyPort<u64>);

/// The benched counter.
#[derive(Clone)]
struct Counter;

impl Actor for Counter {
    type Msg = Add;
    type State = Tally;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Add>, _: ()) -> Result<Tally, ActorProcessingErr> {
        Ok(tally())
    }

    async fn handle(
        &self,
        _: ActorRef<Add>,
        Add(port): Add,
        state: &mut Tally,
    ) -> Result<(), ActorProcessingErr> {
        state.total += 1;
        let _ = port.send(state.total);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Setup

/// Everything the benches use, started once.
struct Setup {
    /// The bench runtime (2 workers).
    rt: Runtime,
    /// The temporary directory of the redb files.
    dir: PathBuf,
    /// A [`MemoryStore`].
    memory: Arc<dyn CheckpointStore>,
    /// A [`DiskStore`] on `dir/store.redb`.
    disk: Arc<dyn CheckpointStore>,
    /// A bare redb database on `dir/bare.redb`.
    bare_redb: Arc<Database>,
    /// The PostgreSQL server (stopped on drop).
    _pg: PgServer,
    /// A [`PostgresStore`] on the server.
    postgres: Arc<dyn CheckpointStore>,
    /// A bare tokio-postgres client on the same server.
    bare_pg: Arc<Client>,
    /// The prepared [`BARE_INSERT`].
    bare_insert: Statement,
    /// The sequence numbers of each target's record.
    seqs: Seqs,
}

/// One [`Seq`] per record the benches write.
#[derive(Clone, Default)]
struct Seqs {
    /// The memory store's `bench` record.
    memory: Seq,
    /// The disk store's.
    disk: Seq,
    /// The bare redb table's.
    bare_redb: Seq,
    /// The PostgreSQL store's.
    postgres: Seq,
    /// The bare PostgreSQL table's.
    bare_pg: Seq,
}

impl Setup {
    /// Opens the files, starts the server and connects.
    fn new() -> Self {
        let rt = runtime();
        let dir =
            std::env::temp_dir().join(format!("ractor-otp-bench-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench directory");
        let disk = DiskStore::open(dir.join("store.redb")).expect("disk store");
        // The same file format as the store's.
        let bare_redb = Database::builder()
            .create_with_file_format_v3(true)
            .create(dir.join("bare.redb"))
            .expect("bare redb");
        let pg = PgServer::start().unwrap_or_else(|e| panic!("PostgreSQL must start: {e}"));
        let conn = pg.conn_str();
        let (postgres, bare_pg, bare_insert) = rt.block_on(async move {
            let store = PostgresStore::connect(&conn, "checkpoints")
                .await
                .expect("postgres store");
            let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .expect("bare connection");
            tokio::spawn(connection);
            client
                .batch_execute(
                    "CREATE TABLE bare (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, bytes BYTEA NOT NULL)",
                )
                .await
                .expect("bare table");
            let insert = client.prepare(BARE_INSERT).await.expect("prepared");
            (store, client, insert)
        });
        Setup {
            rt,
            dir,
            memory: Arc::new(MemoryStore::new()),
            disk: Arc::new(disk),
            bare_redb: Arc::new(bare_redb),
            _pg: pg,
            postgres: Arc::new(postgres),
            bare_pg: Arc::new(bare_pg),
            bare_insert,
            seqs: Seqs::default(),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// Measured rounds (async, so that criterion and the paired check share them)

/// Sequence numbers handed out to the rounds of one target.
#[derive(Clone, Default)]
struct Seq(Arc<AtomicU64>);

impl Seq {
    /// The first of `n` fresh numbers.
    fn take(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed) + 1
    }
}

/// `n` saves of the small state into `store` under `id`.
async fn store_saves(
    store: Arc<dyn CheckpointStore>,
    id: &'static str,
    seq: Seq,
    n: u64,
) -> Duration {
    let bytes = small_state();
    let first = seq.take(n);
    let start = Instant::now();
    for s in first..first + n {
        let checkpoint = Checkpoint {
            seq: s,
            bytes: bytes.clone(),
        };
        store.save(id, checkpoint).await.expect("saved");
    }
    start.elapsed()
}

/// One bare redb write transaction of the record: the store's save by hand
/// (read the stored number, insert, commit).
fn bare_redb_write(db: &Database, seq: u64, bytes: &[u8]) {
    let txn = db.begin_write().expect("write");
    {
        let mut table = txn.open_table(BARE).expect("table");
        let stored = table.get("bench").expect("read").map(|g| g.value().0);
        assert!(stored.is_none_or(|s| s < seq), "numbers only grow");
        table.insert("bench", (seq, bytes)).expect("insert");
    }
    txn.commit().expect("commit");
}

/// `n` bare redb write transactions in a row on one thread of tokio's
/// blocking pool (a plain thread, not a runtime worker), timed on it.
async fn bare_redb_writes(db: Arc<Database>, seq: Seq, n: u64) -> Duration {
    let bytes = small_state();
    let first = seq.take(n);
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        for s in first..first + n {
            bare_redb_write(&db, s, &bytes);
        }
        start.elapsed()
    })
    .await
    .expect("ran")
}

/// `n` bare redb write transactions, each on tokio's blocking pool (as the
/// store runs them).
async fn bare_redb_writes_on_pool(db: Arc<Database>, seq: Seq, n: u64) -> Duration {
    let bytes: Arc<[u8]> = small_state().into();
    let first = seq.take(n);
    let start = Instant::now();
    for s in first..first + n {
        let (db, bytes) = (db.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || bare_redb_write(&db, s, &bytes))
            .await
            .expect("ran");
    }
    start.elapsed()
}

/// `n` bare `INSERT … ON CONFLICT` round trips.
async fn bare_pg_inserts(client: Arc<Client>, insert: Statement, seq: Seq, n: u64) -> Duration {
    let bytes = small_state();
    let first = seq.take(n) as i64;
    let start = Instant::now();
    for s in first..first + n as i64 {
        let written = client
            .execute(&insert, &[&"bench", &s, &bytes])
            .await
            .expect("inserted");
        assert_eq!(written, 1, "numbers only grow");
    }
    start.elapsed()
}

/// `n` calls to a counter saving after every message into `store` (or to
/// a plain counter without it), started for the round and stopped after.
async fn calls(store: Option<Arc<dyn CheckpointStore>>, n: u64) -> Duration {
    let counter = match store {
        Some(store) => {
            let actor = Checkpointed::new(Counter, store, "actor", CheckpointPolicy::EveryMessage);
            Actor::spawn(None, actor, ()).await.expect("spawned").0
        }
        None => Actor::spawn(None, Counter, ()).await.expect("spawned").0,
    };
    let start = Instant::now();
    for _ in 0..n {
        ractor::call_t!(counter, Add, 30_000).expect("answered");
    }
    let elapsed = start.elapsed();
    counter.stop_and_wait(None, None).await.expect("stopped");
    elapsed
}

// ---------------------------------------------------------------------------
// Criterion groups

/// Saves straight into each store, next to the bare writes.
fn store_save(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("checkpoint_store_save");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    let rt = &setup.rt;
    let store_bench = |group: &mut criterion::BenchmarkGroup<_>,
                       name,
                       store: &Arc<dyn CheckpointStore>,
                       seq: &Seq| {
        group.bench_function(name, |b| {
            b.iter_custom(|n| on_runtime(rt, store_saves(store.clone(), "bench", seq.clone(), n)))
        });
    };
    store_bench(
        &mut group,
        "memory_store",
        &setup.memory,
        &setup.seqs.memory,
    );
    store_bench(&mut group, "disk_store", &setup.disk, &setup.seqs.disk);
    group.bench_function("bare_redb_write", |b| {
        b.iter_custom(|n| {
            on_runtime(
                rt,
                bare_redb_writes(setup.bare_redb.clone(), setup.seqs.bare_redb.clone(), n),
            )
        })
    });
    group.bench_function("bare_redb_write_on_blocking_pool", |b| {
        b.iter_custom(|n| {
            on_runtime(
                rt,
                bare_redb_writes_on_pool(setup.bare_redb.clone(), setup.seqs.bare_redb.clone(), n),
            )
        })
    });
    store_bench(
        &mut group,
        "postgres_store",
        &setup.postgres,
        &setup.seqs.postgres,
    );
    group.bench_function("bare_postgres_insert", |b| {
        b.iter_custom(|n| {
            on_runtime(
                rt,
                bare_pg_inserts(
                    setup.bare_pg.clone(),
                    setup.bare_insert.clone(),
                    setup.seqs.bare_pg.clone(),
                    n,
                ),
            )
        })
    });
    group.finish();
}

/// A call per message to a counter saving after every message, on each
/// store, next to the same counter without checkpoints.
fn per_message(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("checkpoint_per_message");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    let rt = &setup.rt;
    group.bench_function("plain_call", |b| {
        b.iter_custom(|n| on_runtime(rt, calls(None, n)))
    });
    for (name, store) in [
        ("memory_store", &setup.memory),
        ("disk_store", &setup.disk),
        ("postgres_store", &setup.postgres),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|n| on_runtime(rt, calls(Some(store.clone()), n)))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// Paired check

/// Interleaved pairs of rounds in the paired check.
const PAIRS: usize = 60;
/// Saves per round in the paired check.
const SAVES_PER_ROUND: u64 = 20;

/// Prints each store's save against its bare baseline, and a call to a
/// checkpointed counter against a plain call, measured as interleaved
/// pairs of rounds: criterion measures the benches of a group one after
/// the other, and on a shared machine the time of an `fsync` drifts between
/// those windows by more than the difference measured.
fn paired_check(setup: &Setup) {
    let (memory, disk, bare_redb, postgres, bare_pg) = (
        setup.memory.clone(),
        setup.disk.clone(),
        setup.bare_redb.clone(),
        setup.postgres.clone(),
        setup.bare_pg.clone(),
    );
    let (insert, seqs) = (setup.bare_insert.clone(), setup.seqs.clone());
    let n = SAVES_PER_ROUND;
    let results = on_runtime(&setup.rt, async move {
        let disk = paired_ratio(
            PAIRS,
            PAIRS / 5,
            || store_saves(disk.clone(), "bench", seqs.disk.clone(), n),
            || bare_redb_writes(bare_redb.clone(), seqs.bare_redb.clone(), n),
        )
        .await;
        let postgres = paired_ratio(
            PAIRS,
            PAIRS / 5,
            || store_saves(postgres.clone(), "bench", seqs.postgres.clone(), n),
            || bare_pg_inserts(bare_pg.clone(), insert.clone(), seqs.bare_pg.clone(), n),
        )
        .await;
        let per_message = paired_ratio(
            PAIRS,
            PAIRS / 5,
            || calls(Some(memory.clone()), n),
            || calls(None, n),
        )
        .await;
        [
            ("disk store save", "bare redb write", disk),
            ("postgres store save", "bare INSERT … ON CONFLICT", postgres),
            (
                "call to a checkpointed (memory) counter",
                "plain call",
                per_message,
            ),
        ]
    });
    for (variant, baseline, (a, b, ratio)) in results {
        let (a, b) = (a / n as u32, b / n as u32);
        println!(
            "checkpoint paired check ({PAIRS} interleaved pairs of {n}): {variant} {a:.2?}, \
             {baseline} {b:.2?}; {variant} = {ratio:.2} x {baseline}"
        );
    }
}

fn main() {
    let setup = Setup::new();
    let mut c = Criterion::default().configure_from_args();
    store_save(&mut c, &setup);
    per_message(&mut c, &setup);
    c.final_summary();
    paired_check(&setup);
}
