//! The writer thread: every write is an [`Op`] queued to one thread, which
//! applies all waiting ops in one redb transaction, makes it durable (one
//! commit-log append and fdatasync, see [`super::log`]), commits it and
//! only then answers each caller with its [`Outcome`]. Consumptions wait
//! in [`super::deferred`] and reach redb in chunks and at checkpoints.
//!
//! A failed commit (a full disk, an I/O error) leaves redb unusable until
//! the database is closed and opened again. The writer then takes the
//! database out of service (reads and writes answer "unavailable", `/readyz`
//! says why), and re-opens it with backoff until a probe write commits —
//! so the store serves again once space is back, without a restart. No
//! write of a failed batch was acknowledged, so nothing acknowledged is lost.

use super::deferred::{self, Deferred};
use super::log::{CommitLog, Frame};
use super::tables::{Applied, CONSUMED, Op, Outcome, apply, file_deferred};
use super::{Shared, file, store_error};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::StoreError;
use redb::{Database, Durability};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most writes folded into one commit.
const MAX_BATCH: usize = 4096;

/// The longest a batch stays in the commit log only: a checkpoint follows
/// this long after the first frame since the last one, at the latest.
const CHECKPOINT_AFTER: Duration = Duration::from_secs(5);

/// First and longest wait between attempts to re-open after a failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Where a write's outcome goes once its batch commits.
pub(super) type Reply = oneshot::Sender<Result<Outcome, StoreError>>;

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) path: PathBuf,
    pub(super) clock: SharedClock,
    pub(super) metrics: Arc<Metrics>,
    /// A database taken out of service, dropped once no reader holds it.
    pub(super) closing: Option<Arc<Database>>,
    pub(super) backoff: Duration,
    pub(super) retry_at: Instant,
    pub(super) log: CommitLog,
    /// When the frames in the log are checkpointed at the latest.
    pub(super) checkpoint_at: Instant,
    /// Consumptions in the log, not yet in redb.
    pub(super) deferred: Arc<Deferred>,
}

impl Writer {
    fn failing(&self) -> bool {
        self.shared.health().is_err()
    }

    /// A commit failed: take the database out of service and plan a re-open.
    fn failed(&mut self, error: &StoreError) {
        tracing::error!(%error, "store commit failed; none of its writes were acknowledged; re-opening the store");
        self.shared.set_failing(Some(format!("write failed: {}", error.0)));
        if let Some(db) = self.shared.take() {
            self.closing = Some(db);
        }
        self.backoff = FIRST_RETRY;
        self.retry_at = Instant::now() + self.backoff;
    }

    /// Try to bring the database back, if it is time.
    fn recover(&mut self) {
        if Instant::now() < self.retry_at {
            return;
        }
        if let Some(old) = self.closing.take() {
            match Arc::try_unwrap(old) {
                Ok(db) => drop(db),
                // A read still holds it; it will be done by the next attempt.
                Err(old) => {
                    self.closing = Some(old);
                    self.retry_at = Instant::now() + FIRST_RETRY;
                    return;
                }
            }
        }
        match file::reopen(&self.path) {
            Ok((db, log)) => {
                // The re-open replayed the log, deferred consumptions with it.
                self.deferred.clear();
                self.log = log;
                self.shared.put(db);
                self.shared.set_failing(None);
                self.backoff = FIRST_RETRY;
                tracing::warn!(path = %self.path.display(), "the store was re-opened and writes commit again");
            }
            Err(error) => {
                self.shared.set_failing(Some(format!("write failed: {}", error.0)));
                self.backoff = (self.backoff * 2).min(LONGEST_RETRY);
                self.retry_at = Instant::now() + self.backoff;
                tracing::debug!(%error, retry_in = ?self.backoff, "the store cannot be re-opened yet");
            }
        }
    }
}

impl Writer {
    /// Make the batch in `txn` durable and visible: append its frame to the
    /// log and commit without a flush (abort, when only consumptions were
    /// made: they are deferred) — or, when the frame does not fit or a
    /// checkpoint is due, commit it durably as a checkpoint.
    fn commit(&mut self, txn: redb::WriteTransaction, frame: &mut Frame, applied: &mut Applied) -> Result<(), StoreError> {
        if frame.is_empty() {
            // Nothing changed (a consumption already made, a purge that
            // found nothing): nothing to make durable.
            return txn.abort().map_err(store_error);
        }
        if !self.log.fits(frame) || (self.log.pending() && Instant::now() >= self.checkpoint_at) {
            return self.checkpoint(txn, false, &applied.consumed);
        }
        if !self.log.pending() {
            self.checkpoint_at = Instant::now() + CHECKPOINT_AFTER;
        }
        self.log.append(frame)?;
        if applied.changed_tables {
            let mut txn = txn;
            txn.set_durability(Durability::None).map_err(store_error)?;
            txn.commit().map_err(store_error)?;
            if applied.filed_deferred {
                self.deferred.clear();
            }
        } else {
            txn.abort().map_err(store_error)?;
        }
        self.deferred.extend(std::mem::take(&mut applied.consumed));
        Ok(())
    }

    /// Commit `txn` durably, with it every earlier commit, every deferred
    /// consumption and `fresh` ones, and start a new log generation;
    /// `closing` marks a clean stop.
    fn checkpoint(&mut self, txn: redb::WriteTransaction, closing: bool, fresh: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let next = self.log.generation().wrapping_add(1);
        file_deferred(&mut txn.open_table(CONSUMED).map_err(store_error)?, &self.deferred, fresh)?;
        file::mark_log(&txn, next, closing)?;
        txn.commit().map_err(store_error)?;
        self.log.restart(next);
        self.deferred.clear();
        Ok(())
    }

    /// Move the deferred consumptions into redb once a chunk has gathered:
    /// one commit without a flush for all of them (the log still holds them).
    fn file_chunk(&mut self) {
        if self.deferred.len() < deferred::CHUNK || self.failing() {
            return;
        }
        let filed = self.shared.current().and_then(|db| {
            let mut txn = db.begin_write().map_err(store_error)?;
            file_deferred(&mut txn.open_table(CONSUMED).map_err(store_error)?, &self.deferred, &[])?;
            txn.set_durability(Durability::None).map_err(store_error)?;
            txn.commit().map_err(store_error)
        });
        match filed {
            Ok(()) => self.deferred.clear(),
            // Nothing is lost: they stay deferred, and in the log.
            Err(error) => self.failed(&error),
        }
    }

    /// Checkpoint whatever the log holds (when idle, and on stopping).
    fn checkpoint_now(&mut self, closing: bool) {
        let done = self.shared.current().and_then(|db| {
            let txn = db.begin_write().map_err(store_error)?;
            self.checkpoint(txn, closing, &[])
        });
        if let Err(error) = done {
            // Nothing is lost: the frames are replayed when the store opens.
            if closing {
                tracing::warn!(%error, "the store's last checkpoint failed; its commit log is replayed at the next start");
            } else if !self.failing() {
                self.failed(&error);
            }
        }
    }
}

pub(super) fn run(mut writer: Writer, queue: &mpsc::Receiver<(Op, Reply)>) {
    loop {
        let wake_at = if writer.failing() {
            Some(writer.retry_at)
        } else if writer.log.pending() {
            Some(writer.checkpoint_at)
        } else {
            None
        };
        let first = match wake_at {
            Some(at) => match queue.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(write) => Some(write),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match queue.recv() {
                Ok(write) => Some(write),
                Err(_) => break,
            },
        };
        if writer.failing() {
            writer.recover();
        } else if first.is_none() && writer.log.pending() {
            writer.checkpoint_now(false);
        }
        let Some(first) = first else { continue };
        // The batch is what is waiting now: under load, the writes that
        // arrived while the last batch was being made durable. The writer
        // never waits for more. A wait would make batches fuller, but on a
        // busy core the sleeps and wake-ups cost more CPU than the flushes
        // they save, and a core whose every request is parked in the wait
        // sits idle (measured with the floor bench: see README).
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
        let mut frame = Frame::default();
        let result = writer.shared.current().and_then(|db| {
            let txn = db.begin_write().map_err(store_error)?;
            let mut applied = apply(&txn, &mut frame, ops, &writer.clock, &writer.deferred)?;
            writer.commit(txn, &mut frame, &mut applied)?;
            Ok(applied.outcomes)
        });
        match result {
            Ok(outcomes) => {
                writer.metrics.store_commit(started.elapsed(), replies.len());
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that gave up (timeout, disconnect) no longer listens.
                    let _ = reply.send(Ok(outcome));
                }
                writer.file_chunk();
            }
            Err(error) => {
                if !writer.failing() {
                    writer.failed(&error);
                }
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
    if !writer.failing() {
        writer.checkpoint_now(true);
    }
}
