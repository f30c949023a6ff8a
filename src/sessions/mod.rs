//! The rules: who may create a session for whom, with which audience and
//! scope; what a service token carries; how refresh tokens rotate; what a
//! revocation covers; what introspection says. The HTTP layer authenticates
//! the client and parses the body; this module decides, records and mints,
//! and never touches HTTP.

pub mod handoff;
pub mod introspect;
pub mod request;
pub mod revoke;
pub mod rotation;
#[cfg(test)]
mod tests;

use crate::clients::{Client, ClientRegistry, Permission};
use crate::clock::SharedClock;
use crate::config::TokenPolicy;
use crate::keys::Keyring;
use crate::metrics::{Grant, Metrics, RevocationKind};
use crate::revocation::RevocationList;
use crate::store::{Revocation, SessionRecord, Store};
use crate::tokens::access::{self, AccessClaims, Audience};
use crate::tokens::random_id;
use crate::tokens::refresh::{self, RefreshClaims};
use request::RequestedAudience;
use serde::Deserialize;
use std::sync::Arc;

/// Why a grant was refused. The HTTP layer maps each kind to RFC 6749 JSON
/// on OAuth endpoints and to problem+json elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
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
    #[error("no signing key is active; check the key directory")]
    KeysUnavailable,
    #[error("the revocation store is unavailable; try again shortly")]
    StoreUnavailable,
}

impl GrantError {
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        GrantError::InvalidField { field: field.into(), message: message.into() }
    }

    /// The request field the error is about, if any.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            GrantError::InvalidField { field, .. } => Some(field),
            GrantError::InvalidScope(_) => Some("scope"),
            GrantError::InvalidTarget(_) => Some("aud"),
            _ => None,
        }
    }
}

/// `POST /v1/sessions` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub sub: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub aud: Option<RequestedAudience>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
    /// RFC 7636: hand the session to a browser through a one-time code
    /// bound to this challenge instead of returning tokens.
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// Only `S256`.
    #[serde(default)]
    pub code_challenge_method: Option<String>,
}

/// A validated new session, before any token exists.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub sid: String,
    pub sub: String,
    pub client_id: String,
    pub aud: Vec<String>,
    pub scope: Option<String>,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub auth_time: i64,
    pub session_exp: i64,
}

/// What `POST /v1/sessions` produced.
#[derive(Debug, Clone)]
pub enum SessionStarted {
    Tokens(IssuedSession),
    Code(handoff::IssuedCode),
}

/// A new session's tokens.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedSession {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Moved into a cookie for clients with `refresh_cookie`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub refresh_expires_in: u64,
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// An access token alone (client credentials).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedAccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Mints tokens under the configured policy with the live keyring, and
/// keeps the revocation list.
#[derive(Clone)]
pub struct TokenService {
    issuer: Arc<str>,
    policy: TokenPolicy,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    store: Arc<dyn Store>,
    revocations: Arc<RevocationList>,
    metrics: Arc<Metrics>,
    /// How stale a followed revocation list may be before checks refuse.
    max_staleness: std::time::Duration,
}

impl TokenService {
    pub fn new(
        issuer: &str,
        policy: TokenPolicy,
        keyring: Arc<Keyring>,
        store: Arc<dyn Store>,
        revocations: Arc<RevocationList>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let clock = keyring.clock().clone();
        Self {
            issuer: issuer.into(),
            policy,
            keyring,
            clock,
            store,
            revocations,
            metrics,
            max_staleness: std::time::Duration::from_secs(5),
        }
    }

    /// Set how long a followed revocation list may go without news.
    pub fn with_max_staleness(mut self, bound: std::time::Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// Refuse to decide on a revocation list that may be missing entries
    /// (a shared store that has not been heard from): fail closed.
    pub(crate) fn require_fresh_revocations(&self) -> Result<(), GrantError> {
        if self.revocations.is_fresh(self.clock.now().timestamp_millis(), self.max_staleness) {
            Ok(())
        } else {
            Err(GrantError::StoreUnavailable)
        }
    }

    pub fn revocations(&self) -> &Arc<RevocationList> {
        &self.revocations
    }

    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Record revocations durably, then in the mirror; only then may the
    /// caller say they happened.
    pub async fn record(&self, items: Vec<(Revocation, i64)>) -> Result<(), GrantError> {
        if items.is_empty() {
            return Ok(());
        }
        // Detached: if the request is dropped (client gone, timeout) after the
        // store committed, the entry still reaches the in-memory list.
        let (store, revocations) = (self.store.clone(), self.revocations.clone());
        let recorded = tokio::spawn(async move {
            let entries = store.revoke(items).await?;
            revocations.apply(&entries);
            Ok::<_, crate::store::StoreError>(entries)
        });
        let entries = recorded.await.map_err(|_| GrantError::StoreUnavailable)?.map_err(|error| {
            tracing::error!(%error, "revocation not recorded");
            GrantError::StoreUnavailable
        })?;
        for entry in &entries {
            let kind = match entry.revocation {
                Revocation::Token { .. } => RevocationKind::Token,
                Revocation::Session { .. } => RevocationKind::Session,
                Revocation::Subject { .. } => RevocationKind::Subject,
                Revocation::Key { .. } => RevocationKind::Key,
            };
            self.metrics.revoked(kind, 1);
        }
        Ok(())
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Create a session for `request.sub` on behalf of `caller`, a
    /// confidential client holding the `sessions` permission.
    pub async fn create_session(
        &self,
        caller: &Client,
        clients: &ClientRegistry,
        request: SessionRequest,
    ) -> Result<SessionStarted, GrantError> {
        if !caller.may(Permission::Sessions) {
            return Err(GrantError::Forbidden(format!("client {:?} lacks the \"sessions\" permission", caller.id)));
        }
        let target = match request.client_id.as_deref() {
            None => caller,
            Some(id) => clients.get(id).ok_or_else(|| {
                GrantError::field("client_id", format!("names no configured client: {:?}", id.chars().take(64).collect::<String>()))
            })?,
        };
        self.start_session_for(target, request).await
    }

    /// Start a session for `target` (the caller's permission already checked).
    pub async fn start_session_for(&self, target: &Client, request: SessionRequest) -> Result<SessionStarted, GrantError> {
        self.require_fresh_revocations()?;
        let challenge = handoff::challenge(request.code_challenge.as_deref(), request.code_challenge_method.as_deref())?;
        let now = self.clock.now().timestamp();
        let session = NewSession {
            sid: random_id(),
            sub: request::subject(&request.sub)?,
            client_id: target.id.clone(),
            aud: request::audience(request.aud, target, &self.issuer)?,
            scope: request::scope(request.scope.as_deref(), target)?,
            custom: request::custom_claims(request.claims)?,
            auth_time: now,
            session_exp: now + self.policy.session_max_age.as_secs() as i64,
        };
        // Make sure tokens can be minted before promising any.
        self.keyring.view().active_signer(self.clock.now()).ok_or(GrantError::KeysUnavailable)?;
        if let Some(limit) = target.max_sessions_per_subject {
            let record = SessionRecord {
                sid: session.sid.clone(),
                sub: session.sub.clone(),
                client_id: target.id.clone(),
                created_at: now,
                expires_at: session.session_exp,
            };
            let evicted = self.store.track_session(record, limit).await.map_err(|_| GrantError::StoreUnavailable)?;
            let ended: Vec<_> = evicted.into_iter().map(|s| (Revocation::Session { sid: s.sid }, s.expires_at)).collect();
            if !ended.is_empty() {
                tracing::info!(client = %target.id, count = ended.len(), "oldest sessions ended by the session limit");
            }
            self.record(ended).await?;
        }
        match challenge {
            Some(challenge) => Ok(SessionStarted::Code(self.issue_code(session, challenge).await?)),
            None => {
                self.metrics.issued(Grant::Session);
                Ok(SessionStarted::Tokens(self.mint_first_pair(&session, target)?))
            }
        }
    }

    /// The first pair of a session (refresh generation 0).
    pub(crate) fn mint_first_pair(&self, session: &NewSession, client: &Client) -> Result<IssuedSession, GrantError> {
        let iat = self.clock.now().timestamp();
        let refresh = RefreshClaims {
            iss: self.issuer.to_string(),
            jti: random_id(),
            sid: session.sid.clone(),
            sub: session.sub.clone(),
            client_id: client.id.clone(),
            generation: 0,
            scope: session.scope.clone(),
            aud: Audience::from_list(session.aud.clone()),
            custom: session.custom.clone(),
            iat,
            exp: (iat + self.policy.refresh_idle_ttl.as_secs() as i64).min(session.session_exp),
            session_exp: session.session_exp,
            auth_time: Some(session.auth_time),
        };
        self.mint_pair(client, refresh, random_id(), session.scope.clone())
    }

    /// Mint an access token for `refresh`'s session and seal `refresh`.
    pub(crate) fn mint_pair(
        &self,
        client: &Client,
        refresh: RefreshClaims,
        access_jti: String,
        access_scope: Option<String>,
    ) -> Result<IssuedSession, GrantError> {
        let now = self.clock.now();
        let view = self.keyring.view();
        let signer = view.active_signer(now).ok_or(GrantError::KeysUnavailable)?;
        let mac = view.active_mac(now).ok_or(GrantError::KeysUnavailable)?;
        let access_exp = (refresh.iat + client.access_ttl.as_secs() as i64).min(refresh.session_exp);
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            sub: refresh.sub.clone(),
            aud: refresh.aud.clone(),
            exp: access_exp,
            nbf: None,
            iat: refresh.iat,
            jti: access_jti,
            client_id: client.id.clone(),
            scope: access_scope.clone(),
            sid: Some(refresh.sid.clone()),
            auth_time: refresh.auth_time,
            custom: refresh.custom.clone(),
        };
        let now_s = now.timestamp();
        Ok(IssuedSession {
            access_token: access::mint(signer, &claims),
            token_type: "Bearer",
            expires_in: (access_exp - now_s).max(0) as u64,
            refresh_token: Some(refresh::seal(mac, &refresh)),
            refresh_expires_in: (refresh.exp - now_s).max(0) as u64,
            session_id: refresh.sid.clone(),
            scope: access_scope,
        })
    }

    /// RFC 6749 §4.4: a service token for a confidential client, `sub` = its
    /// own id, within its audiences and scopes.
    pub fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        audience: Option<&str>,
    ) -> Result<IssuedAccessToken, GrantError> {
        if client.is_public() {
            return Err(GrantError::Forbidden("public clients cannot use client_credentials".into()));
        }
        let requested = audience.map(|a| RequestedAudience::Many(a.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()));
        let aud = request::audience(requested, client, &self.issuer)?;
        let scope = request::scope(scope, client)?;
        let now = self.clock.now();
        let view = self.keyring.view();
        let signer = view.active_signer(now).ok_or(GrantError::KeysUnavailable)?;
        let iat = now.timestamp();
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            sub: client.id.clone(),
            aud: Audience::from_list(aud),
            exp: iat + client.access_ttl.as_secs() as i64,
            nbf: None,
            iat,
            jti: random_id(),
            client_id: client.id.clone(),
            scope: scope.clone(),
            sid: None,
            auth_time: None,
            custom: Default::default(),
        };
        Ok(IssuedAccessToken {
            access_token: access::mint(signer, &claims),
            token_type: "Bearer",
            expires_in: client.access_ttl.as_secs(),
            scope,
        })
    }
}
