//! [`PostgresStore`]: checkpoints in a PostgreSQL table (feature
//! `postgres`, not on by default).

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::limit::{check_size, DEFAULT_MAX_CHECKPOINT_BYTES};
use super::{Checkpoint, CheckpointError, CheckpointStore};

/// How many times a save whose conflicting row vanished (removed between
/// the insert and the look at the stored number) is tried again.
const SAVE_ATTEMPTS: usize = 3;

/// Checkpoints in a PostgreSQL table (feature `postgres`, not on by
/// default).
///
/// For users who outgrow their own nodes' memory and disks, or who already
/// run PostgreSQL for Akka Persistence or Orleans: every node connects to
/// the same database, so an actor restarted on any node finds its state.
///
/// One connection, shared: clone the `Arc<dyn CheckpointStore>` rather than
/// connecting once per actor (concurrent saves are pipelined).
///
/// # Table and semantics
///
/// [`PostgresStore::connect`] creates the table if it is missing:
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS "<table>" (
///     id    TEXT   PRIMARY KEY,
///     seq   BIGINT NOT NULL,
///     bytes BYTEA  NOT NULL
/// )
/// ```
///
/// A save is one statement, run in its own transaction:
///
/// ```sql
/// INSERT INTO "<table>" AS stored (id, seq, bytes) VALUES ($1, $2, $3)
/// ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, bytes = excluded.bytes
/// WHERE stored.seq < excluded.seq
/// ```
///
/// so two copies of an actor saving at once cannot move a checkpoint
/// backwards: when no row was written, the stored checkpoint is at least as
/// new and the save fails with [`CheckpointError::Stale`]. The save is
/// acknowledged when the server reports the commit, which with PostgreSQL's
/// default `synchronous_commit = on` means the write-ahead log is on disk.
///
/// Errors: a connection that fails or breaks gives
/// [`CheckpointError::Unavailable`] (the store does not reconnect by
/// itself: make a new one, which a supervised owner of the store can do on
/// restart); an error the database reports gives
/// [`CheckpointError::Storage`] with its message.
///
/// # Why tokio-postgres
///
/// `tokio-postgres` is the asynchronous client of the `rust-postgres`
/// project: it runs on the tokio runtime the actors already use, pipelines
/// concurrent statements over one connection, and adds no TLS stack or
/// query-building layer (`sqlx` brings its own runtime abstraction,
/// macros and a larger build). TLS is left out: connect over a trusted
/// network or a local socket proxy.
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use ractor_otp::checkpoint::{CheckpointPolicy, CheckpointStore, PostgresStore};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect(
///     "host=127.0.0.1 port=5432 user=app dbname=app",
///     "ractor_checkpoints",
/// )
/// .await?;
/// let store: Arc<dyn CheckpointStore> = Arc::new(store);
/// // Give `store` to `Checkpointed::new` or `ChildSpec::checkpointed`.
/// # let _ = (store, CheckpointPolicy::EveryMessage);
/// # Ok(()) }
/// ```
pub struct PostgresStore {
    client: Client,
    /// The prepared save, load, stored-number and removal statements.
    save: Statement,
    load: Statement,
    stored_seq: Statement,
    remove: Statement,
    /// `postgres:<table>`, the name errors and logs give.
    name: Arc<str>,
    /// The largest checkpoint a save accepts.
    max_checkpoint_bytes: usize,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("name", &self.name)
            .field("max_checkpoint_bytes", &self.max_checkpoint_bytes)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with `conn_str` (libpq's `key=value` form or a
    /// `postgresql://` URL, without TLS) and keeps checkpoints in `table`,
    /// created if missing. `table` is a plain identifier (letters, digits,
    /// `_`, not starting with a digit, at most 63 bytes), used as written
    /// (quoted, so case matters).
    ///
    /// The connection is driven by a task spawned on the current tokio
    /// runtime, and closes when the store is dropped. Checkpoints are
    /// limited to [`DEFAULT_MAX_CHECKPOINT_BYTES`](super::DEFAULT_MAX_CHECKPOINT_BYTES)
    /// unless [`max_checkpoint_bytes`](Self::max_checkpoint_bytes) says
    /// otherwise.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Unavailable`] when the server cannot be reached
    /// or refuses the login; [`CheckpointError::Storage`] for a table name
    /// that is not a plain identifier or a table that cannot be created.
    pub async fn connect(conn_str: &str, table: &str) -> Result<Self, CheckpointError> {
        let name: Arc<str> = format!("postgres:{table}").into();
        if !is_plain_identifier(table) {
            return Err(CheckpointError::Storage {
                store: name.to_string(),
                reason: format!(
                    "`{table}` is not a plain table name; use letters, digits and `_`, not starting with a digit, at most 63 bytes"
                ),
            });
        }
        let (client, connection) = tokio_postgres::connect(conn_str, NoTls)
            .await
            .map_err(|e| CheckpointError::Unavailable {
                store: name.to_string(),
                reason: describe(&e),
            })?;
        let store_name = name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(store = %store_name, error = %describe(&e), "checkpoint store connection ended");
            }
        });
        let fail = |e: tokio_postgres::Error| classify(&name, &e);
        client
            .batch_execute(&format!(
                r#"CREATE TABLE IF NOT EXISTS "{table}" (
                     id TEXT PRIMARY KEY, seq BIGINT NOT NULL, bytes BYTEA NOT NULL)"#
            ))
            .await
            .map_err(fail)?;
        let save = client
            .prepare(&format!(
                r#"INSERT INTO "{table}" AS stored (id, seq, bytes) VALUES ($1, $2, $3)
                   ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, bytes = excluded.bytes
                   WHERE stored.seq < excluded.seq"#
            ))
            .await
            .map_err(fail)?;
        let load = client
            .prepare(&format!(
                r#"SELECT seq, bytes FROM "{table}" WHERE id = $1"#
            ))
            .await
            .map_err(fail)?;
        let stored_seq = client
            .prepare(&format!(r#"SELECT seq FROM "{table}" WHERE id = $1"#))
            .await
            .map_err(fail)?;
        let remove = client
            .prepare(&format!(r#"DELETE FROM "{table}" WHERE id = $1"#))
            .await
            .map_err(fail)?;
        Ok(PostgresStore {
            client,
            save,
            load,
            stored_seq,
            remove,
            name,
            max_checkpoint_bytes: DEFAULT_MAX_CHECKPOINT_BYTES,
        })
    }

    /// Sets the largest checkpoint a save accepts, in bytes; a larger one
    /// is refused with [`CheckpointError::TooLarge`] and nothing is sent.
    #[must_use]
    pub fn max_checkpoint_bytes(mut self, limit: usize) -> Self {
        self.max_checkpoint_bytes = limit;
        self
    }

    fn error(&self, e: &tokio_postgres::Error) -> CheckpointError {
        classify(&self.name, e)
    }

    /// A column that does not read as this store wrote it.
    fn column(&self, e: &tokio_postgres::Error) -> CheckpointError {
        CheckpointError::Storage {
            store: self.name.to_string(),
            reason: format!(
                "the table does not have this store's columns: {}",
                describe(e)
            ),
        }
    }

    async fn put(&self, id: &str, checkpoint: Checkpoint) -> Result<(), CheckpointError> {
        check_size(id, checkpoint.bytes.len(), self.max_checkpoint_bytes)?;
        let seq = i64::try_from(checkpoint.seq).map_err(|_| CheckpointError::Storage {
            store: self.name.to_string(),
            reason: format!(
                "sequence number {} of `{id}` does not fit PostgreSQL's BIGINT",
                checkpoint.seq
            ),
        })?;
        for _ in 0..SAVE_ATTEMPTS {
            let written = self
                .client
                .execute(&self.save, &[&id, &seq, &checkpoint.bytes])
                .await
                .map_err(|e| self.error(&e))?;
            if written == 1 {
                return Ok(());
            }
            // Not written: a stored checkpoint is at least as new.
            let stored = self
                .client
                .query_opt(&self.stored_seq, &[&id])
                .await
                .map_err(|e| self.error(&e))?;
            if let Some(row) = stored {
                let stored: i64 = row.try_get(0).map_err(|e| self.column(&e))?;
                return Err(CheckpointError::Stale {
                    id: id.to_owned(),
                    stored: u64::try_from(stored).unwrap_or(0),
                    offered: checkpoint.seq,
                });
            }
            // It was removed meanwhile: try the insert again.
        }
        Err(CheckpointError::Storage {
            store: self.name.to_string(),
            reason: format!(
                "checkpoint `{id}` was refused and then removed {SAVE_ATTEMPTS} times in a row; another writer keeps changing it"
            ),
        })
    }

    async fn get(&self, id: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some(row) = self
            .client
            .query_opt(&self.load, &[&id])
            .await
            .map_err(|e| self.error(&e))?
        else {
            return Ok(None);
        };
        let seq: i64 = row.try_get(0).map_err(|e| self.column(&e))?;
        let bytes: Vec<u8> = row.try_get(1).map_err(|e| self.column(&e))?;
        let seq = u64::try_from(seq).map_err(|_| CheckpointError::Storage {
            store: self.name.to_string(),
            reason: format!("the stored sequence number of `{id}` is negative ({seq}); the row was not written by this store"),
        })?;
        Ok(Some(Checkpoint { seq, bytes }))
    }
}

impl CheckpointStore for PostgresStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>> {
        Box::pin(self.put(id, checkpoint))
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>> {
        Box::pin(self.get(id))
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>> {
        Box::pin(async move {
            self.client
                .execute(&self.remove, &[&id])
                .await
                .map(|_| ())
                .map_err(|e| self.error(&e))
        })
    }
}

/// Letters, digits and `_`, not starting with a digit, 1 to 63 bytes
/// (PostgreSQL's identifier length): safe to put between double quotes.
fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 63
}

/// The error with its cause (tokio-postgres' own message is only its kind).
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A client error as a store error: the database's own refusals are
/// `Storage`; a lost connection, or a server shutting down or not accepting
/// connections, is `Unavailable`.
fn classify(store: &str, e: &tokio_postgres::Error) -> CheckpointError {
    let unreachable = match e.code() {
        None => true,
        Some(code) => {
            let class = code.code();
            class.starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
    };
    let (store, reason) = (store.to_owned(), describe(e));
    if unreachable {
        CheckpointError::Unavailable { store, reason }
    } else {
        CheckpointError::Storage { store, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain_identifier;

    #[test]
    fn only_plain_identifiers_name_the_table() {
        for ok in ["checkpoints", "_c", "Ck_2", &"a".repeat(63)] {
            assert!(is_plain_identifier(ok), "{ok} is a plain identifier");
        }
        for bad in ["", "2c", "a-b", "a b", "a\"b", "s.t", "é", &"a".repeat(64)] {
            assert!(
                !is_plain_identifier(bad),
                "{bad:?} is not a plain identifier"
            );
        }
    }
}
