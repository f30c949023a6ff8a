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

/// Delete expired revocations and consumption records once a minute.
pub(super) async fn purge(authority: Authority) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        ticker.tick().await;
        match authority.purge_expired().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired store entries purged"),
            Err(error) => tracing::warn!(%error, "purging expired store entries failed; will retry"),
        }
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
