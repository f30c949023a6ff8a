//! Configuration: a TOML file, overridden key by key by `TESSERA_*`
//! environment variables, parsed once at start into typed values.
//!
//! Everything the rest of tessera sees is already valid: durations are
//! [`std::time::Duration`], the algorithm is a [`SigningAlgorithm`], clients
//! are [`crate::clients::Client`]s. A bad value stops the start with an error
//! that names the key, the value and what is allowed, so an operator never
//! has to guess which line is wrong.

mod clients;
mod duration;
mod env;
mod issuer;
mod load;
mod locate;
mod raw;

pub use duration::{format_duration, parse_duration};
pub use load::{Loaded, Note};

use crate::clients::ClientRegistry;
use crate::keys::SigningAlgorithm;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration value that was refused, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("config file {path} is not valid TOML for tessera: {message}")]
    Syntax { path: String, message: String },
    #[error("config `{key}` = {value}: {allowed}")]
    Invalid { key: String, value: String, allowed: String },
    #[error("unknown config key `{key}`{hint}")]
    UnknownKey { key: String, hint: String },
    #[error("config `{key}`: {message}")]
    WrongType { key: String, message: String },
    /// Another error, with the file, line and column it was found at.
    #[error("{place}: {error}")]
    At { place: String, error: Box<ConfigError> },
}

/// Which store keeps the revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A file on local disk (the default).
    Embedded { path: PathBuf },
    /// A Redis server or cluster shared by several replicas.
    Redis(RedisConfig),
    /// In memory only: nothing survives a restart (tests, benchmarks).
    Memory,
}

/// What kind of Redis deployment `urls` point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    Standalone,
    Cluster,
    /// Sentinels monitoring the master named here; tessera follows failovers.
    Sentinel {
        master: String,
    },
}

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One URL for a standalone server; the seed nodes of a Cluster; the
    /// Sentinels that know the master.
    pub urls: Vec<String>,
    pub topology: RedisTopology,
    /// Prefix of every key tessera writes (several deployments can share a Redis).
    pub key_prefix: String,
    /// Multiplexed connections to a standalone server.
    pub connections: usize,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// How long the in-memory revocation list may go without hearing from
    /// Redis before checks that depend on it answer 503.
    pub mirror_max_staleness: Duration,
}

/// Lifetimes and algorithm of the tokens tessera issues.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub algorithm: SigningAlgorithm,
    pub access_ttl: Duration,
    pub refresh_idle_ttl: Duration,
    pub session_max_age: Duration,
    pub reuse_grace: Duration,
    /// Clock skew tolerated when checking `exp`/`nbf`/`iat`.
    pub leeway: Duration,
    /// How far replicas' clocks may disagree (they must run NTP): added to
    /// a logout-everywhere's instant so tokens a replica ahead of this one
    /// minted just before the logout are covered too.
    pub clock_skew: Duration,
    /// The longest access-token lifetime of any client: with the refresh
    /// idle lifetime, how long a token existing at a logout can live on.
    pub longest_access_ttl: Duration,
}

/// How keys are published.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// `Cache-Control: max-age` of the JWKS; a new key is published at least
    /// twice this long before it signs.
    pub jwks_max_age: Duration,
    /// How often the key directory is checked for changes while serving.
    pub reload_interval: Duration,
    /// Rotate the signing key (and the refresh MAC key) this often, by
    /// itself; `None`: only by hand.
    pub rotate_every: Option<Duration>,
}

impl KeyPolicy {
    /// How long before activation a newly generated key must be published.
    pub fn publication_lead(&self) -> Duration {
        self.jwks_max_age * 2
    }
}

/// HTTP server limits.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// A request's headers must arrive within this, counted from the accept
    /// or the end of the previous response (slowloris).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight closes after this.
    pub keep_alive_timeout: Duration,
    /// Open connections on the public listener; at the cap the longest-idle
    /// one is closed, and a new one is shed only when all are busy.
    pub max_connections: usize,
    /// On SIGTERM, how long requests in flight may take before the rest is cut.
    pub drain_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the peer (empty: none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// How failed client authentication and request floods are slowed down.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failed authentications of one client id within `window` after which
    /// that id gets 429 without its secret being checked (0: no limit).
    pub max_failures: u32,
    /// The same, for all failed authentications from one peer address.
    pub max_failures_per_peer: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// Keys (client ids, peer addresses) each tracking map holds at most.
    pub max_tracked: usize,
    /// Requests per second one peer may make to `/oauth2/*` (0: no limit).
    pub requests_per_second: u32,
    /// Requests one peer may make at once above that rate.
    pub burst: u32,
}

/// The revocation feed: who may read it, and what one reader may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    /// Anyone may read the feed; otherwise a confidential client with the
    /// `read_revocations` permission (the default: the feed names subjects
    /// and sessions).
    pub public: bool,
    /// Entries per document when the request names no `limit`.
    pub page_size: usize,
    /// Open revocation streams, in all.
    pub max_streams: usize,
    /// Open revocation streams from one peer IP address.
    pub max_streams_per_peer: usize,
    /// A stream whose writes make no progress this long is closed.
    pub slow_consumer_timeout: Duration,
}

impl FeedConfig {
    /// The largest `limit` a document request may ask for.
    pub const MAX_PAGE_SIZE: usize = 10_000;
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// DPoP (RFC 9449) at the token endpoint.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// How long after its `iat` a proof is accepted; its `jti` is
    /// remembered this long. A proof may also be up to `tokens.leeway`
    /// ahead of the server's clock.
    pub max_age: Duration,
    /// Whether every proof must carry a server nonce (RFC 9449 §8).
    pub require_nonce: bool,
    /// A nonce names a window of this length and is accepted in it and the next.
    pub nonce_period: Duration,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configured issuer; `None` means "http://" + the bound address.
    pub issuer: Option<String>,
    pub listen: SocketAddr,
    pub keys_dir: PathBuf,
    pub store: StoreConfig,
    /// Start on a store other than the one the key directory names (a lost
    /// or replaced store) behind a global not-before (`store.accept_new_store`,
    /// `serve --accept-new-store`).
    pub accept_new_store: bool,
    pub tokens: TokenPolicy,
    pub keys: KeyPolicy,
    pub http: HttpConfig,
    /// The operator listener: `/metrics`, `/readyz`, `/healthz`.
    pub management_listen: SocketAddr,
    /// Who may read the revocation feed, and its bounds.
    pub feed: FeedConfig,
    pub throttle: ThrottleConfig,
    pub dpop: DpopConfig,
    pub clients: ClientRegistry,
    /// `log.format`: text or JSON lines.
    pub log_format: LogFormat,
}

impl Config {
    /// Load from an optional file plus the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    /// Load from an optional file plus the given environment (for tests);
    /// what loading noticed is logged.
    pub fn load_with_env(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let loaded = Self::read(file, env)?;
        loaded.notes.iter().for_each(Note::log);
        Ok(loaded.config)
    }

    /// The issuer identifier for a server bound to `addr`.
    pub fn issuer_for(&self, addr: SocketAddr) -> String {
        self.issuer.clone().unwrap_or_else(|| format!("http://{addr}"))
    }

    /// The longest a token signed by each kind of key can live: how long a
    /// retired key stays published (signing) or accepted (refresh MAC).
    pub fn token_lifetimes(&self) -> crate::keys::TokenLifetimes {
        let longest_client = self.clients.iter().map(|c| c.access_ttl).max().unwrap_or_default();
        crate::keys::TokenLifetimes { access: self.tokens.access_ttl.max(longest_client), refresh: self.tokens.refresh_idle_ttl }
    }

    /// A configuration of defaults only (no file, no environment).
    pub fn defaults() -> Self {
        Self::load_with_env(None, &[]).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests;
