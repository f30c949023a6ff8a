//! The one place access-token claims are assembled and tokens are signed
//! and sealed, for every grant: a session's first pair, a rotated pair, a
//! service token. What a token carries is decided here once, so a new claim
//! (DPoP's `cnf`, token exchange's `act`) lands in one function — and so
//! does the `token_type` the answer names: `DPoP` for a token bound to a
//! key (RFC 9449 §5), `Bearer` otherwise.

use super::access::{self, AccessClaims, Audience, Confirmation};
use super::refresh::{self, RefreshClaims};
use crate::clock::SharedClock;
use crate::keys::Keyring;
use serde::Serialize;
use std::sync::Arc;

/// No signing or MAC key is active: nothing can be minted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no signing key is active; check the key directory")]
pub struct NoActiveKey;

/// A session's tokens, as the token endpoint and `POST /v1/sessions` answer.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct IssuedAccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// What an access token is about, beyond what the minter adds itself
/// (`iss`, `iat`, `exp`).
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub sub: String,
    pub client_id: String,
    pub aud: Audience,
    pub scope: Option<String>,
    pub jti: String,
    /// The session the token belongs to (none for a service token).
    pub sid: Option<String>,
    pub auth_time: Option<i64>,
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub iat: i64,
    pub lifetime: std::time::Duration,
    /// The token never outlives this instant (the session's absolute end).
    pub not_after: Option<i64>,
    /// The DPoP key (RFC 7638 thumbprint) the token is bound to: `cnf.jkt`.
    pub jkt: Option<String>,
}

/// RFC 9449 §5: the `token_type` of an access token with these claims.
pub fn token_type(claims: &AccessClaims) -> &'static str {
    if claims.cnf.is_some() { "DPoP" } else { "Bearer" }
}

/// Signs access tokens and seals refresh tokens with the keyring's active keys.
#[derive(Clone)]
pub struct Minter {
    issuer: Arc<str>,
    keyring: Arc<Keyring>,
    clock: SharedClock,
}

impl Minter {
    pub fn new(issuer: &str, keyring: Arc<Keyring>, clock: SharedClock) -> Self {
        Self { issuer: issuer.into(), keyring, clock }
    }

    /// The claims of an access token: the only place they are built.
    pub fn access_claims(&self, grant: AccessGrant) -> AccessClaims {
        let exp = grant.iat.saturating_add(grant.lifetime.as_secs() as i64);
        AccessClaims {
            iss: self.issuer.to_string(),
            sub: grant.sub,
            aud: grant.aud,
            exp: grant.not_after.map_or(exp, |end| exp.min(end)),
            nbf: None,
            iat: grant.iat,
            jti: grant.jti,
            client_id: grant.client_id,
            scope: grant.scope,
            sid: grant.sid,
            auth_time: grant.auth_time,
            cnf: grant.jkt.map(|jkt| Confirmation { jkt }),
            custom: grant.custom,
        }
    }

    /// A service token (no refresh token, no session).
    pub fn access_token(&self, grant: AccessGrant) -> Result<IssuedAccessToken, NoActiveKey> {
        let now = self.clock.now();
        let view = self.keyring.view();
        let signer = view.active_signer(now).ok_or(NoActiveKey)?;
        let claims = self.access_claims(grant);
        Ok(IssuedAccessToken {
            expires_in: (claims.exp - now.timestamp()).max(0) as u64,
            scope: claims.scope.clone(),
            access_token: access::mint(signer, &claims),
            token_type: token_type(&claims),
        })
    }

    /// An access token for `refresh`'s session (with `access_jti`, and
    /// `access_scope` and `access_aud`, which a request may have narrowed,
    /// bound to `access_jkt` when the request carried a DPoP proof) and
    /// `refresh` sealed.
    pub fn session_pair(
        &self,
        refresh: &RefreshClaims,
        access_jti: String,
        access_scope: Option<String>,
        access_aud: Option<Audience>,
        access_jkt: Option<String>,
        access_lifetime: std::time::Duration,
    ) -> Result<IssuedSession, NoActiveKey> {
        let now = self.clock.now();
        let view = self.keyring.view();
        let signer = view.active_signer(now).ok_or(NoActiveKey)?;
        let mac = view.active_mac(now).ok_or(NoActiveKey)?;
        let claims = self.access_claims(AccessGrant {
            sub: refresh.sub.clone(),
            client_id: refresh.client_id.clone(),
            aud: access_aud.unwrap_or_else(|| refresh.aud.clone()),
            scope: access_scope,
            jti: access_jti,
            sid: Some(refresh.sid.clone()),
            auth_time: refresh.auth_time,
            custom: refresh.custom.clone(),
            iat: refresh.iat,
            lifetime: access_lifetime,
            not_after: Some(refresh.session_exp),
            jkt: access_jkt,
        });
        let now = now.timestamp();
        Ok(IssuedSession {
            access_token: access::mint(signer, &claims),
            token_type: token_type(&claims),
            expires_in: (claims.exp - now).max(0) as u64,
            refresh_token: Some(refresh::seal(mac, refresh)),
            refresh_expires_in: (refresh.exp - now).max(0) as u64,
            session_id: refresh.sid.clone(),
            scope: claims.scope,
        })
    }

    /// The longest any refresh token of `first`'s session can be: `first`
    /// sealed with the largest generation number and bound to a DPoP key (a
    /// later refresh may bind it; rotation changes nothing else that has a
    /// length) under the active MAC key.
    pub fn largest_refresh_token(&self, first: &RefreshClaims) -> Result<usize, NoActiveKey> {
        let view = self.keyring.view();
        let mac = view.active_mac(self.clock.now()).ok_or(NoActiveKey)?;
        let bound = Some("j".repeat(43));
        let largest = RefreshClaims { generation: u32::MAX, jkt: bound, ..first.clone() };
        Ok(refresh::seal(mac, &largest).len())
    }

    /// Whether a token could be minted now (checked before promising one).
    pub fn can_mint(&self) -> Result<(), NoActiveKey> {
        let now = self.clock.now();
        let view = self.keyring.view();
        view.active_signer(now).and(view.active_mac(now)).map(|_| ()).ok_or(NoActiveKey)
    }
}
