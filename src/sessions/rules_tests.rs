//! The session rules that keep sessions honest and the revocation list
//! small, over the same harness as [`super::tests`]: creation stamps and the
//! session limit, who may create sessions for whom, ids tessera can
//! recognise, how long a logout entry lives, the revocation quota, and
//! refresh re-checking the client's current rights.

use super::tests::{Harness, Pair, claims_of, harness, refresh_claims_of};
use super::*;
use std::time::Duration;

#[tokio::test]
async fn creation_stamps_increase_even_when_the_clock_stands_still() {
    let h = harness().await;
    let stamps: Vec<u64> = (0..1000).map(|_| h.tokens.creation_stamp()).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert!(stamps[0] >= 1_800_000_000_000 * 1000, "milliseconds × 1000: {}", stamps[0]);
}

#[tokio::test]
async fn the_session_limit_never_ends_the_session_being_created_within_one_instant() {
    let h = harness().await;
    for round in 0..30 {
        let sub = format!("dana-{round}");
        let sessions = [h.session(&sub, "mobile").await, h.session(&sub, "mobile").await, h.session(&sub, "mobile").await];
        assert!(!h.active(&sessions[0].access_token).await, "round {round}: the oldest went");
        assert!(h.active(&sessions[1].access_token).await, "round {round}");
        assert!(h.active(&sessions[2].access_token).await, "round {round}: the newest lives");
    }
}

async fn create_as(h: &Harness, caller: &Client, body: serde_json::Value) -> Result<SessionStarted, Refusal> {
    create(&h.tokens, caller, &h.clients, serde_json::from_value(body).unwrap(), &|_| None).await
}

#[tokio::test]
async fn a_caller_may_create_sessions_only_for_public_clients_unless_it_lists_others() {
    let h = harness().await;
    let mut service = h.client("web").clone();
    service.id = "service".into();
    service.secret_sha256 = Some([1; 32]);
    let clients = ClientRegistry::new(vec![h.client("backend").clone(), h.client("web").clone(), service]).unwrap();
    let h = Harness { clients, ..h };
    let backend = h.client("backend").clone();
    assert!(create_as(&h, &backend, serde_json::json!({"sub": "alice", "client_id": "web"})).await.is_ok());
    assert!(create_as(&h, &backend, serde_json::json!({"sub": "alice"})).await.is_ok(), "for itself");
    let refused = create_as(&h, &backend, serde_json::json!({"sub": "alice", "client_id": "service"})).await;
    assert!(matches!(refused, Err(Refusal::Forbidden(ref m)) if m.contains("confidential")), "{refused:?}");

    let mut listing = backend.clone();
    listing.session_clients = Some(vec!["service".into()]);
    assert!(create_as(&h, &listing, serde_json::json!({"sub": "alice", "client_id": "service"})).await.is_ok());
    let refused = create_as(&h, &listing, serde_json::json!({"sub": "alice", "client_id": "web"})).await;
    assert!(matches!(refused, Err(Refusal::Forbidden(ref m)) if m.contains("session_clients are: service")), "{refused:?}");
}

#[tokio::test]
async fn a_subject_that_is_a_client_id_is_refused() {
    let h = harness().await;
    let backend = h.client("backend").clone();
    for sub in ["backend", "web", "mobile"] {
        let refused = create_as(&h, &backend, serde_json::json!({"sub": sub, "client_id": "web"})).await;
        assert!(matches!(refused, Err(Refusal::InvalidField { ref field, .. }) if field == "sub"), "{sub}: {refused:?}");
    }
}

#[tokio::test]
async fn logout_of_an_id_this_service_never_issued_is_unknown_and_stores_nothing() {
    let h = harness().await;
    let backend = h.client("backend").clone();
    let real = h.session("alice", "web").await;
    let before = h.tokens.revocations.len();
    // The real id with its last character changed (to another one a
    // canonical encoding may end with: the last of 43 carries 4 bits).
    let changed_last = if real.session_id.ends_with('A') { 'E' } else { 'A' };
    let tampered = format!("{}{changed_last}", &real.session_id[..42]);
    for foreign in ["made-up", "AAAAAAAAAAAAAAAAAAAAAA", &real.session_id[..42], &tampered] {
        let refused = end_session(&h.tokens, &backend, foreign).await;
        assert!(matches!(refused, Err(Refusal::NotFound(_))), "{foreign}: {refused:?}");
    }
    assert_eq!(h.tokens.revocations.len(), before, "nothing was recorded");
    end_session(&h.tokens, &backend, &real.session_id).await.unwrap();
    assert_eq!(h.tokens.revocations.len(), before + 1);
}

#[tokio::test]
async fn a_logout_entry_ends_with_the_tokens_it_can_stop() {
    let h = harness().await;
    let backend = h.client("backend").clone();
    let session = h.session("alice", "web").await;
    end_session(&h.tokens, &backend, &session.session_id).await.unwrap();
    end_subject(&h.tokens, &backend, "bob").await.unwrap();
    let entries = h.tokens.revocations_page(0, 100).entries;
    let now = 1_800_000_000;
    // Refresh idle lifetime 1 d (longer than 10 min access tokens) plus 30 s leeway, not the 3 d session maximum.
    assert_eq!(entries[0].expires_at, now + 86_400 + 30, "{entries:?}");
    assert_eq!(entries[1].covers, crate::revocations::Covers::Subject { sub: "bob".into(), before: now + 2 }, "clock skew added");
    assert_eq!(entries[1].expires_at, now + 2 + 86_400 + 30);
}

#[tokio::test]
async fn refresh_drops_what_the_client_no_longer_has() {
    let h = harness().await;
    let session = h.session("alice", "web").await;
    assert_eq!(session.scope.as_deref(), Some("read write"));
    let mut narrower = h.client("web").clone();
    narrower.scopes = vec!["read".into()];
    let child =
        Pair::from(crate::grants::refresh_token::grant(&h.tokens, &narrower, &session.refresh_token, None, &[], None).await.unwrap());
    assert_eq!(claims_of(&child.access_token)["scope"], "read");
    assert_eq!(refresh_claims_of(&child.refresh_token)["scope"], "read", "the refresh token is narrowed too");
    // Once the client has nothing of the session's scope, refresh is refused.
    let mut bare = narrower.clone();
    bare.scopes.clear();
    let refused = crate::grants::refresh_token::grant(&h.tokens, &bare, &child.refresh_token, None, &[], None).await;
    assert!(matches!(refused, Err(Refusal::InvalidScope(_))), "{refused:?}");
    let mut elsewhere = narrower.clone();
    elsewhere.audiences = vec!["other".into()];
    let refused = crate::grants::refresh_token::grant(&h.tokens, &elsewhere, &child.refresh_token, None, &[], None).await;
    assert!(matches!(refused, Err(Refusal::InvalidTarget(_))), "{refused:?}");
}

#[tokio::test]
async fn the_revocation_quota_refuses_past_its_limit_and_counts_public_clients_per_session() {
    let h = harness().await;
    let mut backend = h.client("backend").clone();
    backend.revocation_quota = 2;
    let sessions = [h.session("a", "web").await, h.session("b", "web").await, h.session("c", "web").await];
    end_session(&h.tokens, &backend, &sessions[0].session_id).await.unwrap();
    end_session(&h.tokens, &backend, &sessions[1].session_id).await.unwrap();
    let refused = end_session(&h.tokens, &backend, &sessions[2].session_id).await;
    assert!(matches!(refused, Err(Refusal::RateLimited { retry_after: 1..=60, .. })), "{refused:?}");
    assert!(h.active(&sessions[2].access_token).await, "nothing was written");
    // A public client is counted per session: another user's logout still works.
    let mut web = h.client("web").clone();
    web.revocation_quota = 1;
    h.tokens.revoke_token(&web, &sessions[2].access_token).await.unwrap();
    let other = h.session("d", "web").await;
    h.tokens.revoke_token(&web, &other.refresh_token).await.unwrap();
    assert!(!h.active(&other.access_token).await);
    // A new minute, a new quota.
    h.advance(Duration::from_secs(60));
    end_session(&h.tokens, &backend, &sessions[2].session_id).await.unwrap();
}
