//! The store's epoch at start and while serving: the I/O around
//! [`crate::store::epoch`]'s rule.
//!
//! At start ([`refuse_missing_file`], then [`at_start`]): compare the
//! store's epoch with what the key directory recorded; start, record,
//! refuse, or — a lost or replaced store the operator accepted — install a
//! global not-before first. While serving a shared store ([`watch`]): a
//! Redis that lost its data shows a new (or no) epoch; every replica that
//! notices logs `security_event="store_data_loss"`, agrees on one new epoch
//! (created only if missing), installs the not-before at its creation
//! instant and records it in the key directory, so replicas started later
//! start without being told.

use crate::authority::Authority;
use crate::clock::Clock;
use crate::config::{Config, StoreConfig};
use crate::keys::KeyDirectory;
use crate::revocations::Covers;
use crate::store::Store;
use crate::store::epoch::{self, Decision, Epoch, Recorded};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The embedded store's file, as an absolute path (errors and the banner
/// name it so, whatever the working directory).
pub(super) fn embedded_path(config: &Config) -> anyhow::Result<Option<PathBuf>> {
    match &config.store {
        StoreConfig::Embedded { path } => {
            Ok(Some(std::path::absolute(path).with_context(|| format!("resolving store.path {}", path.display()))?))
        }
        _ => Ok(None),
    }
}

/// Before the embedded store is opened (and would create its file): a
/// missing file beside a key directory that names a store is a lost store.
pub(super) fn refuse_missing_file(config: &Config, directory: &KeyDirectory) -> anyhow::Result<()> {
    let Some(path) = embedded_path(config)? else { return Ok(()) };
    if config.accept_new_store || path.exists() {
        return Ok(());
    }
    if let Some(recorded) = recorded(directory)? {
        let what = format!("the store file {} is missing", path.display());
        bail!(epoch::refusal(&recorded, &what, &keys_dir(directory)));
    }
    Ok(())
}

/// Check the opened store against the key directory; returns the epoch
/// accepted (`None`: a store that keeps nothing). `keys_created_now`: the
/// directory had no key before this start.
pub(super) async fn at_start(
    store: &dyn Store,
    directory: &KeyDirectory,
    config: &Config,
    clock: &dyn Clock,
    keys_created_now: bool,
) -> anyhow::Result<Option<Epoch>> {
    let Some(found) = store.epoch().await.context("reading the store's epoch")? else { return Ok(None) };
    let recorded = recorded(directory)?;
    let location = store.describe();
    match epoch::decide(recorded.as_ref(), &found, keys_created_now, config.accept_new_store) {
        Decision::Start => {}
        Decision::Record => record(directory, &found.epoch, &location)?,
        Decision::Refuse => {
            let recorded = recorded.expect("refused only against a recorded store");
            bail!(epoch::refusal(&recorded, &epoch::found(&found, &location), &keys_dir(directory)));
        }
        Decision::NotBefore { event } => {
            if event {
                tracing::warn!(
                    security_event = "store_replaced",
                    store = %location,
                    store_id = %found.epoch.id,
                    recorded = recorded.as_ref().map_or("", |r| r.store_id.as_str()),
                    "starting on a store other than the one the key directory worked with, as the operator accepted: \
                     every token issued before the new store was created is refused; users sign in again"
                );
            } else {
                tracing::warn!(
                    store = %location,
                    "a new store beside keys that are older than it: every token issued before the store was created is refused"
                );
            }
            let entry = epoch::not_before(&found.epoch, config.tokens.session_max_age);
            store.revoke(vec![entry]).await.context("recording the global not-before in the store")?;
            record(directory, &found.epoch, &location)?;
            wait_past(clock, found.epoch.created).await;
        }
    }
    store.expect_epoch(&found.epoch);
    Ok(Some(found.epoch))
}

/// While serving a shared store: notice its data loss and handle it.
pub(super) async fn watch(authority: Authority, directory: KeyDirectory, mut known: Epoch, session_max_age: Duration) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported: Option<String> = None;
    loop {
        ticker.tick().await;
        // Creates the epoch if the store lost it: one script, so every
        // replica that races here agrees on one.
        let found = match authority.store.epoch().await {
            Ok(Some(found)) => found.epoch,
            Ok(None) => return,
            // Redis unreachable: the list goes stale meanwhile; try again.
            Err(_) => continue,
        };
        if found == known {
            continue;
        }
        if reported.as_deref() != Some(found.id.as_str()) {
            tracing::error!(
                security_event = "store_data_loss",
                store = %authority.store.describe(),
                was = %known.id,
                now = %found.id,
                not_before = found.created,
                "the shared store lost its data (its epoch vanished or changed): revocations and consumed refresh tokens \
                 may be gone, so every token issued before the new epoch is refused; users sign in again"
            );
            reported = Some(found.id.clone());
        }
        match accept(&authority, &directory, &found, session_max_age).await {
            Ok(()) => known = found,
            Err(error) => tracing::error!(error = %format!("{error:#}"), "could not install the global not-before yet; will retry"),
        }
    }
}

/// Install the not-before for `found` (unless one as late is in force or
/// another replica recorded it already), record the epoch, and let the
/// follower call the list current again.
async fn accept(authority: &Authority, directory: &KeyDirectory, found: &Epoch, session_max_age: Duration) -> anyhow::Result<()> {
    let in_force = |before: i64| before >= found.created;
    // The store just lost its data: reading what it holds now is cheap.
    let recorded = authority.store.revocations_since(0).await?;
    let recorded = recorded.iter().any(|e| matches!(e.covers, Covers::Before { before } if in_force(before)));
    if !recorded && !authority.revocations.not_before().is_some_and(in_force) {
        authority.record(vec![epoch::not_before(found, session_max_age)]).await.map_err(|refusal| anyhow::anyhow!("{refusal}"))?;
    }
    let (directory, found_epoch, location) = (directory.clone(), found.clone(), authority.store.describe());
    tokio::task::spawn_blocking(move || record(&directory, &found_epoch, &location)).await??;
    wait_past(authority.clock.as_ref(), found.created).await;
    authority.store.expect_epoch(found);
    Ok(())
}

fn recorded(directory: &KeyDirectory) -> anyhow::Result<Option<Recorded>> {
    let path = directory.path().join(crate::keys::STORE_EPOCH_FILE);
    match directory.store_epoch()? {
        None => Ok(None),
        Some(text) => Ok(Some(Recorded::parse(&text).map_err(|reason| anyhow::anyhow!("{}: {reason}", path.display()))?)),
    }
}

fn record(directory: &KeyDirectory, epoch: &Epoch, location: &str) -> anyhow::Result<()> {
    directory.record_store_epoch(&Recorded::of(epoch, location).to_json()).with_context(|| {
        format!(
            "recording the store's epoch in the key directory (tessera notes there which store it works with, to notice a lost store): {}",
            directory.path().join(crate::keys::STORE_EPOCH_FILE).display()
        )
    })
}

fn keys_dir(directory: &KeyDirectory) -> String {
    std::path::absolute(directory.path()).unwrap_or_else(|_| directory.path().to_path_buf()).display().to_string()
}

/// Tokens carry whole-second `iat`s and the not-before refuses `iat <=
/// before`: let the clock leave that second before anything is issued. (A
/// manual clock that does not move is waited for two seconds at most.)
async fn wait_past(clock: &dyn Clock, before: i64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while clock.unix() <= before && Instant::now() < deadline {
        let into_second = u64::from(clock.now().timestamp_subsec_millis());
        tokio::time::sleep(Duration::from_millis((1_001 - into_second.min(1_000)).min(100))).await;
    }
}
