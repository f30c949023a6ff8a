//! The default store: one redb file on local disk.
//!
//! Durability without one fsync per request: every write goes to a single
//! writer thread, which takes all writes waiting at that moment, applies
//! them in one transaction, commits it (redb fsyncs before `commit`
//! returns), and only then answers each caller. Under load, many requests
//! share one commit; alone, a request pays one. Writes are applied in order
//! inside the transaction, so a consumption sees every earlier write of the
//! same batch — which is what makes `consume_refresh` atomic.
//!
//! Reads use redb's MVCC read transactions and never wait for the writer.

use super::memory::evict_oldest;
use super::{ConsumedRefresh, Consumption, Revocation, RevocationEntry, SessionRecord, Store, StoreError, StoreFuture};
use crate::metrics::Metrics;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::oneshot;

const REVOCATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("revocations");
const CONSUMED: TableDefinition<&str, &[u8]> = TableDefinition::new("consumed_refresh");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Most writes folded into one commit.
const MAX_BATCH: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Write {
    Consume { jti: String, record: ConsumedRefresh, reply: Reply<Consumption> },
    Revoke { revocations: Vec<(Revocation, i64)>, reply: Reply<Vec<RevocationEntry>> },
    TrackSession { record: SessionRecord, limit: usize, reply: Reply<Vec<SessionRecord>> },
    Purge { now: i64, reply: Reply<usize> },
}

/// The outcome of one write inside a batch, sent once the batch commits.
enum Done {
    Consume(Reply<Consumption>, Consumption),
    Revoke(Reply<Vec<RevocationEntry>>, Vec<RevocationEntry>),
    TrackSession(Reply<Vec<SessionRecord>>, Vec<SessionRecord>),
    Purge(Reply<usize>, usize),
}

impl Done {
    fn send(self) {
        // A caller that gave up (timeout, disconnect) no longer listens.
        let _ = match self {
            Done::Consume(reply, value) => reply.send(Ok(value)).map_err(drop),
            Done::Revoke(reply, value) => reply.send(Ok(value)).map_err(drop),
            Done::TrackSession(reply, value) => reply.send(Ok(value)).map_err(drop),
            Done::Purge(reply, value) => reply.send(Ok(value)).map_err(drop),
        };
    }

    fn fail(self, error: &StoreError) {
        let _ = match self {
            Done::Consume(reply, _) => reply.send(Err(error.clone())).map_err(drop),
            Done::Revoke(reply, _) => reply.send(Err(error.clone())).map_err(drop),
            Done::TrackSession(reply, _) => reply.send(Err(error.clone())).map_err(drop),
            Done::Purge(reply, _) => reply.send(Err(error.clone())).map_err(drop),
        };
    }
}

impl Write {
    fn fail(self, error: &StoreError) {
        let _ = match self {
            Write::Consume { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Write::Revoke { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Write::TrackSession { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
            Write::Purge { reply, .. } => reply.send(Err(error.clone())).map_err(drop),
        };
    }
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// The embedded, durable store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    writes: mpsc::Sender<Write>,
}

impl EmbeddedStore {
    /// Open (or create) the store file and start its writer thread.
    pub fn open(path: &Path, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError(format!("creating {}: {e}", parent.display())))?;
        }
        let db = Database::create(path).map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(store_error)?;
        {
            txn.open_table(REVOCATIONS).map_err(store_error)?;
            txn.open_table(CONSUMED).map_err(store_error)?;
            txn.open_table(SESSIONS).map_err(store_error)?;
            txn.open_table(META).map_err(store_error)?;
        }
        txn.commit().map_err(store_error)?;
        let db = Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("tessera-store-writer".into())
            .spawn(move || writer(&writer_db, &queue, &metrics))
            .map_err(|e| StoreError(format!("starting the writer thread: {e}")))?;
        Ok(Self { db, path: path.to_path_buf(), writes })
    }

    fn submit<T: Send + 'static>(&self, make: impl FnOnce(Reply<T>) -> Write) -> StoreFuture<'_, T> {
        let (reply, answer) = oneshot::channel();
        let sent = self.writes.send(make(reply));
        Box::pin(async move {
            sent.map_err(|_| StoreError("the writer thread has stopped".into()))?;
            answer.await.map_err(|_| StoreError("the writer thread dropped the write".into()))?
        })
    }

    fn read<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static) -> StoreFuture<'_, T> {
        let db = self.db.clone();
        Box::pin(async move { tokio::task::spawn_blocking(move || f(&db)).await.map_err(store_error)? })
    }
}

fn writer(db: &Database, queue: &mpsc::Receiver<Write>, metrics: &Metrics) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = batch.len();
        match apply(db, batch) {
            Ok(done) => {
                metrics.store_commit(started.elapsed(), size);
                done.into_iter().for_each(Done::send);
            }
            Err((error, pending)) => {
                tracing::error!(%error, writes = size, "store commit failed; the writes were not acknowledged");
                pending.into_iter().for_each(|w| w.fail(&error));
            }
        }
    }
}

/// Apply a batch in one transaction. On failure nothing was committed and
/// every write of the batch is handed back to be failed.
fn apply(db: &Database, batch: Vec<Write>) -> Result<Vec<Done>, (StoreError, Vec<Write>)> {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => return Err((store_error(e), batch)),
    };
    let mut done = Vec::with_capacity(batch.len());
    let mut failure = None;
    {
        let tables = (|| -> Result<_, StoreError> {
            Ok((
                txn.open_table(REVOCATIONS).map_err(store_error)?,
                txn.open_table(CONSUMED).map_err(store_error)?,
                txn.open_table(SESSIONS).map_err(store_error)?,
                txn.open_table(META).map_err(store_error)?,
            ))
        })();
        let (mut revocations, mut consumed, mut sessions, mut meta) = match tables {
            Ok(tables) => tables,
            Err(e) => return Err((e, batch)),
        };
        let mut rest = batch.into_iter();
        for write in rest.by_ref() {
            let result = (|| -> Result<Done, (StoreError, Write)> {
                match write {
                    Write::Consume { jti, record, reply } => {
                        let existing = match consumed.get(jti.as_str()) {
                            Ok(found) => found.map(|v| serde_json::from_slice::<ConsumedRefresh>(v.value())),
                            Err(e) => return Err((store_error(e), Write::Consume { jti, record, reply })),
                        };
                        match existing {
                            Some(Ok(earlier)) => Ok(Done::Consume(reply, Consumption::Already(earlier))),
                            Some(Err(e)) => Err((store_error(e), Write::Consume { jti, record, reply })),
                            None => {
                                let bytes = serde_json::to_vec(&record).expect("record serializes");
                                match consumed.insert(jti.as_str(), bytes.as_slice()) {
                                    Ok(_) => Ok(Done::Consume(reply, Consumption::First)),
                                    Err(e) => Err((store_error(e), Write::Consume { jti, record, reply })),
                                }
                            }
                        }
                    }
                    Write::Revoke { revocations: items, reply } => {
                        let mut next = match meta.get("next_seq") {
                            Ok(v) => v.map(|v| v.value()).unwrap_or(1),
                            Err(e) => return Err((store_error(e), Write::Revoke { revocations: items, reply })),
                        };
                        let mut entries = Vec::with_capacity(items.len());
                        for (revocation, expires_at) in &items {
                            let entry = RevocationEntry { seq: next, revocation: revocation.clone(), expires_at: *expires_at };
                            let bytes = serde_json::to_vec(&entry).expect("entry serializes");
                            if let Err(e) = revocations.insert(next, bytes.as_slice()) {
                                return Err((store_error(e), Write::Revoke { revocations: items, reply }));
                            }
                            entries.push(entry);
                            next += 1;
                        }
                        if let Err(e) = meta.insert("next_seq", next) {
                            return Err((store_error(e), Write::Revoke { revocations: items, reply }));
                        }
                        Ok(Done::Revoke(reply, entries))
                    }
                    Write::TrackSession { record, limit, reply } => {
                        let prefix = format!("{}\u{0}", record.sub);
                        let mut list: Vec<SessionRecord> = match sessions.range(prefix.as_str()..) {
                            Ok(range) => range
                                .filter_map(Result::ok)
                                .take_while(|(k, _)| k.value().starts_with(&prefix))
                                .filter_map(|(_, v)| serde_json::from_slice(v.value()).ok())
                                .collect(),
                            Err(e) => return Err((store_error(e), Write::TrackSession { record, limit, reply })),
                        };
                        list.push(record.clone());
                        let evicted = evict_oldest(&mut list, &record.client_id, limit);
                        let bytes = serde_json::to_vec(&record).expect("record serializes");
                        if let Err(e) = sessions.insert(format!("{prefix}{}", record.sid).as_str(), bytes.as_slice()) {
                            return Err((store_error(e), Write::TrackSession { record, limit, reply }));
                        }
                        for gone in &evicted {
                            if let Err(e) = sessions.remove(format!("{prefix}{}", gone.sid).as_str()) {
                                return Err((store_error(e), Write::TrackSession { record, limit, reply }));
                            }
                        }
                        Ok(Done::TrackSession(reply, evicted))
                    }
                    Write::Purge { now, reply } => {
                        let mut removed = 0usize;
                        let expired = |bytes: &[u8]| {
                            serde_json::from_slice::<serde_json::Value>(bytes)
                                .ok()
                                .and_then(|v| v["expires_at"].as_i64())
                                .is_some_and(|e| e < now)
                        };
                        let outcome = revocations
                            .retain(|_, v| {
                                let gone = expired(v);
                                removed += gone as usize;
                                !gone
                            })
                            .and_then(|()| {
                                consumed.retain(|_, v| {
                                    let gone = expired(v);
                                    removed += gone as usize;
                                    !gone
                                })
                            })
                            .and_then(|()| {
                                sessions.retain(|_, v| {
                                    let gone = expired(v);
                                    removed += gone as usize;
                                    !gone
                                })
                            });
                        match outcome {
                            Ok(()) => Ok(Done::Purge(reply, removed)),
                            Err(e) => Err((store_error(e), Write::Purge { now, reply })),
                        }
                    }
                }
            })();
            match result {
                Ok(d) => done.push(d),
                Err((error, write)) => {
                    failure = Some((error, write));
                    break;
                }
            }
        }
        if let Some((error, write)) = failure {
            // Abandon the transaction: nothing of this batch is committed.
            let mut pending: Vec<Write> = vec![write];
            pending.extend(rest);
            // Dropping the uncommitted transaction aborts it.
            done.into_iter().for_each(|d| d.fail(&error));
            return Err((error, pending));
        }
    }
    match txn.commit() {
        Ok(()) => Ok(done),
        Err(e) => {
            let error = store_error(e);
            done.into_iter().for_each(|d| d.fail(&error));
            Err((error, Vec::new()))
        }
    }
}

impl Store for EmbeddedStore {
    fn consume_refresh(&self, jti: &str, record: ConsumedRefresh) -> StoreFuture<'_, Consumption> {
        let jti = jti.to_string();
        self.submit(|reply| Write::Consume { jti, record, reply })
    }

    fn consumed_refresh(&self, jti: &str) -> StoreFuture<'_, Option<ConsumedRefresh>> {
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

    fn revoke(&self, revocations: Vec<(Revocation, i64)>) -> StoreFuture<'_, Vec<RevocationEntry>> {
        self.submit(|reply| Write::Revoke { revocations, reply })
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
        self.submit(|reply| Write::TrackSession { record, limit, reply })
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

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, usize> {
        self.submit(|reply| Write::Purge { now, reply })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.read(|db| db.begin_read().map(|_| ()).map_err(store_error))
    }

    fn describe(&self) -> String {
        format!("embedded ({})", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
        EmbeddedStore::open(&dir.path().join("data/tessera.redb"), Arc::new(Metrics::default())).unwrap()
    }

    #[tokio::test]
    async fn embedded_store_meets_the_contract() {
        for run in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let store = open(&dir);
            match run {
                0 => contract::consumption_happens_once(&store).await,
                1 => contract::revocations_get_increasing_sequence_numbers(&store).await,
                2 => contract::expired_entries_are_purged(&store).await,
                _ => contract::session_index_keeps_the_newest_within_the_limit(&store).await,
            }
        }
    }

    #[tokio::test]
    async fn writes_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(&dir);
            store.revoke(vec![(Revocation::Session { sid: "s".into() }, i64::MAX)]).await.unwrap();
            store.consume_refresh("p", contract::record("c", "web", i64::MAX)).await.unwrap();
        }
        // The writer thread holds the database until its queue closes.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let store = loop {
            match EmbeddedStore::open(&dir.path().join("data/tessera.redb"), Arc::new(Metrics::default())) {
                Ok(store) => break store,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(store.revocations_since(0).await.unwrap().len(), 1);
        let next = store.revoke(vec![(Revocation::Token { jti: "t".into() }, i64::MAX)]).await.unwrap();
        assert_eq!(next[0].seq, 2, "sequence numbers continue after a restart");
        assert_eq!(
            store.consume_refresh("p", contract::record("other", "web", i64::MAX)).await.unwrap(),
            Consumption::Already(contract::record("c", "web", i64::MAX))
        );
    }

    #[tokio::test]
    async fn concurrent_consumptions_of_one_token_yield_one_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.consume_refresh("shared", contract::record(&format!("child-{i}"), "web", i64::MAX)).await.unwrap()
            }));
        }
        let mut firsts = 0;
        let mut children = std::collections::HashSet::new();
        for task in tasks {
            match task.await.unwrap() {
                Consumption::First => firsts += 1,
                Consumption::Already(record) => {
                    children.insert(record.child_jti);
                }
            }
        }
        assert_eq!(firsts, 1);
        assert_eq!(children.len(), 1, "every later caller sees the same child");
    }
}
