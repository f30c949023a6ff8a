//! The shared store for several replicas: Redis, standalone or Cluster.
//!
//! Layout (prefix `p`, default `tessera`; `{…}` is a Cluster hash tag):
//!
//! | key | type | holds | cleaned by |
//! |---|---|---|---|
//! | `p:rt:{sid}:jti` | string | a consumed refresh token's record | its TTL (the token's expiry) |
//! | `p:sess:{sub}` | hash | the subject's indexed sessions | its TTL (latest session end) and eviction |
//! | `p:{rev}:seq` | counter | the last revocation sequence number | — |
//! | `p:{rev}:log` | sorted set | `seq|entry` by sequence number | purge by expiry |
//! | `p:{rev}:exp` | sorted set | sequence numbers by expiry | purge by expiry |
//! | `p:{rev}:stream` | stream | each new entry, for followers | trimmed by age (MINID) |
//! | `p:{rev}:epoch` | string | the store's epoch: id and creation instant | — |
//! | `p:dpop:id` | string | a DPoP proof seen (`SET NX`) | its TTL (when the proof ages out) |
//!
//! Consumption is one script (get, or set stamped with Redis `TIME`):
//! atomic on any topology, and a session's records share its shard. Its
//! record outlives the token by [`CLOCK_STEP_MARGIN`], so a clock step on
//! the Redis host does not expire it early.
//!
//! A Redis that loses its data (restarted without persistence, flushed)
//! loses its epoch key with it. The follower checks the epoch on every
//! round and stops calling the list current while the store holds another
//! one than this replica accepted; the app then installs a global
//! not-before (see [`crate::store::epoch`]) and accepts the new epoch. Revocations live in one slot so that
//! numbering, logging and streaming an entry is a single atomic script and
//! the full list is one range read. (Per-entry keys with their own TTL
//! cannot be listed in order, or at all without scanning every shard.)
//!
//! Every replica runs a follower on its own connection: it loads the full
//! list, then tails the stream with `XREAD BLOCK`; after any error it
//! reconnects, reloads and resumes. Each successful round marks the mirror
//! fresh; checks that must not run on stale data answer 503 once it is not.

mod connection;
mod follower;
mod scripts;

use super::epoch::{Epoch, Origin, Reading};
use super::{BoxedTask, CLOCK_STEP_MARGIN, ConsumedRefresh, Consumption, HandoffCode, SessionRecord, Store, StoreError, StoreFuture};
use crate::config::{RedisConfig, RedisTopology};
use crate::revocations::{Revocation, RevocationEntry, RevocationList};

use connection::{Connection, connect, store_error};
use redis::{AsyncCommands, Script};
use scripts::{CONSUME, EPOCH, Keys, PURGE, REVOKE, TRACK_SESSION, Unnumbered, parse_member};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long stream entries are kept for followers that fall behind; a
/// follower further behind reloads the full list instead.
const STREAM_RETENTION_MS: i64 = 3_600_000;

/// The Redis store.
pub struct RedisStore {
    config: RedisConfig,
    connections: Vec<Connection>,
    next: AtomicUsize,
    keys: Keys,
    revoke: Script,
    purge: Script,
    track: Script,
    consume: Script,
    epoch: Script,
    /// The epoch this replica checked and accepted (see [`Store::expect_epoch`]).
    expected: Mutex<Option<Epoch>>,
}

impl RedisStore {
    /// Connect (failing fast if Redis cannot be reached at start).
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let count = if config.topology == RedisTopology::Standalone { config.connections } else { 1 };
        let mut connections = Vec::with_capacity(count);
        for _ in 0..count {
            connections.push(connect(&config, Duration::ZERO).await?);
        }
        let keys = Keys { prefix: config.key_prefix.clone() };
        let store = Self {
            config,
            connections,
            next: AtomicUsize::new(0),
            keys,
            revoke: Script::new(REVOKE),
            purge: Script::new(PURGE),
            track: Script::new(TRACK_SESSION),
            consume: Script::new(CONSUME),
            epoch: Script::new(EPOCH),
            expected: Mutex::new(None),
        };
        store.ping().await?;
        Ok(store)
    }

    fn connection(&self) -> Connection {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].clone()
    }

    fn expected_epoch(&self) -> Option<Epoch> {
        self.expected.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The epoch key as it is now (never creating it).
    async fn current_epoch(&self, connection: &mut Connection) -> Result<Option<Epoch>, StoreError> {
        let found: Option<String> = connection.get(self.keys.revocations("epoch")).await.map_err(store_error)?;
        found.map(|json| serde_json::from_str(&json).map_err(store_error)).transpose()
    }

    async fn log_range(&self, connection: &mut Connection, after: u64) -> Result<Vec<RevocationEntry>, StoreError> {
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.revocations("log"))
            .arg(format!("({after}"))
            .arg("+inf")
            .query_async(connection)
            .await
            .map_err(store_error)?;
        members.iter().map(|m| parse_member(m)).collect()
    }
}

impl Store for RedisStore {
    fn consume_refresh(&self, sid: &str, jti: &str, record: ConsumedRefresh) -> StoreFuture<'_, Consumption> {
        let key = self.keys.consumed(sid, jti);
        Box::pin(async move {
            // The script puts its own stamp first.
            let earlier: Option<String> = self
                .consume
                .key(&key)
                .arg(record.to_json_unstamped())
                .arg(record.expires_at)
                .arg(CLOCK_STEP_MARGIN.as_millis() as i64)
                .invoke_async(&mut self.connection())
                .await
                .map_err(store_error)?;
            match earlier {
                None => Ok(Consumption::First),
                Some(json) => Ok(Consumption::Already(serde_json::from_str(&json).map_err(store_error)?)),
            }
        })
    }

    fn consumed_refresh(&self, sid: &str, jti: &str) -> StoreFuture<'_, Option<ConsumedRefresh>> {
        let key = self.keys.consumed(sid, jti);
        Box::pin(async move {
            let found: Option<String> = self.connection().get(&key).await.map_err(store_error)?;
            found.map(|json| serde_json::from_str(&json).map_err(store_error)).transpose()
        })
    }

    fn revoke(&self, revocations: Vec<Revocation>) -> StoreFuture<'_, Vec<RevocationEntry>> {
        Box::pin(async move {
            if revocations.is_empty() {
                return Ok(Vec::new());
            }
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut invocation = self.revoke.prepare_invoke();
            invocation
                .key(self.keys.revocations("seq"))
                .key(self.keys.revocations("log"))
                .key(self.keys.revocations("exp"))
                .key(self.keys.revocations("stream"))
                .arg(now_ms)
                .arg(now_ms - STREAM_RETENTION_MS);
            for Revocation { covers, until } in &revocations {
                let json = serde_json::to_string(&Unnumbered { covers, expires_at: *until }).map_err(store_error)?;
                invocation.arg(*until).arg(json);
            }
            let first: u64 = invocation.invoke_async(&mut self.connection()).await.map_err(store_error)?;
            Ok(revocations
                .into_iter()
                .enumerate()
                .map(|(i, Revocation { covers, until })| RevocationEntry { seq: first + i as u64, covers, expires_at: until })
                .collect())
        })
    }

    fn last_sequence(&self) -> StoreFuture<'_, u64> {
        let key = self.keys.revocations("seq");
        Box::pin(async move {
            let last: Option<u64> = self.connection().get(&key).await.map_err(store_error)?;
            Ok(last.unwrap_or(0))
        })
    }

    fn revocations_since(&self, after: u64) -> StoreFuture<'_, Vec<RevocationEntry>> {
        Box::pin(async move { self.log_range(&mut self.connection(), after).await })
    }

    fn track_session(&self, record: SessionRecord, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>> {
        Box::pin(async move {
            let json = serde_json::to_string(&record).map_err(store_error)?;
            let evicted: Vec<String> = self
                .track
                .key(self.keys.sessions(&record.sub))
                .arg(&record.sid)
                .arg(json)
                .arg(&record.client_id)
                .arg(limit)
                .arg(chrono::Utc::now().timestamp())
                .arg(record.expires_at * 1000)
                .invoke_async(&mut self.connection())
                .await
                .map_err(store_error)?;
            evicted.iter().map(|json| serde_json::from_str(json).map_err(store_error)).collect()
        })
    }

    fn sessions_of(&self, sub: &str) -> StoreFuture<'_, Vec<SessionRecord>> {
        let key = self.keys.sessions(sub);
        Box::pin(async move {
            let all: Vec<String> = self.connection().hvals(&key).await.map_err(store_error)?;
            all.iter().map(|json| serde_json::from_str(json).map_err(store_error)).collect()
        })
    }

    fn purge_expired(&self, now: i64) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            self.purge
                .key(self.keys.revocations("log"))
                .key(self.keys.revocations("exp"))
                .arg(now)
                .invoke_async(&mut self.connection())
                .await
                .map_err(store_error)
        })
    }

    fn put_code(&self, code_id: &str, record: HandoffCode) -> StoreFuture<'_, ()> {
        let key = self.keys.code(code_id, "record");
        Box::pin(async move {
            let ttl_ms = (record.expires_at * 1000 - chrono::Utc::now().timestamp_millis()).max(1_000);
            let json = serde_json::to_string(&record).map_err(store_error)?;
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut self.connection())
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn redeem_code(&self, code_id: &str) -> StoreFuture<'_, Option<HandoffCode>> {
        let (record_key, used_key) = (self.keys.code(code_id, "record"), self.keys.code(code_id, "used"));
        Box::pin(async move {
            let mut connection = self.connection();
            // The marker is the atomic part: exactly one SET NX succeeds.
            let first: Option<String> = redis::cmd("SET")
                .arg(&used_key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(3_600_000)
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            let found: Option<String> = connection.get(&record_key).await.map_err(store_error)?;
            let Some(json) = found else { return Ok(None) };
            let mut record: HandoffCode = serde_json::from_str(&json).map_err(store_error)?;
            record.redeemed = first.is_none();
            Ok(Some(record))
        })
    }

    fn remember_proof(&self, id: &str, _issued_at: i64, until: i64) -> StoreFuture<'_, bool> {
        let key = format!("{}:dpop:{id}", self.keys.prefix);
        Box::pin(async move {
            // One SET NX decides for every replica; the key outlives the proof by a second.
            let first: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(until.saturating_add(1))
                .query_async(&mut self.connection())
                .await
                .map_err(store_error)?;
            Ok(first.is_some())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _: String = redis::cmd("PING").query_async(&mut self.connection()).await.map_err(store_error)?;
            Ok(())
        })
    }

    fn epoch(&self) -> StoreFuture<'_, Option<Reading>> {
        Box::pin(async move {
            let (origin, json): (String, String) = self
                .epoch
                .key(self.keys.revocations("epoch"))
                .key(self.keys.revocations("seq"))
                .arg(super::epoch::new_id())
                .invoke_async(&mut self.connection())
                .await
                .map_err(store_error)?;
            let epoch: Epoch = serde_json::from_str(&json).map_err(store_error)?;
            let origin = match origin.as_str() {
                "existing" => Origin::Existing,
                "adopted" => Origin::Adopted,
                _ => Origin::Created,
            };
            Ok(Some(Reading { epoch, origin }))
        })
    }

    fn expect_epoch(&self, epoch: &Epoch) {
        *self.expected.lock().unwrap_or_else(|e| e.into_inner()) = Some(epoch.clone());
    }

    fn describe(&self) -> String {
        let urls: Vec<String> = self.config.urls.iter().map(|u| redact(u)).collect();
        let kind = match &self.config.topology {
            RedisTopology::Standalone => String::new(),
            RedisTopology::Cluster => " cluster".into(),
            RedisTopology::Sentinel { master } => format!(" via sentinels for {master:?}"),
        };
        format!("redis{kind} ({}, prefix {:?})", urls.join(", "), self.config.key_prefix)
    }

    fn max_staleness(&self) -> Option<Duration> {
        Some(self.config.mirror_max_staleness)
    }

    fn follower(self: Arc<Self>, list: Arc<RevocationList>) -> Option<BoxedTask> {
        Some(Box::pin(self.follow_forever(list)))
    }
}

/// A URL without its user and password, for logs and errors — also a
/// mistyped one (`redis//:secret@host`), where a parser would find no
/// userinfo and leave the password in place.
pub fn redact(url: &str) -> String {
    let Some(at) = url.rfind('@') else { return url.to_string() };
    match url.find("://") {
        Some(scheme) if scheme < at => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => format!("***@{}", &url[at + 1..]),
    }
}

/// `text` with every one of `urls` redacted, and any password of theirs
/// removed wherever else it shows (an error that quotes part of a URL).
pub fn scrub(text: &str, urls: &[String]) -> String {
    let mut text = text.to_string();
    for url in urls {
        text = text.replace(url.as_str(), &redact(url));
        if let Some(at) = url.rfind('@') {
            let userinfo = &url[url.find("://").map_or(0, |s| s + 3).min(at)..at];
            if let Some((_, password)) = userinfo.split_once(':')
                && password.len() >= 3
            {
                text = text.replace(password, "***");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::Covers;

    #[test]
    fn members_round_trip_and_passwords_are_redacted() {
        let json = serde_json::to_string(&Unnumbered { covers: &Covers::Session { sid: "s|1".into() }, expires_at: 99 }).unwrap();
        let entry = parse_member(&format!("7|{json}")).unwrap();
        assert_eq!(entry, RevocationEntry { seq: 7, covers: Covers::Session { sid: "s|1".into() }, expires_at: 99 });
        assert_eq!(redact("redis://user:secret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn a_mistyped_url_loses_its_password_too() {
        assert_eq!(redact("redis//:TopSecretPw@127.0.0.1:16391/0"), "***@127.0.0.1:16391/0");
        assert_eq!(redact("rediss://:p@ss@host/0"), "rediss://***@host/0");
        let urls = vec!["redis://:TopSecretPw@127.0.0.1:1/0".to_string()];
        let scrubbed = scrub("cannot reach redis://:TopSecretPw@127.0.0.1:1/0 (auth TopSecretPw refused)", &urls);
        assert!(!scrubbed.contains("TopSecretPw"), "{scrubbed}");
        assert!(scrubbed.contains("redis://***@127.0.0.1:1/0"), "{scrubbed}");
    }
}
