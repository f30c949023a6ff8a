//! Consumptions the commit log has made durable but the B-tree does not
//! hold yet.
//!
//! A refresh writes one consumption. Putting each batch's few into redb
//! costs a copy-on-write of the same leaf pages and a commit per batch —
//! more of the writer's time than the log append that makes them durable.
//! So the writer keeps them here after the append, where every read
//! looks first, and moves them into redb together: all of them in one
//! commit without a flush once [`CHUNK`] have gathered, and at every
//! checkpoint (the log holds them until then, and a crash replays them).
//! Only the writer adds and removes entries; they leave here only once
//! redb holds them, so a read always finds one in one place or the other.

use crate::store::StoreError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many consumptions gather before they are moved into redb; also
/// the bound on this map (plus one batch). Small enough that moving them
/// (one B-tree commit) holds the writer for well under a millisecond.
pub(super) const CHUNK: usize = 256;

/// Consumption records by the consumed token's `jti`, in key order (the
/// order redb inserts fastest). Shared copy-on-write: moving them into
/// redb reads a snapshot without holding the lock, so the reads of
/// request handlers never wait behind a B-tree commit.
#[derive(Default)]
pub(super) struct Deferred(Mutex<Arc<BTreeMap<String, Vec<u8>>>>);

impl Deferred {
    fn entries(&self) -> MutexGuard<'_, Arc<BTreeMap<String, Vec<u8>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `jti`, if it is here.
    pub(super) fn get(&self, jti: &str) -> Option<Vec<u8>> {
        self.entries().get(jti).cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Add consumptions whose frame is on disk. (Only the writer adds, and
    /// never while it holds a snapshot, so the map is not copied.)
    pub(super) fn extend(&self, consumed: Vec<(String, Vec<u8>)>) {
        Arc::make_mut(&mut *self.entries()).extend(consumed);
    }

    /// Call `put` with every entry, in key order (they stay here), from a
    /// snapshot: the lock is held only to take it.
    pub(super) fn for_each(&self, mut put: impl FnMut(&str, &[u8]) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let snapshot = Arc::clone(&self.entries());
        for (jti, record) in snapshot.iter() {
            put(jti, record)?;
        }
        Ok(())
    }

    /// Forget every entry: redb holds them all now.
    pub(super) fn clear(&self) {
        *self.entries() = Arc::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filing reads a snapshot: a request handler's read is answered while
    /// the writer is moving the very entries it asks for (with the lock
    /// held across the filing, this read would wait for it — here, forever).
    #[test]
    fn entries_are_readable_while_they_are_being_filed() {
        let deferred = Deferred::default();
        deferred.extend(vec![("a".into(), vec![1]), ("b".into(), vec![2])]);
        let mut filed = Vec::new();
        deferred
            .for_each(|jti, record| {
                assert_eq!(deferred.get(jti).as_deref(), Some(record), "readable while being filed");
                filed.push(jti.to_string());
                Ok(())
            })
            .unwrap();
        assert_eq!(filed, ["a", "b"]);
        assert_eq!(deferred.len(), 2, "they stay until redb holds them");
        deferred.clear();
        assert_eq!(deferred.get("a"), None);
    }
}
