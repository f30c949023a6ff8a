//! Sessions: who may create one for whom, with which audience and scope;
//! the first pair of tokens (or a one-time code for a browser); logout; the
//! per-subject session index. The HTTP layer authenticates the caller and
//! parses the body; these functions decide, record and mint over an
//! [`Authority`], and never touch HTTP.
//!
//! Who may create a session for whom ([`create`]): a caller with the
//! `sessions` permission, for itself, for the clients its
//! `session_clients` lists, or — without that list — for public clients
//! only; never for a subject that is a configured client's id. So a
//! resource server tells the two kinds of token apart by their claims
//! alone: a service token (client credentials) has `sub == client_id` and
//! no `sid`; a user's token has a `sid` and a `sub` that is no client's id.

pub mod handoff;
pub mod logout;
pub mod request;
#[cfg(test)]
mod rules_tests;
pub mod sid;
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
    /// RFC 8707 resource indicators: audiences asked for, like `aud`.
    #[serde(default)]
    pub resource: Option<RequestedAudience>,
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
    /// RFC 9449 §10: the thumbprint of the client's DPoP key. The tokens
    /// returned are bound to it; a one-time code can be exchanged only
    /// with a proof by it.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
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
    /// The DPoP key the session's tokens are bound to.
    pub jkt: Option<String>,
}

/// What `POST /v1/sessions` produced.
#[derive(Debug, Clone)]
pub enum SessionStarted {
    Tokens(IssuedSession),
    Code(handoff::IssuedCode),
}

/// The most bytes a refresh token may have for `client` so that the
/// cookie carrying it fits a browser's 4 096-byte limit; `None` when the
/// client does not receive it in a cookie. The HTTP layer knows the cookie.
pub type CookieBudget<'a> = &'a (dyn Fn(&Client) -> Option<usize> + Send + Sync);

/// Create a session for `request.sub` on behalf of `caller`, a
/// confidential client holding the `sessions` permission, for the client
/// `request.client_id` names (the caller itself by default).
pub async fn create(
    authority: &Authority,
    caller: &Client,
    clients: &ClientRegistry,
    request: SessionRequest,
    cookie_budget: CookieBudget<'_>,
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
    if !caller.may_create_sessions_for(target) {
        let why = match &caller.session_clients {
            Some(listed) => format!("its session_clients are: {}", if listed.is_empty() { "none".into() } else { listed.join(", ") }),
            None => format!("{:?} is a confidential client and the caller has no session_clients naming it", target.id),
        };
        return Err(Refusal::Forbidden(format!("client {:?} may not create sessions for client {:?}: {why}", caller.id, target.id)));
    }
    start_for(authority, clients, target, request, cookie_budget).await
}

/// Start a session for `target` (the caller's right to do so already
/// checked).
pub async fn start_for(
    authority: &Authority,
    clients: &ClientRegistry,
    target: &Client,
    request: SessionRequest,
    cookie_budget: CookieBudget<'_>,
) -> Result<SessionStarted, Refusal> {
    authority.require_fresh_revocations()?;
    let challenge = handoff::challenge(request.code_challenge.as_deref(), request.code_challenge_method.as_deref())?;
    let jkt = dpop_jkt(request.dpop_jkt, target, challenge.is_some())?;
    let sub = request::subject(&request.sub)?;
    if clients.get(&sub).is_some() {
        return Err(Refusal::field(
            "sub",
            "is the id of a configured client; a session's subject must not look like a service identity (whose tokens have sub = client_id)",
        ));
    }
    let resource = request.resource.map(resources).unwrap_or_default();
    let requested = request::requested_audience(request.aud, &resource.iter().map(String::as_str).collect::<Vec<_>>());
    let aud = request::audience(requested, target, &authority.issuer)?;
    let scope = request::scope(request.scope.as_deref(), target)?;
    let custom = request::custom_claims(request.claims)?;
    logout::wait_out_subject_logout(authority, &sub).await?;
    let now = authority.clock.now().timestamp();
    let session_exp = now + authority.policy.session_max_age.as_secs() as i64;
    let session = NewSession {
        sid: authority.session_ids.mint(session_exp),
        sub,
        client_id: target.id.clone(),
        aud,
        scope,
        custom,
        auth_time: now,
        session_exp,
        jkt,
    };
    // Make sure tokens can be minted, and delivered, before promising any.
    authority.minter.can_mint().map_err(|_| Refusal::KeysUnavailable)?;
    if let Some(budget) = cookie_budget(target) {
        let size = authority
            .minter
            .largest_refresh_token(&first_refresh_claims(authority, &session, target))
            .map_err(|_| Refusal::KeysUnavailable)?;
        if size > budget {
            return Err(Refusal::field(
                "claims",
                format!(
                    "make the refresh token {size} bytes long, but client {:?} receives it in a cookie that must stay within 4096 bytes (at most {budget} for the token); send fewer or shorter custom claims",
                    target.id
                ),
            ));
        }
    }
    if let Some(limit) = target.max_sessions_per_subject {
        let record = SessionRecord {
            sid: session.sid.clone(),
            sub: session.sub.clone(),
            client_id: target.id.clone(),
            created_at: now,
            expires_at: session.session_exp,
            created_stamp: authority.creation_stamp(),
        };
        let evicted = authority.store.track_session(record, limit).await.map_err(|_| Refusal::StoreUnavailable)?;
        let ended: Vec<_> = evicted
            .into_iter()
            .map(|s| Revocation::new(Covers::Session { sid: s.sid }, authority.entry_until(Some(s.expires_at))))
            .collect();
        if !ended.is_empty() {
            tracing::info!(client = %target.id, count = ended.len(), "oldest sessions ended by the session limit");
        }
        authority.record(ended).await?;
    }
    match challenge {
        Some(challenge) => Ok(SessionStarted::Code(handoff::issue_code(authority, session, challenge).await?)),
        None => {
            authority.metrics.issued(Grant::Session);
            Ok(SessionStarted::Tokens(first_pair(authority, &session, target, None)?))
        }
    }
}

/// `dpop_jkt`, when given, must be a SHA-256 thumbprint. A client with
/// `require_dpop` gets tokens only bound to a key: directly, with
/// `dpop_jkt`; behind a code, the exchange itself must carry a proof.
fn dpop_jkt(jkt: Option<String>, target: &Client, behind_code: bool) -> Result<Option<String>, Refusal> {
    match jkt {
        Some(jkt) if !crate::dpop::is_thumbprint(&jkt) => {
            Err(Refusal::field("dpop_jkt", "must be the RFC 7638 SHA-256 thumbprint of a public key: 43 base64url characters"))
        }
        None if target.require_dpop && !behind_code => Err(Refusal::field(
            "dpop_jkt",
            format!("is required: client {:?} accepts DPoP-bound tokens only (require_dpop); send the thumbprint of its key", target.id),
        )),
        jkt => Ok(jkt),
    }
}

/// `resource` as a list.
fn resources(resource: RequestedAudience) -> Vec<String> {
    match resource {
        RequestedAudience::One(one) => vec![one],
        RequestedAudience::Many(many) => many,
    }
}

/// The first pair of a session (refresh generation 0); `access_aud`
/// narrows the access token's audience (RFC 8707 at the code exchange).
/// Both are bound to the session's DPoP key, the refresh token only for a
/// public client (RFC 9449 §5: a confidential client's is bound by its
/// authentication already).
pub(crate) fn first_pair(
    authority: &Authority,
    session: &NewSession,
    client: &Client,
    access_aud: Option<Vec<String>>,
) -> Result<IssuedSession, Refusal> {
    let refresh = first_refresh_claims(authority, session, client);
    let access_aud = access_aud.map(Audience::from_list);
    authority
        .minter
        .session_pair(&refresh, random_id(), session.scope.clone(), access_aud, session.jkt.clone(), client.access_ttl)
        .map_err(|_| Refusal::KeysUnavailable)
}

fn first_refresh_claims(authority: &Authority, session: &NewSession, client: &Client) -> RefreshClaims {
    let now = authority.clock.now();
    let iat = now.timestamp();
    RefreshClaims {
        iss: authority.issuer.to_string(),
        jti: crate::tokens::time_ordered_id(now.timestamp_millis()),
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
        jkt: session.jkt.clone().filter(|_| client.is_public()),
    }
}
