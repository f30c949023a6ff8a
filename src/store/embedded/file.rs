//! The store file itself: opening it safely and knowing which store it is.
//!
//! - A missing file is created inside a 0700 directory with mode 0600: it
//!   holds subjects and session ids. An existing file or directory that
//!   others can read is used, with a warning naming the fix.
//! - A zero-length file is refused: redb would silently make a new store of
//!   it, and a truncated store must never come back empty without the
//!   operator knowing (see [`crate::store::epoch`]).
//! - Every store carries its epoch in the `meta` table (`store_id`,
//!   `store_created`), written when the file is created — or, for a file an
//!   older tessera wrote, the first time this one opens it.
//! - After a failed commit redb must be closed and opened again;
//!   [`reopen`] does that and proves with a write that writes work.
//! - Every open replays the commit log ([`super::log`]) into the file and
//!   checkpoints. A store that was not closed cleanly and whose log is
//!   missing is refused: the writes acknowledged since its last
//!   checkpoint would be lost without anyone knowing.

use super::log::{self, CommitLog};
use super::store_error;
use super::tables::{CODES, CONSUMED, META, REVOCATIONS, SESSIONS, Tables};
use crate::store::StoreError;
use crate::store::epoch::{Epoch, Origin, Reading};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Open (or create) the store file; the database, its commit log and its
/// epoch.
pub(super) fn open(path: &Path, now: i64) -> Result<(Database, CommitLog, Reading), StoreError> {
    let created_file = prepare(path)?;
    let opened = Database::create(path).map_err(|e| StoreError(format!("opening {}: {e}", path.display()))).and_then(|db| {
        let reading = initialise(&db, now)?;
        let log = recover(&db, path)?;
        Ok((db, log, reading))
    });
    if opened.is_err() && created_file {
        // A failed first start must not leave an empty file that the next
        // start would refuse.
        let _ = std::fs::remove_file(path);
    }
    opened
}

/// Remove a zero-length store file (the operator accepted a new store).
pub(super) fn discard_empty(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => {
            std::fs::remove_file(path).map_err(|e| StoreError(format!("removing the empty store file {}: {e}", path.display())))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Open the existing file again after a failed commit, replay its log and
/// checkpoint, which proves that a write commits. `Database::open`, not
/// `create`: a file that vanished meanwhile must not be replaced by a new,
/// empty store behind the operator's back.
pub(super) fn reopen(path: &Path) -> Result<(Database, CommitLog), StoreError> {
    let db = Database::open(path).map_err(|e| StoreError(format!("re-opening {}: {e}", path.display())))?;
    let log = recover(&db, path)?;
    Ok((db, log))
}

/// What `meta` says about the commit log: its generation and whether the
/// last writer stopped cleanly.
fn log_state(db: &Database) -> Result<(Option<u64>, Option<u64>, u64), StoreError> {
    let txn = db.begin_read().map_err(store_error)?;
    let meta = txn.open_table(META).map_err(store_error)?;
    let get = |key: &str| meta.get(key).map(|v| v.map(|v| v.value())).map_err(store_error);
    Ok((get("log_generation")?, get("log_closed")?, get("store_id")?.unwrap_or(1)))
}

/// Record in `txn` that `generation` is the log's current one, and whether
/// this is a clean stop.
pub(super) fn mark_log(txn: &redb::WriteTransaction, generation: u64, closing: bool) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(store_error)?;
    meta.insert("log_generation", generation).map_err(store_error)?;
    meta.insert("log_closed", u64::from(closing)).map_err(store_error)?;
    Ok(())
}

/// The frames of the commit log in force, for `tessera token inspect`
/// (which reads the store without writing it).
pub(super) fn pending_frames(db: &impl ReadableDatabase, path: &Path) -> Result<Vec<Vec<u8>>, StoreError> {
    let txn = db.begin_read().map_err(store_error)?;
    let meta = txn.open_table(META).map_err(store_error)?;
    let Some(generation) = meta.get("log_generation").map_err(store_error)?.map(|v| v.value()) else { return Ok(Vec::new()) };
    Ok(log::read(&log::path_for(path), generation)?.unwrap_or_default())
}

/// Apply the frames the commit log holds for the current generation, and
/// checkpoint into the next one; the log, ready for appends.
fn recover(db: &Database, path: &Path) -> Result<CommitLog, StoreError> {
    let log_path = log::path_for(path);
    let (generation, closed, store_id) = log_state(db)?;
    let frames = match generation {
        Some(generation) => log::read(&log_path, generation)?,
        None => None,
    };
    if generation.is_some() && closed == Some(0) && frames.is_none() {
        return Err(StoreError(format!(
            "the commit log {} is missing, and the store {} was not closed cleanly: the writes acknowledged since its last \
             checkpoint (revocations, consumed refresh tokens) would be lost. Restore the log next to the store; if it is \
             lost, treat the store as lost: move {} away and start once with `tessera serve --accept-new-store`, which \
             refuses every token issued before the new store",
            log_path.display(),
            path.display(),
            path.display()
        )));
    }
    let next = generation.map_or(store_id, |g| g.wrapping_add(1));
    // The log must exist, full size, before a commit names its generation.
    let log = CommitLog::open(&log_path, next)?;
    let txn = db.begin_write().map_err(store_error)?;
    let frames = frames.unwrap_or_default();
    {
        let mut tables = Tables::new(&txn, None);
        for payload in &frames {
            for effect in log::effects(payload) {
                tables.replay(effect?)?;
            }
        }
    }
    mark_log(&txn, next, false)?;
    txn.commit().map_err(store_error)?;
    if !frames.is_empty() {
        tracing::info!(store = %path.display(), frames = frames.len(), "replayed the commit log of a store that was not closed cleanly");
    }
    Ok(log)
}

/// Check an existing file, or make the directory and an empty 0600 file;
/// true when the file was created here.
fn prepare(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            if meta.is_file() && meta.len() == 0 {
                return Err(StoreError(format!(
                    "{} is empty (0 bytes), so it is not a tessera store: a lost or truncated store is never re-created silently, \
                     since every revocation it held would be forgotten. Restore the store if you can; otherwise start once with \
                     `tessera serve --accept-new-store` (or store.accept_new_store = true), which creates a new store and refuses \
                     every token issued before it",
                    path.display()
                )));
            }
            warn_if_open(path, meta.permissions().mode(), "600");
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && let Ok(dir) = std::fs::metadata(parent)
            {
                warn_if_open(parent, dir.permissions().mode(), "700");
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| StoreError(format!("creating {}: {e}", parent.display())))?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError(format!("creating {}: {e}", path.display())))?;
            Ok(true)
        }
        Err(e) => Err(StoreError(format!("{}: {e}", path.display()))),
    }
}

/// The store holds subjects, session ids and the session index: say so
/// when other users can get at it (not refused: the operator may have
/// meant it, and refusing would stop a running deployment on upgrade).
fn warn_if_open(path: &Path, mode: u32, wanted: &str) {
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:04o}", mode & 0o7777),
            "the store can be read by other users; it holds subjects and session ids: run `chmod {wanted} {}`",
            path.display()
        );
    }
}

/// Create the tables, the sequence counter and the epoch where missing.
fn initialise(db: &Database, now: i64) -> Result<Reading, StoreError> {
    let txn = db.begin_write().map_err(store_error)?;
    let reading;
    {
        txn.open_table(REVOCATIONS).map_err(store_error)?;
        txn.open_table(CONSUMED).map_err(store_error)?;
        txn.open_table(SESSIONS).map_err(store_error)?;
        txn.open_table(CODES).map_err(store_error)?;
        let mut meta = txn.open_table(META).map_err(store_error)?;
        let had_data = meta.get("next_seq").map_err(store_error)?.is_some();
        // A new file numbers from the clock (× 1000), not from 1: a feed
        // follower that kept a cursor from an earlier, deleted store still
        // sees every new entry as new.
        if !had_data {
            let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64 * 1000);
            meta.insert("next_seq", start).map_err(store_error)?;
        }
        let id = meta.get("store_id").map_err(store_error)?.map(|v| v.value());
        let created = meta.get("store_created").map_err(store_error)?.map(|v| v.value());
        reading = match (id, created) {
            (Some(id), Some(created)) => {
                Reading { epoch: Epoch { id: format!("{id:016x}"), created: created as i64 }, origin: Origin::Existing }
            }
            _ => {
                let epoch = Epoch::new(now);
                let id = u64::from_str_radix(&epoch.id, 16).map_err(store_error)?;
                meta.insert("store_id", id).map_err(store_error)?;
                meta.insert("store_created", u64::try_from(now).unwrap_or(0)).map_err(store_error)?;
                Reading { epoch, origin: if had_data { Origin::Adopted } else { Origin::Created } }
            }
        };
    }
    txn.commit().map_err(store_error)?;
    Ok(reading)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_private_and_gets_an_epoch_it_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/sub/tessera.redb");
        let (db, _, first) = open(&path, 1_000).unwrap();
        assert_eq!(first.origin, Origin::Created);
        assert_eq!(first.epoch.created, 1_000);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(log::path_for(&path)).unwrap().permissions().mode() & 0o777, 0o600, "the commit log too");
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        drop(db);
        let (_db, _, again) = open(&path, 2_000).unwrap();
        assert_eq!(again, Reading { epoch: first.epoch, origin: Origin::Existing });
    }

    #[test]
    fn a_zero_length_file_is_refused_and_kept_until_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.redb");
        std::fs::write(&path, b"").unwrap();
        let Err(StoreError(error)) = open(&path, 1_000) else { panic!("a zero-length file must be refused") };
        assert!(error.contains("empty") && error.contains("--accept-new-store") && error.contains(&path.display().to_string()), "{error}");
        assert!(path.exists(), "nothing was re-initialised");
        assert!(discard_empty(&path).unwrap());
        assert_eq!(open(&path, 1_000).unwrap().2.origin, Origin::Created);
        assert!(!discard_empty(&path).unwrap(), "a real store is never discarded");
    }

    #[test]
    fn a_store_written_before_epochs_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.redb");
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("next_seq", 42).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(open(&path, 1_000).unwrap().2.origin, Origin::Adopted);
    }

    #[test]
    fn reopening_needs_the_file_to_still_be_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.redb");
        drop(open(&path, 1_000).unwrap());
        assert!(reopen(&path).is_ok());
        assert_eq!(std::fs::metadata(log::path_for(&path)).unwrap().len(), log::CAPACITY);
        std::fs::remove_file(&path).unwrap();
        assert!(reopen(&path).is_err(), "a vanished store is not replaced by an empty one");
        assert!(!path.exists());
    }
}
