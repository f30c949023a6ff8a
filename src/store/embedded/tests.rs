//! The embedded store against the store contract, and across crashes and
//! restarts.

use super::super::contract;
use super::*;
use crate::clock::SystemClock;
use crate::revocations::Covers;

fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
    EmbeddedStore::open(&dir.path().join("data/tessera.redb"), Arc::new(Metrics::default()), Arc::new(SystemClock)).unwrap()
}

#[tokio::test]
async fn embedded_store_meets_the_contract() {
    for run in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        match run {
            0 => contract::consumption_happens_once(&store).await,
            1 => contract::revocations_get_increasing_sequence_numbers(&store).await,
            2 => contract::expired_entries_are_purged(&store).await,
            3 => contract::session_index_keeps_the_newest_within_the_limit(&store).await,
            4 => contract::session_index_never_evicts_the_session_being_added(&store).await,
            _ => contract::a_code_is_redeemed_once(&store).await,
        }
    }
}

#[tokio::test]
async fn dpop_proofs_are_remembered_once_and_none_from_before_the_store_opened() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    contract::a_dpop_proof_is_remembered_once(&store).await;
    let before_opening = chrono::Utc::now().timestamp() - 10;
    assert!(!store.remember_proof("made before a restart", before_opening, before_opening + 60).await.unwrap());
}

#[tokio::test]
async fn writes_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        store.revoke(vec![Revocation::new(Covers::Session { sid: "s".into() }, i64::MAX)]).await.unwrap();
        store.consume_refresh("s", "p", contract::record("c", "web", i64::MAX)).await.unwrap();
    }
    // Dropping the store waited for its writer to close the file.
    let store = open(&dir);
    assert_eq!(store.revocations_since(0).await.unwrap().len(), 1);
    let next = store.revoke(vec![Revocation::new(Covers::Token { jti: "t".into() }, i64::MAX)]).await.unwrap();
    let before = store.revocations_since(0).await.unwrap()[0].seq;
    assert_eq!(next[0].seq, before + 1, "sequence numbers continue after a restart");
    assert_eq!(store.last_sequence().await.unwrap(), next[0].seq);
    let Consumption::Already(earlier) = store.consume_refresh("s", "p", contract::record("other", "web", i64::MAX)).await.unwrap() else {
        panic!("the consumption survives the restart");
    };
    assert_eq!(contract::unstamped(earlier), contract::record("c", "web", i64::MAX));
}

/// The files of the store under `dir` as a crash would leave them:
/// copied while the store runs, into a new directory.
fn crash_image(dir: &tempfile::TempDir, with_log: bool) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    let store = dir.path().join("data/tessera.redb");
    std::fs::create_dir(image.path().join("data")).unwrap();
    std::fs::copy(&store, image.path().join("data/tessera.redb")).unwrap();
    if with_log {
        std::fs::copy(log::path_for(&store), log::path_for(&image.path().join("data/tessera.redb"))).unwrap();
    }
    image
}

/// The revocations in the store file itself, without its log.
fn in_the_file(dir: &tempfile::TempDir) -> usize {
    let db = Database::open(dir.path().join("data/tessera.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    txn.open_table(REVOCATIONS).unwrap().iter().unwrap().count()
}

#[tokio::test]
async fn acknowledged_writes_survive_a_crash_through_the_commit_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let before = in_the_file(&crash_image(&dir, true));
    store.revoke(vec![Revocation::new(Covers::Session { sid: "s".into() }, i64::MAX)]).await.unwrap();
    store.consume_refresh("s", "p", contract::record("c", "web", i64::MAX)).await.unwrap();

    // Acknowledged, in the log, not yet in the file.
    assert_eq!(in_the_file(&crash_image(&dir, true)), before, "a batch is durable through the log, not a checkpoint");
    let image = crash_image(&dir, true);
    let path = image.path().join("data/tessera.redb");
    assert_eq!(EmbeddedStore::read_revocations(&path).unwrap().len(), 1, "`token inspect` reads the log too");
    let recovered = open(&image);
    assert_eq!(recovered.revocations_since(0).await.unwrap().len(), 1, "the revocation is replayed");
    assert!(matches!(
        recovered.consume_refresh("s", "p", contract::record("other", "web", i64::MAX)).await.unwrap(),
        Consumption::Already(_)
    ));
    drop(recovered);
    assert_eq!(in_the_file(&image), 1, "opening checkpointed the replayed frames into the file");

    // The same crash without its log: refused, and told what to do.
    let Err(StoreError(refusal)) = EmbeddedStore::open(
        &crash_image(&dir, false).path().join("data/tessera.redb"),
        Arc::new(Metrics::default()),
        Arc::new(SystemClock),
    ) else {
        panic!("a store that was not closed cleanly must not open without its log");
    };
    assert!(refusal.contains("commit log") && refusal.contains("--accept-new-store"), "{refusal}");
}

#[tokio::test]
async fn a_clean_stop_checkpoints_so_the_log_is_not_needed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.revoke(vec![Revocation::new(Covers::Session { sid: "s".into() }, i64::MAX)]).await.unwrap();
    drop(store);
    assert_eq!(in_the_file(&dir), 1);
    std::fs::remove_file(log::path_for(&dir.path().join("data/tessera.redb"))).unwrap();
    let store = open(&dir);
    assert_eq!(store.revocations_since(0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_batch_larger_than_the_log_is_committed_as_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Effects of over 800 bytes each, a quarter more than the log holds.
    let count = (log::CAPACITY as usize * 5 / 4).div_ceil(800);
    let many: Vec<Revocation> =
        (0..count).map(|i| Revocation::new(Covers::Session { sid: format!("session-{i:0800}") }, i64::MAX)).collect();
    assert_eq!(store.revoke(many).await.unwrap().len(), count);
    assert_eq!(in_the_file(&crash_image(&dir, true)), count, "durable in the file itself");
    store.revoke(vec![Revocation::new(Covers::Token { jti: "t".into() }, i64::MAX)]).await.unwrap();
    let recovered = open(&crash_image(&dir, true));
    assert_eq!(recovered.revocations_since(0).await.unwrap().len(), count + 1, "and the log goes on after it");
}

#[tokio::test]
async fn concurrent_consumptions_of_one_token_yield_one_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.consume_refresh("s", "shared", contract::record(&format!("child-{i}"), "web", i64::MAX)).await.unwrap()
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

#[tokio::test]
async fn deferred_consumptions_are_found_until_and_after_they_reach_redb_and_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir));
    store.consume_refresh("s", "first", contract::record("c-first", "web", i64::MAX)).await.unwrap();
    assert_eq!(store.deferred.len(), 1, "made durable by the log, not yet in redb");
    let found = store.consumed_refresh("s", "first").await.unwrap().expect("a read finds a deferred consumption");
    assert_eq!(found.child_jti, "c-first");
    assert!(matches!(
        store.consume_refresh("s", "first", contract::record("c-again", "web", i64::MAX)).await.unwrap(),
        Consumption::Already(earlier) if earlier.child_jti == "c-first"
    ));

    // A crash now: the log replays it.
    let recovered = open(&crash_image(&dir, true));
    assert!(recovered.consumed_refresh("s", "first").await.unwrap().is_some(), "replayed from the log");
    drop(recovered);

    // Past a chunk, they move into redb and the map empties again.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..deferred::CHUNK + 100 {
        let store = store.clone();
        tasks.spawn(
            async move { store.consume_refresh("s", &format!("p-{i:05}"), contract::record(&format!("c-{i}"), "web", i64::MAX)).await },
        );
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap(), Consumption::First);
    }
    // The writer files them right after answering the batch that filled the chunk.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.deferred.len() >= deferred::CHUNK && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(store.deferred.len() < deferred::CHUNK, "bounded: {} deferred", store.deferred.len());
    let (middle, last) = (format!("p-{:05}", deferred::CHUNK / 2), format!("p-{:05}", deferred::CHUNK + 99));
    for jti in ["first", "p-00000", &last] {
        assert!(store.consumed_refresh("s", jti).await.unwrap().is_some(), "{jti} is found wherever it is");
    }
    let image = crash_image(&dir, true);
    let store = Arc::into_inner(store).unwrap();
    drop(store);
    let reopened = open(&dir);
    let crashed = open(&image);
    for jti in ["first", "p-00000", &middle, &last] {
        assert!(reopened.consumed_refresh("s", jti).await.unwrap().is_some(), "{jti} after a clean stop");
        assert!(crashed.consumed_refresh("s", jti).await.unwrap().is_some(), "{jti} after a crash");
    }
}

#[test]
fn a_purge_in_the_same_batch_as_a_consumption_files_the_deferred_ones_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("batch.redb")).unwrap();
    let deferred = deferred::Deferred::default();
    let stored = |child: &str, expires_at: i64| serde_json::to_vec(&contract::record(child, "web", expires_at)).unwrap();
    deferred.extend(vec![("expired".into(), stored("c-expired", 10)), ("live".into(), stored("c-live", i64::MAX))]);
    let txn = db.begin_write().unwrap();
    let mut frame = log::Frame::default();
    let ops = vec![
        tables::Op::Consume { jti: "live".into(), record: contract::record("c-other", "web", i64::MAX) },
        tables::Op::Consume { jti: "new".into(), record: contract::record("c-new", "web", i64::MAX) },
        tables::Op::Purge { cutoff: 100 },
    ];
    let clock: SharedClock = Arc::new(SystemClock);
    let applied = tables::apply(&txn, &mut frame, ops, &clock, &deferred).unwrap();
    assert!(matches!(&applied.outcomes[0], Outcome::Consumption(Consumption::Already(earlier)) if earlier.child_jti == "c-live"));
    assert!(matches!(applied.outcomes[1], Outcome::Consumption(Consumption::First)));
    assert!(matches!(applied.outcomes[2], Outcome::Purged(1)), "the expired deferred consumption is purged");
    assert!(applied.filed_deferred && applied.changed_tables);
    txn.commit().unwrap();
    let read = db.begin_read().unwrap();
    let table = read.open_table(CONSUMED).unwrap();
    assert!(table.get("live").unwrap().is_some() && table.get("expired").unwrap().is_none());
}

/// Group commit without a wait: writes that arrive while a batch is being
/// made durable share the next flush, and each is answered once its own
/// batch has committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_flushes() {
    const WRITES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("data/tessera.redb"), metrics.clone(), Arc::new(SystemClock)).unwrap());
    let writes: Vec<_> = (0..WRITES)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.consume_refresh(&format!("s-{i}"), &format!("p-{i}"), contract::record("c", "web", i64::MAX)).await
            })
        })
        .collect();
    for write in writes {
        assert_eq!(write.await.unwrap().unwrap(), Consumption::First);
    }
    let text = metrics.render();
    let commits: f64 = text.lines().find_map(|line| line.strip_prefix("tessera_store_batch_size_count ")?.parse().ok()).unwrap();
    let folded: f64 = text.lines().find_map(|line| line.strip_prefix("tessera_store_batch_size_sum ")?.parse().ok()).unwrap();
    assert_eq!(folded as usize, WRITES, "every write was committed once");
    assert!(commits <= (WRITES / 4) as f64, "{commits} commits for {WRITES} concurrent writes: they should share flushes");
}
