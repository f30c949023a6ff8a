//! The service's background tasks and their owner.
//!
//! [`Tasks`] holds every loop the app starts. Each loop ends when told
//! ([`Tasks::shutdown`], after the HTTP drain) or when the owner is dropped
//! (a `JoinSet` aborts what it still holds), so no task outlives the app
//! that started it — in tests that build many apps in one process too.

use crate::authority::Authority;
use crate::config::Config;
use crate::keys::rotation;
use crate::keys::{KeyDirectoryError, KeyMeta, KeyUse, Keyring};
use crate::revocations::{Covers, Revocation};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The background tasks of one app.
pub struct Tasks {
    running: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self { running: JoinSet::new(), stop: watch::Sender::new(false) }
    }
}

impl Tasks {
    /// Run `task` until it ends by itself or the tasks are stopped.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let mut stop = self.stop.subscribe();
        self.running.spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => tracing::debug!(task = name, "background task stopped"),
                () = task => tracing::debug!(task = name, "background task ended"),
            }
        });
    }

    /// How many tasks are still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Tell every task to stop and wait until all have.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        while self.running.join_next().await.is_some() {}
    }
}

/// Delete expired revocations and consumption records every `every` (a
/// minute in service) — unless the wall clock has jumped ahead of the
/// monotonic clock since the last purge: a clock stepped forward (a bad NTP
/// source, a VM resumed) and then corrected must not have purged entries
/// that still cover live tokens. (Entries are also kept a margin past their
/// expiry, see [`crate::store::purge_cutoff`].)
pub(super) async fn purge(authority: Authority, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: it only sets the baseline.
    ticker.tick().await;
    let mut check = ClockCheck::new(authority.clock.now().timestamp_millis(), Instant::now(), every);
    loop {
        ticker.tick().await;
        match check.judge(authority.clock.now().timestamp_millis(), Instant::now()) {
            Verdict::Skip { ahead } => {
                tracing::warn!(
                    ahead_seconds = ahead.as_secs(),
                    "purge skipped: the wall clock moved further than the time that passed since the last purge (a clock step?); \
                     nothing is deleted until it agrees again"
                );
                continue;
            }
            Verdict::Purge => {}
        }
        match authority.purge_expired().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired store entries purged"),
            Err(error) => tracing::warn!(%error, "purging expired store entries failed; will retry"),
        }
    }
}

/// After this long of a wall clock steadily ahead, it is taken as right
/// (the entries it would purge are past the one-day margin by then too).
const TRUST_A_STEP_AFTER: Duration = Duration::from_secs(86_400);

/// Whether the purger may trust the wall clock: since the last purge it must
/// not have moved further than the monotonic clock by more than twice the
/// interval plus a minute.
#[derive(Debug)]
struct ClockCheck {
    wall_ms: i64,
    at: Instant,
    tolerance: Duration,
    ahead_since: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Purge,
    Skip { ahead: Duration },
}

impl ClockCheck {
    fn new(wall_ms: i64, at: Instant, every: Duration) -> Self {
        Self { wall_ms, at, tolerance: every * 2 + Duration::from_secs(60), ahead_since: None }
    }

    fn judge(&mut self, wall_ms: i64, at: Instant) -> Verdict {
        let passed = i64::try_from(at.saturating_duration_since(self.at).as_millis()).unwrap_or(i64::MAX);
        let ahead = wall_ms.saturating_sub(self.wall_ms).saturating_sub(passed);
        if ahead > i64::try_from(self.tolerance.as_millis()).unwrap_or(i64::MAX) {
            let since = *self.ahead_since.get_or_insert(at);
            if at.saturating_duration_since(since) < TRUST_A_STEP_AFTER {
                return Verdict::Skip { ahead: Duration::from_millis(ahead.unsigned_abs()) };
            }
        }
        // Behind or in step: purging with an earlier "now" deletes less, never more.
        *self = Self { wall_ms, at, ahead_since: None, ..*self };
        Verdict::Purge
    }
}

/// Automatic rotation and announcing withdrawn keys, every reload interval.
pub(super) async fn key_maintenance(config: Config, keyring: Arc<Keyring>, authority: Authority) {
    let mut ticker = tokio::time::interval(config.keys.reload_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Some(every) = config.keys.rotate_every {
            rotate(&config, &keyring, every).await;
        }
        announce_revoked_keys(&config, &keyring, &authority).await;
    }
}

/// Generate the next key of each use when it is due (one replica per slot).
async fn rotate(config: &Config, keyring: &Keyring, every: std::time::Duration) {
    let (directory, config, now) = (keyring.directory().clone(), config.clone(), keyring.clock().now());
    let made = tokio::task::spawn_blocking(move || -> Result<Vec<KeyMeta>, KeyDirectoryError> {
        let lifetimes = config.token_lifetimes();
        let lead = config.keys.publication_lead();
        let mut made = Vec::new();
        for key_use in [KeyUse::Signing, KeyUse::RefreshMac] {
            let metas = directory.metadata()?;
            if let Some(due) = rotation::due(&metas, key_use, every, lead, lifetimes, now) {
                made.extend(directory.rotate(key_use, config.tokens.algorithm, due, now)?);
            }
        }
        Ok(made)
    })
    .await;
    match made {
        Ok(Ok(made)) => {
            for meta in made {
                tracing::info!(kid = %meta.kid, alg = %meta.alg, activates_at = %meta.activates_at, "rotation: next key generated and published");
            }
        }
        Ok(Err(error)) => tracing::error!(%error, "automatic key rotation failed; will retry"),
        Err(error) => tracing::error!(%error, "automatic key rotation task failed"),
    }
}

/// Put every withdrawn signing key into the revocation list (and so the
/// feed) once, so verifiers stop trusting it before their JWKS expires.
async fn announce_revoked_keys(config: &Config, keyring: &Keyring, authority: &Authority) {
    let lifetime = chrono::Duration::from_std(config.token_lifetimes().access).unwrap_or(chrono::Duration::MAX);
    let view = keyring.view();
    let fresh: Vec<Revocation> = view
        .revoked_signing_keys()
        .filter(|(kid, _)| !authority.key_revoked(kid))
        .map(|(kid, at)| {
            let until = at.checked_add_signed(lifetime).map_or(i64::MAX / 2, |end| end.timestamp());
            Revocation::new(Covers::Key { kid: kid.to_string() }, until)
        })
        .collect();
    if fresh.is_empty() {
        return;
    }
    match authority.record(fresh).await {
        Ok(()) => tracing::warn!("signing key withdrawn: announced in the revocation feed"),
        Err(error) => tracing::error!(%error, "could not announce a withdrawn key; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(60);
    const MINUTE_MS: i64 = 60_000;

    #[test]
    fn a_wall_clock_in_step_with_monotonic_time_purges() {
        let start = Instant::now();
        let mut check = ClockCheck::new(1_000_000, start, EVERY);
        assert_eq!(check.judge(1_000_000 + MINUTE_MS, start + EVERY), Verdict::Purge);
        // A late tick, and a little drift, are fine.
        assert_eq!(check.judge(1_000_000 + 4 * MINUTE_MS, start + EVERY * 2), Verdict::Purge);
    }

    #[test]
    fn a_forward_step_is_skipped_until_the_clock_comes_back() {
        let start = Instant::now();
        let mut check = ClockCheck::new(0, start, EVERY);
        let day_ms = 86_400_000;
        assert_eq!(
            check.judge(100 * day_ms, start + EVERY),
            Verdict::Skip { ahead: Duration::from_millis((100 * day_ms - MINUTE_MS) as u64) }
        );
        assert!(
            matches!(check.judge(100 * day_ms + MINUTE_MS, start + EVERY * 2), Verdict::Skip { .. }),
            "still measured from the last trusted purge"
        );
        assert_eq!(check.judge(3 * MINUTE_MS, start + EVERY * 3), Verdict::Purge, "corrected");
        assert_eq!(check.judge(4 * MINUTE_MS, start + EVERY * 4), Verdict::Purge);
    }

    #[test]
    fn a_backward_step_purges_less_and_is_not_skipped() {
        let start = Instant::now();
        let mut check = ClockCheck::new(10 * MINUTE_MS, start, EVERY);
        assert_eq!(check.judge(0, start + EVERY), Verdict::Purge);
    }

    #[test]
    fn a_step_that_stays_for_a_day_is_believed() {
        let start = Instant::now();
        let mut check = ClockCheck::new(0, start, EVERY);
        let step = 7 * 86_400_000;
        assert!(matches!(check.judge(step, start + EVERY), Verdict::Skip { .. }));
        let later = start + EVERY + TRUST_A_STEP_AFTER;
        assert_eq!(check.judge(step + 86_400_000, later), Verdict::Purge);
    }
}
