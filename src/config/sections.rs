//! Validation of the smaller sections (`[store]`, `[feed]`, `[throttle]`,
//! `[dpop]`) and of `http.trusted_proxies`, each into its typed value.
//! A child of `raw`, so it reads the raw sections' fields directly.

use super::*;

impl RawStore {
    pub(super) fn redis(self) -> Result<RedisConfig, ConfigError> {
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

impl RawFeed {
    pub(super) fn validate(self) -> Result<FeedConfig, ConfigError> {
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

impl RawThrottle {
    pub(super) fn validate(self) -> Result<ThrottleConfig, ConfigError> {
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

impl RawDpop {
    pub(super) fn validate(self) -> Result<crate::config::DpopConfig, ConfigError> {
        Ok(crate::config::DpopConfig {
            max_age: duration("dpop.max_age", self.max_age, "60s", SECOND, Duration::from_secs(600))?,
            require_nonce: self.require_nonce.unwrap_or(false),
            nonce_period: duration("dpop.nonce_period", self.nonce_period, "5m", Duration::from_secs(10), DAY)?,
        })
    }
}

/// `http.trusted_proxies`: IP addresses or CIDR networks (`10.0.0.0/8`,
/// `2001:db8::/32`); a bare address is a network of one.
pub(super) fn trusted_proxies(entries: Option<Vec<String>>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
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
