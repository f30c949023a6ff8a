//! Connections of every topology behind one type: a standalone server
//! (connection manager), a Cluster, or a master found through Sentinels and
//! followed across failovers.

use super::StoreError;
use crate::config::{RedisConfig, RedisTopology};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;

/// One connection of any topology.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
    Sentinel(Arc<SentinelLink>),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let mut master = link.master();
                    let result = master.req_packed_command(cmd).await;
                    link.after(&result).await;
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let mut master = link.master();
                    let result = master.req_packed_commands(pipeline, offset, count).await;
                    link.after(&result).await;
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Sentinel(link) => link.master().get_db(),
        }
    }
}

/// A connection to whichever server the Sentinels name as master. A
/// failure that may mean a failover (the server is gone, or it was demoted
/// and refuses writes) asks the Sentinels again, so the next command goes to
/// the new master; the failed command itself is reported (503) rather than
/// retried, since it may have been applied.
pub(super) struct SentinelLink {
    sentinels: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    current: std::sync::RwLock<ConnectionManager>,
    settings: ConnectionManagerConfig,
}

impl SentinelLink {
    async fn connect(config: &RedisConfig, master: &str, settings: ConnectionManagerConfig) -> Result<Arc<Self>, StoreError> {
        let mut sentinels =
            redis::sentinel::SentinelClient::build(config.urls.clone(), master, None, redis::sentinel::SentinelServerType::Master)
                .map_err(store_error)?;
        let client = sentinels.async_get_client().await.map_err(store_error)?;
        let first = ConnectionManager::new_with_config(client, settings.clone()).await.map_err(store_error)?;
        Ok(Arc::new(Self { sentinels: tokio::sync::Mutex::new(sentinels), current: std::sync::RwLock::new(first), settings }))
    }

    fn master(&self) -> ConnectionManager {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ask the Sentinels for the master and connect to it.
    async fn resolve(&self) -> Result<ConnectionManager, StoreError> {
        let client = self.sentinels.lock().await.async_get_client().await.map_err(store_error)?;
        ConnectionManager::new_with_config(client, self.settings.clone()).await.map_err(store_error)
    }

    async fn after<T>(&self, result: &redis::RedisResult<T>) {
        let Err(error) = result else { return };
        let failover = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if failover && let Ok(master) = self.resolve().await {
            tracing::warn!("Redis master changed or unreachable; now using the master the Sentinels name");
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = master;
        }
    }
}

pub(super) fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// How long the follower's `XREAD` waits for news before asking again.
pub(super) const FOLLOW_BLOCK: Duration = Duration::from_millis(500);

/// Connect; `patience` is added to the response timeout (for blocking reads).
/// An error never carries a password from the configured URLs.
pub(super) async fn connect(config: &RedisConfig, patience: Duration) -> Result<Connection, StoreError> {
    open(config, patience).await.map_err(|error| StoreError(super::scrub(&error.0, &config.urls)))
}

async fn open(config: &RedisConfig, patience: Duration) -> Result<Connection, StoreError> {
    let response_timeout = config.response_timeout + patience;
    let settings = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    match &config.topology {
        RedisTopology::Cluster => {
            let client = redis::cluster::ClusterClientBuilder::new(config.urls.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(response_timeout)
                .retries(2)
                .build()
                .map_err(store_error)?;
            Ok(Connection::Cluster(client.get_async_connection().await.map_err(store_error)?))
        }
        RedisTopology::Standalone => {
            let client = redis::Client::open(config.urls[0].as_str()).map_err(store_error)?;
            Ok(Connection::Single(ConnectionManager::new_with_config(client, settings).await.map_err(store_error)?))
        }
        RedisTopology::Sentinel { master } => Ok(Connection::Sentinel(SentinelLink::connect(config, master, settings).await?)),
    }
}
