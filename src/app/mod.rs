//! The composition root: the one place where tessera is wired together.
//!
//! [`App::build`] turns a validated [`Config`] into a running service's
//! parts — keys prepared and loaded, the store opened (and checked to be
//! the one the key directory worked with, [`crate::store::epoch`]) and its revocation
//! list mirrored in memory, the HTTP router — and starts the background
//! tasks the service needs (key reload and rotation, purging, a shared
//! store's follower and its data-loss watch). [`App::serve`] serves a listener until a shutdown
//! future resolves, drains, and stops every task. `tessera serve`, the
//! integration and property tests and the benches all build the app here,
//! so there is no second wiring to drift.
//!
//! Every task belongs to the [`App`]'s [`Tasks`]: dropping the app (or
//! shutting it down) stops them, as mini-redis' `DbDropGuard` does for its
//! purge task.

mod epoch;
pub mod listener;
pub mod reload;
mod tasks;
mod write_stall;

pub use tasks::Tasks;
pub use write_stall::WriteStallLimit;

use crate::authority::Authority;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, StoreConfig};
use crate::http::{self, AppState};
use crate::keys::{KeyDirectory, KeyMeta, Keyring};
use crate::metrics::Metrics;
use crate::revocations::RevocationList;
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use anyhow::Context;
use listener::Limits;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How to build the app beyond its configuration.
#[derive(Clone)]
pub struct Options {
    /// `serve --dev`: the demo page and its stand-in login backend.
    pub dev: bool,
    /// Where time comes from (tests move a manual clock).
    pub clock: SharedClock,
    /// The address the listener is bound to, which names the issuer when
    /// the configuration does not.
    pub bound: Option<SocketAddr>,
    /// How often expired entries are purged (a minute; tests go faster).
    pub purge_every: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { dev: false, clock: Arc::new(SystemClock), bound: None, purge_every: std::time::Duration::from_secs(60) }
    }
}

/// A built service: its router, its state and the tasks it owns.
pub struct App {
    state: AppState,
    public: crate::http::edge::Edge,
    management: crate::http::edge::Edge,
    tasks: Tasks,
    /// Keys generated at start (none when the directory had them).
    pub created_keys: Vec<KeyMeta>,
}

impl App {
    /// Prepare keys, open the store — refusing one that is not the store
    /// the key directory worked with, unless accepted (see [`crate::store::epoch`]) —
    /// load the revocation list, build the router and start the background
    /// tasks.
    pub async fn build(mut config: Config, options: Options) -> anyhow::Result<App> {
        let clock = options.clock.clone();
        let lifetimes = config.token_lifetimes();
        let directory = KeyDirectory::new(&config.keys_dir);
        let had_keys = directory.metadata().is_ok_and(|metas| !metas.is_empty());
        let created_keys = directory
            .ensure_keys(config.tokens.algorithm, lifetimes, clock.now())
            .with_context(|| format!("preparing key directory {}", config.keys_dir.display()))?;
        let keyring = Arc::new(
            Keyring::open(directory.clone(), lifetimes, clock.clone())
                .with_context(|| format!("loading key directory {}", config.keys_dir.display()))?,
        );
        let metrics = Arc::new(Metrics::new(&http::route_labels()));
        epoch::refuse_missing_file(&config, &directory)?;
        let store = crate::telemetry::traced_store(open_store(&config, metrics.clone(), clock.clone()).await?);
        let store_epoch = epoch::at_start(store.as_ref(), &directory, &config, clock.as_ref(), !had_keys).await?;
        let revocations = Arc::new(load_revocations(store.as_ref(), clock.as_ref()).await?);

        let issuer = config.issuer_for(options.bound.unwrap_or(config.listen));
        if options.dev {
            config.clients = crate::http::demo::with_demo_client(config.clients, &issuer, config.tokens.access_ttl);
        }
        let session_ids = crate::sessions::sid::SessionIdKey::open_or_create(&config.keys_dir)
            .with_context(|| format!("preparing the session-id key in {}", config.keys_dir.display()))?;
        let authority =
            Authority::new(&issuer, config.tokens.clone(), keyring.clone(), store.clone(), revocations.clone(), metrics, session_ids);
        let mut tasks = Tasks::default();
        tasks.spawn("key reload", keyring.clone().reload_every(config.keys.reload_interval));
        tasks.spawn("key maintenance", tasks::key_maintenance(config.clone(), keyring.clone(), authority.clone()));
        tasks.spawn("purge", tasks::purge(authority.clone(), options.purge_every));
        if let Some(follower) = store.clone().follower(revocations.clone()) {
            tasks.spawn("revocation follower", follower);
            if let Some(known) = store_epoch {
                let watch = epoch::watch(authority.clone(), directory, known, config.tokens.session_max_age);
                tasks.spawn("store epoch watch", watch);
            }
        }
        let state = AppState::new(config, keyring, authority, options.dev);
        let public = http::service(state.clone());
        let management = http::management_service(state.clone());
        Ok(App { state, public, management, tasks, created_keys })
    }

    /// The router, for in-process tests (`tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.public.clone())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The management router (`/metrics`, `/readyz`, `/healthz`).
    pub fn management_router(&self) -> axum::Router {
        axum::Router::new().fallback_service(self.management.clone())
    }

    /// Serve the public and the management listener until `shutdown`
    /// resolves, let requests in flight finish within the drain deadline
    /// (long-lived streams are told to end), then stop every task.
    pub async fn serve(self, public_listener: TcpListener, management: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
        let App { state, public, management: management_service, tasks, .. } = self;
        let config = state.config();
        let http = &config.http;
        let mut limits = Limits {
            header_read_timeout: http.header_read_timeout,
            keep_alive_timeout: http.keep_alive_timeout,
            max_connections: http.max_connections,
            drain_timeout: http.drain_timeout,
        };
        if let Some(open_files) = listener::raise_open_file_limit() {
            // Leave room for the store, the key directory, the management
            // listener and outgoing connections.
            let room = (open_files as usize).saturating_sub(128).max(16);
            if room < limits.max_connections {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    open_files,
                    "http.max_connections lowered to stay below the open-file limit"
                );
                limits.max_connections = room;
            }
        }
        let operator_limits = Limits { max_connections: 64, ..limits };
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let draining = state.clone();
        let signal = async move {
            shutdown.await;
            draining.begin_shutdown();
            stop_tx.send_replace(true);
        };
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        tokio::join!(
            signal,
            listener::serve(public_listener, public, limits, stopped(stop.clone())),
            listener::serve(management, management_service, operator_limits, stopped(stop)),
        );
        tasks.shutdown().await;
    }
}

/// Open the configured store.
async fn open_store(config: &Config, metrics: Arc<Metrics>, clock: SharedClock) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.store {
        StoreConfig::Embedded { .. } => {
            let path = epoch::embedded_path(config)?.expect("an embedded store has a path");
            if config.accept_new_store && EmbeddedStore::discard_empty(&path)? {
                tracing::warn!(path = %path.display(), "the empty store file was removed, as the operator accepted a new store");
            }
            Arc::new(EmbeddedStore::open(&path, metrics, clock).with_context(|| format!("opening the store {}", path.display()))?)
        }
        StoreConfig::Memory => Arc::new(MemoryStore::with_clock(clock)),
        StoreConfig::Redis(redis) => {
            // rediss:// uses rustls with ring, the one crypto library here.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Arc::new(RedisStore::connect(redis.clone()).await.context("connecting to Redis")?)
        }
    })
}

/// Load the store's revocation list into memory: the last sequence number
/// first, so nothing written while the list is read can be skipped. A
/// shared store's list is current only while its follower reports in.
async fn load_revocations(store: &dyn Store, clock: &dyn crate::clock::Clock) -> anyhow::Result<RevocationList> {
    let list = if store.max_staleness().is_some() { RevocationList::followed() } else { RevocationList::new() };
    let last = store.last_sequence().await.context("reading the revocation sequence")?;
    list.load(&store.revocations_since(0).await.context("loading the revocation list")?, last);
    list.mark_synced(clock.now().timestamp_millis());
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_config(dir: &std::path::Path) -> Config {
        let mut config = Config::defaults();
        config.keys_dir = dir.join("keys");
        config.store = StoreConfig::Memory;
        config
    }

    #[tokio::test]
    async fn shutdown_stops_every_background_task() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::build(memory_config(dir.path()), Options::default()).await.unwrap();
        assert!(app.tasks.running() >= 3, "key reload, key maintenance and purge run");
        let tasks = app.tasks;
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.shutdown()).await.expect("every task stops when told");
    }

    #[tokio::test]
    async fn dropping_the_app_stops_its_tasks_and_frees_what_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::build(memory_config(dir.path()), Options::default()).await.unwrap();
        let keyring = Arc::downgrade(&app.state.keyring);
        drop(app);
        // Aborted tasks release their clones at their next poll.
        for _ in 0..50 {
            if keyring.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("a background task still holds the keyring after the app was dropped");
    }
}
