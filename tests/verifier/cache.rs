//! The verified-token cache against the real tessera: a token seen again is
//! answered without its signature check, yet a logout, its `exp` or its
//! key leaving the JWKS refuses it as if it had never been seen; refused
//! tokens are never held, and the capacity bounds what is.
//!
//! A hit is told from a miss by the verifier's counters
//! ([`Verifier::verified_cache_stats`]): `misses` counts signature checks.

use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tessera_verifier::{RevocationKind, VerifiedCacheStats, Verifier, VerifierBuilder, VerifyError};

fn builder(server: &TestServer) -> VerifierBuilder {
    Verifier::builder().issuer(&server.base).audience("orders-api")
}

/// A session's access token and its id.
async fn session(server: &TestServer) -> (String, String) {
    let body = server.session(json!({"sub": "alice", "client_id": "web", "scope": "read"})).await;
    (body["access_token"].as_str().unwrap().to_string(), body["session_id"].as_str().unwrap().to_string())
}

/// (hits, misses, entries).
fn counts(verifier: &Verifier) -> (u64, u64, usize) {
    let VerifiedCacheStats { hits, misses, entries, .. } = verifier.verified_cache_stats();
    (hits, misses, entries)
}

#[tokio::test]
async fn a_token_verified_again_is_answered_from_the_cache() {
    let server = TestServer::start().await;
    let (token, _) = session(&server).await;
    let verifier = builder(&server).build().await.unwrap();
    assert_eq!(verifier.verified_cache_stats().capacity, 10_000, "on by default");
    let first = verifier.verify(&token).await.unwrap();
    assert_eq!(counts(&verifier), (0, 1, 1));
    assert_eq!(verifier.verify(&token).await.unwrap(), first);
    assert_eq!(verifier.verify_cached(&token).unwrap(), first);
    assert_eq!(verifier.clone().verify(&token).await.unwrap(), first, "clones share the cache");
    assert_eq!(counts(&verifier), (3, 1, 1));

    let uncached = builder(&server).verified_cache(0).build().await.unwrap();
    for _ in 0..2 {
        assert_eq!(uncached.verify(&token).await.unwrap(), first);
    }
    assert_eq!(uncached.verified_cache_stats(), VerifiedCacheStats::default());
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_logout_arrives() {
    let server = TestServer::start().await;
    let verifier = builder(&server).build().await.unwrap();
    let (token, sid) = session(&server).await;
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.logout(&sid).await, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        match verifier.verify(&token).await {
            Ok(_) => assert!(Instant::now() < deadline, "the logout did not reach the verifier"),
            Err(refused) => break refused,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refused, VerifyError::Revoked(RevocationKind::Session));
    let (hits, misses, entries) = counts(&verifier);
    assert!(hits >= 2 && misses == 1, "refused on a hit: {hits} hits, {misses} misses");
    assert_eq!(entries, 0, "the refused token is no longer held");
    assert_eq!(verifier.verify(&token).await.unwrap_err(), refused, "and refused again after a full check");
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let server = TestServer::start_with(&default_config(), &[("TESSERA_TOKENS_ACCESS_TTL", "3s")]).await;
    let (token, _) = session(&server).await;
    let verifier = builder(&server).leeway(Duration::ZERO).build().await.unwrap();
    let exp = verifier.verify(&token).await.unwrap().exp;
    verifier.verify(&token).await.unwrap();
    assert_eq!(counts(&verifier), (1, 1, 1));
    let unix_now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let until_exp = Duration::from_secs(u64::try_from(exp).unwrap()).saturating_sub(unix_now());
    tokio::time::sleep(until_exp + Duration::from_millis(50)).await;
    assert_eq!(verifier.verify(&token).await.unwrap_err(), VerifyError::Expired { exp });
    assert_eq!(counts(&verifier), (2, 1, 0), "refused on a hit, then dropped");
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_leaves_the_jwks() {
    let env = [("TESSERA_KEYS_JWKS_MAX_AGE", "1s"), ("TESSERA_KEYS_RELOAD_INTERVAL", "200ms")];
    let server = TestServer::start_with(&default_config(), &env).await;
    let (token, _) = session(&server).await;
    // Without the feed, only the JWKS can tell the verifier of the withdrawal.
    let verifier = builder(&server).revocation_feed(false).build().await.unwrap();
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(counts(&verifier), (1, 1, 1));

    let kid = kid_of(&token);
    let output = server.cli(&["keys", "revoke", &kid]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        match verifier.verify(&token).await {
            Ok(_) => assert!(Instant::now() < deadline, "a token under a withdrawn key still verified after 10 s"),
            Err(refused) => break refused,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused, VerifyError::UnknownKey { kid: kid.clone() });
    assert_eq!(counts(&verifier).2, 0, "the token is no longer held");
    // Exactly what a verifier that never saw the token says.
    let fresh = builder(&server).revocation_feed(false).build().await.unwrap();
    assert_eq!(fresh.verify(&token).await.unwrap_err(), refused);
    // The successor's tokens verify, and are held.
    let (successor, _) = session(&server).await;
    assert_ne!(kid_of(&successor), kid);
    verifier.verify(&successor).await.unwrap();
    assert_eq!(counts(&verifier).2, 1);
}

#[tokio::test]
async fn the_cache_never_holds_more_tokens_than_its_capacity() {
    let server = TestServer::start().await;
    let verifier = builder(&server).verified_cache(3).build().await.unwrap();
    assert_eq!(verifier.verified_cache_stats().capacity, 3);
    let mut tokens = Vec::new();
    for held in 1..=8 {
        let (token, _) = session(&server).await;
        verifier.verify(&token).await.unwrap();
        assert_eq!(counts(&verifier).2, held.min(3));
        tokens.push(token);
    }
    // Every token still verifies, held or not.
    for token in &tokens {
        verifier.verify(token).await.unwrap();
    }
    assert_eq!(counts(&verifier).2, 3);
}

#[tokio::test]
async fn refused_tokens_are_never_cached() {
    let server = TestServer::start().await;
    let (token, _) = session(&server).await;
    let verifier = builder(&server).build().await.unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{input}.{flipped}{}", &signature[1..]);
    for refused in [tampered.as_str(), "not.a.token", ""] {
        for _ in 0..2 {
            assert!(verifier.verify(refused).await.is_err(), "{refused:.40}");
        }
    }
    assert_eq!(counts(&verifier), (0, 6, 0));

    let for_billing = Verifier::builder().issuer(&server.base).audience("billing-api").build().await.unwrap();
    for _ in 0..2 {
        assert!(matches!(for_billing.verify(&token).await, Err(VerifyError::WrongAudience { .. })));
    }
    assert_eq!(counts(&for_billing), (0, 2, 0));
}
