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
env_form!(Section: RawStore, RawTokens, RawKeys, RawFeed, RawHttp, RawManagement, RawThrottle, RawLog);
env_form!(Section: RawDpop);

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
    ]
    .into_iter()
    .chain([RawDpop::KEYS])
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

impl RawStore {
    fn redis(self) -> Result<RedisConfig, ConfigError> {
        let (urls, topology, key) = match (self.url, self.cluster_urls, self.sentinel_urls) {
            (Some(url), None, None) => (vec![url], RedisTopology::Standalone, "store.url"),
            (None, Some(urls), None) if !urls.is_empty() => (urls, RedisTopology::Cluster, "store.cluster_urls"),
            (None, None, Some(urls)) if !urls.is_empty() => {
                let master = self.sentinel_master.ok_or_else(|| {
                    ConfigError::invalid(
                        "store.sentinel_master",
                        "",
                        "required with store.sentinel_urls: the name the Sentinels monitor, like \"mymaster\"",
                    )
                })?;
                (urls, RedisTopology::Sentinel { master }, "store.sentinel_urls")
            }
            _ => {
                return Err(ConfigError::invalid(
                    "store.url",
                    "",
                    "with store.kind = \"redis\" set exactly one of store.url (one server), store.cluster_urls (a Cluster) or store.sentinel_urls (Sentinel)",
                ));
            }
        };
        for url in &urls {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::invalid(
                    key,
                    crate::store::redis::redact(url),
                    "expected a redis:// or rediss:// URL, like \"redis://127.0.0.1:6379/0\"",
                ));
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
            topology,
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

impl RawFeed {
    fn validate(self) -> Result<FeedConfig, ConfigError> {
        let count = |key: &str, value: Option<i64>, default: i64, max: i64| {
            let value = value.unwrap_or(default);
            if (1..=max).contains(&value) {
                Ok(value as usize)
            } else {
                Err(ConfigError::invalid(key, value, format!("expected a number from 1 to {max}")))
            }
        };
        let max_streams = count("feed.max_streams", self.max_streams, 1024, 1_000_000)?;
        let max_streams_per_peer = count("feed.max_streams_per_peer", self.max_streams_per_peer, 8, 1_000_000)?;
        Ok(FeedConfig {
            public: self.public.unwrap_or(false),
            page_size: count("feed.page_size", self.page_size, 1000, FeedConfig::MAX_PAGE_SIZE as i64)?,
            max_streams,
            max_streams_per_peer,
            slow_consumer_timeout: duration(
                "feed.slow_consumer_timeout",
                self.slow_consumer_timeout,
                "30s",
                SECOND,
                Duration::from_secs(3600),
            )?,
        })
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

impl RawThrottle {
    fn validate(self) -> Result<ThrottleConfig, ConfigError> {
        let number = |key: &str, value: Option<i64>, default: i64, range: std::ops::RangeInclusive<i64>| {
            let value = value.unwrap_or(default);
            if range.contains(&value) {
                Ok(value as u32)
            } else {
                Err(ConfigError::invalid(key, value, format!("expected a number from {} to {}", range.start(), range.end())))
            }
        };
        let requests_per_second = number("throttle.requests_per_second", self.requests_per_second, 0, 0..=1_000_000)?;
        Ok(ThrottleConfig {
            max_failures: number("throttle.max_failures", self.max_failures, 20, 0..=100_000)?,
            max_failures_per_peer: number("throttle.max_failures_per_peer", self.max_failures_per_peer, 40, 0..=100_000)?,
            window: duration("throttle.window", self.window, "1m", SECOND, DAY)?,
            max_tracked: number("throttle.max_tracked", self.max_tracked, 100_000, 100..=10_000_000)? as usize,
            requests_per_second,
            burst: number("throttle.burst", self.burst, i64::from(requests_per_second.max(1)), 1..=1_000_000)?,
        })
    }
}

settings! {
    struct RawDpop in "dpop." {
        max_age: Option<String>,
        require_nonce: Option<bool>,
        nonce_period: Option<String>,
    }
}

impl RawDpop {
    fn validate(self) -> Result<super::DpopConfig, ConfigError> {
        Ok(super::DpopConfig {
            max_age: duration("dpop.max_age", self.max_age, "60s", SECOND, Duration::from_secs(600))?,
            require_nonce: self.require_nonce.unwrap_or(false),
            nonce_period: duration("dpop.nonce_period", self.nonce_period, "5m", Duration::from_secs(10), DAY)?,
        })
    }
}

/// `http.trusted_proxies`: IP addresses or CIDR networks (`10.0.0.0/8`,
/// `2001:db8::/32`); a bare address is a network of one.
fn trusted_proxies(entries: Option<Vec<String>>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let allowed = "expected IP addresses or CIDR networks, like [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]";
    entries
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let text = entry.trim();
            text.parse::<ipnet::IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::invalid("http.trusted_proxies", entry, allowed))
        })
        .collect()
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
                trusted_proxies: trusted_proxies(self.http.trusted_proxies)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load_with_env(None, &env)
    }

    #[test]
    fn the_reuse_grace_must_outlast_a_request_and_the_store_wait() {
        assert_eq!(Config::defaults().tokens.reuse_grace, Duration::from_secs(10));
        assert_eq!(Config::defaults().http.request_timeout, Duration::from_secs(5), "the defaults satisfy the rule");
        let error = load(&[("TESSERA_TOKENS_REUSE_GRACE", "5s")]).unwrap_err().to_string();
        assert!(error.contains("tokens.reuse_grace") && error.contains("http.request_timeout") && error.contains("408/503"), "{error}");
        assert!(load(&[("TESSERA_TOKENS_REUSE_GRACE", "5s"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "4s")]).is_ok());
        assert!(load(&[("TESSERA_TOKENS_REUSE_GRACE", "0")]).is_ok(), "0 turns retries off");
        let redis =
            [("TESSERA_STORE_KIND", "redis"), ("TESSERA_STORE_URL", "redis://127.0.0.1:6379"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "9s")];
        let error = load(&[redis.as_slice(), &[("TESSERA_TOKENS_REUSE_GRACE", "10s")]].concat()).unwrap_err().to_string();
        assert!(error.contains("9s + 1s = 10s"), "{error}");
        assert!(load(&[redis.as_slice(), &[("TESSERA_TOKENS_REUSE_GRACE", "11s")]].concat()).is_ok());
    }

    #[test]
    fn a_mistyped_redis_url_is_echoed_without_its_password() {
        let error = load(&[("TESSERA_STORE_KIND", "redis"), ("TESSERA_STORE_URL", "redis//:TopSecretPw@127.0.0.1:16391/0")])
            .unwrap_err()
            .to_string();
        assert!(!error.contains("TopSecretPw"), "{error}");
        assert!(error.contains("store.url") && error.contains("127.0.0.1:16391"), "{error}");
        assert!(load(&[("TESSERA_STORE_ACCEPT_NEW_STORE", "true")]).unwrap().accept_new_store);
        assert!(!Config::defaults().accept_new_store);
    }

    #[test]
    fn issuer_must_be_an_http_url_without_query() {
        assert!(validate_issuer("https://auth.example.com/").is_ok());
        assert!(validate_issuer("auth.example.com").is_err());
        assert!(validate_issuer("https://a.example/?x=1").is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let parsed = trusted_proxies(Some(vec!["10.1.2.3/8".into(), "192.0.2.7".into(), "2001:db8::/32".into()])).unwrap();
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let error = trusted_proxies(Some(vec!["10.0.0.0/33".into()])).unwrap_err().to_string();
        assert!(error.contains("http.trusted_proxies") && error.contains("10.0.0.0/33"), "{error}");
        assert!(trusted_proxies(Some(vec!["proxy.internal".into()])).is_err());
    }
}
