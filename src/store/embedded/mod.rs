//! The default store: one redb file on local disk, with its commit log.
//!
//! Durability without one fsync per request: every write goes to a single
//! writer thread, which takes all writes waiting at that moment, applies
//! them in one transaction, makes it durable with one append to the commit
//! log and one fdatasync (`log`), commits it, and only then answers each
//! caller. Under load, many requests share one flush; alone, a request pays
//! one. Writes are applied in order inside the transaction, so a
//! consumption sees every earlier write of the same batch — which is what
//! makes `consume_refresh` atomic.
//!
//! Reads use redb's MVCC read transactions (consumptions: the deferred
//! ones first) and never wait for the writer.
//! Opening the file (permissions, the zero-length refusal, the epoch, the
//! log's replay) is `file`'s; the log's format is `log`'s; the tables and
//! what each write does to them are `tables`'; the writer thread and its
//! recovery after a failed commit are `writer`'s.

use super::epoch::Reading;
use super::proofs::ProofLedger;
use super::{ConsumedRefresh, Consumption, HandoffCode, SessionRecord, Store, StoreError, StoreFuture};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::revocations::{Revocation, RevocationEntry};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

mod deferred;
mod file;
mod log;
mod tables;
mod writer;

use tables::{CONSUMED, META, Op, Outcome, REVOCATIONS, SESSIONS, unexpected};
use writer::Reply;

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// The database in service (none while it is being re-opened after a
/// failed commit) and why writes fail, if they do.
#[derive(Default)]
struct Shared {
    db: RwLock<Option<Arc<Database>>>,
    failing: Mutex<Option<String>>,
}

impl Shared {
    fn current(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self.db.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        let reason = self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| "the store is closed".into());
        Err(StoreError(format!("{reason}; re-opening the store")))
    }

    fn take(&self) -> Option<Arc<Database>> {
        self.db.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, db: Database) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(db));
    }

    fn set_failing(&self, reason: Option<String>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }

    fn health(&self) -> Result<(), String> {
        match self.failing.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }
}

/// The embedded, durable store.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    path: PathBuf,
    writes: mpsc::Sender<(Op, Reply)>,
    reading: Reading,
    /// DPoP proofs seen: in memory, see [`super::proofs`].
    proofs: ProofLedger,
    /// Joined on drop, so a clean stop ends with a checkpoint.
    writer: Option<std::thread::JoinHandle<()>>,
    /// Consumptions durable in the commit log, not yet in redb.
    deferred: Arc<deferred::Deferred>,
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the queue tells the writer to finish its last batch and
        // checkpoint; wait for it, so the file is closed when this returns.
        drop(std::mem::replace(&mut self.writes, mpsc::channel().0));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl EmbeddedStore {
    /// Open (or create) the store file and start its writer thread. `clock`
    /// stamps the epoch of a new file and every consumption.
    pub fn open(path: &Path, metrics: Arc<Metrics>, clock: SharedClock) -> Result<Self, StoreError> {
        let (db, log, reading) = file::open(path, clock.unix())?;
        let opened_at = clock.unix();
        let shared = Arc::new(Shared::default());
        shared.put(db);
        let (writes, queue) = mpsc::channel();
        let deferred = Arc::new(deferred::Deferred::default());
        let writer = writer::Writer {
            shared: shared.clone(),
            path: path.to_path_buf(),
            clock,
            metrics,
            closing: None,
            backoff: std::time::Duration::ZERO,
            retry_at: std::time::Instant::now(),
            log,
            checkpoint_at: std::time::Instant::now(),
            deferred: deferred.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("tessera-store-writer".into())
            .spawn(move || writer::run(writer, &queue))
            .map_err(|e| StoreError(format!("starting the writer thread: {e}")))?;
        let proofs = ProofLedger::for_durable_store(opened_at);
        Ok(Self { shared, path: path.to_path_buf(), writes, reading, proofs, writer: Some(writer), deferred })
    }

    /// Remove a zero-length file at `path`, so that [`EmbeddedStore::open`]
    /// creates a new store there (only when the operator accepted a new
    /// store); true if there was one.
    pub fn discard_empty(path: &Path) -> Result<bool, StoreError> {
        file::discard_empty(path)
    }

    /// Queue a write and wait until the batch holding it has committed.
    fn submit(&self, op: Op) -> impl Future<Output = Result<Outcome, StoreError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.writes.send((op, reply));
        async move {
            sent.map_err(|_| StoreError("the writer thread has stopped".into()))?;
            answer.await.map_err(|_| StoreError("the writer thread dropped the write".into()))?
        }
    }

    fn read<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static) -> StoreFuture<'_, T> {
        let db = self.shared.current();
        Box::pin(async move {
            let db = db?;
            tokio::task::spawn_blocking(move || f(&db)).await.map_err(store_error)?
        })
    }

    /// The revocations in the store file at `path`, opened read-only and
    /// without a writer (`tessera token inspect`), with those its commit
    /// log holds beyond the last checkpoint. Fails while a running tessera
    /// holds the file. A file its last user did not close cleanly must be
    /// repaired before it can be read; that is done first, as `tessera
    /// serve` would do on start (redb's lock keeps it exclusive).
    pub fn read_revocations(path: &Path) -> Result<Vec<RevocationEntry>, StoreError> {
        let opened = |e: &dyn std::fmt::Display| StoreError(format!("opening {} read-only: {e}", path.display()));
        match redb::ReadOnlyDatabase::open(path) {
            Ok(db) => Self::read_revocations_from(&db, path),
            Err(redb::DatabaseError::RepairAborted) => Self::read_revocations_from(&Database::open(path).map_err(|e| opened(&e))?, path),
            Err(e) => Err(opened(&e)),
        }
    }

    fn read_revocations_from(db: &impl ReadableDatabase, path: &Path) -> Result<Vec<RevocationEntry>, StoreError> {
        let mut entries = std::collections::BTreeMap::new();
        {
            let txn = db.begin_read().map_err(store_error)?;
            let table = txn.open_table(REVOCATIONS).map_err(store_error)?;
            for item in table.iter().map_err(store_error)? {
                let (seq, value) = item.map_err(store_error)?;
                entries.insert(seq.value(), value.value().to_vec());
            }
        }
        for payload in file::pending_frames(db, path)? {
            for effect in log::effects(&payload) {
                match effect? {
                    log::Effect::Put(log::Table::Revocations, log::Key::Seq(seq), log::Value::Bytes(bytes)) => {
                        entries.insert(seq, bytes.to_vec());
                    }
                    log::Effect::Remove(log::Table::Revocations, log::Key::Seq(seq)) => {
                        entries.remove(&seq);
                    }
                    _ => {}
                }
            }
        }
        entries.values().map(|bytes| serde_json::from_slice(bytes).map_err(store_error)).collect()
    }
}

impl Store for EmbeddedStore {
    fn consume_refresh(&self, _sid: &str, jti: &str, record: ConsumedRefresh) -> StoreFuture<'_, Consumption> {
        let done = self.submit(Op::Consume { jti: jti.to_string(), record });
        Box::pin(async move {
            match done.await? {
                Outcome::Consumption(consumption) => Ok(consumption),
                _ => Err(unexpected()),
            }
        })
    }

    fn consumed_refresh(&self, _sid: &str, jti: &str) -> StoreFuture<'_, Option<ConsumedRefresh>> {
        // Deferred first: a consumption leaves there only once redb has it.
        if let Some(found) = self.deferred.get(jti) {
            return Box::pin(async move { serde_json::from_slice(&found).map(Some).map_err(store_error) });
        }
        let jti = jti.to_string();
        self.read(move |db| {
            let txn = db.begin_read().map_err(store_error)?;
            let table = txn.open_table(CONSUMED).map_err(store_error)?;
            match table.get(jti.as_str()).map_err(store_error)? {
                Some(value) => Ok(Some(serde_json::from_slice(value.value()).map_err(store_error)?)),
                None => Ok(None),
            }
        })
    }

    fn revoke(&self, revocations: Vec<Revocation>) -> StoreFuture<'_, Vec<RevocationEntry>> {
        let done = self.submit(Op::Revoke { revocations });
        Box::pin(async move {
            match done.await? {
                Outcome::Revoked(entries) => Ok(entries),
                _ => Err(unexpected()),
            }
        })
    }

    fn last_sequence(&self) -> StoreFuture<'_, u64> {
        self.read(|db| {
            let txn = db.begin_read().map_err(store_error)?;
            let meta = txn.open_table(META).map_err(store_error)?;
            Ok(meta.get("next_seq").map_err(store_error)?.map_or(0, |v| v.value().saturating_sub(1)))
        })
    }

    fn revocations_since(&self, after: u64) -> StoreFuture<'_, Vec<RevocationEntry>> {
        self.read(move |db| {
            let txn = db.begin_read().map_err(store_error)?;
            let table = txn.open_table(REVOCATIONS).map_err(store_error)?;
            let mut entries = Vec::new();
            for item in table.range(after.saturating_add(1)..).map_err(store_error)? {
                let (_, value) = item.map_err(store_error)?;
                entries.push(serde_json::from_slice(value.value()).map_err(store_error)?);
            }
            Ok(entries)
        })
    }

    fn track_session(&self, record: SessionRecord, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>> {
        let done = self.submit(Op::TrackSession { record, limit });
        Box::pin(async move {
            match done.await? {
                Outcome::Evicted(evicted) => Ok(evicted),
                _ => Err(unexpected()),
            }
        })
    }

    fn sessions_of(&self, sub: &str) -> StoreFuture<'_, Vec<SessionRecord>> {
        let prefix = format!("{sub}\u{0}");
        self.read(move |db| {
            let txn = db.begin_read().map_err(store_error)?;
            let table = txn.open_table(SESSIONS).map_err(store_error)?;
            let mut list = Vec::new();
            for item in table.range(prefix.as_str()..).map_err(store_error)? {
                let (key, value) = item.map_err(store_error)?;
                if !key.value().starts_with(&prefix) {
                    break;
                }
                list.push(serde_json::from_slice(value.value()).map_err(store_error)?);
            }
            Ok(list)
        })
    }

    fn purge_expired(&self, cutoff: i64) -> StoreFuture<'_, usize> {
        let done = self.submit(Op::Purge { cutoff });
        Box::pin(async move {
            match done.await? {
                Outcome::Purged(removed) => Ok(removed),
                _ => Err(unexpected()),
            }
        })
    }

    fn put_code(&self, code_id: &str, record: HandoffCode) -> StoreFuture<'_, ()> {
        let done = self.submit(Op::PutCode { code_id: code_id.to_string(), record });
        Box::pin(async move {
            match done.await? {
                Outcome::Stored => Ok(()),
                _ => Err(unexpected()),
            }
        })
    }

    fn redeem_code(&self, code_id: &str) -> StoreFuture<'_, Option<HandoffCode>> {
        let done = self.submit(Op::RedeemCode { code_id: code_id.to_string() });
        Box::pin(async move {
            match done.await? {
                Outcome::Redeemed(before) => Ok(before),
                _ => Err(unexpected()),
            }
        })
    }

    fn remember_proof(&self, id: &str, issued_at: i64, until: i64) -> StoreFuture<'_, bool> {
        let first = self.proofs.remember(id, issued_at, until, chrono::Utc::now().timestamp());
        Box::pin(async move { first })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.read(|db| db.begin_read().map(|_| ()).map_err(store_error))
    }

    fn health(&self) -> Result<(), String> {
        self.shared.health()
    }

    fn epoch(&self) -> StoreFuture<'_, Option<Reading>> {
        let reading = self.reading.clone();
        Box::pin(async move { Ok(Some(reading)) })
    }

    fn describe(&self) -> String {
        format!("embedded ({})", self.path.display())
    }
}

#[cfg(test)]
mod tests;
