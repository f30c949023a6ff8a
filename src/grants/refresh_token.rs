//! Refresh-token rotation with reuse detection.
//!
//! | presented token | outcome |
//! |---|---|
//! | bad MAC, other issuer, other client, expired (idle or absolute), revoked | `invalid_grant` |
//! | first use | rotate: child pair (same `sid`, generation + 1); consumption recorded atomically |
//! | used before, inside the grace window, same client | the *same* child again (same `jti`s and claims) |
//! | used before, after the grace window | reuse: the whole session is revoked, `invalid_grant`, security event |
//!
//! The consumption is the store's atomic "insert unless present", so any
//! number of concurrent refreshes of one token produce one child: the first
//! records it, every other call reads it back (and, inside the grace window,
//! answers with it).
//!
//! The child carries what of the session the client still has
//! ([`super::narrowing`]); the new access token may be narrowed further by
//! `scope` and `resource`, which the consumption record keeps so a retry
//! gets the very same token.
//!
//! DPoP (RFC 9449 §5): a refresh token bound to a key is honoured only with
//! a proof by that key, checked before the token is consumed, so a stolen
//! token presented without the key changes nothing. A public client's child
//! refresh token is bound to the proof's key (so binding survives rotation,
//! and an unbound session becomes bound at its first DPoP refresh); a
//! confidential client's is not, its authentication binds it already. The
//! key is in the consumption record: a retry inside the grace window gets
//! the same child only with a proof by the same key.

use super::narrowing::{narrow_audience, narrow_scope, still_allowed};
use crate::authority::{Authority, Refusal};
use crate::clients::Client;
use crate::dpop::{self, VerifiedProof};
use crate::metrics::{Grant, RefreshOutcome};
use crate::revocations::{Covers, Revocation, TokenFacts};
use crate::store::{ConsumedRefresh, Consumption};
use crate::tokens::access::Audience;
use crate::tokens::issue::IssuedSession;
use crate::tokens::refresh::{self, RefreshClaims};
use crate::tokens::{random_id, time_ordered_id};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What to do with a presented refresh token, given the consumption attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// First use: mint the child just recorded.
    Rotate,
    /// A retry inside the grace window: answer with the recorded child.
    Replay(ConsumedRefresh),
    /// Theft or a very late replay: end the session.
    Reuse,
}

/// The pure rule. `consumed_at_ms` is in the record; the grace window is
/// measured from it in milliseconds, so a retry a moment after a second
/// boundary is still a retry.
pub fn decide(consumption: Consumption, client_id: &str, now: DateTime<Utc>, grace: Duration) -> Decision {
    match consumption {
        Consumption::First => Decision::Rotate,
        Consumption::Already(record) => {
            // Negative when a concurrent request consumed the token after this
            // one read the clock: that is a concurrent retry, well inside the window.
            let since = now.timestamp_millis().saturating_sub(record.consumed_at_ms);
            if !grace.is_zero() && i128::from(since) < grace.as_millis() as i128 && record.client_id == client_id {
                Decision::Replay(record)
            } else {
                Decision::Reuse
            }
        }
    }
}

/// `grant_type=refresh_token` for an authenticated `client`; `scope` and
/// `resource` narrow the new access token.
pub async fn grant(
    authority: &Authority,
    client: &Client,
    token: &str,
    scope: Option<&str>,
    resource: &[&str],
    proof: Option<&VerifiedProof>,
) -> Result<IssuedSession, Refusal> {
    authority.require_fresh_revocations()?;
    let now = authority.clock.now();
    let view = authority.keyring.view();
    let rejected = |message: &str| {
        authority.metrics.refresh(RefreshOutcome::Rejected);
        Refusal::InvalidGrant(message.to_string())
    };
    let parent = refresh::open(token, &view, now).map_err(|e| rejected(&e.to_string()))?;
    if parent.iss != *authority.issuer {
        return Err(rejected("the refresh token was issued by another issuer"));
    }
    if parent.client_id != client.id {
        return Err(rejected("the refresh token was issued to another client"));
    }
    let now_s = now.timestamp();
    if now_s >= parent.session_exp {
        return Err(rejected("the session has reached its maximum age"));
    }
    if now_s >= parent.exp {
        return Err(rejected("the refresh token has expired"));
    }
    let facts = TokenFacts { jti: Some(&parent.jti), sid: Some(&parent.sid), sub: &parent.sub, iat: parent.iat, kid: None };
    if let Some(revoked) = authority.revocations.check(facts) {
        return Err(rejected(revoked.describe()));
    }
    let (granted_scope, granted_aud) = still_allowed(parent.scope.as_deref(), &parent.aud, client, &authority.issuer)?;
    let access_scope = narrow_scope(scope, granted_scope.as_deref())?;
    let access_aud = narrow_audience(resource, &granted_aud)?.map(Vec::from);
    let jkt = dpop::binding("refresh token", parent.jkt.as_deref(), proof, client.require_dpop)?;
    if let Some(proof) = proof {
        dpop::remember(authority.store.as_ref(), proof).await?;
    }

    let record = ConsumedRefresh {
        child_jti: time_ordered_id(now.timestamp_millis()),
        access_jti: random_id(),
        issued_at: now_s,
        consumed_at_ms: now.timestamp_millis(),
        client_id: client.id.clone(),
        access_scope,
        access_aud,
        expires_at: parent.exp,
        jkt,
    };
    let consumption = authority.store.consume_refresh(&parent.sid, &parent.jti, record.clone()).await.map_err(|error| {
        tracing::error!(%error, "refresh not served: the store could not record the consumption");
        Refusal::StoreUnavailable
    })?;
    match decide(consumption, &client.id, now, authority.policy.reuse_grace) {
        Decision::Rotate => {
            authority.metrics.refresh(RefreshOutcome::Rotated);
            let issued = mint_child(authority, client, parent, (granted_scope, granted_aud), record)?;
            authority.metrics.issued(Grant::RefreshToken);
            Ok(issued)
        }
        Decision::Replay(earlier) => {
            if earlier.jkt != record.jkt {
                return Err(Refusal::InvalidDpopProof(
                    "this refresh token was just used with another DPoP key (or without one); a retry must prove the same key".into(),
                ));
            }
            authority.metrics.refresh(RefreshOutcome::GraceReplay);
            tracing::info!(sid = %parent.sid, client = %client.id, "refresh retried inside the grace window; same child returned");
            mint_child(authority, client, parent, (granted_scope, granted_aud), earlier)
        }
        Decision::Reuse => {
            authority.metrics.refresh(RefreshOutcome::ReuseDetected);
            tracing::warn!(
                security_event = "refresh_token_reuse",
                sid = %parent.sid,
                sub = ?parent.sub,
                client = %client.id,
                generation = parent.generation,
                "a consumed refresh token was presented again after the grace window; the session is revoked"
            );
            let until = authority.entry_until(Some(parent.session_exp));
            authority.record(vec![Revocation::new(Covers::Session { sid: parent.sid.clone() }, until)]).await?;
            Err(Refusal::InvalidGrant("the refresh token was already used; the session has been ended".into()))
        }
    }
}

/// The child pair described by a consumption record: deterministic in
/// its claims, so a replay gets the same `jti`s, times, scope and audience.
/// `granted` is what of the session the client still has
/// ([`still_allowed`], computed once by the caller). Takes the parent and
/// the record whole: the child is made of them, not of copies.
fn mint_child(
    authority: &Authority,
    client: &Client,
    parent: RefreshClaims,
    granted: (Option<String>, Audience),
    record: ConsumedRefresh,
) -> Result<IssuedSession, Refusal> {
    let iat = record.issued_at;
    let (scope, aud) = granted;
    let child = RefreshClaims {
        jti: record.child_jti,
        generation: parent.generation.saturating_add(1),
        iat,
        exp: (iat + authority.policy.refresh_idle_ttl.as_secs() as i64).min(parent.session_exp),
        scope,
        aud,
        jkt: record.jkt.clone().filter(|_| client.is_public()),
        ..parent
    };
    let access_aud = record.access_aud.map(Audience::from_list);
    authority
        .minter
        .session_pair(&child, record.access_jti, record.access_scope, access_aud, record.jkt, client.access_ttl)
        .map_err(|_| Refusal::KeysUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(consumed_at_ms: i64, client: &str) -> ConsumedRefresh {
        ConsumedRefresh {
            child_jti: "child".into(),
            access_jti: "at".into(),
            issued_at: consumed_at_ms / 1000,
            consumed_at_ms,
            client_id: client.into(),
            access_scope: None,
            access_aud: None,
            expires_at: i64::MAX,
            jkt: None,
        }
    }

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn first_use_rotates() {
        assert_eq!(decide(Consumption::First, "web", at_ms(0), GRACE), Decision::Rotate);
    }

    #[test]
    fn replay_inside_grace_by_the_same_client_gets_the_same_child() {
        let earlier = record(1_000_000, "web");
        assert_eq!(decide(Consumption::Already(earlier.clone()), "web", at_ms(1_009_999), GRACE), Decision::Replay(earlier));
    }

    #[test]
    fn a_concurrent_request_that_read_the_clock_before_the_consumption_is_a_retry() {
        let earlier = record(1_000_500, "web");
        assert_eq!(decide(Consumption::Already(earlier.clone()), "web", at_ms(1_000_000), GRACE), Decision::Replay(earlier));
    }

    #[test]
    fn replay_after_grace_is_reuse() {
        assert_eq!(decide(Consumption::Already(record(1_000_000, "web")), "web", at_ms(1_010_000), GRACE), Decision::Reuse);
    }

    #[test]
    fn replay_by_another_client_is_reuse_even_inside_grace() {
        assert_eq!(decide(Consumption::Already(record(1_000_000, "web")), "mobile", at_ms(1_000_001), GRACE), Decision::Reuse);
    }

    #[test]
    fn zero_grace_turns_retries_off() {
        assert_eq!(decide(Consumption::Already(record(1_000_000, "web")), "web", at_ms(1_000_000), Duration::ZERO), Decision::Reuse);
    }
}
