//! Starting and stopping the service: make sure keys exist, load them, open
//! the store and load the revocation list into memory, bind, say where
//! everything is, serve until SIGTERM/SIGINT, then drain.

use crate::clients::Client;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, StoreConfig};
use crate::http::demo::DEMO_CLIENT;
use crate::http::{self, AppState};
use crate::keys::rotation;
use crate::keys::{KeyDirectory, KeyDirectoryError, KeyMeta, KeyUse, Keyring};
use crate::metrics::Metrics;
use crate::revocation::RevocationList;
use crate::sessions::TokenService;
use crate::store::Revocation;
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use anyhow::Context;
use std::sync::Arc;

/// Run the server until a shutdown signal.
pub async fn serve(mut config: Config, dev: bool) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let lifetimes = config.token_lifetimes();
    let directory = KeyDirectory::new(&config.keys_dir);
    let created = directory
        .ensure_keys(config.tokens.algorithm, lifetimes, clock.now())
        .with_context(|| format!("preparing key directory {}", config.keys_dir.display()))?;
    let keyring = Arc::new(
        Keyring::open(directory, lifetimes, clock.clone())
            .with_context(|| format!("loading key directory {}", config.keys_dir.display()))?,
    );

    let metrics = Arc::new(Metrics::default());
    let (store, revocations) = open_store(&config, metrics.clone()).await?;

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let issuer = config.issuer_for(addr);
    for meta in &created {
        println!("created {} key {} ({})", if meta.alg == "HS256" { "refresh MAC" } else { "signing" }, meta.kid, meta.alg);
    }
    println!("tessera listening on http://{addr}");
    println!("issuer:   {issuer}");
    println!("keys:     {}", config.keys_dir.display());
    println!("store:    {} ({} revocations loaded)", store.describe(), revocations.len());
    println!("clients:  {}", config.clients.len());
    println!("jwks:     {issuer}/.well-known/jwks.json");
    if dev {
        config.clients = config.clients.with(Client::demo(DEMO_CLIENT, &issuer, config.tokens.access_ttl));
        println!("demo:     {issuer}/demo  (development mode: never expose this)");
        if crate::http::browser::is_local_http(&issuer) {
            tracing::warn!(
                "development mode on http://localhost: the refresh cookie is sent without Secure and without the __Secure- prefix"
            );
        }
    }

    keyring.clone().spawn_reloader(config.keys.reload_interval);
    let maintenance = KeyMaintenance { config: config.clone(), keyring: keyring.clone() };
    let state = AppState::new(config, issuer, keyring, store, revocations, metrics, dev);
    spawn_purger(state.tokens.clone());
    maintenance.spawn(state.tokens.clone());
    let draining = state.clone();
    let stop = async move {
        shutdown_signal().await;
        draining.begin_shutdown();
    };
    axum::serve(listener, http::router(state)).with_graceful_shutdown(stop).await.context("serving HTTP")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Open the configured store and load its revocation list into memory. A
/// shared store also gets a follower that keeps the list current with what
/// other replicas write.
async fn open_store(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<(Arc<dyn Store>, Arc<RevocationList>)> {
    let store: Arc<dyn Store> = match &config.store {
        StoreConfig::Embedded { path } => {
            Arc::new(EmbeddedStore::open(path, metrics).with_context(|| format!("opening the store {}", path.display()))?)
        }
        StoreConfig::Memory => Arc::new(MemoryStore::new()),
        StoreConfig::Redis(redis) => {
            // rediss:// uses rustls with ring, the one crypto library here.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let store = Arc::new(RedisStore::connect(redis.clone()).await.context("connecting to Redis")?);
            let revocations = Arc::new(RevocationList::followed());
            load_revocations(store.as_ref(), &revocations).await?;
            revocations.mark_synced(chrono::Utc::now().timestamp_millis());
            store.spawn_follower(revocations.clone());
            return Ok((store, revocations));
        }
    };
    let revocations = Arc::new(RevocationList::new());
    load_revocations(store.as_ref(), &revocations).await?;
    Ok((store, revocations))
}

/// Load the store's revocation list into memory: the last sequence number
/// first, so nothing written while the list is read can be skipped.
async fn load_revocations(store: &dyn Store, revocations: &RevocationList) -> anyhow::Result<()> {
    let last = store.last_sequence().await.context("reading the revocation sequence")?;
    revocations.load(&store.revocations_since(0).await.context("loading the revocation list")?, last);
    Ok(())
}

/// Automatic rotation and announcing withdrawn keys, every reload interval.
struct KeyMaintenance {
    config: Config,
    keyring: Arc<Keyring>,
}

impl KeyMaintenance {
    fn spawn(self, tokens: TokenService) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.config.keys.reload_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Some(every) = self.config.keys.rotate_every {
                    self.rotate(every).await;
                }
                self.announce_revoked_keys(&tokens).await;
            }
        });
    }

    /// Generate the next key of each use when it is due (one replica per slot).
    async fn rotate(&self, every: std::time::Duration) {
        let (directory, config, now) = (self.keyring.directory().clone(), self.config.clone(), self.keyring.clock().now());
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
    async fn announce_revoked_keys(&self, tokens: &TokenService) {
        let lifetime = chrono::Duration::from_std(self.config.token_lifetimes().access).unwrap_or(chrono::Duration::MAX);
        let view = self.keyring.view();
        let fresh: Vec<(Revocation, i64)> = view
            .revoked_signing_keys()
            .filter(|(kid, _)| !tokens.revocations().key_revoked(kid))
            .map(|(kid, at)| {
                (Revocation::Key { kid: kid.to_string() }, at.checked_add_signed(lifetime).map_or(i64::MAX / 2, |e| e.timestamp()))
            })
            .collect();
        if fresh.is_empty() {
            return;
        }
        match tokens.record(fresh).await {
            Ok(()) => tracing::warn!("signing key withdrawn: announced in the revocation feed"),
            Err(error) => tracing::error!(%error, "could not announce a withdrawn key; will retry"),
        }
    }
}

/// Delete expired revocations and consumption records once a minute.
fn spawn_purger(tokens: TokenService) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            ticker.tick().await;
            match tokens.purge_expired().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "expired store entries purged"),
                Err(error) => tracing::warn!(%error, "purging expired store entries failed; will retry"),
            }
        }
    });
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
