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
//! Two duties are the authority's own: recording revocations durably
//! before anyone is told they happened ([`Authority::record`]), and refusing
//! to decide on a revocation list that may be missing entries
//! ([`Authority::require_fresh_revocations`]).

pub mod introspect;
pub mod revoke;

use crate::clock::SharedClock;
use crate::config::TokenPolicy;
use crate::keys::Keyring;
use crate::metrics::{Metrics, RevocationKind};
use crate::revocations::{Covers, Revocation, RevocationList};
use crate::store::Store;
use crate::tokens::issue::Minter;
use std::sync::Arc;

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
}

impl Authority {
    pub fn new(
        issuer: &str,
        policy: TokenPolicy,
        keyring: Arc<Keyring>,
        store: Arc<dyn Store>,
        revocations: Arc<RevocationList>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let clock = keyring.clock().clone();
        let max_staleness = store.max_staleness().unwrap_or(std::time::Duration::from_secs(5));
        let minter = Minter::new(issuer, keyring.clone(), clock.clone());
        Self { issuer: issuer.into(), policy, keyring, clock, store, revocations, metrics, minter, max_staleness }
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
        // store committed, the entry still reaches the in-memory list.
        let (store, list) = (self.store.clone(), self.revocations.clone());
        let recorded = tokio::spawn(async move {
            let entries = store.revoke(revocations).await?;
            list.apply(&entries);
            Ok::<_, crate::store::StoreError>(entries)
        });
        let entries = recorded.await.map_err(|_| Refusal::StoreUnavailable)?.map_err(|error| {
            tracing::error!(%error, "revocation not recorded");
            Refusal::StoreUnavailable
        })?;
        for entry in &entries {
            let kind = match entry.covers {
                Covers::Token { .. } => RevocationKind::Token,
                Covers::Session { .. } => RevocationKind::Session,
                Covers::Subject { .. } => RevocationKind::Subject,
                Covers::Key { .. } => RevocationKind::Key,
            };
            self.metrics.revoked(kind, 1);
        }
        Ok(())
    }

    /// Whether signing key `kid` has been announced as withdrawn.
    pub fn key_revoked(&self, kid: &str) -> bool {
        self.revocations.key_revoked(kid)
    }

    /// Delete expired entries from the list and the store; first pick up
    /// any entry the list missed, so purging never hides one.
    pub async fn purge_expired(&self) -> Result<usize, Refusal> {
        let now = self.clock.unix();
        self.revocations.purge(now);
        let missed = self.store.revocations_since(self.revocations.watermark()).await.map_err(|_| Refusal::StoreUnavailable)?;
        self.revocations.apply(&missed);
        self.store.purge_expired(now).await.map_err(|_| Refusal::StoreUnavailable)
    }

    /// The feed: live entries after `cursor` up to the list's watermark, and
    /// the watermark (the cursor to resume from).
    pub fn revocations_since(&self, cursor: u64) -> (Vec<crate::revocations::RevocationEntry>, u64) {
        self.revocations.since(cursor)
    }

    /// The feed, live: entries as they pass the watermark.
    pub fn subscribe_revocations(&self) -> tokio::sync::broadcast::Receiver<crate::revocations::RevocationEntry> {
        self.revocations.subscribe()
    }

    /// The feed as a signed document; `None` when no signing key is active.
    pub fn sign_revocations(&self, after: u64, cursor: u64, entries: Vec<crate::revocations::RevocationEntry>) -> Option<String> {
        crate::revocations::feed::sign(&self.keyring.view(), &self.issuer, after, cursor, entries, self.clock.now())
    }

    /// Whether an active signing key and an active refresh MAC key exist.
    pub fn keys_present(&self) -> (bool, bool) {
        self.keyring.key_uses_present()
    }

    /// Whether the store answers (for `/readyz`), within `timeout`.
    pub async fn store_answers(&self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.store.ping()).await.is_ok_and(|r| r.is_ok())
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
