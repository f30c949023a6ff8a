//! Logout of one session, logout everywhere, and the subject's live
//! sessions. Every entry is written to the store before the answer says it
//! happened, and lives no longer than the tokens it can still stop
//! ([`Authority::entry_until`]): a session entry until the session's end
//! (which its sid carries) or until every token existing at the logout has
//! expired, whichever is first.
//!
//! A logout names a session by its id; an id tessera did not issue is
//! refused as unknown and nothing is stored, so the list cannot be grown
//! with made-up ids. Each logout counts against the caller's
//! `revocation_quota`.

use crate::authority::{Authority, Refusal};
use crate::clients::Client;
use crate::revocations::{Covers, Revocation, Revoked, TokenFacts};
use crate::store::SessionRecord;

/// Logout: every token of session `sid` is dead.
pub async fn end_session(authority: &Authority, caller: &Client, sid: &str) -> Result<(), Refusal> {
    let Some(session_end) = authority.session_ids.verify(sid) else {
        return Err(Refusal::NotFound(format!("no session {:?} was issued by this service", sid.chars().take(64).collect::<String>())));
    };
    let now = authority.clock.unix();
    if session_end <= now {
        // Every token of it has expired; nothing to stop.
        return Ok(());
    }
    authority.within_quota(caller, Some(sid))?;
    tracing::info!(sid = %sid, "session ended");
    authority.record(vec![Revocation::new(Covers::Session { sid: sid.to_string() }, authority.entry_until(Some(session_end)))]).await
}

/// Logout everywhere: every token of `sub` issued up to now is dead — and
/// up to `tokens.clock_skew` beyond now, so that a token another replica
/// minted just before the logout, by a clock running ahead of this one,
/// is covered too. Returns the instant the entry covers up to; the caller
/// answers only once the clock has passed it.
pub async fn end_subject(authority: &Authority, caller: &Client, sub: &str) -> Result<i64, Refusal> {
    let sub = super::request::subject(sub)?;
    authority.within_quota(caller, None)?;
    let before = authority.clock.unix() + authority.policy.clock_skew.as_secs() as i64;
    let until = authority.entry_until(None) + authority.policy.clock_skew.as_secs() as i64;
    tracing::info!(sub = ?sub, "every session of the subject ended");
    authority.record(vec![Revocation::new(Covers::Subject { sub, before }, until)]).await?;
    Ok(before)
}

/// A logout-everywhere covers tokens issued up to an instant that may lie
/// `clock_skew` ahead; a session created for that subject meanwhile would
/// be dead on arrival. Wait until the instant has passed (a few seconds at
/// most), or refuse with a time to retry if the clock does not move.
pub(crate) async fn wait_out_subject_logout(authority: &Authority, sub: &str) -> Result<(), Refusal> {
    let covered = |now: i64| {
        let facts = TokenFacts { jti: None, sid: None, sub, iat: now, kid: None };
        authority.revocations.check(facts) == Some(Revoked::Subject)
    };
    let most = authority.policy.clock_skew.as_secs() + 2;
    for _ in 0..most {
        let now = authority.clock.now();
        if !covered(now.timestamp()) {
            return Ok(());
        }
        let rest = 1_000 - u64::from(now.timestamp_subsec_millis()).min(999);
        tokio::time::sleep(std::time::Duration::from_millis(rest)).await;
    }
    if !covered(authority.clock.unix()) {
        return Ok(());
    }
    Err(Refusal::RateLimited {
        message: "every session of this subject was ended moments ago; a session created now would be ended too".into(),
        retry_after: 1,
    })
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
            let facts = TokenFacts { jti: None, sid: Some(&s.sid), sub: &s.sub, iat: s.created_at, kid: None };
            authority.revocations.check(facts).is_none()
        })
        .collect();
    live.sort_by_key(|s| (s.created_at, s.created_stamp));
    Ok(live)
}
