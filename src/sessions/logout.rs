//! Logout of one session, logout everywhere, and the subject's live
//! sessions. Every entry is written to the store before the answer says it
//! happened, and lives exactly as long as the tokens it covers.

use crate::authority::{Authority, Refusal};
use crate::revocations::{Covers, Revocation};
use crate::store::SessionRecord;

/// Logout: every token of session `sid` is dead.
pub async fn end_session(authority: &Authority, sid: &str) -> Result<(), Refusal> {
    if sid.is_empty() || sid.len() > 128 {
        return Err(Refusal::field("sid", "must be 1 to 128 characters"));
    }
    let until = authority.clock.unix() + authority.policy.session_max_age.as_secs() as i64;
    tracing::info!(sid = %sid, "session ended");
    authority.record(vec![Revocation::new(Covers::Session { sid: sid.to_string() }, until)]).await
}

/// Logout everywhere: every token of `sub` issued up to now is dead.
pub async fn end_subject(authority: &Authority, sub: &str) -> Result<i64, Refusal> {
    let sub = super::request::subject(sub)?;
    let now = authority.clock.unix();
    let until = now + authority.policy.session_max_age.as_secs() as i64;
    tracing::info!(sub = %sub, "every session of the subject ended");
    authority.record(vec![Revocation::new(Covers::Subject { sub, before: now }, until)]).await?;
    Ok(now)
}

/// The live sessions of `sub` in the session index (only clients with
/// `max_sessions_per_subject` are indexed).
pub async fn sessions_of(authority: &Authority, sub: &str) -> Result<Vec<SessionRecord>, Refusal> {
    let sub = super::request::subject(sub)?;
    let now = authority.clock.unix();
    let sessions = authority.store.sessions_of(&sub).await.map_err(|_| Refusal::StoreUnavailable)?;
    let mut live: Vec<SessionRecord> = sessions
        .into_iter()
        .filter(|s| s.expires_at > now)
        .filter(|s| {
            let facts = crate::revocations::TokenFacts { jti: None, sid: Some(&s.sid), sub: &s.sub, iat: s.created_at, kid: None };
            authority.revocations.check(facts).is_none()
        })
        .collect();
    live.sort_by_key(|s| s.created_at);
    Ok(live)
}
