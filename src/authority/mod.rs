//! The authority: what every rule needs to decide, record and mint, in one
//! cheap-to-clone value — the issuer, the token policy, the live keyring,
//! the clock, the store, the in-memory revocation list, the metrics.
//!
//! The rules themselves live beside it, one module per concern, as
//! functions over an `&Authority`: [`crate::grants`] (one file per
//! grant), [`crate::sessions`] (creation, logout, the session index),
//! [`introspect`] (RFC 7662) and [`revoke`] (RFC 7009). Handlers call those
//! functions and never reach into the authority's parts.
//!
//! Its own duties: recording revocations durably before anyone is told
//! they happened ([`Authority::record`]); refusing to decide on a
//! revocation list that may be missing entries
//! ([`Authority::require_fresh_revocations`]); how long a session or
//! subject entry must live ([`Authority::entry_until`]); and the
//! per-client quota on revocation requests ([`quota`]).

pub mod introspect;
pub mod quota;
pub mod revoke;
pub mod verified;

use crate::clients::Client;
use crate::clock::SharedClock;
use crate::config::TokenPolicy;
use crate::keys::Keyring;
use crate::metrics::{Metrics, RevocationKind};
use crate::revocations::{Covers, Page, Revocation, RevocationList, SignedPage, SignedPages};
use crate::sessions::sid::SessionIdKey;
use crate::store::Store;
use crate::tokens::issue::Minter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a request was refused. The HTTP layer maps each kind to RFC 6749
/// JSON on OAuth endpoints and to problem+json elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{field} {message}")]
    InvalidField { field: String, message: String },
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    InvalidGrant(String),
    /// RFC 9449 §5: the DPoP proof is missing, wrong, or replayed.
    #[error("{0}")]
    InvalidDpopProof(String),
    #[error("no signing key is active; check the key directory")]
    KeysUnavailable,
    #[error("the revocation store is unavailable; try again shortly")]
    StoreUnavailable,
    /// The thing named does not exist (a session id tessera never issued).
    #[error("{0}")]
    NotFound(String),
    /// A quota is used up; `retry_after` seconds until it is not.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
}

impl Refusal {
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Refusal::InvalidField { field: field.into(), message: message.into() }
    }

    /// The request field the refusal is about, if any.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Refusal::InvalidField { field, .. } => Some(field),
            Refusal::InvalidScope(_) => Some("scope"),
            Refusal::InvalidTarget(_) => Some("aud"),
            _ => None,
        }
    }
}

/// The pure rule behind [`Authority::entry_until`].
pub fn entry_until(policy: &TokenPolicy, now: i64, session_end: Option<i64>) -> i64 {
    let longest = policy.refresh_idle_ttl.max(policy.longest_access_ttl).as_secs() as i64;
    let cap = now.saturating_add(longest);
    session_end.map_or(cap, |end| end.min(cap)).saturating_add(policy.leeway.as_secs() as i64)
}

/// The shared parts every rule works with; cheap to clone.
#[derive(Clone)]
pub struct Authority {
    pub(crate) issuer: Arc<str>,
    pub(crate) policy: TokenPolicy,
    pub(crate) keyring: Arc<Keyring>,
    pub(crate) clock: SharedClock,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) revocations: Arc<RevocationList>,
    pub(crate) metrics: Arc<Metrics>,
    /// The one place access-token claims are assembled and tokens signed.
    pub(crate) minter: Minter,
    /// How stale a followed revocation list may be before checks refuse.
    max_staleness: std::time::Duration,
    /// Tags and checks session ids.
    pub(crate) session_ids: Arc<SessionIdKey>,
    /// The last session-creation stamp handed out (see [`Authority::creation_stamp`]).
    stamps: Arc<AtomicU64>,
    quota: Arc<quota::RevocationQuota>,
    /// The feed's signed pages, each signed once per change of the list.
    feed_pages: Arc<SignedPages>,
    /// Access tokens already verified, for repeated introspection.
    verified: Arc<verified::VerifiedTokens>,
}

impl Authority {
    pub fn new(
        issuer: &str,
        policy: TokenPolicy,
        keyring: Arc<Keyring>,
        store: Arc<dyn Store>,
        revocations: Arc<RevocationList>,
        metrics: Arc<Metrics>,
        session_ids: SessionIdKey,
    ) -> Self {
        let clock = keyring.clock().clone();
        let max_staleness = store.max_staleness().unwrap_or(std::time::Duration::from_secs(5));
        let minter = Minter::new(issuer, keyring.clone(), clock.clone());
        Self {
            issuer: issuer.into(),
            policy,
            keyring,
            clock,
            store,
            revocations,
            metrics,
            minter,
            max_staleness,
            session_ids: Arc::new(session_ids),
            stamps: Arc::default(),
            quota: Arc::default(),
            feed_pages: Arc::default(),
            verified: Arc::default(),
        }
    }

    /// Until when a session or subject entry written now must be kept: no
    /// longer than any token it can still stop — a refresh token existing
    /// now dies within the refresh idle lifetime, an access token within
    /// the longest access lifetime, none outlives its session's end
    /// (`session_end`, when known) — plus the leeway checks allow.
    pub fn entry_until(&self, session_end: Option<i64>) -> i64 {
        entry_until(&self.policy, self.clock.unix(), session_end)
    }

    /// A session-creation stamp: milliseconds × 1000 plus a counter, strictly
    /// increasing in this process, so the session limit can tell which of
    /// two sessions created in one millisecond is newer.
    pub fn creation_stamp(&self) -> u64 {
        let candidate = (self.clock.now().timestamp_millis().max(0) as u64).saturating_mul(1000);
        let previous = self.stamps.fetch_max(candidate, Ordering::SeqCst);
        if previous < candidate {
            return candidate;
        }
        self.stamps.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Count one revocation request of `client` against its quota. Public
    /// clients are counted per session (`sid`), since anyone may name them.
    pub fn within_quota(&self, client: &Client, sid: Option<&str>) -> Result<(), Refusal> {
        let key = match sid {
            Some(sid) if client.is_public() => quota::Key::Session(sid),
            _ => quota::Key::Client(&client.id),
        };
        self.quota.take(key, &client.id, client.revocation_quota, self.clock.unix()).map_err(|retry_after| {
            tracing::warn!(client = %client.id, quota = client.revocation_quota, "revocation quota used up");
            Refusal::RateLimited {
                message: format!(
                    "client {:?} has used its revocation quota ({} per minute); retry in {retry_after} s",
                    client.id, client.revocation_quota
                ),
                retry_after,
            }
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Refuse to decide on a revocation list that may be missing entries
    /// (a shared store that has not been heard from): fail closed.
    pub fn require_fresh_revocations(&self) -> Result<(), Refusal> {
        if self.revocations.is_fresh(self.clock.now().timestamp_millis(), self.max_staleness) {
            Ok(())
        } else {
            Err(Refusal::StoreUnavailable)
        }
    }

    /// Record revocations durably, then in the in-memory list; only then may
    /// the caller say they happened.
    pub async fn record(&self, revocations: Vec<Revocation>) -> Result<(), Refusal> {
        if revocations.is_empty() {
            return Ok(());
        }
        // Detached: if the request is dropped (client gone, timeout) after the
        // store committed, the entry still reaches the in-memory list. A
        // store that answers at once (memory) is finished here, with nothing
        // left to drop; only one that must wait runs on as its own task.
        let (store, list) = (self.store.clone(), self.revocations.clone());
        let mut recorded = Box::pin(async move {
            let entries = store.revoke(revocations).await?;
            list.apply(&entries);
            Ok::<_, crate::store::StoreError>(entries)
        });
        let done = match std::future::poll_fn(|cx| std::task::Poll::Ready(recorded.as_mut().poll(cx))).await {
            std::task::Poll::Ready(done) => done,
            std::task::Poll::Pending => tokio::spawn(recorded).await.map_err(|_| Refusal::StoreUnavailable)?,
        };
        let entries = done.map_err(|error| {
            tracing::error!(%error, "revocation not recorded");
            Refusal::StoreUnavailable
        })?;
        for entry in &entries {
            let kind = match entry.covers {
                Covers::Token { .. } => RevocationKind::Token,
                Covers::Session { .. } => RevocationKind::Session,
                Covers::Subject { .. } => RevocationKind::Subject,
                Covers::Key { .. } => RevocationKind::Key,
                // The global not-before is a store event, logged as one.
                Covers::Before { .. } => continue,
            };
            self.metrics.revoked(kind, 1);
        }
        Ok(())
    }

    /// Whether signing key `kid` has been announced as withdrawn.
    pub fn key_revoked(&self, kid: &str) -> bool {
        self.revocations.key_revoked(kid)
    }

    /// Delete expired entries from the list and the store — only those
    /// that expired a safety margin ago ([`crate::store::purge_cutoff`]), so
    /// a clock step forward and back revives nothing; first pick up any
    /// entry the list missed, so purging never hides one.
    pub async fn purge_expired(&self) -> Result<usize, Refusal> {
        let cutoff = crate::store::purge_cutoff(self.clock.unix(), self.policy.leeway);
        self.revocations.purge(cutoff);
        let missed = self.store.revocations_since(self.revocations.watermark()).await.map_err(|_| Refusal::StoreUnavailable)?;
        self.revocations.apply(&missed);
        self.store.purge_expired(cutoff).await.map_err(|_| Refusal::StoreUnavailable)
    }

    /// The feed: at most `limit` live entries after `cursor`, up to the
    /// list's watermark, and where to resume.
    pub fn revocations_page(&self, cursor: u64, limit: usize) -> Page {
        self.revocations.page(cursor, limit)
    }

    /// The feed, live: entries as they pass the watermark.
    pub fn subscribe_revocations(&self) -> tokio::sync::broadcast::Receiver<crate::revocations::RevocationEntry> {
        self.revocations.subscribe()
    }

    /// A page of the feed as a signed document, signed once per change of
    /// the list.
    pub async fn signed_revocations_page(&self, after: u64, limit: usize) -> Result<Arc<SignedPage>, Refusal> {
        self.feed_pages
            .get(&self.revocations, &self.keyring.view(), &self.issuer, after, limit, self.clock.now())
            .await
            .ok_or(Refusal::KeysUnavailable)
    }

    /// Whether an active signing key and an active refresh MAC key exist.
    pub fn keys_present(&self) -> (bool, bool) {
        self.keyring.key_uses_present()
    }

    /// Whether the store answers (for `/readyz`), within `timeout`.
    pub async fn store_answers(&self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.store.ping()).await.is_ok_and(|r| r.is_ok())
    }

    /// Why the store cannot take writes now, if it cannot (for `/readyz`).
    pub fn store_trouble(&self) -> Option<String> {
        self.store.health().err()
    }

    /// The start-up banner's store line: kind, location, revocations loaded.
    pub fn describe_store(&self) -> String {
        format!("{} ({} revocations loaded)", self.store.describe(), self.revocations.len())
    }

    /// One answered HTTP request, for the per-route metrics.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, took: std::time::Duration) {
        self.metrics.http_request(method, route, status, took);
    }

    /// Prometheus text exposition of this service's metrics, with the size
    /// of the revocation list.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render();
        let (entries, bytes) = self.revocations.footprint();
        text.push_str(&format!(
            "# HELP tessera_revocation_list_entries Live entries in the in-memory revocation list.\n# TYPE tessera_revocation_list_entries gauge\ntessera_revocation_list_entries {entries}\n\
             # HELP tessera_revocation_list_bytes Approximate memory the in-memory revocation list holds.\n# TYPE tessera_revocation_list_bytes gauge\ntessera_revocation_list_bytes {bytes}\n"
        ));
        text
    }
}

/// A whole service for the tests of the rules: issuer `https://issuer.test`,
/// keys under `dir`, the given store.
#[cfg(test)]
pub(crate) async fn test_app(dir: &std::path::Path, store: crate::config::StoreConfig) -> crate::app::App {
    let mut config = crate::config::Config::defaults();
    config.issuer = Some("https://issuer.test".into());
    config.keys_dir = dir.join("keys");
    config.store = store;
    crate::app::App::build(config, crate::app::Options::default()).await.unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy(refresh_idle: u64, longest_access: u64, leeway: u64) -> TokenPolicy {
        let mut policy = crate::config::Config::defaults().tokens;
        policy.refresh_idle_ttl = Duration::from_secs(refresh_idle);
        policy.longest_access_ttl = Duration::from_secs(longest_access);
        policy.leeway = Duration::from_secs(leeway);
        policy
    }

    #[test]
    fn an_entry_lives_as_long_as_the_tokens_it_can_still_stop() {
        // Refresh idle 14 d dominates a 10 min access token.
        let p = policy(14 * 86_400, 600, 30);
        assert_eq!(entry_until(&p, 1_000, None), 1_000 + 14 * 86_400 + 30);
        // A session ending sooner ends its entry sooner.
        assert_eq!(entry_until(&p, 1_000, Some(5_000)), 5_030);
        // A session ending later (90 d) does not keep the entry past the cap.
        assert_eq!(entry_until(&p, 1_000, Some(1_000 + 90 * 86_400)), 1_000 + 14 * 86_400 + 30);
        // A long-lived access token dominates a short idle lifetime.
        assert_eq!(entry_until(&policy(60, 3_600, 0), 0, None), 3_600);
    }

    #[tokio::test]
    async fn a_revocation_whose_caller_gives_up_while_the_store_writes_still_reaches_the_list() {
        use crate::revocations::TokenFacts;
        use std::task::Poll;
        let dir = tempfile::tempdir().unwrap();
        let app = test_app(dir.path(), crate::config::StoreConfig::Embedded { path: dir.path().join("data/tessera.redb") }).await;
        let authority = app.state().authority.clone();
        let mut recording = Box::pin(authority.record(vec![Revocation::new(Covers::Token { jti: "given-up".into() }, i64::MAX / 4)]));
        let first = std::future::poll_fn(|cx| Poll::Ready(recording.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "the embedded store answers once its writer has committed");
        drop(recording);
        let facts = TokenFacts { jti: Some("given-up"), sid: None, sub: "someone", iat: 0, kid: None };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while authority.revocations.check(facts).is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(authority.revocations.check(facts).is_some(), "the entry the store committed reaches the list");
    }
}
