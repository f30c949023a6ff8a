//! The only server state: revocations, consumed refresh tokens, and (only
//! when a client sets a session limit) a per-subject session index.
//!
//! [`Store`] is deliberately narrow — intention-named operations, not a
//! key-value API — so the rules in [`crate::sessions`] cannot depend on how
//! a backend lays data out. Every entry carries the instant after which it
//! is useless (`expires_at`, Unix seconds) and is purged then, so the store
//! stays as small as the set of live tokens it must remember.
//!
//! Implementations: [`memory::MemoryStore`] (tests, benchmarks; not
//! durable) and [`embedded::EmbeddedStore`] (the default: a redb file,
//! fsync'd before any write is acknowledged, group-committed) and
//! [`redis::RedisStore`] (shared by several replicas).
//!
//! Failing closed is the store's part of the contract:
//! - a lost or replaced store is noticed ([`epoch`]) and never revives a
//!   session;
//! - a write is acknowledged only once durable, and a store whose writes
//!   fail says so ([`Store::health`]) until they work again;
//! - a consumption is stamped when it is committed, by the store, so a
//!   retry of a request that timed out is measured from when the token was
//!   really consumed;
//! - nothing is purged before [`purge_cutoff`]: a clock that jumps forward
//!   and back does not bring dead tokens back.

pub mod embedded;
pub mod epoch;
pub mod memory;
pub mod proofs;
pub mod redis;

use crate::revocations::{Revocation, RevocationEntry, RevocationList};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the store can be used as `Arc<dyn Store>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store could not do what was asked; callers answer 503 and never
/// pretend a write happened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the store is unavailable: {0}")]
pub struct StoreError(pub String);

/// The record of a consumed refresh token: which child replaced it, so a
/// retry inside the grace window gets the very same child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedRefresh {
    pub child_jti: String,
    pub access_jti: String,
    /// `iat` of the child pair.
    pub issued_at: i64,
    /// When the parent was consumed, in milliseconds (the grace window's
    /// start). Set by the store when the consumption is committed (the
    /// writer's clock, Redis `TIME`); what the caller puts here is ignored.
    pub consumed_at_ms: i64,
    pub client_id: String,
    /// The scope the child access token was given (a request may narrow it).
    pub access_scope: Option<String>,
    /// The audience the child access token was given when a request
    /// narrowed it (RFC 8707 `resource`); `None`: the session's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_aud: Option<Vec<String>>,
    /// The consumed token's own expiry; the record is useless after it.
    pub expires_at: i64,
    /// The DPoP key the child pair is bound to, if any; a retry must prove
    /// the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

impl ConsumedRefresh {
    /// The record as JSON: exactly the bytes `serde_json::to_vec` writes
    /// (a test compares), written member by member — the embedded store's
    /// writer encodes one for every refresh.
    pub fn to_json(&self) -> Vec<u8> {
        self.write(true)
    }

    /// The record as JSON without `consumed_at_ms`, which the Redis script
    /// puts in front with Redis's own clock.
    pub fn to_json_unstamped(&self) -> Vec<u8> {
        self.write(false)
    }

    fn write(&self, stamped: bool) -> Vec<u8> {
        let mut object = crate::json::Object::with_capacity(256);
        object.string("child_jti", &self.child_jti);
        object.string("access_jti", &self.access_jti);
        object.number("issued_at", self.issued_at);
        if stamped {
            object.number("consumed_at_ms", self.consumed_at_ms);
        }
        object.string("client_id", &self.client_id);
        object.string_or_null("access_scope", self.access_scope.as_deref());
        if let Some(aud) = &self.access_aud {
            object.strings("access_aud", aud);
        }
        object.number("expires_at", self.expires_at);
        object.optional_string("jkt", self.jkt.as_deref());
        object.finish()
    }
}

/// The result of an atomic consumption attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumption {
    /// This call consumed the token; the caller mints the child it recorded.
    First,
    /// The token had been consumed before; here is what replaced it.
    Already(ConsumedRefresh),
}

/// A one-time code that hands a new session to a browser, bound to the
/// PKCE challenge the page made. Stored under the SHA-256 of the code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffCode {
    pub sid: String,
    pub sub: String,
    pub client_id: String,
    pub scope: Option<String>,
    pub aud: Vec<String>,
    #[serde(default)]
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub auth_time: i64,
    pub session_exp: i64,
    /// BASE64URL(SHA-256(code_verifier)) (RFC 7636 S256).
    pub code_challenge: String,
    /// The code may be exchanged until this instant.
    pub use_by: i64,
    /// Whether it has been presented before (set by the store).
    #[serde(default)]
    pub redeemed: bool,
    /// The record is kept, to recognise a second use, until this instant.
    pub expires_at: i64,
    /// RFC 9449 §10: the thumbprint of the DPoP key the exchange must prove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// One live session in the per-subject index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub sid: String,
    pub sub: String,
    pub client_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Creation order, finer than `created_at`: milliseconds × 1000 plus a
    /// per-process counter (0 in records written before it existed). The
    /// session limit evicts by it.
    #[serde(default)]
    pub created_stamp: u64,
}

/// Durable server state.
pub trait Store: Send + Sync + 'static {
    /// Atomically mark refresh token `jti` consumed by `record`, unless it
    /// was consumed already — in which case return the earlier record and
    /// change nothing. Of any number of concurrent calls for one `jti`,
    /// exactly one sees [`Consumption::First`].
    /// (`sid` keeps a session's records together on a sharded store.)
    fn consume_refresh(&self, sid: &str, jti: &str, record: ConsumedRefresh) -> StoreFuture<'_, Consumption>;

    /// The consumption record of `jti` of session `sid`, if any.
    fn consumed_refresh(&self, sid: &str, jti: &str) -> StoreFuture<'_, Option<ConsumedRefresh>>;

    /// Record revocations durably; returns them with their sequence numbers.
    fn revoke(&self, revocations: Vec<Revocation>) -> StoreFuture<'_, Vec<RevocationEntry>>;

    /// The highest sequence number assigned so far (every later entry gets a
    /// higher one), so a fresh mirror knows where the feed stands even when
    /// every earlier entry has expired.
    fn last_sequence(&self) -> StoreFuture<'_, u64>;

    /// Every live revocation with a sequence number above `after`, in order.
    fn revocations_since(&self, after: u64) -> StoreFuture<'_, Vec<RevocationEntry>>;

    /// Add a session to its subject's index for one client, keeping at most
    /// `limit` sessions of that subject and client; returns the evicted
    /// (oldest by `created_stamp`) ones, which the caller revokes. The
    /// session being added is never among them.
    fn track_session(&self, record: SessionRecord, limit: usize) -> StoreFuture<'_, Vec<SessionRecord>>;

    /// The indexed sessions of a subject.
    fn sessions_of(&self, sub: &str) -> StoreFuture<'_, Vec<SessionRecord>>;

    /// Delete everything that expired before `cutoff` (see [`purge_cutoff`]);
    /// returns how many entries went.
    fn purge_expired(&self, cutoff: i64) -> StoreFuture<'_, usize>;

    /// Store a new handoff code under `code_id` (a hash of the code).
    fn put_code(&self, code_id: &str, record: HandoffCode) -> StoreFuture<'_, ()>;

    /// Atomically mark a code used and return its record as it was before:
    /// `redeemed: false` for exactly one caller, `true` for every later one;
    /// `None` for an unknown or forgotten code.
    fn redeem_code(&self, code_id: &str) -> StoreFuture<'_, Option<HandoffCode>>;

    /// Record DPoP proof `id` (a hash of its key's thumbprint and `jti`)
    /// as used until `until` (Unix seconds: when the proof has aged out);
    /// `issued_at` is its `iat`. `true` the first time, `false` for a
    /// replay; across replicas exactly one caller sees `true`. A store that
    /// forgets proofs on restart answers `false` for a proof made before it
    /// opened (see [`proofs`]).
    fn remember_proof(&self, id: &str, issued_at: i64, until: i64) -> StoreFuture<'_, bool>;

    /// Whether the store answers at all (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Whether writes work: `Err(reason)` while they fail (the embedded
    /// store after a failed commit, until it has re-opened), for `/readyz`.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// The store's epoch, created if it has none (see [`epoch`]); `None`
    /// for a store that keeps nothing (memory).
    fn epoch(&self) -> StoreFuture<'_, Option<epoch::Reading>> {
        Box::pin(async { Ok(None) })
    }

    /// The epoch this replica has checked and accepted. A shared store's
    /// follower refuses to call the list current while the store holds
    /// another one (or none): its data was lost and is being handled.
    fn expect_epoch(&self, epoch: &epoch::Epoch) {
        let _ = epoch;
    }

    /// A line for the start-up banner: kind and location.
    fn describe(&self) -> String;

    /// For a store that several replicas share: how long the in-memory list
    /// may go without hearing from it before checks refuse (fail closed).
    /// `None` for a local store, whose every write passes through this
    /// process's own list.
    fn max_staleness(&self) -> Option<std::time::Duration> {
        None
    }

    /// For a shared store: the loop that keeps `list` current with what
    /// other replicas write, run by the app until shutdown. `None` for a
    /// local store.
    fn follower(self: std::sync::Arc<Self>, list: std::sync::Arc<RevocationList>) -> Option<BoxedTask> {
        let _ = list;
        None
    }
}

/// A background loop, owned and stopped by [`crate::app`].
pub type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How long past its expiry an entry is kept at least: a wall clock that
/// jumps forward and is then corrected must not have purged revocations
/// that still cover live tokens.
pub const CLOCK_STEP_MARGIN: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The purge cutoff at `now`: entries that expired before it may go. Never
/// later than `now` minus the larger of the leeway and [`CLOCK_STEP_MARGIN`].
pub fn purge_cutoff(now: i64, leeway: std::time::Duration) -> i64 {
    let margin = leeway.max(CLOCK_STEP_MARGIN).as_secs();
    now.saturating_sub(i64::try_from(margin).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{ConsumedRefresh, purge_cutoff};
    use std::time::Duration;

    proptest::proptest! {
        /// A consumption record is written as serde_json writes it, and
        /// without its stamp as serde_json would write it without one.
        #[test]
        fn records_are_written_exactly_as_serde_json_writes_them(
            text in "\\PC{0,16}|[\\x00-\\x7f]{0,16}",
            numbers: (i64, i64, i64),
            present: (bool, bool, bool),
        ) {
            let record = ConsumedRefresh {
                child_jti: text.clone(),
                access_jti: format!("{text}-a"),
                issued_at: numbers.0,
                consumed_at_ms: numbers.1,
                client_id: text.clone(),
                access_scope: present.0.then(|| text.clone()),
                access_aud: present.1.then(|| vec![text.clone(), "b".into()]),
                expires_at: numbers.2,
                jkt: present.2.then(|| text.clone()),
            };
            proptest::prop_assert_eq!(record.to_json(), serde_json::to_vec(&record).unwrap());
            let mut expected = serde_json::to_value(&record).unwrap();
            expected.as_object_mut().unwrap().remove("consumed_at_ms");
            let unstamped: serde_json::Value = serde_json::from_slice(&record.to_json_unstamped()).unwrap();
            proptest::prop_assert_eq!(unstamped, expected);
        }
    }

    #[test]
    fn the_purge_cutoff_keeps_a_day_or_the_leeway_whichever_is_longer() {
        assert_eq!(purge_cutoff(1_000_000, Duration::from_secs(30)), 1_000_000 - 86_400);
        assert_eq!(purge_cutoff(1_000_000, Duration::from_secs(2 * 86_400)), 1_000_000 - 2 * 86_400);
        assert_eq!(purge_cutoff(i64::MIN + 5, Duration::ZERO), i64::MIN, "no overflow");
    }
}

#[cfg(test)]
pub(crate) mod contract;
