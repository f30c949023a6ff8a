//! Configuration: a TOML file, overridden key by key by `TESSERA_*`
//! environment variables, parsed once at start into typed values.
//!
//! Everything the rest of tessera sees is already valid: durations are
//! [`std::time::Duration`], the algorithm is a [`SigningAlgorithm`], clients
//! are [`crate::clients::Client`]s. A bad value stops the start with an error
//! that names the key, the value and what is allowed, so an operator never
//! has to guess which line is wrong.

use crate::clients::{Client, ClientRegistry};
use crate::keys::SigningAlgorithm;
use serde::Deserialize;
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
    #[error("unknown environment variable {name}: tessera reads TESSERA_CONFIG, TESSERA_LOG and {known}")]
    UnknownEnv { name: String, known: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, value: impl std::fmt::Debug, allowed: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), value: format!("{value:?}"), allowed: allowed.into() }
    }
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

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One URL for a standalone server; the seed nodes of a cluster.
    pub urls: Vec<String>,
    pub cluster: bool,
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
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configured issuer; `None` means "http://" + the bound address.
    pub issuer: Option<String>,
    pub listen: SocketAddr,
    pub keys_dir: PathBuf,
    pub store: StoreConfig,
    pub tokens: TokenPolicy,
    pub keys: KeyPolicy,
    pub http: HttpConfig,
    /// Whether anyone may read the revocation feed (else: confidential clients).
    pub feed_public: bool,
    pub clients: ClientRegistry,
}

impl Config {
    /// Load from an optional file plus the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    /// Load from an optional file plus the given environment (for tests).
    pub fn load_with_env(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax { path: path.display().to_string(), message: e.to_string() })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "defaults".into());
        let raw: RawConfig =
            table.try_into().map_err(|e: toml::de::Error| ConfigError::Syntax { path: source, message: e.message().to_string() })?;
        raw.validate()
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

/// Settings that can be set from the environment: the key path, and whether
/// the value is always a plain string (so `TESSERA_LISTEN=127.0.0.1:0` needs
/// no TOML quoting) or is read as a TOML value (numbers, arrays of tables).
const ENV_KEYS: &[(&str, bool)] = &[
    ("issuer", true),
    ("listen", true),
    ("keys_dir", true),
    ("store.kind", true),
    ("store.path", true),
    ("store.url", true),
    ("store.cluster_urls", false),
    ("store.key_prefix", true),
    ("store.connections", false),
    ("store.connect_timeout", true),
    ("store.response_timeout", true),
    ("store.mirror_max_staleness", true),
    ("tokens.algorithm", true),
    ("tokens.access_ttl", true),
    ("tokens.refresh_idle_ttl", true),
    ("tokens.session_max_age", true),
    ("tokens.reuse_grace", true),
    ("tokens.leeway", true),
    ("keys.jwks_max_age", true),
    ("keys.reload_interval", true),
    ("keys.rotate_every", true),
    ("http.request_timeout", true),
    ("http.max_body_bytes", false),
    ("feed.public", false),
    ("clients", false),
];

fn env_name(key: &str) -> String {
    format!("TESSERA_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(_) = name.strip_prefix("TESSERA_") else {
            continue;
        };
        if name == "TESSERA_CONFIG" || name == "TESSERA_LOG" {
            continue;
        }
        let Some((key, plain)) = ENV_KEYS.iter().find(|(key, _)| env_name(key) == *name) else {
            let known = ENV_KEYS.iter().map(|(k, _)| env_name(k)).collect::<Vec<_>>().join(", ");
            return Err(ConfigError::UnknownEnv { name: name.clone(), known });
        };
        let parsed = if *plain {
            toml::Value::String(value.clone())
        } else {
            format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).ok_or_else(|| {
                ConfigError::invalid(
                    name.clone(),
                    value,
                    "expected a TOML value: a number, an array like [\"redis://a:7000\"], or an array of inline tables for TESSERA_CLIENTS",
                )
            })?
        };
        let mut parts: Vec<&str> = key.split('.').collect();
        let leaf = parts.pop().expect("non-empty key");
        let mut node = &mut *table;
        for part in parts {
            let entry = node.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                other => {
                    return Err(ConfigError::invalid(part, other.to_string(), "expected a table"));
                }
            };
        }
        node.insert(leaf.to_string(), parsed);
    }
    Ok(())
}

/// Parse a duration such as `"90s"`, `"10m"`, `"14d"`, `"1h30m"` or `"250ms"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds_per = match unit {
            "ms" => {
                total = total.checked_add(Duration::from_millis(number))?;
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        };
        total = total.checked_add(Duration::from_secs(number.checked_mul(seconds_per)?))?;
    }
    // Keep every duration within what a JWT NumericDate can carry comfortably.
    (total <= Duration::from_secs(100 * 365 * 86_400)).then_some(total)
}

/// Render a duration the way config files write it (`"10m"`, `"14d"`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 && !duration.is_zero() {
        return format!("{}ms", duration.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

const DURATION_ALLOWED: &str = "expected a duration like \"90s\", \"10m\", \"1h30m\" or \"14d\"";

fn duration(key: &str, value: Option<String>, default: &str, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_string());
    let parsed = parse_duration(&text).ok_or_else(|| ConfigError::invalid(key, &text, DURATION_ALLOWED))?;
    if parsed < min || parsed > max {
        return Err(ConfigError::invalid(
            key,
            &text,
            format!("expected a duration between {} and {}", format_duration(min), format_duration(max)),
        ));
    }
    Ok(parsed)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuer: Option<String>,
    listen: Option<String>,
    keys_dir: Option<PathBuf>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    feed: RawFeed,
    #[serde(default)]
    clients: Vec<crate::clients::RawClient>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<String>,
    path: Option<PathBuf>,
    url: Option<String>,
    cluster_urls: Option<Vec<String>>,
    key_prefix: Option<String>,
    connections: Option<i64>,
    connect_timeout: Option<String>,
    response_timeout: Option<String>,
    mirror_max_staleness: Option<String>,
}

impl RawStore {
    fn redis(self) -> Result<RedisConfig, ConfigError> {
        let (urls, cluster) = match (self.url, self.cluster_urls) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "store.cluster_urls",
                    "",
                    "set store.url (one server) or store.cluster_urls (a cluster), not both",
                ));
            }
            (Some(url), None) => (vec![url], false),
            (None, Some(urls)) if !urls.is_empty() => (urls, true),
            _ => {
                return Err(ConfigError::invalid(
                    "store.url",
                    "",
                    "required when store.kind = \"redis\": a redis:// or rediss:// URL (or store.cluster_urls for a cluster)",
                ));
            }
        };
        for url in &urls {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                let key = if cluster { "store.cluster_urls" } else { "store.url" };
                return Err(ConfigError::invalid(key, url, "expected a redis:// or rediss:// URL, like \"redis://127.0.0.1:6379/0\""));
            }
        }
        let key_prefix = self.key_prefix.unwrap_or_else(|| "tessera".into());
        if key_prefix.is_empty() || key_prefix.len() > 64 || !key_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
            return Err(ConfigError::invalid("store.key_prefix", &key_prefix, "expected 1 to 64 letters, digits or -_.:"));
        }
        let connections = self.connections.unwrap_or(2);
        if !(1..=64).contains(&connections) {
            return Err(ConfigError::invalid("store.connections", connections, "expected a number from 1 to 64"));
        }
        let ms = Duration::from_millis;
        Ok(RedisConfig {
            urls,
            cluster,
            key_prefix,
            connections: connections as usize,
            connect_timeout: duration("store.connect_timeout", self.connect_timeout, "2s", ms(100), Duration::from_secs(60))?,
            response_timeout: duration("store.response_timeout", self.response_timeout, "1s", ms(50), Duration::from_secs(60))?,
            mirror_max_staleness: duration(
                "store.mirror_max_staleness",
                self.mirror_max_staleness,
                "5s",
                ms(500),
                Duration::from_secs(3600),
            )?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    algorithm: Option<String>,
    access_ttl: Option<String>,
    refresh_idle_ttl: Option<String>,
    session_max_age: Option<String>,
    reuse_grace: Option<String>,
    leeway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    jwks_max_age: Option<String>,
    reload_interval: Option<String>,
    rotate_every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    public: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    request_timeout: Option<String>,
    max_body_bytes: Option<i64>,
}

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| ConfigError::invalid("listen", &listen_text, "expected an IP address and port like \"127.0.0.1:8080\""))?;
        let issuer = self.issuer.as_deref().map(validate_issuer).transpose()?;

        let store = match self.store.kind.as_deref().unwrap_or("embedded") {
            "memory" => StoreConfig::Memory,
            "embedded" => StoreConfig::Embedded { path: self.store.path.unwrap_or_else(|| PathBuf::from("data/tessera.redb")) },
            "redis" => StoreConfig::Redis(self.store.redis()?),
            other => {
                return Err(ConfigError::invalid("store.kind", other, "expected \"embedded\", \"redis\" or \"memory\""));
            }
        };

        let t = self.tokens;
        let algorithm_text = t.algorithm.unwrap_or_else(|| "ES256".into());
        let algorithm = SigningAlgorithm::parse(&algorithm_text).ok_or_else(|| {
            ConfigError::invalid("tokens.algorithm", &algorithm_text, format!("expected one of {}", SigningAlgorithm::NAMES.join(", ")))
        })?;
        let access_ttl = duration("tokens.access_ttl", t.access_ttl, "10m", SECOND, DAY)?;
        let refresh_idle_ttl = duration("tokens.refresh_idle_ttl", t.refresh_idle_ttl, "14d", SECOND, 365 * DAY)?;
        let session_max_age = duration("tokens.session_max_age", t.session_max_age, "90d", SECOND, 3650 * DAY)?;
        let reuse_grace = duration("tokens.reuse_grace", t.reuse_grace, "10s", Duration::ZERO, Duration::from_secs(300))?;
        let leeway = duration("tokens.leeway", t.leeway, "30s", Duration::ZERO, Duration::from_secs(300))?;
        if refresh_idle_ttl > session_max_age {
            return Err(ConfigError::invalid(
                "tokens.refresh_idle_ttl",
                format_duration(refresh_idle_ttl),
                format!("must not exceed tokens.session_max_age ({})", format_duration(session_max_age)),
            ));
        }

        let jwks_max_age = duration("keys.jwks_max_age", self.keys.jwks_max_age, "5m", Duration::ZERO, DAY)?;
        let reload_interval =
            duration("keys.reload_interval", self.keys.reload_interval, "2s", Duration::from_millis(100), Duration::from_secs(3600))?;
        let rotate_every = match self.keys.rotate_every {
            None => None,
            Some(text) => {
                let every = parse_duration(&text).ok_or_else(|| ConfigError::invalid("keys.rotate_every", &text, DURATION_ALLOWED))?;
                // A new key is published twice the JWKS max-age before it signs,
                // and every replica must have reloaded it by then.
                let minimum = jwks_max_age * 2 + reload_interval * 2;
                if every <= minimum {
                    return Err(ConfigError::invalid(
                        "keys.rotate_every",
                        &text,
                        format!(
                            "must be longer than twice keys.jwks_max_age plus twice keys.reload_interval ({})",
                            format_duration(minimum)
                        ),
                    ));
                }
                Some(every)
            }
        };
        let request_timeout =
            duration("http.request_timeout", self.http.request_timeout, "10s", Duration::from_millis(100), Duration::from_secs(600))?;
        let max_body = self.http.max_body_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_body) {
            return Err(ConfigError::invalid("http.max_body_bytes", max_body, "expected a number of bytes between 1024 and 16777216"));
        }

        let clients =
            self.clients.into_iter().enumerate().map(|(index, raw)| raw.validate(index, access_ttl)).collect::<Result<Vec<Client>, _>>()?;
        let clients = ClientRegistry::new(clients)?;

        Ok(Config {
            issuer,
            listen,
            keys_dir: self.keys_dir.unwrap_or_else(|| PathBuf::from("keys")),
            store,
            tokens: TokenPolicy { algorithm, access_ttl, refresh_idle_ttl, session_max_age, reuse_grace, leeway },
            keys: KeyPolicy { jwks_max_age, reload_interval, rotate_every },
            http: HttpConfig { request_timeout, max_body_bytes: max_body as usize },
            feed_public: self.feed.public.unwrap_or(true),
            clients,
        })
    }
}

/// RFC 8414 §2: the issuer is an https URL (http allowed for loopback and
/// development) with no query or fragment; a trailing slash is dropped so
/// `iss` and the metadata's `issuer` compare byte for byte.
fn validate_issuer(issuer: &str) -> Result<String, ConfigError> {
    let allowed = "expected an http(s) URL without query or fragment, like \"https://auth.example.com\"";
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .ok_or_else(|| ConfigError::invalid("issuer", issuer, allowed))?;
    if rest.is_empty() || rest.starts_with('/') || issuer.contains(['?', '#', ' ']) {
        return Err(ConfigError::invalid("issuer", issuer, allowed));
    }
    Ok(issuer.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations_parse_in_config_notation() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("14d"), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "10", "m", "10x", "-5s", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} must be refused");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
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
        let err = Config::load_with_env(None, &env(&[("TESSERA_TOKENS_ACCESS_TTL", "10 minutes")])).unwrap_err().to_string();
        assert!(err.contains("tokens.access_ttl"), "{err}");
        assert!(err.contains("10 minutes"), "{err}");
        assert!(err.contains("\"10m\""), "{err}");
        let err = Config::load_with_env(None, &env(&[("TESSERA_TOKENS_ALGORITHM", "HS256")])).unwrap_err().to_string();
        assert!(err.contains("ES256") && err.contains("HS256"), "{err}");
        let err = Config::load_with_env(None, &env(&[("TESSERA_TOKNS_ALGORITHM", "ES256")])).unwrap_err().to_string();
        assert!(err.contains("TESSERA_TOKNS_ALGORITHM"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "[tokens]\naccess_tl = \"5m\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("access_tl"), "{err}");
    }

    #[test]
    fn issuer_must_be_an_http_url_without_query() {
        assert!(validate_issuer("https://auth.example.com/").is_ok());
        assert!(validate_issuer("auth.example.com").is_err());
        assert!(validate_issuer("https://a.example/?x=1").is_err());
    }
}
