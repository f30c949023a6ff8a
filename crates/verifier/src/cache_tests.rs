//! The verified-token cache: hits, what is re-checked on a hit, what never
//! enters, eviction and the bound.

use super::*;
use crate::revocations::{RevocationEntry, RevocationKind};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_jose::{Algorithm, KeyPair};

const NOW: i64 = 1_800_000_000;
const LEEWAY: i64 = 30;

fn key_pair() -> KeyPair {
    KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256).unwrap()).unwrap()
}

/// A freshly parsed set with `pair` as kid `k1`: a new `Arc` each time,
/// as a JWKS fetch that brings a new document makes.
fn key_set(pair: &KeyPair) -> Arc<KeySet> {
    Arc::new(KeySet::from_jwks(format!("{{\"keys\":[{}]}}", pair.public_jwk_json("k1")).as_bytes()).unwrap())
}

fn claims(jti: &str) -> Value {
    json!({"iss": "https://issuer.test", "sub": "alice", "aud": "orders-api", "exp": NOW + 600, "iat": NOW,
           "jti": jti, "client_id": "web", "sid": "s1"})
}

fn sign(pair: &KeyPair, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"});
    tessera_jose::sign_compact(&URL_SAFE_NO_PAD.encode(header.to_string()), claims.to_string().as_bytes(), pair)
}

fn policy() -> Policy {
    Policy {
        issuer: "https://issuer.test".into(),
        audiences: vec!["orders-api".into()],
        leeway_seconds: LEEWAY,
        algorithms: Algorithm::ALL.to_vec(),
    }
}

fn revoke(mirror: &RevocationMirror, entry: Value) {
    mirror.apply(&[serde_json::from_value::<RevocationEntry>(entry).unwrap()], NOW);
}

fn counts(cache: &VerifiedTokens) -> (u64, u64, usize) {
    let stats = cache.stats();
    (stats.hits, stats.misses, stats.entries)
}

#[test]
fn a_token_seen_before_is_answered_without_its_signature() {
    let pair = key_pair();
    let (keys, policy) = (key_set(&pair), policy());
    let cache = VerifiedTokens::new(10).unwrap();
    let token = sign(&pair, &claims("j1"));
    let first = cache.check(&token, &keys, &policy, None, NOW).unwrap();
    assert_eq!(counts(&cache), (0, 1, 1));
    for _ in 0..3 {
        assert_eq!(cache.check(&token, &keys, &policy, None, NOW).unwrap(), first);
    }
    assert_eq!(counts(&cache), (3, 1, 1));
    assert_eq!(cache.stats().capacity, 10);
    assert!(VerifiedTokens::new(0).is_none(), "a capacity of 0 turns the cache off");
}

#[test]
fn a_held_token_still_meets_the_clock_and_the_revocation_list() {
    let pair = key_pair();
    let (keys, policy) = (key_set(&pair), policy());
    let cache = VerifiedTokens::new(10).unwrap();
    let mirror = RevocationMirror::default();
    let token = sign(&pair, &claims("j1"));
    let exp = NOW + 600;
    cache.check(&token, &keys, &policy, Some(&mirror), NOW).unwrap();
    // Within the leeway after exp, still good; at its end, expired and dropped.
    assert!(cache.check(&token, &keys, &policy, Some(&mirror), exp + LEEWAY - 1).is_ok());
    assert_eq!(cache.check(&token, &keys, &policy, Some(&mirror), exp + LEEWAY).unwrap_err(), VerifyError::Expired { exp });
    assert_eq!(counts(&cache), (2, 1, 0));

    for (jti, entry, kind) in [
        ("j2", json!({"seq": 1, "kind": "token", "jti": "j2", "expires_at": NOW + 900}), RevocationKind::Token),
        ("j3", json!({"seq": 2, "kind": "session", "sid": "s1", "expires_at": NOW + 900}), RevocationKind::Session),
    ] {
        let token = sign(&pair, &claims(jti));
        let mirror = RevocationMirror::default();
        cache.check(&token, &keys, &policy, Some(&mirror), NOW).unwrap();
        revoke(&mirror, entry);
        assert_eq!(cache.check(&token, &keys, &policy, Some(&mirror), NOW).unwrap_err(), VerifyError::Revoked(kind));
        assert_eq!(cache.stats().entries, 0, "{kind:?}: a refused entry is dropped");
    }

    // The kid is held with the claims, for a key's revocation.
    let token = sign(&pair, &claims("j4"));
    let mirror = RevocationMirror::default();
    cache.check(&token, &keys, &policy, Some(&mirror), NOW).unwrap();
    revoke(&mirror, json!({"seq": 3, "kind": "key", "kid": "k1", "expires_at": NOW + 900}));
    assert_eq!(cache.check(&token, &keys, &policy, Some(&mirror), NOW).unwrap_err(), VerifyError::Revoked(RevocationKind::Key));
}

#[test]
fn a_changed_jwks_sends_a_held_token_through_the_signature_check_again() {
    let pair = key_pair();
    let (keys, policy) = (key_set(&pair), policy());
    let cache = VerifiedTokens::new(10).unwrap();
    let token = sign(&pair, &claims("j1"));
    cache.check(&token, &keys, &policy, None, NOW).unwrap();

    // The same key in a new document: verified once more, then held under it.
    let refetched = key_set(&pair);
    assert!(cache.check(&token, &refetched, &policy, None, NOW).is_ok());
    assert!(cache.check(&token, &refetched, &policy, None, NOW).is_ok());
    assert_eq!(counts(&cache), (1, 2, 1));

    // Withdrawn: refused as an uncached token is, and dropped.
    let withdrawn = Arc::new(KeySet::from_jwks(br#"{"keys":[]}"#).unwrap());
    assert_eq!(cache.check(&token, &withdrawn, &policy, None, NOW).unwrap_err(), VerifyError::UnknownKey { kid: "k1".into() });
    assert_eq!(counts(&cache), (1, 3, 0));

    // Its kid now names another key: the signature no longer verifies.
    cache.check(&token, &refetched, &policy, None, NOW).unwrap();
    let reused_kid = key_set(&key_pair());
    assert_eq!(cache.check(&token, &reused_kid, &policy, None, NOW).unwrap_err(), VerifyError::BadSignature);
    assert_eq!(cache.stats().entries, 0);
}

#[test]
fn refused_tokens_are_never_held() {
    let pair = key_pair();
    let (keys, policy) = (key_set(&pair), policy());
    let cache = VerifiedTokens::new(10).unwrap();
    let mirror = RevocationMirror::default();
    revoke(&mirror, json!({"seq": 1, "kind": "token", "jti": "revoked", "expires_at": NOW + 900}));
    let good = sign(&pair, &claims("j1"));
    let (input, _) = good.rsplit_once('.').unwrap();
    let mut for_billing = claims("j2");
    for_billing["aud"] = "billing-api".into();
    let mut expired = claims("j3");
    expired["exp"] = (NOW - LEEWAY).into();
    for token in [
        "garbage".to_string(),
        format!("{input}.{}", URL_SAFE_NO_PAD.encode([0; 64])),
        sign(&key_pair(), &claims("j1")),
        sign(&pair, &for_billing),
        sign(&pair, &expired),
        sign(&pair, &claims("revoked")),
        format!("{good}{}", "A".repeat(CompactJws::MAX_BYTES)),
    ] {
        for _ in 0..2 {
            assert!(cache.check(&token, &keys, &policy, Some(&mirror), NOW).is_err(), "{token:.80}");
        }
    }
    // The token too long to be a JWS was refused without a lookup.
    assert_eq!(counts(&cache), (0, 12, 0));
}

#[test]
fn the_capacity_holds_and_a_full_cache_drops_the_expired_then_the_closest_to_expiry() {
    let pair = key_pair();
    let (keys, policy) = (key_set(&pair), policy());
    let cache = VerifiedTokens::new(3).unwrap();
    let expiring_in = |jti: &str, seconds: i64| {
        let mut claims = claims(jti);
        claims["exp"] = (NOW + seconds).into();
        sign(&pair, &claims)
    };
    let (soon, later, latest) = (expiring_in("soon", 60), expiring_in("later", 600), expiring_in("latest", 900));
    for token in [&later, &soon, &latest] {
        cache.check(token, &keys, &policy, None, NOW).unwrap();
    }
    let newcomer = expiring_in("newcomer", 300);
    cache.check(&newcomer, &keys, &policy, None, NOW).unwrap();
    assert_eq!(cache.stats().entries, 3);
    let held = |token: &str| {
        let hits = cache.stats().hits;
        cache.check(token, &keys, &policy, None, NOW).unwrap();
        cache.stats().hits > hits
    };
    assert!(!held(&soon), "the entry closest to expiry made room");
    // `soon` is back and `newcomer` (now the closest) went for it.
    assert!(held(&later) && held(&latest) && held(&soon) && !held(&newcomer));

    // Expired entries go before any live one.
    let ten_minutes_on = NOW + 700;
    let live = expiring_in("live", 3_600);
    cache.check(&live, &keys, &policy, None, ten_minutes_on).unwrap();
    assert_eq!(cache.stats().entries, 2, "newcomer and later had expired and went; latest stays");

    for index in 0..50 {
        cache.check(&sign(&pair, &claims(&format!("j{index}"))), &keys, &policy, None, NOW).unwrap();
        assert!(cache.stats().entries <= 3);
    }
}

#[test]
fn a_large_cache_is_sharded_without_passing_its_capacity() {
    for capacity in [1, 63, 64, 129, 10_000, 100_003] {
        let cache = VerifiedTokens::new(capacity).unwrap();
        assert_eq!(cache.stats().capacity, capacity);
        assert!(cache.shards.len() <= MAX_SHARDS && capacity / cache.shards.len() >= MIN_PER_SHARD.min(capacity));
    }
}
