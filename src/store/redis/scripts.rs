//! The key layout and the Lua scripts that make each multi-key write one
//! atomic step, plus the log's member format (`seq|entry`).

use super::StoreError;
use super::connection::store_error;
use crate::revocations::{Covers, RevocationEntry};
use serde::Serialize;

/// Key names for one prefix.
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn consumed(&self, sid: &str, jti: &str) -> String {
        format!("{}:rt:{{{sid}}}:{jti}", self.prefix)
    }
    pub(super) fn sessions(&self, sub: &str) -> String {
        format!("{}:sess:{{{sub}}}", self.prefix)
    }
    /// A handoff code and its "used" marker share a slot.
    pub(super) fn code(&self, code_id: &str, part: &str) -> String {
        format!("{}:code:{{{code_id}}}:{part}", self.prefix)
    }
    pub(super) fn revocations(&self, part: &str) -> String {
        format!("{}:{{rev}}:{part}", self.prefix)
    }
}

/// KEYS: seq, log, exp, stream. ARGV: now_ms, stream min id (ms), then
/// (expires_at, entry JSON without seq) pairs. Returns the first new seq.
///
/// A missing counter starts at now_ms × 1000, not 0: if Redis ever loses
/// its data, new sequence numbers still sort after every number a replica
/// or a feed follower has seen, so no cursor ever points past new entries.
pub(super) const REVOKE: &str = r#"
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
pub(super) const PURGE: &str = r#"
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, seq in ipairs(gone) do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], seq, seq)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return #gone
"#;

/// KEYS: the subject's session hash. ARGV: sid, record JSON, client_id,
/// limit, now (s), the record's end (ms). Returns the evicted records:
/// the oldest by creation stamp (then second, then sid), never the one
/// being added (ARGV[1]).
pub(super) const TRACK_SESSION: &str = r#"
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
    if record.client_id == ARGV[3] and all[i] ~= ARGV[1] then
      table.insert(mine, { all[i], record.created_stamp or 0, record.created_at, all[i + 1] })
    end
  end
end
table.sort(mine, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  if a[3] ~= b[3] then return a[3] < b[3] end
  return a[1] < b[1]
end)
local evicted = {}
for i = 1, #mine - (tonumber(ARGV[4]) - 1) do
  redis.call('HDEL', KEYS[1], mine[i][1])
  table.insert(evicted, mine[i][4])
end
redis.call('PEXPIREAT', KEYS[1], latest)
return evicted
"#;

/// KEYS: the consumed token's record. ARGV: the record JSON (an object,
/// without `consumed_at_ms`), the token's expiry (s), how long past it to
/// keep the record (ms). Returns the earlier record, or nil when this call
/// consumed the token.
///
/// The consumption is stamped with Redis `TIME` when the script runs — that
/// is when it is committed, even if the caller was answered 503 long before
/// (a paused or slow Redis runs queued commands late) — so a retry's grace
/// window starts when the token was really consumed.
pub(super) const CONSUME: &str = r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local earlier = redis.call('GET', KEYS[1])
if earlier then return earlier end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local value = '{"consumed_at_ms":' .. string.format('%.0f', ms) .. ',' .. string.sub(ARGV[1], 2)
local ttl = tonumber(ARGV[2]) * 1000 + tonumber(ARGV[3]) - ms
if ttl < 1000 then ttl = 1000 end
redis.call('SET', KEYS[1], value, 'PX', string.format('%.0f', ttl))
return false
"#;

/// KEYS: epoch, seq. ARGV: a fresh random id. Returns {origin, epoch JSON}:
/// the epoch the store has (`existing`), or one made now with Redis `TIME`
/// as its creation instant — `adopted` when an older tessera's data is
/// there, `created` when the store is empty. `SET` only when missing, in one
/// script: every replica that races here agrees on one epoch.
pub(super) const EPOCH: &str = r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local found = redis.call('GET', KEYS[1])
if found then return {'existing', found} end
local origin = 'created'
if redis.call('EXISTS', KEYS[2]) == 1 then origin = 'adopted' end
local now = redis.call('TIME')
local value = '{"id":"' .. ARGV[1] .. '","created":' .. now[1] .. '}'
redis.call('SET', KEYS[1], value)
return {origin, value}
"#;

/// A revocation as written into the log: everything but the sequence number.
#[derive(Serialize)]
pub(super) struct Unnumbered<'a> {
    #[serde(flatten)]
    pub(super) covers: &'a Covers,
    pub(super) expires_at: i64,
}

pub(super) fn parse_member(member: &str) -> Result<RevocationEntry, StoreError> {
    let (seq, json) = member.split_once('|').ok_or_else(|| StoreError("malformed revocation entry".into()))?;
    let seq: u64 = seq.parse().map_err(store_error)?;
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(store_error)?;
    value["seq"] = seq.into();
    serde_json::from_value(value).map_err(store_error)
}
