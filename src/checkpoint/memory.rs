//! [`MemoryStore`]: checkpoints in this process's memory.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::{Checkpoint, CheckpointError, CheckpointStore};

/// Checkpoints kept in this process's memory: they survive restarts of the
/// actor (by its supervisor), not of the process. For tests, and for local
/// children whose state only needs to outlive a crash.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Checkpoint>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many ids hold a checkpoint.
    pub fn len(&self) -> usize {
        lock!(self.map.lock()).len()
    }

    /// Whether no id holds a checkpoint.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `checkpoint` unless one at least as new is there.
    pub(crate) fn put(&self, id: &str, checkpoint: Checkpoint) -> Result<(), CheckpointError> {
        let mut map = lock!(self.map.lock());
        if let Some(old) = map.get(id) {
            if old.seq >= checkpoint.seq {
                return Err(CheckpointError::Stale {
                    id: id.to_owned(),
                    stored: old.seq,
                    offered: checkpoint.seq,
                });
            }
        }
        map.insert(id.to_owned(), checkpoint);
        Ok(())
    }

    /// The checkpoint of `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<Checkpoint> {
        lock!(self.map.lock()).get(id).cloned()
    }

    /// Every id with its checkpoint.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn entries(&self) -> Vec<(String, Checkpoint)> {
        lock!(self.map.lock())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// Puts back `previous` under `id` if `id` still holds checkpoint
    /// number `seq` (undoing a put that turned out not to count).
    pub(crate) fn undo(&self, id: &str, seq: u64, previous: Option<Checkpoint>) {
        let mut map = lock!(self.map.lock());
        if map.get(id).is_some_and(|c| c.seq == seq) {
            match previous {
                Some(p) => {
                    map.insert(id.to_owned(), p);
                }
                None => {
                    map.remove(id);
                }
            }
        }
    }

    /// Forgets `id`.
    pub(crate) fn delete(&self, id: &str) {
        lock!(self.map.lock()).remove(id);
    }
}

impl CheckpointStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    fn save<'a>(
        &'a self,
        id: &'a str,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'a, Result<(), CheckpointError>> {
        let result = self.put(id, checkpoint);
        Box::pin(async move { result })
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Checkpoint>, CheckpointError>> {
        let found = self.get(id);
        Box::pin(async move { Ok(found) })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CheckpointError>> {
        self.delete(id);
        Box::pin(async move { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_newest_and_refuses_stale() {
        let s = MemoryStore::new();
        assert_eq!(s.load("a").await, Ok(None));
        s.save(
            "a",
            Checkpoint {
                seq: 1,
                bytes: vec![1],
            },
        )
        .await
        .unwrap();
        s.save(
            "a",
            Checkpoint {
                seq: 2,
                bytes: vec![2],
            },
        )
        .await
        .unwrap();
        let stale = s
            .save(
                "a",
                Checkpoint {
                    seq: 2,
                    bytes: vec![9],
                },
            )
            .await;
        assert!(matches!(
            stale,
            Err(CheckpointError::Stale {
                stored: 2,
                offered: 2,
                ..
            })
        ));
        assert_eq!(s.load("a").await.unwrap().unwrap().bytes, vec![2]);
        s.remove("a").await.unwrap();
        assert!(s.is_empty());
    }
}
