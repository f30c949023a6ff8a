//! `grant_type=authorization_code`: a browser exchanges the one-time code
//! its login backend got for it ([`crate::sessions::handoff`]), with the
//! PKCE verifier only the page knows, for the session's first pair.
//!
//! The code works once: a second presentation fails and ends the session
//! the first one started, since someone else has seen the code. A code
//! bound to a DPoP key (`dpop_jkt`) is exchanged only with a proof by that
//! key; the pair is bound to the proof's key either way (RFC 9449 §10).
//! The proof is recorded as used before the code is redeemed, so a
//! replayed exchange is refused without burning the code.

use super::narrowing::{narrow_audience, still_allowed};
use crate::authority::{Authority, Refusal};
use crate::clients::{Client, constant_time_eq};
use crate::dpop::{self, VerifiedProof};
use crate::metrics::Grant;
use crate::revocations::{Covers, Revocation, TokenFacts};
use crate::sessions::NewSession;
use crate::sessions::handoff::{code_id, valid_pkce_value};
use crate::tokens::access::Audience;
use crate::tokens::issue::IssuedSession;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};

/// `grant_type=authorization_code`: exchange a code and its verifier for
/// the session's first pair; `resource` (RFC 8707) narrows the access
/// token's audience.
pub async fn grant(
    authority: &Authority,
    client: &Client,
    code: &str,
    verifier: Option<&str>,
    resource: &[&str],
    proof: Option<&VerifiedProof>,
) -> Result<IssuedSession, Refusal> {
    authority.require_fresh_revocations()?;
    let verifier = verifier.ok_or_else(|| Refusal::field("code_verifier", "is required (RFC 7636)"))?;
    if code.len() > 256 {
        return Err(Refusal::InvalidGrant("the code is not valid".into()));
    }
    if let Some(proof) = proof {
        dpop::remember(authority.store.as_ref(), proof).await?;
    }
    let record = authority.store.redeem_code(&code_id(code)).await.map_err(|_| Refusal::StoreUnavailable)?;
    let Some(record) = record else { return Err(Refusal::InvalidGrant("the code is not valid or has expired".into())) };
    if record.redeemed {
        tracing::warn!(security_event = "handoff_code_reuse", sid = %record.sid, client = %client.id, "a one-time code was presented twice; its session is ended");
        let until = authority.entry_until(Some(record.session_exp));
        authority.record(vec![Revocation::new(Covers::Session { sid: record.sid.clone() }, until)]).await?;
        return Err(Refusal::InvalidGrant("the code was already used; the session it started has been ended".into()));
    }
    if record.client_id != client.id {
        return Err(Refusal::InvalidGrant("the code was issued to another client".into()));
    }
    if authority.clock.unix() > record.use_by {
        return Err(Refusal::InvalidGrant("the code has expired".into()));
    }
    // Logout or logout-everywhere between the code and its exchange.
    let facts = TokenFacts { jti: None, sid: Some(&record.sid), sub: &record.sub, iat: record.auth_time, kid: None };
    if let Some(revoked) = authority.revocations.check(facts) {
        return Err(Refusal::InvalidGrant(revoked.describe().to_string()));
    }
    let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()).as_ref());
    if !valid_pkce_value(verifier) || !constant_time_eq(computed.as_bytes(), record.code_challenge.as_bytes()) {
        return Err(Refusal::InvalidGrant("the code_verifier does not match the code_challenge".into()));
    }
    let jkt = dpop::binding("code", record.dpop_jkt.as_deref(), proof, client.require_dpop)?;
    // The client's rights may have changed since the code was made.
    let (scope, aud) = still_allowed(record.scope.as_deref(), &Audience::from_list(record.aud), client, &authority.issuer)?;
    let access_aud = narrow_audience(resource, &aud)?.map(Vec::from);
    let session = NewSession {
        sid: record.sid,
        sub: record.sub,
        client_id: record.client_id,
        aud: Vec::from(aud),
        scope,
        custom: record.custom,
        auth_time: record.auth_time,
        session_exp: record.session_exp,
        jkt,
    };
    authority.metrics.issued(Grant::AuthorizationCode);
    crate::sessions::first_pair(authority, &session, client, access_aud)
}
