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
use std::sync::{Mutex, MutexGuard};

/// How many consumptions gather before they are moved into redb; also
/// the bound on this map (plus one batch).
pub(super) const CHUNK: usize = 2048;

/// Consumption records by the consumed token's `jti`, in key order (the
/// order redb inserts fastest).
#[derive(Default)]
pub(super) struct Deferred(Mutex<BTreeMap<String, Vec<u8>>>);

impl Deferred {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `jti`, if it is here.
    pub(super) fn get(&self, jti: &str) -> Option<Vec<u8>> {
        self.entries().get(jti).cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Add consumptions whose frame is on disk.
    pub(super) fn extend(&self, consumed: Vec<(String, Vec<u8>)>) {
        self.entries().extend(consumed);
    }

    /// Call `put` with every entry, in key order (they stay here).
    pub(super) fn for_each(&self, mut put: impl FnMut(&str, &[u8]) -> Result<(), StoreError>) -> Result<(), StoreError> {
        for (jti, record) in self.entries().iter() {
            put(jti, record)?;
        }
        Ok(())
    }

    /// Forget every entry: redb holds them all now.
    pub(super) fn clear(&self) {
        self.entries().clear();
    }
}
