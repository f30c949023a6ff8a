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
mod tests {
    use super::env::env_name;
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_match_the_design() {
        let config = Config::defaults();
        assert_eq!(config.issuer, None);
        assert_eq!(config.issuer_for(config.listen), "http://127.0.0.1:8080");
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(600));
        assert_eq!(config.tokens.algorithm, SigningAlgorithm::ES256);
        assert_eq!(config.store, StoreConfig::Embedded { path: "data/tessera.redb".into() });
    }

    #[test]
    fn every_declared_key_has_its_environment_variable() {
        let names: Vec<String> = raw::env_keys().map(|(key, _)| env_name(key)).collect();
        for expected in [
            "TESSERA_LISTEN",
            "TESSERA_STORE_URL",
            "TESSERA_TOKENS_ACCESS_TTL",
            "TESSERA_HTTP_MAX_BODY_BYTES",
            "TESSERA_FEED_PUBLIC",
            "TESSERA_CLIENTS",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n == "TESSERA_STORE" || n == "TESSERA_TOKENS"), "sections are not variables: {names:?}");
        for (key, form) in raw::env_keys() {
            let value = if form == raw::EnvForm::Plain { "x" } else { "1" };
            let notes = Config::read(None, &env(&[(&env_name(key), value)])).map(|loaded| loaded.notes).unwrap_or_default();
            assert!(notes.iter().all(|note| !note.message.contains("unknown environment variable")), "{key}: {notes:?}");
        }
    }

    #[test]
    fn the_feed_is_private_and_bounded_by_default() {
        let feed = Config::defaults().feed;
        assert_eq!(
            feed,
            FeedConfig {
                public: false,
                page_size: 1000,
                max_streams: 1024,
                max_streams_per_peer: 8,
                slow_consumer_timeout: Duration::from_secs(30)
            }
        );
        let err = Config::load_with_env(None, &env(&[("TESSERA_FEED_PAGE_SIZE", "10001")])).unwrap_err().to_string();
        assert!(err.contains("feed.page_size") && err.contains("10000"), "{err}");
        let err = Config::load_with_env(None, &env(&[("TESSERA_FEED_MAX_STREAMS_PER_PEER", "0")])).unwrap_err().to_string();
        assert!(err.contains("feed.max_streams_per_peer"), "{err}");
        let open =
            Config::load_with_env(None, &env(&[("TESSERA_FEED_PUBLIC", "true"), ("TESSERA_FEED_SLOW_CONSUMER_TIMEOUT", "5s")])).unwrap();
        assert!(open.feed.public);
        assert_eq!(open.feed.slow_consumer_timeout, Duration::from_secs(5));
    }

    #[test]
    fn environment_overrides_file_values() {
        let config = Config::load_with_env(
            None,
            &env(&[("TESSERA_TOKENS_ACCESS_TTL", "5m"), ("TESSERA_LISTEN", "127.0.0.1:0"), ("TESSERA_HTTP_MAX_BODY_BYTES", "2048")]),
        )
        .unwrap();
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(300));
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.http.max_body_bytes, 2048);
    }

    #[test]
    fn a_bad_value_names_key_value_and_what_is_allowed() {
        let err = Config::load_with_env(None, &env(&[("TESSERA_TOKENS_ACCESS_TTL", "10 parsecs")])).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_TOKENS_ACCESS_TTL: "), "the variable is named: {err}");
        assert!(err.contains("tokens.access_ttl"), "{err}");
        assert!(err.contains("10 parsecs"), "{err}");
        assert!(err.contains("\"10m\""), "{err}");
        let err = Config::load_with_env(None, &env(&[("TESSERA_FEED_PUBLIC", "1")])).unwrap_err().to_string();
        assert!(err.contains("TESSERA_FEED_PUBLIC (feed.public)") && err.contains("bool"), "{err}");
        let err = Config::load_with_env(None, &env(&[("TESSERA_TOKENS_ALGORITHM", "HS256")])).unwrap_err().to_string();
        assert!(err.contains("ES256") && err.contains("HS256"), "{err}");
        let notes = Config::read(None, &env(&[("TESSERA_TOKNS_ALGORITHM", "ES256")])).unwrap().notes;
        assert!(notes[0].message.contains("TESSERA_TOKNS_ALGORITHM") && notes[0].message.contains("TESSERA_TOKENS_ALGORITHM"), "{notes:?}");
    }

    #[test]
    fn throttling_is_on_by_default_and_its_keys_are_bounded() {
        let throttle = Config::defaults().throttle;
        assert_eq!((throttle.max_failures, throttle.max_failures_per_peer), (20, 40));
        assert_eq!(throttle.window, Duration::from_secs(60));
        assert_eq!((throttle.max_tracked, throttle.requests_per_second), (100_000, 0));
        let config = Config::load_with_env(None, &env(&[("TESSERA_THROTTLE_REQUESTS_PER_SECOND", "50")])).unwrap();
        assert_eq!((config.throttle.requests_per_second, config.throttle.burst), (50, 50), "the burst defaults to one second's worth");
        let err = Config::load_with_env(None, &env(&[("TESSERA_THROTTLE_MAX_TRACKED", "5")])).unwrap_err().to_string();
        assert!(err.contains("throttle.max_tracked") && err.contains("100 to 10000000"), "{err}");
        let err = Config::load_with_env(None, &env(&[("TESSERA_THROTTLE_WINDOW", "0")])).unwrap_err().to_string();
        assert!(err.contains("throttle.window"), "{err}");
        let config = Config::load_with_env(None, &env(&[("TESSERA_HTTP_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")])).unwrap();
        assert_eq!(config.http.trusted_proxies.len(), 1);
    }

    #[test]
    fn dpop_proofs_live_a_minute_nonces_are_off_and_bad_values_name_the_key() {
        let dpop = Config::defaults().dpop;
        assert_eq!((dpop.max_age, dpop.require_nonce, dpop.nonce_period), (Duration::from_secs(60), false, Duration::from_secs(300)));
        let config = Config::load_with_env(None, &env(&[("TESSERA_DPOP_REQUIRE_NONCE", "true"), ("TESSERA_DPOP_MAX_AGE", "2m")])).unwrap();
        assert_eq!((config.dpop.require_nonce, config.dpop.max_age), (true, Duration::from_secs(120)));
        let err = Config::load_with_env(None, &env(&[("TESSERA_DPOP_MAX_AGE", "1h")])).unwrap_err().to_string();
        assert!(err.contains("dpop.max_age") && err.contains("1h"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "[tokens]\naccess_tl = \"5m\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), &[]).unwrap_err().to_string();
        let expected = format!("{}:2:1: unknown config key `tokens.access_tl`; did you mean `access_ttl`?", path.display());
        assert!(err.starts_with(&expected), "{err}");
        assert!(err.contains("[tokens] takes: algorithm, access_ttl"), "{err}");
    }

    fn file_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text).unwrap();
        let err = Config::load_with_env(Some(&path), &[]).unwrap_err().to_string();
        err.replace(&path.display().to_string(), "t.toml")
    }

    #[test]
    fn file_errors_name_the_key_with_its_line_and_column() {
        let err = file_error("[tokens]\naccess_ttl = 600\n");
        assert!(err.starts_with("t.toml:2:14: config `tokens.access_ttl`: invalid type: integer `600`"), "{err}");
        let err = file_error("[tokens]\naccess_ttl = \"2d\"\n");
        assert!(err.starts_with("t.toml:2:14: config `tokens.access_ttl` = \"2d\": expected a duration between 1s and 1d"), "{err}");
        let err = file_error("[[clients]]\nid = \"web\"\npublic = true\n\n[[clients]]\nid = \"app\"\npublic = true\nscope = [\"a\"]\n");
        assert!(err.starts_with("t.toml:8:1: unknown config key `clients[1].scope`; did you mean `scopes`?"), "{err}");
        let err = file_error("[[clients]]\nid = \"web\"\npublic = true\naccess_ttl = \"1y\"\n");
        assert!(err.starts_with("t.toml:4:14: config `clients[0].access_ttl` = \"1y\""), "{err}");
        let err = file_error("listn = \"127.0.0.1:1\"\n");
        assert!(err.starts_with("t.toml:1:1: unknown config key `listn`; did you mean `listen`?"), "{err}");
        let err = file_error("listen = \"0.0.0.0:8080\"\n");
        assert!(err.starts_with("config `issuer` = \"<unset>\": required when listen (0.0.0.0:8080)"), "{err}");
        let err = file_error("[log]\nformat = \"xml\"\n");
        assert!(err.starts_with("t.toml:2:10: config `log.format` = \"xml\": expected \"text\" or \"json\""), "{err}");
    }

    #[test]
    fn durations_take_humantime_forms() {
        let config = Config::load_with_env(
            None,
            &env(&[
                ("TESSERA_TOKENS_ACCESS_TTL", "10 minutes"),
                ("TESSERA_TOKENS_REFRESH_IDLE_TTL", "1h 30m"),
                ("TESSERA_LOG_FORMAT", "json"),
            ]),
        )
        .unwrap();
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(600));
        assert_eq!(config.tokens.refresh_idle_ttl, Duration::from_secs(5400));
        assert_eq!(config.log_format, LogFormat::Json);
    }
}
