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
//!
//! Consumption is one `SET NX GET PX`: atomic on any topology, and a
//! session's records share its shard. Revocations live in one slot so that
//! numbering, logging and streaming an entry is a single atomic script and
//! the full list is one range read. (Per-entry keys with their own TTL
//! cannot be listed in order, or at all without scanning every shard.)
//!
//! Every replica runs a follower on its own connection: it loads the full
//! list, then tails the stream with `XREAD BLOCK`; after any error it
//! reconnects, reloads and resumes. Each successful round marks the mirror
//! fresh; checks that must not run on stale data answer 503 once it is not.

use super::{BoxedTask, ConsumedRefresh, Consumption, HandoffCode, SessionRecord, Store, StoreError, StoreFuture};
use crate::config::{RedisConfig, RedisTopology};
use crate::revocations::{Covers, Revocation, RevocationEntry, RevocationList};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Script, Value};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long stream entries are kept for followers that fall behind; a
/// follower further behind reloads the full list instead.
const STREAM_RETENTION_MS: i64 = 3_600_000;

/// One connection of any topology.
#[derive(Clone)]
enum Connection {
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
struct SentinelLink {
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

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError(error.to_string())
}

/// How long the follower's `XREAD` waits for news before asking again.
const FOLLOW_BLOCK: Duration = Duration::from_millis(500);

/// Connect; `patience` is added to the response timeout (for blocking reads).
async fn connect(config: &RedisConfig, patience: Duration) -> Result<Connection, StoreError> {
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

/// Key names for one prefix.
struct Keys {
    prefix: String,
}

impl Keys {
    fn consumed(&self, sid: &str, jti: &str) -> String {
        format!("{}:rt:{{{sid}}}:{jti}", self.prefix)
    }
    fn sessions(&self, sub: &str) -> String {
        format!("{}:sess:{{{sub}}}", self.prefix)
    }
    /// A handoff code and its "used" marker share a slot.
    fn code(&self, code_id: &str, part: &str) -> String {
        format!("{}:code:{{{code_id}}}:{part}", self.prefix)
    }
    fn revocations(&self, part: &str) -> String {
        format!("{}:{{rev}}:{part}", self.prefix)
    }
}

/// KEYS: seq, log, exp, stream. ARGV: now_ms, stream min id (ms), then
/// (expires_at, entry JSON without seq) pairs. Returns the first new seq.
///
/// A missing counter starts at now_ms × 1000, not 0: if Redis ever loses
/// its data, new sequence numbers still sort after every number a replica
/// or a feed follower has seen, so no cursor ever points past new entries.
const REVOKE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tonumber(ARGV[1]) * 1000))
end
local first = nil
for i = 3, #ARGV, 2 do
  local seq = redis.call('INCR', KEYS[1])
  if not first then first = seq end
  -- Lua numbers are doubles: print the sequence number as an integer.
  local member = string.format('%.0f', seq) .. '|' .. ARGV[i + 1]
  redis.call('ZADD', KEYS[2], seq, member)
  redis.call('ZADD', KEYS[3], ARGV[i], seq)
  redis.call('XADD', KEYS[4], 'MINID', '~', ARGV[2], '*', 'e', member)
end
return first
"#;

/// KEYS: log, exp. ARGV: now (s). Returns how many entries went.
const PURGE: &str = r#"
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, seq in ipairs(gone) do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], seq, seq)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return #gone
"#;

/// KEYS: the subject's session hash. ARGV: sid, record JSON, client_id,
/// limit, now (s), the record's end (ms). Returns the evicted records.
const TRACK_SESSION: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local mine = {}
local latest = tonumber(ARGV[6])
for i = 1, #all, 2 do
  local record = cjson.decode(all[i + 1])
  if record.expires_at < tonumber(ARGV[5]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    if record.expires_at * 1000 > latest then latest = record.expires_at * 1000 end
    if record.client_id == ARGV[3] then
      table.insert(mine, { all[i], record.created_at, all[i + 1] })
    end
  end
end
table.sort(mine, function(a, b)
  if a[2] == b[2] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local evicted = {}
for i = 1, #mine - tonumber(ARGV[4]) do
  redis.call('HDEL', KEYS[1], mine[i][1])
  table.insert(evicted, mine[i][3])
end
redis.call('PEXPIREAT', KEYS[1], latest)
return evicted
"#;

/// A revocation as written into the log: everything but the sequence number.
#[derive(Serialize)]
struct Unnumbered<'a> {
    #[serde(flatten)]
    covers: &'a Covers,
    expires_at: i64,
}

fn parse_member(member: &str) -> Result<RevocationEntry, StoreError> {
    let (seq, json) = member.split_once('|').ok_or_else(|| StoreError("malformed revocation entry".into()))?;
    let seq: u64 = seq.parse().map_err(store_error)?;
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(store_error)?;
    value["seq"] = seq.into();
    serde_json::from_value(value).map_err(store_error)
}

/// The Redis store.
pub struct RedisStore {
    config: RedisConfig,
    connections: Vec<Connection>,
    next: AtomicUsize,
    keys: Keys,
    revoke: Script,
    purge: Script,
    track: Script,
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
        };
        store.ping().await?;
        Ok(store)
    }

    fn connection(&self) -> Connection {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].clone()
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

    /// Keep `mirror` current with what every replica writes, reconnecting
    /// with backoff, until the app stops this task.
    async fn follow_forever(self: Arc<Self>, mirror: Arc<RevocationList>) {
        let mut failures = 0u32;
        loop {
            match self.follow(&mirror).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(%error, "lost the revocation stream; reconnecting (checks that need fresh revocations answer 503 meanwhile)");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(5)))).await;
        }
    }

    /// Load everything, then tail the stream until an error.
    async fn follow(&self, mirror: &RevocationList) -> Result<(), StoreError> {
        let mut connection = connect(&self.config, FOLLOW_BLOCK).await?;
        let stream = self.keys.revocations("stream");
        // Remember where the stream ends before reading the log, so nothing
        // written in between is missed (re-reading it is harmless).
        let last: StreamRangeReply = connection.xrevrange_count(&stream, "+", "-", 1).await.map_err(store_error)?;
        let mut cursor = last.ids.first().map(|entry| entry.id.clone()).unwrap_or_else(|| "0-0".into());
        let last: Option<u64> = connection.get(self.keys.revocations("seq")).await.map_err(store_error)?;
        let snapshot = self.log_range(&mut connection, 0).await?;
        mirror.load(&snapshot, last.unwrap_or(0));
        mirror.mark_synced(chrono::Utc::now().timestamp_millis());
        let options = StreamReadOptions::default().block(FOLLOW_BLOCK.as_millis() as usize).count(1000);
        loop {
            let reply: Option<StreamReadReply> = connection.xread_options(&[&stream], &[&cursor], &options).await.map_err(store_error)?;
            let mut entries = Vec::new();
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for item in key.ids {
                    if let Some(member) = item.get::<String>("e") {
                        entries.push(parse_member(&member)?);
                    }
                    cursor = item.id;
                }
            }
            if !entries.is_empty() {
                mirror.follow(&entries);
            }
            mirror.mark_synced(chrono::Utc::now().timestamp_millis());
        }
    }
}

impl Store for RedisStore {
    fn consume_refresh(&self, sid: &str, jti: &str, record: ConsumedRefresh) -> StoreFuture<'_, Consumption> {
        let key = self.keys.consumed(sid, jti);
        Box::pin(async move {
            let ttl_ms = (record.expires_at * 1000 - chrono::Utc::now().timestamp_millis()).max(1_000);
            let value = serde_json::to_string(&record).map_err(store_error)?;
            let earlier: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut self.connection())
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

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let _: String = redis::cmd("PING").query_async(&mut self.connection()).await.map_err(store_error)?;
            Ok(())
        })
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

/// A URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_passwords_are_redacted() {
        let json = serde_json::to_string(&Unnumbered { covers: &Covers::Session { sid: "s|1".into() }, expires_at: 99 }).unwrap();
        let entry = parse_member(&format!("7|{json}")).unwrap();
        assert_eq!(entry, RevocationEntry { seq: 7, covers: Covers::Session { sid: "s|1".into() }, expires_at: 99 });
        assert_eq!(redact("redis://user:secret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
