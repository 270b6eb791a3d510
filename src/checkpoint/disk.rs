//! [`DiskStore`]: checkpoints in one embedded database file per node
//! (feature `disk`, not on by default).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use redb::{Database, ReadableTable, TableDefinition};

use super::limit::{check_size, DEFAULT_MAX_CHECKPOINT_BYTES};
use super::{Checkpoint, CheckpointError, CheckpointStore};

/// The one table: checkpoint id → (sequence number, encoded state).
const CHECKPOINTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("checkpoints");

/// Checkpoints in one embedded database file per node (feature `disk`,
/// not on by default).
///
/// The store for a whole-cluster restart: every node keeps its checkpoints
/// in a file at a path the user gives, and a node started again on the same
/// file starts its actors from where they were. A save is acknowledged once
/// its write transaction has committed, and a commit is flushed to disk
/// (`fsync`) before it returns, so an acknowledged checkpoint survives a
/// crash of the process or of the machine.
///
/// Open one `DiskStore` per file and share it (`Arc<dyn CheckpointStore>`):
/// a second open of a file already open fails, in this process or another.
///
/// # Why redb
///
/// The file is a [`redb`](https://docs.rs/redb) database, chosen over the
/// other embedded stores for these reasons:
/// - pure Rust: no C library to build or link (RocksDB and LMDB need one,
///   SQLite too), so the `disk` feature costs one crate and no toolchain;
/// - ACID with copy-on-write B-trees: a commit is atomic and durable, a
///   crash leaves the last committed state (no write-ahead log to replay
///   and no compaction threads, unlike LSM stores such as `fjall`);
/// - one file per database and a lock against a second opener, which is
///   what "one file per node" asks for;
/// - well kept: a stable, documented file format, a fuzzed and
///   crash-tested code base, regular releases (`sled`, the other pure-Rust
///   candidate, has had no stable release in years).
///
/// We use the 2.6 line, the last that builds with this crate's minimum
/// Rust version (1.85), and create files in its v3 format, the only one
/// redb 3 and later read, so a later upgrade of redb keeps the files.
///
/// redb's calls block (a commit waits for the disk), so each save, load and
/// removal runs on tokio's blocking thread pool and the actor's task only
/// awaits it.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use ractor_otp::checkpoint::{Checkpoint, CheckpointStore, DiskStore};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("ractor-otp-disk-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("node-a.redb");
///
/// let store = DiskStore::open(&path)?;
/// store.save("counter/a", Checkpoint { seq: 1, bytes: vec![42] }).await?;
/// drop(store); // the node stops...
///
/// // ...and starts again on the same file: the checkpoint is there.
/// let store: Arc<dyn CheckpointStore> = Arc::new(DiskStore::open(&path)?);
/// let saved = store.load("counter/a").await?.expect("kept on disk");
/// assert_eq!((saved.seq, saved.bytes), (1, vec![42]));
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DiskStore {
    /// Shared with the blocking tasks that run each operation.
    db: Arc<Database>,
    /// `disk:<path>`, the name errors and logs give.
    name: Arc<str>,
    /// The largest checkpoint a save accepts.
    max_checkpoint_bytes: usize,
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("name", &self.name)
            .field("max_checkpoint_bytes", &self.max_checkpoint_bytes)
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens the store in the file at `path`, creating the file if it does
    /// not exist (its directory must). Checkpoints are limited to
    /// [`DEFAULT_MAX_CHECKPOINT_BYTES`](super::DEFAULT_MAX_CHECKPOINT_BYTES)
    /// unless [`max_checkpoint_bytes`](Self::max_checkpoint_bytes) says
    /// otherwise.
    ///
    /// Opening blocks while redb reads the file (and repairs it after a
    /// crash); call it before the actors start, or on a blocking thread.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Storage`] when the file cannot be created or
    /// opened (a missing or read-only directory), is not a redb database,
    /// or is already open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let name: Arc<str> = format!("disk:{}", path.display()).into();
        let fail = |what: &str, e: &dyn fmt::Display| CheckpointError::Storage {
            store: name.to_string(),
            reason: format!("{what}: {e}"),
        };
        let db = Database::builder()
            .create_with_file_format_v3(true)
            .create(path)
            .map_err(|e| fail(&open_advice(path, &e), &e))?;
        // Create the table now, so that reads never meet a missing one.
        let txn = db
            .begin_write()
            .map_err(|e| fail("cannot begin a write", &e))?;
        txn.open_table(CHECKPOINTS)
            .map_err(|e| fail("cannot create the checkpoint table", &e))?;
        txn.commit()
            .map_err(|e| fail("cannot create the checkpoint table", &e))?;
        Ok(DiskStore {
            db: Arc::new(db),
            name,
            max_checkpoint_bytes: DEFAULT_MAX_CHECKPOINT_BYTES,
        })
    }

    /// Sets the largest checkpoint a save accepts, in bytes; a larger one
    /// is refused with [`CheckpointError::TooLarge`] and nothing is written.
    #[must_use]
    pub fn max_checkpoint_bytes(mut self, limit: usize) -> Self {
        self.max_checkpoint_bytes = limit;
        self
    }

    /// Runs `op` on the database on tokio's blocking pool.
    fn blocking<T, F>(&self, op: F) -> BoxFuture<'static, Result<T, CheckpointError>>
    where
        T: Send + 'static,
        F: FnOnce(&Database, &str) -> Result<T, CheckpointError> + Send + 'static,
    {
        let db = self.db.clone();
        let name = self.name.clone();
        Box::pin(async move {
            let store = name.clone();
            tokio::task::spawn_blocking(move || op(&db, &name))
                .await
                .unwrap_or_else(|e| {
                    Err(CheckpointError::Unavailable {
                        store: store.to_string(),
                        reason: format!("the disk operation did not finish: {e}"),
                    })
                })
        })
    }
}

/// What to tell the user when the file does not open.
fn open_advice(path: &Path, e: &redb::DatabaseError) -> String {
    let path = path.display();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            format!("`{path}` is already open (by this process or another); open it once and share the store")
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData =>
        {
            format!(
                "cannot create or open `{path}`; check that its directory exists and is writable"
            )
        }
        _ => format!("`{path}` is not a usable checkpoint file (not a redb database, or damaged)"),
    }
}

/// A redb failure as a store error.
fn storage(store: &str, what: &str, e: impl fmt::Display) -> CheckpointError {
    CheckpointError::Storage {
        store: store.to_owned(),
        reason: format!("{what}: {e}"),
    }
}

/// The write transaction of one save: stores `checkpoint` under `id`
/// unless the stored one is at least as new.
fn put(
    db: &Database,
    store: &str,
    id: &str,
    checkpoint: &Checkpoint,
) -> Result<(), CheckpointError> {
    let txn = db
        .begin_write()
        .map_err(|e| storage(store, "cannot begin a write", e))?;
    {
        let mut table = txn
            .open_table(CHECKPOINTS)
            .map_err(|e| storage(store, "cannot open the checkpoint table", e))?;
        let stored = table
            .get(id)
            .map_err(|e| storage(store, "cannot read the stored checkpoint", e))?
            .map(|guard| guard.value().0);
        if let Some(stored) = stored.filter(|&s| s >= checkpoint.seq) {
            // Dropping the transaction without a commit aborts it.
            return Err(CheckpointError::Stale {
                id: id.to_owned(),
                stored,
                offered: checkpoint.seq,
            });
        }
        table
            .insert(id, (checkpoint.seq, checkpoint.bytes.as_slice()))
            .map_err(|e| storage(store, "cannot write the checkpoint", e))?;
    }
    txn.commit()
        .map_err(|e| storage(store, "cannot commit the checkpoint", e))
}

impl CheckpointStore for DiskStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>> {
        if let Err(e) = check_size(id, checkpoint.bytes.len(), self.max_checkpoint_bytes) {
            return Box::pin(async move { Err(e) });
        }
        let id = id.to_owned();
        self.blocking(move |db, store| put(db, store, &id, &checkpoint))
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>> {
        let id = id.to_owned();
        self.blocking(move |db, store| {
            let txn = db
                .begin_read()
                .map_err(|e| storage(store, "cannot begin a read", e))?;
            let table = txn
                .open_table(CHECKPOINTS)
                .map_err(|e| storage(store, "cannot open the checkpoint table", e))?;
            let found = table
                .get(id.as_str())
                .map_err(|e| storage(store, "cannot read the checkpoint", e))?;
            Ok(found.map(|guard| {
                let (seq, bytes) = guard.value();
                Checkpoint {
                    seq,
                    bytes: bytes.to_vec(),
                }
            }))
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>> {
        let id = id.to_owned();
        self.blocking(move |db, store| {
            let txn = db
                .begin_write()
                .map_err(|e| storage(store, "cannot begin a write", e))?;
            txn.open_table(CHECKPOINTS)
                .map_err(|e| storage(store, "cannot open the checkpoint table", e))?
                .remove(id.as_str())
                .map_err(|e| storage(store, "cannot remove the checkpoint", e))?;
            txn.commit()
                .map_err(|e| storage(store, "cannot commit the removal", e))
        })
    }
}
