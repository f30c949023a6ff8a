//! The configuration as written (every field optional, unknown keys
//! refused) and its validation into [`Config`]: defaults, bounds, and an
//! error that names the key, the value and what is allowed.

use super::duration::{DURATION_ALLOWED, duration, format_duration, parse_duration};
use super::issuer::check_issuer;
use super::{
    Config, ConfigError, FeedConfig, HttpConfig, KeyPolicy, LogFormat, Note, RedisConfig, RedisTopology, StoreConfig, ThrottleConfig,
    TokenPolicy,
};
use crate::clients::{Client, ClientRegistry};
use crate::keys::SigningAlgorithm;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How a `TESSERA_*` variable sets a key: as a plain string (so
/// `TESSERA_LISTEN=127.0.0.1:0` needs no TOML quoting) or as a TOML value
/// (numbers, booleans, arrays, the array of client tables). A section is a
/// table of keys, not a key of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnvForm {
    Plain,
    Toml,
    Section,
}

/// The [`EnvForm`] of a setting's type.
trait Setting {
    const FORM: EnvForm;
}

macro_rules! env_form {
    ($form:ident: $($ty:ty),*) => { $(impl Setting for $ty { const FORM: EnvForm = EnvForm::$form; })* };
}
env_form!(Plain: Option<String>, Option<PathBuf>);
env_form!(Toml: Option<i64>, Option<bool>, Option<Vec<String>>, Vec<super::clients::RawClient>);
env_form!(Section: RawStore, RawTokens, RawKeys, RawFeed, RawHttp, RawManagement, RawThrottle, RawLog, RawDpop);

/// Declares a section of the file once: the struct serde reads (unknown
/// keys refused) and, from the same field list, the keys the environment
/// may set, so a new setting is one line here plus its validation.
macro_rules! settings {
    (struct $name:ident in $prefix:literal { $($(#[$meta:meta])* $field:ident: $ty:ty,)* }) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            $($(#[$meta])* $field: $ty,)*
        }

        impl $name {
            const KEYS: &'static [(&'static str, EnvForm)] = &[$((concat!($prefix, stringify!($field)), <$ty as Setting>::FORM),)*];
        }
    };
}

/// Every key a `TESSERA_*` variable may set, with how it is read.
pub(super) fn env_keys() -> impl Iterator<Item = (&'static str, EnvForm)> {
    [
        RawConfig::KEYS,
        RawStore::KEYS,
        RawTokens::KEYS,
        RawKeys::KEYS,
        RawHttp::KEYS,
        RawFeed::KEYS,
        RawManagement::KEYS,
        RawThrottle::KEYS,
        RawLog::KEYS,
        RawDpop::KEYS,
    ]
    .into_iter()
    .flatten()
    .copied()
    .filter(|(_, form)| *form != EnvForm::Section)
}

settings! {
    struct RawConfig in "" {
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
        management: RawManagement,
        #[serde(default)]
        feed: RawFeed,
        #[serde(default)]
        throttle: RawThrottle,
        #[serde(default)]
        dpop: RawDpop,
        #[serde(default)]
        clients: Vec<super::clients::RawClient>,
        #[serde(default)]
        log: RawLog,
    }
}

settings! {
    struct RawLog in "log." {
        format: Option<String>,
    }
}

settings! {
    struct RawStore in "store." {
        kind: Option<String>,
        path: Option<PathBuf>,
        url: Option<String>,
        cluster_urls: Option<Vec<String>>,
        sentinel_urls: Option<Vec<String>>,
        sentinel_master: Option<String>,
        key_prefix: Option<String>,
        connections: Option<i64>,
        connect_timeout: Option<String>,
        response_timeout: Option<String>,
        mirror_max_staleness: Option<String>,
        accept_new_store: Option<bool>,
    }
}

settings! {
    struct RawTokens in "tokens." {
        algorithm: Option<String>,
        access_ttl: Option<String>,
        refresh_idle_ttl: Option<String>,
        session_max_age: Option<String>,
        reuse_grace: Option<String>,
        leeway: Option<String>,
        clock_skew: Option<String>,
    }
}

settings! {
    struct RawKeys in "keys." {
        jwks_max_age: Option<String>,
        reload_interval: Option<String>,
        rotate_every: Option<String>,
    }
}

settings! {
    struct RawFeed in "feed." {
        public: Option<bool>,
        page_size: Option<i64>,
        max_streams: Option<i64>,
        max_streams_per_peer: Option<i64>,
        slow_consumer_timeout: Option<String>,
    }
}

settings! {
    struct RawManagement in "management." {
        listen: Option<String>,
    }
}

settings! {
    struct RawHttp in "http." {
        request_timeout: Option<String>,
        max_body_bytes: Option<i64>,
        header_read_timeout: Option<String>,
        keep_alive_timeout: Option<String>,
        max_connections: Option<i64>,
        drain_timeout: Option<String>,
        trusted_proxies: Option<Vec<String>>,
    }
}

settings! {
    struct RawThrottle in "throttle." {
        max_failures: Option<i64>,
        max_failures_per_peer: Option<i64>,
        window: Option<String>,
        max_tracked: Option<i64>,
        requests_per_second: Option<i64>,
        burst: Option<i64>,
    }
}

settings! {
    struct RawDpop in "dpop." {
        max_age: Option<String>,
        require_nonce: Option<bool>,
        nonce_period: Option<String>,
    }
}

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

impl RawConfig {
    pub(super) fn validate(self, notes: &mut Vec<Note>) -> Result<Config, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| ConfigError::invalid("listen", &listen_text, "expected an IP address and port like \"127.0.0.1:8080\""))?;
        let issuer = self.issuer.as_deref().map(validate_issuer).transpose()?;
        check_issuer(issuer.as_deref(), listen, notes)?;
        let log_format = match self.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(ConfigError::invalid("log.format", other, "expected \"text\" or \"json\"")),
        };

        let accept_new_store = self.store.accept_new_store.unwrap_or(false);
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
        let clock_skew = duration("tokens.clock_skew", t.clock_skew, "2s", Duration::ZERO, Duration::from_secs(60))?;
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
            duration("http.request_timeout", self.http.request_timeout, "5s", Duration::from_millis(100), Duration::from_secs(600))?;
        let max_body = self.http.max_body_bytes.unwrap_or(64 * 1024);
        if !(1024..=16 * 1024 * 1024).contains(&max_body) {
            return Err(ConfigError::invalid("http.max_body_bytes", max_body, "expected a number of bytes between 1024 and 16777216"));
        }
        let header_read_timeout = duration(
            "http.header_read_timeout",
            self.http.header_read_timeout,
            "10s",
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?;
        let keep_alive_timeout =
            duration("http.keep_alive_timeout", self.http.keep_alive_timeout, "5s", Duration::from_millis(100), Duration::from_secs(3600))?;
        let drain_timeout = duration("http.drain_timeout", self.http.drain_timeout, "10s", Duration::ZERO, Duration::from_secs(600))?;
        let max_connections = self.http.max_connections.unwrap_or(4096);
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(ConfigError::invalid("http.max_connections", max_connections, "expected a number from 1 to 1000000"));
        }
        validate_reuse_grace(reuse_grace, request_timeout, &store)?;
        let feed = self.feed.validate()?;
        let management_listen = self.management.listen.as_deref().unwrap_or("127.0.0.1:9090");
        let management_listen = management_listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::invalid("management.listen", management_listen, "expected host:port, like \"127.0.0.1:9090\""))?;

        let clients =
            self.clients.into_iter().enumerate().map(|(index, raw)| raw.validate(index, access_ttl)).collect::<Result<Vec<Client>, _>>()?;
        super::clients::check_session_clients(&clients)?;
        let longest_access_ttl = clients.iter().map(|c| c.access_ttl).fold(access_ttl, Duration::max);
        let clients = ClientRegistry::new(clients)
            .map_err(|duplicate| ConfigError::invalid("clients.id", &duplicate.0, "client ids must be unique"))?;

        Ok(Config {
            issuer,
            listen,
            keys_dir: self.keys_dir.unwrap_or_else(|| PathBuf::from("keys")),
            store,
            accept_new_store,
            tokens: TokenPolicy {
                algorithm,
                access_ttl,
                refresh_idle_ttl,
                session_max_age,
                reuse_grace,
                leeway,
                clock_skew,
                longest_access_ttl,
            },
            keys: KeyPolicy { jwks_max_age, reload_interval, rotate_every },
            http: HttpConfig {
                request_timeout,
                max_body_bytes: max_body as usize,
                header_read_timeout,
                keep_alive_timeout,
                max_connections: max_connections as usize,
                drain_timeout,
                trusted_proxies: sections::trusted_proxies(self.http.trusted_proxies)?,
            },
            management_listen,
            feed,
            throttle: self.throttle.validate()?,
            dpop: self.dpop.validate()?,
            clients,
            log_format,
        })
    }
}

/// A refresh answered 408 or 503 may still have been applied (the store
/// committed after the caller stopped waiting), so its retry must land
/// inside the grace window to get the same child rather than end the
/// session as a theft. The window must therefore outlast the longest a
/// request can wait for the store. 0 turns retries off.
fn validate_reuse_grace(reuse_grace: Duration, request_timeout: Duration, store: &StoreConfig) -> Result<(), ConfigError> {
    let store_wait = match store {
        StoreConfig::Redis(redis) => redis.response_timeout,
        StoreConfig::Embedded { .. } | StoreConfig::Memory => Duration::ZERO,
    };
    let longest = request_timeout + store_wait;
    if reuse_grace.is_zero() || reuse_grace > longest {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "tokens.reuse_grace",
        format_duration(reuse_grace),
        format!(
            "must be longer than http.request_timeout + store.response_timeout ({} + {} = {}), or \"0\" to turn retries off: \
             a refresh answered 408/503 may still have consumed the token, and its retry must fall inside the window \
             to get the same tokens instead of ending the session as a stolen token",
            format_duration(request_timeout),
            format_duration(store_wait),
            format_duration(longest)
        ),
    ))
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

#[path = "sections.rs"]
mod sections;

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
