//! Sessions: who may create one for whom, with which audience and scope;
//! the first pair of tokens (or a one-time code for a browser); logout; the
//! per-subject session index. The HTTP layer authenticates the caller and
//! parses the body; these functions decide, record and mint over an
//! [`Authority`], and never touch HTTP.

pub mod handoff;
pub mod logout;
pub mod request;
#[cfg(test)]
mod tests;

pub use logout::{end_session, end_subject, sessions_of};

use crate::authority::{Authority, Refusal};
use crate::clients::{Client, ClientRegistry, Permission};
use crate::metrics::Grant;
use crate::revocations::{Covers, Revocation};
use crate::store::SessionRecord;
use crate::tokens::access::Audience;
use crate::tokens::issue::IssuedSession;
use crate::tokens::random_id;
use crate::tokens::refresh::RefreshClaims;
use request::RequestedAudience;
use serde::Deserialize;

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

/// Create a session for `request.sub` on behalf of `caller`, a
/// confidential client holding the `sessions` permission.
pub async fn create(
    authority: &Authority,
    caller: &Client,
    clients: &ClientRegistry,
    request: SessionRequest,
) -> Result<SessionStarted, Refusal> {
    if !caller.may(Permission::Sessions) {
        return Err(Refusal::Forbidden(format!("client {:?} lacks the \"sessions\" permission", caller.id)));
    }
    let target = match request.client_id.as_deref() {
        None => caller,
        Some(id) => clients.get(id).ok_or_else(|| {
            Refusal::field("client_id", format!("names no configured client: {:?}", id.chars().take(64).collect::<String>()))
        })?,
    };
    start_for(authority, target, request).await
}

/// Start a session for `target` (the caller's permission already checked).
pub async fn start_for(authority: &Authority, target: &Client, request: SessionRequest) -> Result<SessionStarted, Refusal> {
    authority.require_fresh_revocations()?;
    let challenge = handoff::challenge(request.code_challenge.as_deref(), request.code_challenge_method.as_deref())?;
    let now = authority.clock.now().timestamp();
    let session = NewSession {
        sid: random_id(),
        sub: request::subject(&request.sub)?,
        client_id: target.id.clone(),
        aud: request::audience(request.aud, target, &authority.issuer)?,
        scope: request::scope(request.scope.as_deref(), target)?,
        custom: request::custom_claims(request.claims)?,
        auth_time: now,
        session_exp: now + authority.policy.session_max_age.as_secs() as i64,
    };
    // Make sure tokens can be minted before promising any.
    authority.minter.can_mint().map_err(|_| Refusal::KeysUnavailable)?;
    if let Some(limit) = target.max_sessions_per_subject {
        let record = SessionRecord {
            sid: session.sid.clone(),
            sub: session.sub.clone(),
            client_id: target.id.clone(),
            created_at: now,
            expires_at: session.session_exp,
        };
        let evicted = authority.store.track_session(record, limit).await.map_err(|_| Refusal::StoreUnavailable)?;
        let ended: Vec<_> = evicted.into_iter().map(|s| Revocation::new(Covers::Session { sid: s.sid }, s.expires_at)).collect();
        if !ended.is_empty() {
            tracing::info!(client = %target.id, count = ended.len(), "oldest sessions ended by the session limit");
        }
        authority.record(ended).await?;
    }
    match challenge {
        Some(challenge) => Ok(SessionStarted::Code(handoff::issue_code(authority, session, challenge).await?)),
        None => {
            authority.metrics.issued(Grant::Session);
            Ok(SessionStarted::Tokens(first_pair(authority, &session, target)?))
        }
    }
}

/// The first pair of a session (refresh generation 0).
pub(crate) fn first_pair(authority: &Authority, session: &NewSession, client: &Client) -> Result<IssuedSession, Refusal> {
    let iat = authority.clock.now().timestamp();
    let refresh = RefreshClaims {
        iss: authority.issuer.to_string(),
        jti: random_id(),
        sid: session.sid.clone(),
        sub: session.sub.clone(),
        client_id: client.id.clone(),
        generation: 0,
        scope: session.scope.clone(),
        aud: Audience::from_list(session.aud.clone()),
        custom: session.custom.clone(),
        iat,
        exp: (iat + authority.policy.refresh_idle_ttl.as_secs() as i64).min(session.session_exp),
        session_exp: session.session_exp,
        auth_time: Some(session.auth_time),
    };
    authority.minter.session_pair(&refresh, random_id(), session.scope.clone(), client.access_ttl).map_err(|_| Refusal::KeysUnavailable)
}
