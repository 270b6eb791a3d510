//! Checkpointed actors on one node (DESIGN §10): the save policies, local
//! restarts that keep the state, bad and oversized checkpoints, two
//! writers of one id, and the durable stores — [`DiskStore`] (feature
//! `disk`) across a reopening of its file, and [`PostgresStore`] (feature
//! `postgres`) against a real server started by the test support.
//!
//! Run everything with `cargo test --features postgres,disk --test checkpoint`
//! (PostgreSQL's `initdb` must be installed; the PostgreSQL tests fail, they
//! do not skip, when the server cannot start).
//!
//! Saves are observed through [`Recorder`], a store wrapper that reports
//! each save it passes on, so no test guesses when a save happened.

mod common;

#[cfg(feature = "postgres")]
#[path = "checkpoint_support/postgres.rs"]
mod pg_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use ractor_otp::checkpoint::{
    request, Checkpoint, CheckpointError, CheckpointPolicy, CheckpointStore, Checkpointed,
    MemoryStore,
};
use ractor_otp::ChildSpec;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use common::{one_for_one, spawn, stop, wait_until, Log, Parent};

// ---------------------------------------------------------------------------
// A checkpointed counter

/// What the counter is told.
enum Msg {
    /// Adds to the total.
    Add(u64),
    /// Answers the total.
    Get(RpcReplyPort<u64>),
    /// Asks for a checkpoint ([`request`]).
    Checkpoint,
    /// Fails the handler.
    Crash,
    /// Appends `n` bytes to the state (to outgrow a store's limit).
    #[cfg_attr(not(feature = "disk"), allow(dead_code))]
    Grow(usize),
}

/// The counter's state, the part that is checkpointed.
#[derive(Debug, Serialize, Deserialize)]
struct Tally {
    total: u64,
    ballast: Vec<u8>,
}

/// A counter that counts its fresh starts (`pre_start` calls).
#[derive(Clone, Default)]
struct Counter {
    fresh_starts: Arc<AtomicUsize>,
}

impl Actor for Counter {
    type Msg = Msg;
    type State = Tally;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Msg>, _: ()) -> Result<Tally, ActorProcessingErr> {
        self.fresh_starts.fetch_add(1, Ordering::SeqCst);
        Ok(Tally {
            total: 0,
            ballast: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Msg>,
        msg: Msg,
        tally: &mut Tally,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Add(n) => tally.total += n,
            Msg::Get(port) => {
                let _ = port.send(tally.total);
            }
            Msg::Checkpoint => assert!(request(), "request() works inside a checkpointed handler"),
            Msg::Crash => return Err("the counter crashed on purpose".into()),
            Msg::Grow(n) => tally.ballast.resize(tally.ballast.len() + n, 7),
        }
        Ok(())
    }
}

/// How long any single wait for an actor or a save may take.
const BOUND: Duration = Duration::from_secs(10);

/// The counter's total, asked with a bounded call.
async fn total(counter: &ActorRef<Msg>) -> u64 {
    ractor::call_t!(counter, Msg::Get, BOUND.as_millis() as u64).expect("the counter answers")
}

/// Spawns a checkpointed counter under `id`, which must start.
async fn start(
    store: &Arc<dyn CheckpointStore>,
    id: &str,
    policy: CheckpointPolicy,
) -> ActorRef<Msg> {
    let actor = Checkpointed::new(Counter::default(), store.clone(), id, policy);
    Actor::spawn(None, actor, ())
        .await
        .expect("the counter starts")
        .0
}

/// Stops `counter` gracefully (saving what is unsaved) and waits. A stop
/// comes before the messages still queued: wait for an answer first.
async fn stop_counter(counter: ActorRef<Msg>) {
    tokio::time::timeout(BOUND, counter.stop_and_wait(None, None))
        .await
        .expect("the counter stops in bounded time")
        .expect("the counter stops");
}

/// A checkpointed counter spawned under a [`Parent`] that records how it
/// ends in `exits`.
async fn start_linked(
    store: &Arc<dyn CheckpointStore>,
    id: &str,
    exits: &Log,
) -> (ActorRef<Msg>, ActorRef<()>) {
    let (parent, _) = Actor::spawn(None, Parent::new(exits), ())
        .await
        .expect("the parent starts");
    let actor = Checkpointed::new(
        Counter::default(),
        store.clone(),
        id,
        CheckpointPolicy::EveryMessage,
    );
    let (counter, _) = Actor::spawn_linked(None, actor, (), parent.get_cell())
        .await
        .expect("the counter starts");
    (counter, parent)
}

/// The reason a linked counter failed with, once its parent saw it.
async fn failure(exits: &Log) -> String {
    wait_until("the counter's failure reaches its parent", || async {
        !exits.with_prefix("failed:").is_empty()
    })
    .await;
    exits.with_prefix("failed:").remove(0)
}

// ---------------------------------------------------------------------------
// A store that reports its saves

/// Passes everything to `inner` and reports the number of each save that
/// succeeded.
struct Recorder {
    inner: Arc<dyn CheckpointStore>,
    saved: mpsc::UnboundedSender<u64>,
}

impl Recorder {
    /// A recorder over a fresh [`MemoryStore`], and the receiving end of
    /// its save reports.
    fn memory() -> (Arc<dyn CheckpointStore>, Saves) {
        let (tx, rx) = mpsc::unbounded_channel();
        let store = Recorder {
            inner: Arc::new(MemoryStore::new()),
            saved: tx,
        };
        (Arc::new(store), Saves(rx))
    }
}

impl CheckpointStore for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>> {
        Box::pin(async move {
            let seq = checkpoint.seq;
            self.inner.save(id, checkpoint).await?;
            let _ = self.saved.send(seq);
            Ok(())
        })
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>> {
        self.inner.load(id)
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>> {
        self.inner.remove(id)
    }
}

/// The save reports of a [`Recorder`].
struct Saves(mpsc::UnboundedReceiver<u64>);

impl Saves {
    /// The number of the next save, within [`BOUND`].
    async fn next(&mut self) -> u64 {
        tokio::time::timeout(BOUND, self.0.recv())
            .await
            .expect("a save happens in bounded time")
            .expect("the recorder lives")
    }

    /// Asserts that no save has been reported.
    fn none(&mut self, when: &str) {
        assert_eq!(self.0.try_recv().ok(), None, "no save {when}");
    }
}

// ---------------------------------------------------------------------------
// Policies

#[tokio::test]
async fn every_message_saves_after_each_message_and_a_new_incarnation_starts_from_it() {
    let (store, mut saves) = Recorder::memory();
    let counter = start(&store, "every", CheckpointPolicy::EveryMessage).await;
    for n in [1, 2, 3] {
        counter.cast(Msg::Add(n)).expect("cast");
    }
    for seq in [1, 2, 3] {
        assert_eq!(saves.next().await, seq, "one save per message, in order");
    }
    stop_counter(counter).await;
    saves.none("on a stop with nothing unsaved");

    let again = start(&store, "every", CheckpointPolicy::EveryMessage).await;
    assert_eq!(
        total(&again).await,
        6,
        "the new incarnation starts from the checkpoint"
    );
    assert_eq!(
        saves.next().await,
        4,
        "the numbering goes on from the restored checkpoint"
    );
    stop_counter(again).await;
}

#[tokio::test]
async fn every_n_saves_after_n_messages_and_a_kill_loses_only_the_unsaved_ones() {
    let (store, mut saves) = Recorder::memory();
    let counter = start(&store, "every-n", CheckpointPolicy::EveryN(2)).await;
    counter.cast(Msg::Add(1)).expect("cast");
    assert_eq!(total(&counter).await, 1);
    // The Get was message 2: its save follows it.
    assert_eq!(saves.next().await, 1);
    counter.cast(Msg::Add(2)).expect("cast");
    counter.cast(Msg::Add(3)).expect("cast");
    assert_eq!(saves.next().await, 2, "the fourth message saves");
    counter.cast(Msg::Add(100)).expect("cast");
    assert_eq!(total(&counter).await, 106);
    assert_eq!(saves.next().await, 3, "the sixth message saves");
    counter.cast(Msg::Add(1000)).expect("cast");
    // Message 7 is handled before the Get (8) answers; 8 then saves.
    assert_eq!(total(&counter).await, 1106);
    assert_eq!(saves.next().await, 4);
    counter.cast(Msg::Add(5)).expect("cast");
    // A kill runs no post_stop: the unsaved Add(5) is lost.
    tokio::time::timeout(BOUND, counter.kill_and_wait(None))
        .await
        .expect("killed in bounded time")
        .expect("killed");
    saves.none("on a kill");

    let again = start(&store, "every-n", CheckpointPolicy::EveryN(2)).await;
    assert_eq!(
        total(&again).await,
        1106,
        "restarted from the last save, without Add(5)"
    );
    stop_counter(again).await;
}

#[tokio::test(start_paused = true)]
async fn interval_saves_on_the_first_message_once_the_interval_has_passed() {
    let every = Duration::from_secs(10);
    let (store, mut saves) = Recorder::memory();
    let counter = start(&store, "interval", CheckpointPolicy::Interval(every)).await;
    counter.cast(Msg::Add(1)).expect("cast");
    assert_eq!(total(&counter).await, 1);
    tokio::time::advance(every - Duration::from_millis(1)).await;
    counter.cast(Msg::Add(2)).expect("cast");
    assert_eq!(total(&counter).await, 3);
    saves.none("before the interval has passed");

    tokio::time::advance(Duration::from_millis(1)).await;
    counter.cast(Msg::Add(3)).expect("cast");
    assert_eq!(
        saves.next().await,
        1,
        "the first message after the interval saves"
    );
    assert_eq!(total(&counter).await, 6);
    saves.none("right after a save");

    // A quiet actor's changes are saved on its graceful stop.
    stop_counter(counter).await;
    assert_eq!(
        saves.next().await,
        2,
        "a graceful stop saves the unsaved Get"
    );
}

#[tokio::test]
async fn on_request_saves_only_when_the_actor_asks_and_on_a_graceful_stop() {
    assert!(
        !request(),
        "request() outside a checkpointed handler does nothing"
    );
    let (store, mut saves) = Recorder::memory();
    let counter = start(&store, "on-request", CheckpointPolicy::OnRequest).await;
    counter.cast(Msg::Add(1)).expect("cast");
    counter.cast(Msg::Add(2)).expect("cast");
    assert_eq!(total(&counter).await, 3);
    saves.none("before the actor asks");
    counter.cast(Msg::Checkpoint).expect("cast");
    assert_eq!(saves.next().await, 1, "the actor asked");
    assert_eq!(total(&counter).await, 3);
    saves.none("after a message that did not ask");
    counter.cast(Msg::Add(5)).expect("cast");
    assert_eq!(total(&counter).await, 8);
    saves.none("after messages that did not ask");
    stop_counter(counter).await;
    assert_eq!(
        saves.next().await,
        2,
        "the graceful stop saves the unsaved Add(5)"
    );

    let again = start(&store, "on-request", CheckpointPolicy::OnRequest).await;
    assert_eq!(total(&again).await, 8);
    stop_counter(again).await;
}

// ---------------------------------------------------------------------------
// Supervised children

/// Runs a supervised checkpointed counter on `store`: adds, crashes it,
/// and checks that the restarted incarnation has the state and that only
/// the first start was fresh.
async fn crash_and_restart_keeps_the_state(store: Arc<dyn CheckpointStore>) {
    let counter = Counter::default();
    let fresh = counter.fresh_starts.clone();
    let sup = spawn(one_for_one(vec![ChildSpec::checkpointed(
        "counter",
        counter,
        || (),
        store.clone(),
        CheckpointPolicy::EveryMessage,
    )]))
    .await;
    let child = sup.child::<Msg>("counter").expect("the child handles Msg");
    child.cast(Msg::Add(5)).expect("cast");
    child.cast(Msg::Add(7)).expect("cast");
    assert_eq!(
        child.call(Msg::Get, Some(BOUND)).await.expect("answers"),
        12
    );
    let before = child.current().expect("running").get_id();
    child.cast(Msg::Crash).expect("cast");
    wait_until("the counter runs as a new incarnation", || async {
        child.current().is_some_and(|c| c.get_id() != before)
    })
    .await;
    assert_eq!(
        child.call(Msg::Get, Some(BOUND)).await.expect("answers"),
        12,
        "the restarted child begins from its checkpoint"
    );
    assert_eq!(
        fresh.load(Ordering::SeqCst),
        1,
        "pre_start ran only on the first start"
    );
    stop(&sup).await;
    let saved = store
        .load("counter")
        .await
        .expect("loads")
        .expect("saved under the child id");
    assert_eq!(
        saved.seq, 4,
        "Add, Add, Get, Get: the failed handler saved nothing"
    );
}

#[tokio::test]
async fn a_supervised_child_restarts_with_its_state_from_a_memory_store() {
    crash_and_restart_keeps_the_state(Arc::new(MemoryStore::new())).await;
}

// ---------------------------------------------------------------------------
// Bad checkpoints, oversized states, two writers

/// The checkpoint error inside a failed start.
fn start_error(err: SpawnErr) -> CheckpointError {
    match err {
        SpawnErr::StartupFailed(e) => e
            .downcast_ref::<CheckpointError>()
            .cloned()
            .unwrap_or_else(|| panic!("the start failed with a CheckpointError, not {e}")),
        other => panic!("the start failed, not {other}"),
    }
}

/// A checkpoint that does not decode fails the start with `Decode` and is
/// left in `store` as it was.
async fn undecodable_checkpoint_fails_the_start(store: Arc<dyn CheckpointStore>) {
    let garbage = Checkpoint {
        seq: 7,
        bytes: vec![0xff; 3],
    };
    store.save("bad", garbage.clone()).await.expect("saved");
    let counter = Counter::default();
    let fresh = counter.fresh_starts.clone();
    let actor = Checkpointed::new(
        counter,
        store.clone(),
        "bad",
        CheckpointPolicy::EveryMessage,
    );
    let err = Actor::spawn(None, actor, ())
        .await
        .expect_err("the start fails");
    assert!(
        matches!(start_error(err), CheckpointError::Decode { ref id, .. } if id == "bad"),
        "a checkpoint that does not decode is a Decode error"
    );
    assert_eq!(
        fresh.load(Ordering::SeqCst),
        0,
        "no fresh start replaces the bad checkpoint"
    );
    assert_eq!(
        store.load("bad").await.expect("loads"),
        Some(garbage),
        "the stored checkpoint is unchanged"
    );
}

#[tokio::test]
async fn a_checkpoint_that_does_not_decode_fails_the_start_and_stays_stored() {
    undecodable_checkpoint_fails_the_start(Arc::new(MemoryStore::new())).await;
}

/// A save refused as stale fails the second writer; the first one's
/// checkpoint stays.
async fn a_second_writer_of_one_id_is_stale(store: Arc<dyn CheckpointStore>) {
    let exits = Log::new();
    let first = start(&store, "twice", CheckpointPolicy::EveryMessage).await;
    let (second, _parent) = start_linked(&store, "twice", &exits).await;
    first.cast(Msg::Add(1)).expect("cast");
    assert_eq!(total(&first).await, 1);
    // Its Get is saved (#2) before it stops.
    stop_counter(first).await;
    second.cast(Msg::Add(50)).expect("cast");
    let reason = failure(&exits).await;
    assert!(
        reason.contains("#1 is stale: #2 is already stored"),
        "the second writer fails as stale: {reason}"
    );
    let saved = store.load("twice").await.expect("loads").expect("saved");
    assert_eq!(saved.seq, 2, "the first writer's checkpoint stays");
}

#[tokio::test]
async fn a_second_writer_of_one_id_fails_as_stale_in_a_memory_store() {
    a_second_writer_of_one_id_is_stale(Arc::new(MemoryStore::new())).await;
}

// ---------------------------------------------------------------------------
// The store contract

/// What every store does: keeps the newest checkpoint of each id, refuses
/// an older or equal number as stale without changing anything, removes
/// (an unknown id too), and starts a removed id again at 1. Leaves `b` at
/// #1 with bytes `[5, 5, 5]`.
async fn store_contract(store: &dyn CheckpointStore) {
    let cp = |seq, byte| Checkpoint {
        seq,
        bytes: vec![byte; 3],
    };
    assert_eq!(store.load("a").await, Ok(None));
    store.save("a", cp(1, 1)).await.expect("first save");
    store.save("a", cp(2, 2)).await.expect("newer save");
    for offered in [2, 1] {
        assert_eq!(
            store.save("a", cp(offered, 9)).await,
            Err(CheckpointError::Stale {
                id: "a".into(),
                stored: 2,
                offered
            }),
            "an older or equal number is stale"
        );
    }
    assert_eq!(
        store.load("a").await,
        Ok(Some(cp(2, 2))),
        "the stale saves changed nothing"
    );
    store.save("b", cp(1, 5)).await.expect("another id");
    store.remove("a").await.expect("removed");
    store
        .remove("a")
        .await
        .expect("removing an unknown id is fine");
    assert_eq!(store.load("a").await, Ok(None));
    assert_eq!(
        store.load("b").await,
        Ok(Some(cp(1, 5))),
        "other ids are untouched"
    );
    store
        .save("a", cp(1, 6))
        .await
        .expect("a removed id starts again at 1");
}

#[tokio::test]
async fn the_memory_store_keeps_the_store_contract() {
    store_contract(&MemoryStore::new()).await;
}

// ---------------------------------------------------------------------------
// DiskStore

#[cfg(feature = "disk")]
mod disk {
    use super::*;
    use ractor_otp::checkpoint::DiskStore;
    use ractor_otp::SupervisorRef;
    use std::path::{Path, PathBuf};

    /// A fresh directory for one test, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("ractor-otp-ckpt-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("the temporary directory is created");
            TempDir(dir)
        }
        pub(crate) fn path(&self, file: &str) -> PathBuf {
            self.0.join(file)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(path: &Path) -> Arc<dyn CheckpointStore> {
        Arc::new(DiskStore::open(path).expect("the disk store opens"))
    }

    /// The `Storage` reason of a failed open.
    fn open_error(path: &Path) -> String {
        match DiskStore::open(path) {
            Err(CheckpointError::Storage { store, reason }) => {
                assert_eq!(
                    store,
                    format!("disk:{}", path.display()),
                    "the error names the file"
                );
                reason
            }
            Err(other) => panic!("opening {} is a Storage error, not {other}", path.display()),
            Ok(_) => panic!("{} does not open", path.display()),
        }
    }

    #[tokio::test]
    async fn disk_store_keeps_the_newest_refuses_stale_and_removes() {
        let dir = TempDir::new("basic");
        store_contract(open(&dir.path("node.redb")).as_ref()).await;
    }

    #[tokio::test]
    async fn disk_store_refuses_a_checkpoint_over_its_limit() {
        let dir = TempDir::new("limit");
        let store = DiskStore::open(dir.path("node.redb"))
            .expect("opens")
            .max_checkpoint_bytes(16);
        let big = Checkpoint {
            seq: 1,
            bytes: vec![0; 17],
        };
        assert_eq!(
            store.save("a", big).await,
            Err(CheckpointError::TooLarge {
                id: "a".into(),
                size: 17,
                limit: 16
            })
        );
        assert_eq!(store.load("a").await, Ok(None), "nothing was written");
        let fits = Checkpoint {
            seq: 1,
            bytes: vec![0; 16],
        };
        store.save("a", fits).await.expect("the limit itself fits");
    }

    #[tokio::test]
    async fn a_state_over_the_limit_fails_the_actor_and_keeps_the_last_checkpoint() {
        let dir = TempDir::new("too-large");
        let store: Arc<dyn CheckpointStore> = Arc::new(
            DiskStore::open(dir.path("node.redb"))
                .expect("opens")
                .max_checkpoint_bytes(64),
        );
        let exits = Log::new();
        let (counter, _parent) = start_linked(&store, "big", &exits).await;
        counter.cast(Msg::Add(3)).expect("cast");
        counter.cast(Msg::Grow(100)).expect("cast");
        let reason = failure(&exits).await;
        assert!(
            reason.contains("over the store's limit of 64"),
            "the actor fails with TooLarge: {reason}"
        );
        let saved = store
            .load("big")
            .await
            .expect("loads")
            .expect("the first save stays");
        assert_eq!(saved.seq, 1, "the oversized state was not stored");
    }

    #[test]
    fn an_unusable_path_or_file_is_a_clear_storage_error() {
        let dir = TempDir::new("errors");
        let reason = open_error(&dir.path("missing-dir/node.redb"));
        assert!(
            reason.contains("directory exists and is writable"),
            "{reason}"
        );

        let file = dir.path("a-file");
        std::fs::write(&file, b"not a directory").expect("written");
        let reason = open_error(&file.join("node.redb"));
        assert!(
            reason.contains("directory exists and is writable"),
            "{reason}"
        );

        let not_redb = dir.path("notes.txt");
        std::fs::write(&not_redb, "this is not a redb database\n".repeat(200)).expect("written");
        let reason = open_error(&not_redb);
        assert!(reason.contains("not a usable checkpoint file"), "{reason}");
        assert_eq!(
            std::fs::read_to_string(&not_redb).expect("read"),
            "this is not a redb database\n".repeat(200),
            "the foreign file is left as it was"
        );

        let node = dir.path("node.redb");
        let _open = DiskStore::open(&node).expect("opens");
        let reason = open_error(&node);
        assert!(reason.contains("is already open"), "{reason}");
    }

    /// A read-only location even for root: procfs refuses new files.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_read_only_location_is_a_clear_storage_error() {
        let reason = open_error(Path::new("/proc/ractor-otp-checkpoints.redb"));
        assert!(
            reason.contains("directory exists and is writable"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_supervised_child_restarts_with_its_state_from_a_disk_store() {
        let dir = TempDir::new("supervised");
        crash_and_restart_keeps_the_state(open(&dir.path("node.redb"))).await;
    }

    #[tokio::test]
    async fn a_checkpoint_on_disk_that_does_not_decode_fails_the_start_and_stays_stored() {
        let dir = TempDir::new("decode");
        undecodable_checkpoint_fails_the_start(open(&dir.path("node.redb"))).await;
    }

    #[tokio::test]
    async fn a_second_writer_of_one_id_fails_as_stale_in_a_disk_store() {
        let dir = TempDir::new("stale");
        a_second_writer_of_one_id_is_stale(open(&dir.path("node.redb"))).await;
    }

    /// A supervisor of counters `a` and `b` on `store`.
    async fn node(store: &Arc<dyn CheckpointStore>) -> SupervisorRef {
        let child = |id: &str| {
            ChildSpec::checkpointed(
                id,
                Counter::default(),
                || (),
                store.clone(),
                CheckpointPolicy::EveryN(10),
            )
        };
        spawn(one_for_one(vec![child("a"), child("b")])).await
    }

    #[tokio::test]
    async fn the_disk_store_survives_a_restart_of_the_whole_node() {
        let dir = TempDir::new("whole-node");
        let path = dir.path("node.redb");
        let store = open(&path);
        let sup = node(&store).await;
        for (id, n) in [("a", 3), ("b", 40)] {
            let child = sup.child::<Msg>(id).expect("child");
            child.cast(Msg::Add(n)).expect("cast");
            child.cast(Msg::Add(n)).expect("cast");
        }
        // EveryN(10) has saved nothing yet: the graceful stop saves.
        stop(&sup).await;
        drop((sup, store));

        // The whole node starts again on the same file, once the old
        // node's tasks have dropped their handles to it.
        let mut reopened = None;
        wait_until("the file can be opened again", || {
            let ok = match DiskStore::open(&path) {
                Ok(store) => {
                    reopened = Some(store);
                    true
                }
                Err(CheckpointError::Storage { reason, .. }) if reason.contains("already open") => {
                    false
                }
                Err(e) => panic!("the file opens again: {e}"),
            };
            async move { ok }
        })
        .await;
        let store: Arc<dyn CheckpointStore> = Arc::new(reopened.expect("reopened"));
        let sup = node(&store).await;
        for (id, want) in [("a", 6), ("b", 80)] {
            let child = sup.child::<Msg>(id).expect("child");
            assert_eq!(
                child.call(Msg::Get, Some(BOUND)).await.expect("answers"),
                want,
                "`{id}` starts from the checkpoint saved before the node stopped"
            );
        }
        stop(&sup).await;
    }
}

// ---------------------------------------------------------------------------
// PostgresStore, against a real server

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use pg_support::PgServer;
    use ractor_otp::checkpoint::PostgresStore;

    /// Starts the test server; the test fails if it cannot.
    async fn server() -> PgServer {
        tokio::task::spawn_blocking(PgServer::start)
            .await
            .expect("the server start ran")
            .unwrap_or_else(|e| panic!("the PostgreSQL test server must start: {e}"))
    }

    async fn connect(pg: &PgServer, table: &str) -> PostgresStore {
        PostgresStore::connect(&pg.conn_str(), table)
            .await
            .unwrap_or_else(|e| panic!("connects to the test server: {e}"))
    }

    #[tokio::test]
    async fn postgres_store_saves_loads_refuses_stale_and_removes() {
        let pg = server().await;
        let store = connect(&pg, "checkpoints").await;
        assert_eq!(store.name(), "postgres:checkpoints");
        store_contract(&store).await;

        // A second connection finds the table and its rows.
        let other = connect(&pg, "checkpoints").await.max_checkpoint_bytes(4);
        let kept = Checkpoint {
            seq: 1,
            bytes: vec![5; 3],
        };
        assert_eq!(other.load("b").await, Ok(Some(kept.clone())));
        assert_eq!(
            other
                .save(
                    "b",
                    Checkpoint {
                        seq: 2,
                        bytes: vec![0; 5]
                    }
                )
                .await,
            Err(CheckpointError::TooLarge {
                id: "b".into(),
                size: 5,
                limit: 4
            })
        );
        assert_eq!(
            other.load("b").await,
            Ok(Some(kept.clone())),
            "nothing was written"
        );

        match PostgresStore::connect(&pg.conn_str(), "bad-name; DROP TABLE checkpoints").await {
            Err(CheckpointError::Storage { reason, .. }) => {
                assert!(reason.contains("not a plain table name"), "{reason}")
            }
            other => panic!("a table name that is not an identifier is refused, got {other:?}"),
        }

        // The server goes away: the store is unavailable, not broken.
        drop(pg);
        match store.save("b", Checkpoint { seq: 2, ..kept }).await {
            Err(CheckpointError::Unavailable { store, .. }) => {
                assert_eq!(store, "postgres:checkpoints")
            }
            other => panic!("a stopped server makes the store unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn postgres_store_keeps_a_supervised_child_state_across_crashes_and_node_restarts() {
        let pg = server().await;
        let store: Arc<dyn CheckpointStore> = Arc::new(connect(&pg, "node_checkpoints").await);
        crash_and_restart_keeps_the_state(store.clone()).await;
        undecodable_checkpoint_fails_the_start(store.clone()).await;
        a_second_writer_of_one_id_is_stale(store).await;

        // A new node (a new connection) starts the counter from its row.
        let store: Arc<dyn CheckpointStore> = Arc::new(connect(&pg, "node_checkpoints").await);
        let counter = start(&store, "counter", CheckpointPolicy::EveryMessage).await;
        assert_eq!(
            total(&counter).await,
            12,
            "the state saved by the first node"
        );
        stop_counter(counter).await;
    }
}
